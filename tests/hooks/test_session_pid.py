"""The hook records Claude Code's pid, so a session that died without SessionEnd is found."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from claude_bc.capture.worker import process_gone
from tests.hooks.test_record import HOOK, PYTHON, payload, run_hook, spool_records


def test_claude_pid_is_recorded_before_the_payload(tmp_path: Path) -> None:
    home = tmp_path / "home"
    run_hook(payload(), home, tmp_path, CLAUDE_PID="4242")
    run_hook(payload(), home, tmp_path, CLAUDE_PID="not-a-pid")
    assert [r["pid"] for r in spool_records(home)] == [4242, os.getpid()]  # else the parent
    assert list(spool_records(home)[0]) == ["v", "t", "pid", "p"]


def test_without_claude_pid_the_shell_is_skipped(tmp_path: Path) -> None:
    """Claude Code before $CLAUDE_PID runs the hook command with ``sh -c``: the pid
    recorded is the shell's parent, the process that outlives every hook."""
    home = tmp_path / "home"
    env = {"PATH": os.environ["PATH"], "BC_HOME": str(home), "BC_NO_ASSEMBLE": "1"}
    command = f"'{PYTHON}' -I -S '{HOOK}'; true"  # (a trailing command: sh cannot exec)
    subprocess.run(["sh", "-c", command], input=payload(), env=env, check=True, timeout=30)
    (rec,) = spool_records(home)
    assert rec["pid"] == os.getpid()


def test_a_spool_whose_claude_runs_is_not_gone(tmp_path: Path) -> None:
    home = tmp_path / "home"
    # this test's parent (pytest) started before the hook ran: a live Claude Code
    run_hook(payload(), home, tmp_path, CLAUDE_PID=str(os.getpid()))
    (spool,) = (home / "spool").glob("*.jsonl")
    assert not process_gone(spool)
    run_hook(payload(prompt="pid 1 in the payload"), home, tmp_path, CLAUDE_PID="999999")
    assert process_gone(spool)  # the last record's pid: no such process
