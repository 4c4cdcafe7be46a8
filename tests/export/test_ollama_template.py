"""The Modelfile's Go template renders what the training (Jinja) template renders.

Ollama itself cannot be installed here, so the template runs in Go's text/template the way
Ollama runs it (``ollama_render.go``: ``missingkey=zero``, Ollama's ``json`` function,
messages and tools shaped like Ollama's). JSON inside the prompt (tool schemas, call
arguments) is compared as JSON: Go writes it compact with sorted keys.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from claude_bc.export.ollama import GO_TEMPLATE
from claude_bc.export.serve import render_chat
from claude_bc.training.template import BOS, CHAT_TEMPLATE, EOT, PYTHON_TAG

HERE = Path(__file__).resolve().parent
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "Read",
            "description": "Read a file.",
            "parameters": {
                "type": "object",
                "properties": {"file_path": {"type": "string"}},
                "required": ["file_path"],
            },
        },
    },
    {
        "type": "function",
        "function": {
            "name": "Bash",
            "description": "Run <cmd> & more.",
            "parameters": {"type": "object", "properties": {"command": {"type": "string"}}},
        },
    },
]
CHATS: list[list[dict[str, Any]]] = [
    [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi there"}],
    [
        {"role": "system", "content": "You are a coding agent."},
        {"role": "user", "content": "Fix the bug in ü.py"},
        {
            "role": "assistant",
            "content": "Reading both.",
            "thinking": "Look first.",
            "tool_calls": [
                {
                    "type": "function",
                    "function": {"name": "Read", "arguments": {"file_path": "/ü.py"}},
                },
                {
                    "type": "function",
                    "function": {"name": "Bash", "arguments": {"command": "ls -la"}},
                },
            ],
        },
        {"role": "tool", "name": "Read", "content": "x = 1\n"},
        {"role": "tool", "name": "Bash", "content": "total 0"},
        {"role": "assistant", "content": "Fixed."},
        {"role": "user", "content": "Thanks"},
    ],
]


@pytest.fixture(scope="module")
def renderer(tmp_path_factory: pytest.TempPathFactory) -> Path:
    go = shutil.which("go")
    if go is None:
        pytest.fail("go is not installed: scripts/setup installs golang-go")
    out = tmp_path_factory.mktemp("go") / "ollama_render"
    cache = out.parent / "cache"
    env = {
        **os.environ,
        "GOCACHE": str(cache),
        "GOPATH": str(out.parent / "gopath"),
        "GO111MODULE": "off",
        "GOFLAGS": "-mod=mod",
    }
    subprocess.run(
        [go, "build", "-o", str(out), str(HERE / "ollama_render.go")],
        check=True,
        env=env,
        capture_output=True,
        timeout=300,
    )
    return out


def _ollama_messages(chat: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for m in chat:
        msg = {
            "role": m["role"],
            "content": m.get("content", ""),
            "thinking": m.get("thinking", ""),
        }
        if m.get("tool_calls"):
            msg["tool_calls"] = [{"function": c["function"]} for c in m["tool_calls"]]
        if m["role"] == "tool":
            msg["tool_name"] = m.get("name", "")
        out.append(msg)
    return out


def _normalised(prompt: str) -> list[Any]:
    """Lines, with JSON lines (and the calls after <|python_tag|>) parsed."""
    out: list[Any] = []
    for tag in (PYTHON_TAG, EOT):
        prompt = prompt.replace(tag, f"\n{tag}\n")
    for line in prompt.split("\n"):
        try:
            out.append(json.loads(line))
        except ValueError:
            out.append(line)
    return out


@pytest.mark.parametrize("tools", [[], TOOLS])
@pytest.mark.parametrize("chat", CHATS)
def test_go_template_renders_the_training_prompt(
    renderer: Path, chat: list[dict[str, Any]], tools: list[dict[str, Any]]
) -> None:
    payload = {"template": GO_TEMPLATE, "messages": _ollama_messages(chat), "tools": tools}
    proc = subprocess.run(
        [str(renderer)],
        input=json.dumps(payload),
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    )
    jinja = render_chat(CHAT_TEMPLATE, chat, tools).removeprefix(BOS)  # llama.cpp adds BOS
    assert _normalised(proc.stdout) == _normalised(jinja)
    if not tools and not any(m.get("tool_calls") for m in chat):
        assert proc.stdout == jinja  # no JSON inside: the very same text
