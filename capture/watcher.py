"""Follow Claude Code's projects folder live: ``bc-capture watch``.

watchdog reports every file created, written or moved under the projects folder; a
change to ``<project>/<session>.jsonl`` or to one of its ``<session>/subagents/`` files
marks that session dirty, and after a short quiet time (``DEBOUNCE_SECONDS``) the
session is imported with ``capture.backfill.import_file``: incremental, and a turn is
written once it is complete. Sessions whose last turn is still open are looked at again
until it completes or the file goes idle.

It is safe beside the hooks (``ingest`` merges what both capture), reads nothing
outside the projects folder (symlinks that lead out are skipped), and stops cleanly on
SIGINT/SIGTERM after finishing the file it is reading.
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType

from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer

from claude_bc.capture import paths, transcript
from claude_bc.capture.backfill import (
    IDLE_SECONDS,
    FileResult,
    ImportSummary,
    import_file,
    inside,
    session_files,
)
from claude_bc.capture.store import TraceStorage

POLL_SECONDS = 0.25
DEBOUNCE_SECONDS = 0.3  # Claude Code writes a turn as a burst of lines: wait for the end
RECHECK_SECONDS = 2.0  # how often sessions with an open last turn are looked at again


def session_of(path: Path, projects: Path) -> Path | None:
    """The main transcript a changed file belongs to, or None if it is not a transcript."""
    try:
        parts = path.relative_to(projects).parts
    except ValueError:
        return None
    if len(parts) == 2 and parts[1].endswith(".jsonl"):
        if parts[1].startswith("agent-"):  # 2.0.x's flat subagent file: its session's
            session = transcript.first_session_id(path)
            return projects / parts[0] / f"{session}.jsonl" if session else None
        return path
    if len(parts) == 4 and parts[2] == "subagents" and parts[3].startswith("agent-"):
        return projects / parts[0] / f"{parts[1]}.jsonl"
    return None


class _Changes(FileSystemEventHandler):
    """Collects the sessions that changed, from watchdog's thread."""

    def __init__(self, projects: Path) -> None:
        self.projects = projects
        self.lock = threading.Lock()
        self.dirty: dict[Path, float] = {}  # session transcript -> time of the last change

    def on_any_event(self, event: FileSystemEvent) -> None:
        if event.is_directory or event.event_type in ("opened", "closed_no_write"):
            return
        for raw in (event.src_path, getattr(event, "dest_path", "")):
            name = raw.decode() if isinstance(raw, bytes) else raw
            session = session_of(Path(name), self.projects) if name else None
            if session is not None:
                with self.lock:
                    self.dirty[session] = time.monotonic()

    def take(self, quiet: float) -> list[Path]:
        """Sessions with no change for ``quiet`` seconds (they are done being written)."""
        now = time.monotonic()
        with self.lock:
            ready = [p for p, t in self.dirty.items() if now - t >= quiet]
            for p in ready:
                del self.dirty[p]
        return ready


@contextmanager
def stop_on_signals(stop: threading.Event) -> Iterator[None]:
    """SIGINT and SIGTERM set ``stop`` (main thread only); the old handlers come back after."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: FrameType | None) -> None:
        stop.set()

    old = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, h in old.items():
            signal.signal(s, h)


class Watcher:
    """Imports the sessions under ``projects`` as Claude Code writes them."""

    def __init__(
        self,
        projects: Path,
        home: Path | None = None,
        *,
        idle: float = IDLE_SECONDS,
        on_result: Callable[[FileResult], None] | None = None,
    ) -> None:
        self.projects = projects
        self.store = TraceStorage(paths.traces_dir(home))
        self.state_root = paths.state_dir(home)
        self.idle = idle
        self.on_result = on_result
        self.summary = ImportSummary()
        self.open_turns: set[Path] = set()  # sessions whose last turn is not written yet

    def _import(self, session: Path) -> None:
        if not (session.is_file() and inside(session, self.projects)):
            return
        try:
            result = import_file(session, self.store, self.state_root, idle=self.idle)
        except FileNotFoundError:
            return  # removed meanwhile
        if result.skipped:  # nothing new: a turn that was open still is
            return
        if result.in_progress:
            self.open_turns.add(session)
        else:
            self.open_turns.discard(session)
        self.summary.add(result)
        if self.on_result:
            self.on_result(result)

    def run(self, stop: threading.Event, catch_up: bool = True) -> ImportSummary:
        """Watch until ``stop`` is set; first import what changed while nobody watched."""
        while not self.projects.is_dir():  # Claude Code has not run yet
            if stop.wait(RECHECK_SECONDS):
                return self.summary
        changes = _Changes(self.projects.resolve())
        self.projects = self.projects.resolve()
        observer = Observer()
        observer.schedule(changes, str(self.projects), recursive=True)
        observer.start()
        try:
            if catch_up:
                for session in session_files(self.projects):
                    if stop.is_set():
                        break
                    self._import(session)
            last_recheck = time.monotonic()
            while not stop.wait(POLL_SECONDS):
                for session in changes.take(DEBOUNCE_SECONDS):
                    self._import(session)
                if time.monotonic() - last_recheck >= RECHECK_SECONDS:
                    last_recheck = time.monotonic()
                    for session in list(self.open_turns):
                        self._import(session)
        finally:
            observer.stop()
            observer.join()
        for session in changes.take(0):  # what was written just before the stop
            self._import(session)
        return self.summary


def watch(
    projects: Path,
    home: Path | None = None,
    *,
    idle: float = IDLE_SECONDS,
    on_result: Callable[[FileResult], None] | None = None,
) -> ImportSummary:
    """Run a ``Watcher`` in the foreground until SIGINT or SIGTERM."""
    stop = threading.Event()
    with stop_on_signals(stop):
        return Watcher(projects, home, idle=idle, on_result=on_result).run(stop)
