"""Claude Code features, recorded from the real CLI (tests/fixtures/claude-code, both pinned
versions), through every capture path: the hooks alone, the transcript alone
(``bc-capture import``), and both merged (the hook worker), then an import over what the
worker stored. Each trace is checked field by field against what the scenario did.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from claude_bc.capture.backfill import import_files
from claude_bc.capture.schema import ClaudeTrace
from claude_bc.capture.spool import read_spool, turns_from_hooks
from claude_bc.capture.store import TraceStorage
from claude_bc.capture.turns import assemble
from claude_bc.capture.worker import assemble_session
from tests.conftest import FIXTURES, run_bc, stage_run

VERSIONS = ["", "v2.1.197/"]
LATER = time.time() + 10_000


def hooks_only(run: str, home: Path) -> list[ClaudeTrace]:
    session, _ = stage_run(run, home)
    return assemble(turns_from_hooks(read_spool(home / "spool" / f"{session}.jsonl").events))


def merged(run: str, home: Path) -> list[ClaudeTrace]:
    """The hook worker's traces (hooks + transcript), then ``import`` of the same session:
    what is stored at the end."""
    session, transcript = stage_run(run, home)
    assemble_session(session, home)
    import_files([transcript], TraceStorage(home / "traces"), home / "state", idle=0.0)
    return TraceStorage(home / "traces").load_traces()


def imported(run: str, home: Path) -> list[ClaudeTrace]:
    src = FIXTURES / run
    projects = home / "projects" / "-home-user-project"
    projects.mkdir(parents=True)
    session = json.loads((src / "hook-events.jsonl").read_text().splitlines()[0])["payload"][
        "session_id"
    ]
    shutil.copy(src / "transcript.jsonl", projects / f"{session}.jsonl")
    if (src / "subagents").is_dir():
        shutil.copytree(src / "subagents", projects / session / "subagents")
    store = TraceStorage(home / "traces")
    summary = import_files([projects / f"{session}.jsonl"], store, home / "state", idle=0.0)
    assert not summary.problems
    return store.load_traces()


PATHS = {"hooks": hooks_only, "transcript": imported, "merged": merged}


def traces_of(path: str, run: str, home: Path) -> list[ClaudeTrace]:
    traces = PATHS[path](run, home)
    ids = [c.tool_use_id for t in traces for c in t.tool_calls]
    assert len(ids) == len(set(ids)), "a call stored in two traces"
    return sorted(traces, key=lambda t: t.started_at.timestamp() if t.started_at else 0)


def calls(trace: ClaudeTrace) -> dict[str, Any]:
    return {c.tool_use_id: c for c in trace.tool_calls}


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("path", PATHS)
def test_slash_command_is_a_turn_with_its_expansion(
    version: str, path: str, tmp_path: Path
) -> None:
    (trace,) = traces_of(path, f"{version}slash-command", tmp_path)
    assert trace.user_prompt == "/review src/app.py"
    assert list(calls(trace)) == ["toolu_01SlashRead000000000001"]
    assert trace.tool_calls[0].success and trace.tool_calls[0].outcome == "success"
    assert trace.claude_response.startswith("No bugs found in src/app.py")
    if path != "hooks":  # the hooks never see what the command expanded to
        assert trace.command == "/review"
        assert trace.prompt_expansion is not None
        assert trace.prompt_expansion.startswith("Review src/app.py for bugs")
        assert "/review command asks me" in trace.tool_calls[0].thinking


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("path", PATHS)
def test_slash_command_as_second_prompt_keeps_its_own_calls(
    version: str, path: str, tmp_path: Path
) -> None:
    first, second = traces_of(path, f"{version}slash-command-second", tmp_path)
    assert not first.user_prompt.startswith("/")
    assert second.user_prompt == "/review src/util.py"
    assert first.tool_calls and second.tool_calls
    assert {c.tool_use_id for c in first.tool_calls}.isdisjoint(calls(second))
    if path != "hooks":
        assert second.command == "/review" and second.prompt_expansion


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("path", PATHS)
def test_background_task_notification_continues_the_turn(
    version: str, path: str, tmp_path: Path
) -> None:
    (trace,) = traces_of(path, f"{version}background-task", tmp_path)
    assert trace.user_prompt.startswith("Start a background job")
    assert list(calls(trace)) == ["toolu_01BgBash000000000000001", "toolu_01BgRead000000000000002"]
    assert trace.claude_response == "The background job printed done; notes.txt lists two notes."
    (event,) = [e for e in trace.events if e.kind == "task_notification"]
    assert event.text.lstrip().startswith("<task-notification>")
    if path != "hooks":
        assert event.tool_use_id == "toolu_01BgBash000000000000001"
    assert trace.complete


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("path", PATHS)
def test_permission_denial_is_recorded_as_denied(version: str, path: str, tmp_path: Path) -> None:
    (trace,) = traces_of(path, f"{version}permission-denied", tmp_path)
    by_id = calls(trace)
    denied = by_id["toolu_01DenyBashRm00000000001"]
    assert (denied.success, denied.outcome, denied.is_interrupt) == (False, "denied", False)
    assert denied.error and "has been denied" in denied.error
    read = by_id["toolu_01DenyRead0000000000002"]
    assert (read.success, read.outcome) == (True, "success")


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("path", PATHS)
def test_sigint_mid_call_is_an_interrupt(version: str, path: str, tmp_path: Path) -> None:
    (trace,) = traces_of(path, f"{version}interrupt-sigint", tmp_path)
    (call,) = trace.tool_calls
    if path == "hooks":  # no Post hook ran: nothing says what became of the call
        assert (call.success, call.outcome) == (False, "unknown")
    else:
        assert (call.success, call.outcome, call.is_interrupt) == (False, "interrupted", True)
        assert trace.interrupted
    assert not trace.complete


@pytest.mark.parametrize("version", VERSIONS)
def test_sigterm_mid_call_is_never_a_success(version: str, tmp_path: Path) -> None:
    (trace,) = traces_of("merged", f"{version}interrupt-sigterm", tmp_path)
    (call,) = trace.tool_calls
    assert not call.success
    # 2.1.332 writes the killed command's exit code; 2.1.197 writes no result at all
    assert call.outcome == ("unknown" if version else "error")


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("path", PATHS)
def test_thinking_before_the_answer_is_kept(version: str, path: str, tmp_path: Path) -> None:
    (trace,) = traces_of(path, f"{version}thinking-final", tmp_path)
    assert trace.claude_response == "It prints `Hello, world!`."
    if path != "hooks":  # hooks never carry thinking
        assert trace.final_thinking == 'main() prints greet("world"), which is "Hello, world!".'
        assert trace.tool_calls[0].thinking == "I need to read src/app.py."


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("run", ["parallel-subagents", "parallel-subagents-background"])
def test_parallel_subagents_are_linked_to_their_agent_calls(
    version: str, path: str, run: str, tmp_path: Path
) -> None:
    traces = traces_of(path, f"{version}{run}", tmp_path)
    # (in the background, each subagent's notification re-invokes the model: one turn)
    (trace,) = traces
    agents = [c for c in trace.tool_calls if c.tool == "Agent"]
    subs = [c for c in trace.tool_calls if c.agent_id]
    assert len(agents) == 2 and len(subs) == 2
    assert {c.parent_tool_use_id for c in subs} == {a.tool_use_id for a in agents}
    by_parent = {c.parent_tool_use_id: c.args["file_path"] for c in subs}
    assert by_parent["toolu_01AgentA000000000000001"].endswith("src/app.py")
    assert by_parent["toolu_01AgentB000000000000002"].endswith("src/util.py")
    assert all(c.outcome == "success" for c in trace.tool_calls)


def _record(rec: dict[str, Any], pid: int) -> str:
    """A spool record as the hook writes it: its own fields, then the payload."""
    return json.dumps({"v": 1, "t": rec["t"], "pid": pid, "p": rec["p"]})


def _dead_pid() -> int:
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


@pytest.mark.parametrize("version", VERSIONS)
def test_sigkilled_session_is_recovered_by_assemble(
    version: str, bc_home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """No Stop, no SessionEnd: ``bc-capture assemble`` finds the session's process gone,
    stores the turn with its unfinished call as unknown, clears the spool and says so."""
    session, _ = stage_run(f"{version}interrupt-sigkill", bc_home)
    spool = bc_home / "spool" / f"{session}.jsonl"
    pid = _dead_pid()
    lines = [json.loads(x) for x in spool.read_text().splitlines()]
    spool.write_text("".join(_record(rec, pid) + "\n" for rec in lines))
    old = time.time() - 3600
    os.utime(spool, (old, old))
    code, out, err = run_bc(capsys, "assemble")
    assert code == 0, err
    assert "recovered 1 sessions" in out
    assert not spool.exists()
    (trace,) = TraceStorage(bc_home / "traces").load_traces()
    (call,) = trace.tool_calls
    assert (call.success, call.outcome) == (False, "unknown")
    assert not trace.complete
    _, status, _ = run_bc(capsys, "status")
    assert "recovered sessions: 1" in status and "1 calls with no result" in status


def test_a_live_session_is_not_recovered(bc_home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    session, _ = stage_run("interrupt-sigkill", bc_home)
    spool = bc_home / "spool" / f"{session}.jsonl"
    lines = [json.loads(x) for x in spool.read_text().splitlines()]
    # this test's own process stands in for a Claude Code still running (started before
    # the session's first hook, as a real one is)
    for rec in lines:
        rec["t"] = time.time()
    spool.write_text("".join(_record(rec, os.getpid()) + "\n" for rec in lines))
    old = time.time() - 3600
    os.utime(spool, (old, old))
    _, out, _ = run_bc(capsys, "assemble")
    assert "recovered" not in out
    assert spool.exists()


def test_pid_reused_by_a_newer_process_counts_as_gone(
    bc_home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    session, _ = stage_run("interrupt-sigkill", bc_home)
    spool = bc_home / "spool" / f"{session}.jsonl"
    lines = [json.loads(x) for x in spool.read_text().splitlines()]
    # the session's hooks ran long before this process started: its pid now names another
    for rec in lines:
        rec["t"] = time.time() - 7 * 24 * 3600
    spool.write_text("".join(_record(rec, os.getpid()) + "\n" for rec in lines))
    old = time.time() - 3600
    os.utime(spool, (old, old))
    _, out, _ = run_bc(capsys, "assemble")
    assert "recovered 1 sessions" in out
    assert not spool.exists()


def test_show_and_viewer_say_what_became_of_each_call(tmp_path: Path) -> None:
    from claude_bc.capture.cli import _render
    from claude_bc.capture.viewer import render_trace

    (denied,) = traces_of("merged", "permission-denied", tmp_path / "a")
    (command,) = traces_of("merged", "slash-command", tmp_path / "b")
    (background,) = traces_of("merged", "background-task", tmp_path / "c")
    text = _render(denied)
    assert "-> DENIED: Permission to use Bash" in text
    html = render_trace(denied)
    assert '<span class="status failed">denied</span>' in html
    assert "/review expanded to" in render_trace(command)
    assert "[/review expanded to] Review src/app.py for bugs" in _render(command)
    assert "task notification" in render_trace(background)
