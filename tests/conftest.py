"""Shared test helpers: the recorded Claude Code fixtures and an isolated BC_HOME."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[1]
# Recorded from the real Claude Code CLI (tests/fixtures/claude-code/README.md; re-recorded by
# scripts/record-fixtures): kept in the repository so a fresh clone tests on its own.
FIXTURES = REPO / "tests" / "fixtures" / "claude-code"
VENV_PYTHON = REPO / ".venv" / "bin" / "python"

# Nothing a test runs (even at import time, before any fixture) may write to the user's
# own data folder: the tests that need one set their own (``bc_home``).
_SESSION_HOME = tempfile.mkdtemp(prefix="bc-tests-home-")
os.environ["BC_HOME"] = _SESSION_HOME


def hook_events(run: str) -> list[dict[str, Any]]:
    """The recorded hook log of a fixture run: [{event, t_start, payload, ...}]."""
    path = FIXTURES / run / "hook-events.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def stage_run(run: str, home: Path) -> tuple[str, Path]:
    """Lay a fixture run out as the hooks would have: spool + transcript on disk.

    Returns the session id and the transcript's new path. Transcript paths inside
    the payloads are rewritten to the copy under ``home``.
    """
    src = FIXTURES / run
    events = hook_events(run)
    session = events[0]["payload"]["session_id"]
    tdir = home / "projects"
    tdir.mkdir(parents=True, exist_ok=True)
    transcript = tdir / f"{session}.jsonl"
    transcript.write_bytes((src / "transcript.jsonl").read_bytes())
    subdir = src / "subagents"
    if subdir.is_dir():
        (tdir / session / "subagents").mkdir(parents=True, exist_ok=True)
        for f in subdir.iterdir():
            (tdir / session / "subagents" / f.name).write_bytes(f.read_bytes())
    spool = home / "spool"
    spool.mkdir(parents=True, exist_ok=True, mode=0o700)
    with (spool / f"{session}.jsonl").open("w") as fh:
        for ev in events:
            p = dict(ev["payload"])
            p["transcript_path"] = str(transcript)
            if "agent_transcript_path" in p:
                name = Path(p["agent_transcript_path"]).name
                p["agent_transcript_path"] = str(tdir / session / "subagents" / name)
            fh.write(json.dumps({"v": 1, "t": ev["t_start"], "p": p}) + "\n")
    return session, transcript


def run_main(
    main: Callable[[list[str]], Any], capsys: pytest.CaptureFixture[str], *args: str
) -> tuple[int, str, str]:
    """A CLI's real entry point in-process: (exit code, out, err)."""
    try:
        main(list(args))
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def run_bc(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """``bc-capture ARGS`` in-process: (exit code, out, err)."""
    from claude_bc.capture.cli import main

    return run_main(main, capsys, *args)


@pytest.fixture
def bc_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "bc-home"
    monkeypatch.setenv("BC_HOME", str(home))
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    return home


# --- exit -----------------------------------------------------------------------------------
# After a full run (torch, transformers, llama.cpp, mitmproxy clients … all imported into one
# process), CPython's final garbage collection at interpreter shutdown was seen spinning for
# minutes after pytest had printed its summary (gdb: gc_collect_main ← finalize_modules ←
# Py_FinalizeEx), which would hold CI past its limit. Nothing is left to do by then, so the
# run ends with pytest's own exit status without interpreter teardown.
_EXIT_STATUS: list[int] = []


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    _EXIT_STATUS.append(int(exitstatus))


def pytest_unconfigure(config: pytest.Config) -> None:
    import shutil

    shutil.rmtree(_SESSION_HOME, ignore_errors=True)
    if _EXIT_STATUS and os.environ.get("BC_PYTEST_NO_FAST_EXIT") != "1":
        import sys

        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(_EXIT_STATUS[-1])


# `pytest -m "not slow"` is the everyday subset (under a minute on 2 cores): what trains or
# serves a model, drives Claude Code, a browser or mitmdump is slow by what it uses; the
# few long pure-Python tests (fuzzing, soaks, big inputs) carry @pytest.mark.slow.
SLOW_FIXTURES = frozenset({"tiny_model", "sft_output", "exported", "proxy"})  # proxy: mitmdump
SLOW_FOLDERS = ("teacher",)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        folder = Path(str(item.path)).relative_to(REPO / "tests").parts[0]
        if (
            item.get_closest_marker("e2e")
            or SLOW_FIXTURES.intersection(getattr(item, "fixturenames", ()))
            or folder in SLOW_FOLDERS
        ):
            item.add_marker(pytest.mark.slow)
