"""End to end: `bc-capture install`, a real Claude Code run, and the exported trace.

The real Claude Code CLI (pinned in tests/claude_code.py) talks to our scripted fake
Messages API on loopback; our hooks are installed with the real `bc-capture install`.
"""

from __future__ import annotations

import copy
import json
import os
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from tests.claude_code import BASIC_SCENARIO, make_basic_project, play_basic, run_claude
from tests.fake_anthropic import FakeAnthropic

REPO = Path(__file__).resolve().parents[1]
BC_CAPTURE = REPO / ".venv" / "bin" / "bc-capture"

pytestmark = pytest.mark.e2e


def secret() -> str:
    return "sk-ant-" + "api03-" + "Zq9" * 15 + "AA"


def bc(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BC_CAPTURE), *args], env=env, capture_output=True, text=True, timeout=60, check=False
    )


def wait_assembled(home: Path, timeout: float = 30) -> None:
    """The detached worker deletes the spool once the ended session is assembled."""
    deadline = time.monotonic() + timeout
    spool = home / "spool"
    while time.monotonic() < deadline:
        if (home / "traces" / "traces.jsonl").exists() and not list(spool.glob("*.jsonl")):
            return
        time.sleep(0.1)
    raise AssertionError(f"spool not assembled within {timeout}s: {list(spool.glob('*'))}")


@pytest.fixture
def world(tmp_path: Path) -> dict[str, Any]:
    project = make_basic_project(tmp_path / "project")
    app = project / "src" / "app.py"
    # the scenario reads this file: the key must not reach the trace
    app.write_text(f'API_KEY = "{secret()}"\n' + app.read_text())
    home = tmp_path / "home"
    bc_home = tmp_path / "bc data"
    tmp = tmp_path / "tmp"  # the error log's fallback lives in $TMPDIR: this run's own
    tmp.mkdir()
    env = {**os.environ, "BC_HOME": str(bc_home), "HOME": str(home), "TMPDIR": str(tmp)}
    return {"project": project, "home": home, "bc_home": bc_home, "env": env}


def test_capture_a_real_claude_code_session(world: dict[str, Any]) -> None:
    project, home, bc_home, env = world["project"], world["home"], world["bc_home"], world["env"]
    out = bc("install", "--project-dir", str(project), env=env)
    assert out.returncode == 0, out.stderr
    assert "installed capture hooks for 13 events" in out.stdout

    scenario = copy.deepcopy(BASIC_SCENARIO)
    # the Edit's old_string must match the file, which now has the key line first
    run = play_basic(project, home, bc_home, scenario)
    wait_assembled(bc_home)

    exported = bc("export", env=env)
    assert exported.returncode == 0, exported.stderr
    (rec,) = [json.loads(line) for line in exported.stdout.splitlines()]

    assert rec["user_prompt"] == scenario["prompt"]
    assert rec["session_id"] == run.session_id
    assert rec["sources"] == ["transcript", "hooks"]
    assert rec["claude_code_version"] == "2.1.332" and rec["complete"]
    calls = rec["tool_calls"]
    assert [c["tool"] for c in calls] == ["Read", "Grep", "Bash", "Bash", "Edit"]
    expected = [b for t in scenario["turns"] for b in t["content"] if b["type"] == "tool_use"]
    for call, block in zip(calls, expected, strict=True):
        assert call["tool_use_id"] == block["id"]
        want = json.loads(json.dumps(block["input"]).replace("{{CWD}}", str(project)))
        assert {k: v for k, v in call["args"].items() if k != "replace_all"} == want
        assert call["started_at"] and call["duration_ms"] is not None
    read, grep, ls, fail, edit = calls
    assert read["reasoning"] == "I'll start by reading the entry point."
    assert (
        read["thinking"] == "The user wants the greeting changed. I should read src/app.py first."
    )
    assert (
        grep["reasoning"]
        == "Searching for function definitions and listing the sources in parallel."
    )
    assert ls["reasoning"] == "" and grep["batch"] == ls["batch"] == 1
    assert (
        edit["reasoning"]
        == "That file does not exist (the notes are in notes.txt). Making the edit now."
    )
    assert "def greet(name):" in grep["output"]
    assert ls["output"].startswith("app.py\nutil.py")
    assert ls["tool_response"]["stdout"].startswith("app.py")
    assert fail["success"] is False and "No such file or directory" in fail["error"]
    assert [c["success"] for c in calls] == [True, True, True, False, True]
    assert edit["tool_response"]["filePath"] == str(project / "src" / "app.py")
    assert 'greet("Claude")' in (project / "src" / "app.py").read_text()
    assert rec["claude_response"] == scenario["turns"][-1]["content"][0]["text"]

    # the key was in the Read output (and the file snapshot of the Edit): redacted everywhere
    assert "[REDACTED:" in read["output"]
    for path in bc_home.rglob("*"):
        if path.is_file():
            assert secret() not in path.read_text(errors="replace"), path
            assert path.stat().st_mode & 0o777 == 0o600, path
    assert secret()[:24] not in exported.stdout
    assert (bc_home / "traces").stat().st_mode & 0o777 == 0o700

    # every worker of the ended session is done, and none left a lock file behind
    deadline = time.monotonic() + 30
    while list((bc_home / "state").glob("*.lock")) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not list((bc_home / "state").glob("*.lock"))

    status = bc("status", "--project-dir", str(project), env=env)
    assert "hooks (project): 13 hook entries" in status.stdout
    assert "traces: 1" in status.stdout and "recent errors: none" in status.stdout

    shown = bc("show", rec["trace_id"][:8], env=env)
    assert shown.returncode == 0 and "4. Bash" in shown.stdout and "FAILED" in shown.stdout


def test_uninstalled_hooks_capture_nothing(world: dict[str, Any]) -> None:
    project, home, bc_home, env = world["project"], world["home"], world["bc_home"], world["env"]
    assert bc("install", "--project-dir", str(project), env=env).returncode == 0
    assert bc("uninstall", "--project-dir", str(project), env=env).returncode == 0
    with FakeAnthropic(BASIC_SCENARIO, cwd=str(project)) as api:
        run = run_claude(
            BASIC_SCENARIO["prompt"],
            project_dir=project,
            home_dir=home,
            base_url=api.base_url,
            extra_env={"BC_HOME": str(bc_home)},
        )
    assert run.returncode == 0
    assert not (bc_home / "spool").exists()
    assert bc("count", env=env).stdout.strip() == "0"
