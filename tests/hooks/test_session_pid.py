"""The hook records Claude Code's pid, so a session that died without SessionEnd is found."""

from __future__ import annotations

from pathlib import Path

from capture.worker import process_gone
from tests.hooks.test_record import payload, run_hook, spool_records


def test_claude_pid_is_recorded_before_the_payload(tmp_path: Path) -> None:
    home = tmp_path / "home"
    run_hook(payload(), home, tmp_path, CLAUDE_PID="4242")
    run_hook(payload(), home, tmp_path, CLAUDE_PID="not-a-pid")
    run_hook(payload(), home, tmp_path)
    first, bad, absent = spool_records(home)
    assert first["pid"] == 4242 and "pid" not in bad and "pid" not in absent
    assert list(first) == ["v", "t", "pid", "p"]


def test_a_spool_whose_claude_runs_is_not_gone(tmp_path: Path) -> None:
    import os

    home = tmp_path / "home"
    # this test's parent (pytest) started before the hook ran: a live Claude Code
    run_hook(payload(), home, tmp_path, CLAUDE_PID=str(os.getpid()))
    (spool,) = (home / "spool").glob("*.jsonl")
    assert not process_gone(spool)
    run_hook(payload(prompt="pid 1 in the payload"), home, tmp_path, CLAUDE_PID="999999")
    assert process_gone(spool)  # the last record's pid: no such process
