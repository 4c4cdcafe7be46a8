"""The behavioural reward: hand-computed components, bounds, hacking guards, audit, CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from claude_bc.capture.schema import ClaudeTrace, ToolCall
from claude_bc.cli import main
from claude_bc.training.reward import (
    COMPONENTS,
    WEIGHTS,
    BehavioralRewardModel,
    args_text,
    combine,
    constraint_match,
    depth_match,
    features,
    outcome_match,
    reward,
    self_correction_match,
    tool_alignment,
    tool_code,
)
from claude_bc.training.template import PYTHON_TAG, render_call

CONSTRAINT = "I can't modify this file without breaking backward compatibility for the v1 clients."
CORRECTION = "Actually, let me read the tests first instead."


def codes(*names: str) -> str:
    return "".join(tool_code(n) for n in names)


def claude_trace() -> ClaudeTrace:
    return ClaudeTrace(
        trace_id="ref",
        user_prompt="Make greet() say hello to the user by name",
        cwd="/repo",
        tool_calls=[
            ToolCall(tool="Read", args={"file_path": "/repo/src/app.py"}, reasoning=CONSTRAINT),
            ToolCall(tool="Grep", args={"pattern": "greet"}, reasoning=CORRECTION),
            ToolCall(
                tool="Edit",
                args={"file_path": "/repo/src/app.py", "old_string": "hi", "new_string": "hello"},
            ),
        ],
        claude_response="greet() now says hello by name.",
    )


# --- each component, computed by hand --------------------------------------------------------


def test_constraint_match_is_a_soft_f1() -> None:
    want = ["the sandbox has no network access"]
    assert constraint_match(want, want) == 1.0
    assert constraint_match([], []) == 1.0
    assert constraint_match([], want) == 0.0
    # one right and three unrelated: precision 1/4, recall 1 -> F1 = 2*(1/4)/(5/4) = 0.4
    spam = [*want, "python 3.8 only", "keep the public api", "zzz qqq xxx"]
    assert constraint_match(spam, want) == pytest.approx(0.4)


def test_tool_alignment_by_hand() -> None:
    same = ['{"f":"a"}', '{"f":"b"}']
    assert tool_alignment(codes("Read", "Edit"), codes("Read", "Edit"), same, same) == 1.0
    # one call missing: sequence 1 - 1/3 = 2/3; both remaining pairs' args equal: 2/3
    got = tool_alignment(
        codes("Read", "Edit"), codes("Read", "Grep", "Edit"), ["x", "y"], ["x", "z", "y"]
    )
    assert got == pytest.approx(2 / 3)
    # same tools, arguments entirely different: only the sequence part (2/3) counts
    assert tool_alignment(codes("Read"), codes("Read"), ["aaaa"], ["zzzz"]) == pytest.approx(2 / 3)
    assert tool_alignment("", "", [], []) == 1.0
    assert tool_alignment(codes("Bash"), "", ["x"], []) == 0.0


def test_padding_the_workflow_never_pays() -> None:
    """The distance is normalised by the longer sequence: ten Reads for Claude's one."""
    one = tool_alignment(codes("Read"), codes("Read"), ["a"], ["a"])
    padded = tool_alignment(codes(*["Read"] * 10), codes("Read"), ["a"] * 10, ["a"])
    # sequence 1/10, arguments 1 pair / 10 -> 2/3 * 0.1 + 1/3 * 0.1
    assert padded == pytest.approx(0.1) and one == 1.0


def test_self_correction_depth_and_outcome_by_hand() -> None:
    assert self_correction_match(1, 2) == 0.5
    assert self_correction_match(0, 0) == 1.0
    assert self_correction_match(4, 0) == 0.0
    assert depth_match(3, 6) == 0.5
    assert outcome_match("done", "done", {}, {}) == 1.0
    # answers equal (1.0), one of two edited files matches exactly: 0.5 * 1 + 0.5 * (1 + 0) / 2
    assert outcome_match("ok", "ok", {"a": "+x"}, {"a": "+x", "b": "+y"}) == 0.75
    # the right answer but the wrong edit: half the score at most
    assert outcome_match("ok", "ok", {"a": "-x\n+y"}, {"b": "-x\n+y"}) == 0.5


def test_total_bounds_and_weights() -> None:
    assert sum(WEIGHTS.values()) == pytest.approx(1.0)
    assert [WEIGHTS[c] for c in COMPONENTS] == [0.25, 0.30, 0.15, 0.20, 0.10]
    assert combine(dict.fromkeys(COMPONENTS, 1.0)) == 1.0
    assert combine(dict.fromkeys(COMPONENTS, 0.0)) == -1.0
    # only tools right (0.30): 2 * 0.30 - 1
    only_tools = {**dict.fromkeys(COMPONENTS, 0.0), "tools": 1.0}
    assert combine(only_tools) == pytest.approx(-0.4)


# --- whole traces ----------------------------------------------------------------------------


def test_identical_workflow_scores_one_with_breakdown() -> None:
    ref = claude_trace()
    result = reward(ref, ref)
    assert result.total == 1.0 and result.parsed
    assert result.breakdown() == {"total": 1.0, **dict.fromkeys(COMPONENTS, 1.0)}


def test_constraints_and_corrections_come_from_the_signal_extractor() -> None:
    ref = claude_trace()
    want = features(ref)
    assert len(want.constraints) == 1 and want.recoveries == 1
    blind = ref.model_copy(deep=True)
    for call in blind.tool_calls:
        call.reasoning = ""
    result = reward(blind, ref)
    assert result.components["constraints"] == 0.0
    assert result.components["self_correction"] == 0.0
    assert result.components["tools"] == 1.0
    assert result.total < 1.0


def test_unparsable_tool_calls_score_minus_one() -> None:
    ref = claude_trace()
    model = BehavioralRewardModel([ref])
    bad = model.score_text(f'Let me look.{PYTHON_TAG}{{"name": "Read", "parameters": ', "ref")
    assert bad.total == -1.0 and not bad.parsed
    empty_tag = model.score_text(f"Let me look.{PYTHON_TAG}", "ref")
    assert empty_tag.total == -1.0
    # a plain answer with no calls parses (and scores low, but above -1)
    answer = model.score_text("greet() now says hello by name.", "ref")
    assert answer.parsed and -1.0 < answer.total < 0.0


def test_closer_workflows_score_higher() -> None:
    ref = claude_trace()
    model = BehavioralRewardModel([ref])
    calls = [render_call(c.tool, c.args) for c in ref.tool_calls]
    first_turn = f"{CONSTRAINT}{PYTHON_TAG}" + "\n".join(calls)
    partial = f"Hmm.{PYTHON_TAG}" + calls[0]
    wrong = f"Hmm.{PYTHON_TAG}" + render_call("Bash", {"command": "rm -rf /"})
    scores = [model.score_text(t, "ref").total for t in (first_turn, partial, wrong)]
    assert scores[0] > scores[1] > scores[2]


def plain_trace(calls: list[ToolCall], answer: str = "Done: greet() says hello.") -> ClaudeTrace:
    """A workflow whose text states no constraint and no correction."""
    return ClaudeTrace(trace_id="plain", user_prompt="p", cwd="/repo", tool_calls=calls,
                       claude_response=answer)  # fmt: skip


def test_doing_nothing_never_beats_acting_and_slipping() -> None:
    # Claude read, searched and edited with nothing to notice or recover from
    ref = plain_trace([
        ToolCall(tool="Read", args={"file_path": "/repo/src/app.py"}),
        ToolCall(tool="Grep", args={"pattern": "greet"}),
        ToolCall(tool="Edit", args={"file_path": "/repo/src/app.py", "old_string": "hi",
                                    "new_string": "hello"}),
    ])  # fmt: skip
    idle = reward(plain_trace([], "I would edit app.py."), ref)
    # the right first steps, then a failed command retried once: one recovery Claude did not need
    slipping = reward(plain_trace([
        ToolCall(tool="Read", args={"file_path": "/repo/src/app.py"}),
        ToolCall(tool="Bash", args={"command": "pytest"}, success=False),
        ToolCall(tool="Bash", args={"command": "python -m pytest"}),
    ]), ref)  # fmt: skip
    assert idle.total < slipping.total
    # no call made: nothing noticed and nothing recovered is not Claude's workflow
    assert idle.components["constraints"] == 0.0
    assert idle.components["self_correction"] == 0.0
    assert idle.total < -0.5
    # absence on both sides counts as far as the work was done: 2 of 3 calls -> 2/3
    two_calls = reward(plain_trace(ref.tool_calls[:2]), ref)
    assert two_calls.components["constraints"] == pytest.approx(2 / 3)
    assert two_calls.components["self_correction"] == pytest.approx(2 / 3)
    # a question answered without tools, like Claude's, still matches in full
    answer_only = plain_trace([], "It returns a greeting.")
    assert reward(answer_only, answer_only).total == 1.0


def test_trl_reward_function_and_audit(tmp_path: Path) -> None:
    ref = claude_trace()
    model = BehavioralRewardModel([ref], audit_top=2)
    calls = "\n".join(render_call(c.tool, c.args) for c in ref.tool_calls)
    completions = [
        [{"role": "assistant", "content": f"{CONSTRAINT}{PYTHON_TAG}{calls}"}],
        [{"role": "assistant", "content": "no idea"}],
        [{"role": "assistant", "content": f"x{PYTHON_TAG}{{broken"}],
    ]
    totals = model(prompts=["p"] * 3, completions=completions, trace_id=["ref"] * 3)
    assert totals[0] > totals[1] > totals[2] == -1.0
    path = model.write_audit(tmp_path / "audit.jsonl")
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    assert [r["reward"] for r in rows] == totals[:2]  # the best two, best first
    assert rows[0]["completion"].startswith(CONSTRAINT) and set(rows[0]["components"]) == set(
        COMPONENTS
    )
    with pytest.raises(ValueError, match="trace_id"):
        model(prompts=["p"], completions=["x"])


# --- properties ------------------------------------------------------------------------------

TOOL_NAMES = st.sampled_from(["Read", "Grep", "Glob", "Bash", "Edit", "Write", "Agent"])
SENTENCES = st.sampled_from(
    [CONSTRAINT, CORRECTION, "Let me read it.", "This must stay compatible with Python 3.8.", ""]
)


@st.composite
def traces(draw: st.DrawFn) -> ClaudeTrace:
    calls = [
        ToolCall(
            tool=draw(TOOL_NAMES),
            args=draw(
                st.dictionaries(
                    st.sampled_from(
                        ["file_path", "command", "old_string", "new_string", "content"]
                    ),
                    st.text(max_size=30),
                    max_size=3,
                )
            ),
            reasoning=draw(SENTENCES),
            success=draw(st.booleans()),
            batch=draw(st.integers(0, 3)),
        )
        for _ in range(draw(st.integers(0, 8)))
    ]
    return ClaudeTrace(
        trace_id="h", user_prompt="p", tool_calls=calls, claude_response=draw(st.text(max_size=300))
    )


@settings(max_examples=100, deadline=None)
@given(traces(), traces())
def test_any_two_traces_score_within_bounds(a: ClaudeTrace, b: ClaudeTrace) -> None:
    result = reward(a, b)
    assert -1.0 <= result.total <= 1.0
    assert all(0.0 <= v <= 1.0 for v in result.components.values())
    # the total is the weighted combination of the breakdown it reports
    assert result.total == pytest.approx(combine(result.components))


@settings(max_examples=100, deadline=None)
@given(traces())
def test_identical_traces_score_one(a: ClaudeTrace) -> None:
    assert reward(a, a.model_copy(deep=True)).total == 1.0


def test_argument_text_ignores_key_order() -> None:
    assert args_text({"a": 1, "b": "x"}) == args_text({"b": "x", "a": 1})


# --- bc-train reward -------------------------------------------------------------------------


def write_jsonl(path: Path, rows: list[dict[str, object]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_cli_scores_a_file_of_outputs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ref = claude_trace()
    traces_file = write_jsonl(tmp_path / "traces.jsonl", [ref.record()])
    calls = "\n".join(render_call(c.tool, c.args) for c in ref.tool_calls)
    episode = [
        {
            "role": "assistant",
            "content": CONSTRAINT,
            "tool_calls": [
                {"function": {"name": c.tool, "arguments": c.args}} for c in ref.tool_calls[:1]
            ],
        },
        {"role": "tool", "content": "1\tdef greet(): ..."},
        {"role": "assistant", "content": "greet() now says hello by name."},
    ]
    outputs = write_jsonl(
        tmp_path / "outputs.jsonl",
        [
            {"trace_id": "ref", "model": "sft", "completion": f"{CONSTRAINT}{PYTHON_TAG}{calls}"},
            {"trace_id": "ref", "model": "sft", "messages": episode},
            {"trace_id": "ref", "model": "base", "completion": f"x{PYTHON_TAG}{{oops"},
        ],
    )
    out = tmp_path / "scores.jsonl"
    main(["reward", str(outputs), "--traces", str(traces_file), "--out", str(out)])
    table = capsys.readouterr().out
    assert "sft" in table and "base" in table and "unparsable" in table
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["parsed"] for r in rows] == [True, True, False]
    assert rows[2]["total"] == -1.0 and -1.0 < rows[1]["total"] < 1.0
    audit = tmp_path / "outputs.audit.jsonl"
    assert len(audit.read_text().splitlines()) == 3


def test_cli_bad_input_is_one_clear_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    traces_file = write_jsonl(tmp_path / "traces.jsonl", [claude_trace().record()])
    outputs = tmp_path / "outputs.jsonl"
    outputs.write_text('{"trace_id": "ref", "completion": "ok"}\n{not json\n')
    with pytest.raises(SystemExit) as done:
        main(["reward", str(outputs), "--traces", str(traces_file)])
    assert done.value.code == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        f"bc-train: error: {outputs}:2: not valid JSON (Expecting property name "
        "enclosed in double quotes)"
    ]
    write_jsonl(outputs, [{"trace_id": "nope", "completion": "ok"}])
    with pytest.raises(SystemExit) as done:
        main(["reward", str(outputs), "--traces", str(traces_file)])
    assert (
        done.value.code == 1 and "'nope' is not one of the given traces" in capsys.readouterr().err
    )
