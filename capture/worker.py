"""Assemble one session's spool into traces: ``python -m capture.worker SESSION_ID``.

``hooks/record.py`` starts this detached at Stop, SubagentStop and SessionEnd. It reads
the session's spool and the transcript the hooks point at, assembles one trace per
user prompt the hooks saw, hands them to ``capture.ingest`` (which merges them with
what is stored and appends only what changed, so re-running is a no-op), and deletes
the spool once the session has ended. Runs for one session are serialised by a lock.
Errors go to the side log, never to Claude Code.
"""

from __future__ import annotations

import fcntl
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

from capture import paths
from capture.errlog import run_detached
from capture.ingest import ingest
from capture.schema import ClaudeTrace
from capture.spool import read_spool, session_lock, transcript_paths, turns_from_hooks
from capture.store import Problem, TraceStorage
from capture.transcript import turns_from_transcript
from capture.turns import assemble


@dataclass
class SessionResult:
    session_id: str
    traces: list[ClaudeTrace] = field(default_factory=list)
    written: int = 0
    ended: bool = False
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


def assemble_session(session_id: str, home: Path | None = None) -> SessionResult:
    """Assemble (or re-assemble) one session from its spool; idempotent."""
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
        hook_turns = turns_from_hooks(read.events)
        seen = {t.prompt_id for t in hook_turns}
        transcript, subagents = transcript_paths(read.events)
        transcript_turns = []
        if transcript and transcript.is_file():
            turns, problems = turns_from_transcript(transcript, subagents)
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
        result.ended = any(e.name == "SessionEnd" for e in read.events)
        if result.ended and _drop_spool(spool, size):
            lock.unlink(missing_ok=True)  # the session is done: no lock file is left behind
        return result
    finally:
        os.close(lock_fd)


def main(argv: list[str] | None = None) -> int:
    """``python -m capture.worker SESSION``: what the hook starts at Stop and SessionEnd."""
    return run_detached("capture.worker", sys.argv[1:] if argv is None else argv, assemble_session)


if __name__ == "__main__":
    sys.exit(main())
