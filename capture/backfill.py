"""Import Claude Code's session transcripts into the store (``bc-capture import``).

Claude Code keeps every session as ``<projects>/<dashed cwd>/<session>.jsonl`` (plus
``<session>/subagents/agent-<id>.jsonl``) for ``cleanupPeriodDays``. This module turns
them into traces through the one assembler (``capture.transcript`` → ``capture.turns``
→ ``capture.ingest``), so a prompt already captured by the hooks or the proxy is merged,
never duplicated. ``capture.watcher`` calls ``import_file`` for every change it sees.

Incremental and safe to interrupt. Per transcript file, the registry
(``capture.registry``, ``$BC_HOME/state/transcripts.sqlite``) remembers the inode, a hash
of the first bytes and the byte offset to go on from; a file that was truncated or
replaced is read again from the start. A turn is written only once it is complete: the
next prompt follows it, its final answer is in, Claude Code exited (``cost-state``), or
the file has been idle ``IDLE_SECONDS``. The offset kept is the start of the last turn,
so what is appended to a turn is never lost; re-reading is harmless because ``ingest``
skips what changes nothing (which also makes an import and a watcher that read the same
file at once harmless). States are saved after every batch that was ingested, so an
interrupted import resumes where it stopped. A file is read as a stream: memory is
bounded by its largest turn.
"""

from __future__ import annotations

import hashlib
import multiprocessing
import os
import re
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from tqdm import tqdm

from claude_bc.capture import paths, signals, transcript
from claude_bc.capture.errlog import log_error
from claude_bc.capture.errors import BCError
from claude_bc.capture.ingest import IngestReport, ingest
from claude_bc.capture.redact import default_redactor
from claude_bc.capture.registry import Registry, registry
from claude_bc.capture.schema import ClaudeTrace
from claude_bc.capture.store import Problem, TraceStorage
from claude_bc.capture.transcript import (
    Cursor,
    Subagent,
    TurnBuilder,
    attach_subagents,
    iter_lines,
    subagents_of,
)
from claude_bc.capture.turns import AGENT_TOOLS, TurnDraft, to_trace

IDLE_SECONDS = 120.0  # a file untouched this long has no turn in progress
HEAD_BYTES = 1024  # hashed to tell a replaced file from a grown one
BATCH_TURNS = 64  # turns (or BATCH_BYTES of transcript) per ingest and state save
BATCH_BYTES = 4 << 20


# --- where the transcripts are ------------------------------------------------------------


def project_folder(projects: Path, project: Path) -> Path:
    """Claude Code's folder for a project: every non-alphanumeric character of its path → ``-``."""
    return projects / re.sub(r"[^A-Za-z0-9]", "-", str(project.expanduser().resolve()))


def inside(path: Path, root: Path) -> bool:
    """``path`` is a real file or folder under ``root`` (no symlink leads out of it)."""
    try:
        return not path.is_symlink() and path.resolve().is_relative_to(root.resolve())
    except OSError:
        return False


def session_files(projects: Path, project: Path | None = None) -> list[Path]:
    """Every main session transcript under ``projects`` (or just ``project``'s), oldest first."""
    if not projects.is_dir():
        raise BCError(f"no Claude Code projects folder at {projects}")
    if project is not None:
        folder = project_folder(projects, project)
        if not folder.is_dir():
            raise BCError(f"no Claude Code sessions for {project} (looked for {folder})")
        folders = [folder] if inside(folder, projects) else []
    else:
        root = projects.resolve()
        folders = sorted(p for p in projects.iterdir() if p.is_dir() and inside(p, root))
    # in a folder that is inside: a file is inside unless it is a link
    # (2.0.x's flat agent-<id>.jsonl files are subagents, read with their session)
    files = [
        f
        for folder in folders
        for f in folder.glob("*.jsonl")
        if f.is_file() and not f.is_symlink() and not transcript.is_agent_file(f)
    ]
    return sorted(files, key=_mtime)


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0


# --- per-file state -----------------------------------------------------------------------


@dataclass
class FileState:
    """What was already read of one transcript file."""

    path: str
    inode: int = 0
    size: int = 0  # bytes consumed (whole lines) when last read
    head: str = ""  # hash of the first ``head_len`` bytes
    head_len: int = 0
    offset: int = 0  # where the next read starts: the last turn's prompt line
    line: int = 0  # lines before ``offset``
    lines_read: int = 0  # lines consumed (problems before are already reported)
    pending: bool = False  # the last turn was still in progress: not written yet
    # agent id -> [size, mtime_ns, turn offset, turn line] when it was attached
    subagents: dict[str, list[int]] = field(default_factory=dict)
    # Agent call tool_use_id -> [offset, line] of its turn (a late subagent file goes there)
    agent_turns: dict[str, list[int]] = field(default_factory=dict)

    def snapshot(self) -> dict[str, Any]:
        """The state as saved (a copy: reading goes on changing this one)."""
        # (dataclasses.asdict deep-copies field by field: several times slower)
        return {
            **vars(self),
            "subagents": dict(self.subagents),
            "agent_turns": dict(self.agent_turns),
        }

    @classmethod
    def of(cls, saved: dict[str, Any] | None, transcript: Path) -> FileState:
        """The ``saved`` state if it is one of ``transcript``, else a state of nothing read."""
        if saved is not None and saved.get("path") == str(transcript):
            with suppress(TypeError):  # a state of another layout: read from the start
                return cls(**saved)
        return cls(str(transcript))


def _head(fh: Any, length: int) -> str:
    fh.seek(0)
    return hashlib.blake2b(fh.read(length), digest_size=16).hexdigest()


def _registry(state_root: Path | None) -> Registry:
    """The registry of ``state_root`` (default: ``$BC_HOME/state``)."""
    if state_root is None:
        paths.ensure_dir(paths.data_dir())  # mkdir leaves the parents it makes world-readable
        state_root = paths.state_dir()
    return registry(state_root)


# --- one file -----------------------------------------------------------------------------


@dataclass
class FileResult:
    """What importing one transcript file did."""

    path: Path
    report: IngestReport = field(default_factory=IngestReport)
    sessions: set[str] = field(default_factory=set)
    problems: list[Problem] = field(default_factory=list)
    in_progress: int = 0  # turns held back: still being written
    bytes_read: int = 0
    skipped: bool = False  # nothing new since the last import
    replaced: bool = False  # the file was truncated or replaced: read again


def _rewind(state: FileState, subs: list[Subagent]) -> tuple[Cursor, bool]:
    """Where to start: the saved offset, or the turn of a subagent that changed since it
    was attached (or appeared after its turn was written); and whether one did."""
    start, changed = Cursor(state.offset, state.line), False
    for sub in subs:
        try:
            st = sub.path.stat()
        except OSError:
            continue
        seen = state.subagents.get(sub.agent_id)
        turn = None
        if seen is not None and seen[:2] != [st.st_size, st.st_mtime_ns]:
            turn = seen[2:]
        elif seen is None and sub.tool_use_id in state.agent_turns:
            turn = state.agent_turns[sub.tool_use_id]
        if turn:
            changed = True
            if turn[0] < start.offset:
                start = Cursor(turn[0], turn[1])
    return start, changed


class _Batch:
    """Finished traces waiting for ``ingest``, and the file states to save once they are
    in (a state saved first would skip turns that were never stored if the run stopped).

    ``import_file`` alone (the watcher) flushes after every file; ``import_files`` shares
    one batch across files, so many small sessions cost one index lock and one append.
    """

    def __init__(self, store: TraceStorage, registry: Registry) -> None:
        self.store, self.registry = store, registry
        self.traces: list[ClaudeTrace] = []
        self.states: dict[str, dict[str, Any]] = {}  # transcript path -> state to save
        self.report = IngestReport()
        self.bytes = 0
        self.folders: dict[Path, Path] = {}  # resolved folders of the files read

    def resolve(self, path: Path) -> Path:
        """``path.resolve()``, resolving each folder once (an import reads many files of
        one folder)."""
        if path.is_symlink():
            return path.resolve()
        folder = self.folders.get(path.parent)
        if folder is None:
            folder = self.folders[path.parent] = path.parent.resolve()
        return folder / path.name

    def full(self) -> bool:
        return len(self.traces) >= BATCH_TURNS or self.bytes >= BATCH_BYTES

    def flush(self) -> None:
        if self.traces:
            self.report.add(ingest(self.traces, self.store))
            self.traces = []
        self.registry.put(self.states)
        self.states = {}
        self.bytes = 0


class _Reader:
    """One pass over one transcript from a cursor: finished turns go to ``ingest`` in batches."""

    def __init__(
        self,
        path: Path,
        state: FileState,
        result: FileResult,
        on_bytes: Callable[[int], None] | None,
        batch: _Batch,
    ) -> None:
        self.path, self.state = path, state
        self.result, self.on_bytes, self.batch = result, on_bytes, batch
        self.subs = subagents_of(path)
        self.flushed = state.offset  # bytes read up to the last flush

    def turn_done(self, turn: TurnDraft, start: Cursor) -> None:
        """Attach its subagents, make the trace and queue it for ingest."""
        for sub in attach_subagents(turn, self.subs, self.result.problems):
            with suppress(OSError):
                st = sub.path.stat()
                self.state.subagents[sub.agent_id] = [
                    st.st_size,
                    st.st_mtime_ns,
                    start.offset,
                    start.line,
                ]
        for call in turn.calls.values():
            if call.tool in AGENT_TOOLS and not call.agent_id:
                self.state.agent_turns[call.tool_use_id] = [start.offset, start.line]
        if turn.session_id:
            self.result.sessions.add(turn.session_id)
        if turn.prompt.strip():
            self.batch.traces.append(to_trace(turn))

    def flush(self, resume: Cursor, read_to: int) -> None:
        """Queue ``resume`` as where the next read starts, saved once the traces read so
        far are ingested (now, if the batch is full)."""
        self.state.offset, self.state.line = resume.offset, resume.line
        self.batch.states[self.state.path] = self.state.snapshot()
        self.batch.bytes += read_to - self.flushed
        if self.batch.full():
            self.batch.flush()
        if self.on_bytes:
            self.on_bytes(read_to - self.flushed)
        self.result.bytes_read += read_to - self.flushed
        self.flushed = read_to

    def read(
        self,
        fh: Any,
        cursor: Cursor,
        tail_done: Callable[[TurnBuilder], bool],
        final: bool = False,
    ) -> None:
        builder = TurnBuilder()
        turn_start = Cursor(cursor.offset, cursor.line)  # of the turn being read
        turns = 0
        problems = self.result.problems
        lines = iter_lines(fh, self.path, cursor, problems, only_turns=True, final=final)
        for offset, number, line in lines:
            open_turn = builder.current
            done = builder.feed(line, problems, f"{self.path}:{number}")
            if builder.current is not open_turn:  # a prompt: a new turn starts here
                done_start, turn_start = turn_start, Cursor(offset, number - 1)
                if done:
                    self.turn_done(done, done_start)
                    turns += 1
            if turns >= BATCH_TURNS or cursor.offset - self.flushed >= BATCH_BYTES:
                self.flush(turn_start if builder.current else cursor, cursor.offset)
                turns = 0
        if builder.current is None:
            turn_start = Cursor(cursor.offset, cursor.line)
        elif tail_done(builder):
            last = builder.close()  # (None: a local command the model never saw)
            if last is not None:
                self.turn_done(last, turn_start)
        else:
            self.result.in_progress += 1
        self.state.pending = builder.current is not None
        self.state.size = cursor.offset
        self.state.lines_read = max(self.state.lines_read, cursor.line)
        self.flush(turn_start, cursor.offset)


def import_file(
    path: Path,
    store: TraceStorage | None = None,
    state_root: Path | None = None,
    *,
    idle: float = IDLE_SECONDS,
    now: float | None = None,
    on_bytes: Callable[[int], None] | None = None,
    batch: _Batch | None = None,
) -> FileResult:
    """Import what is new in one session transcript (and its subagents); idempotent.

    ``batch``: queue its traces there (``import_files``) instead of storing them before
    returning; the counts of what was stored are then the batch's, not the result's."""
    own = batch is None
    if batch is None:
        batch = _Batch(store or TraceStorage(paths.traces_dir()), _registry(state_root))
    path = batch.resolve(path)
    now = time.time() if now is None else now
    result = FileResult(path)
    with path.open("rb") as fh:
        state = FileState.of(batch.registry.get(path), path)
        st = os.fstat(fh.fileno())
        known = state.inode != 0
        if known and (
            state.inode != st.st_ino
            or st.st_size < state.size
            or _head(fh, state.head_len) != state.head
        ):
            state, result.replaced = FileState(str(path)), True
        idle_now = now - st.st_mtime >= idle
        reader = _Reader(path, state, result, on_bytes, batch)
        start, subagent_changed = _rewind(state, reader.subs)
        if st.st_size == state.size and not subagent_changed and not (state.pending and idle_now):
            result.skipped = True
            return result
        state.inode = st.st_ino
        state.head_len = min(HEAD_BYTES, st.st_size)
        state.head = _head(fh, state.head_len)
        reported = state.lines_read
        state.offset, state.line = start.offset, start.line
        reader.flushed = start.offset
        cursor = Cursor(start.offset, start.line)
        # an idle file's last line without its newline is read too, once: the cursor
        # passes it (a torn one is reported then)
        reader.read(fh, cursor, lambda b: b.answered or b.ended or idle_now, final=idle_now)
        result.problems = [
            p for p in result.problems if p.path != path or p.line > reported or result.replaced
        ]
        if own:
            batch.flush()
            result.report = batch.report
    return result


# --- many files ---------------------------------------------------------------------------


@dataclass
class ImportSummary:
    """What an import (or a watcher, over many passes) did to the files it looked at."""

    files: set[Path] = field(default_factory=set)
    read: set[Path] = field(default_factory=set)  # files that had something new
    sessions: set[str] = field(default_factory=set)
    report: IngestReport = field(default_factory=IngestReport)
    open_turns: dict[Path, int] = field(default_factory=dict)  # as of each file's last pass
    replaced: int = 0
    problems: list[Problem] = field(default_factory=list)

    def add(self, result: FileResult) -> None:
        self.files.add(result.path)
        if not result.skipped:
            self.read.add(result.path)
            self.open_turns[result.path] = result.in_progress
        self.sessions |= result.sessions
        self.report.add(result.report)
        self.replaced += result.replaced
        self.problems += result.problems

    def merge(self, other: ImportSummary) -> None:
        """Add what another import (of other files) did."""
        self.files |= other.files
        self.read |= other.read
        self.sessions |= other.sessions
        self.report.add(other.report)
        self.open_turns.update(other.open_turns)
        self.replaced += other.replaced
        self.problems += other.problems

    @property
    def in_progress(self) -> int:
        return sum(self.open_turns.values())

    def log_problems(self, component: str, limit: int = 20) -> None:
        """The problems into the error log too (``bc-capture status`` shows it): the
        first ``limit``, then how many more."""
        for p in self.problems[:limit]:
            log_error(component, "-", f"skipped {p}")
        if len(self.problems) > limit:
            log_error(component, "-", f"… and {len(self.problems) - limit} more skipped lines")

    def lines(self, limit: int = 20) -> list[str]:
        """The summary as the CLI prints it: counts, then the problems with file:line."""
        r = self.report
        out = [
            f"{len(self.files)} files ({len(self.read)} read, {len(self.sessions)} sessions): "
            f"{r.new} new traces, {r.merged} merged, {r.unchanged} already stored"
            + (
                f", {self.in_progress} turns in progress (read again next time)"
                if self.in_progress
                else ""
            )
            + (f", {self.replaced} replaced files read again" if self.replaced else "")
        ]
        if self.problems:
            out.append(f"{len(self.problems)} malformed lines (skipped):")
            out += [f"  {p}" for p in self.problems[:limit]]
            if len(self.problems) > limit:
                out.append(f"  … and {len(self.problems) - limit} more")
        return out


def import_files(
    files: list[Path],
    store: TraceStorage | None = None,
    state_root: Path | None = None,
    *,
    since: datetime | None = None,
    idle: float = IDLE_SECONDS,
    on_bytes: Callable[[int], None] | None = None,
    jobs: int = 1,
) -> ImportSummary:
    """Import several transcripts; ``since``: only files written to since then;
    ``jobs``: processes importing files side by side (see :func:`default_jobs`)."""
    # bulk work: the prefilters pay off at once (and forked processes share them)
    default_redactor().use_prefilter()
    signals.use_prefilter()
    transcript.use_prefilter()
    if jobs > 1 and len(files) > 1:
        return _import_in_parallel(files, store, state_root, since, idle, on_bytes, jobs)
    summary = ImportSummary()
    cutoff = since.timestamp() if since else None
    batch = _Batch(store or TraceStorage(paths.traces_dir()), _registry(state_root))
    for path in files:
        size = _size(path) if on_bytes else 0  # (a stat per file only for a progress bar)
        result = None
        if cutoff is None or _mtime(path) >= cutoff:
            # a file removed since it was listed (Claude Code's cleanup) is passed over
            with suppress(FileNotFoundError):
                result = import_file(
                    path, batch.store, state_root, idle=idle, on_bytes=on_bytes, batch=batch
                )
                summary.add(result)
        if on_bytes:  # the part of the file that did not need reading
            on_bytes(max(0, size - (result.bytes_read if result else 0)))
    batch.flush()
    summary.report.add(batch.report)
    return summary


PARALLEL_MIN_BYTES = 8 << 20  # below this, starting processes costs more than it saves


def default_jobs(files: list[Path]) -> int:
    """One process per core (at most 8) for a large import, else one."""
    if sum(_size(f) for f in files) < PARALLEL_MIN_BYTES:
        return 1
    affinity = getattr(os, "sched_getaffinity", None)  # Linux: the cores this may run on
    cores = len(affinity(0)) if affinity else (os.cpu_count() or 1)
    return max(1, min(8, cores, len(files)))


def _import_in_parallel(
    files: list[Path],
    store: TraceStorage | None,
    state_root: Path | None,
    since: datetime | None,
    idle: float,
    on_bytes: Callable[[int], None] | None,
    jobs: int,
) -> ImportSummary:
    """``import_files`` over chunks of ``files`` in ``jobs`` forked processes.

    Safe because every writer already is: each process reads its own files, SQLite
    serialises the registry's writes, and ``ingest`` serialises writers on the index lock
    (a turn copied into two session files by ``--resume`` is still stored once, by
    whichever process comes second).
    """
    root = (store or TraceStorage(paths.traces_dir())).root
    assert root is not None
    sized = [(f, _size(f)) for f in files]
    target = sum(n for _, n in sized) / (jobs * 4) or 1  # a few chunks per process: balance
    chunks: list[list[tuple[Path, int]]] = [[]]
    for f, n in sized:
        if sum(m for _, m in chunks[-1]) >= target:
            chunks.append([])
        chunks[-1].append((f, n))
    summary = ImportSummary()
    # fork: the children start at once with everything imported (no threads run here)
    with ProcessPoolExecutor(jobs, mp_context=multiprocessing.get_context("fork")) as pool:
        futures = {
            pool.submit(_import_chunk, [f for f, _ in c], root, state_root, since, idle): c
            for c in chunks
        }
        try:
            for done in as_completed(futures):
                summary.merge(done.result())
                if on_bytes:
                    on_bytes(sum(n for _, n in futures[done]))
        except BrokenProcessPool as exc:
            raise BCError(
                "an import process died (out of memory?); what was stored is kept: "
                "run the import again, or with --jobs 1"
            ) from exc
    return summary


def _import_chunk(
    files: list[Path], root: Path, state_root: Path | None, since: datetime | None, idle: float
) -> ImportSummary:
    return import_files(files, TraceStorage(root), state_root, since=since, idle=idle)


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


@contextmanager
def progress_bar(files: list[Path]) -> Iterator[Callable[[int], None]]:
    """Bytes done, on stderr: on a terminal after 0.5 s; in a log only when the run is
    long (30 s). ``$BC_PROGRESS_DELAY`` sets the delay in seconds."""
    tty = sys.stderr.isatty()
    try:
        delay = float(os.environ.get("BC_PROGRESS_DELAY", ""))
    except ValueError:
        delay = 0.5 if tty else 30
    # no monitor thread: a parallel import forks, and a fork must not copy a running thread
    tqdm.monitor_interval = 0
    with tqdm(
        total=sum(_size(f) for f in files),
        unit="B",
        unit_scale=True,
        unit_divisor=1024,
        desc="import",
        file=sys.stderr,
        delay=delay,
        mininterval=0.2 if tty else 30,
        leave=False,
    ) as bar:

        def advance(n: int) -> None:
            bar.update(n)

        yield advance
