"""bc-capture: read-back commands, and one clean error line for bad input."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from claude_bc.capture.capturer import ClaudeCapturer, quick_capture
from claude_bc.capture.store import TraceStorage
from claude_bc.capture.worker import assemble_session
from tests.conftest import REPO, stage_run
from tests.conftest import run_bc as run

BC = REPO / ".venv" / "bin" / "bc-capture"


@pytest.fixture
def populated(bc_home: Path) -> Path:
    session, _ = stage_run("basic", bc_home)
    assemble_session(session, bc_home)
    return bc_home


def test_export_count_list_show(populated: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "export")
    (rec,) = [json.loads(line) for line in out.splitlines()]
    assert code == 0 and rec["user_prompt"].startswith("Look at src/app.py")
    assert run(capsys, "count")[1].strip() == "1"
    code, out, _ = run(capsys, "list")
    assert rec["trace_id"][:8] in out and "5 tools" in out
    code, out, _ = run(capsys, "show", rec["trace_id"][:6])
    assert code == 0
    assert "[reasoning] I'll start by reading the entry point." in out
    assert "4. Bash" in out and "FAILED" in out and "CLAUDE: Done." in out
    code, out, _ = run(capsys, "show", rec["trace_id"], "--json")
    assert json.loads(out) == rec


def test_export_to_file_is_private(
    populated: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "out.jsonl"
    assert run(capsys, "export", "-o", str(target))[0] == 0
    assert target.stat().st_mode & 0o777 == 0o600 and len(target.read_text().splitlines()) == 1


def test_torn_store_still_exports_with_a_warning(
    populated: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with (populated / "traces" / "traces.jsonl").open("a") as fh:
        fh.write('{"trace_id": "torn')
    code, out, err = run(capsys, "export")
    assert code == 0 and len(out.splitlines()) == 1
    assert "torn last line" in err


def test_unknown_id_is_one_error_line(populated: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "show", "zzzz")
    assert code == 1 and out == ""
    assert err == "bc-capture: error: no trace with id 'zzzz'\n"


def test_invalid_settings_is_one_error_line_and_untouched(tmp_path: Path, bc_home: Path) -> None:
    settings = tmp_path / "proj" / ".claude" / "settings.json"
    settings.parent.mkdir(parents=True)
    settings.write_text('{"hooks": {oops')
    proc = subprocess.run(
        [str(BC), "install", "--project-dir", str(tmp_path / "proj")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 1 and proc.stdout == ""
    assert len(proc.stderr.splitlines()) == 1 and "settings.json" in proc.stderr
    assert settings.read_text() == '{"hooks": {oops'


def test_status_shows_errors_and_pending(
    bc_home: Path, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    stage_run("basic", bc_home)  # spooled, not assembled yet
    (bc_home / "errors.log").write_text("2026-11-30T10:00:00Z\thook\ts1\tValueError: empty stdin\n")
    code, out, _ = run(capsys, "status", "--project-dir", str(tmp_path))
    assert code == 0
    assert "pending spools: 1" in out and "traces: 0" in out
    assert "hook s1: ValueError: empty stdin" in out
    assert "redaction and signal prefilter: Hyperscan 0.9.1" in out
    code, out, _ = run(capsys, "assemble")
    assert "assembled 1 sessions, 1 traces written" in out
    assert "pending spools: 0" in run(capsys, "status", "--project-dir", str(tmp_path))[1]


def test_library_api_uses_the_same_store(tmp_path: Path) -> None:
    store = TraceStorage(tmp_path)
    capturer = ClaudeCapturer(store)
    capturer.start_trace("What's the difference between transformer 1 and 2?")
    capturer.add_tool_call(
        "Read", {"file_path": "schema.py"}, "tables", reasoning="Read the schema"
    )
    capturer.add_tool_call("Bash", {"command": "psql -c 'select 1'"}, "1")
    trace = capturer.finish_trace("They differ in rating.")
    capturer.save(trace)
    quick_capture("q", "a", [("Grep", {"pattern": "x"}, "hit")], storage=store)
    assert capturer.get_trace_count() == 2
    first = store.get(trace.trace_id)
    assert first.sources == ["manual"] and first.reasoning_signals.tool_sequence == ["Read", "Bash"]
    assert first.reasoning_signals.used_terminal
