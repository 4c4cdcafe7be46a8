"""Stage 6 of the imitation benchmark: sessions Claude Code ran against a model, scored
against the teacher's workflow with the eval's metrics.

The fast tests score hand-made sessions; the e2e ones let the real Claude Code work a
held-out task against the fake API playing the teacher (every metric must be perfect: the
pipeline loses nothing) and against a model that only talks (scored, not a crash).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from claude_bc.capture.schema import ClaudeTrace, ToolCall
from claude_bc.training.config import DatasetConfig
from claude_bc.training.dataset import to_messages
from claude_bc.training.eval import turns_of
from claude_bc.training.policy import Task, reference_from_chat
from claude_bc.training.template import ParsedTurn
from tests.fake_anthropic import FakeAnthropic
from tests.proxy.mitm import needs_mitmdump
from tests.teacher.families import Instance, corpus
from tests.teacher.in_claude_code import (
    Played,
    Settings,
    play,
    rolled_out,
    rollout_counts,
    score,
    stream_turns,
)

ROOT = "/tmp/bc-imitation/repo"


def _reference() -> ClaudeTrace:
    return ClaudeTrace(
        trace_id="t1",
        user_prompt="Where is `f` defined?",
        tool_calls=[
            ToolCall(tool="Grep", args={"pattern": "def f"}, batch=0),
            ToolCall(tool="Read", args={"file_path": f"{ROOT}/a.py"}, batch=1),
        ],
        claude_response="`f` is defined in a.py, line 1.",
        complete=True,
    )


def _task() -> Task:
    ref = _reference()
    prompt = [{"role": "user", "content": ref.user_prompt}]
    return Task(trace_id="t1", prompt=prompt, tools=[], reference=ref)


def _captured(calls: list[ToolCall], answer: str) -> ClaudeTrace:
    return ClaudeTrace(
        trace_id="cc",
        session_id="s1",
        user_prompt=_reference().user_prompt,
        tool_calls=calls,
        claude_response=answer,
        cwd=ROOT,
        complete=True,
    )


def _stream(*replies: tuple[str, list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """Claude Code's stream-json: one assistant message per content block, same id."""
    out: list[dict[str, Any]] = [{"type": "system", "session_id": "s1"}]
    for k, (text, calls) in enumerate(replies):
        blocks = ([{"type": "text", "text": text}] if text else []) + [
            {"type": "tool_use", "id": f"u{k}{i}", "name": c["name"], "input": c["arguments"]}
            for i, c in enumerate(calls)
        ]
        for b in blocks:
            out.append({"type": "assistant", "message": {"id": f"m{k}", "content": [b]}})
    return out


def test_stream_turns_group_the_blocks_of_one_reply() -> None:
    read = {"name": "Read", "arguments": {"file_path": "/x"}}
    turns = stream_turns(_stream(("Reading.", [read, read]), ("Done.", [])))
    assert [(t.content, len(t.tool_calls)) for t in turns] == [("Reading.", 2), ("Done.", 0)]


def test_trace_turns_group_calls_by_api_message() -> None:
    calls = [
        ToolCall(tool="Read", args={}, message_id="m1", batch=0),
        ToolCall(tool="Read", args={}, message_id="m1", batch=0),
        ToolCall(tool="Bash", args={}, message_id="m2", batch=1),
    ]
    assert [len(t.tool_calls) for t in turns_of(_captured(calls, ""))] == [2, 1]


def test_a_session_that_did_what_the_teacher_did_scores_perfectly() -> None:
    ref = _reference()
    calls = [c.model_copy() for c in ref.tool_calls]
    trace = _captured(calls, ref.claude_response)
    replies = [(tc.tool, [{"name": tc.tool, "arguments": tc.args}]) for tc in calls]
    turns = stream_turns(_stream(*replies, (ref.claude_response, [])))
    played = Played(ref.user_prompt, session_id="s1", stop="success", final_state=True)
    played.model_turns, played.call_turns = 3, 2
    result, runs = score("sft", "x", [_task()], {ref.user_prompt: (played, trace, turns)})
    m = result.metrics
    for key in ("parsable_call_rate", "first_call", "exact_sequence", "argument_match"):
        assert m[key] == 1.0, key
    assert m["final_state"] == 1.0 and m["tool_alignment"] == 1.0
    assert runs["call_turn_rate"] == pytest.approx(2 / 3) and runs["finished"] == 1.0


def test_a_model_that_only_talks_or_produced_nothing_is_scored() -> None:
    ref = _reference()
    talk = stream_turns(_stream(("I think it is somewhere.", [])))
    for turns in (talk, []):
        played = Played(ref.user_prompt, stop=None, timed_out=not turns)
        result, runs = score("sft", "x", [_task()], {ref.user_prompt: (played, None, turns)})
        m = result.metrics
        assert m["parsable_call_rate"] == 0.0 and m["first_call"] == 0.0
        assert m["final_state"] == 0.0 and m["reward"] is not None
        assert runs["call_turn_rate"] == 0.0


# --- the real Claude Code ----------------------------------------------------------------------


def _heldout(family: str) -> Instance:
    _, held = corpus(0, 1, seed=0)
    return next(i for i in held if i.family == family)


def _task_of(inst: Instance, trace: ClaudeTrace) -> Task:
    """The task as the eval sees it: the teacher's trace through the dataset's chat."""
    messages = to_messages(trace, DatasetConfig())
    user = next(i for i, m in enumerate(messages) if m["role"] == "user")
    return Task(inst.key, messages[: user + 1], [], reference_from_chat(inst.key, messages))


def _play(
    inst: Instance, scenario: dict[str, Any], tmp_path: Path
) -> tuple[Played, ClaudeTrace | None, list[ParsedTurn]]:
    """Claude Code on ``inst`` against the fake API playing ``scenario``."""
    root = tmp_path / "repo"
    with FakeAnthropic(scenario, cwd=str(root)) as api:
        [outcome] = play(
            [(inst.prompt, inst.files, inst.final_files)],
            root,
            tmp_path / "cc",
            api.base_url,
            Settings(task_timeout_s=120),
        )
    return outcome


@pytest.mark.e2e
def test_claude_code_against_the_teacher_itself_scores_perfectly(tmp_path: Path) -> None:
    inst = _heldout("fix_test")
    played, trace, turns = _play(inst, inst.scenario(), tmp_path)
    assert played.source == "hooks" and trace is not None and played.stop == "success"
    assert played.final_state and played.call_turns == played.model_turns - 1
    result, runs = score(
        "teacher", "fake", [_task_of(inst, trace)], {inst.prompt: (played, trace, turns)}
    )
    m = result.metrics
    for key in ("parsable_call_rate", "first_call", "exact_sequence", "argument_match"):
        assert m[key] == 1.0, key
    assert m["final_state"] == 1.0 and m["exact_match"] == 1.0 and runs["captured"] == 1.0


@pytest.mark.e2e
@needs_mitmdump
def test_claude_code_through_the_rollout_proxy_at_100_percent(tmp_path: Path) -> None:
    """The way a user ships the model: Claude Code → bc-capture proxy --rollout 100 → the
    local endpoint (the fake playing the teacher); nothing goes to Anthropic."""
    inst = _heldout("rename")
    root, home = tmp_path / "repo", tmp_path / "proxy-home"
    with (
        FakeAnthropic(inst.scenario(), cwd=str(root)) as local,
        rolled_out(local.base_url, home) as url,
    ):
        [(played, trace, _)] = play(
            [(inst.prompt, inst.files, inst.final_files)], root, tmp_path / "cc", url,
            Settings(task_timeout_s=120),
        )  # fmt: skip
    assert played.stop == "success" and played.final_state and trace is not None
    counts = rollout_counts(home)
    assert counts.get("local", 0) >= played.model_turns > 0
    assert set(counts) == {"local"}, counts


@pytest.mark.e2e
def test_claude_code_against_a_model_that_only_talks(tmp_path: Path) -> None:
    inst = _heldout("locate")
    scenario = {"prompt": inst.prompt, "turns": [{"content": [{"type": "text", "text": "No."}]}]}
    played, trace, turns = _play(inst, scenario, tmp_path)
    assert played.stop == "success" and played.call_turns == 0 and played.answer == "No."
    ref = ClaudeTrace(
        trace_id="r",
        user_prompt=inst.prompt,
        tool_calls=[ToolCall(tool="Grep", args={"pattern": "x"}, batch=0)],
        claude_response="Found.",
        complete=True,
    )
    task = Task("r", [{"role": "user", "content": inst.prompt}], [], ref)
    result, _ = score("talker", "fake", [task], {inst.prompt: (played, trace, turns)})
    assert result.metrics["parsable_call_rate"] == 0.0
    assert result.metrics["final_state"] == 1.0  # nothing to change, nothing changed


def test_claude_code_giving_up_on_a_model_that_never_stops_is_not_finished() -> None:
    ref = _reference()
    text = "API Error: Claude's response exceeded the 128000 output token maximum."
    played = Played(ref.user_prompt, stop="success", api_error=True)
    stream = _stream(("blah blah", []), (text, []))
    stream[-1]["message"]["model"] = "<synthetic>"  # Claude Code's, not the model's
    turns = stream_turns(stream)
    assert [t.content for t in turns] == ["blah blah"]
    _, runs = score("sft", "x", [_task()], {ref.user_prompt: (played, None, turns)})
    assert runs["finished"] == 0.0 and runs["api_error"] == 1.0


def test_an_earlier_export_is_reused_only_while_the_model_is_unchanged(tmp_path: Path) -> None:
    import os

    from tests.teacher.in_claude_code import STEM, _exported

    model, gguf = tmp_path / "rl", tmp_path / "gguf"
    (model / "adapter").mkdir(parents=True)
    (model / "adapter" / "adapter_model.safetensors").write_bytes(b"w")
    gguf.mkdir()
    assert _exported(gguf, "q4_k_m", model) is None  # nothing exported yet
    (gguf / f"{STEM}.gguf").write_bytes(b"GGUF")
    (gguf / "fidelity.json").write_text("{}")
    assert _exported(gguf, "q4_k_m", model) == gguf / f"{STEM}.gguf"
    # retrained after that export: export again
    later = (gguf / f"{STEM}.gguf").stat().st_mtime + 10
    os.utime(model / "adapter" / "adapter_model.safetensors", (later, later))
    assert _exported(gguf, "q4_k_m", model) is None
