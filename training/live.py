"""Held-out episodes against the real repository: replay what matches, run the rest.

``bc-train eval --repos FILE`` plays each held-out prompt in a fresh copy of the repository
it was captured in. A call equivalent to one the teacher made gets the teacher's recorded
output (as in :mod:`training.replay`); any other call runs for real in the copy, as
Claude Code would run it: ``Read`` (numbered lines), ``Grep`` (regular expression, the
files or the matching lines), ``Glob``, ``Bash`` (a shell in the copy, 20 s at most),
``Edit`` and ``Write``. Edits are always applied for real, matched or not, so the copy
ends in the state the model left it in, and :func:`final_state_matches` compares it with
the state the teacher's run left.

The repositories file (JSON) maps each held-out prompt to ``{"root": the absolute path the
trace names, "files": {path: text} before, "final_files": {path: text} after the teacher}``.
Paths under ``root`` are mapped into the copy; anything outside it is refused.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from claude_bc.capture.errors import BCError
from claude_bc.capture.schema import ClaudeTrace
from claude_bc.training.replay import ReplayEnv, ReplayResult

BASH_TIMEOUT_S = 20
OUTPUT_CHARS = 4000
SKIP = ("__pycache__", ".claude", ".git")
EDIT_TOOLS = ("Edit", "Write")


@dataclass(frozen=True)
class Repo:
    """One held-out task's repository: where the trace put it, before and after."""

    root: str
    files: dict[str, str]
    final_files: dict[str, str]


def load_repos(path: Path) -> dict[str, Repo]:
    """prompt → :class:`Repo` from a repositories file."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise BCError(f"cannot read repositories file {path}: {exc}") from exc
    if not isinstance(data, dict):
        raise BCError(f"{path}: expected an object mapping prompts to repositories")
    return {
        prompt: Repo(str(r["root"]), dict(r["files"]), dict(r["final_files"]))
        for prompt, r in data.items()
    }


def write_files(folder: Path, files: Mapping[str, str]) -> None:
    for rel, text in files.items():
        path = folder / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")


def snapshot(folder: Path) -> dict[str, str]:
    """Every file under ``folder`` (caches and tool folders left out), path → text."""
    out = {}
    for path in sorted(folder.rglob("*")):
        rel = path.relative_to(folder)
        if path.is_file() and not any(part in SKIP for part in rel.parts):
            out[rel.as_posix()] = path.read_text(encoding="utf-8", errors="replace")
    return out


def _cut(text: str) -> str:
    if len(text) <= OUTPUT_CHARS:
        return text
    return text[: OUTPUT_CHARS // 2] + "\n[… output cut …]\n" + text[-OUTPUT_CHARS // 2 :]


class LiveEnv:
    """The replay environment of one trace, backed by a real copy of its repository."""

    def __init__(self, reference: ClaudeTrace, repo: Repo, scratch: Path) -> None:
        self.replay = ReplayEnv(reference)
        self.repo = repo
        self.dir = Path(tempfile.mkdtemp(prefix="task-", dir=scratch))
        write_files(self.dir, repo.files)
        self.ran = 0  # calls run for real

    @property
    def misses(self) -> int:
        return self.replay.misses

    def step(self, tool: str, args: Mapping[str, Any]) -> ReplayResult:
        """The teacher's output for a matching call, else the real one; edits always run."""
        replayed = self.replay.step(tool, args)
        real = self.run(tool, args) if tool in EDIT_TOOLS or not replayed.matched else None
        if replayed.matched or real is None:
            return replayed
        return real

    def final_files(self) -> dict[str, str]:
        return snapshot(self.dir)

    def close(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)

    # --- the tools ---------------------------------------------------------------------------

    def run(self, tool: str, args: Mapping[str, Any]) -> ReplayResult:
        self.ran += 1
        try:
            handler = getattr(self, f"_{tool.lower()}", None)
            if handler is None or tool not in ("Read", "Grep", "Glob", "Bash", "Edit", "Write"):
                raise ToolError(f"No such tool available: {tool}")
            output = str(handler(args))
        except ToolError as exc:
            return ReplayResult(f"Error: {exc}", success=False, matched=False)
        except (OSError, ValueError, TypeError, re.error) as exc:
            return ReplayResult(f"Error: {exc}", success=False, matched=False)
        return ReplayResult(_cut(output), success=True, matched=False)

    def _local(self, value: Any) -> Path:
        """A path the model named, inside the copy (absolute under root, or relative)."""
        if not isinstance(value, str) or not value:
            raise ToolError("a path is required")
        path = PurePosixPath(value)
        if path.is_absolute():
            try:
                path = path.relative_to(self.repo.root)
            except ValueError:
                raise ToolError(f"{value} is outside the project") from None
        if ".." in path.parts:
            raise ToolError(f"{value} is outside the project")
        return self.dir / path

    def _shown(self, local: Path) -> str:
        return f"{self.repo.root}/{local.relative_to(self.dir).as_posix()}"

    def _read(self, args: Mapping[str, Any]) -> str:
        path = self._local(args.get("file_path"))
        if not path.is_file():
            raise ToolError("File does not exist.")
        lines = path.read_text(encoding="utf-8", errors="replace").split("\n")
        return "\n".join(f"{i}\t{line}" for i, line in enumerate(lines, 1))

    def _files(self, under: Path) -> list[Path]:
        if under.is_file():
            return [under]
        return [
            p
            for p in sorted(under.rglob("*"))
            if p.is_file() and not any(s in SKIP for s in p.relative_to(self.dir).parts)
        ]

    def _grep(self, args: Mapping[str, Any]) -> str:
        pattern = re.compile(str(args.get("pattern", "")), re.I if args.get("-i") else 0)
        under = self._local(args["path"]) if args.get("path") else self.dir
        mode = args.get("output_mode") or "files_with_matches"
        hits: list[str] = []
        files: list[str] = []
        for path in self._files(under):
            rel = path.relative_to(self.dir).as_posix()
            text = path.read_text(encoding="utf-8", errors="replace")
            found = [(i, ln) for i, ln in enumerate(text.split("\n"), 1) if pattern.search(ln)]
            if found:
                files.append(rel)
                hits += [f"{rel}:{i}:{ln}" if args.get("-n") else f"{rel}:{ln}" for i, ln in found]
        if mode == "content":
            return "\n".join(hits) if hits else "No matches found"
        if mode == "count":
            return "\n".join(f"{f}" for f in files) if files else "No matches found"
        return f"Found {len(files)} files\n" + "\n".join(files) if files else "No files found"

    def _glob(self, args: Mapping[str, Any]) -> str:
        base = self._local(args["path"]) if args.get("path") else self.dir
        pattern = str(args.get("pattern", ""))
        if not pattern or pattern.startswith("/"):
            raise ToolError("a relative glob pattern is required")
        found = [
            p.relative_to(self.dir).as_posix()
            for p in sorted(base.glob(pattern))
            if p.is_file() and not any(s in SKIP for s in p.relative_to(self.dir).parts)
        ]
        return "\n".join(found) if found else "No files found"

    def _bash(self, args: Mapping[str, Any]) -> str:
        command = args.get("command")
        if not isinstance(command, str) or not command.strip():
            raise ToolError("a command is required")
        try:
            proc = subprocess.run(
                command,
                shell=True,
                cwd=self.dir,
                capture_output=True,
                text=True,
                timeout=BASH_TIMEOUT_S,
                check=False,
            )
        except subprocess.TimeoutExpired:
            raise ToolError(f"Command timed out after {BASH_TIMEOUT_S}s") from None
        output = (proc.stdout + proc.stderr).strip()
        if proc.returncode:
            raise ToolError(f"Exit code {proc.returncode}\n{output}")
        return output

    def _edit(self, args: Mapping[str, Any]) -> str:
        path = self._local(args.get("file_path"))
        if not path.is_file():
            raise ToolError("File does not exist.")
        old, new = str(args.get("old_string", "")), str(args.get("new_string", ""))
        text = path.read_text(encoding="utf-8")
        count = text.count(old) if old else 0
        if count == 0:
            raise ToolError("String to replace not found in file.")
        if count > 1 and not args.get("replace_all"):
            raise ToolError(f"Found {count} matches of the string to replace; use replace_all.")
        path.write_text(
            text.replace(old, new) if args.get("replace_all") else text.replace(old, new, 1)
        )
        return f"The file {self._shown(path)} has been updated successfully."

    def _write(self, args: Mapping[str, Any]) -> str:
        path = self._local(args.get("file_path"))
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(str(args.get("content", "")), encoding="utf-8")
        return f"File created successfully at: {self._shown(path)}"


class ToolError(Exception):
    """A tool call that fails the way Claude Code reports a failure."""


def final_state_matches(env: LiveEnv) -> bool:
    """Did the episode leave the repository as the teacher's run left it?"""
    return env.final_files() == env.repo.final_files
