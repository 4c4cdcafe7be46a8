"""The one assembler: partial turns from any capture source → merged, redacted ``ClaudeTrace``.

Each source has a small adapter that reads its own format into ``TurnDraft``s
(``capture.spool`` for hook payloads, ``capture.transcript`` for Claude Code's session
files, and the proxy's API exchanges). Everything after that is shared and lives here:

* ``merge`` matches turns across sources (``prompt_id``, else prompt text in order) and
  tool calls by ``tool_use_id``, keeping the richer value of every field and recording
  which sources contributed;
* ``to_trace`` orders the calls as Claude issued them (message by message, block by
  block; a subagent's calls right after the Agent call that started them), links
  subagent calls, redacts every string and extracts the reasoning signals.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from claude_bc.capture.redact import redact
from claude_bc.capture.schema import ANTHROPIC, CaptureSource, ClaudeTrace, trace_id_for
from claude_bc.capture.signals import extract_signals

# Tools that start a subagent (``Task`` in older Claude Code versions).
AGENT_TOOLS = frozenset({"Agent", "Task"})
SOURCE_PRIORITY: tuple[CaptureSource, ...] = ("transcript", "proxy", "hooks", "manual")


# --- what Claude Code writes, as every source sees it --------------------------------------
# The transcript, the API exchanges and the hook payloads carry the same tool results and
# markers; their adapters read them with these.

INTERRUPTED = "[Request interrupted by user"
TASK_NOTIFICATION = "<task-notification>"


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


# What Claude Code puts in the tool_result of a call it did not run (prefixes).
_DENIED = re.compile(
    r"\s*(?:Permission to use .{0,200}? has been denied"
    r"|Permission for this tool use was denied"
    r"|Tool use was blocked"
    r"|.{0,80}hook (?:blocked|denied))",
    re.S,
)
_REJECTED = (
    "The user doesn't want to proceed with this tool use",
    "User rejected tool use",
    "[Request interrupted by user",
    "The user doesn't want to take this action",
)


def call_outcome(text: str, is_error: bool) -> str:
    """A tool_result's outcome: ``interrupted`` (the user stopped or rejected it),
    ``denied`` (a permission rule or hook refused it), else error or success."""
    head = text.lstrip()
    if head.startswith(_REJECTED):
        return "interrupted"
    if is_error and _DENIED.match(head):
        return "denied"
    return "error" if is_error else "success"


@dataclass
class CallDraft:
    tool_use_id: str
    tool: str = ""
    args: dict[str, Any] = field(default_factory=dict)
    output: str = ""
    reasoning: str = ""
    thinking: str = ""
    success: bool | None = None  # None: no result seen (yet)
    outcome: str | None = None  # set when a source knows more than success: "denied", ...
    error: str | None = None
    is_interrupt: bool = False
    duration_ms: int | None = None
    started_at: float | None = None
    ended_at: float | None = None
    tool_response: Any = None
    message_id: str | None = None
    agent_id: str | None = None
    agent_type: str | None = None
    parent_tool_use_id: str | None = None
    batch: int | None = None  # index of the issuing message among this agent's tool batches
    index: int | None = None  # index of the call inside that batch


@dataclass
class TurnDraft:
    source: CaptureSource
    prompt: str
    prompt_id: str | None = None
    session_id: str | None = None
    started_at: float | None = None
    ended_at: float | None = None
    calls: dict[str, CallDraft] = field(default_factory=dict)
    response: str = ""
    complete: bool = False
    cwd: str | None = None
    git_branch: str | None = None
    model: str | None = None
    version: str | None = None
    permission_mode: str | None = None
    system_prompt_id: str | None = None  # keys into sessions/<session>.json (proxy only)
    tools_id: str | None = None
    served_by: str | None = None  # "anthropic" or the local model (proxy only)
    sources: set[CaptureSource] = field(default_factory=set)
    command: str | None = None  # a slash command's name ("/review")
    expansion: str = ""  # the text the model received for it
    final_thinking: str = ""
    events: list[dict[str, Any]] = field(default_factory=list)  # schema.TurnEvent fields
    interrupted: bool = False

    def __post_init__(self) -> None:
        self.sources.add(self.source)

    def call(self, tool_use_id: str) -> CallDraft:
        if tool_use_id not in self.calls:
            self.calls[tool_use_id] = CallDraft(tool_use_id)
        return self.calls[tool_use_id]


# --- merging ------------------------------------------------------------------------------


def _richer_str(a: str, b: str) -> str:
    return b if len(b.strip()) > len(a.strip()) else a


def _first(*values: Any) -> Any:
    return next((v for v in values if v is not None), None)


def _min(a: float | None, b: float | None) -> float | None:
    return min(a, b) if a is not None and b is not None else _first(a, b)


def _max(a: float | None, b: float | None) -> float | None:
    return max(a, b) if a is not None and b is not None else _first(a, b)


# Outcomes by precedence when sources disagree: what any source saw go wrong is what
# happened (a call it saw interrupted or denied did not fail on its own), and a source
# that saw no result at all tells nothing.
OUTCOMES = ("interrupted", "denied", "error", "success", "unknown")


def outcome(c: CallDraft) -> str:
    """What became of a call, from what its source saw (``unknown``: no result seen)."""
    if c.outcome in OUTCOMES:
        return c.outcome
    if c.is_interrupt:
        return "interrupted"
    return "unknown" if c.success is None else "success" if c.success else "error"


def merge_call(a: CallDraft, b: CallDraft) -> CallDraft:
    """Field by field, the richer value; ``a`` is the higher-priority source."""
    seen = min(outcome(a), outcome(b), key=OUTCOMES.index)
    return CallDraft(
        tool_use_id=a.tool_use_id,
        tool=a.tool or b.tool,
        args=a.args if len(a.args) >= len(b.args) else b.args,
        output=_richer_str(a.output, b.output),
        reasoning=_richer_str(a.reasoning, b.reasoning),
        thinking=_richer_str(a.thinking, b.thinking),
        success=None if seen == "unknown" else seen == "success",
        outcome=seen,
        error=_richer_str(a.error or "", b.error or "") or None,
        is_interrupt=a.is_interrupt or b.is_interrupt,
        duration_ms=_first(a.duration_ms, b.duration_ms),
        started_at=_min(a.started_at, b.started_at),
        ended_at=_max(a.ended_at, b.ended_at),
        tool_response=_first(a.tool_response, b.tool_response),
        message_id=_first(a.message_id, b.message_id),
        agent_id=_first(a.agent_id, b.agent_id),
        agent_type=_first(a.agent_type, b.agent_type),
        parent_tool_use_id=_first(a.parent_tool_use_id, b.parent_tool_use_id),
        batch=_first(a.batch, b.batch),
        index=_first(a.index, b.index),
    )


def _progress(t: TurnDraft) -> tuple[int, int]:
    return len(t.events), len(t.calls)


def merge_turn(a: TurnDraft, b: TurnDraft) -> TurnDraft:
    calls = dict(a.calls)
    for tid, call in b.calls.items():
        calls[tid] = merge_call(calls[tid], call) if tid in calls else call
    # A turn that went on (a background task's notification re-invoked the model) ends
    # with the later version's answer, whichever is longer; otherwise the richer one.
    later = b if _progress(b) > _progress(a) else a if _progress(a) > _progress(b) else None
    response = later.response if later and later.response.strip() else None
    thinking = later.final_thinking if later and later.response.strip() else None
    events = merge_events(a.events, b.events)
    return TurnDraft(
        source=a.source,
        prompt=_richer_str(a.prompt, b.prompt),
        prompt_id=_first(a.prompt_id, b.prompt_id),
        session_id=_first(a.session_id, b.session_id),
        started_at=_min(a.started_at, b.started_at),
        ended_at=_max(a.ended_at, b.ended_at),
        calls=calls,
        response=response if response is not None else _richer_str(a.response, b.response),
        complete=a.complete or b.complete,
        cwd=_first(a.cwd, b.cwd),
        git_branch=_first(a.git_branch, b.git_branch),
        model=_first(a.model, b.model),
        version=_first(a.version, b.version),
        permission_mode=_first(a.permission_mode, b.permission_mode),
        system_prompt_id=_first(a.system_prompt_id, b.system_prompt_id),
        tools_id=_first(a.tools_id, b.tools_id),
        served_by=served_by(a.served_by, b.served_by),
        sources=a.sources | b.sources,
        command=_first(a.command, b.command),
        expansion=_richer_str(a.expansion, b.expansion),
        final_thinking=(
            thinking if thinking is not None else _richer_str(a.final_thinking, b.final_thinking)
        ),
        events=sorted(events, key=lambda e: _sort_time(e.get("at"))),
        interrupted=a.interrupted or b.interrupted,
    )


def merge_events(a: list[dict[str, Any]], b: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The events of two versions of a turn: one event seen by both sources (same kind
    and text) once, with the fields either knows; ``a`` wins where both know one."""
    out = [dict(e) for e in a]
    for event in b:
        key = (event.get("kind"), str(event.get("text", "")).strip())
        same = next(
            (e for e in out if (e.get("kind"), str(e.get("text", "")).strip()) == key), None
        )
        if same is None:
            out.append(dict(event))
        else:
            same.update({k: v for k, v in event.items() if same.get(k) in (None, "")})
    return out


def _sort_time(at: Any) -> float:
    return at if isinstance(at, int | float) else float("inf")


def served_by(a: str | None, b: str | None) -> str | None:
    """Who answered a turn seen twice: a local model wins over Anthropic (one local answer
    in the turn is enough to keep it out of the training data).

    >>> served_by(None, "anthropic"), served_by("anthropic", "bc-local")
    ('anthropic', 'bc-local')
    """
    if a and a != ANTHROPIC:
        return a
    if b and b != ANTHROPIC:
        return b
    return a or b


def _same_turn(a: TurnDraft, b: TurnDraft) -> bool:
    if a.session_id and b.session_id and a.session_id != b.session_id:
        return False
    if a.prompt_id and b.prompt_id:
        return a.prompt_id == b.prompt_id
    return a.prompt.strip() == b.prompt.strip()


def _ts(dt: datetime | None) -> float | None:
    return dt.timestamp() if dt is not None else None


def from_trace(trace: ClaudeTrace) -> TurnDraft:
    """A stored trace as one more source, so merging with it keeps the richer fields.

    ``index`` is rebuilt from the stored order, so ``to_trace`` orders the calls the same.
    """
    sources: set[CaptureSource] = set(trace.sources) or {"manual"}
    draft = TurnDraft(
        source=min(sources, key=SOURCE_PRIORITY.index),
        prompt=trace.user_prompt,
        prompt_id=trace.prompt_id,
        session_id=trace.session_id,
        started_at=_ts(trace.started_at),
        ended_at=_ts(trace.ended_at),
        response=trace.claude_response,
        complete=trace.complete,
        cwd=trace.cwd,
        git_branch=trace.git_branch,
        model=trace.model,
        version=trace.claude_code_version,
        permission_mode=trace.permission_mode,
        system_prompt_id=trace.system_prompt_id,
        tools_id=trace.tools_id,
        served_by=trace.served_by,
        sources=sources,
        command=trace.command,
        expansion=trace.prompt_expansion or "",
        final_thinking=trace.final_thinking,
        events=[{**e.model_dump(exclude={"at"}), "at": _ts(e.at)} for e in trace.events],
        interrupted=trace.interrupted,
    )
    seen: dict[tuple[str | None, int | None], int] = {}
    for n, c in enumerate(trace.tool_calls):
        index = seen[(c.agent_id, c.batch)] = seen.get((c.agent_id, c.batch), -1) + 1
        tid = c.tool_use_id or f"call-{n}"
        draft.calls[tid] = CallDraft(
            tool_use_id=tid,
            tool=c.tool,
            args=c.args,
            output=c.output,
            reasoning=c.reasoning,
            thinking=c.thinking,
            success=None if c.outcome == "unknown" else c.success,
            outcome=c.outcome,
            error=c.error,
            is_interrupt=c.is_interrupt,
            duration_ms=c.duration_ms,
            started_at=_ts(c.started_at),
            ended_at=_ts(c.ended_at),
            tool_response=c.tool_response,
            message_id=c.message_id,
            agent_id=c.agent_id,
            agent_type=c.agent_type,
            parent_tool_use_id=c.parent_tool_use_id,
            batch=c.batch,
            index=index,
        )
    return draft


def merge(*sources: list[TurnDraft]) -> list[TurnDraft]:
    """Merge the turns of several sources into one list, in the order they happened."""
    ordered = sorted((s for s in sources if s), key=lambda s: SOURCE_PRIORITY.index(s[0].source))
    merged: list[TurnDraft] = []
    for turns in ordered:
        taken: set[int] = set()
        for turn in turns:
            hit = next(
                (i for i, m in enumerate(merged) if i not in taken and _same_turn(m, turn)), None
            )
            if hit is None:
                merged.append(turn)
                taken.add(len(merged) - 1)
            else:
                merged[hit] = merge_turn(merged[hit], turn)
                taken.add(hit)
    merged.sort(key=lambda t: t.started_at if t.started_at is not None else float("inf"))
    return merged


# --- finishing ----------------------------------------------------------------------------


def _dt(ts: float | None) -> datetime | None:
    return datetime.fromtimestamp(ts, UTC) if ts is not None else None


def _link_subagents(calls: list[CallDraft]) -> None:
    """Give every subagent call the id of the Agent call that started its subagent."""
    by_agent: dict[str, str] = {}
    for c in calls:
        if c.tool in AGENT_TOOLS and c.agent_id is None and isinstance(c.tool_response, dict):
            agent = c.tool_response.get("agentId")
            if isinstance(agent, str):
                by_agent[agent] = c.tool_use_id
    for c in calls:
        if c.agent_id and not c.parent_tool_use_id:
            c.parent_tool_use_id = by_agent.get(c.agent_id)


def _order(calls: list[CallDraft]) -> list[CallDraft]:
    """Main-agent calls as issued (batch, index); each subagent's calls after its Agent call."""
    big = float("inf")

    def own(c: CallDraft) -> tuple[float, float, float]:
        return (
            c.batch if c.batch is not None else big,
            c.index if c.index is not None else big,
            c.started_at if c.started_at is not None else big,
        )

    main = sorted((c for c in calls if not c.agent_id), key=own)
    rank = {c.tool_use_id: i for i, c in enumerate(main)}
    subs = sorted(
        (c for c in calls if c.agent_id),
        key=lambda c: (rank.get(c.parent_tool_use_id or "", big), c.agent_id or "", *own(c)),
    )
    out: list[CallDraft] = []
    for c in main:
        out.append(c)
        out.extend(s for s in subs if s.parent_tool_use_id == c.tool_use_id)
    out.extend(s for s in subs if s.parent_tool_use_id not in rank)
    return out


def to_trace(turn: TurnDraft) -> ClaudeTrace:
    """The finished, redacted trace of one merged turn."""
    calls = list(turn.calls.values())
    _link_subagents(calls)
    # The record is built as plain data, redacted, then validated once: secrets go before
    # anything is derived from the text, so signals never hold one.
    tool_calls = [
        {
            "tool": c.tool,
            "args": c.args,
            "output": c.output,
            "reasoning": c.reasoning,
            "thinking": c.thinking,
            "tool_use_id": c.tool_use_id,
            "success": outcome(c) == "success",
            "outcome": outcome(c),
            "error": c.error,
            "is_interrupt": c.is_interrupt,
            "duration_ms": c.duration_ms,
            "started_at": _dt(c.started_at),
            "ended_at": _dt(c.ended_at),
            "tool_response": c.tool_response,
            "message_id": c.message_id,
            "batch": c.batch,
            "agent_id": c.agent_id,
            "agent_type": c.agent_type,
            "parent_tool_use_id": c.parent_tool_use_id,
        }
        for c in _order(calls)
    ]
    started = _dt(turn.started_at)
    record = {
        "trace_id": trace_id_for(
            turn.session_id, turn.prompt_id, turn.prompt, started.isoformat() if started else ""
        ),
        "user_prompt": turn.prompt,
        "command": turn.command,
        "prompt_expansion": turn.expansion or None,
        "tool_calls": tool_calls,
        "claude_response": turn.response,
        "final_thinking": turn.final_thinking,
        "events": [{**e, "at": _dt(e.get("at"))} for e in turn.events],
        "interrupted": turn.interrupted,
        "started_at": started,
        "ended_at": _dt(turn.ended_at),
        "session_id": turn.session_id,
        "prompt_id": turn.prompt_id,
        "cwd": turn.cwd,
        "git_branch": turn.git_branch,
        "model": turn.model,
        "claude_code_version": turn.version,
        "permission_mode": turn.permission_mode,
        "system_prompt_id": turn.system_prompt_id,
        "tools_id": turn.tools_id,
        "served_by": turn.served_by,
        "sources": sorted(turn.sources, key=SOURCE_PRIORITY.index),
        "complete": turn.complete,
    }
    trace = ClaudeTrace.model_validate(redact(record))
    trace.reasoning_signals = extract_signals(trace)
    return trace


def assemble(*sources: list[TurnDraft]) -> list[ClaudeTrace]:
    """Turns from any mix of sources → one redacted ``ClaudeTrace`` per user prompt."""
    return [to_trace(t) for t in merge(*sources) if t.prompt.strip()]
