"""Play teacher instances through the real Claude Code; our hooks capture every turn.

Each instance's repository is written at one fixed root (so every trace names the same
absolute paths, as one user's project would), the fake Messages API plays the teacher's
turns, the real Claude Code (``tests/claude_code.py``) executes each tool call in that
repository, and the hooks that ``bc-capture install --scope user`` put into the throw-away
``HOME`` record the turn into ``BC_HOME``. Runs are sequential: they share the root.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from tests.claude_code import run_claude
from tests.fake_anthropic import FakeAnthropic
from tests.teacher.families import Instance

REPO = Path(__file__).resolve().parents[2]
BC_CAPTURE = REPO / ".venv" / "bin" / "bc-capture"
SKIP = ("__pycache__", ".claude")


def write_repo(root: Path, files: dict[str, str]) -> None:
    """Empty ``root`` and write ``files`` into it."""
    if root.exists():
        shutil.rmtree(root)
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")


def snapshot(root: Path) -> dict[str, str]:
    """Every file under ``root`` (caches and ``.claude`` left out), path → text."""
    out = {}
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root)
        if path.is_file() and not any(part in SKIP for part in rel.parts):
            out[rel.as_posix()] = path.read_text(encoding="utf-8", errors="replace")
    return out


@dataclass
class Recorder:
    """Where the teacher works and where its turns are captured."""

    root: Path  # the repository root every instance is written to
    home: Path  # HOME of Claude Code (holds the user-scope hooks)
    bc_home: Path  # the capture store

    def env(self) -> dict[str, str]:
        return {**os.environ, "BC_HOME": str(self.bc_home), "HOME": str(self.home)}

    def install(self) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        gates = self.bc_home / "gates.toml"
        gates.parent.mkdir(parents=True, exist_ok=True)
        # the teacher answers in one or two sentences; the default 50-word gate is for people
        gates.write_text("min_answer_words = 8\n")
        proc = subprocess.run(
            [str(BC_CAPTURE), "install", "--scope", "user"],
            env=self.env(),
            capture_output=True,
            text=True,
            check=False,
        )
        if proc.returncode:
            raise RuntimeError(f"bc-capture install failed: {proc.stderr}")

    def play(
        self, inst: Instance, base_url_of: Callable[[FakeAnthropic], str] | None = None
    ) -> str:
        """Run one instance through Claude Code; returns its session id."""
        write_repo(self.root, inst.files)
        with FakeAnthropic(inst.scenario(), cwd=str(self.root)) as api:
            run = run_claude(
                inst.prompt,
                project_dir=self.root,
                home_dir=self.home,
                base_url=base_url_of(api) if base_url_of else api.base_url,
                tools="Bash,Read,Edit,Grep,Glob",
                extra_env={"BC_HOME": str(self.bc_home)},
            )
        if run.returncode != 0 or run.session_id is None:
            raise RuntimeError(
                f"Claude Code failed on {inst.family}:{inst.name}: {run.stderr[-500:]}"
            )
        got = snapshot(self.root)
        if got != inst.final_files:
            changed = sorted(
                k
                for k in got.keys() | inst.final_files.keys()
                if got.get(k) != inst.final_files.get(k)
            )
            raise RuntimeError(
                f"teacher run of {inst.family}:{inst.name} ended elsewhere: {changed}"
            )
        return run.session_id

    def wait(self, timeout: float = 120) -> None:
        """Until the detached workers have assembled every session (their spools are gone)."""
        deadline = time.monotonic() + timeout
        spool = self.bc_home / "spool"
        while time.monotonic() < deadline:
            if not list(spool.glob("*.jsonl")):
                return
            time.sleep(0.2)
        raise RuntimeError(f"sessions not assembled within {timeout}s: {list(spool.glob('*'))}")


def record(
    instances: Iterable[Instance], recorder: Recorder, progress: Callable[[int], None] | None = None
) -> dict[str, str]:
    """Capture every instance; returns prompt → session id."""
    recorder.install()
    sessions = {}
    for k, inst in enumerate(instances, 1):
        sessions[inst.prompt] = recorder.play(inst)
        if progress:
            progress(k)
    recorder.wait()
    return sessions
