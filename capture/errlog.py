"""The side error log: one line per error of the hooks, the proxy and the assembler.

Capture must never disturb Claude Code, so its errors are not raised; they are
written here, and ``bc-capture status`` shows the last ones.
Line format: ``<UTC time>\\t<component>\\t<session>\\t<message>``.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from claude_bc.capture import paths
from claude_bc.hooks import spooler


@dataclass(frozen=True)
class ErrorLine:
    time: str
    component: str
    session: str
    message: str


def log_error(component: str, session: str, message: str, home: Path | None = None) -> None:
    """Append one line; falls back to the per-user temp log if the data folder fails."""
    spooler.log_error(str(home or paths.data_dir()), session, message, component)


def run_detached(component: str, argv: list[str], assemble: Callable[[str], Any]) -> int:
    """Body of a detached ``python -m ... SESSION_ID`` worker (nobody reads its output).

    ``assemble(session)`` returns an object with ``problems``; those and any exception
    go to the error log, the only place a detached process can report to.
    """
    if len(argv) != 1:
        print(f"usage: python -m {component} SESSION_ID", file=sys.stderr)
        return 2
    session = argv[0]
    try:
        for problem in assemble(session).problems:
            log_error(component, session, str(problem))
    except Exception as exc:  # noqa: BLE001 - detached: the log is the only place to report
        log_error(component, session, f"{type(exc).__name__}: {exc}")
        return 1
    return 0


def recent_errors(limit: int = 10, home: Path | None = None) -> list[ErrorLine]:
    """The last ``limit`` lines of both logs, oldest first."""
    lines: list[ErrorLine] = []
    for path in (paths.error_log(home), paths.fallback_error_log()):
        try:
            fd = paths.open_private(path, os.O_RDONLY)  # not a planted file or link
            with os.fdopen(fd, "rb") as fh:
                text = fh.read().decode("utf-8", "replace")
        except OSError:
            continue
        for raw in text.splitlines():
            parts = raw.split("\t", 3)
            if len(parts) == 4:
                lines.append(ErrorLine(*parts))
    lines.sort(key=lambda e: e.time)
    return lines[-limit:] if limit else lines
