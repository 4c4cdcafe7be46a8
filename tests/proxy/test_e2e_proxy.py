"""End to end: the real Claude Code CLI through ``bc-capture proxy`` (no hooks installed)
gives the same trace as the hook path (``tests/test_e2e_capture.py``), plus the system
prompt and tool schemas the model saw."""

from __future__ import annotations

import copy
import json
import time
from pathlib import Path

import pytest

from claude_bc.capture.api import load_context
from claude_bc.capture.schema import ClaudeTrace
from claude_bc.capture.store import TraceStorage
from tests.claude_code import BASIC_SCENARIO, make_basic_project, run_claude, transcript_path
from tests.fake_anthropic import FakeAnthropic
from tests.proxy.mitm import needs_mitmdump, run_proxy

pytestmark = [pytest.mark.e2e, needs_mitmdump]


def secret() -> str:
    return "sk-ant-" + "api03-" + "Px4" * 15 + "AA"


def wait_trace(home: Path, timeout: float = 60) -> ClaudeTrace:
    """The proxy starts the assembler when the turn ends; wait for its trace."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        traces = TraceStorage(home / "traces").load_traces()
        if traces and traces[-1].complete and len(traces[-1].tool_calls) == 5:
            return traces[-1]
        time.sleep(0.2)
    raise AssertionError(f"no complete trace within {timeout}s: {list(home.rglob('*'))}")


def test_claude_code_through_the_proxy(tmp_path: Path) -> None:
    project = make_basic_project(tmp_path / "project")
    app = project / "src" / "app.py"
    app.write_text(f'API_KEY = "{secret()}"\n' + app.read_text())  # read by the scenario
    home, bc_home = tmp_path / "home", tmp_path / "bc data"
    scenario = copy.deepcopy(BASIC_SCENARIO)
    with (
        FakeAnthropic(scenario, cwd=str(project)) as api,
        run_proxy(api.base_url, bc_home, env={"HOME": str(home)}) as proxy,
    ):
        run = run_claude(
            scenario["prompt"], project_dir=project, home_dir=home, base_url=proxy.base_url
        )
        assert run.returncode == 0, run.stderr
        rec = wait_trace(bc_home).record()
    assert not (project / ".claude" / "settings.json").exists()  # no hooks involved

    # what tests/test_e2e_capture.py asserts of the hook path
    assert rec["user_prompt"] == scenario["prompt"]
    assert rec["session_id"] == run.session_id
    assert rec["sources"] == ["proxy"]
    assert rec["claude_code_version"] == "2.1.332" and rec["complete"]
    calls = rec["tool_calls"]
    assert [c["tool"] for c in calls] == ["Read", "Grep", "Bash", "Bash", "Edit"]
    expected = [b for t in scenario["turns"] for b in t["content"] if b["type"] == "tool_use"]
    for call, block in zip(calls, expected, strict=True):
        assert call["tool_use_id"] == block["id"]
        want = json.loads(json.dumps(block["input"]).replace("{{CWD}}", str(project)))
        assert call["args"] == want  # exactly what the model sent
        assert call["started_at"] and call["ended_at"]
    read, grep, ls, fail, edit = calls
    assert read["reasoning"] == "I'll start by reading the entry point."
    assert read["thinking"] == scenario["turns"][0]["content"][0]["thinking"]
    assert grep["reasoning"] == scenario["turns"][1]["content"][1]["text"]
    assert grep["thinking"] == scenario["turns"][1]["content"][0]["thinking"]
    assert ls["reasoning"] == "" and grep["batch"] == ls["batch"] == 1
    assert grep["message_id"] == ls["message_id"] != read["message_id"]
    assert edit["reasoning"] == scenario["turns"][3]["content"][0]["text"]
    assert "def greet(name):" in grep["output"]
    assert ls["output"].startswith("app.py\nutil.py")
    assert fail["success"] is False and "No such file or directory" in fail["error"]
    assert [c["success"] for c in calls] == [True, True, True, False, True]
    assert rec["claude_response"] == scenario["turns"][-1]["content"][0]["text"]
    assert rec["cwd"] == str(project)
    # Claude Code's prompt id (from its transcript): the id the hook path gives this turn
    lines = transcript_path(home, project, run.session_id).read_text().splitlines()
    prompt_ids = {json.loads(line).get("promptId") for line in lines} - {None}
    assert prompt_ids == {rec["prompt_id"]}

    # plus what only the wire has: the system prompt and the tool schemas, once a session
    context = load_context(rec["session_id"], bc_home)
    system = context.system_prompts[rec["system_prompt_id"]]
    assert any("Primary working directory" in b["text"] or "Claude" in b["text"] for b in system)
    tools = {t["name"]: t for t in context.tool_sets[rec["tools_id"]]}
    assert set(tools) >= {"Bash", "Read", "Edit", "Write", "Grep", "Glob", "Agent"}
    assert tools["Read"]["input_schema"]["properties"]["file_path"]

    # the key Claude Code read is in no trace, context or error log
    assert "[REDACTED:" in read["output"]
    for path in bc_home.rglob("*"):
        if path.is_file() and "spool" not in path.parts:
            assert secret() not in path.read_text(errors="replace"), path
