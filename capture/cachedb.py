"""SQLite files that only cache what can be rebuilt: the trace index (``capture.ingest``)
and the transcript registry (``capture.registry``).

Both are 0600 files written without a journal file or fsync: a torn one is detected by
SQLite and started over, never trusted. The layout version is ``PRAGMA user_version``;
a file of another layout has its tables dropped and made anew. Each process keeps one
connection per file open between calls (an import touches them once per batch), never
one made before a fork, and a new one when the file was replaced (another process
rebuilt it).
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

# a busy file (another process's write) is waited for this long before it is an error
BUSY_SECONDS = 60.0


def connect(path: Path, version: int, schema: str) -> sqlite3.Connection:
    """A new connection to the cache at ``path`` (made if missing) with ``schema``."""
    if not path.exists():
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600))
    db = sqlite3.connect(
        path, isolation_level="DEFERRED", check_same_thread=False, timeout=BUSY_SECONDS
    )
    # no journal file next to it (the folder's files must stay 0600) and no fsync
    db.execute("PRAGMA journal_mode=MEMORY")
    db.execute("PRAGMA synchronous=OFF")
    if db.execute("PRAGMA user_version").fetchone()[0] != version:
        tables = db.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall()
        for (name,) in tables:
            db.execute(f'DROP TABLE IF EXISTS "{name}"')
        db.execute(f"PRAGMA user_version = {version}")
    db.executescript(schema)
    return db


_open: dict[tuple[int, Path], tuple[int, sqlite3.Connection]] = {}


def connection(path: Path, version: int, schema: str, fresh: bool = False) -> sqlite3.Connection:
    """This process's connection to the cache at ``path``; ``fresh``: delete the file
    first and start over (it was found corrupt)."""
    key = (os.getpid(), path)
    cached = _open.pop(key, None)
    if cached and not fresh:
        try:
            same = os.stat(path).st_ino == cached[0]
        except FileNotFoundError:
            same = False
        if same:
            _open[key] = cached
            return cached[1]
    if cached:
        cached[1].close()
    if fresh:
        path.unlink(missing_ok=True)
    db = connect(path, version, schema)
    _open[key] = (path.stat().st_ino, db)
    return db
