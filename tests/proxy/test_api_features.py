"""The proxy's path on the recorded feature runs (their API requests replayed as the
proxy's spool), alone and merged with the hooks and the transcript: the same turns."""

from __future__ import annotations

from pathlib import Path

import pytest

from claude_bc.capture.store import TraceStorage
from claude_bc.capture.worker import assemble_session
from tests.conftest import stage_run
from tests.proxy.test_api import fixture_records, traces_of

VERSIONS = ["", "v2.1.197/"]


@pytest.mark.parametrize("version", VERSIONS)
def test_slash_command_through_the_proxy(version: str, tmp_path: Path) -> None:
    session, records = fixture_records(f"{version}slash-command")
    (trace,) = traces_of(tmp_path, session, records)
    assert trace.user_prompt == "/review src/app.py" and trace.command == "/review"
    assert trace.prompt_expansion and trace.prompt_expansion.startswith("Review src/app.py")


@pytest.mark.parametrize("version", VERSIONS)
def test_task_notification_is_not_a_prompt_through_the_proxy(version: str, tmp_path: Path) -> None:
    session, records = fixture_records(f"{version}background-task")
    (trace,) = traces_of(tmp_path, session, records)
    assert [c.tool_use_id for c in trace.tool_calls] == [
        "toolu_01BgBash000000000000001",
        "toolu_01BgRead000000000000002",
    ]
    assert trace.claude_response == "The background job printed done; notes.txt lists two notes."


@pytest.mark.parametrize("version", VERSIONS)
def test_denial_and_final_thinking_through_the_proxy(version: str, tmp_path: Path) -> None:
    session, records = fixture_records(f"{version}permission-denied")
    (trace,) = traces_of(tmp_path / "a", session, records)
    denied = {c.tool_use_id: c for c in trace.tool_calls}["toolu_01DenyBashRm00000000001"]
    assert (denied.success, denied.outcome) == (False, "denied")
    session, records = fixture_records(f"{version}thinking-final")
    (trace,) = traces_of(tmp_path / "b", session, records)
    assert trace.final_thinking == 'main() prints greet("world"), which is "Hello, world!".'


@pytest.mark.parametrize(
    "run", ["slash-command-second", "background-task", "permission-denied", "thinking-final"]
)
def test_proxy_hooks_and_transcript_merge_into_the_same_turns(run: str, tmp_path: Path) -> None:
    hooked, _ = stage_run(run, tmp_path)
    want = len(assemble_session(hooked, tmp_path).traces)
    session, records = fixture_records(run)
    assert session == hooked
    traces = traces_of(tmp_path, session, records)
    assert len(traces) == want
    ids = [c.tool_use_id for t in traces for c in t.tool_calls]
    assert len(ids) == len(set(ids))
    assert all("proxy" in t.sources and "hooks" in t.sources for t in traces)
    assert TraceStorage(tmp_path / "traces").load_traces() == traces
