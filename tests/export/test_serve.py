"""`bc-train serve`: the exported tiny model behind an Anthropic Messages endpoint, driven
by the anthropic SDK and by the real Claude Code CLI."""

from __future__ import annotations

import json
import random
import subprocess
import threading
from collections.abc import Generator, Iterator
from pathlib import Path
from typing import Any

import anthropic
import pytest

from claude_bc.export import messages as chat
from claude_bc.export.serve import Generated, LocalModel, Server, events, render_chat
from claude_bc.training.config import DEFAULT_SYSTEM
from claude_bc.training.template import CHAT_TEMPLATE, PYTHON_TAG, to_hf_tool
from tests.claude_code import make_basic_project, run_claude, transcript_path
from tests.export.conftest import BC_TRAIN

READ = {
    "name": "Read",
    "description": "Read a file from the local filesystem.",
    "input_schema": {
        "type": "object",
        "properties": {"file_path": {"type": "string", "description": "Absolute path"}},
        "required": ["file_path"],
    },
}
BASH = {
    "name": "Bash",
    "description": "Run a command.",
    "input_schema": {"type": "object", "properties": {"command": {"type": "string"}}},
}
NAME = "llama-claude-bc-v1"
# A short reply the model must end by itself (then only end-of-turn tokens are allowed).
SHORT_REPLY = "root ::= [a-zA-Z ]{1,40}"


def _start(server: Server) -> Iterator[Server]:
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


@pytest.fixture(scope="module")
def model(exported: dict[str, Any]) -> LocalModel:
    return LocalModel(exported["out"] / f"{NAME}.gguf", n_ctx=8192)


@pytest.fixture(scope="module")
def server(model: LocalModel) -> Iterator[Server]:
    yield from _start(Server(("127.0.0.1", 0), model))


@pytest.fixture
def client(server: Server) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=server.base_url, api_key="local", max_retries=0)


# --------------------------------------------------------------------------- the SDK


def test_a_plain_request_gets_a_message(client: anthropic.Anthropic) -> None:
    msg = client.messages.create(
        model="claude-opus-5-5",
        max_tokens=20,
        system="You are terse.",
        messages=[{"role": "user", "content": "Say hello."}],
        tools=[READ],  # type: ignore[list-item]
    )
    assert msg.type == "message" and msg.role == "assistant"
    assert msg.model == NAME  # the reply says which model served it
    assert msg.stop_reason in ("end_turn", "max_tokens", "tool_use")
    assert msg.usage.input_tokens > 0 and 0 < msg.usage.output_tokens <= 20
    assert all(b.type in ("text", "thinking", "tool_use") for b in msg.content)


def test_streaming_follows_the_api_event_order(client: anthropic.Anthropic) -> None:
    names: list[str] = []
    text = ""
    with client.messages.stream(
        model="m", max_tokens=40, messages=[{"role": "user", "content": "Write a line."}]
    ) as stream:
        for event in stream:
            names.append(event.type)
            if event.type == "content_block_delta" and event.delta.type == "text_delta":
                text += event.delta.text
        final = stream.get_final_message()
    assert names[0] == "message_start" and names[-1] == "message_stop"
    assert names[-2] == "message_delta"
    assert final.model == NAME and final.stop_reason in ("end_turn", "max_tokens")
    assert "".join(b.text for b in final.content if b.type == "text") == text
    assert final.usage.output_tokens == 40 or final.stop_reason == "end_turn"


@pytest.mark.parametrize("stream", [False, True])
def test_a_forced_tool_choice_gives_a_tool_use_block(
    client: anthropic.Anthropic, stream: bool
) -> None:
    kwargs: dict[str, Any] = {
        "model": "m",
        "max_tokens": 2000,
        "messages": [{"role": "user", "content": "Read the readme."}],
        "tools": [READ, BASH],
        "tool_choice": {"type": "tool", "name": "Bash"},
        # greedy, so that the run is the same every time: sampled, the random tiny model
        # once wrote a number with a leading zero ("01", not JSON), which the grammar then
        # allowed, and the call did not parse
        "extra_body": {"temperature": 0.0},
    }
    if stream:
        with client.messages.stream(**kwargs) as s:
            msg = s.get_final_message()
    else:
        msg = client.messages.create(**kwargs)
    calls = [b for b in msg.content if b.type == "tool_use"]
    assert msg.stop_reason == "tool_use" and len(calls) == 1
    assert calls[0].name == "Bash" and isinstance(calls[0].input, dict)
    assert calls[0].id.startswith("toolu_")


def test_a_tool_result_conversation_is_accepted(client: anthropic.Anthropic) -> None:
    msg = client.messages.create(
        model="m",
        max_tokens=8,
        tools=[READ],  # type: ignore[list-item]
        messages=[
            {"role": "user", "content": "What is in a.py?"},
            {
                "role": "assistant",
                "content": [
                    {"type": "text", "text": "Reading it."},
                    {
                        "type": "tool_use",
                        "id": "toolu_01",
                        "name": "Read",
                        "input": {"file_path": "/a.py"},
                    },
                ],
            },
            {
                "role": "user",
                "content": [
                    {"type": "tool_result", "tool_use_id": "toolu_01", "content": "x = 1"},
                ],
            },
        ],
    )
    assert msg.usage.input_tokens > 0


def test_bad_requests_get_anthropic_errors(client: anthropic.Anthropic, model: LocalModel) -> None:
    with pytest.raises(anthropic.BadRequestError, match="max_tokens"):
        client.messages.create(model="m", max_tokens=0, messages=[{"role": "user", "content": "x"}])
    huge = "word " * (model.llm.n_ctx() * 2)
    with pytest.raises(anthropic.BadRequestError, match="prompt is too long"):
        client.messages.create(
            model="m", max_tokens=5, messages=[{"role": "user", "content": huge}]
        )
    count = client.messages.count_tokens(model="m", messages=[{"role": "user", "content": "hi"}])
    assert count.input_tokens > 0


# --------------------------------------------------------------------------- translation


def test_requests_render_as_the_training_chats() -> None:
    """An Anthropic request becomes what `bc-train dataset` writes for the same turns."""
    body = {
        "system": [{"type": "text", "text": "Claude Code's long system prompt"}],
        "tools": [READ],
        "messages": [
            {
                "role": "user",
                "content": [
                    {
                        "type": "text",
                        "text": "<system-reminder>CLAUDE.md says hi</system-reminder>",
                    },
                    {"type": "text", "text": "Fix the bug"},
                ],
            },
            {
                "role": "assistant",
                "content": [
                    {"type": "thinking", "thinking": "Look first.", "signature": "s"},
                    {"type": "text", "text": "Reading."},
                    {"type": "tool_use", "id": "t1", "name": "Read", "input": {"file_path": "/a"}},
                ],
            },
            {
                "role": "user",
                "content": [
                    {
                        "type": "tool_result",
                        "tool_use_id": "t1",
                        "content": [{"type": "text", "text": "x = 1"}],
                    }
                ],
            },
            {"role": "system", "content": "# Environment\nWorking directory: /p"},
        ],
    }
    prompt = chat.to_chat(body, DEFAULT_SYSTEM)
    assert prompt.messages == [
        {"role": "system", "content": DEFAULT_SYSTEM},
        {"role": "user", "content": "Fix the bug"},
        {
            "role": "assistant",
            "content": "Reading.",
            "thinking": "Look first.",
            "tool_calls": [
                {"type": "function", "function": {"name": "Read", "arguments": {"file_path": "/a"}}}
            ],
        },
        {"role": "tool", "name": "Read", "content": "x = 1"},
    ]
    assert prompt.tools == [to_hf_tool(READ, "compact")]
    # serve --tool-schemas: the schemas the model was trained with stand in by name
    short = {"name": "Read", "description": "Read a file.", "input_schema": {"type": "object"}}
    trained = chat.to_chat(body, DEFAULT_SYSTEM, {"Read": short})
    assert trained.tools == [to_hf_tool(short, "compact")] != prompt.tools
    assert chat.to_chat(body, None, {"Read": short}).tools == [to_hf_tool(READ, "full")]
    # and in the order training listed them, whatever order Claude Code sends
    glob = {"name": "Glob", "description": "Find files.", "input_schema": {"type": "object"}}
    sent = {**body, "tools": [BASH, glob, READ]}
    order = {"Read": short, "Bash": BASH}
    names = [t["function"]["name"] for t in chat.to_chat(sent, DEFAULT_SYSTEM, order).tools]
    assert names == ["Read", "Bash", "Glob"]
    as_is = [t["function"]["name"] for t in chat.to_chat(sent, None, order).tools]
    assert as_is == ["Bash", "Glob", "Read"]
    as_sent = chat.to_chat(body)
    assert as_sent.messages[0]["content"] == "Claude Code's long system prompt"
    assert "CLAUDE.md" in as_sent.messages[1]["content"]
    assert as_sent.messages[-1] == {
        "role": "system",
        "content": "# Environment\nWorking directory: /p",
    }


def test_our_renderer_matches_transformers(tiny_model: Path) -> None:
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_model)
    body = {
        "tools": [READ, BASH],
        "messages": [
            {"role": "user", "content": "Run ls, then read ünïcode.py"},
            {
                "role": "assistant",
                "content": [
                    {"type": "tool_use", "id": "a", "name": "Bash", "input": {"command": "ls"}},
                    {"type": "tool_use", "id": "b", "name": "Read", "input": {"file_path": "ü.py"}},
                ],
            },
            {
                "role": "user",
                "content": [
                    {"type": "tool_result", "tool_use_id": "a", "content": "ü.py"},
                    {"type": "tool_result", "tool_use_id": "b", "content": "print(1)"},
                ],
            },
        ],
    }
    p = chat.to_chat(body, DEFAULT_SYSTEM)
    ours = render_chat(CHAT_TEMPLATE, p.messages, p.tools)
    theirs = tok.apply_chat_template(
        p.messages, tools=p.tools, tokenize=False, add_generation_prompt=True
    )
    assert ours == theirs


def _pieces(text: str, rng: random.Random) -> list[str]:
    cuts = sorted(rng.sample(range(1, len(text)), min(len(text) - 1, rng.randint(1, 12))))
    return [text[a:b] for a, b in zip([0, *cuts], [*cuts, len(text)], strict=True)]


def _generation(pieces: list[str]) -> Generator[str, None, Generated]:
    """Generated text arriving in the given pieces (what LocalModel.generate yields)."""
    yield from pieces
    return Generated("".join(pieces), len(pieces), "end_turn")


def _fold(stream: list[tuple[str, dict[str, Any]]]) -> list[dict[str, Any]]:
    """Stream events folded into content blocks, as a client does."""
    blocks: list[dict[str, Any]] = []
    partial: dict[int, str] = {}
    for name, data in stream:
        if name == "content_block_start":
            blocks.append(dict(data["content_block"]))
        elif name == "content_block_delta":
            block, delta = blocks[data["index"]], data["delta"]
            if delta["type"] == "input_json_delta":
                partial[data["index"]] = partial.get(data["index"], "") + delta["partial_json"]
            else:
                field = {
                    "text_delta": "text",
                    "thinking_delta": "thinking",
                    "signature_delta": "signature",
                }[delta["type"]]
                block[field] += delta[field]
    for index, text in partial.items():
        blocks[index]["input"] = json.loads(text)
    return [{k: v for k, v in b.items() if k != "id"} for b in blocks]


def test_streamed_events_fold_into_the_parsed_message() -> None:
    call = json.dumps({"name": "Read", "parameters": {"file_path": "/x"}})
    outputs = [
        "Just text, no calls.",
        "<thinking>Plan it.</thinking>\nNow the call." + PYTHON_TAG + call,
        "<thinking>cut off while thinking</th",
        "<thin is not a tag" + PYTHON_TAG + call + "\n" + call,
        "  \n" + PYTHON_TAG + call + "\nnot a call",
        "text ending in a partial tag <|pyth",
        "\n\n",
    ]
    rng = random.Random(3)
    for out in outputs:
        want = [{k: v for k, v in b.items() if k != "id"} for b in chat.parse_output(out)]
        for _ in range(25):
            stream = list(events(NAME, _generation(_pieces(out, rng)), {"input_tokens": 1}))
            assert _fold(stream) == want, out
            names = [n for n, _ in stream]
            assert names[:2] == ["message_start", "ping"]
            assert names[-2:] == ["message_delta", "message_stop"]


# --------------------------------------------------------------------------- Claude Code


@pytest.mark.e2e
def test_claude_code_runs_one_turn_on_the_local_model(model: LocalModel, tmp_path: Path) -> None:
    short = Server(("127.0.0.1", 0), model, max_tokens_cap=64, grammar=SHORT_REPLY)
    for srv in _start(short):
        project = make_basic_project(tmp_path / "project")
        run = run_claude(
            "Say hello.",
            project_dir=project,
            home_dir=tmp_path / "home",
            base_url=srv.base_url,
            tools="Read",
            timeout=180,
        )
    assert run.returncode == 0, run.stderr[-2000:]
    result = run.result_message
    assert result is not None and result["subtype"] == "success" and not result["is_error"]
    assert result["stop_reason"] == "end_turn" and result["result"].strip()
    # the transcript (and so the captured trace) names the model that served the turn
    assert run.session_id is not None
    lines = transcript_path(tmp_path / "home", project, run.session_id).read_text().splitlines()
    models = {
        json.loads(line)["message"].get("model")
        for line in lines
        if json.loads(line).get("type") == "assistant"
    }
    assert models == {NAME}


# --------------------------------------------------------------------------- the command


def test_the_serve_command_prints_the_base_url_and_answers(exported: dict[str, Any]) -> None:
    gguf = exported["out"] / f"{NAME}.gguf"
    proc = subprocess.Popen(
        [str(BC_TRAIN), "serve", str(gguf), "--port", "0", "--max-tokens", "4"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().startswith(f"serving {NAME} at http://127.0.0.1:")
        line = proc.stdout.readline().strip()
        assert line.startswith("ANTHROPIC_BASE_URL=http://127.0.0.1:")
        client = anthropic.Anthropic(base_url=line.split("=", 1)[1], api_key="x", max_retries=0)
        msg = client.messages.create(
            model="m", max_tokens=100, messages=[{"role": "user", "content": "hi"}]
        )
        assert msg.usage.output_tokens <= 4  # the cap holds whatever the request asks
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_serving_a_missing_model_is_one_error_line(tmp_path: Path) -> None:
    proc = subprocess.run(
        [str(BC_TRAIN), "serve", str(tmp_path / "nope.gguf")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 1
    assert proc.stderr.strip() == f"bc-train: error: {tmp_path / 'nope.gguf'}: no such model file"
