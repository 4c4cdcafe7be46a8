"""The side error log: one line per error of the hooks, the proxy and the assembler.

Capture must never disturb Claude Code, so its errors are not raised; they are
written here, and ``bc-capture status`` shows the last ones.
Line format: ``<UTC time>\\t<component>\\t<session>\\t<message>``.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

from capture import paths


@dataclass(frozen=True)
class ErrorLine:
    time: str
    component: str
    session: str
    message: str


def log_error(component: str, session: str, message: str, home: Path | None = None) -> None:
    """Append one line; falls back to the per-user temp log if the data folder fails."""
    line = (
        "\t".join(
            [
                time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                component,
                session or "-",
                " ".join(message.split())[:500],
            ]
        )
        + "\n"
    )
    primary = paths.error_log(home)
    for path in (primary, paths.fallback_error_log()):
        try:
            if path == primary:
                paths.ensure_dir(path.parent)
            fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            try:
                os.write(fd, line.encode("utf-8", "replace"))
            finally:
                os.close(fd)
            return
        except OSError:
            continue


def recent_errors(limit: int = 10, home: Path | None = None) -> list[ErrorLine]:
    """The last ``limit`` lines of both logs, oldest first."""
    lines: list[ErrorLine] = []
    for path in (paths.error_log(home), paths.fallback_error_log()):
        try:
            text = path.read_text("utf-8", "replace")
        except OSError:
            continue
        for raw in text.splitlines():
            parts = raw.split("\t", 3)
            if len(parts) == 4:
                lines.append(ErrorLine(*parts))
    lines.sort(key=lambda e: e.time)
    return lines[-limit:] if limit else lines
