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
import re
import stat
from pathlib import Path

from capture.errors import BCError

#: What an id that names a file may hold: a session id, an agent id, a transcript's stem.
#: No dot (so no ``..``), no slash, no leading dash (never read as an option); at most 128.
SAFE_ID = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_-]{0,127}")


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


def open_private(path: Path | str, flags: int) -> int:
    """``os.open`` a data file for this user only: never through a symlink (``O_NOFOLLOW``),
    created 0600, and refused (``PermissionError``) unless it is a regular file that this
    user owns. ``flags`` are the usual ``os.O_*`` access flags."""
    fd = os.open(path, flags | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NOCTTY, 0o600)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_uid != os.geteuid():
            raise PermissionError(f"{path}: not a regular file of this user: refused")
    except BaseException:
        os.close(fd)
        raise
    return fd


def append_private(path: Path | str, data: bytes) -> None:
    """Append ``data`` to ``path`` with :func:`open_private` (one ``write``)."""
    fd = open_private(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)


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
