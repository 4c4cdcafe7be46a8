"""Output folders (``--out``): never someone else's folder, never half written.

A folder claude-bc wrote holds :data:`MARKER`. ``--out`` onto an existing folder that is
not empty and has no marker is refused (it may be the user's own work) unless ``force``.
The new content is written into a temporary sibling and renamed into place at the end,
so a run that fails leaves the previous output exactly as it was.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from claude_bc.capture.errors import BCError

MARKER = ".claude-bc-output"


def is_ours(out: Path) -> bool:
    return (out / MARKER).is_file()


def check(out: Path, force: bool = False) -> None:
    """Raise :class:`BCError` unless ``out`` may be replaced: missing, an empty folder,
    a folder claude-bc wrote, or ``force``."""
    if out.is_symlink() or (out.exists() and not out.is_dir()):
        raise BCError(f"--out {out}: exists and is not a folder (left unchanged)")
    if not out.exists() or force or is_ours(out):
        return
    if any(out.iterdir()):
        raise BCError(
            f"--out {out}: a folder claude-bc did not write, and not empty: left unchanged "
            "(choose another folder, or --force to replace it)"
        )


@contextmanager
def replacing(out: Path, what: str, force: bool = False) -> Iterator[Path]:
    """Yield a temporary sibling of ``out`` to write into; on success it replaces ``out``
    (checked with :func:`check`), on failure it is removed and ``out`` is untouched."""
    check(out, force)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        (tmp / MARKER).write_text(f"written by claude-bc ({what}); --out may replace it\n")
        yield tmp
        check(out, force)  # still ours (nobody put files there meanwhile)
        old = out.with_name(f".{out.name}.old-{os.getpid()}")
        if out.exists():
            out.rename(old)
        tmp.rename(out)
        shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
