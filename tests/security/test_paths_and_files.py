"""Attack 5: paths built from data, and files opened where someone else put a link or a
file of their own."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from claude_bc.capture import errlog, paths
from tests.conftest import REPO, VENV_PYTHON
from tests.conftest import run_bc as run

HOOK = REPO / "hooks" / "record.py"


def hook(payload: dict[str, object], home: Path, tmp: Path) -> subprocess.CompletedProcess[bytes]:
    env = {"PATH": os.environ["PATH"], "BC_HOME": str(home), "TMPDIR": str(tmp)}
    return subprocess.run(
        [str(VENV_PYTHON), "-I", "-S", str(HOOK)],
        input=json.dumps(payload).encode(),
        env={**env, "BC_NO_ASSEMBLE": "1"},
        capture_output=True,
        timeout=30,
        check=False,
    )


def test_assemble_with_a_climbing_session_id_touches_nothing(
    bc_home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    victim = bc_home.parent / "victim.lock"
    victim.write_text("keep")
    (bc_home / "state").mkdir(parents=True)
    code, out, err = run(capsys, "assemble", "../victim")
    assert code == 1 and out == ""
    assert err.startswith("bc-capture: error: not a valid session id: '../victim'")
    assert err.count("\n") == 1 and victim.read_text() == "keep"
    for bad in ("../../victim", "a/b", "-rf", "x" * 129, ""):
        assert run(capsys, "assemble", "--", bad)[0] == 1


def test_the_worker_refuses_an_unsafe_session_id(bc_home: Path) -> None:
    from claude_bc.capture.worker import main

    victim = bc_home.parent / "victim.lock"
    victim.write_text("keep")
    assert main(["../victim"]) == 1
    assert victim.read_text() == "keep"
    assert "not a valid session id" in paths.error_log().read_text()


def test_a_transcript_climbing_out_never_feeds_the_dataset(bc_home: Path, tmp_path: Path) -> None:
    from claude_bc.training.dataset import session_tool_schemas

    outside = tmp_path / "outside.json"
    outside.write_text(json.dumps({"tools": [{"name": "Leaked", "input_schema": {}}]}))
    (bc_home / "sessions").mkdir(parents=True)
    climbing = os.path.relpath(outside.with_suffix(""), bc_home / "sessions")
    assert session_tool_schemas(climbing) == []


def test_the_hook_never_follows_a_planted_symlink(tmp_path: Path) -> None:
    home = tmp_path / "home"
    (home / "spool").mkdir(parents=True)
    target = tmp_path / "passwd"
    target.write_text("root:x:0:0\n")
    sid = "4f1c2d3e-aaaa-bbbb-cccc-0123456789ab"
    (home / "spool" / f"{sid}.jsonl").symlink_to(target)
    proc = hook({"session_id": sid, "hook_event_name": "PreToolUse"}, home, tmp_path)
    assert proc.returncode == 0 and proc.stdout == b""
    assert target.read_text() == "root:x:0:0\n"  # not appended to
    assert sid in (home / "errors.log").read_text()  # the refusal is logged


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to hand a file to another user")
def test_the_fallback_log_is_never_someone_elses_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The data folder cannot be written, so the hook falls back to $TMPDIR: a log file
    planted there by another user is not appended to (it would get stdin's first bytes)."""
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    planted = tmp_path / f"claude-bc-{os.getuid()}-errors.log"
    planted.write_text("")
    os.chown(planted, 65534, 65534)
    planted.chmod(0o666)
    os.chmod(tmp_path, 0o1777)
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    proc = hook(
        {"session_id": "s1", "hook_event_name": "Stop", "x": "secret"}, blocker / "h", tmp_path
    )
    assert proc.returncode == 0 and planted.read_text() == ""
    # the Python side (proxy, worker, CLI) refuses it too
    errlog.log_error("test", "s1", "boom", home=blocker / "h")
    assert planted.read_text() == ""
    assert errlog.recent_errors(home=blocker / "h") == []  # and never reads it as ours


def test_the_fallback_log_never_follows_a_link(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    target = tmp_path / "elsewhere"
    target.write_text("")
    (tmp_path / f"claude-bc-{os.getuid()}-errors.log").symlink_to(target)
    proc = hook({"session_id": "s1", "hook_event_name": "Stop"}, blocker / "h", tmp_path)
    assert proc.returncode == 0 and target.read_text() == ""


def test_the_proxys_spool_names_are_safe() -> None:
    from claude_bc.proxy.addon import session_of

    assert session_of([("x-claude-code-session-id", "../../x")], b"") == "unknown"
    body = b'{"metadata":{"user_id":"{\\"session_id\\":\\"../../etc\\"}"}}'
    assert session_of([], body) == "unknown"
    assert session_of([("x-claude-code-session-id", "-rf")], b"") == "unknown"
