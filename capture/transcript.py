"""Claude Code's session transcripts (``~/.claude/projects/<dashed-cwd>/<session>.jsonl``).

Rules the real files need (see ``shared/fixtures/claude-code/README.md``):

* assistant lines hold one content block each; blocks of one API message share
  ``message.id`` and are merged in line order;
* parallel tool results come as separate ``user`` lines;
* bookkeeping lines (``queue-operation``, ``api-request*``, ``last-prompt``, …) and
  unknown line types are skipped, never fatal; so are meta/command/compact-summary
  ``user`` lines, which are not prompts;
* ``parentUuid`` is not followed (attachments break the chain): file order is used;
* subagents live in ``<session>/subagents/agent-<id>.jsonl``; their calls are attached
  to the turn whose Agent call started them.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from capture.store import Problem
from capture.turns import AGENT_TOOLS, CallDraft, TurnDraft

NOT_PROMPTS = (
    "<command-name>",
    "<local-command-stdout>",
    "<local-command-caveat>",
    "<command-message>",
)


@dataclass
class Lines:
    lines: list[dict[str, Any]] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)


def read_lines(path: Path) -> Lines:
    """The JSON objects of a transcript file; malformed and torn lines are reported."""
    out = Lines()
    with path.open("rb") as fh:
        for number, raw in enumerate(fh, 1):
            if not raw.strip():
                continue
            try:
                obj = json.loads(raw)
            except ValueError as exc:
                torn = not raw.endswith(b"\n")
                out.problems.append(
                    Problem(path, number, "torn last line" if torn else f"malformed: {exc}")
                )
                continue
            if isinstance(obj, dict):
                out.lines.append(obj)
    return out


def subagent_files(transcript: Path) -> dict[str, Path]:
    """``agent-<id>.jsonl`` files next to a session transcript, by agent id."""
    folder = transcript.with_suffix("") / "subagents"
    if not folder.is_dir():
        return {}
    return {p.stem.removeprefix("agent-"): p for p in sorted(folder.glob("agent-*.jsonl"))}


def _ts(value: Any) -> float | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def _prompt_text(line: dict[str, Any]) -> str | None:
    """The user's prompt if this ``user`` line is one, else None."""
    if line.get("isMeta") or line.get("isCompactSummary") or line.get("isVisibleInTranscriptOnly"):
        return None
    content = (line.get("message") or {}).get("content")
    if isinstance(content, list):
        if any(isinstance(b, dict) and b.get("type") == "tool_result" for b in content):
            return None
        content = "\n".join(
            b.get("text", "") for b in content if isinstance(b, dict) and b.get("type") == "text"
        )
    if not isinstance(content, str) or content.lstrip().startswith(NOT_PROMPTS):
        return None
    return content


def result_text(content: Any) -> str:
    """The text of a tool_result's content (a string or a list of blocks)."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = []
        for block in content:
            if isinstance(block, dict):
                if block.get("type") == "text":
                    parts.append(str(block.get("text", "")))
                else:
                    parts.append(f"[{block.get('type', 'block')}]")
        return "\n".join(parts)
    return ""


@dataclass
class _Turn:
    draft: TurnDraft
    text: list[str] = field(default_factory=list)  # assistant text since the last tool_use
    thinking: list[str] = field(default_factory=list)
    batches: dict[str, tuple[int, int]] = field(default_factory=dict)  # message id -> (batch, next)

    def block(self, line: dict[str, Any], block: dict[str, Any], agent: str | None) -> None:
        kind = block.get("type")
        if kind == "text":
            self.text.append(str(block.get("text", "")))
        elif kind == "thinking":
            self.thinking.append(str(block.get("thinking", "")))
        elif kind == "tool_use" and isinstance(block.get("id"), str):
            mid = str((line.get("message") or {}).get("id") or line.get("uuid"))
            batch, index = self.batches.get(mid, (len(self.batches), 0))
            self.batches[mid] = (batch, index + 1)
            call = self.draft.call(block["id"])
            call.tool = str(block.get("name", ""))
            tool_input = block.get("input")
            call.args = tool_input if isinstance(tool_input, dict) else {}
            call.reasoning = "\n\n".join(t for t in self.text if t.strip())
            call.thinking = "\n\n".join(t for t in self.thinking if t.strip())
            call.message_id = mid
            call.batch, call.index = batch, index
            call.started_at = _ts(line.get("timestamp"))
            call.agent_id = agent
            self.text, self.thinking = [], []

    def result(self, line: dict[str, Any], block: dict[str, Any]) -> None:
        call = self.draft.call(str(block.get("tool_use_id")))
        call.output = result_text(block.get("content"))
        call.ended_at = _ts(line.get("timestamp"))
        structured = line.get("toolUseResult")
        if block.get("is_error"):
            call.success = False
            call.error = call.output or (structured if isinstance(structured, str) else "error")
        else:
            call.success = True
        if isinstance(structured, dict | list):
            call.tool_response = structured

    def finish(self) -> None:
        self.draft.response = "\n\n".join(t for t in self.text if t.strip())
        self.draft.complete = bool(self.draft.response)


def turns_from_lines(lines: Iterable[dict[str, Any]], agent: str | None = None) -> list[TurnDraft]:
    """One draft per user prompt of one transcript file (a subagent file: its task)."""
    turns: list[_Turn] = []
    for line in lines:
        kind = line.get("type")
        if agent is None and line.get("isSidechain"):
            continue  # older versions wrote subagent lines inline; they are not this turn's
        if kind == "user":
            prompt = _prompt_text(line)
            content = (line.get("message") or {}).get("content")
            if prompt is not None:
                if turns:
                    turns[-1].finish()
                turns.append(
                    _Turn(
                        TurnDraft(
                            source="transcript",
                            prompt=prompt,
                            prompt_id=line.get("promptId"),
                            session_id=line.get("sessionId"),
                            started_at=_ts(line.get("timestamp")),
                            cwd=line.get("cwd"),
                            git_branch=line.get("gitBranch") or None,
                            version=line.get("version"),
                            permission_mode=line.get("permissionMode"),
                        )
                    )
                )
            elif turns and isinstance(content, list):
                for block in content:
                    if isinstance(block, dict) and block.get("type") == "tool_result":
                        turns[-1].result(line, block)
        elif kind == "assistant" and turns:
            message = line.get("message") or {}
            if isinstance(message.get("model"), str) and message["model"] != "<synthetic>":
                turns[-1].draft.model = message["model"]
            for block in message.get("content") or []:
                if isinstance(block, dict):
                    turns[-1].block(line, block, agent)
            turns[-1].draft.ended_at = _ts(line.get("timestamp")) or turns[-1].draft.ended_at
    if turns:
        turns[-1].finish()
    return [t.draft for t in turns]


def attach_subagent(turns: list[TurnDraft], agent_id: str, lines: list[dict[str, Any]]) -> None:
    """Put a subagent's calls into the turn whose Agent call started it."""
    calls: list[CallDraft] = [
        c for t in turns_from_lines(lines, agent_id) for c in t.calls.values()
    ]
    prompt_ids = {ln.get("promptId") for ln in lines if ln.get("promptId")}
    for turn in turns:
        parent = next(
            (
                c
                for c in turn.calls.values()
                if c.tool in AGENT_TOOLS
                and isinstance(c.tool_response, dict)
                and c.tool_response.get("agentId") == agent_id
            ),
            None,
        )
        if parent or turn.prompt_id in prompt_ids:
            for call in calls:
                call.parent_tool_use_id = parent.tool_use_id if parent else None
                turn.calls[call.tool_use_id] = call
            return


def turns_from_transcript(
    path: Path, subagents: dict[str, Path] | None = None
) -> tuple[list[TurnDraft], list[Problem]]:
    """Read a session transcript and its subagent transcripts into turn drafts."""
    main = read_lines(path)
    turns = turns_from_lines(main.lines)
    problems = list(main.problems)
    for agent_id, sub_path in {**subagent_files(path), **(subagents or {})}.items():
        if sub_path.is_file():
            sub = read_lines(sub_path)
            problems += sub.problems
            attach_subagent(turns, agent_id, sub.lines)
    return turns, problems
