"""Assembly of recorded API exchanges (``capture.api``) into traces.

The exchanges are the real Claude Code requests of the recorded fixture runs (their
bodies as Claude Code sent them), with each response streamed back as the real API's
SSE by the fake API's encoder, in the spool format ``proxy/addon.py`` writes. The
addon itself is exercised with real mitmdump in ``test_addon.py``.
"""

from __future__ import annotations

import copy
import json
import tomllib
from collections.abc import Callable
from importlib.metadata import version
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from claude_bc.capture.api import (
    api_spool_dir,
    assemble_api_session,
    load_context,
    read_api_spool,
    rebuild_message,
    turns_from_exchanges,
)
from claude_bc.capture.cli import cli
from claude_bc.capture.store import TraceStorage
from claude_bc.capture.turns import assemble
from claude_bc.capture.worker import assemble_session
from tests.capture.test_assemble import basic_expectations
from tests.conftest import FIXTURES, REPO, stage_run
from tests.fake_anthropic import encode_event, stream_events

JSON = dict[str, Any]
UA = "claude-cli/2.1.332 (external, sdk-cli)"


def secret() -> str:
    return "sk-ant-" + "api03-" + "Qw7" * 15 + "AA"


def sse(message: JSON, cut_after: int | None = None) -> str:
    events = list(stream_events(message))[:cut_after]
    return b"".join(encode_event(name, data) for name, data in events).decode()


def record(body: JSON, t: float, message: JSON | None, **extra: Any) -> JSON:
    """A spool line as proxy/addon.py writes it."""
    rec: JSON = {
        "v": 1,
        "t": t,
        "session": "s",
        "method": "POST",
        "url": "http://127.0.0.1:1/v1/messages",
        "request_headers": {"User-Agent": UA, "X-Claude-Code-Session-Id": "s"},
        "request": body,
        "status": 200,
        "response_headers": {"Content-Type": "text/event-stream; charset=utf-8"},
        "response": sse(message) if message else None,
        "complete": True,
        "error": None,
        "timing": {"end": t + 0.2},
    }
    rec.update(extra)
    rec["ok"] = rec["status"] == 200 and rec["error"] is None
    return rec


def fixture_records(run: str) -> tuple[str, list[JSON]]:
    """The messages requests of a fixture run as spool records (session, records)."""
    out: list[JSON] = []
    session = ""
    for line in (FIXTURES / run / "requests.jsonl").read_text().splitlines():
        req = json.loads(line)
        if req["method"] != "POST" or not isinstance(req["body"], dict):
            continue
        session = req["headers"]["X-Claude-Code-Session-Id"]
        resp = req["response"]
        message = {
            "id": resp["id"],
            "type": "message",
            "role": "assistant",
            "model": req["body"]["model"],
            "content": resp["content"],
            "stop_reason": resp["stop_reason"],
            "stop_sequence": None,
            "usage": {"input_tokens": 10, "output_tokens": 5},
        }
        rec = record(req["body"], req["t"], message)
        rec["request_headers"] = dict(req["headers"])
        out.append(rec)
    return session, out


def write_spool(home: Path, session: str, records: list[JSON]) -> Path:
    folder = api_spool_dir(home)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{session}.jsonl"
    with path.open("a") as fh:
        for rec in records:
            fh.write(json.dumps(rec) + "\n")
    return path


def traces_of(home: Path, session: str, records: list[JSON]) -> list[Any]:
    write_spool(home, session, records)
    result = assemble_api_session(session, home)
    assert not result.problems
    return TraceStorage(home / "traces").load_traces()


# --- the SDK's private stream accumulator (pinned) ------------------------------------------


def test_anthropic_sdk_is_the_pinned_version() -> None:
    deps = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    (pin,) = [d for d in deps if d.startswith("anthropic")]
    assert pin == f"anthropic=={version('anthropic')}"


@pytest.mark.slow
def test_rebuild_message_folds_every_delta_kind() -> None:
    message = {
        "id": "msg_1",
        "type": "message",
        "role": "assistant",
        "model": "claude-opus-5-5",
        "content": [
            {"type": "thinking", "thinking": "Think " * 9, "signature": "sig-1"},
            {"type": "text", "text": "Héllo wörld, " * 4},
            {"type": "tool_use", "id": "toolu_1", "name": "Bash", "input": {"command": "ls -la"}},
            {"type": "tool_use", "id": "toolu_2", "name": "Read", "input": {"a": [1, {"b": None}]}},
        ],
        "stop_reason": "tool_use",
        "stop_sequence": None,
        "usage": {"input_tokens": 3, "output_tokens": 4},
    }
    rebuilt, error = rebuild_message(sse(message))  # with a ping after message_start
    assert error is None and rebuilt is not None
    assert rebuilt["content"] == message["content"]
    assert rebuilt["id"] == "msg_1" and rebuilt["stop_reason"] == "tool_use"


def test_rebuild_message_reports_cut_and_error_streams() -> None:
    message = {
        "id": "m",
        "type": "message",
        "role": "assistant",
        "model": "x",
        "content": [{"type": "text", "text": "partial answer text"}],
        "stop_reason": "end_turn",
        "usage": {},
    }
    assert rebuild_message(sse(message, cut_after=4)) == (None, "stream ended before message_stop")
    overloaded = sse(message, cut_after=2) + (
        'event: error\ndata: {"type": "error", "error": {"type": "overloaded_error"}}\n\n'
    )
    rebuilt, error = rebuild_message(overloaded)
    assert rebuilt is None and error and "overloaded_error" in error
    # an event type newer than this code is skipped; a stream without its start fails
    newer = sse(message).replace("event: ping\n", "event: brand_new\n", 1)
    newer = newer.replace('{"type": "ping"}', '{"type": "brand_new", "x": 1}', 1)
    assert rebuild_message(newer)[0]["content"] == message["content"]  # type: ignore[index]
    headless = sse(message).split("\n\n", 1)[1]
    rebuilt, error = rebuild_message(headless)
    assert rebuilt is None and error and error.startswith("cannot rebuild the message")


# --- the recorded runs -------------------------------------------------------------------------


def test_basic_run_gives_the_hook_path_trace(bc_home: Path) -> None:
    session, records = fixture_records("basic")
    (trace,) = traces_of(bc_home, session, records)
    basic_expectations(trace)  # exactly what the hooks + transcript path must give
    read, grep, ls, _, edit = trace.tool_calls
    assert read.thinking == "The user wants the greeting changed. I should read src/app.py first."
    assert grep.thinking == "Now search for definitions and list the files at the same time."
    assert grep.message_id == ls.message_id != read.message_id
    assert "replace_all" not in edit.args  # the model's own input, not the client's copy
    assert read.output.startswith("1\tfrom util import greet")
    assert trace.sources == ["proxy"] and trace.session_id == session
    assert trace.claude_code_version == "2.1.332" and trace.model == "claude-opus-5-5"
    assert trace.cwd == "/home/user/project"
    assert all(c.started_at and c.ended_at and c.started_at <= c.ended_at for c in trace.tool_calls)


def test_system_prompt_and_tools_are_stored_once_per_session(bc_home: Path) -> None:
    session, records = fixture_records("subagent")
    (trace,) = traces_of(bc_home, session, records)
    path = bc_home / "sessions" / f"{session}.json"
    assert path.stat().st_mode & 0o777 == 0o600
    assert (bc_home / "sessions").stat().st_mode & 0o777 == 0o700
    context = load_context(session, bc_home)
    # main agent and subagent have their own system prompts; all requests share one tool set
    assert len(context.system_prompts) == 2 and len(context.tool_sets) == 1
    system = context.system_prompts[trace.system_prompt_id]
    assert system[0]["text"].startswith("You are a Claude agent")  # billing line left out
    assert not any("cache_control" in b for b in system)
    tools = context.tool_sets[trace.tools_id]
    assert {t["name"] for t in tools} >= {"Agent", "Bash", "Read", "Edit", "Grep"}
    assert all("input_schema" in t for t in tools)


def test_subagent_calls_follow_their_agent_call(bc_home: Path) -> None:
    session, records = fixture_records("subagent")
    (trace,) = traces_of(bc_home, session, records)
    agent, read = trace.tool_calls
    assert agent.tool == "Agent" and agent.agent_id is None
    assert agent.reasoning == "Delegating this to a subagent."
    assert read.tool == "Read" and read.reasoning == "Reading the file."
    assert read.agent_id == "a3501419dc3b71293"  # the id Claude Code gives the subagent
    assert read.agent_type == "general-purpose" and read.parent_tool_use_id == agent.tool_use_id
    assert read.output.startswith("1\tdef greet(name):")
    assert trace.claude_response == "The subagent reports two functions: greet and shout."


def test_compact_and_title_requests_are_not_turns(bc_home: Path) -> None:
    session, records = fixture_records("compact-resume")
    title = copy.deepcopy(records[0])
    del title["request"]["tools"]
    title["request"]["output_config"] = {"format": {"type": "json_schema", "schema": {}}}
    title["t"] += 0.01
    # after the compaction, the conversation opens with Claude Code's summary
    summary = "This session is being continued from a previous conversation. Summary: ls."
    after = copy.deepcopy(records[0])
    after["t"] += 100
    after["request"]["messages"] = [
        {"role": "user", "content": [{"type": "text", "text": summary}]},
        {"role": "user", "content": [{"type": "text", "text": "Now count them."}]},
    ]
    after["response"] = sse(msg("m9", text("Five."), stop="end_turn"))
    traces = traces_of(bc_home, session, [*records, title, after])
    assert [t.user_prompt for t in traces] == ["List the files.", "Now count them."]
    assert [c.tool for c in traces[0].tool_calls] == ["Bash"]
    assert traces[1].claude_response == "Five."


# --- chaining, failures, prompts -----------------------------------------------------------


def msg(mid: str, *content: JSON, stop: str = "tool_use") -> JSON:
    return {
        "id": mid,
        "type": "message",
        "role": "assistant",
        "model": "claude-opus-5-5",
        "content": list(content),
        "stop_reason": stop,
        "usage": {"input_tokens": 1, "output_tokens": 1},
    }


def text(t: str) -> JSON:
    return {"type": "text", "text": t}


def tool(tid: str, command: str) -> JSON:
    return {"type": "tool_use", "id": tid, "name": "Bash", "input": {"command": command}}


def result(tid: str, out: str, error: bool = False) -> JSON:
    return {"type": "tool_result", "tool_use_id": tid, "content": out, "is_error": error}


def user(*blocks: JSON) -> JSON:
    return {"role": "user", "content": list(blocks)}


def body(*messages: JSON) -> JSON:
    return {
        "model": "claude-opus-5-5",
        "system": [{"type": "text", "text": "You are Claude Code."}],
        "tools": [{"name": "Bash", "input_schema": {"type": "object"}}],
        "messages": list(messages),
        "stream": True,
    }


def two_prompt_session() -> list[JSON]:
    """Prompt A → Bash → answer; prompt B → answer. With a 529 and a cut stream retried."""
    reminder = text("<system-reminder>\nContext.\n</system-reminder>")
    a1 = msg("m1", text("Listing."), tool("t1", "ls"))
    a2 = msg("m2", text("Two files."), stop="end_turn")
    b1 = msg(
        "m3",
        {"type": "thinking", "thinking": "Easy.", "signature": "s"},
        text("Hi!"),
        stop="end_turn",
    )
    h1 = [user(reminder, text("List files")), {"role": "system", "content": "Env: /w"}]
    h2 = [*h1, {"role": "assistant", "content": a1["content"]}, user(result("t1", "a\nb"))]
    h3 = [*h2, {"role": "assistant", "content": a2["content"]}, user(text("Say hi"))]
    return [
        record(body(*h1), 100.0, None, status=529, response='{"type":"error"}', ok=False),
        record(body(*h1), 101.0, a1),
        record(body(*h2), 102.0, a2, response=sse(a2, cut_after=5)),  # reset mid-stream
        record(body(*h2), 103.0, a2, error=None),
        record(body(*h3), 200.0, b1),
    ]


def test_each_prompt_is_a_trace_and_failed_attempts_are_skipped(bc_home: Path) -> None:
    recs = two_prompt_session()
    recs[2]["complete"], recs[2]["error"] = False, "peer closed connection"
    first, second = traces_of(bc_home, "s", recs)
    assert first.user_prompt == "List files" and second.user_prompt == "Say hi"
    (ls,) = first.tool_calls
    assert (ls.tool, ls.args, ls.reasoning, ls.output) == (
        "Bash",
        {"command": "ls"},
        "Listing.",
        "a\nb",
    )
    assert first.claude_response == "Two files." and first.complete
    assert second.claude_response == "Hi!" and second.tool_calls == []
    assert first.started_at.timestamp() == 100.0 and second.started_at.timestamp() == 200.0
    failures = load_context("s", bc_home).failures
    assert [(f["t"], f["status"]) for f in failures] == [(100.0, 529), (102.0, 200)]


def test_a_lost_response_is_taken_from_the_next_request(bc_home: Path) -> None:
    recs = two_prompt_session()
    del recs[1]  # the 529 is then followed by nothing usable for this position
    (first, _) = traces_of(bc_home, "s", recs)
    assert [c.args["command"] for c in first.tool_calls] == ["ls"]
    assert first.tool_calls[0].reasoning == "Listing."


def test_failed_tool_results_and_secrets(bc_home: Path) -> None:
    a1 = msg("m1", tool("t1", "cat .env"))
    a2 = msg("m2", text(f"The key is {secret()}"), stop="end_turn")
    h1 = [user(text("show env"))]
    h2 = [
        *h1,
        {"role": "assistant", "content": a1["content"]},
        user(result("t1", f"KEY={secret()}", True)),
    ]
    (trace,) = traces_of(bc_home, "s", [record(body(*h1), 1.0, a1), record(body(*h2), 2.0, a2)])
    (call,) = trace.tool_calls
    assert call.success is False and call.error and "[REDACTED" in call.error
    assert secret() not in json.dumps(trace.record())
    for path in bc_home.rglob("*"):
        if path.is_file() and "spool" not in path.parts:
            assert secret() not in path.read_text(errors="replace"), path


def test_reassembly_is_a_no_op_and_idle_spools_are_dropped(bc_home: Path) -> None:
    spool = write_spool(bc_home, "s", two_prompt_session())
    assert assemble_api_session("s", bc_home).written == 2
    again = assemble_api_session("s", bc_home, drop_idle_s=3600)
    assert again.written == 0 and not again.dropped and spool.exists()
    assert (bc_home / "state" / "s.lock").exists()  # the session goes on
    gone = assemble_api_session("s", bc_home, drop_idle_s=0)
    assert gone.dropped and not spool.exists()
    assert not (bc_home / "state" / "s.lock").exists()  # nothing left of it
    assert len(TraceStorage(bc_home / "traces").load_traces()) == 2


@pytest.mark.parametrize("proxy_first", [True, False])
def test_merges_with_what_the_hooks_captured(
    bc_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, proxy_first: bool
) -> None:
    session, transcript = stage_run("basic", bc_home)
    # Claude Code's own transcript, where the proxy finds the prompt ids once the hook
    # spool is gone (the wire carries none)
    monkeypatch.setenv("CLAUDE_CONFIG_DIR", str(tmp_path / "claude"))
    folder = tmp_path / "claude" / "projects" / "-home-user-project"
    folder.mkdir(parents=True)
    (folder / f"{session}.jsonl").write_bytes(transcript.read_bytes())
    hook_session, records = fixture_records("basic")
    assert hook_session == session  # the header carries Claude Code's session id
    write_spool(bc_home, session, records)
    if proxy_first:
        assemble_api_session(session, bc_home)
        assemble_session(session, bc_home)
    else:
        assemble_session(session, bc_home)
        assemble_api_session(session, bc_home)
    (trace,) = TraceStorage(bc_home / "traces").load_traces()
    basic_expectations(trace)
    assert trace.sources == ["transcript", "proxy", "hooks"]
    assert trace.prompt_id == "a701ec3b-c7ee-4b13-b93a-8ec12fef40d0"
    assert trace.tool_calls[0].duration_ms == 12  # the hooks' timing is kept
    assert trace.tool_calls[2].tool_response["stdout"].startswith("app.py")  # structured
    assert trace.system_prompt_id and trace.tools_id  # from the proxy


def test_bc_capture_assemble_picks_up_api_spools(bc_home: Path) -> None:
    write_spool(bc_home, "s", two_prompt_session())
    out = CliRunner().invoke(cli, ["assemble"])
    assert out.exit_code == 0, out.output
    assert "1 api sessions" in out.output
    assert len(TraceStorage(bc_home / "traces").load_traces()) == 2


def test_bad_spool_lines_are_reported_not_fatal(bc_home: Path) -> None:
    path = write_spool(bc_home, "s", two_prompt_session())
    with path.open("a") as fh:
        fh.write('{"v":1,"t":\n')
    exchanges, problems = read_api_spool(path)
    assert len(exchanges) == 5 and len(problems) == 1
    turns: Callable[..., Any] = turns_from_exchanges
    assert len(assemble(turns("s", exchanges))) == 2


@pytest.mark.parametrize("missing", ["request", "t"])
def test_records_missing_fields_are_problems(bc_home: Path, missing: str) -> None:
    rec = two_prompt_session()[1]
    del rec[missing]
    path = write_spool(bc_home, "s", [rec])
    exchanges, problems = read_api_spool(path)
    assert (len(exchanges), len(problems)) == ((1, 0) if missing == "request" else (0, 1))
