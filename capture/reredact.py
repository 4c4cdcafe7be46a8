"""``bc-capture redact``: apply the current redaction rules to traces already stored.

Every line of ``traces.jsonl`` is read; a record whose redaction changes is rewritten
(validated as a ``ClaudeTrace`` first), every other line is kept byte for byte (older
versions of a trace, lines that do not parse).  The new file is written beside the old
one and swapped in with ``os.replace`` while the store's append lock is held, so a
reader sees the old file or the new one, never a mix.  The dedup index notices the new
file (another inode) and re-indexes it on its next use; it is caught up before the
command returns.  Datasets written before the rewrite are listed as stale.
"""

from __future__ import annotations

import json
import os
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from claude_bc.capture import paths
from claude_bc.capture.redact import MARKER_PREFIX, redact
from claude_bc.capture.schema import ClaudeTrace
from claude_bc.capture.store import TraceStorage, encode, open_locked

__all__ = ["Rewrite", "reredact", "stale_datasets"]

_STATE_FILE = "reredact.json"


@dataclass
class Rewrite:
    """What a pass changed."""

    lines: int = 0
    changed: list[str] = field(default_factory=list)
    kinds: Counter[str] = field(default_factory=Counter)
    kept_unreadable: int = 0
    written: bool = False


def _kinds(before: bytes, after: bytes) -> Counter[str]:
    """Markers in ``after`` that ``before`` did not have, by kind."""

    def count(data: bytes) -> Counter[str]:
        text = data.decode("utf-8", "replace")
        parts = text.split(MARKER_PREFIX)[1:]
        return Counter(p.split("]", 1)[0] for p in parts)

    return count(after) - count(before)


def _redo(line: bytes) -> bytes | None:
    """The line with the current rules applied; ``None``: unchanged or not a trace."""
    try:
        rec: Any = orjson.loads(line)
    except orjson.JSONDecodeError:
        try:
            rec = json.loads(line)
        except ValueError:
            return None
    if not isinstance(rec, dict) or not isinstance(rec.get("trace_id"), str):
        return None
    clean = redact(rec)
    if clean == rec:
        return None
    return encode(ClaudeTrace.model_validate(clean))


def reredact(store: TraceStorage, dry_run: bool = False) -> Rewrite:
    """Re-apply the redaction rules to every stored line (see the module's doc)."""
    out = Rewrite()
    path = store.path
    if not path.exists():
        return out
    try:
        # appenders wait (TraceStorage.append_lines), then append to the new file; a
        # second ``bc-capture redact`` that waited here reads the new file, not the old
        fd = open_locked(path, os.O_RDWR)
    except FileNotFoundError:
        return out
    try:
        tmp = path.with_name(f".{path.name}.{os.getpid()}.redact")
        with os.fdopen(os.dup(fd), "rb") as src:
            src.seek(0)
            out = _rewrite(src, None if dry_run else tmp)
        if out.changed and not dry_run:
            os.replace(tmp, path)
            out.written = True
            _note(out)
        else:
            tmp.unlink(missing_ok=True)
    finally:
        os.close(fd)
    if out.written:
        _catch_up_index(store)
    return out


def _rewrite(src: Any, dest: Path | None) -> Rewrite:
    out = Rewrite()
    fh = None
    if dest is not None:
        fh = os.fdopen(os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "wb")
    try:
        for raw in src:
            out.lines += 1
            body = raw.rstrip(b"\n")
            new = _redo(body) if body.strip() else None
            if new is None:
                if body.strip() and not body.lstrip().startswith(b"{"):
                    out.kept_unreadable += 1
                line = raw
            else:
                out.changed.append(orjson.loads(new)["trace_id"])
                out.kinds += _kinds(body, new)
                line = new + b"\n"
            if fh is not None:
                fh.write(line)
        if fh is not None:
            fh.flush()
            os.fsync(fh.fileno())
    finally:
        if fh is not None:
            fh.close()
    return out


def _catch_up_index(store: TraceStorage) -> None:
    from claude_bc.capture.ingest import ingest  # the index re-reads a replaced file on use

    ingest([], store)


def _note(out: Rewrite) -> None:
    """Remember when traces were last rewritten (datasets older than this are stale)."""
    state = paths.ensure_dir(paths.state_dir())
    (state / _STATE_FILE).write_text(
        json.dumps({"at": time.time(), "changed": len(out.changed)}) + "\n"
    )


def last_rewrite() -> float | None:
    try:
        data = json.loads((paths.state_dir() / _STATE_FILE).read_text())
        return float(data["at"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def stale_datasets(folders: list[Path]) -> list[Path]:
    """Dataset folders (``bc-train dataset`` output) under ``folders`` built before the
    last rewrite: they may still hold what is now redacted."""
    at = last_rewrite()
    if at is None:
        return []
    out = []
    for folder in folders:
        for seed in sorted(folder.glob("**/bc_dataset.jsonl")):
            if seed.stat().st_mtime < at:
                out.append(seed.parent)
    return out
