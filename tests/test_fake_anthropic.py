"""Tests of the scripted fake Anthropic API, and end-to-end runs of the real Claude Code on it."""

from __future__ import annotations

import http.client
import json
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from tests.claude_code import (
    BASIC_SCENARIO,
    SUBAGENT_SCENARIO,
    ClaudeInstallError,
    claude_bin,
    dashed_project_name,
    final_text,
    make_basic_project,
    run_claude,
    subagent_transcripts,
    transcript_path,
)
from tests.fake_anthropic import FakeAnthropic, substitute_cwd

REPO = Path(__file__).resolve().parents[1]
FIXTURES = REPO / "tests" / "fixtures" / "claude-code"
CWD = "/home/user/project"
FAKE_KEY = "-".join(["sk", "ant", "test", "0123456789abcdef"])


# --------------------------------------------------------------------------- helpers


def parse_sse(raw: bytes) -> list[tuple[str, dict[str, Any]]]:
    """A tiny SSE parser: ``event:`` / ``data:`` lines, events separated by a blank line."""
    events: list[tuple[str, dict[str, Any]]] = []
    for chunk in raw.decode().split("\n\n"):
        if not chunk.strip():
            continue
        name, data = "", []
        for line in chunk.split("\n"):
            if line.startswith("event:"):
                name = line[len("event:") :].strip()
            elif line.startswith("data:"):
                data.append(line[len("data:") :].strip())
        events.append((name, json.loads("\n".join(data))))
    return events


def accumulate(events: list[tuple[str, dict[str, Any]]]) -> dict[str, Any]:
    """Fold stream events into a Message, the way the SDK's accumulator does."""
    message: dict[str, Any] = {}
    partial: dict[int, str] = {}
    for name, data in events:
        assert data["type"] == name
        if name == "message_start":
            message = dict(data["message"])
            message["content"] = []
        elif name == "content_block_start":
            assert data["index"] == len(message["content"])
            message["content"].append(dict(data["content_block"]))
        elif name == "content_block_delta":
            block = message["content"][data["index"]]
            delta = data["delta"]
            if delta["type"] == "text_delta":
                block["text"] += delta["text"]
            elif delta["type"] == "thinking_delta":
                block["thinking"] += delta["thinking"]
            elif delta["type"] == "signature_delta":
                block["signature"] = delta["signature"]
            elif delta["type"] == "input_json_delta":
                partial[data["index"]] = partial.get(data["index"], "") + delta["partial_json"]
            else:  # pragma: no cover
                raise AssertionError(delta)
        elif name == "content_block_stop":
            index = data["index"]
            if index in partial:
                message["content"][index]["input"] = json.loads(partial.pop(index))
        elif name == "message_delta":
            message.update(data["delta"])
            message["usage"] = {**message.get("usage", {}), **data["usage"]}
    return message


def post(
    api: FakeAnthropic,
    body: Mapping[str, Any],
    path: str = "/v1/messages?beta=true",
    headers: Mapping[str, str] | None = None,
) -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", api.port, timeout=10)
    try:
        hdrs = {"content-type": "application/json", "x-api-key": FAKE_KEY, **(headers or {})}
        conn.request("POST", path, body=json.dumps(body), headers=hdrs)
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        conn.close()


def user(text: str) -> dict[str, Any]:
    return {"role": "user", "content": [{"type": "text", "text": text}]}


def conversation(scenario: Mapping[str, Any], first: str, turns: int) -> list[dict[str, Any]]:
    """A request's messages after ``turns`` assistant turns of ``scenario`` (CWD substituted)."""
    # Like Claude Code: one opening user message whose text blocks hold context, then the prompt.
    opening = [
        {"type": "text", "text": "<system-reminder>\nContents of CLAUDE.md\n</system-reminder>"},
        {"type": "text", "text": first},
    ]
    msgs: list[dict[str, Any]] = [{"role": "user", "content": opening}]
    msgs.append({"role": "system", "content": "# Environment"})
    for turn in substitute_cwd(scenario["turns"], CWD)[:turns]:
        msgs.append({"role": "assistant", "content": turn["content"]})
        results = [
            {"type": "tool_result", "tool_use_id": b["id"], "content": "ok"}
            for b in turn["content"]
            if b["type"] == "tool_use"
        ]
        msgs.append({"role": "user", "content": results or [{"type": "text", "text": "go"}]})
    return msgs


def request_body(messages: list[dict[str, Any]], stream: bool = True) -> dict[str, Any]:
    return {
        "model": "claude-opus-5-5",
        "max_tokens": 1000,
        "messages": messages,
        "tools": [{"name": "Read", "input_schema": {"type": "object"}}],
        "stream": stream,
    }


def expected_blocks(turn_content: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The scenario blocks with CWD substituted, ignoring the fake's thinking signatures."""
    return substitute_cwd(turn_content, CWD)  # type: ignore[no-any-return]


def strip_signatures(blocks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: v for k, v in b.items() if k != "signature"} for b in blocks]


@pytest.fixture
def api(tmp_path: Path) -> Iterator[FakeAnthropic]:
    with FakeAnthropic(BASIC_SCENARIO, cwd=CWD, log_path=tmp_path / "requests.jsonl") as fake:
        yield fake


# --------------------------------------------------------------------------- unit tests


def test_embedded_scenarios_match_fixtures() -> None:
    for name, scenario in (("basic", BASIC_SCENARIO), ("subagent", SUBAGENT_SCENARIO)):
        assert json.loads((FIXTURES / name / "scenario.json").read_text()) == scenario


def test_stream_parses_back_into_the_scenario_blocks(api: FakeAnthropic) -> None:
    body = request_body(conversation(BASIC_SCENARIO, BASIC_SCENARIO["prompt"], 1))
    status, headers, raw = post(api, body)
    assert status == 200
    assert headers["content-type"].startswith("text/event-stream")
    events = parse_sse(raw)
    names = [n for n, _ in events]
    assert names[:2] == ["message_start", "ping"]
    assert names[-2:] == ["message_delta", "message_stop"]
    message = accumulate(events)
    want = expected_blocks(BASIC_SCENARIO["turns"][1]["content"])
    assert strip_signatures(message["content"]) == want
    assert message["content"][0]["signature"].startswith("fake-signature-")
    assert message["id"].startswith("msg_01fake")
    assert message["model"] == "claude-opus-5-5"
    assert message["stop_reason"] == "tool_use"
    assert message["usage"]["output_tokens"] > 0
    # thinking: thinking_delta(s) then one signature_delta; text and tool input in several chunks.
    deltas: dict[int, list[str]] = {}
    for name, data in events:
        if name == "content_block_delta":
            deltas.setdefault(data["index"], []).append(data["delta"]["type"])
        if name == "content_block_start" and data["content_block"]["type"] == "tool_use":
            assert data["content_block"]["input"] == {}
    assert deltas[0][-1] == "signature_delta" and set(deltas[0][:-1]) == {"thinking_delta"}
    assert deltas[1] == ["text_delta"] * len(deltas[1]) and len(deltas[1]) > 1
    assert len(deltas[2]) > 1 and set(deltas[2]) == {"input_json_delta"}
    assert "\nevent: " not in raw.decode().split("\n\n")[0]  # one event per frame


def test_final_turn_ends_the_turn(api: FakeAnthropic) -> None:
    body = request_body(conversation(BASIC_SCENARIO, BASIC_SCENARIO["prompt"], 4))
    message = accumulate(parse_sse(post(api, body)[2]))
    assert message["stop_reason"] == "end_turn"
    assert message["content"] == [{"type": "text", "text": final_text(BASIC_SCENARIO)}]


def test_turn_is_chosen_by_conversation_not_by_a_counter(api: FakeAnthropic) -> None:
    prompt = BASIC_SCENARIO["prompt"]
    first = accumulate(
        parse_sse(post(api, request_body(conversation(BASIC_SCENARIO, prompt, 0)))[2])
    )
    # A retry of the same request gets the same answer.
    again = accumulate(
        parse_sse(post(api, request_body(conversation(BASIC_SCENARIO, prompt, 0)))[2])
    )
    assert strip_signatures(first["content"]) == expected_blocks(
        BASIC_SCENARIO["turns"][0]["content"]
    )
    assert first["content"] == again["content"]
    assert first["id"] != again["id"]
    # Turn 3, then past the end: the fallback text.
    third = accumulate(
        parse_sse(post(api, request_body(conversation(BASIC_SCENARIO, prompt, 3)))[2])
    )
    assert third["content"] == expected_blocks(BASIC_SCENARIO["turns"][3]["content"])
    done = accumulate(
        parse_sse(post(api, request_body(conversation(BASIC_SCENARIO, prompt, 5)))[2])
    )
    assert done["content"] == [{"type": "text", "text": BASIC_SCENARIO["fallback_text"]}]
    assert done["stop_reason"] == "end_turn"
    logged = [(r["conversation"], r["turn"], r["fallback"]) for r in api.messages_requests()]
    assert logged == [("main", 0, False), ("main", 0, False), ("main", 3, False), ("main", 5, True)]


def test_subagent_conversations_are_matched_by_first_user_message(tmp_path: Path) -> None:
    sub = SUBAGENT_SCENARIO["subagents"][0]
    with FakeAnthropic(SUBAGENT_SCENARIO, cwd=CWD) as api:
        task = SUBAGENT_SCENARIO["turns"][0]["content"][1]["input"]["prompt"]
        sub0 = accumulate(parse_sse(post(api, request_body(conversation(sub, task, 0)))[2]))
        sub1 = accumulate(parse_sse(post(api, request_body(conversation(sub, task, 1)))[2]))
        # The main conversation mentions SUBAGENT-TASK only in an assistant tool_use: still main.
        main_msgs = conversation(SUBAGENT_SCENARIO, SUBAGENT_SCENARIO["prompt"], 1)
        main1 = accumulate(parse_sse(post(api, request_body(main_msgs))[2]))
    assert sub0["content"] == expected_blocks(sub["turns"][0]["content"])
    assert sub0["content"][1]["input"] == {"file_path": f"{CWD}/src/util.py"}
    assert sub1["content"] == expected_blocks(sub["turns"][1]["content"])
    assert main1["content"] == [{"type": "text", "text": final_text(SUBAGENT_SCENARIO)}]
    assert [(r["conversation"], r["turn"]) for r in api.requests] == [
        ("subagent:0", 0),
        ("subagent:0", 1),
        ("main", 1),
    ]


def test_side_request_gets_json_text(api: FakeAnthropic) -> None:
    body = {
        "model": "claude-haiku-4-5",
        "max_tokens": 512,
        "messages": [user("Generate a title for: change the greeting")],
        "output_config": {
            "format": {
                "type": "json_schema",
                "schema": {"type": "object", "properties": {"title": {"type": "string"}}},
            }
        },
        "stream": True,
    }
    message = accumulate(parse_sse(post(api, body)[2]))
    assert message["model"] == "claude-haiku-4-5"
    assert json.loads(message["content"][0]["text"]) == {"title": BASIC_SCENARIO["side_text"]}
    assert api.requests[-1]["conversation"] == "side"


def test_compact_request_gets_a_summary(api: FakeAnthropic) -> None:
    msgs = conversation(BASIC_SCENARIO, BASIC_SCENARIO["prompt"], 2)
    msgs.append(user("Summarise: an <analysis> block followed by a <summary> block."))
    message = accumulate(parse_sse(post(api, request_body(msgs))[2]))
    text = message["content"][0]["text"]
    assert "<summary>" in text and "</summary>" in text
    assert message["stop_reason"] == "end_turn"
    assert api.requests[-1]["conversation"] == "compact"


def test_non_streaming_request_gets_a_message(api: FakeAnthropic) -> None:
    body = request_body(conversation(BASIC_SCENARIO, BASIC_SCENARIO["prompt"], 0), stream=False)
    status, headers, raw = post(api, body, path="/v1/messages")
    assert status == 200 and headers["content-type"] == "application/json"
    message = json.loads(raw)
    assert message["type"] == "message" and message["role"] == "assistant"
    assert strip_signatures(message["content"]) == expected_blocks(
        BASIC_SCENARIO["turns"][0]["content"]
    )


def test_count_tokens_head_and_unknown_paths(api: FakeAnthropic) -> None:
    status, _, raw = post(api, request_body([user("hi")]), path="/v1/messages/count_tokens")
    assert status == 200 and json.loads(raw)["input_tokens"] > 0
    conn = http.client.HTTPConnection("127.0.0.1", api.port, timeout=10)
    for path in ("/", "/api/hello"):
        conn.request("HEAD", path)
        resp = conn.getresponse()
        resp.read()
        assert resp.status == 200
    conn.request("GET", "/v1/models")
    resp = conn.getresponse()
    err = json.loads(resp.read())
    conn.close()
    assert resp.status == 404
    assert err["type"] == "error" and err["error"]["type"] == "not_found_error"


def test_injected_529_is_overloaded_error(tmp_path: Path) -> None:
    with FakeAnthropic(BASIC_SCENARIO, cwd=CWD, fail={2: {"status": 529}}) as api:
        body = request_body(conversation(BASIC_SCENARIO, BASIC_SCENARIO["prompt"], 0))
        first = post(api, body)
        second = post(api, body)
        third = post(api, body)
    assert first[0] == 200 and third[0] == 200
    assert second[0] == 529
    assert json.loads(second[2])["error"] == {"type": "overloaded_error", "message": "Overloaded"}
    assert [r["response"]["status"] for r in api.requests] == [200, 529, 200]


def test_injected_reset_closes_the_connection_mid_stream() -> None:
    with FakeAnthropic(BASIC_SCENARIO, cwd=CWD, fail={1: {"reset": True}}) as api:
        body = request_body(conversation(BASIC_SCENARIO, BASIC_SCENARIO["prompt"], 0))
        conn = http.client.HTTPConnection("127.0.0.1", api.port, timeout=10)
        conn.request("POST", "/v1/messages", body=json.dumps(body))
        resp = conn.getresponse()
        assert resp.status == 200
        with pytest.raises((http.client.IncompleteRead, ConnectionError)):
            resp.read()
        conn.close()
        # The next request is answered normally.
        assert post(api, body)[0] == 200
    assert api.requests[0]["response"]["injected"] == {"reset": True}


def test_injected_sse_error_event() -> None:
    fail = {1: {"sse_error": "overloaded_error"}}
    with FakeAnthropic(BASIC_SCENARIO, cwd=CWD, fail=fail) as api:
        body = request_body(conversation(BASIC_SCENARIO, BASIC_SCENARIO["prompt"], 0))
        events = parse_sse(post(api, body)[2])
    assert [n for n, _ in events] == ["message_start", "ping", "error"]
    assert events[-1][1]["error"]["type"] == "overloaded_error"


def test_chunk_delay_slows_the_stream() -> None:
    body = request_body(conversation(BASIC_SCENARIO, BASIC_SCENARIO["prompt"], 4))
    with FakeAnthropic(BASIC_SCENARIO, cwd=CWD, chunk_delay_s=0.02) as api:
        t0 = time.monotonic()
        events = parse_sse(post(api, body)[2])
        elapsed = time.monotonic() - t0
    assert elapsed >= 0.02 * (len(events) - 1) * 0.9


def test_log_has_requests_and_redacts_keys(api: FakeAnthropic, tmp_path: Path) -> None:
    body = request_body(conversation(BASIC_SCENARIO, BASIC_SCENARIO["prompt"], 0))
    post(api, body, headers={"authorization": f"Bearer {FAKE_KEY}", "anthropic-version": "x"})
    log = tmp_path / "requests.jsonl"
    text = log.read_text()
    assert FAKE_KEY not in text
    (entry,) = [json.loads(line) for line in text.splitlines()]
    headers = {k.lower(): v for k, v in entry["headers"].items()}
    assert headers["x-api-key"] == "[redacted]"
    assert headers["authorization"] == "[redacted]"
    assert headers["anthropic-version"] == "x"
    assert entry["body"] == body
    assert (entry["seq"], entry["method"], entry["path"]) == (1, "POST", "/v1/messages?beta=true")
    assert (entry["conversation"], entry["turn"]) == ("main", 0)
    assert entry["response"]["stop_reason"] == "tool_use"
    assert isinstance(entry["t"], float)
    assert api.requests == [entry]


def test_script_prints_base_url_and_stops_on_sigterm(tmp_path: Path) -> None:
    scenario = tmp_path / "scenario.json"
    scenario.write_text(json.dumps(BASIC_SCENARIO))
    script = Path(__file__).with_name("fake_anthropic.py")
    log = tmp_path / "log.jsonl"
    proc = subprocess.Popen(
        [sys.executable, str(script), "--scenario", str(scenario), "--cwd", CWD, "--log", str(log)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().strip()
        assert line.startswith("ANTHROPIC_BASE_URL=http://127.0.0.1:")
        port = int(line.rsplit(":", 1)[1])
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        conn.request("HEAD", "/api/hello")
        assert conn.getresponse().status == 200
        conn.close()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    assert json.loads(log.read_text())["path"] == "/api/hello"


def test_transcript_path_and_project_builder(tmp_path: Path) -> None:
    assert dashed_project_name("/home/user/project") == "-home-user-project"
    assert transcript_path("/home/user", "/home/user/project", "abc") == Path(
        "/home/user/.claude/projects/-home-user-project/abc.jsonl"
    )
    root = make_basic_project(tmp_path / "p")
    app = (root / "src" / "app.py").read_text()
    assert 'print(greet("world"))' in app and len(app.splitlines()) == 9
    assert len((root / "src" / "util.py").read_text().splitlines()) == 6
    assert {p.name for p in root.iterdir()} >= {"src", "notes.txt", "CLAUDE.md"}


# --------------------------------------------------------------------------- end to end


@pytest.fixture(scope="module")
def claude() -> Path:
    try:
        return claude_bin()
    except ClaudeInstallError as exc:
        pytest.skip(f"Claude Code is not available: {exc}")


def _e2e(tmp_path: Path, scenario: Mapping[str, Any]) -> tuple[Path, Path, FakeAnthropic, Any]:
    project = make_basic_project(tmp_path / "project").resolve()
    home = (tmp_path / "home").resolve()
    with FakeAnthropic(scenario, cwd=project, log_path=tmp_path / "requests.jsonl") as api:
        run = run_claude(
            scenario["prompt"], project_dir=project, home_dir=home, base_url=api.base_url
        )
    assert run.returncode == 0, run.stderr
    assert run.result == final_text(scenario)
    assert run.session_id
    assert transcript_path(home, project, run.session_id).is_file()
    return project, home, api, run


@pytest.mark.e2e
def test_e2e_basic(claude: Path, tmp_path: Path) -> None:
    project, _home, api, run = _e2e(tmp_path, BASIC_SCENARIO)
    assert 'print(greet("Claude"))' in (project / "src" / "app.py").read_text()
    reqs = api.messages_requests()
    assert [(r["conversation"], r["turn"]) for r in reqs] == [("main", i) for i in range(5)]
    assert all(r["headers"]["x-api-key"] == "[redacted]" for r in reqs)
    # The tools really ran: the model saw their results in the following requests.
    last = reqs[-1]["body"]["messages"]
    results = [
        b
        for m in last
        if m["role"] == "user" and isinstance(m["content"], list)
        for b in m["content"]
        if b.get("type") == "tool_result"
    ]
    assert len(results) == 5
    assert "def greet(name)" in json.dumps(results)
    assert any(b.get("is_error") for b in results)  # cat notes-missing.txt
    names = [b["name"] for b in run.tool_uses()]
    assert names == ["Read", "Grep", "Bash", "Bash", "Edit"]


@pytest.mark.e2e
def test_e2e_subagent(claude: Path, tmp_path: Path) -> None:
    project, home, api, run = _e2e(tmp_path, SUBAGENT_SCENARIO)
    convs = [(r["conversation"], r["turn"]) for r in api.messages_requests()]
    assert convs == [("main", 0), ("subagent:0", 0), ("subagent:0", 1), ("main", 1)]
    sub_last = api.messages_requests("subagent:0")[-1]["body"]["messages"]
    assert "return greet(name).upper()" in json.dumps(sub_last)  # the subagent's Read ran
    (agent_file,) = subagent_transcripts(home, project, run.session_id)
    lines = [json.loads(line) for line in agent_file.read_text().splitlines()]
    assert any(line.get("isSidechain") for line in lines)
