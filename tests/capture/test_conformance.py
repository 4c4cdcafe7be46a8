"""Conformance on real sessions recorded by other people (tests/fixtures/real).

The expected numbers come from ``tests/fixtures/real/count.py``, a counter that imports
nothing of ours and reads the raw lines by its own written rules; ``expected.json`` is its
output (``count.py --check`` is run here too, so the two cannot drift apart). Each
session is imported the way a user imports it (``bc-capture import``'s code path, every
file idle) and the traces must hold every turn, call, failure, interrupt, thinking block
and subagent call the counter found, with every subagent call linked to its parent.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from claude_bc.capture.backfill import import_files, session_files
from claude_bc.capture.schema import ClaudeTrace
from claude_bc.capture.store import TraceStorage
from tests.conftest import REPO

REAL = REPO / "tests" / "fixtures" / "real"
EXPECTED: dict[str, dict[str, Any]] = json.loads((REAL / "expected.json").read_text())
LATER = time.time() + 10_000  # every file idle: each session is read to its end


def test_the_counter_agrees_with_its_expected_file() -> None:
    proc = subprocess.run(
        [sys.executable, str(REAL / "count.py"), "--check"], capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr


def _import(rel: str, tmp: Path) -> list[ClaudeTrace]:
    """Import one real session (with its subagent files) from a projects folder copy."""
    src = REAL / rel
    projects = tmp / "projects"
    dest = projects / src.parent.name
    dest.mkdir(parents=True)
    shutil.copy(src, dest / src.name)
    for sibling in src.parent.glob("agent-*.jsonl"):  # 2.0.x flat subagent files
        shutil.copy(sibling, dest / sibling.name)
    if src.with_suffix("").is_dir():
        shutil.copytree(src.with_suffix(""), dest / src.stem)
    files = session_files(projects)
    assert [f.name for f in files] == [src.name]  # flat agent files are not sessions
    store = TraceStorage(tmp / "traces")
    summary = import_files(files, store, tmp / "state", idle=0.0)
    assert not summary.problems, summary.problems
    return store.load_traces()


def _thinking_texts(path: Path) -> set[str]:
    out = set()
    for raw in path.read_text().splitlines():
        line = json.loads(raw)
        if line.get("type") != "assistant" or line.get("isSidechain"):
            continue
        content = (line.get("message") or {}).get("content")
        for block in content if isinstance(content, list) else []:
            if block.get("type") == "thinking" and block.get("thinking", "").strip():
                out.add(block["thinking"].strip())
    return out


@pytest.mark.parametrize("rel", sorted(EXPECTED))
def test_real_session_is_captured_whole(rel: str, tmp_path: Path) -> None:
    want = EXPECTED[rel]
    traces = _import(rel, tmp_path)
    main = [c for t in traces for c in t.tool_calls if c.agent_id is None]
    subs = [c for t in traces for c in t.tool_calls if c.agent_id is not None]
    got = {
        "turns": len(traces),
        "slash_command_turns": sum(t.command is not None for t in traces),
        "calls": len({c.tool_use_id for c in main}),
        "failures": sum(not c.success and bool(c.output) for c in main),
        "interrupts": sum(c.is_interrupt and bool(c.output) for c in main)
        + sum(e.kind == "interrupt" for t in traces for e in t.events),
        "task_notifications": sum(e.kind == "task_notification" for t in traces for e in t.events),
        "subagent_calls": len({c.tool_use_id for c in subs}),
    }
    expected = {
        # a task notification goes on with its turn: it is an event, not a trace
        "turns": want["prompts"] + want["slash_command_turns"],
        **{k: want[k] for k in got if k != "turns"},
    }
    assert got == expected
    # every subagent call is tied to the Agent/Task call that started it
    main_ids = {c.tool_use_id for c in main}
    assert all(c.parent_tool_use_id in main_ids for c in subs)
    # every thinking block of the main agent is kept, before a call or before the answer
    kept = "\n".join([c.thinking for c in main] + [t.final_thinking for t in traces])
    thinking = _thinking_texts(REAL / rel)
    assert len(thinking) <= want["thinking"]  # (the counter tells blocks apart by message)
    assert [t for t in thinking if t not in kept] == []
    # no call without a result is called a success, and a prompt is never a notification
    assert all(c.outcome != "success" or c.output or c.tool_response for c in main)
    assert not [t for t in traces if t.user_prompt.lstrip().startswith("<task-notification>")]
    assert not [t for t in traces if "<command-name>" in t.user_prompt]
