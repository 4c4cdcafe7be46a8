"""Offline rollouts: a replay environment built from one captured trace.

A policy in RL (or under evaluation) may take several steps: it calls a tool, reads the
result, calls another, and finally answers. Nothing here runs a tool. A call whose name
and arguments are equivalent to one Claude made in the trace gets the output Claude got;
any other call gets an explicit ``not available in replay`` result, so the model learns
nothing from invented output and the reward sees the divergence.

Equivalent arguments: key order does not matter, ``None`` values and cosmetic keys
(``description``) are ignored, paths are resolved against the trace's working folder
(``src/a.py`` and ``/repo/src/a.py`` are the same file), and whitespace runs in shell
commands and patterns are collapsed. Identical recorded calls (``pytest`` run before and
after a fix) are replayed in the order Claude made them; once all were used the last
one repeats.

    env = ReplayEnv(trace)
    result = env.step("Read", {"file_path": "src/a.py"})
    result.output, result.matched

:func:`rollout` drives a whole episode: generate, parse the tool calls, replay them, feed
the results back, until the model answers without a tool call or ``max_steps`` is hit.
"""

from __future__ import annotations

import json
import posixpath
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from claude_bc.capture.schema import ClaudeTrace, ToolCall
from claude_bc.training.template import PYTHON_TAG, ParsedTurn, parse_tool_calls

NOT_AVAILABLE = "not available in replay"
IGNORED_KEYS = frozenset({"description"})  # changes nothing about what the tool does
PATH_KEYS = frozenset({"file_path", "notebook_path", "path"})
_SPACE = re.compile(r"\s+")


def _canonical_value(key: str, value: Any, cwd: str | None) -> Any:
    if isinstance(value, str):
        if key in PATH_KEYS and value:
            joined = posixpath.join(cwd, value) if cwd else value
            return posixpath.normpath(joined)
        return _SPACE.sub(" ", value).strip()
    if isinstance(value, Mapping):
        return {k: _canonical_value(k, v, cwd) for k, v in value.items() if v is not None}
    if isinstance(value, list | tuple):
        return [_canonical_value(key, v, cwd) for v in value]
    return value


def canonical_args(args: Mapping[str, Any], cwd: str | None = None) -> str:
    """A key under which equivalent argument dicts are equal.

    >>> a = canonical_args({"file_path": "src/../src/a.py", "limit": None}, "/repo")
    >>> a == canonical_args({"file_path": "/repo/src/a.py"}, "/repo")
    True
    >>> canonical_args({"command": "ls  -la", "description": "list"})
    '{"command":"ls -la"}'
    """
    kept = {k: _canonical_value(k, v, cwd) for k, v in args.items() if v is not None}
    for key in IGNORED_KEYS:
        kept.pop(key, None)
    return json.dumps(kept, sort_keys=True, separators=(",", ":"), default=str)


@dataclass(frozen=True, slots=True)
class ReplayResult:
    """What the environment answers to one tool call."""

    output: str
    success: bool
    matched: bool  # a recorded call was found; False: the "not available" answer
    recorded: ToolCall | None = None


def not_available(tool: str) -> ReplayResult:
    """The explicit answer for a call the trace never made.

    >>> not_available("Bash").output
    'Error: not available in replay: Claude made no Bash call with these arguments'
    """
    text = f"Error: {NOT_AVAILABLE}: Claude made no {tool} call with these arguments"
    return ReplayResult(text, success=False, matched=False)


class ReplayEnv:
    """Replays the recorded outputs of one trace's main-agent tool calls."""

    def __init__(self, trace: ClaudeTrace) -> None:
        self.trace = trace
        self._calls: dict[tuple[str, str], list[ToolCall]] = {}
        for call in trace.tool_calls:
            if call.agent_id:  # a subagent's calls are the Agent call's output, not ours
                continue
            key = (call.tool, canonical_args(call.args, trace.cwd))
            self._calls.setdefault(key, []).append(call)
        self._used: dict[tuple[str, str], int] = {}
        self.steps = 0
        self.misses = 0

    def step(self, tool: str, args: Mapping[str, Any]) -> ReplayResult:
        """Answer one tool call with Claude's recorded result, or ``not available``."""
        self.steps += 1
        key = (tool, canonical_args(args, self.trace.cwd))
        recorded = self._calls.get(key)
        if not recorded:
            self.misses += 1
            return not_available(tool)
        used = self._used.get(key, 0)
        self._used[key] = used + 1
        call = recorded[min(used, len(recorded) - 1)]
        output = call.output if call.success else call.output or call.error or "Error"
        return ReplayResult(output, success=call.success, matched=True, recorded=call)


# --- episodes ----------------------------------------------------------------------------------


def parse_turn(text: str) -> ParsedTurn | None:
    """One generated assistant turn, or ``None`` if its tool calls cannot be parsed.

    >>> parse_turn('Run it.<|python_tag|>{"name": "Bash", "parameters": {"command": "ls"}}').content
    'Run it.'
    >>> parse_turn('Run it.<|python_tag|>{"name": "Bash", "parameters": ') is None
    True
    """
    turn = parse_tool_calls(text)
    if turn.errors or (PYTHON_TAG in text and not turn.tool_calls):
        return None
    return turn


def candidate_trace(
    reference: ClaudeTrace,
    turns: Sequence[ParsedTurn],
    results: Sequence[ReplayResult] = (),
) -> ClaudeTrace:
    """The model's workflow as a trace: its calls (with replayed outputs, if any), the text
    before each turn's calls as their reasoning, and the last call-free text as the answer.

    >>> ref = ClaudeTrace(trace_id="t", user_prompt="hi")
    >>> candidate_trace(ref, [parse_tool_calls("Hello!")]).claude_response
    'Hello!'
    """
    calls: list[ToolCall] = []
    answer = ""
    for batch, turn in enumerate(turns):
        if not turn.tool_calls:
            answer = turn.content.strip()
            continue
        for i, call in enumerate(turn.tool_calls):
            result = results[len(calls)] if len(calls) < len(results) else None
            calls.append(
                ToolCall(
                    tool=call["name"],
                    args=dict(call["arguments"]),
                    output=result.output if result else "",
                    reasoning=turn.content.strip() if i == 0 else "",
                    thinking=turn.thinking if i == 0 else "",
                    success=result.success if result else True,
                    error=None if result is None or result.success else result.output,
                    batch=batch,
                )
            )
    return ClaudeTrace(
        trace_id=f"candidate:{reference.trace_id}",
        user_prompt=reference.user_prompt,
        tool_calls=calls,
        claude_response=answer,
        cwd=reference.cwd,
        complete=bool(answer),
        sources=["manual"],
    )


def turns_from_messages(
    messages: Sequence[Mapping[str, Any]],
) -> tuple[list[ParsedTurn], list[ReplayResult]] | None:
    """Assistant turns and tool results of a chat (``None`` if a call is malformed).

    Assistant messages carry either structured ``tool_calls`` or raw generated text;
    ``tool`` (or ``ipython``) messages are the results, in call order.

    >>> turns, results = turns_from_messages([
    ...     {"role": "assistant", "content": "", "tool_calls": [
    ...         {"function": {"name": "Bash", "arguments": '{"command": "ls"}'}}]},
    ...     {"role": "tool", "content": "a.py"},
    ...     {"role": "assistant", "content": "One file."}])
    >>> [len(t.tool_calls) for t in turns], results[0].output
    ([1, 0], 'a.py')
    """
    turns: list[ParsedTurn] = []
    results: list[ReplayResult] = []
    for message in messages:
        role = message.get("role")
        content = message.get("content") or ""
        if role in ("tool", "ipython"):
            text = content if isinstance(content, str) else json.dumps(content)
            failed = text.startswith("Error")
            results.append(ReplayResult(text, success=not failed, matched=not failed))
        elif role == "assistant" and message.get("tool_calls"):
            calls = [_structured_call(c) for c in message["tool_calls"]]
            if any(c is None for c in calls):
                return None
            thinking = str(message.get("thinking") or "")
            turns.append(ParsedTurn(str(content), thinking, [c for c in calls if c]))
        elif role == "assistant":
            turn = parse_turn(str(content))
            if turn is None:
                return None
            turns.append(turn)
    return turns, results


def _structured_call(call: Mapping[str, Any]) -> dict[str, Any] | None:
    f = call.get("function", call)
    args = f.get("arguments", f.get("parameters", {}))
    if isinstance(args, str):
        try:
            args = json.loads(args)
        except ValueError:
            return None
    if not isinstance(f.get("name"), str) or not isinstance(args, dict):
        return None
    return {"name": f["name"], "arguments": args}


def assistant_message(turn: ParsedTurn) -> dict[str, Any]:
    """The chat message of a parsed turn, in the shape the training template renders."""
    message: dict[str, Any] = {"role": "assistant", "content": turn.content}
    if turn.thinking:
        message["thinking"] = turn.thinking
    if turn.tool_calls:
        message["tool_calls"] = [
            {"type": "function", "function": {"name": c["name"], "arguments": c["arguments"]}}
            for c in turn.tool_calls
        ]
    return message


Generate = Callable[[list[dict[str, Any]]], str]


@dataclass
class Episode:
    """A finished rollout: the model's workflow as a trace, and the conversation."""

    trace: ClaudeTrace | None  # None: a turn's tool calls could not be parsed (reward -1)
    messages: list[dict[str, Any]] = field(default_factory=list)
    completions: list[str] = field(default_factory=list)  # raw output of each turn
    misses: int = 0  # calls answered "not available in replay"
    truncated: bool = False  # max_steps reached before a final answer


def rollout(
    reference: ClaudeTrace,
    messages: list[dict[str, Any]],
    generate: Generate,
    max_steps: int = 8,
) -> Episode:
    """Run a model from ``messages`` (system + user) against ``ReplayEnv(reference)``.

    Each step ``generate(conversation)`` returns the assistant's raw output for the next
    turn; its calls are replayed and the results appended as ``tool`` messages. A turn
    without calls is the final answer; a turn whose calls cannot be parsed ends the
    episode with ``trace=None``.
    """
    env = ReplayEnv(reference)
    episode = Episode(trace=None, messages=list(messages))
    turns: list[ParsedTurn] = []
    results: list[ReplayResult] = []
    for _ in range(max_steps):
        raw = generate(episode.messages)
        episode.completions.append(raw)
        turn = parse_turn(raw)
        if turn is None:
            episode.misses = env.misses
            return episode
        turns.append(turn)
        episode.messages.append(assistant_message(turn))
        if not turn.tool_calls:
            break
        for call in turn.tool_calls:
            result = env.step(call["name"], call["arguments"])
            results.append(result)
            episode.messages.append({"role": "tool", "content": result.output})
    else:
        episode.truncated = True
    episode.trace = candidate_trace(reference, turns, results)
    episode.misses = env.misses
    return episode
