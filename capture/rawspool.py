"""Raw spools hold what Claude Code sent and received, secrets included, until assembled.

Once a spool's lines are assembled into (redacted) traces they are redacted in place:
every line is replaced by its redacted form, marked ``"redacted":1`` so a later pass skips
it, and a line that cannot be read (already reported by the assembler) is removed. The
rewrite happens under the spool's ``flock``, which the hook and the proxy take before they
append, so no record is lost or torn. An ended session's spool is deleted instead.
"""

from __future__ import annotations

import fcntl
import json
import os
from pathlib import Path

from claude_bc.capture import paths, safejson

MARK = b'{"redacted":1,'


def redact_line(line: bytes) -> bytes | None:
    """The redacted form of one spool line (``None``: unreadable, to be removed)."""
    from claude_bc.capture.redact import redact

    try:
        rec = safejson.loads(line)
    except ValueError:
        return None
    if not isinstance(rec, dict) or not rec:
        return None
    rec.pop("redacted", None)
    clean = {"redacted": 1, **redact(rec)}
    return json.dumps(clean, ensure_ascii=False, separators=(",", ":")).encode() + b"\n"


def redact_in_place(path: Path) -> int:
    """Redact the lines of ``path`` not yet redacted; how many lines were rewritten."""
    try:
        fd = paths.open_private(path, os.O_RDWR)
    except FileNotFoundError:
        return 0
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        chunks = []
        while chunk := os.read(fd, 1 << 20):
            chunks.append(chunk)
        out: list[bytes] = []
        changed = 0
        for line in b"".join(chunks).splitlines(keepends=True):
            if line.startswith(MARK) and line.endswith(b"\n"):
                out.append(line)
                continue
            changed += 1
            clean = redact_line(line)
            if clean is not None:
                out.append(clean)
        if changed:
            data = b"".join(out)
            os.lseek(fd, 0, os.SEEK_SET)
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.ftruncate(fd, len(data))
            os.fsync(fd)
        return changed
    finally:
        os.close(fd)
