"""Locate (or install) and run the real Claude Code CLI for end-to-end tests.

``claude_bin()`` returns ``$BC_CLAUDE_BIN`` or a pinned npm install under ``<repo>/.cache``;
``run_claude()`` runs ``claude -p`` in a clean environment against a (fake) API base URL.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import secrets
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.fake_anthropic import FakeAnthropic

CLAUDE_CODE_VERSION = "2.1.332"
CLAUDE_CODE_PACKAGE = "@anthropic-ai/claude-code"

REPO_ROOT = Path(__file__).resolve().parent.parent
CACHE_DIR = REPO_ROOT / ".cache" / "claude-code"
DEFAULT_TOOLS = "Bash,Read,Edit,Write,Grep,Glob,Agent"


class ClaudeInstallError(RuntimeError):
    """Claude Code could not be installed or does not run."""


# --------------------------------------------------------------------------- locating / installing


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a+") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


def _installed_bin(prefix: Path) -> Path:
    return prefix / "node_modules" / ".bin" / "claude"


def _runs(binary: Path, version: str = CLAUDE_CODE_VERSION) -> bool:
    try:
        out = subprocess.run(
            [str(binary), "--version"],
            capture_output=True,
            text=True,
            timeout=60,
            env={**os.environ, "DISABLE_AUTOUPDATER": "1"},
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return out.returncode == 0 and version in out.stdout


def _install(prefix: Path, version: str = CLAUDE_CODE_VERSION) -> None:
    npm = shutil.which("npm")
    if npm is None:
        raise ClaudeInstallError("npm is not on PATH: cannot install Claude Code")
    spec = f"{CLAUDE_CODE_PACKAGE}@{version}"
    cmd = [npm, "install", "--prefix", str(prefix), "--no-audit", "--no-fund", spec]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, check=False)
    if proc.returncode != 0:
        raise ClaudeInstallError(f"{' '.join(cmd)} failed:\n{proc.stdout}\n{proc.stderr}")
    binary = _installed_bin(prefix)
    if _runs(binary, version):
        return
    # npm may skip the postinstall that copies the native binary over the placeholder.
    pkg_dir = prefix / "node_modules" / "@anthropic-ai" / "claude-code"
    node = shutil.which("node")
    if node and (pkg_dir / "install.cjs").exists():
        subprocess.run(
            [node, "install.cjs"], cwd=pkg_dir, capture_output=True, timeout=300, check=False
        )
    if not _runs(binary, version):
        raise ClaudeInstallError(f"{binary} does not run after installing {spec}")


def cache_dir(version: str = CLAUDE_CODE_VERSION) -> Path:
    """Where ``claude_bin(version)`` installs: ``.cache/claude-code`` for the pinned version,
    ``.cache/claude-code-<version>`` for any other."""
    if version == CLAUDE_CODE_VERSION:
        return CACHE_DIR
    return CACHE_DIR.parent / f"claude-code-{version}"


def claude_bin(version: str | None = None) -> Path:
    """The Claude Code executable: ``$BC_CLAUDE_BIN``, else the pinned install in ``.cache``.

    Installs ``@anthropic-ai/claude-code@CLAUDE_CODE_VERSION`` with npm when missing; a file lock
    keeps parallel test workers from installing at the same time. ``version`` (other than the
    pinned one) installs and returns that version under ``cache_dir(version)`` instead;
    ``$BC_CLAUDE_BIN`` then does not apply.
    """
    version = version or CLAUDE_CODE_VERSION
    env_bin = os.environ.get("BC_CLAUDE_BIN")
    if env_bin and version == CLAUDE_CODE_VERSION:
        return Path(env_bin)
    prefix = cache_dir(version)
    binary = _installed_bin(prefix)
    # The marker is written only once the binary is known to run, so a worker never picks up a
    # half-finished install of another worker.
    marker = prefix / f".installed-{version}"
    if marker.exists() and binary.exists():
        return binary
    with _file_lock(CACHE_DIR.parent / "claude-code.install.lock"):
        if not (marker.exists() and binary.exists()):
            if not _runs(binary, version):
                _install(prefix, version)
            marker.write_text(f"{CLAUDE_CODE_PACKAGE}@{version}\n")
    return binary


# --------------------------------------------------------------------------- running


def fake_api_key() -> str:
    """A throwaway API key, built at run time so no key-shaped literal sits in the source."""
    return "-".join(["sk", "ant", "fake", secrets.token_hex(16)])


@dataclass
class ClaudeRun:
    """The outcome of one ``claude -p`` run."""

    args: list[str]
    returncode: int
    stdout: str
    stderr: str
    messages: list[dict[str, Any]]
    wall_s: float
    env: dict[str, str] = field(default_factory=dict)

    def of_type(self, type_: str, subtype: str | None = None) -> list[dict[str, Any]]:
        return [
            m
            for m in self.messages
            if m.get("type") == type_ and (subtype is None or m.get("subtype") == subtype)
        ]

    @property
    def result_message(self) -> dict[str, Any] | None:
        results = self.of_type("result")
        return results[-1] if results else None

    @property
    def result(self) -> str | None:
        msg = self.result_message
        return msg.get("result") if msg else None

    @property
    def session_id(self) -> str | None:
        for m in self.messages:
            if isinstance(m.get("session_id"), str):
                return str(m["session_id"])
        return None

    def tool_uses(self) -> list[dict[str, Any]]:
        """The tool_use blocks of the assistant messages, in stream order."""
        out: list[dict[str, Any]] = []
        for m in self.of_type("assistant"):
            for block in m.get("message", {}).get("content", []):
                if isinstance(block, dict) and block.get("type") == "tool_use":
                    out.append(block)
        return out


def parse_stream_json(stdout: str) -> list[dict[str, Any]]:
    """Parse ``--output-format stream-json`` output; lines that are not JSON objects are skipped."""
    out: list[dict[str, Any]] = []
    for line in stdout.splitlines():
        line = line.strip()
        if not line.startswith("{"):
            continue
        try:
            obj = json.loads(line)
        except ValueError:
            continue
        if isinstance(obj, dict):
            out.append(obj)
    return out


def claude_env(
    home_dir: str | os.PathLike[str],
    base_url: str,
    extra_env: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The clean environment ``run_claude`` uses."""
    env = {
        "PATH": os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin"),
        "HOME": str(home_dir),
        "LANG": "C.UTF-8",
        "TERM": "dumb",
        "SHELL": "/bin/bash",
        "TMPDIR": tempfile.gettempdir(),
        "IS_SANDBOX": "1",
        "ANTHROPIC_API_KEY": fake_api_key(),
        "ANTHROPIC_BASE_URL": base_url,
        "DISABLE_AUTOUPDATER": "1",
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
    }
    env.update(extra_env or {})
    return env


def claude_args(
    prompt: str,
    *,
    tools: str = DEFAULT_TOOLS,
    extra_args: Sequence[str] = (),
    permission_mode: str = "bypassPermissions",
    binary: str | os.PathLike[str] | None = None,
) -> list[str]:
    """The command line ``run_claude`` runs (also for callers that need ``Popen``)."""
    return [
        str(binary if binary is not None else claude_bin()),
        "-p",
        prompt,
        "--output-format",
        "stream-json",
        "--verbose",
        "--permission-mode",
        permission_mode,
        "--tools",
        tools,
        *extra_args,
    ]


def run_claude(
    prompt: str,
    *,
    project_dir: str | os.PathLike[str],
    home_dir: str | os.PathLike[str],
    base_url: str,
    tools: str = DEFAULT_TOOLS,
    extra_args: Sequence[str] = (),
    extra_env: Mapping[str, str] | None = None,
    timeout: float = 120,
    permission_mode: str = "bypassPermissions",
    binary: str | os.PathLike[str] | None = None,
) -> ClaudeRun:
    """Run ``claude -p PROMPT --output-format stream-json --verbose`` in ``project_dir``.

    ``binary`` defaults to ``claude_bin()``; ``permission_mode`` is passed as ``--permission-mode``.
    """
    args = claude_args(
        prompt,
        tools=tools,
        extra_args=extra_args,
        permission_mode=permission_mode,
        binary=binary,
    )
    Path(home_dir).mkdir(parents=True, exist_ok=True)
    env = claude_env(home_dir, base_url, extra_env)
    t0 = time.monotonic()
    proc = subprocess.run(
        args,
        cwd=str(project_dir),
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    wall = time.monotonic() - t0
    return ClaudeRun(
        args=args,
        returncode=proc.returncode,
        stdout=proc.stdout,
        stderr=proc.stderr,
        messages=parse_stream_json(proc.stdout),
        wall_s=wall,
        env={k: v for k, v in env.items() if k != "ANTHROPIC_API_KEY"},
    )


def dashed_project_name(project_dir: str | os.PathLike[str]) -> str:
    """Claude Code's project folder name: every non-alphanumeric character of the cwd → ``-``."""
    return re.sub(r"[^A-Za-z0-9]", "-", str(Path(project_dir).resolve()))


def transcript_path(
    home_dir: str | os.PathLike[str], project_dir: str | os.PathLike[str], session_id: str
) -> Path:
    """``<home>/.claude/projects/<dashed cwd>/<session_id>.jsonl``."""
    projects = Path(home_dir) / ".claude" / "projects"
    return projects / dashed_project_name(project_dir) / f"{session_id}.jsonl"


def subagent_transcripts(
    home_dir: str | os.PathLike[str], project_dir: str | os.PathLike[str], session_id: str
) -> list[Path]:
    """The ``agent-<id>.jsonl`` files of a session's subagents."""
    main = transcript_path(home_dir, project_dir, session_id)
    return sorted((main.parent / session_id / "subagents").glob("agent-*.jsonl"))


# --------------------------------------------------------------------------- scenario projects

BASIC_PROJECT_FILES: dict[str, str] = {
    "src/app.py": (
        "from util import greet\n"
        "\n"
        "\n"
        "def main():\n"
        '    print(greet("world"))\n'
        "\n"
        "\n"
        'if __name__ == "__main__":\n'
        "    main()\n"
    ),
    "src/util.py": (
        "def greet(name):\n"
        '    return f"Hello, {name}!"\n'
        "\n"
        "\n"
        "def shout(name):\n"
        "    return greet(name).upper()\n"
    ),
    "CLAUDE.md": "# Project instructions\n\nKeep answers short. The entry point is src/app.py.\n",
    "notes.txt": "Notes\n\n- The greeting target lives in src/app.py.\n- util.py has helpers.\n",
    "README.md": "# Demo project\n\nA tiny app used by the claude-bc end-to-end tests.\n",
}


def make_basic_project(directory: str | os.PathLike[str]) -> Path:
    """Create the files the fixtures' scenarios read (src/app.py, src/util.py, notes.txt, ...)."""
    root = Path(directory)
    for rel, text in BASIC_PROJECT_FILES.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return root


# Copies of fixtures/claude-code/{basic,subagent}/scenario.json (the tests check they still match
# when the fixtures are present), so the end-to-end tests do not depend on the shared folder.
BASIC_SCENARIO: dict[str, Any] = {
    "description": (
        "Read (after text+thinking); Grep+Bash in parallel in one turn; failing Bash; Edit; "
        "final text."
    ),
    "prompt": (
        "Look at src/app.py, find the function definitions, check notes.txt, and change the "
        "greeting target to Claude."
    ),
    "turns": [
        {
            "content": [
                {
                    "type": "thinking",
                    "thinking": (
                        "The user wants the greeting changed. I should read src/app.py first."
                    ),
                },
                {"type": "text", "text": "I'll start by reading the entry point."},
                {
                    "type": "tool_use",
                    "id": "toolu_01ReadAppPy000000000001",
                    "name": "Read",
                    "input": {"file_path": "{{CWD}}/src/app.py"},
                },
            ]
        },
        {
            "content": [
                {
                    "type": "thinking",
                    "thinking": ("Now search for definitions and list the files at the same time."),
                },
                {
                    "type": "text",
                    "text": (
                        "Searching for function definitions and listing the sources in parallel."
                    ),
                },
                {
                    "type": "tool_use",
                    "id": "toolu_01GrepDefs00000000000002",
                    "name": "Grep",
                    "input": {
                        "pattern": "^def ",
                        "path": "{{CWD}}/src",
                        "output_mode": "content",
                        "-n": True,
                    },
                },
                {
                    "type": "tool_use",
                    "id": "toolu_01BashLs0000000000000003",
                    "name": "Bash",
                    "input": {
                        "command": "ls src && wc -l src/*.py",
                        "description": "List source files and count lines",
                    },
                },
            ]
        },
        {
            "content": [
                {
                    "type": "tool_use",
                    "id": "toolu_01BashFail00000000000004",
                    "name": "Bash",
                    "input": {
                        "command": "cat notes-missing.txt",
                        "description": "Show the notes file",
                    },
                },
            ]
        },
        {
            "content": [
                {
                    "type": "text",
                    "text": (
                        "That file does not exist (the notes are in notes.txt). "
                        "Making the edit now."
                    ),
                },
                {
                    "type": "tool_use",
                    "id": "toolu_01EditApp000000000000005",
                    "name": "Edit",
                    "input": {
                        "file_path": "{{CWD}}/src/app.py",
                        "old_string": 'print(greet("world"))',
                        "new_string": 'print(greet("Claude"))',
                    },
                },
            ]
        },
        {
            "content": [
                {
                    "type": "text",
                    "text": (
                        "Done. `src/app.py` now greets Claude; the functions are `greet` and "
                        "`shout` in `src/util.py` and `main` in `src/app.py`."
                    ),
                },
            ]
        },
    ],
    "fallback_text": "Nothing more to do.",
    "side_text": "Change greeting target",
}

SUBAGENT_SCENARIO: dict[str, Any] = {
    "description": (
        "Main agent delegates to a foreground general-purpose subagent (Agent tool); the "
        "subagent Reads a file and answers; main agent answers."
    ),
    "prompt": "Use a subagent to find the function names in src/util.py.",
    "turns": [
        {
            "content": [
                {"type": "text", "text": "Delegating this to a subagent."},
                {
                    "type": "tool_use",
                    "id": "toolu_01AgentCall00000000000001",
                    "name": "Agent",
                    "input": {
                        "description": "List util functions",
                        "prompt": "SUBAGENT-TASK: read src/util.py and report the function names.",
                        "subagent_type": "general-purpose",
                        "run_in_background": False,
                    },
                },
            ]
        },
        {
            "content": [
                {"type": "text", "text": "The subagent reports two functions: greet and shout."},
            ]
        },
    ],
    "subagents": [
        {
            "match": "SUBAGENT-TASK",
            "turns": [
                {
                    "content": [
                        {"type": "text", "text": "Reading the file."},
                        {
                            "type": "tool_use",
                            "id": "toolu_01SubRead00000000000001",
                            "name": "Read",
                            "input": {"file_path": "{{CWD}}/src/util.py"},
                        },
                    ]
                },
                {"content": [{"type": "text", "text": "src/util.py defines greet and shout."}]},
            ],
        },
    ],
    "fallback_text": "Nothing more to do.",
    "side_text": "Find util functions",
}


def final_text(scenario: Mapping[str, Any]) -> str:
    """The text of the scenario's last main-agent turn (what ``result`` should be)."""
    last = scenario["turns"][-1]["content"]
    return "".join(b["text"] for b in last if b.get("type") == "text")


def play_basic(
    project: Path, home: Path, bc_home: Path, scenario: Mapping[str, Any] = BASIC_SCENARIO
) -> ClaudeRun:
    """Run ``scenario`` (the basic one by default) in the real Claude Code against the fake
    API, with ``$BC_HOME`` set so the installed hooks capture it; fails unless it exits 0."""
    with FakeAnthropic(scenario, cwd=str(project)) as api:
        run = run_claude(
            str(scenario["prompt"]),
            project_dir=project,
            home_dir=home,
            base_url=api.base_url,
            extra_env={"BC_HOME": str(bc_home)},
        )
    assert run.returncode == 0, run.stderr
    return run
