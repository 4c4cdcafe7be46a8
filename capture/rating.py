"""Ratings: thumbs up or down on a stored trace, from the CLI or from inside Claude Code.

* ``rate(store, trace, "up", note)`` appends a new version of the trace carrying ``rating``
  and ``rating_note`` (the note is redacted like every captured string).
* A rating survives re-assembly: ``capture.ingest`` keeps the stored rating when the hook
  worker merges a re-assembled turn into the stored one.
* The ``/bc-rate`` slash command: a markdown command file that ``bc-capture install`` writes
  next to the settings (``.claude/commands/bc-rate.md``, or ``~/.claude/commands/`` for the
  user scope). Its body runs the fixed line ``<python> -m claude_bc.capture.cli rate --last
  --args-from-hook`` through Claude Code's ``!`` bash syntax. The user's words never reach
  that shell: Claude Code pastes ``$ARGUMENTS`` into a ``!`` line as plain text (a heredoc
  around it is ended by a note holding its terminator), so the body names no placeholder.
  The arguments come from the capture hook instead: Claude Code hands the typed
  ``/bc-rate down …`` to the ``UserPromptSubmit`` hook as JSON on stdin before it runs the
  command's ``!`` line, the hook appends it to the session's spool, and
  :func:`args_from_hook` reads it back from there (``$CLAUDE_CODE_SESSION_ID`` names the
  session). No shell parses the note at any point.
"""

from __future__ import annotations

import os
import shlex
from collections.abc import Iterable
from datetime import datetime
from pathlib import Path
from typing import Literal

from claude_bc.capture.errors import BCError
from claude_bc.capture.gates import is_rating_command
from claude_bc.capture.redact import redact_text
from claude_bc.capture.schema import ClaudeTrace
from claude_bc.capture.store import TraceStorage

Rating = Literal["up", "down"]
COMMAND_NAME = "bc-rate"
COMMAND_MARKER = (
    "<!-- claude-bc: written by `bc-capture install`; `bc-capture uninstall` removes it -->"
)
MAX_NOTE = 2000


def parse_rating(words: Iterable[str]) -> tuple[Rating | None, str | None]:
    """``up|down|clear [note words]`` → (rating, note); ``clear`` removes the rating.

    >>> parse_rating(["down", "missed", "the", "test"])
    ('down', 'missed the test')
    """
    parts = " ".join(words).split(maxsplit=1)
    if not parts:
        raise BCError("say how to rate it: up, down or clear (then an optional note)")
    value = parts[0].lower().strip("\"'")
    aliases = {"up": "up", "+1": "up", "good": "up", "down": "down", "-1": "down", "bad": "down"}
    note = parts[1].strip() if len(parts) > 1 else None
    if value == "clear":
        return None, note or None
    if value not in aliases:
        raise BCError(f"rating must be up, down or clear, not {parts[0]!r}")
    return aliases[value], note or None  # type: ignore[return-value]


def args_from_hook(session: str, home: Path | None = None) -> str:
    """The arguments of the ``/bc-rate`` command just typed in ``session``: the text after
    the command name in the last prompt the ``UserPromptSubmit`` hook spooled."""
    from claude_bc.capture import paths
    from claude_bc.capture.spool import read_spool

    if not paths.is_safe_id(session):
        raise BCError("/bc-rate runs inside Claude Code (no CLAUDE_CODE_SESSION_ID here)")
    spool = paths.spool_dir(home) / f"{session}.jsonl"
    try:
        events = read_spool(spool).events
    except OSError:
        events = []
    prompts = [e.payload.get("prompt") for e in events if e.name == "UserPromptSubmit"]
    typed = prompts[-1].strip() if prompts and isinstance(prompts[-1], str) else ""
    name = typed.split(maxsplit=1)[0] if typed else ""
    # "/bc-rate", or "/plugin:bc-rate" when it came with the plugin
    if name.rsplit(":", 1)[-1].lstrip("/") != COMMAND_NAME or not name.startswith("/"):
        raise BCError(
            "cannot find the /bc-rate arguments: the claude-bc capture hook did not record "
            "this prompt (run `bc-capture install`, or rate with `bc-capture rate --last`)"
        )
    return typed[len(name) :].strip()


def _when(trace: ClaudeTrace) -> datetime:
    moment = trace.started_at or trace.ended_at
    return moment if moment is not None else datetime.min.astimezone()


def last_trace(traces: Iterable[ClaudeTrace], session_id: str | None = None) -> ClaudeTrace:
    """The latest real turn (``/bc-rate`` turns skipped): of ``session_id`` when it has one,
    else of any session."""
    work = sorted((t for t in traces if not is_rating_command(t)), key=_when)
    if not work:
        raise BCError("no trace to rate yet: nothing has been captured")
    own = [t for t in work if session_id and t.session_id == session_id]
    return (own or work)[-1]


def rate(
    store: TraceStorage, trace: ClaudeTrace, rating: Rating | None, note: str | None
) -> ClaudeTrace:
    """Append the rated version of ``trace`` to ``store`` and return it."""
    clean = redact_text(note[:MAX_NOTE]) if note else None
    rated = trace.model_copy(update={"rating": rating, "rating_note": clean})
    store.append([rated])
    return rated


# --- the /bc-rate slash command ------------------------------------------------------------


def command_path(scope: str, project_dir: Path, home: Path) -> Path:
    """Where Claude Code looks for the command: the project's or the user's commands folder."""
    base = home if scope == "user" else project_dir
    return base / ".claude" / "commands" / f"{COMMAND_NAME}.md"


def command_prefix(python: Path, bc_home: Path | None) -> str:
    """``[BC_HOME=<home> ]<python> -m claude_bc.capture.cli``, quoted for the shell."""
    py = shlex.quote(os.path.abspath(python))
    cmd = f"{py} -m claude_bc.capture.cli"
    return f"BC_HOME={shlex.quote(os.path.abspath(bc_home))} {cmd}" if bc_home else cmd


def command_text(python: Path, bc_home: Path | None) -> str:
    """The command file: frontmatter, our marker, the rating shell line, an instruction."""
    prefix = command_prefix(python, bc_home)
    return (
        "---\n"
        "description: Rate the last captured claude-bc turn (up or down, optional note)\n"
        "argument-hint: up|down|clear [note]\n"
        # the exact prefix, so the rating runs without a permission prompt and nothing else does
        f"allowed-tools: Bash({prefix} rate:*)\n"
        "---\n"
        f"{COMMAND_MARKER}\n"
        # no placeholder on purpose: the arguments come from the hook, never via a shell
        f"!`{prefix} rate --last --args-from-hook`\n"
        "\n"
        "The line above is the result of rating your previous answer for claude-bc. "
        "Reply with exactly that line and nothing else; do not use any tool.\n"
    )


def is_our_command(path: Path) -> bool:
    try:
        return COMMAND_MARKER in path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return False


def install_command(path: Path, text: str) -> bool:
    """Write the command file; False when it already holds ``text``. A file of the same
    name that is not ours is left alone and reported."""
    if path.exists() and not path.is_symlink() and path.read_text(errors="replace") == text:
        return False
    if path.exists() and not is_our_command(path):
        raise BCError(f"{path} exists and is not claude-bc's: left unchanged (remove or rename it)")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    except OSError as exc:
        raise BCError(f"cannot write {path}: {exc.strerror or exc}") from None
    return True


def uninstall_command(path: Path) -> bool:
    """Remove the command file if it is ours; True when something was removed."""
    if not path.exists() or not is_our_command(path):
        return False
    try:
        path.unlink()
    except OSError as exc:
        raise BCError(f"cannot remove {path}: {exc.strerror or exc}") from None
    return True
