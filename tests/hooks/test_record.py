"""The capture hook never disturbs Claude Code, and never loses or tears a record."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from claude_bc.hooks import spooler as record
from tests.conftest import FIXTURES, VENV_PYTHON

HOOK = Path(record.__file__).parent / "record.py"
PYTHON = str(VENV_PYTHON) if VENV_PYTHON.exists() else sys.executable


def run_hook(
    stdin: bytes | None, home: Path, tmp: Path, **env: str
) -> subprocess.CompletedProcess[bytes]:
    full = {
        "PATH": os.environ["PATH"],
        "BC_HOME": str(home),
        "TMPDIR": str(tmp),
        "BC_NO_ASSEMBLE": "1",
        **env,
    }
    return subprocess.run(
        [PYTHON, "-I", "-S", str(HOOK)],
        input=stdin,
        env=full,
        capture_output=True,
        timeout=30,
        check=False,
    )


def payload(**fields: object) -> bytes:
    base = {
        "session_id": "4f1c2d3e-aaaa-bbbb-cccc-0123456789ab",
        "transcript_path": "/x.jsonl",
        "cwd": "/p",
        "hook_event_name": "PreToolUse",
    }
    return json.dumps({**base, **fields}, separators=(",", ":")).encode()


def spool_records(home: Path) -> list[dict[str, object]]:
    out = []
    for f in sorted((home / "spool").glob("*.jsonl")):
        out += [json.loads(line) for line in f.read_text().splitlines()]
    return out


def error_lines(home: Path, tmp: Path) -> list[str]:
    lines = []
    for f in (home / "errors.log", tmp / f"claude-bc-{os.getuid()}-errors.log"):
        if f.exists():
            lines += f.read_text().splitlines()
    return lines


def test_every_recorded_payload_is_spooled_verbatim(tmp_path: Path) -> None:
    home = tmp_path / "home"
    events = [
        json.loads(x) for x in (FIXTURES / "basic" / "hook-events.jsonl").read_text().splitlines()
    ]
    for ev in events:
        raw = json.dumps(ev["payload"], separators=(",", ":")).encode()
        proc = run_hook(raw, home, tmp_path)
        assert proc.returncode == 0 and proc.stdout == b"" and proc.stderr == b""
    recs = spool_records(home)
    assert [r["p"] for r in recs] == [ev["payload"] for ev in events]
    assert all(isinstance(r["t"], float) and r["v"] == 1 for r in recs)
    spool = next((home / "spool").glob("*.jsonl"))
    assert spool.name == f"{events[0]['payload']['session_id']}.jsonl"
    assert spool.stat().st_mode & 0o777 == 0o600
    assert (home / "spool").stat().st_mode & 0o777 == 0o700
    assert home.stat().st_mode & 0o777 == 0o700
    assert not error_lines(home, tmp_path)


@pytest.mark.parametrize(
    ("stdin", "reason"),
    [
        (b"", "empty stdin"),
        (b"   \n", "empty stdin"),
        (b"not json at all", "not a JSON object"),
        (b"[1, 2, 3]", "not a JSON object"),
        (bytes(range(256)) * 40, "not a JSON object"),
        (b"{\xff\xfe binary}", "UnicodeDecodeError"),
        (b"{" + b"x" * (record.MAX_BYTES + 10) + b"}", "larger than"),
    ],
    ids=["empty", "blank", "text", "array", "binary", "bad-utf8", "huge"],
)
def test_bad_stdin_exits_zero_and_logs_one_line(stdin: bytes, reason: str, tmp_path: Path) -> None:
    home = tmp_path / "home"
    proc = run_hook(stdin, home, tmp_path)
    assert proc.returncode == 0 and proc.stdout == b"" and proc.stderr == b""
    errors = error_lines(home, tmp_path)
    assert len(errors) == 1 and reason in errors[0]
    assert not spool_records(home) if (home / "spool").exists() else True


def test_unknown_event_and_newlines_are_kept_on_one_line(tmp_path: Path) -> None:
    home = tmp_path / "home"
    raw = b'{\n "session_id": "s-1",\n "hook_event_name": "SomethingNew", "x": [1,\n2]}\n'
    assert run_hook(raw, home, tmp_path).returncode == 0
    (rec,) = spool_records(home)
    assert rec["p"] == {"session_id": "s-1", "hook_event_name": "SomethingNew", "x": [1, 2]}


def test_unsafe_session_id_never_escapes_the_spool(tmp_path: Path) -> None:
    home = tmp_path / "home"
    assert run_hook(payload(session_id="../../etc/evil"), home, tmp_path).returncode == 0
    assert [p.name for p in (home / "spool").iterdir()] == ["unknown.jsonl"]
    env_sid = run_hook(payload(session_id="../x"), home, tmp_path, CLAUDE_CODE_SESSION_ID="abc-123")
    assert env_sid.returncode == 0 and (home / "spool" / "abc-123.jsonl").exists()


def test_unwritable_data_folder_logs_to_the_fallback(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    home = blocker / "sub"  # a folder under a regular file cannot exist
    proc = run_hook(payload(), home, tmp_path)
    assert proc.returncode == 0 and proc.stdout == b""
    fallback = (tmp_path / f"claude-bc-{os.getuid()}-errors.log").read_text()
    assert "NotADirectoryError" in fallback


def test_full_disk_leaves_no_torn_record(tmp_path: Path) -> None:
    """A write that fails half way (here: the file size limit, as a full disk would) is
    cut back, so the spool never holds a torn line."""
    import resource

    home = tmp_path / "home"
    (home / "spool").mkdir(parents=True)
    sid = "4f1c2d3e-aaaa-bbbb-cccc-0123456789ab"
    spool = home / "spool" / f"{sid}.jsonl"
    spool.write_bytes(b'{"v":1,"t":1,"p":{}}\n' * 100)
    before = spool.read_bytes()
    limit = len(before) + 40  # the next record starts, then cannot be finished

    def small_files() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    env = {"PATH": os.environ["PATH"], "BC_HOME": str(home), "TMPDIR": str(tmp_path)}
    proc = subprocess.run(
        [PYTHON, "-I", "-S", str(HOOK)],
        input=payload(),
        env={**env, "BC_NO_ASSEMBLE": "1"},
        capture_output=True,
        timeout=30,
        check=False,
        preexec_fn=small_files,
    )
    assert proc.returncode == 0 and proc.stdout == b""
    assert spool.read_bytes() == before
    assert any("File too large" in line for line in error_lines(home, tmp_path))


@pytest.mark.slow
def test_stdin_held_open_ends_within_the_deadline(tmp_path: Path) -> None:
    home = tmp_path / "home"
    env = {"PATH": os.environ["PATH"], "BC_HOME": str(home), "TMPDIR": str(tmp_path)}
    proc = subprocess.Popen(
        [PYTHON, "-I", "-S", str(HOOK)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env
    )
    assert proc.stdin is not None
    proc.stdin.write(b'{"session_id": "s"')  # never closed
    proc.stdin.flush()
    t0 = time.monotonic()
    assert proc.wait(timeout=record.READ_DEADLINE_S + 10) == 0
    assert time.monotonic() - t0 < record.READ_DEADLINE_S + 5
    proc.stdin.close()
    assert any("TimeoutError" in line for line in error_lines(home, tmp_path))


def test_field_scanner_matches_json(tmp_path: Path) -> None:
    raw = payload(tool_input={"command": 'echo "hook_event_name": "Stop"'})
    assert record.field(raw, b"hook_event_name") == b"PreToolUse"
    assert record.field(b'{"session_id" : "abc"}', b"session_id") == b"abc"
    assert record.field(b'{"session_id": 5}', b"session_id") == b""
    assert record.field(b'{"a": 1}', b"session_id") == b""


CONCURRENT_DRIVER = """
import os, sys
sys.path.insert(0, sys.argv[1])
import spooler as record
writer, n = int(sys.argv[2]), int(sys.argv[3])
path = os.path.join(os.environ["BC_HOME"], "spool", "s.jsonl")
for i in range(n):
    # sizes up to 200 KB: far past PIPE_BUF, so only the lock keeps lines whole
    body = b"x" * ((writer * 7919 + i * 104729) % 200_000)
    rec = b'{"v":1,"t":0.0,"p":{"w":%d,"i":%d,"pad":"%s"}}\\n' % (writer, i, body)
    record.append(path, rec)
"""


@pytest.mark.slow
def test_64_writers_x_200_events_no_record_lost_or_torn(tmp_path: Path) -> None:
    home = tmp_path / "home"
    driver = tmp_path / "driver.py"
    driver.write_text(CONCURRENT_DRIVER)
    env = {**os.environ, "BC_HOME": str(home)}
    procs = [
        subprocess.Popen([PYTHON, str(driver), str(HOOK.parent), str(w), "200"], env=env)
        for w in range(64)
    ]
    assert all(p.wait(timeout=240) == 0 for p in procs)
    seen = set()
    with (home / "spool" / "s.jsonl").open("rb") as fh:
        for line in fh:
            rec = json.loads(line)  # a torn or interleaved line would fail here
            p = rec["p"]
            assert len(p["pad"]) == (p["w"] * 7919 + p["i"] * 104729) % 200_000
            seen.add((p["w"], p["i"]))
    assert seen == {(w, i) for w in range(64) for i in range(200)}


@pytest.mark.slow
def test_hook_processes_in_parallel_all_land(tmp_path: Path) -> None:
    """The real hook script, as many processes at once (parallel tool calls do this)."""
    home = tmp_path / "home"
    env = {
        "PATH": os.environ["PATH"],
        "BC_HOME": str(home),
        "TMPDIR": str(tmp_path),
        "BC_NO_ASSEMBLE": "1",
    }
    procs = []
    for i in range(64):
        p = subprocess.Popen(
            [PYTHON, "-I", "-S", str(HOOK)], stdin=subprocess.PIPE, env=env, stdout=subprocess.PIPE
        )
        procs.append((p, payload(tool_use_id=f"toolu_{i}", pad="y" * (i * 3000))))
    for p, raw in procs:
        out, _ = p.communicate(raw, timeout=60)
        assert p.returncode == 0 and out == b""
    ids = sorted(int(r["p"]["tool_use_id"][6:]) for r in spool_records(home))  # type: ignore[index]
    assert ids == list(range(64))


def test_a_python_without_claude_bc_logs_why_nothing_is_assembled(tmp_path: Path) -> None:
    """The plugin's launcher falls back to ``python3`` when it finds no venv: the hook
    still spools, and the assembler's failure to start is one line in the error log."""
    base = getattr(sys, "_base_executable", "")
    probe = subprocess.run([base, "-I", "-c", "import capture"], capture_output=True, check=False)
    if not base or probe.returncode == 0:
        pytest.skip("no interpreter without claude-bc installed here")
    home = tmp_path / "home"
    full = {"PATH": os.environ["PATH"], "BC_HOME": str(home), "TMPDIR": str(tmp_path)}
    proc = subprocess.run(
        [base, "-I", "-S", str(HOOK)],
        input=payload(hook_event_name="Stop"),
        env=full,
        capture_output=True,
        timeout=30,
        check=False,
    )
    assert proc.returncode == 0 and proc.stdout == b"" and proc.stderr == b""
    assert len(spool_records(home)) == 1
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and not error_lines(home, tmp_path):
        time.sleep(0.1)
    (line,) = error_lines(home, tmp_path)
    assert "does not have claude-bc installed" in line and "BC_PYTHON" in line


def _worker_importable(python: Path | str) -> str:
    """What the hook's own check says under ``python -I -S``, as the hook runs."""
    code = (
        f"import sys; sys.path.insert(0, {str(Path(record.__file__).parent)!r}); "
        "import spooler; print(spooler.worker_importable())"
    )
    proc = subprocess.run([str(python), "-I", "-S", "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip()


def test_the_worker_check_finds_claude_bc_only_where_it_is_installed(tmp_path: Path) -> None:
    """Before the detached worker starts, the hook checks that this python can import
    claude-bc; a python3 without it logs one line instead of failing unseen."""
    assert _worker_importable(VENV_PYTHON) == "True"
    bare = tmp_path / "bare"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(bare)], check=True)
    assert _worker_importable(bare / "bin" / "python") == "False"
