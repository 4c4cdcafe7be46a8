"""`bc-capture watch`: live capture from the projects folder, beside the hooks or without."""

from __future__ import annotations

import builtins
import copy
import errno
import io
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from claude_bc.capture.store import TraceStorage
from claude_bc.capture.watcher import Watcher, session_of
from claude_bc.capture.worker import assemble_session
from tests.capture.transcripts import PROJECT, turn
from tests.claude_code import BASIC_SCENARIO, make_basic_project, run_claude
from tests.conftest import FIXTURES, REPO, stage_run
from tests.fake_anthropic import FakeAnthropic

BC_CAPTURE = REPO / ".venv" / "bin" / "bc-capture"


def wait_for(
    check: Callable[[], bool], timeout: float = 30, every: Callable[[], None] = lambda: None
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        every()
        if check():
            return
        time.sleep(0.1)
    raise AssertionError(f"not within {timeout}s")


def traces(home: Path) -> list[Any]:
    return TraceStorage(home / "traces").load_traces()


def test_session_of(tmp_path: Path) -> None:
    p = tmp_path / "projects"
    assert session_of(p / "-a" / "s.jsonl", p) == p / "-a" / "s.jsonl"
    sub = p / "-a" / "s" / "subagents" / "agent-x.jsonl"
    assert session_of(sub, p) == p / "-a" / "s.jsonl"
    assert session_of(p / "-a" / "s" / "subagents" / "agent-x.meta.json", p) == p / "-a" / "s.jsonl"
    assert session_of(p / "-a" / "s" / "tool-results" / "x.txt", p) is None
    assert session_of(tmp_path / ".credentials.json", p) is None


@pytest.mark.slow
def test_watch_cli_follows_appends_beside_the_hooks(tmp_path: Path) -> None:
    """The real command in a subprocess: a session written in bursts is captured as its turns
    complete; the hooks' worker writing the same session merges; nothing outside the projects
    folder is ever opened; SIGTERM stops it cleanly."""
    claude = tmp_path / "claude"
    projects = claude / "projects"
    (projects / PROJECT).mkdir(parents=True)
    # Opening a FIFO for reading blocks until a writer comes, and a non-blocking open for
    # writing fails with ENXIO as long as no reader has it open: any open is seen.
    credentials = claude / ".credentials.json"
    os.mkfifo(credentials)
    (projects / PROJECT / "evil.jsonl").symlink_to(credentials)
    (projects / "-linked").symlink_to(claude)
    bc_home = tmp_path / "bc"
    env = {**os.environ, "BC_HOME": str(bc_home)}
    proc = subprocess.Popen(
        [str(BC_CAPTURE), "watch", "--projects-dir", str(projects), "--idle", "2"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )

    def nobody_reads_the_credentials() -> None:
        try:
            fd = os.open(credentials, os.O_WRONLY | os.O_NONBLOCK)
        except OSError as exc:
            assert exc.errno == errno.ENXIO
            return
        os.close(fd)
        raise AssertionError("the watcher opened .credentials.json")

    try:
        lines = (FIXTURES / "basic" / "transcript.jsonl").read_bytes().splitlines(keepends=True)
        session, _ = stage_run("basic", bc_home)  # the hooks' spool of the same run
        live = projects / PROJECT / f"{session}.jsonl"
        with live.open("wb") as fh:
            for i, line in enumerate(lines):  # as Claude Code writes it: line by line
                fh.write(line)
                fh.flush()
                if i % 10 == 0:
                    time.sleep(0.05)
        wait_for(lambda: len(traces(bc_home)) == 1, every=nobody_reads_the_credentials)
        (watched,) = traces(bc_home)
        assert watched.sources == ["transcript"] and len(watched.tool_calls) == 5
        # the hook worker runs for the same session at the same time: merged, not doubled
        assemble_session(session, bc_home)
        (both,) = traces(bc_home)
        assert both.sources == ["transcript", "hooks"]

        # a second session whose turn never ends is written once the file is idle
        other = projects / PROJECT / "s2.jsonl"
        other.write_bytes(turn("s2", "still going", answered=False))
        time.sleep(1)
        assert len(traces(bc_home)) == 1
        wait_for(lambda: len(traces(bc_home)) == 2, every=nobody_reads_the_credentials)
        nobody_reads_the_credentials()
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err
    assert f"watching {projects}" in err
    assert f"{session}.jsonl: 1 new, 0 merged traces" in out
    assert out.splitlines()[-1].startswith("2 files (2 read, 2 sessions): 2 new traces")
    assert len(list(TraceStorage(bc_home / "traces").records())) == 3  # new, +hooks, s2


@pytest.fixture
def opened_paths(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """Every path opened (Python's open, Path.open, os.open) by threads other than the test's
    own: the watcher's, watchdog's and the fake API's."""
    seen: list[str] = []
    real_open, real_os_open = builtins.open, os.open

    def record(file: Any) -> None:
        if threading.current_thread() is threading.main_thread():
            return
        if isinstance(file, str | bytes | os.PathLike):
            seen.append(os.path.abspath(os.fsdecode(file)))

    def fake_open(file: Any, *args: Any, **kwargs: Any) -> Any:
        record(file)
        return real_open(file, *args, **kwargs)

    def fake_os_open(path: Any, *args: Any, **kwargs: Any) -> int:
        record(path)
        return real_os_open(path, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", fake_open)
    monkeypatch.setattr(io, "open", fake_open)
    monkeypatch.setattr(os, "open", fake_os_open)
    yield seen


@pytest.mark.e2e
def test_watcher_captures_a_real_claude_code_session_without_hooks(
    tmp_path: Path, opened_paths: list[str]
) -> None:
    project = make_basic_project(tmp_path / "project")
    home = tmp_path / "home"
    projects = home / ".claude" / "projects"
    projects.mkdir(parents=True)
    (home / ".claude" / "notes.json").write_text("{}")  # anything beside the projects folder
    bc_home = tmp_path / "bc"
    watcher = Watcher(projects, bc_home, idle=30)
    stop = threading.Event()
    thread = threading.Thread(target=watcher.run, args=(stop,))
    thread.start()
    try:
        scenario = copy.deepcopy(BASIC_SCENARIO)
        with FakeAnthropic(scenario, cwd=str(project)) as api:
            run = run_claude(
                scenario["prompt"], project_dir=project, home_dir=home, base_url=api.base_url
            )
        assert run.returncode == 0, run.stderr
        wait_for(lambda: len(traces(bc_home)) == 1)
    finally:
        stop.set()
        thread.join(20)
    assert not thread.is_alive()
    (trace,) = traces(bc_home)
    assert trace.session_id == run.session_id and trace.sources == ["transcript"]
    assert trace.user_prompt == scenario["prompt"] and trace.complete
    assert [c.tool for c in trace.tool_calls] == ["Read", "Grep", "Bash", "Bash", "Edit"]
    read, grep, ls, fail, edit = trace.tool_calls
    assert read.thinking == scenario["turns"][0]["content"][0]["thinking"]
    assert grep.batch == ls.batch == 1 and fail.success is False
    assert trace.claude_response == scenario["turns"][-1]["content"][0]["text"]
    assert trace.claude_code_version == "2.1.332"
    assert watcher.summary.report.new == 1
    allowed = (str(projects.resolve()), str(bc_home))
    outside = [p for p in opened_paths if not p.startswith(allowed)]
    assert opened_paths and not outside, outside
