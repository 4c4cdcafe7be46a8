"""Write traces from any source into the store without duplicates: ``ingest(traces)``.

Every capture source (the hook worker, ``bc-capture import``/``watch``, the proxy) hands
its finished traces here. A trace that is already stored is merged with the stored
version through the one assembler (``from_trace`` makes the stored trace just another
source, ``merge_turn`` keeps the richer value of every field and the union of
``sources``), and a version is appended only when the result differs from what is
stored. A stored trace matches an incoming one by

* ``trace_id`` (uuid5 of session + prompt id: every source derives the same id), else
* the same session and prompt id (a trace stored under another id: a proxy trace that
  got its prompt id by a merge), else
* the same session and prompt text, started within ``NEAR_SECONDS``, when at most one of
  the two has a prompt id (the nearest wins: a session may repeat a prompt such as
  "continue", and two turns that both have a prompt id are told apart by it), else
* the same prompt text started at the same instant in another session file (an
  older ``--resume`` copies the conversation into a new session).

The per-run cost must not grow with the store (the hook worker runs this after every
turn), so lookups go through a sidecar index, ``traces/index.sqlite``: trace id → byte
offset, length and digest of the latest version, plus the match keys above. It is only
a cache: ``traces.jsonl`` stays the source of truth. The index remembers how far into
the file it has read (and a hash of the bytes just before that point); lines appended by
any writer since are read in on the next run, and a store that was replaced or cut
short is indexed again from the start. One ``flock`` on ``traces/index.lock`` serialises
ingests of all processes.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import sqlite3
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson
import xxhash
from pydantic import ValidationError

from claude_bc.capture import cachedb, paths
from claude_bc.capture.schema import ClaudeTrace, SchemaError, load_trace
from claude_bc.capture.store import TraceStorage, encode
from claude_bc.capture.turns import SOURCE_PRIORITY, from_trace, merge_turn, to_trace

INDEX_FILE = "index.sqlite"
LOCK_FILE = "index.lock"
NEAR_SECONDS = 300.0  # a prompt-less trace matches a stored one started this close
_TAIL = 64  # bytes before the indexed end whose hash tells the file was not replaced

# An index of another layout is dropped and rebuilt from traces.jsonl (it is only a cache).
INDEX_VERSION = 3  # 3: xxh3 digests
_SCHEMA = """
CREATE TABLE IF NOT EXISTS traces(
    trace_id TEXT PRIMARY KEY,
    offset INTEGER NOT NULL,
    length INTEGER NOT NULL,
    digest BLOB NOT NULL,
    session_prompt TEXT,
    started REAL,
    turn_key TEXT,
    prompt_key TEXT,
    prompted INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS traces_session_prompt ON traces(session_prompt);
CREATE INDEX IF NOT EXISTS traces_turn_key ON traces(turn_key);
CREATE INDEX IF NOT EXISTS traces_prompt_key ON traces(prompt_key);
CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value);
"""


@dataclass
class IngestReport:
    """What one ``ingest`` did: traces new to the store, merged into a stored one, or
    already stored as they are; ``written`` holds the versions appended."""

    new: int = 0
    merged: int = 0
    unchanged: int = 0
    written: list[ClaudeTrace] = field(default_factory=list)

    def add(self, other: IngestReport) -> None:
        """Add the counts of ``other`` (not its traces: a summary must not hold them all)."""
        self.new += other.new
        self.merged += other.merged
        self.unchanged += other.unchanged


# --- keys and digests ---------------------------------------------------------------------


def _digest(line: bytes) -> bytes:
    # only tells whether a version changed (not a security boundary): the fastest hash
    return xxhash.xxh3_128_digest(line)


def _key(*parts: str) -> str:
    return hashlib.blake2b("\n".join(parts).encode(), digest_size=16).hexdigest()


@dataclass(frozen=True)
class _Keys:
    session_prompt: str | None  # session + prompt text
    started: float | None
    turn_key: str | None  # prompt text + start instant
    prompt_key: str | None  # session + Claude Code's prompt id
    prompted: bool  # the trace has a prompt id

    def row(self) -> tuple[str | None, float | None, str | None, str | None, bool]:
        """The index columns."""
        return self.session_prompt, self.started, self.turn_key, self.prompt_key, self.prompted

    @classmethod
    def of(cls, session: Any, prompt_id: Any, prompt: Any, started: float | None) -> _Keys:
        text = prompt.strip() if isinstance(prompt, str) else ""
        return cls(
            _key(str(session), text) if session and text else None,
            started,
            _key(text, f"{started:.6f}") if started is not None and text else None,
            _key(str(session), str(prompt_id)) if session and prompt_id else None,
            bool(prompt_id),
        )


def _epoch(started: Any) -> float | None:
    """A stored record's ``started_at`` (ISO string) as seconds since the epoch."""
    try:
        return datetime.fromisoformat(started).timestamp() if isinstance(started, str) else None
    except ValueError:
        return None


def _keys_of(trace: ClaudeTrace) -> _Keys:
    started = trace.started_at.timestamp() if trace.started_at else None
    return _Keys.of(trace.session_id, trace.prompt_id, trace.user_prompt, started)


# --- the index ----------------------------------------------------------------------------


class _Index:
    """The sqlite sidecar of one store; use under the ingest lock only."""

    def __init__(self, store: TraceStorage, db: sqlite3.Connection) -> None:
        self.store = store
        self.db = db

    # meta

    def _meta(self, key: str) -> Any:
        row = self.db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return row[0] if row else None

    def _set_meta(self, **values: Any) -> None:
        self.db.executemany(
            "INSERT OR REPLACE INTO meta(key, value) VALUES (?, ?)", list(values.items())
        )

    # keeping up with the file

    def _tail_hash(self, fh: Any, end: int) -> bytes:
        start = max(0, end - _TAIL)
        fh.seek(start)
        return _digest(fh.read(end - start))

    def catch_up(self) -> None:
        """Index what was appended since the last run; start over if the file was replaced."""
        path = self.store.path
        try:
            st = path.stat()
        except FileNotFoundError:
            self._reset(None)
            return
        covered = int(self._meta("covered") or 0)
        with path.open("rb") as fh:
            if (
                self._meta("inode") != st.st_ino
                or st.st_size < covered
                or (covered and self._meta("tail") != self._tail_hash(fh, covered))
            ):
                self._reset(st.st_ino)
                covered = 0
            if st.st_size == covered:
                return
            end = self._scan(fh, covered)
            self._set_meta(covered=end, tail=self._tail_hash(fh, end))
        self.db.commit()

    def _reset(self, inode: int | None) -> None:
        self.db.execute("DELETE FROM traces")
        self._set_meta(inode=inode, covered=0, tail=None)
        self.db.commit()

    def _scan(self, fh: Any, offset: int) -> int:
        """Index every whole line from ``offset``; returns the offset after the last one."""
        fh.seek(offset)
        rows = []
        for raw in fh:
            if not raw.endswith(b"\n"):
                break  # torn or being written: the store's readers report it
            line = raw[:-1]
            rec = _record(line)
            if rec is not None:
                k = _Keys.of(
                    rec.get("session_id"),
                    rec.get("prompt_id"),
                    rec.get("user_prompt"),
                    _epoch(rec.get("started_at")),
                )
                rows.append((rec["trace_id"], offset, len(line), _digest(line), *k.row()))
            offset += len(raw)
            if len(rows) >= 1000:
                self._insert(rows)
                rows = []
        self._insert(rows)
        return offset

    def appended(
        self, before: int, offsets: list[int], lines: list[bytes], traces: list[ClaudeTrace]
    ) -> None:
        """Index the lines of ``traces`` this process just appended at ``offsets`` (the
        file was ``before`` bytes long) without reading them back; if anything else was
        written since the last catch-up (a writer outside the ingest lock), read it all."""
        if not lines:
            return
        if int(self._meta("covered") or 0) != before:
            self.catch_up()
            return
        rows = []
        for trace, offset, line in zip(traces, offsets, lines, strict=True):
            k = _keys_of(trace)
            rows.append((trace.trace_id, offset, len(line), _digest(line), *k.row()))
        self._insert(rows)
        end = offsets[-1] + len(lines[-1]) + 1
        with self.store.path.open("rb") as fh:
            inode = os.fstat(fh.fileno()).st_ino
            self._set_meta(inode=inode, covered=end, tail=self._tail_hash(fh, end))
        self.db.commit()

    def _insert(self, rows: list[tuple[Any, ...]]) -> None:
        self.db.executemany("INSERT OR REPLACE INTO traces VALUES (?,?,?,?,?,?,?,?,?)", rows)

    # lookups

    def find(self, trace: ClaudeTrace, keys: _Keys) -> tuple[str, bytes] | None:
        """(trace id, digest) of the stored trace ``trace`` is a version of, if any."""
        # most traces of an import are new: one query tells that none of the keys is known
        known = self.db.execute(
            "SELECT 1 FROM traces WHERE trace_id = ? OR prompt_key = ? OR session_prompt = ? "
            "OR turn_key = ? LIMIT 1",
            (trace.trace_id, keys.prompt_key, keys.session_prompt, keys.turn_key),
        ).fetchone()
        if known is None:
            return None
        row = self.db.execute(
            "SELECT trace_id, digest FROM traces WHERE trace_id = ?", (trace.trace_id,)
        ).fetchone()
        if row is None and keys.prompt_key:
            # stored under another id (a proxy trace that got the prompt id by a merge)
            row = self.db.execute(
                "SELECT trace_id, digest FROM traces WHERE prompt_key = ? LIMIT 1",
                (keys.prompt_key,),
            ).fetchone()
        if row is None and keys.session_prompt and keys.started is not None:
            # the same prompt in the same session, near in time; two turns that both have
            # a prompt id are told apart by it (a session may say "continue" twice)
            row = self.db.execute(
                "SELECT trace_id, digest FROM traces WHERE session_prompt = ? "
                f"{'AND prompted = 0 ' if keys.prompted else ''}"
                "AND started BETWEEN ? AND ? ORDER BY abs(started - ?) LIMIT 1",
                (
                    keys.session_prompt,
                    keys.started - NEAR_SECONDS,
                    keys.started + NEAR_SECONDS,
                    keys.started,
                ),
            ).fetchone()
        if row is None and keys.turn_key:
            row = self.db.execute(
                "SELECT trace_id, digest FROM traces WHERE turn_key = ? LIMIT 1", (keys.turn_key,)
            ).fetchone()
        return (str(row[0]), bytes(row[1])) if row else None

    def load(self, trace_id: str) -> ClaudeTrace | None:
        row = self.db.execute(
            "SELECT offset, length FROM traces WHERE trace_id = ?", (trace_id,)
        ).fetchone()
        if row is None:
            return None
        with self.store.path.open("rb") as fh:
            fh.seek(row[0])
            rec = _record(fh.read(row[1]))
        try:
            return load_trace(rec) if rec is not None else None
        except (ValidationError, SchemaError):
            return None


def _record(line: bytes) -> dict[str, Any] | None:
    try:
        rec = orjson.loads(line)
    except orjson.JSONDecodeError:
        try:
            rec = json.loads(line)
        except ValueError:
            return None
    if isinstance(rec, dict) and isinstance(rec.get("trace_id"), str):
        return rec
    return None


@contextmanager
def _locked_index(store: TraceStorage, fresh: bool = False) -> Iterator[_Index]:
    """The store's index, caught up with traces.jsonl, under the ingest lock."""
    assert store.root is not None
    root = paths.ensure_dir(store.root)
    lock = os.open(root / LOCK_FILE, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX)
        index = _Index(store, cachedb.connection(root / INDEX_FILE, INDEX_VERSION, _SCHEMA, fresh))
        index.catch_up()
        yield index
    finally:
        os.close(lock)


# --- merging ------------------------------------------------------------------------------


def _rank(trace: ClaudeTrace) -> int:
    return min((SOURCE_PRIORITY.index(s) for s in trace.sources), default=len(SOURCE_PRIORITY))


def merge_traces(stored: ClaudeTrace, incoming: ClaudeTrace) -> ClaudeTrace:
    """One trace from two versions of the same turn; keeps the stored id and rating."""
    if not (stored.session_id or incoming.session_id):
        merged = incoming  # not a captured session (manual): the newer version replaces it
    else:
        a, b = (incoming, stored) if _rank(incoming) < _rank(stored) else (stored, incoming)
        merged = to_trace(merge_turn(from_trace(a), from_trace(b)))
    extra = {**(stored.model_extra or {}), **(merged.model_extra or {})}
    return merged.model_copy(
        update={
            "trace_id": stored.trace_id,
            "rating": merged.rating or stored.rating,
            "rating_note": merged.rating_note or stored.rating_note,
            **extra,
        }
    )


def ingest(traces: Iterable[ClaudeTrace], store: TraceStorage | None = None) -> IngestReport:
    """Store new traces, merge those already stored, skip what changes nothing."""
    store = store or TraceStorage(paths.traces_dir())
    batch = list(traces)
    # encoded before the lock is taken: most traces are new and written as they come, and
    # parallel imports then only wait for each other's lookups and writes
    lines = {id(t): encode(t) for t in batch}
    try:
        return _ingest(batch, lines, store, fresh=False)
    except sqlite3.DatabaseError:
        # a corrupt index: rebuild it from traces.jsonl (what was appended stays appended,
        # and the second pass finds it there)
        return _ingest(batch, lines, store, fresh=True)


def _ingest(
    traces: list[ClaudeTrace], lines: dict[int, bytes], store: TraceStorage, fresh: bool
) -> IngestReport:
    """``lines``: the encoded traces, by ``id``."""
    report = IngestReport()
    pending = _Pending()  # versions to append, and their keys: repeats inside one call
    with _locked_index(store, fresh) as index:
        for trace in traces:
            keys = _keys_of(trace)
            target = pending.find(trace, keys)
            found = None if target else index.find(trace, keys)
            if (
                found
                and found[0] in pending.traces
                and _other_turn(pending.traces[found[0]], trace)
            ):
                found = None  # the index's row is older than this call's merge into it
            if found and found[0] != trace.trace_id and found[0] not in pending.traces:
                near = index.load(found[0])  # matched by prompt text alone: the same turn?
                if near is not None and _other_turn(near, trace):
                    found = None
            if target is None and found is None:
                report.new += 1
                pending.remember(trace, keys)
                continue
            if found and found[1] == _digest(lines[id(trace)]):
                report.unchanged += 1
                continue
            tid = target or (found[0] if found else trace.trace_id)
            stored = pending.traces.get(tid) or index.load(tid)
            merged = merge_traces(stored, trace) if stored else trace
            if stored is not None and merged.record() == stored.record():
                report.unchanged += 1
                continue
            report.merged += 1
            pending.remember(merged, _keys_of(merged))
        report.written = list(pending.traces.values())
        out = [lines.get(id(t)) or encode(t) for t in report.written]
        before, offsets = store.append_lines(out)
        index.appended(before, offsets, out, report.written)
    return report


@dataclass
class _Pending:
    """The versions one ``ingest`` call will append, found by the same keys as the index."""

    traces: dict[str, ClaudeTrace] = field(default_factory=dict)  # by (stored) trace id
    keys: dict[str, str] = field(default_factory=dict)  # id, prompt or turn key -> trace id
    by_prompt: dict[str, list[str]] = field(default_factory=dict)  # session+prompt -> ids

    def find(self, trace: ClaudeTrace, keys: _Keys) -> str | None:
        for k in (trace.trace_id, keys.prompt_key, keys.turn_key):
            if k and k in self.keys and not _other_turn(self.traces[self.keys[k]], trace):
                return self.keys[k]
        for tid in self.by_prompt.get(keys.session_prompt or "", []):
            if not _other_turn(self.traces[tid], trace):
                return tid
        return None

    def remember(self, trace: ClaudeTrace, keys: _Keys) -> None:
        self.traces[trace.trace_id] = trace
        for k in (trace.trace_id, keys.prompt_key, keys.turn_key):
            if k:
                self.keys[k] = trace.trace_id
        if keys.session_prompt:
            same = self.by_prompt.setdefault(keys.session_prompt, [])
            if trace.trace_id not in same:
                same.append(trace.trace_id)


def _other_turn(a: ClaudeTrace, b: ClaudeTrace) -> bool:
    """Two turns, whatever else they share: both have a prompt id and they differ, or
    both come from transcripts alone (whose prompt lines carry exact times: older
    versions wrote no prompt id) and started at different instants (a user who typed
    the same prompt twice in a session)."""
    if a.prompt_id and b.prompt_id:
        return a.prompt_id != b.prompt_id
    only = {"transcript"}
    return bool(
        set(a.sources) == only == set(b.sources)
        and a.started_at
        and b.started_at
        and a.started_at != b.started_at
    )
