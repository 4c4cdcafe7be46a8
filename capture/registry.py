"""How far ``bc-capture import``/``watch`` have read each transcript: one registry file,
``$BC_HOME/state/transcripts.sqlite``.

Per transcript (by resolved path) it keeps the state ``capture.backfill`` reads back: the
inode, a hash of the first bytes, the offset to go on from, the subagent files seen. One
file for all transcripts, as log shippers keep one (filebeat's registry, fluentd's
``pos_file``): a lookup is ~10 µs and a batch of files is saved in one transaction, where a
file per transcript cost two file creations and a rename each (a fifth of the time of
importing small sessions, and a folder of files that only grew).

It is a cache of progress only (``capture.cachedb``): lost or corrupt, every transcript is
read again from the start and ``ingest`` stores nothing twice. Processes share it (the
workers of a parallel import, a watcher); SQLite serialises their writes. States of older
versions (``state/transcripts/<hash>.json``) are moved in the first time it is opened.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
from collections.abc import Callable, Mapping
from contextlib import suppress
from pathlib import Path
from typing import Any, TypeVar

import orjson

from claude_bc.capture import cachedb, paths

REGISTRY_FILE = "transcripts.sqlite"
LEGACY_FOLDER = "transcripts"  # one JSON file per transcript, before the registry
VERSION = 1
_SCHEMA = "CREATE TABLE IF NOT EXISTS transcripts(path TEXT PRIMARY KEY, state TEXT NOT NULL);"

T = TypeVar("T")


class Registry:
    """The saved states of the transcripts read with one state folder."""

    def __init__(self, state_root: Path) -> None:
        self.root = state_root
        self.path = state_root / REGISTRY_FILE
        paths.ensure_dir(state_root)
        self._run(lambda db: None)  # made (or started over) now, not in the middle of a read
        self._move_legacy_states()

    def _run(self, work: Callable[[sqlite3.Connection], T]) -> T:
        try:
            return work(cachedb.connection(self.path, VERSION, _SCHEMA))
        except (sqlite3.DatabaseError, FileNotFoundError):
            # corrupt or deleted: start over; every transcript is read again, stored once
            paths.ensure_dir(self.root)
            return work(cachedb.connection(self.path, VERSION, _SCHEMA, fresh=True))

    def get(self, transcript: Path) -> dict[str, Any] | None:
        """The state saved for ``transcript``, if any."""

        def select(db: sqlite3.Connection) -> Any:
            return db.execute(
                "SELECT state FROM transcripts WHERE path = ?", (str(transcript),)
            ).fetchone()

        row = self._run(select)
        if row is None:
            return None
        try:
            state = orjson.loads(row[0])
        except orjson.JSONDecodeError:
            return None
        return state if isinstance(state, dict) else None

    def put(self, states: Mapping[str, dict[str, Any]]) -> None:
        """Save the states of several transcripts (by path) in one transaction."""
        rows = [(path, orjson.dumps(state).decode()) for path, state in states.items()]
        if rows:
            self._run(lambda db: _write(db, rows, "INSERT OR REPLACE"))

    def _move_legacy_states(self) -> None:
        """Move the JSON state files of older versions in, then delete them (a state the
        registry already has is newer, and stays)."""
        legacy = self.root / LEGACY_FOLDER
        if not legacy.is_dir():
            return
        rows = []
        for file in legacy.glob("*.json"):
            with suppress(OSError, ValueError):
                state = orjson.loads(file.read_bytes())
                if isinstance(state, dict) and isinstance(state.get("path"), str):
                    rows.append((state["path"], orjson.dumps(state).decode()))
        self._run(lambda db: _write(db, rows, "INSERT OR IGNORE"))
        shutil.rmtree(legacy, ignore_errors=True)


def _write(db: sqlite3.Connection, rows: list[tuple[str, str]], verb: str) -> None:
    with db:  # one transaction: committed, or rolled back on an error
        db.executemany(f"{verb} INTO transcripts(path, state) VALUES (?, ?)", rows)


_registries: dict[tuple[int, Path], Registry] = {}


def registry(state_root: Path) -> Registry:
    """The registry of ``state_root``, opened once per process."""
    key = (os.getpid(), state_root)
    found = _registries.get(key)
    if found is None:
        found = _registries[key] = Registry(state_root)
    return found
