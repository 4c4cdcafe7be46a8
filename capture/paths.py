"""Where claude-bc keeps its data: one folder, ``$BC_HOME`` or a per-user default.

Layout (all folders 0700, all files 0600)::

    $BC_HOME/
      spool/<session_id>.jsonl   raw hook payloads, appended by hooks/record.py
      spool/api/<session>.jsonl  raw API exchanges, appended by the proxy addon
      traces/traces.jsonl        assembled, redacted ClaudeTrace records (append-only)
      traces/index.sqlite        dedup lookup cache, rebuilt from traces.jsonl when stale
      state/<session>.lock       a live session's assembly lock (removed when it ends)
      state/transcripts.sqlite   how far import/watch have read each transcript
      sessions/<session>.json    system prompt and tool schemas seen by the proxy
      cache/                     compiled Hyperscan databases (safe to delete)
      errors.log                 one line per error of the hooks, proxy or assembler

The hook (``hooks/record.py``) must resolve the same folder without importing this
module (it runs with ``-I -S``, stdlib only), so the rule is kept in both places and
a test checks they agree.
"""

from __future__ import annotations

import os
from pathlib import Path


def data_dir() -> Path:
    """``$BC_HOME`` if set, else ``$XDG_DATA_HOME/claude-bc``, else ``~/.local/share/claude-bc``."""
    env = os.environ.get("BC_HOME")
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_DATA_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".local" / "share"
    return base / "claude-bc"


def ensure_dir(path: Path) -> Path:
    """Create ``path`` (and parents) with mode 0700; tighten it if it already exists."""
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    if path.stat().st_mode & 0o077:
        path.chmod(0o700)
    return path


def spool_dir(home: Path | None = None) -> Path:
    return (home or data_dir()) / "spool"


def traces_dir(home: Path | None = None) -> Path:
    return (home or data_dir()) / "traces"


def state_dir(home: Path | None = None) -> Path:
    return (home or data_dir()) / "state"


def error_log(home: Path | None = None) -> Path:
    return (home or data_dir()) / "errors.log"


def fallback_error_log() -> Path:
    """Where the hook logs when the data folder itself cannot be written."""
    tmp = os.environ.get("TMPDIR") or "/tmp"
    return Path(tmp) / f"claude-bc-{os.getuid()}-errors.log"
