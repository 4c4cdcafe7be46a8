"""One tool-call parser for eval, RL, ``bc-train serve`` and Ollama's side (issue 15).

The same model outputs, written in every form Meta documents for Llama 3.1 and Ollama's
parser takes, go through: the parser that eval and RL use (``training.replay.parse_turn``),
``bc-train serve``'s whole-output parse and its streamed SSE events (split at random), and
Ollama's side: the calls are rendered back into the next prompt by the Modelfile's Go
template (run in Go's text/template as Ollama runs it) and by the GGUF's Jinja template,
and both read back as the same calls.
"""

from __future__ import annotations

import json
import random
import subprocess
from pathlib import Path
from typing import Any

import pytest

from claude_bc.export import messages as chat
from claude_bc.export.ollama import GO_TEMPLATE
from claude_bc.export.serve import events, render_chat
from claude_bc.training.replay import parse_turn
from claude_bc.training.template import BOS, CHAT_TEMPLATE, EOT, PYTHON_TAG, parse_tool_calls
from tests.export.test_ollama_template import _ollama_messages, renderer  # noqa: F401
from tests.export.test_serve import NAME, _fold, _generation, _pieces

READ = {"name": "Read", "args": {"file_path": "/repo/a.py"}}
GREP = {"name": "Grep", "args": {"pattern": "def main", "-n": True}}
CALLS = [READ, GREP]


def _obj(call: dict[str, Any], key: str = "parameters", indent: int | None = None) -> str:
    return json.dumps({"name": call["name"], key: call["args"]}, indent=indent)


# (output, the calls it holds, the text before them)
FORMS: list[tuple[str, list[dict[str, Any]], str]] = [
    # Meta, Llama 3.1: tagged, one JSON object a line (our template's own form)
    (f"Reading it.{PYTHON_TAG}{_obj(READ)}", [READ], "Reading it."),
    (f"{PYTHON_TAG}{_obj(READ)}\n{_obj(GREP)}{EOT}", CALLS, ""),
    # Meta: the bare JSON form, with "parameters" or "arguments"
    (_obj(READ), [READ], ""),
    (_obj(READ, "arguments"), [READ], ""),
    (f"{PYTHON_TAG}{_obj(GREP, 'arguments')}", [GREP], ""),
    ('{"name": "Read", "arguments": "{\\"file_path\\": \\"/repo/a.py\\"}"}', [READ], ""),
    # what Ollama's parser also takes: pretty-printed, ';'-separated, a JSON array
    (f"{PYTHON_TAG}{_obj(READ, indent=2)}", [READ], ""),
    (_obj(GREP, indent=4), [GREP], ""),
    (f"{PYTHON_TAG}{_obj(READ)}; {_obj(GREP)}", CALLS, ""),
    (f"{_obj(READ)};{_obj(GREP, 'arguments')}", CALLS, ""),
    (f"{PYTHON_TAG}[{_obj(READ)}, {_obj(GREP)}]", CALLS, ""),
    (json.dumps([json.loads(_obj(READ)), json.loads(_obj(GREP))], indent=2), CALLS, ""),
    # text, then a bare call on its own line
    (f"Let me look at it.\n{_obj(READ)}", [READ], "Let me look at it.\n"),
    (f"<thinking>Find it first.</thinking>\n{_obj(GREP)}", [GREP], ""),
]
NOT_CALLS = [
    "Plain prose, no calls.",
    'Write it as {"name": "x"} in the config.',  # JSON inside prose is text
    '{"title": "a JSON answer, not a call"}',
    "[1, 2, 3]",
]
MALFORMED = [
    f'Reading.{PYTHON_TAG}{{"name": "Read", "parameters": ',
    f"{PYTHON_TAG}not json at all",
    f"{PYTHON_TAG}{_obj(READ)}\n{{oops",
]


def _as_calls(calls: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{"name": c["name"], "arguments": c["args"]} for c in calls]


def _served(blocks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{"name": b["name"], "arguments": b["input"]} for b in blocks if b["type"] == "tool_use"]


@pytest.mark.parametrize(("output", "calls", "text"), FORMS)
def test_every_documented_form_is_a_call_everywhere(
    output: str, calls: list[dict[str, Any]], text: str
) -> None:
    want = _as_calls(calls)
    turn = parse_turn(output)  # eval and RL
    assert turn is not None and turn.tool_calls == want and turn.content == text
    blocks = chat.parse_output(output)  # bc-train serve, whole output
    assert _served(blocks) == want
    assert [b["text"] for b in blocks if b["type"] == "text"] == ([text] if text.strip() else [])
    rng = random.Random(7)
    for _ in range(20):  # bc-train serve, streamed in random pieces
        stream = list(events(NAME, _generation(_pieces(output, rng)), {"input_tokens": 1}))
        assert _fold(stream) == [{k: v for k, v in b.items() if k != "id"} for b in blocks]
        stop = [d for n, d in stream if n == "message_delta"][0]["delta"]["stop_reason"]
        assert stop == "tool_use"


@pytest.mark.parametrize("output", NOT_CALLS)
def test_text_that_is_not_a_call_stays_text(output: str) -> None:
    turn = parse_turn(output)
    assert turn is not None and turn.tool_calls == [] and turn.content == output
    assert chat.parse_output(output) == [{"type": "text", "text": output}]
    rng = random.Random(5)
    stream = list(events(NAME, _generation(_pieces(output, rng)), {"input_tokens": 1}))
    assert _fold(stream) == [{"type": "text", "text": output}]


@pytest.mark.parametrize("output", MALFORMED)
def test_a_broken_call_is_malformed_for_eval_and_visible_in_serve(output: str) -> None:
    assert parse_turn(output) is None  # eval/RL: unparsable (reward -1)
    turn = parse_tool_calls(output)
    assert turn.errors and turn.rejected
    text = " ".join(b["text"] for b in chat.parse_output(output) if b["type"] == "text")
    for raw in turn.rejected:  # serve: what was not a call is shown, never dropped
        assert raw in text


def test_ollama_and_serve_write_the_parsed_calls_back_the_same(renderer: Path) -> None:  # noqa: F811
    """The calls serve parsed go into the next request; Ollama renders them with the
    Modelfile's Go template, llama.cpp with the Jinja template: both prompts read back
    as the same calls, in the template's own (tagged) form."""
    for output, calls, _ in FORMS:
        blocks = chat.parse_output(output)
        message: dict[str, Any] = {
            "role": "assistant",
            "content": "".join(b["text"] for b in blocks if b["type"] == "text"),
            "tool_calls": [
                {"type": "function", "function": {"name": b["name"], "arguments": b["input"]}}
                for b in blocks
                if b["type"] == "tool_use"
            ],
        }
        history: list[dict[str, Any]] = [
            {"role": "system", "content": "s"},
            {"role": "user", "content": "u"},
            message,
        ]
        payload = {"template": GO_TEMPLATE, "messages": _ollama_messages(history), "tools": []}
        go = subprocess.run(
            [str(renderer)], input=json.dumps(payload), capture_output=True, text=True, check=True
        ).stdout
        jinja = render_chat(CHAT_TEMPLATE, history, []).removeprefix(BOS)
        for prompt in (go, jinja):
            turn_text = prompt.split("<|start_header_id|>assistant<|end_header_id|>\n\n")[1]
            turn_text = turn_text.split(EOT)[0]
            assert PYTHON_TAG in turn_text
            assert parse_tool_calls(turn_text).tool_calls == _as_calls(calls), prompt
