"""Anthropic Messages ↔ the training chat format, both ways, without a model.

A request becomes the chat that ``bc-train dataset`` writes for training (system, user,
assistant text + ``tool_calls``, ``tool`` results, …) and the tools in the same
chat-template shape, so the served model sees the text it was trained on. What the model
writes is split by the template's own parser (:func:`training.template.parse_tool_calls`)
into Anthropic content blocks: ``thinking``, ``text``, ``tool_use``.

:class:`StreamSplitter` does the same split incrementally, so text can be streamed as it is
generated: it holds back only what could still turn out to be the start of a marker
(``<thinking>``, ``</thinking>``, ``<|python_tag|>``), and, from a ``{`` or ``[`` that
opens a line, everything: it may be a call written without the tag, which only the whole
output can tell (:func:`training.template.parse_tool_calls`).
"""

from __future__ import annotations

import hashlib
import json
import secrets
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from claude_bc.capture.errors import BCError
from claude_bc.training.template import (
    EOM,
    EOT,
    PYTHON_TAG,
    THINK_CLOSE,
    THINK_OPEN,
    ParsedTurn,
    parse_tool_calls,
    to_hf_tool,
)

JSON = dict[str, Any]
END_MARKERS = (EOT, EOM, "<|end_of_text|>")


# --------------------------------------------------------------------------- request → chat


def _blocks(content: Any) -> list[JSON]:
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    if isinstance(content, list):
        return [b for b in content if isinstance(b, dict)]
    raise BCError("message content must be a string or a list of content blocks")


def _is_reminder(text: str) -> bool:
    """Context Claude Code injects into user turns (CLAUDE.md, dates, …); training chats
    carry only the prompt itself."""
    return text.lstrip().startswith("<system-reminder>")


def _text_of(blocks: Sequence[JSON], drop_reminders: bool) -> str:
    parts: list[str] = []
    for b in blocks:
        if b.get("type") == "text" and isinstance(b.get("text"), str):
            if not (drop_reminders and _is_reminder(b["text"])):
                parts.append(b["text"])
        elif b.get("type") == "image":
            parts.append("[image]")
    return "\n\n".join(p for p in parts if p)


def _tool_result_text(block: JSON) -> str:
    content = block.get("content", "")
    text = content if isinstance(content, str) else _text_of(_blocks(content), False)
    return text


def _assistant(blocks: Sequence[JSON], names: dict[str, str]) -> JSON:
    msg: JSON = {"role": "assistant", "content": _text_of(blocks, False)}
    thinking = "\n\n".join(
        str(b.get("thinking", "")) for b in blocks if b.get("type") == "thinking"
    )
    if thinking:
        msg["thinking"] = thinking
    calls = []
    for b in blocks:
        if b.get("type") == "tool_use":
            names[str(b.get("id"))] = str(b.get("name"))
            args = b.get("input") if isinstance(b.get("input"), dict) else {}
            calls.append(
                {"type": "function", "function": {"name": b.get("name"), "arguments": args}}
            )
    if calls:
        msg["tool_calls"] = calls
    return msg


def _user(blocks: Sequence[JSON], names: dict[str, str], drop_reminders: bool) -> list[JSON]:
    out: list[JSON] = []
    for b in blocks:
        if b.get("type") == "tool_result":
            name = names.get(str(b.get("tool_use_id")), "")
            out.append({"role": "tool", "name": name, "content": _tool_result_text(b)})
    text = _text_of(blocks, drop_reminders)
    if text:
        out.append({"role": "user", "content": text})
    return out


def system_text(system: Any) -> str:
    """The request's ``system`` (a string or text blocks) as one string."""
    if system is None:
        return ""
    return _text_of(_blocks(system), False)


@dataclass(frozen=True)
class Prompt:
    """What the template renders for one request."""

    messages: list[JSON]
    tools: list[JSON]


def to_chat(
    body: Mapping[str, Any],
    training_system: str | None = None,
    schemas: Mapping[str, Mapping[str, Any]] | None = None,
) -> Prompt:
    """An Anthropic Messages request as a training-format chat.

    With ``training_system`` set, the request's system prompt is replaced by it, tool
    schemas are compacted and Claude Code's injected reminders are dropped, exactly as
    ``bc-train dataset`` does for training chats; ``schemas`` (by tool name) then stand in
    for the request's own, as the dataset's ``tool_schemas`` did in training, and in their
    order (tools they lack follow, in the request's order).
    """
    raw = body.get("messages")
    if not isinstance(raw, list) or not raw:
        raise BCError("messages: a non-empty list is required")
    training = training_system is not None
    system = training_system if training else system_text(body.get("system"))
    messages: list[JSON] = [{"role": "system", "content": system}] if system else []
    names: dict[str, str] = {}
    for m in raw:
        if not isinstance(m, dict) or m.get("role") not in ("user", "assistant", "system"):
            raise BCError("messages: each message needs role user, assistant or system")
        blocks = _blocks(m.get("content", ""))
        if m["role"] == "assistant":
            messages.append(_assistant(blocks, names))
        elif m["role"] == "system":
            # Claude Code 2.1.x sends its environment block (folder, platform, permission
            # guidance) as a mid-conversation system turn; training chats never hold it
            if not training:
                messages.append({"role": "system", "content": _text_of(blocks, False)})
        else:
            messages.extend(_user(blocks, names, training))
    sent = [
        t
        for t in body.get("tools") or []
        if isinstance(t, dict) and isinstance(t.get("name"), str) and "input_schema" in t
    ]
    if training and schemas:
        # in the order training listed them (Claude Code sends its own): the system turn
        # the model learnt from lists the tools in that order, and a small model notices
        rank = {name: i for i, name in enumerate(schemas)}
        sent.sort(key=lambda t: rank.get(t["name"], len(rank)))
    tools = [
        to_hf_tool(
            dict((schemas or {}).get(t["name"], t)) if training else t,
            "compact" if training else "full",
        )
        for t in sent
    ]
    return Prompt(messages, tools)


# --------------------------------------------------------------------------- output → blocks


def tool_use_id() -> str:
    return "toolu_local_" + secrets.token_hex(10)


def thinking_signature(thinking: str) -> str:
    """Claude Code sends thinking back with its signature; ours only marks it as local."""
    return "local-" + hashlib.sha256(thinking.encode()).hexdigest()[:32]


def to_blocks(turn: ParsedTurn, raw: str = "") -> list[JSON]:
    """Anthropic content blocks of a parsed turn. What the parser rejected as calls stays
    visible as text rather than vanish."""
    blocks: list[JSON] = []
    if turn.thinking:
        sig = thinking_signature(turn.thinking)
        blocks.append({"type": "thinking", "thinking": turn.thinking, "signature": sig})
    bad = turn.rejected
    text = "\n".join([turn.content, *bad]) if bad else turn.content
    if text.strip():
        blocks.append({"type": "text", "text": text})
    for call in turn.tool_calls:
        blocks.append(
            {
                "type": "tool_use",
                "id": tool_use_id(),
                "name": call["name"],
                "input": call["arguments"],
            }
        )
    return blocks


def strip_end(text: str) -> str:
    for marker in END_MARKERS:
        text = text.split(marker, 1)[0]
    return text


def parse_output(text: str) -> list[JSON]:
    """Generated text (up to the end-of-turn token) → content blocks."""
    text = strip_end(text)
    return to_blocks(parse_tool_calls(text), text)


# --------------------------------------------------------------------------- streaming


def _bare_start(text: str, line_start: bool) -> int:
    """Index of the first ``{`` or ``[`` that opens a line of ``text`` (-1: none);
    ``line_start``: whether ``text`` itself begins a line."""
    at = line_start
    for i, ch in enumerate(text):
        if at and ch in "{[":
            return i
        if ch == "\n":
            at = True
        elif ch not in " \t":
            at = False
    return -1


def _open_line(text: str) -> int:
    """How much of the end of ``text`` must wait: a last line of blanks only (a ``{``
    may still open it), with the newline before it."""
    last = text.rfind("\n")
    if last < 0 or text[last + 1 :].strip(" \t"):
        return 0
    return len(text) - last


def _partial_suffix(text: str, marker: str) -> int:
    """Length of the longest end of ``text`` that is a proper start of ``marker``."""
    for n in range(min(len(text), len(marker) - 1), 0, -1):
        if marker.startswith(text[-n:]):
            return n
    return 0


@dataclass
class StreamSplitter:
    """Turns generated text pieces into ``("thinking"|"text", delta)`` as early as is safe;
    after ``<|python_tag|>``, or a ``{``/``[`` opening a line (a call may follow without
    the tag), everything is kept for :meth:`finish`, which parses the whole output the
    same way :func:`parse_output` does."""

    mode: str = "start"  # start → thinking → text → calls
    pending: str = ""
    full: list[str] = field(default_factory=list)
    _skip_newline: bool = False
    _line_start: bool = True  # the text sent so far ends a line (or none was sent)

    def feed(self, piece: str) -> Iterator[tuple[str, str]]:
        self.full.append(piece)
        self.pending += piece
        while True:
            step = getattr(self, f"_step_{self.mode}")()
            if step is None:
                return
            if step[1]:
                yield step

    def _step_start(self) -> tuple[str, str] | None:
        if THINK_OPEN.startswith(self.pending) and len(self.pending) < len(THINK_OPEN):
            return None  # might still become <thinking>
        if self.pending.startswith(THINK_OPEN):
            self.pending = self.pending[len(THINK_OPEN) :]
            self.mode = "thinking"
        else:
            self.mode = "text"
        return ("", "")

    def _step_thinking(self) -> tuple[str, str] | None:
        end = self.pending.find(THINK_CLOSE)
        if end >= 0:
            out, self.pending = self.pending[:end], self.pending[end + len(THINK_CLOSE) :]
            self.mode, self._skip_newline = "text", True
            return ("thinking", out)
        keep = _partial_suffix(self.pending, THINK_CLOSE)
        out = self.pending[: len(self.pending) - keep]
        self.pending = self.pending[len(out) :]
        return ("thinking", out) if out else None

    def _step_text(self) -> tuple[str, str] | None:
        if self._skip_newline:
            if not self.pending:
                return None
            self.pending = self.pending.removeprefix("\n")
            self._skip_newline = False
        tag = self.pending.find(PYTHON_TAG)
        bare = _bare_start(self.pending, self._line_start)
        cut = min((i for i in (tag, bare) if i >= 0), default=-1)
        if cut >= 0:
            out, self.pending = self.pending[:cut], self.pending[cut:]
            self.mode = "calls"
            return ("text", out)
        keep = max(_partial_suffix(self.pending, PYTHON_TAG), _open_line(self.pending))
        if self._line_start and not self.pending.strip(" \t"):
            keep = len(self.pending)  # blanks that open a line: a call may follow
        out = self.pending[: len(self.pending) - keep]
        self.pending = self.pending[len(out) :]
        if out:
            self._line_start = out.endswith("\n")
        return ("text", out) if out else None

    def _step_calls(self) -> tuple[str, str] | None:
        return None

    def finish(self) -> tuple[list[tuple[str, str]], list[JSON]]:
        """The deltas still held back, and the final blocks of the whole output."""
        rest: list[tuple[str, str]] = []
        if self.mode == "start":
            self.mode = "text"
        if self.mode in ("thinking", "text") and self.pending:
            if self.mode == "text" and self._skip_newline:
                self.pending = self.pending.removeprefix("\n")
            rest.append((self.mode, self.pending))
        self.pending = ""
        return rest, parse_output("".join(self.full))


def input_json(block: Mapping[str, Any]) -> str:
    """The ``input`` of a tool_use block as streamed in ``input_json_delta`` events."""
    return json.dumps(block.get("input", {}), ensure_ascii=False)
