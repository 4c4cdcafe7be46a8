"""The hook spool: reading what ``hooks/record.py`` appended, and turning it into turns.

A spool line is ``{"v":1,"t":<receive time>,"p":<hook payload>}``. The payload field
names are those recorded from the real CLI (``shared/fixtures/claude-code``).
"""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from claude_bc.capture.store import Problem
from claude_bc.capture.turns import (
    AGENT_TOOLS,
    TASK_NOTIFICATION,
    CallDraft,
    TurnDraft,
    call_outcome,
    result_text,
)


@dataclass
class HookEvent:
    t: float
    payload: dict[str, Any]
    pid: int | None = None  # the Claude Code process that ran the hook

    @property
    def name(self) -> str:
        return str(self.payload.get("hook_event_name", ""))


@dataclass
class SpoolRead:
    events: list[HookEvent] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)


def session_lock(path: Path) -> int:
    """Hold a session's lock file ``path`` (made if missing): the hook worker and the
    proxy's assembler of one session never run at once. Whoever finds the session done
    removes the file while holding it, so one that waited on the removed file takes the
    lock again on the file now at ``path``: two never both hold it, and no lock file
    outlives its session."""
    while True:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            if os.fstat(fd).st_ino == os.stat(path).st_ino:
                return fd
        except FileNotFoundError:
            pass  # removed while we waited
        os.close(fd)


def read_spool(path: Path) -> SpoolRead:
    """Every well-formed record of a spool file; bad lines are reported, not fatal."""
    out = SpoolRead()
    with path.open("rb") as fh:
        for number, raw in enumerate(fh, 1):
            try:
                rec = json.loads(raw)
                payload = rec["p"]
                if not isinstance(payload, dict):
                    raise ValueError("payload is not an object")
                pid = rec.get("pid")
                out.events.append(
                    HookEvent(float(rec["t"]), payload, pid if isinstance(pid, int) else None)
                )
            except (ValueError, KeyError, TypeError, AttributeError, RecursionError) as exc:
                out.problems.append(Problem(path, number, f"bad spool record: {exc}"))
    return out


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _opt(payload: dict[str, Any], key: str) -> str | None:
    """A string field of a payload, or None (a field of another type is not trusted)."""
    value = payload.get(key)
    return value if isinstance(value, str) and value else None


@dataclass
class _Turns:
    """What :func:`turns_from_hooks` builds up while it reads one session's events."""

    turns: dict[str, TurnDraft] = field(default_factory=dict)
    # prompt -> display message -> index -> delta
    display: dict[str, dict[str, dict[int, str]]] = field(default_factory=dict)
    pending: dict[str, list[str]] = field(default_factory=dict)  # display msgs not yet given
    batches: dict[tuple[str, str | None], int] = field(default_factory=dict)  # seen so far
    agent_calls_open: list[CallDraft] = field(default_factory=list)
    alias: dict[str, str] = field(default_factory=dict)  # task notification's prompt -> turn
    posted: set[str] = field(default_factory=set)  # calls whose Post hook was seen

    def turn_for(self, p: dict[str, Any]) -> TurnDraft | None:
        pid = p.get("prompt_id")
        return self.turns.get(self.alias.get(pid, pid)) if isinstance(pid, str) else None

    def prompt(self, p: dict[str, Any], t: float) -> None:
        """UserPromptSubmit: a new turn, or a background task's notification going on
        with the last one."""
        pid = p["prompt_id"]
        prompt = _text(p.get("prompt"))
        last = next(reversed(self.turns.values()), None)
        if prompt.lstrip().startswith(TASK_NOTIFICATION) and last and pid not in self.turns:
            # a background task finished: Claude Code re-invokes the model with a new
            # prompt id, but it is the same turn going on
            self.alias[pid] = last.prompt_id or ""
            last.events.append({"kind": "task_notification", "text": prompt, "at": t})
            return
        self.turns.setdefault(
            pid,
            TurnDraft(
                source="hooks",
                prompt=prompt,
                prompt_id=pid,
                session_id=_opt(p, "session_id"),
                started_at=t,
                cwd=_opt(p, "cwd"),
                permission_mode=_opt(p, "permission_mode"),
            ),
        )


def _on_display(s: _Turns, turn: TurnDraft, p: dict[str, Any], t: float) -> None:
    msgs = s.display.setdefault(turn.prompt_id or "", {})
    mid = str(p.get("message_id"))
    if mid not in msgs:
        s.pending.setdefault(turn.prompt_id or "", []).append(mid)
    idx = p.get("index")
    msgs.setdefault(mid, {})[idx if isinstance(idx, int) else len(msgs[mid])] = _text(
        p.get("delta")
    )


def _on_pre_tool(s: _Turns, turn: TurnDraft, p: dict[str, Any], t: float) -> None:
    if not isinstance(p.get("tool_use_id"), str):
        return
    call = turn.call(p["tool_use_id"])
    call.tool = _text(p.get("tool_name"))
    tool_input = p.get("tool_input")
    call.args = tool_input if isinstance(tool_input, dict) else {}
    call.started_at = t
    call.agent_id = _opt(p, "agent_id")
    call.agent_type = _opt(p, "agent_type")
    if call.agent_id is None:
        # assistant text shown since the last call is this call's reasoning
        msgs = s.display.get(turn.prompt_id or "", {})
        shown = s.pending.pop(turn.prompt_id or "", [])
        call.reasoning = "\n\n".join(
            "".join(d for _, d in sorted(msgs[m].items())) for m in shown
        ).strip()
        if call.tool in AGENT_TOOLS:
            s.agent_calls_open.append(call)


def _post_tool(s: _Turns, turn: TurnDraft, p: dict[str, Any], t: float) -> CallDraft | None:
    """What PostToolUse and PostToolUseFailure both record; the call, or None."""
    if not isinstance(p.get("tool_use_id"), str):
        return None
    call = turn.call(p["tool_use_id"])
    call.tool = call.tool or _text(p.get("tool_name"))
    if not call.args and isinstance(p.get("tool_input"), dict):
        call.args = p["tool_input"]
    call.agent_id = call.agent_id or _opt(p, "agent_id")
    call.ended_at = t
    if isinstance(p.get("duration_ms"), int):
        call.duration_ms = p["duration_ms"]
    s.posted.add(call.tool_use_id)
    return call


def _on_post_tool(s: _Turns, turn: TurnDraft, p: dict[str, Any], t: float) -> None:
    call = _post_tool(s, turn, p, t)
    if call is not None:
        call.success = True
        call.tool_response = p.get("tool_response")


def _on_post_tool_failure(s: _Turns, turn: TurnDraft, p: dict[str, Any], t: float) -> None:
    call = _post_tool(s, turn, p, t)
    if call is not None:
        call.success = False
        call.error = _text(p.get("error")) or "failed"
        call.is_interrupt = bool(p.get("is_interrupt"))
        if call.is_interrupt:
            call.outcome = "interrupted"


def _on_batch(s: _Turns, turn: TurnDraft, p: dict[str, Any], t: float) -> None:
    key = (turn.prompt_id or "", _opt(p, "agent_id"))
    batch = s.batches.get(key, 0)
    s.batches[key] = batch + 1
    listed = p.get("tool_calls")
    items = [
        i
        for i in (listed if isinstance(listed, list) else [])
        if isinstance(i, dict) and isinstance(i.get("tool_use_id"), str)
    ]
    in_batch = [turn.call(item["tool_use_id"]) for item in items]
    for index, (item, call) in enumerate(zip(items, in_batch, strict=True)):
        call.tool = call.tool or _text(item.get("tool_name"))
        call.batch, call.index = batch, index
        call.agent_id = call.agent_id or _opt(p, "agent_id")
        resp = item.get("tool_response")
        # a list is content blocks (an Agent's answer): the model saw their text
        call.output = (
            resp
            if isinstance(resp, str)
            else result_text(resp)
            if isinstance(resp, list)
            else json.dumps(resp, ensure_ascii=False)
        )
    if in_batch:
        # parallel calls start in any order; the text belongs to the first block
        text = "\n\n".join(c.reasoning for c in in_batch if c.reasoning)
        for c in in_batch:
            c.reasoning = ""
        in_batch[0].reasoning = text


def _on_denied(s: _Turns, turn: TurnDraft, p: dict[str, Any], t: float) -> None:
    if isinstance(p.get("tool_use_id"), str):
        call = turn.call(p["tool_use_id"])
        call.success, call.outcome = False, "denied"
        call.error = _text(p.get("reason")) or _text(p.get("message")) or call.error


def _on_subagent_start(s: _Turns, turn: TurnDraft, p: dict[str, Any], t: float) -> None:
    if s.agent_calls_open:
        s.agent_calls_open.pop(0).tool_response = {"agentId": _opt(p, "agent_id")}


def _on_stop(s: _Turns, turn: TurnDraft, p: dict[str, Any], t: float) -> None:
    turn.response = _text(p.get("last_assistant_message")) or turn.response
    turn.complete = True


def _on_session_start(s: _Turns, turn: TurnDraft, p: dict[str, Any], t: float) -> None:
    if _opt(p, "model"):
        turn.model = _opt(p, "model")


#: What each hook event adds to the turn it belongs to (any other event only extends it).
HANDLERS: dict[str, Callable[[_Turns, TurnDraft, dict[str, Any], float], None]] = {
    "MessageDisplay": _on_display,
    "PreToolUse": _on_pre_tool,
    "PostToolUse": _on_post_tool,
    "PostToolUseFailure": _on_post_tool_failure,
    "PostToolBatch": _on_batch,
    "PermissionDenied": _on_denied,
    "SubagentStart": _on_subagent_start,
    "Stop": _on_stop,
    "SessionStart": _on_session_start,
}


def turns_from_hooks(events: list[HookEvent]) -> list[TurnDraft]:
    """One ``TurnDraft`` per UserPromptSubmit (events of one session, in receive order)."""
    s = _Turns()
    for ev in sorted(events, key=lambda e: e.t):
        p, t = ev.payload, ev.t
        if ev.name == "UserPromptSubmit" and isinstance(p.get("prompt_id"), str):
            s.prompt(p, t)
            continue
        turn = s.turn_for(p)
        if turn is None:
            continue
        turn.ended_at = max(turn.ended_at or t, t)
        handler = HANDLERS.get(ev.name)
        if handler is not None:
            handler(s, turn, p, t)
    for turn in s.turns.values():
        _not_run(turn, s.posted)
    return list(s.turns.values())


def _not_run(turn: TurnDraft, posted: set[str]) -> None:
    """A call that reached its batch without a Post hook was not run: a permission rule or
    the user stopped it, or Claude Code refused its input (``<tool_use_error>``). Only
    what its result says is recorded (no result, no outcome)."""
    for call in turn.calls.values():
        if call.tool_use_id in posted or call.success is not None or not call.output:
            continue
        seen = call_outcome(call.output, is_error=True)
        if seen == "error" and not call.output.startswith("<tool_use_error>"):
            continue  # not told apart from a Post hook that was lost: left unknown
        if seen in ("denied", "interrupted", "error"):
            call.success, call.outcome, call.error = False, seen, call.output
            call.is_interrupt = seen == "interrupted"


def transcript_paths(events: list[HookEvent]) -> tuple[Path | None, dict[str, Path]]:
    """The session transcript and the subagent transcripts named by the hooks."""
    main: Path | None = None
    subs: dict[str, Path] = {}
    for ev in events:
        tp = ev.payload.get("transcript_path")
        if isinstance(tp, str) and tp:
            main = Path(tp)
        atp, aid = ev.payload.get("agent_transcript_path"), ev.payload.get("agent_id")
        if isinstance(atp, str) and isinstance(aid, str) and atp:
            subs[aid] = Path(atp)
    return main, subs


def iter_spools(spool_dir: Path) -> Iterator[Path]:
    if spool_dir.is_dir():
        yield from sorted(spool_dir.glob("*.jsonl"))
