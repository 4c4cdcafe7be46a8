"""Training fixtures: a tiny random Llama (built once per test session) and trace factories."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from claude_bc.capture.schema import ClaudeTrace, ToolCall, trace_id_for
from claude_bc.capture.signals import extract_signals
from claude_bc.capture.store import TraceStorage

# Claude Code's tool shapes, with short descriptions so test chats stay small
SMALL_TOOLS: list[dict[str, Any]] = [
    {
        "name": name,
        "description": desc,
        "input_schema": {
            "type": "object",
            "properties": {p: {"type": "string", "description": p} for p in params},
            "required": params[:1],
        },
    }
    for name, desc, params in [
        ("Read", "Read a file.", ["file_path"]),
        ("Grep", "Search file contents.", ["pattern", "path"]),
        ("Bash", "Run a shell command.", ["command", "description"]),
        ("Edit", "Replace text in a file.", ["file_path", "old_string", "new_string"]),
    ]
]

ANSWER = (
    "I read the entry point, searched the sources for every function definition, and ran the "
    "tests to check the behaviour before and after the change. The greeting now names Claude, "
    "the helper functions stay as they were, and the whole suite passes again, so nothing else "
    "in the project depended on the old text. Tell me if the notes file should change too."
)


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from claude_bc.training.tiny import build_tiny

    return build_tiny(tmp_path_factory.mktemp("tiny-llama"))


@pytest.fixture
def small_tools(tmp_path: Path) -> Path:
    path = tmp_path / "tools.json"
    path.write_text(json.dumps(SMALL_TOOLS))
    return path


def call(
    tool: str,
    args: dict[str, Any],
    output: str,
    *,
    reasoning: str = "",
    batch: int = 0,
    success: bool = True,
) -> ToolCall:
    return ToolCall(
        tool=tool,
        args=args,
        output=output,
        reasoning=reasoning,
        batch=batch,
        message_id=f"msg_{batch}",
        success=success,
        error=None if success else output,
    )


def make_trace(
    session: str, prompt: str, calls: list[ToolCall], answer: str = ANSWER, **extra: Any
) -> ClaudeTrace:
    trace = ClaudeTrace(
        trace_id=trace_id_for(session, f"p-{prompt}", prompt, ""),
        session_id=session,
        prompt_id=f"p-{prompt}",
        user_prompt=prompt,
        tool_calls=calls,
        claude_response=answer,
        complete=True,
        sources=["hooks"],
        **extra,
    )
    trace.reasoning_signals = extract_signals(trace)
    return trace


def workflow(
    session: str, prompt: str, *, read_output: str = "1\tdef main(): ...", answer: str = ANSWER
) -> ClaudeTrace:
    """Read, then Grep + Bash in parallel, then Edit, then the answer."""
    calls = [
        call(
            "Read",
            {"file_path": "src/app.py"},
            read_output,
            reasoning="I'll start by reading the entry point.",
            batch=0,
        ),
        call(
            "Grep",
            {"pattern": "^def ", "path": "src"},
            "src/app.py:1:def main():",
            reasoning="Searching definitions and running the tests at once.",
            batch=1,
        ),
        call("Bash", {"command": "pytest -q"}, "3 passed", batch=1),
        call(
            "Edit",
            {"file_path": "src/app.py", "old_string": "world", "new_string": "Claude"},
            "The file has been updated.",
            reasoning="Now the edit.",
            batch=2,
        ),
    ]
    return make_trace(session, prompt, calls, answer)


def write_store(home: Path, traces: list[ClaudeTrace]) -> Path:
    store = TraceStorage(home / "traces")
    store.append(traces)
    return store.path
