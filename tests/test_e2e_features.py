"""End to end, feature by feature: the real Claude Code (both pinned versions) with our hooks
installed by ``bc-capture install``, against the scripted API; the stored traces are checked
field by field, after the hook worker and after ``bc-capture import`` of the same sessions.

The scenarios are the recorded ones (tests/fixtures/claude-code/<name>/scenario.json, whose
``recording`` part says what else the run needs: files, settings, a permission mode, a
second invocation, a signal).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from tests.claude_code import (
    CLAUDE_CODE_VERSION,
    claude_args,
    claude_bin,
    claude_env,
    make_basic_project,
)
from tests.conftest import FIXTURES
from tests.fake_anthropic import FakeAnthropic

REPO = Path(__file__).resolve().parents[1]
BC_CAPTURE = REPO / ".venv" / "bin" / "bc-capture"
VERSIONS = [CLAUDE_CODE_VERSION, "2.1.197"]

pytestmark = pytest.mark.e2e


class World:
    """A project with our hooks installed, a HOME and a data folder, for one scenario."""

    def __init__(self, tmp: Path, name: str, version: str) -> None:
        self.scenario: dict[str, Any] = json.loads((FIXTURES / name / "scenario.json").read_text())
        self.recording: dict[str, Any] = self.scenario.get("recording", {})
        self.version = version
        self.project = make_basic_project(tmp / "project")
        for rel, text in self.recording.get("files", {}).items():
            (self.project / rel).parent.mkdir(parents=True, exist_ok=True)
            (self.project / rel).write_text(text)
        if "settings" in self.recording:
            settings = self.project / ".claude" / "settings.json"
            settings.parent.mkdir(parents=True, exist_ok=True)
            settings.write_text(json.dumps(self.recording["settings"]))
        self.home, self.bc_home = tmp / "home", tmp / "bc data"
        self.home.mkdir()
        self.env = {**os.environ, "BC_HOME": str(self.bc_home), "HOME": str(self.home)}
        out = self.bc("install", "--project-dir", str(self.project))
        assert out.returncode == 0, out.stderr

    def bc(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(BC_CAPTURE), *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    def claude(self, api: FakeAnthropic, prompt: str, *extra: str) -> subprocess.Popen[bytes]:
        args = claude_args(
            prompt,
            extra_args=extra,
            permission_mode=self.recording.get("permission_mode", "bypassPermissions"),
            binary=claude_bin(self.version),
        )
        env = claude_env(self.home, api.base_url, {"BC_HOME": str(self.bc_home)})
        return subprocess.Popen(
            args,
            cwd=self.project,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )

    def run(self) -> list[str]:
        """Every invocation of the scenario, to its end; the session ids."""
        invocations = self.recording.get("invocations") or [{"prompt": self.scenario["prompt"]}]
        sessions: list[str] = []
        with FakeAnthropic(self.scenario, cwd=str(self.project)) as api:
            for inv in invocations:
                extra = ["--resume", sessions[-1]] if inv.get("resume") else []
                proc = self.claude(api, inv["prompt"], *extra)
                out, _ = proc.communicate(timeout=180)
                sessions.append(_session_of(out))
        self.wait_assembled()
        return sessions

    def wait_assembled(self, timeout: float = 60) -> None:
        """The detached worker removes the spool once the ended session is stored."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            spools = list((self.bc_home / "spool").glob("*.jsonl"))
            if (self.bc_home / "traces" / "traces.jsonl").exists() and not spools:
                return
            time.sleep(0.1)
        raise AssertionError("the session was not assembled")

    def traces(self) -> list[dict[str, Any]]:
        out = self.bc("export")
        assert out.returncode == 0, out.stderr
        recs = [json.loads(line) for line in out.stdout.splitlines()]
        ids = [c["tool_use_id"] for r in recs for c in r["tool_calls"]]
        assert len(ids) == len(set(ids)), "a call stored in two traces"
        return sorted(recs, key=lambda r: r["started_at"])

    def import_transcripts(self) -> None:
        out = self.bc("import", "--projects-dir", str(self.home / ".claude" / "projects"))
        assert out.returncode == 0, out.stderr


def _session_of(stream: bytes) -> str:
    for line in stream.decode(errors="replace").splitlines():
        if line.startswith("{") and '"session_id"' in line:
            sid = json.loads(line).get("session_id")
            if isinstance(sid, str):
                return sid
    raise AssertionError("no session id in the stream")


def by_id(rec: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["tool_use_id"]: c for c in rec["tool_calls"]}


@pytest.mark.parametrize("version", VERSIONS)
def test_slash_command_as_second_prompt_then_import(version: str, tmp_path: Path) -> None:
    world = World(tmp_path, "slash-command-second", version)
    world.run()
    first, second = world.traces()
    world.import_transcripts()
    assert world.traces() == [first, second]  # the import finds it all stored already
    assert second["user_prompt"] == "/review src/util.py" and second["command"] == "/review"
    assert second["prompt_expansion"].startswith("Review src/util.py for bugs")
    assert first["tool_calls"] and second["tool_calls"]
    assert set(second["sources"]) == {"transcript", "hooks"}


@pytest.mark.parametrize("version", VERSIONS)
def test_background_task_is_one_turn(version: str, tmp_path: Path) -> None:
    world = World(tmp_path, "background-task", version)
    world.run()
    (rec,) = world.traces()
    assert list(by_id(rec)) == ["toolu_01BgBash000000000000001", "toolu_01BgRead000000000000002"]
    (note,) = rec["events"]
    assert note["kind"] == "task_notification"
    assert note["tool_use_id"] == "toolu_01BgBash000000000000001"
    assert rec["claude_response"] == "The background job printed done; notes.txt lists two notes."


@pytest.mark.parametrize("version", VERSIONS)
def test_permission_denial(version: str, tmp_path: Path) -> None:
    world = World(tmp_path, "permission-denied", version)
    world.run()
    (rec,) = world.traces()
    denied = by_id(rec)["toolu_01DenyBashRm00000000001"]
    assert (denied["success"], denied["outcome"]) == (False, "denied")
    assert "has been denied" in denied["error"]
    assert (world.project / "notes.txt").exists()


@pytest.mark.parametrize("version", VERSIONS)
def test_thinking_before_the_answer(version: str, tmp_path: Path) -> None:
    world = World(tmp_path, "thinking-final", version)
    world.run()
    (rec,) = world.traces()
    assert rec["final_thinking"] == 'main() prints greet("world"), which is "Hello, world!".'
    assert rec["claude_response"] == "It prints `Hello, world!`."


@pytest.mark.parametrize("version", VERSIONS)
def test_sigkill_mid_call_then_assemble(version: str, tmp_path: Path) -> None:
    """SIGKILL: no Stop, no SessionEnd. ``bc-capture assemble`` sees the process is gone,
    stores the turn with the unfinished call as unknown and clears the spool."""
    world = World(tmp_path, "interrupt-sigkill", version)
    with FakeAnthropic(world.scenario, cwd=str(world.project)) as api:
        proc = world.claude(api, world.scenario["prompt"])
        deadline = time.monotonic() + 120
        spool_has_call = False
        while not spool_has_call and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.1)
            spool_has_call = any(
                "toolu_01BashSleep0000000000001" in p.read_text(errors="replace")
                for p in (world.bc_home / "spool").glob("*.jsonl")
            )
        assert spool_has_call
        time.sleep(1.0)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)  # the sleep the call started
    assert list((world.bc_home / "spool").glob("*.jsonl"))  # pending: nothing ended it
    out = world.bc("assemble")
    assert out.returncode == 0, out.stderr
    assert "recovered 1 sessions" in out.stdout
    assert not list((world.bc_home / "spool").glob("*.jsonl"))
    (rec,) = world.traces()
    (call,) = rec["tool_calls"]
    assert (call["success"], call["outcome"]) == (False, "unknown")
    assert not rec["complete"]
    assert "recovered sessions: 1" in world.bc("status").stdout
