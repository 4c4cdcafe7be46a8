"""Offline rollouts: the replay environment and whole episodes against a captured trace."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from claude_bc.capture.schema import ClaudeTrace, ToolCall
from claude_bc.capture.store import TraceStorage
from claude_bc.capture.worker import assemble_session
from claude_bc.training.replay import NOT_AVAILABLE, ReplayEnv, rollout
from claude_bc.training.reward import reward
from claude_bc.training.template import PYTHON_TAG, render_call
from tests.conftest import stage_run


def recorded() -> ClaudeTrace:
    return ClaudeTrace(
        trace_id="ref",
        user_prompt="fix the failing test",
        cwd="/repo",
        tool_calls=[
            ToolCall(
                tool="Bash",
                args={"command": "pytest -q", "description": "run tests"},
                output="1 failed",
                success=False,
                error="1 failed",
                batch=1,
            ),
            ToolCall(
                tool="Read", args={"file_path": "/repo/src/app.py"}, output="def f(): ...", batch=2
            ),
            ToolCall(tool="Bash", args={"command": "pytest -q"}, output="3 passed", batch=3),
        ],
        claude_response="Fixed.",
    )


def test_matching_calls_get_the_recorded_output() -> None:
    env = ReplayEnv(recorded())
    # relative path, key order, None values: the same call
    read = env.step("Read", {"limit": None, "file_path": "src/app.py"})
    assert read.matched and read.success and read.output == "def f(): ..."
    # identical recorded calls replay in the order Claude made them, then the last repeats
    runs = [env.step("Bash", {"command": "pytest  -q"}) for _ in range(3)]
    assert [r.output for r in runs] == ["1 failed", "3 passed", "3 passed"]
    assert [r.success for r in runs] == [False, True, True]


def test_other_calls_are_explicitly_not_available() -> None:
    env = ReplayEnv(recorded())
    for tool, args in [
        ("Read", {"file_path": "/repo/src/other.py"}),
        ("Write", {"file_path": "x"}),
        ("Bash", {"command": "pytest"}),
    ]:
        result = env.step(tool, args)
        assert not result.matched and not result.success and NOT_AVAILABLE in result.output
    assert env.misses == 3 and env.steps == 3


def scripted(turns: list[str]) -> Any:
    """A policy that says the given turns in order, recording what it was shown."""
    seen: list[list[dict[str, Any]]] = []
    it: Iterator[str] = iter(turns)

    def generate(messages: list[dict[str, Any]]) -> str:
        seen.append(list(messages))
        return next(it)

    generate.seen = seen  # type: ignore[attr-defined]
    return generate


def claude_turns(trace: ClaudeTrace) -> list[str]:
    """Claude's own workflow, one assistant turn per batch, as model output text."""
    turns: dict[int | None, list[ToolCall]] = {}
    for call in trace.tool_calls:
        if not call.agent_id:
            turns.setdefault(call.batch, []).append(call)
    out = []
    for calls in turns.values():
        body = "\n".join(render_call(c.tool, c.args) for c in calls)
        out.append(f"{calls[0].reasoning}{PYTHON_TAG}{body}")
    return [*out, trace.claude_response]


def test_replaying_claudes_own_workflow_scores_one() -> None:
    ref = recorded()
    generate = scripted(claude_turns(ref))
    episode = rollout(ref, [{"role": "user", "content": ref.user_prompt}], generate)
    assert episode.trace is not None and episode.misses == 0 and not episode.truncated
    # the policy saw each recorded output as a tool message before its next turn
    tool_msgs = [m["content"] for m in generate.seen[-1] if m["role"] == "tool"]
    assert tool_msgs == ["1 failed", "def f(): ...", "3 passed"]
    assert [c.success for c in episode.trace.tool_calls] == [False, True, True]
    assert reward(episode.trace, ref).total == 1.0


def test_a_diverging_episode_scores_lower_and_malformed_stops() -> None:
    ref = recorded()
    wander = scripted([f"Hmm.{PYTHON_TAG}" + render_call("Glob", {"pattern": "**"})] * 3)
    episode = rollout(ref, [{"role": "user", "content": "x"}], wander, max_steps=3)
    assert episode.truncated and episode.misses == 3 and episode.trace is not None
    assert reward(episode.trace, ref).total < 0
    broken = rollout(ref, [], scripted([f"x{PYTHON_TAG}{{"]))
    assert broken.trace is None and len(broken.completions) == 1


def test_a_real_captured_session_replays(bc_home: Path) -> None:
    session, _ = stage_run("basic", bc_home)
    assemble_session(session, bc_home)
    (trace,) = TraceStorage(bc_home / "traces").load_traces()
    episode = rollout(
        trace, [{"role": "user", "content": trace.user_prompt}], scripted(claude_turns(trace))
    )
    assert episode.trace is not None and episode.misses == 0
    assert [c.output for c in episode.trace.tool_calls] == [c.output for c in trace.tool_calls]
    assert reward(episode.trace, trace).total == 1.0
