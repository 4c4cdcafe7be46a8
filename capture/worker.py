"""Assemble one session's spool into traces: ``python -m claude_bc.capture.worker SESSION_ID``.

``hooks/record.py`` starts this detached at Stop, SubagentStop and SessionEnd. It reads
the session's spool and the transcript the hooks point at, assembles one trace per
user prompt the hooks saw, hands them to ``capture.ingest`` (which merges them with
what is stored and appends only what changed, so re-running is a no-op), and deletes
the spool once the session has ended. Runs for one session are serialised by a lock.
Errors go to the side log, never to Claude Code.

A session killed without SessionEnd (SIGKILL, a crash, a closed laptop) would leave its
spool pending for ever: every worker run, and ``bc-capture assemble``, also assembles
and clears the spools of sessions whose Claude Code process is gone (the hook records
its pid), and notes them in ``state/recovered.jsonl`` for ``bc-capture status``.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from claude_bc.capture import paths
from claude_bc.capture.errlog import run_detached
from claude_bc.capture.ingest import ingest
from claude_bc.capture.rawspool import redact_in_place
from claude_bc.capture.schema import ClaudeTrace
from claude_bc.capture.spool import (
    iter_spools,
    read_spool,
    session_lock,
    transcript_paths,
    turns_from_hooks,
)
from claude_bc.capture.store import Problem, TraceStorage
from claude_bc.capture.transcript import turns_from_transcript
from claude_bc.capture.turns import assemble


@dataclass
class SessionResult:
    session_id: str
    traces: list[ClaudeTrace] = field(default_factory=list)
    written: int = 0
    ended: bool = False
    recovered: bool = False  # its process died without SessionEnd: assembled as it was
    problems: list[Problem] = field(default_factory=list)


def _drop_spool(spool: Path, size_read: int) -> bool:
    """Delete the spool unless a hook appended to it after we read it; whether it was."""
    fd = os.open(spool, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        if os.fstat(fd).st_size == size_read:
            spool.unlink()
            return True
        return False
    finally:
        os.close(fd)


def assemble_session(
    session_id: str, home: Path | None = None, recover: bool = True
) -> SessionResult:
    """Assemble (or re-assemble) one session from its spool; idempotent. ``recover``:
    then the spools of dead sessions too (:func:`recover_dead`)."""
    paths.check_id(session_id)  # before it names any file (spool, lock)
    result = _assemble(session_id, home)
    if recover:
        recover_dead(home, skip={session_id})
    return result


def _assemble(session_id: str, home: Path | None, dead: bool = False) -> SessionResult:
    result = SessionResult(session_id)
    spool = paths.spool_dir(home) / f"{session_id}.jsonl"
    lock = paths.ensure_dir(paths.state_dir(home)) / f"{session_id}.lock"
    lock_fd = session_lock(lock)
    try:
        if not spool.exists():  # nothing to assemble (a late worker of an ended session)
            lock.unlink(missing_ok=True)
            return result
        size = spool.stat().st_size
        read = read_spool(spool)
        result.problems += read.problems
        if dead and not process_gone(spool):
            return result  # it came back to life while we waited for the lock
        result.ended = dead or any(e.name == "SessionEnd" for e in read.events)
        result.recovered = dead and not any(e.name == "SessionEnd" for e in read.events)
        hook_turns = turns_from_hooks(read.events)
        seen = {t.prompt_id for t in hook_turns}
        transcript, subagents, bad = _checked(*transcript_paths(read.events))
        result.problems += [Problem(spool, 0, f"transcript path refused: {b}") for b in bad]
        transcript_turns = []
        if transcript and transcript.is_file():
            turns, problems = turns_from_transcript(transcript, subagents, final=result.ended)
            result.problems += problems
            # only the turns the hooks saw: the rest belongs to `bc-capture import`
            prompts = {h.prompt.strip() for h in hook_turns}
            transcript_turns = [
                t
                for t in turns
                if (t.prompt_id in seen if t.prompt_id else t.prompt.strip() in prompts)
            ]
        result.traces = assemble(hook_turns, transcript_turns)
        report = ingest(result.traces, TraceStorage(paths.traces_dir(home)))
        result.written = len(report.written)
        if result.recovered:
            _note_recovered(result, home)
        if result.ended and _drop_spool(spool, size):
            lock.unlink(missing_ok=True)  # the session is done: no lock file is left behind
        else:
            redact_in_place(spool)  # assembled: no secret stays in the clear on disk
        return result
    finally:
        os.close(lock_fd)


def _checked(
    main: Path | None, subs: dict[str, Path]
) -> tuple[Path | None, dict[str, Path], list[str]]:
    """The transcripts the hooks named, kept only when their names are what Claude Code
    writes (``<id>.jsonl``, a safe id) and they are regular files (not links): a spool line
    cannot make the worker read any other file."""
    bad: list[str] = []

    def ok(path: Path) -> bool:
        good = (
            path.suffix == ".jsonl"
            and paths.is_safe_id(path.stem)
            and path.is_absolute()
            and ".." not in path.parts
            and not path.is_symlink()
        )
        if not good:
            bad.append(repr(str(path))[:200])
        return good

    kept = {aid: p for aid, p in subs.items() if paths.is_safe_id(aid) and ok(p)}
    return (main if main is not None and ok(main) else None), kept, bad


# --- sessions that died -------------------------------------------------------------------

STALE_SECONDS = 24 * 3600  # a spool with no pid to check, untouched this long, is dead
_PID = re.compile(rb'"pid": ?(\d{1,11})')
_T = re.compile(rb'"t": ?([0-9.]{1,20})')
TAIL_BYTES = 1 << 16


def process_gone(spool: Path, now: float | None = None) -> bool:
    """The Claude Code process of a spool's session has exited: its pid (the last one
    recorded) is not running, or runs a process started after the session's first hook
    (the pid was reused). A spool without pids (an older hook) counts as gone once
    untouched ``STALE_SECONDS``. Reads only the spool's first line and its tail."""
    now = time.time() if now is None else now
    try:
        with spool.open("rb") as fh:
            first = fh.readline()
            size = os.fstat(fh.fileno()).st_size
            fh.seek(max(0, size - TAIL_BYTES))
            tail = fh.read()
            mtime = os.fstat(fh.fileno()).st_mtime
    except OSError:
        return False
    # the record's own fields come before its payload ("p"), whose text may say "pid" too
    heads = [line.split(b'"p":', 1)[0] for line in (first, *tail.splitlines()[-2:])]
    pids = [m for h in heads[1:] for m in _PID.findall(h)] or _PID.findall(heads[0])
    started = _T.search(heads[0])
    if not pids or started is None:
        return now - mtime >= STALE_SECONDS
    return not _running_since(int(pids[-1]), float(started.group(1)))


def _running_since(pid: int, since: float) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, ValueError):
        return True  # another user's process (or not ours to ask): assume it runs
    started = _start_time(pid)
    return started is None or started <= since + 1.0


def _start_time(pid: int) -> float | None:
    """When process ``pid`` started (Linux /proc), else None."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        ticks = int(stat.rsplit(")", 1)[1].split()[19])
        boot = next(
            float(line.split()[1])
            for line in Path("/proc/stat").read_text().splitlines()
            if line.startswith("btime ")
        )
        return boot + ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError, StopIteration):
        return None


def recover_dead(home: Path | None = None, skip: set[str] | None = None) -> list[SessionResult]:
    """Assemble and clear the spools of sessions whose Claude Code process is gone."""
    out = []
    for spool in iter_spools(paths.spool_dir(home)):
        if (
            paths.is_safe_id(spool.stem)
            and spool.stem not in (skip or set())
            and process_gone(spool)
        ):
            out.append(_assemble(spool.stem, home, dead=True))
    return out


def _note_recovered(result: SessionResult, home: Path | None) -> None:
    path = paths.ensure_dir(paths.state_dir(home)) / "recovered.jsonl"
    unknown = sum(c.outcome == "unknown" for t in result.traces for c in t.tool_calls)
    line = {
        "t": time.time(),
        "session": result.session_id,
        "traces": len(result.traces),
        "unknown_calls": unknown,
    }
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(fd, (json.dumps(line) + "\n").encode())
    finally:
        os.close(fd)


def recovered(home: Path | None = None) -> list[dict[str, object]]:
    """The sessions assembled after their process died, oldest first."""
    try:
        text = (paths.state_dir(home) / "recovered.jsonl").read_text("utf-8", "replace")
    except OSError:
        return []
    out = []
    for raw in text.splitlines():
        try:
            rec = json.loads(raw)
        except ValueError:
            continue
        if isinstance(rec, dict):
            out.append(rec)
    return out


def main(argv: list[str] | None = None) -> int:
    """``python -m claude_bc.capture.worker SESSION``: the hook starts it at Stop and SessionEnd."""
    return run_detached(
        "claude_bc.capture.worker", sys.argv[1:] if argv is None else argv, assemble_session
    )


if __name__ == "__main__":
    sys.exit(main())
