"""No line stops an import: random JSON values and bytes in every field the readers touch.

A transcript line or a hook payload of any shape is either read or reported with its
``file:line``; the turns around it are imported all the same.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from claude_bc.capture.backfill import import_files
from claude_bc.capture.spool import HookEvent, turns_from_hooks
from claude_bc.capture.store import TraceStorage
from claude_bc.capture.transcript import TurnBuilder
from claude_bc.capture.turns import assemble

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=30),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
TYPES = st.sampled_from(["user", "assistant", "progress", "cost-state", "system", "summary"])
# the fields the transcript reader looks at, at the line and the block level
LINE_KEYS = [
    "type", "message", "isMeta", "isSidechain", "isCompactSummary", "uuid", "parentUuid",
    "agentId", "data", "parentToolUseID", "promptId", "sessionId", "timestamp",
    "toolUseResult", "origin", "cwd", "gitBranch", "version", "permissionMode",
]  # fmt: skip
BLOCK = st.fixed_dictionaries(
    {},
    optional={
        "type": st.sampled_from(["text", "thinking", "tool_use", "tool_result"]) | json_values,
        "text": json_values | st.just("<task-notification>x") | st.just("<command-name>/x"),
        "thinking": json_values,
        "id": json_values | st.just("toolu_1"),
        "name": json_values,
        "input": json_values,
        "tool_use_id": json_values | st.just("toolu_1"),
        "content": json_values,
        "is_error": json_values,
    },
)
MESSAGE = json_values | st.fixed_dictionaries(
    {},
    optional={
        "content": json_values | st.text(max_size=40) | st.lists(BLOCK | json_values, max_size=4),
        "id": json_values,
        "model": json_values,
        "stop_reason": json_values | st.just("end_turn"),
    },
)
LINE = st.fixed_dictionaries(
    {"type": TYPES | json_values},
    optional={
        **{k: json_values for k in LINE_KEYS if k not in ("type", "message", "data")},
        "message": MESSAGE,
        "data": json_values
        | st.fixed_dictionaries({"type": st.just("agent_progress"), "message": json_values}),
    },
)
ANY_LINE = (
    LINE.map(lambda d: json.dumps(d).encode())
    | json_values.map(lambda v: json.dumps(v).encode())
    | st.binary(max_size=60).map(lambda b: b.replace(b"\n", b" "))
)


def good_turn(session: str, prompt: str) -> bytes:
    lines: list[dict[str, Any]] = [
        {"type": "user", "sessionId": session, "timestamp": "2026-01-01T00:00:00Z",
         "message": {"role": "user", "content": prompt}},
        {"type": "assistant", "sessionId": session,
         "message": {"id": "m1", "content": [{"type": "text", "text": "done"}],
                     "stop_reason": "end_turn"}},
    ]  # fmt: skip
    return b"".join(json.dumps(x).encode() + b"\n" for x in lines)


@pytest.mark.slow
@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(junk=st.lists(ANY_LINE, min_size=1, max_size=8))
def test_random_lines_never_stop_an_import(tmp_path: Path, junk: list[bytes]) -> None:
    run = tmp_path / str(time.monotonic_ns())
    path = run / "projects" / "-p" / "s1.jsonl"
    path.parent.mkdir(parents=True)
    path.write_bytes(good_turn("s1", "first prompt") + b"\n".join(junk) + b"\n"
                     + good_turn("s1", "last prompt"))  # fmt: skip
    store = TraceStorage(run / "traces")
    summary = import_files([path], store, run / "state", idle=0.0)
    prompts = [t.user_prompt for t in store.load_traces()]
    # the turn before the junk is whole; the one after it is there unless a junk line
    # started a turn of its own in between (then both are)
    assert "first prompt" in prompts and "last prompt" in prompts
    for p in summary.problems:
        assert p.path == path.resolve() and p.line >= 3


@pytest.mark.slow
@settings(max_examples=150, deadline=None)
@given(lines=st.lists(LINE, max_size=12))
def test_builder_takes_any_line(lines: list[dict[str, Any]]) -> None:
    builder = TurnBuilder()
    problems: list[Any] = []
    for n, line in enumerate(lines, 1):
        builder.feed(line, problems, f"t.jsonl:{n}")
    builder.close()
    sub = TurnBuilder(agent="a1")  # a subagent file's reader too
    for line in lines:
        sub.feed(line)
    sub.close()


HOOK = st.fixed_dictionaries(
    {"hook_event_name": st.sampled_from(
        ["UserPromptSubmit", "PreToolUse", "PostToolUse", "PostToolUseFailure",
         "PostToolBatch", "Stop", "SubagentStart", "MessageDisplay", "PermissionDenied",
         "SessionStart"]) | json_values},
    optional={
        "prompt_id": st.just("p1") | json_values,
        "prompt": st.just("<task-notification>x") | json_values,
        "tool_use_id": st.just("toolu_1") | json_values,
        "tool_name": json_values, "tool_input": json_values, "tool_response": json_values,
        "tool_calls": st.lists(st.fixed_dictionaries(
            {"tool_use_id": st.just("toolu_1") | json_values},
            optional={"tool_response": json_values, "tool_name": json_values}), max_size=3)
        | json_values,
        "agent_id": json_values, "message_id": json_values, "index": json_values,
        "delta": json_values, "error": json_values, "is_interrupt": json_values,
        "last_assistant_message": json_values, "duration_ms": json_values, "model": json_values,
    },
)  # fmt: skip


@pytest.mark.slow
@settings(max_examples=200, deadline=None)
@given(payloads=st.lists(HOOK, max_size=10))
def test_hook_payloads_of_any_shape_assemble(payloads: list[dict[str, Any]]) -> None:
    first = {"hook_event_name": "UserPromptSubmit", "prompt_id": "p1", "prompt": "hello"}
    events = [HookEvent(float(i), p) for i, p in enumerate([first, *payloads])]
    traces = assemble(turns_from_hooks(events))
    assert any(t.user_prompt == "hello" for t in traces)
