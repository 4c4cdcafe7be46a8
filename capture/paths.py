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
package (it runs with ``-I -S``, stdlib only), so the rule and the private-file opener
live in ``hooks/spooler.py`` and this module takes them from there.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from claude_bc.capture.errors import BCError
from claude_bc.hooks import spooler
from claude_bc.hooks.spooler import open_private as open_private

#: What an id that names a file may hold: a session id, an agent id, a transcript's stem.
#: No dot (so no ``..``), no slash, no leading dash (never read as an option); at most 128.
SAFE_ID = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_-]{0,127}")


def data_dir() -> Path:
    """``$BC_HOME`` if set, else ``$XDG_DATA_HOME/claude-bc``, else ``~/.local/share/claude-bc``."""
    return Path(spooler.data_dir())


def ensure_dir(path: Path) -> Path:
    """Create ``path`` (and parents) with mode 0700; tighten it if it already exists."""
    spooler.ensure_dir(str(path))
    return path


def spool_dir(home: Path | None = None) -> Path:
    return (home or data_dir()) / "spool"


def traces_dir(home: Path | None = None) -> Path:
    return (home or data_dir()) / "traces"


def state_dir(home: Path | None = None) -> Path:
    return (home or data_dir()) / "state"


def error_log(home: Path | None = None) -> Path:
    return Path(spooler.error_logs(str(home or data_dir()))[0])


def fallback_error_log() -> Path:
    """Where errors go when the data folder itself cannot be written."""
    return Path(spooler.error_logs(str(data_dir()))[1])


def projects_dir(explicit: Path | None = None) -> Path:
    """Where Claude Code keeps its session transcripts: ``explicit``, else
    ``$CLAUDE_CONFIG_DIR/projects``, else ``~/.claude/projects``."""
    if explicit is not None:
        return explicit.expanduser()
    config = os.environ.get("CLAUDE_CONFIG_DIR")
    return (Path(config).expanduser() if config else Path.home() / ".claude") / "projects"


def is_safe_id(value: object) -> bool:
    """Whether ``value`` may name a file in the data folder (:data:`SAFE_ID`).

    >>> [is_safe_id(v) for v in ("3f2a-9c_1", "../victim", "a/b", "-rf", "", "x.y")]
    [True, False, False, False, False, False]
    """
    return isinstance(value, str) and SAFE_ID.fullmatch(value) is not None


def check_id(value: str, what: str = "session id") -> str:
    """``value`` if :func:`is_safe_id`, else a :class:`BCError` naming it."""
    if not is_safe_id(value):
        raise BCError(
            f"not a valid {what}: {value[:80]!r} (letters, digits, '-' and '_' only, at most 128)"
        )
    return value


def open_output(path: Path) -> int:
    """A file the user named with ``-o``, opened for writing (truncated) and made 0600
    whatever mode it had before; never through a symlink."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    try:
        os.fchmod(fd, 0o600)
    except BaseException:
        os.close(fd)
        raise
    return fd
