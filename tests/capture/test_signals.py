"""The reasoning-signal extractor: precision and recall on the hand-labelled set, structure,
categories, and that any trace (empty, huge, odd) extracts without error."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from capture import signals as sig
from capture.schema import ClaudeTrace, ToolCall
from capture.signals import ReasoningSignalExtractor, extract_signals
from capture.store import TraceStorage
from capture.worker import assemble_session
from tests.capture.labelled_snippets import DEV, HELD_OUT, ROUND1, ROUND2, Snippet
from tests.capture.labelled_traces import TRACES
from tests.conftest import stage_run

SIGNALS = ("constraint", "pruning", "correction", "plan")

# Floors over the whole labelled set (DEV + ROUND1 + ROUND2 + HELD_OUT). The README states
# them with the measured values; HELD_OUT alone is held to the precision floor only.
PRECISION_FLOOR = {"constraint": 0.85, "pruning": 0.85, "correction": 0.85, "plan": 0.85}
RECALL_FLOOR = {"constraint": 0.75, "pruning": 0.75, "correction": 0.65, "plan": 0.75}
HELD_OUT_PRECISION_FLOOR = 0.8


def predicted(text: str) -> set[str]:
    out = {
        name
        for name, pattern in (
            ("constraint", sig.CONSTRAINT),
            ("pruning", sig.PRUNING),
            ("correction", sig.CORRECTION),
        )
        if sig.cues(text, pattern)
    }
    return out | ({"plan"} if sig.find_plan(text) else set())


@dataclass
class Score:
    tp: int = 0
    fp: int = 0
    fn: int = 0

    @property
    def precision(self) -> float:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else 1.0

    @property
    def recall(self) -> float:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else 1.0


def score(snippets: list[Snippet]) -> dict[str, Score]:
    scores = {name: Score() for name in SIGNALS}
    for text, labels in snippets:
        got = predicted(text)
        for name in SIGNALS:
            s = scores[name]
            s.tp += name in got and name in labels
            s.fp += name in got and name not in labels
            s.fn += name in labels and name not in got
    return scores


def table(title: str, scores: dict[str, Score]) -> str:
    rows = [f"{n:<11} P {s.precision:.2f}  R {s.recall:.2f}" for n, s in scores.items()]
    return f"{title}\n  " + "\n  ".join(rows)


def test_labelled_set_is_big_enough() -> None:
    everything = DEV + ROUND1 + ROUND2 + HELD_OUT
    assert len(everything) >= 80 and len(TRACES) >= 20
    negatives = [t for t, labels in everything if not labels]
    assert len(negatives) >= 30  # hard negatives: cue words without the behaviour
    for name in SIGNALS:
        assert sum(name in labels for _, labels in everything) >= 10


def test_precision_and_recall_per_signal() -> None:
    everything = score(DEV + ROUND1 + ROUND2 + HELD_OUT)
    held = score(HELD_OUT)
    print(table("all labelled snippets", everything))
    print(table("held out (never tuned on)", held))
    for name in SIGNALS:
        s = everything[name]
        assert s.precision >= PRECISION_FLOOR[name], (name, s)
        assert s.recall >= RECALL_FLOOR[name], (name, s)
        assert held[name].precision >= HELD_OUT_PRECISION_FLOOR, (name, held[name])


@pytest.mark.parametrize("case", TRACES, ids=[t.name for t in TRACES])
def test_labelled_traces(case: object) -> None:
    from tests.capture.labelled_traces import Labelled

    assert isinstance(case, Labelled)
    s = extract_signals(case.trace)
    assert s.workflow_type.value == case.workflow
    assert s.exploration_depth.value == case.depth
    assert {c.value for c in s.categories} == case.categories
    found = {
        name
        for name, present in (
            ("constraint", s.constraints_detected),
            ("pruning", s.pruning_decisions),
            ("correction", s.self_corrections),
            ("plan", s.explicit_plan),
        )
        if present
    }
    assert found == case.signals


def call(tool: str, batch: int, ok: bool = True, **args: str) -> ToolCall:
    return ToolCall(tool=tool, args=dict(args), batch=batch, success=ok, error=None if ok else "x")


def test_a_changed_retry_is_a_self_correction_an_identical_one_is_not() -> None:
    changed = ClaudeTrace(
        trace_id="a",
        user_prompt="show the config",
        tool_calls=[call("Bash", 0, False, command="cat conf"), call("Bash", 1, command="cat c")],
    )
    same = ClaudeTrace(
        trace_id="b",
        user_prompt="run the tests",
        tool_calls=[call("Bash", 0, False, command="pytest"), call("Bash", 1, command="pytest")],
    )
    s = extract_signals(changed)
    assert s.workflow_type == "iterative"
    assert s.self_corrections == ["retried Bash with changed input after it failed: x"]
    assert extract_signals(same).self_corrections == []
    assert extract_signals(same).workflow_type == "iterative"


def test_parallel_blocks_make_a_parallel_workflow() -> None:
    t = ClaudeTrace(
        trace_id="p",
        user_prompt="read both",
        tool_calls=[call("Read", 0, file_path="a"), call("Read", 0, file_path="b")],
    )
    assert extract_signals(t).workflow_type == "parallel"


def test_code_spans_are_not_cues() -> None:
    assert predicted("The flag `cannot_retry` and `must_keep_order` are set here.") == set()
    assert predicted("```\n# we must not break this\nx = 1\n```") == set()


def test_recorded_claude_code_run(bc_home: Path) -> None:
    """The real Claude Code run of the fixtures, assembled: signals from text and structure."""
    session, _ = stage_run("basic", bc_home)
    assemble_session(session, bc_home)
    (trace,) = TraceStorage(bc_home / "traces").load_traces()
    s = trace.reasoning_signals
    assert s.workflow_type == "parallel"  # Grep + Bash in one message
    assert s.exploration_depth == "moderate" and s.reasoning_steps == 6
    assert s.used_terminal and s.multi_step_reasoning
    # "That file does not exist (the notes are in notes.txt). Making the edit now."
    assert any("does not exist" in c for c in s.self_corrections)
    assert [c.value for c in s.categories] == ["multi_tool_workflows"]
    assert trace.categories == s.categories


def test_output_is_bounded() -> None:
    cue = "We can't change the public API. " * 5000
    t = ClaudeTrace(
        trace_id="big",
        user_prompt="x" * 100_000,
        tool_calls=[
            ToolCall(tool="Bash", args={"command": "ls"}, reasoning=cue, thinking=cue, output=cue)
        ]
        * 200,
        claude_response=cue,
    )
    start = time.perf_counter()
    s = extract_signals(t)
    elapsed = time.perf_counter() - start
    assert s.exploration_depth == "exhaustive" and len(s.tool_sequence) == 200
    assert len(s.constraints_detected) == 1  # the same sentence, kept once
    for items in (s.constraints_detected, s.reasoning_chain, s.self_corrections):
        assert len(items) <= 100 and all(len(i) <= 300 for i in items)
    # a generous sanity bound, not a speed goal (that is benchmarks/bench_signals.py)
    assert elapsed < 10


# --- property tests ----------------------------------------------------------------------

texts = st.one_of(
    st.text(max_size=300),
    st.sampled_from(["", " ", "\n\n", "```", "1. a\n2. b", "Actually, wait.", "x" * 20_000]),
    st.lists(
        st.sampled_from(["must not", "but", "First,", "then", ".", "\n", "`"]), max_size=60
    ).map(" ".join),
)
calls = st.builds(
    ToolCall,
    tool=st.sampled_from(["Bash", "Read", "Edit", "Grep", "Agent", "mcp__pg__query", ""]),
    args=st.one_of(
        st.just({}),
        st.dictionaries(st.sampled_from(["command", "file_path", "x"]), texts, max_size=2),
    ),
    output=texts,
    reasoning=texts,
    thinking=texts,
    success=st.booleans(),
    error=st.one_of(st.none(), texts),
    batch=st.one_of(st.none(), st.integers(0, 5)),
    agent_id=st.one_of(st.none(), st.just("a1")),
)
traces = st.builds(
    ClaudeTrace,
    trace_id=st.just("t"),
    user_prompt=texts,
    tool_calls=st.lists(calls, max_size=15),
    claude_response=texts,
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(traces)
def test_any_trace_extracts(trace: ClaudeTrace) -> None:
    s = ReasoningSignalExtractor().extract(trace)
    main = [c for c in trace.tool_calls if not c.agent_id]
    assert s.tool_sequence == [c.tool for c in main]
    assert s.exploration_depth == sig.depth_of(len(trace.tool_calls))
    assert len(set(s.categories)) == len(s.categories)
    # what it extracted round-trips through the store's JSON
    assert type(s).model_validate(s.to_dict()) == s


def test_empty_and_huge_traces_extract() -> None:
    assert extract_signals(ClaudeTrace(trace_id="e", user_prompt="")).reasoning_steps == 0
    huge = ClaudeTrace(
        trace_id="h",
        user_prompt="p",
        tool_calls=[ToolCall(tool="Read", reasoning="a. " * 400_000, output="o" * 5_000_000)],
        claude_response="word " * 1_000_000,
    )
    s = extract_signals(huge)
    assert s.reasoning_steps == 2 and len(s.reasoning_chain) <= 100
