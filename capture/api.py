"""The proxy's recorded API exchanges → turns for the one assembler (source ``"proxy"``).

``proxy/addon.py`` appends one line per ``POST /v1/messages`` exchange to
``$BC_HOME/spool/api/<session>.jsonl``. This module reads those lines back and:

* rebuilds every streamed response into a Message with the anthropic SDK's own SSE
  decoder and stream accumulator (private modules: the SDK version is pinned and
  ``tests/proxy/test_api.py`` covers them);
* sorts requests into conversations by their opening prompt: the main conversation, a
  subagent (its opening prompt is the ``prompt`` of an Agent call), side requests (title
  generation: no tools or ``output_config.format``) and compaction — only main and
  subagent conversations become trace content;
* chains each conversation's requests (a retried request replaces the failed one; the
  ``tool_result`` blocks of a later request answer the ``tool_use`` blocks of a response;
  ``role: "system"`` messages are context, not turns) and yields one ``TurnDraft`` per
  user prompt: thinking and text before each tool_use become that call's thinking and
  reasoning, the text after the last one the answer;
* keeps the system prompts and tool schemas once per session in
  ``$BC_HOME/sessions/<session>.json`` (0600, redacted); traces point at them with
  ``system_prompt_id`` and ``tools_id``.

``python -m claude_bc.capture.api SESSION`` assembles one session (the addon starts it when a
conversation turn ends); ``bc-capture assemble`` does every pending api spool.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from claude_bc.capture import paths, safejson
from claude_bc.capture.errlog import run_detached
from claude_bc.capture.ingest import ingest
from claude_bc.capture.rawspool import redact_in_place
from claude_bc.capture.redact import redact
from claude_bc.capture.schema import ClaudeTrace
from claude_bc.capture.spool import read_spool, session_lock, turns_from_hooks
from claude_bc.capture.store import Problem, TraceStorage
from claude_bc.capture.transcript import read_lines, split_command, turns_from_lines
from claude_bc.capture.turns import (
    AGENT_TOOLS,
    INTERRUPTED,
    TASK_NOTIFICATION,
    CallDraft,
    TurnDraft,
    assemble,
    call_outcome,
    result_text,
    served_by,
)

if TYPE_CHECKING:
    from anthropic.types.beta import BetaRawMessageStreamEvent

JSON = dict[str, Any]

REMINDER = "<system-reminder>"
# the first user message after a compaction: Claude Code's summary, not a prompt
COMPACT_SUMMARY = "This session is being continued from a previous conversation"
BILLING = "x-anthropic-billing-header:"  # per-request billing line, not part of the prompt
IDLE_DROP_S = 3600.0  # `bc-capture assemble` removes an api spool idle this long
CWD_RE = re.compile(r"Primary working directory: *(\S[^\n]*)")
BRANCH_RE = re.compile(r"^Current branch: *(\S+)", re.MULTILINE)
VERSION_RE = re.compile(r"claude-cli/([\w.\-]+)")
AGENT_ID_RE = re.compile(r"^agentId: *([\w\-]+)", re.MULTILINE)
ENDED = ("end_turn", "stop_sequence")
STREAM_EVENTS = frozenset(
    {
        "message_start",
        "content_block_start",
        "content_block_delta",
        "content_block_stop",
        "message_delta",
    }
)


# --- reading the spool ---------------------------------------------------------------------


@dataclass
class Exchange:
    """One recorded request and what came back."""

    t: float
    request: JSON
    headers: dict[str, str]
    status: int | None = None
    error: str | None = None
    t_end: float | None = None
    message: JSON | None = None  # the rebuilt Message, when the response completed
    served_by: str | None = None  # the rollout proxy's choice: "anthropic" or a local model

    @property
    def ok(self) -> bool:
        return self.message is not None and self.error is None

    def header(self, name: str) -> str:
        return next((v for k, v in self.headers.items() if k.lower() == name), "")


def api_spool_dir(home: Path | None = None) -> Path:
    return paths.spool_dir(home) / "api"


def sessions_dir(home: Path | None = None) -> Path:
    return (home or paths.data_dir()) / "sessions"


def iter_api_spools(home: Path | None = None) -> Iterator[Path]:
    folder = api_spool_dir(home)
    if folder.is_dir():
        yield from sorted(folder.glob("*.jsonl"))


def rebuild_message(sse: str, beta: str = "") -> tuple[JSON | None, str | None]:
    """SSE text → (the Message, an error); the Message only if the stream completed."""
    # Private SDK modules, imported here so the hook-side CLI never pays for them.
    import httpx2
    from anthropic._streaming import SSEDecoder
    from anthropic.lib.streaming._beta_messages import accumulate_event

    headers = httpx2.Headers({"anthropic-beta": beta})
    snapshot: Any = None
    bufs: dict[int, bytes] = {}
    for event in SSEDecoder().iter_bytes(iter([sse.encode()])):
        data = event.json() if event.data else None
        kind = data.get("type") if isinstance(data, dict) else None
        if event.event == "error" or kind == "error":
            error = data.get("error") if isinstance(data, dict) else None
            return None, f"stream error: {json.dumps(error or data)}"
        if kind == "message_stop":
            return (snapshot.to_dict() if snapshot else None), None
        if kind not in STREAM_EVENTS:
            continue  # pings, and event types newer than this code: nothing to fold in
        try:
            snapshot = accumulate_event(
                event=cast("BetaRawMessageStreamEvent", data),  # it builds the model itself
                current_snapshot=snapshot,
                json_bufs=bufs,
                request_headers=headers,
            )
        except Exception as exc:  # noqa: BLE001 - a stream we cannot fold is a failed one
            return None, f"cannot rebuild the message: {type(exc).__name__}: {exc}"[:300]
    return None, "stream ended before message_stop"


def _response_message(rec: JSON, beta: str) -> tuple[JSON | None, str | None]:
    body = rec.get("response")
    if not isinstance(body, str) or rec.get("response_form"):
        return None, "response body not recorded as text"
    headers = rec.get("response_headers") or {}
    ctype = next((str(v) for k, v in headers.items() if k.lower() == "content-type"), "")
    if "event-stream" in ctype or body.startswith("event:"):
        return rebuild_message(body, beta)
    message = safejson.loads(body)  # a non-streamed request: the Message itself
    if isinstance(message, dict) and message.get("type") == "message":
        return message, None
    return None, f"not a message: {body[:300]}"


def to_exchange(rec: JSON) -> Exchange:
    """A spool line → an Exchange with its Message rebuilt (if the response completed)."""
    ex = Exchange(
        t=float(rec["t"]),
        request=rec["request"] if isinstance(rec.get("request"), dict) else {},
        headers=dict(rec.get("request_headers") or {}),
        status=rec.get("status"),
        error=rec.get("error"),
        t_end=(rec.get("timing") or {}).get("end"),
        served_by=rec["served_by"] if isinstance(rec.get("served_by"), str) else None,
    )
    if ex.error is None and ex.status is not None and ex.status >= 400:
        ex.error = f"HTTP {ex.status}: {str(rec.get('response') or '')[:300]}"
    if ex.error is None:
        ex.message, ex.error = _response_message(rec, ex.header("anthropic-beta"))
    return ex


def read_api_spool(path: Path) -> tuple[list[Exchange], list[Problem]]:
    """Every exchange of an api spool in request order; bad lines are reported."""
    out: list[Exchange] = []
    problems: list[Problem] = []
    with path.open("rb") as fh:
        for number, raw in enumerate(fh, 1):
            try:
                rec = safejson.loads(raw)  # deep nesting: a bad record, not a crash
                out.append(to_exchange(rec))
            except Exception as exc:  # noqa: BLE001 - one bad record must not lose the rest
                problems.append(Problem(path, number, f"bad api record: {type(exc).__name__}"))
    out.sort(key=lambda e: e.t)
    return out, problems


# --- reading requests ----------------------------------------------------------------------


def _blocks(message: JSON) -> list[JSON]:
    content = message.get("content")
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    return [b for b in content or [] if isinstance(b, dict)]


def _messages(body: JSON) -> list[JSON]:
    msgs = body.get("messages")
    return [m for m in msgs if isinstance(m, dict)] if isinstance(msgs, list) else []


def prompt_text(message: JSON) -> str | None:
    """The user's words if this message is a prompt (not tool results, not only reminders)."""
    if message.get("role") != "user":
        return None
    blocks = _blocks(message)
    if any(b.get("type") == "tool_result" for b in blocks):
        return None
    texts = [
        str(b.get("text", ""))
        for b in blocks
        if b.get("type") == "text"
        and not str(b.get("text", ""))
        .lstrip()
        .startswith((REMINDER, COMPACT_SUMMARY, TASK_NOTIFICATION, INTERRUPTED))
    ]
    return "\n".join(texts) if any(t.strip() for t in texts) else None


def current_prompt(body: JSON) -> tuple[int, str] | None:
    """(index, text) of the last prompt in a request: the turn the request belongs to."""
    for i, message in reversed(list(enumerate(_messages(body)))):
        text = prompt_text(message)
        if text is not None:
            return i, text
    return None


def opening_prompt(body: JSON) -> str:
    """The conversation's first prompt: what tells main and subagent conversations apart."""
    return next((t for m in _messages(body) if (t := prompt_text(m)) is not None), "")


def is_side_request(body: JSON) -> bool:
    config = body.get("output_config")
    return not body.get("tools") or (isinstance(config, dict) and bool(config.get("format")))


def is_compact_request(body: JSON) -> bool:
    users = [m for m in _messages(body) if m.get("role") == "user"]
    last = "\n".join(str(b.get("text", "")) for b in _blocks(users[-1])) if users else ""
    return "<analysis>" in last and "<summary>" in last


def assistant_count(body: JSON) -> int:
    return sum(1 for m in _messages(body) if m.get("role") == "assistant")


def _context_text(body: JSON) -> str:
    """System blocks, system messages and reminders: where cwd and branch are written."""
    parts = [str(b.get("text", "")) for b in _system_blocks(body)]
    for message in _messages(body)[:4]:
        parts += [str(b.get("text", "")) for b in _blocks(message) if b.get("type") == "text"]
    return "\n".join(parts)


def _system_blocks(body: JSON) -> list[JSON]:
    system = body.get("system")
    if isinstance(system, str):
        return [{"type": "text", "text": system}]
    return [b for b in system or [] if isinstance(b, dict)]


# --- session context: system prompts and tool schemas --------------------------------------


def _digest(value: Any) -> str:
    data = json.dumps(value, sort_keys=True, ensure_ascii=False).encode()
    return hashlib.sha256(data).hexdigest()[:16]


def _strip_cache(value: Any) -> Any:
    """Without ``cache_control`` markers, which Claude Code moves from request to request."""
    if isinstance(value, dict):
        return {k: _strip_cache(v) for k, v in value.items() if k != "cache_control"}
    if isinstance(value, list):
        return [_strip_cache(v) for v in value]
    return value


def system_prompt(body: JSON) -> list[JSON]:
    """The request's system blocks, less the per-request billing line and cache markers."""
    blocks = _strip_cache(_system_blocks(body))
    return [b for b in blocks if not str(b.get("text", "")).startswith(BILLING)]


@dataclass
class SessionContext:
    """``sessions/<session>.json``: each distinct system prompt and tool set once, by id,
    and the session's failed API exchanges."""

    session_id: str
    system_prompts: dict[str, Any] = field(default_factory=dict)
    tool_sets: dict[str, Any] = field(default_factory=dict)
    failures: list[JSON] = field(default_factory=list)
    _ids: dict[str, str] = field(default_factory=dict, repr=False)  # raw digest -> stored id

    def _put(self, store: dict[str, Any], value: Any) -> str | None:
        if not value:
            return None
        raw = _digest(value)
        if raw not in self._ids:  # redact each distinct value once, not once per request
            clean = redact(value)
            self._ids[raw] = _digest(clean)
            store.setdefault(self._ids[raw], clean)
        return self._ids[raw]

    def add(self, body: JSON) -> tuple[str | None, str | None]:
        """Store a request's system prompt and tools (redacted); returns their ids."""
        tools = _strip_cache(body.get("tools") or [])
        return self._put(self.system_prompts, system_prompt(body)), self._put(self.tool_sets, tools)

    def add_failure(self, ex: Exchange) -> None:
        if all(f.get("t") != ex.t for f in self.failures):
            self.failures.append(redact({"t": ex.t, "status": ex.status, "error": ex.error}))

    def record(self) -> JSON:
        return {
            "session_id": self.session_id,
            "system_prompts": self.system_prompts,
            "tool_sets": self.tool_sets,
            "failures": self.failures,
        }


def context_path(session: str, home: Path | None = None) -> Path:
    return sessions_dir(home) / f"{paths.check_id(session)}.json"


def load_context(session: str, home: Path | None = None) -> SessionContext:
    """The stored system prompts and tool sets of a session (empty if none yet)."""
    try:
        data = safejson.loads(context_path(session, home).read_text("utf-8"))
    except (OSError, ValueError):
        return SessionContext(session)
    return SessionContext(
        session,
        dict(data.get("system_prompts") or {}),
        dict(data.get("tool_sets") or {}),
        list(data.get("failures") or []),
    )


def save_context(context: SessionContext, home: Path | None = None) -> Path:
    path = context_path(context.session_id, home)
    paths.ensure_dir(path.parent)
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        json.dump(context.record(), fh, ensure_ascii=False)
    os.replace(tmp, path)
    return path


# --- conversations -------------------------------------------------------------------------


@dataclass
class Step:
    """One position of a conversation: the request and the Message Claude Code kept."""

    exchange: Exchange
    message: JSON | None
    t_end: float | None
    t_first: float  # the first attempt at this position (a retry keeps the turn's start)


def _agent_prompts(exchanges: list[Exchange]) -> set[str]:
    """The ``prompt`` of every Agent call seen in responses or request histories."""
    out: set[str] = set()
    messages = [e.message for e in exchanges if e.message]
    messages += [m for e in exchanges for m in _messages(e.request) if m.get("role") == "assistant"]
    for message in messages:
        for block in _blocks(message):
            args = block.get("input")
            if block.get("name") in AGENT_TOOLS and isinstance(args, dict):
                out.add(str(args.get("prompt", "")))
    return out


def conversations(exchanges: list[Exchange]) -> dict[str, list[Exchange]]:
    """Conversation requests grouped by opening prompt (side and compact requests left out)."""
    out: dict[str, list[Exchange]] = {}
    for ex in exchanges:
        if ex.request and not is_side_request(ex.request) and not is_compact_request(ex.request):
            out.setdefault(opening_prompt(ex.request), []).append(ex)
    return out


def steps(exchanges: list[Exchange]) -> list[Step]:
    """One step per position; a completed retry replaces a failed or partial attempt."""
    by_position: dict[int, Exchange] = {}
    first: dict[int, float] = {}
    for ex in exchanges:
        pos = assistant_count(ex.request)
        first.setdefault(pos, ex.t)
        kept = by_position.get(pos)
        if kept is None or ex.ok or not kept.ok:
            by_position[pos] = ex
    ordered = [by_position[p] for p in sorted(by_position)]
    out: list[Step] = []
    for i, ex in enumerate(ordered):
        message, t_end = ex.message, ex.t_end
        if message is None and i + 1 < len(ordered):
            # the response was lost to us, but the next request repeats what the client kept
            history = [m for m in _messages(ordered[i + 1].request) if m.get("role") == "assistant"]
            pos = assistant_count(ex.request)
            message = history[pos] if pos < len(history) else None
            if message is not None:  # the client's copy has no stop_reason of its own
                calls = any(b.get("type") == "tool_use" for b in _blocks(message))
                message = {**message, "stop_reason": "tool_use" if calls else "end_turn"}
            t_end = ordered[i + 1].t
        out.append(Step(ex, message, t_end, first[assistant_count(ex.request)]))
    return out


def tool_results(exchanges: list[Exchange]) -> dict[str, tuple[JSON, float]]:
    """Every tool_result block by tool_use_id, with the time it was first sent."""
    out: dict[str, tuple[JSON, float]] = {}
    for ex in exchanges:
        for message in _messages(ex.request):
            for block in _blocks(message):
                tid = block.get("tool_use_id")
                if block.get("type") == "tool_result" and isinstance(tid, str) and tid not in out:
                    out[tid] = (block, ex.t)
    return out


# --- turns ---------------------------------------------------------------------------------


@dataclass
class _Walk:
    """Folds one conversation's steps into turns, block by block."""

    session: str
    results: dict[str, tuple[JSON, float]]
    context: SessionContext
    agent: str | None = None  # set for a subagent conversation: one turn, its task
    turns: list[TurnDraft] = field(default_factory=list)
    texts: list[str] = field(default_factory=list)
    thinking: list[str] = field(default_factory=list)
    batches: int = 0
    prompt_at: int | None = None

    def start(self, step: Step, prompt: tuple[int, str]) -> TurnDraft:
        body = step.exchange.request
        context = _context_text(body)
        cwd, branch = CWD_RE.search(context), BRANCH_RE.search(context)
        version = VERSION_RE.search(step.exchange.header("user-agent"))
        system_id, tools_id = self.context.add(body)
        typed, command, expansion = split_command(prompt[1])
        turn = TurnDraft(
            source="proxy",
            prompt=typed,
            command=command,
            expansion=expansion,
            session_id=self.session,
            started_at=step.t_first,
            model=body.get("model") if isinstance(body.get("model"), str) else None,
            cwd=cwd.group(1).strip() if cwd else None,
            git_branch=branch.group(1) if branch else None,
            version=version.group(1) if version else None,
            system_prompt_id=system_id,
            tools_id=tools_id,
        )
        self.turns.append(turn)
        self.prompt_at, self.texts, self.thinking, self.batches = prompt[0], [], [], 0
        return turn

    def step(self, step: Step) -> None:
        prompt = current_prompt(step.exchange.request)
        if prompt is None:
            return
        new = not self.turns or (self.agent is None and prompt[0] != self.prompt_at)
        turn = self.start(step, prompt) if new else self.turns[-1]
        turn.ended_at = step.t_end or step.exchange.t
        turn.served_by = served_by(turn.served_by, step.exchange.served_by)
        message = step.message
        if message is None:
            return
        if isinstance(message.get("model"), str):
            turn.model = message["model"]
        index = 0
        for block in _blocks(message):
            if self.block(turn, step, block, index):
                index += 1
        self.batches += 1 if index else 0
        if message.get("stop_reason") != "tool_use":
            turn.response = "\n\n".join(t for t in self.texts if t.strip())
            turn.final_thinking = "\n\n".join(t for t in self.thinking if t.strip())
            turn.complete = message.get("stop_reason") in ENDED
            self.texts, self.thinking = [], []

    def block(self, turn: TurnDraft, step: Step, block: JSON, index: int) -> bool:
        """Fold one content block in; True if it was a tool call."""
        kind = block.get("type")
        if kind == "text":
            self.texts.append(str(block.get("text", "")))
        elif kind == "thinking":
            self.thinking.append(str(block.get("thinking", "")))
        elif kind == "tool_use" and isinstance(block.get("id"), str):
            call = turn.call(block["id"])
            call.tool = str(block.get("name", ""))
            call.args = block["input"] if isinstance(block.get("input"), dict) else {}
            call.reasoning = "\n\n".join(t for t in self.texts if t.strip())
            call.thinking = "\n\n".join(t for t in self.thinking if t.strip())
            call.message_id = (step.message or {}).get("id")
            call.batch, call.index, call.agent_id = self.batches, index, self.agent
            call.started_at = step.t_end  # the call can only run once its block is complete
            self.texts, self.thinking = [], []
            self.result(call)
            return True
        return False

    def result(self, call: CallDraft) -> None:
        found = self.results.get(call.tool_use_id)
        if found is None:
            return
        block, t = found
        call.output, call.ended_at = result_text(block.get("content")), t
        call.outcome = call_outcome(call.output, bool(block.get("is_error")))
        call.success = call.outcome == "success"
        if not call.success:
            call.error = call.output or "error"
            call.is_interrupt = call.outcome == "interrupted"


def _attach_subagent(turns: list[TurnDraft], prompt: str, calls: list[CallDraft]) -> None:
    """Give a subagent's calls to the turn whose Agent call started it."""
    for turn in turns:
        for parent in list(turn.calls.values()):
            if parent.tool in AGENT_TOOLS and parent.args.get("prompt") == prompt:
                # Claude Code reports the subagent's id in the Agent call's result
                agent = AGENT_ID_RE.search(parent.output)
                for call in calls:
                    call.agent_id = agent.group(1) if agent else f"proxy-{parent.tool_use_id}"
                    call.agent_type = str(parent.args.get("subagent_type") or "") or None
                    call.parent_tool_use_id = parent.tool_use_id
                    turn.calls[call.tool_use_id] = call
                return


def _walk(walk: _Walk, group: list[Exchange]) -> list[TurnDraft]:
    for step in steps(group):
        walk.step(step)
    return walk.turns


def turns_from_exchanges(
    session: str, exchanges: list[Exchange], context: SessionContext | None = None
) -> list[TurnDraft]:
    """One ``TurnDraft`` per user prompt of the session's main conversation(s); subagent
    calls go into the turn of the Agent call that started them."""
    context = context or SessionContext(session)
    results = tool_results(exchanges)
    agents = _agent_prompts(exchanges)
    groups = conversations(exchanges)
    turns: list[TurnDraft] = []
    # a subagent's conversation opens with its Agent call's prompt
    task = {o: next((a for a in agents if a.strip() and a.strip() in o), None) for o in groups}
    for opening, group in groups.items():
        if task[opening] is None:
            turns += _walk(_Walk(session, results, context), group)
    for opening, group in groups.items():
        if (prompt := task[opening]) is not None:
            sub = _walk(_Walk(session, results, context, agent="?"), group)
            _attach_subagent(turns, prompt, [c for t in sub for c in t.calls.values()])
    for ex in exchanges:
        if ex.error:
            context.add_failure(ex)
    return sorted(turns, key=lambda t: t.started_at or 0.0)


# --- Claude Code's own prompt ids ------------------------------------------------------------


def known_prompts(session: str, home: Path | None = None) -> list[TurnDraft]:
    """The session's prompts with the ids Claude Code gave them (the wire has none): from
    the hook spool while it exists, else from the session transcript, else none."""
    spool = paths.spool_dir(home) / f"{session}.jsonl"
    if spool.is_file():
        turns = turns_from_hooks(read_spool(spool).events)
        if turns:
            return turns
    for transcript in sorted(paths.projects_dir().glob(f"*/{session}.jsonl")):
        return turns_from_lines(read_lines(transcript))
    return []


def adopt_prompt_ids(turns: list[TurnDraft], known: list[TurnDraft]) -> None:
    """Give each proxy turn the prompt id of the same prompt nearest in time, so its trace
    gets the id every other source derives (and merges with theirs in any order)."""
    free = [k for k in known if k.prompt_id]
    for turn in turns:
        same = [k for k in free if k.prompt.strip() == turn.prompt.strip()]
        if same:
            best = min(same, key=lambda k: abs((k.started_at or 0.0) - (turn.started_at or 0.0)))
            turn.prompt_id = best.prompt_id
            free.remove(best)


# --- assembling a session ------------------------------------------------------------------


@dataclass
class ApiResult:
    session_id: str
    traces: list[ClaudeTrace] = field(default_factory=list)
    written: int = 0
    dropped: bool = False  # the spool was idle long enough and was removed
    problems: list[Problem] = field(default_factory=list)


def _drop_if_unchanged(spool: Path, size_read: int) -> bool:
    """Delete the spool unless the proxy appended to it after we read it."""
    fd = os.open(spool, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        if os.fstat(fd).st_size != size_read:
            return False
        spool.unlink()
        return True
    finally:
        os.close(fd)


def assemble_api_session(
    session_id: str, home: Path | None = None, drop_idle_s: float | None = None
) -> ApiResult:
    """Assemble one session's api spool into traces and merge them into the store.

    Idempotent (``ingest`` appends only what changed). With ``drop_idle_s``, a spool
    whose last record is at least that old is removed afterwards; the prompts it held
    are then never emitted again, since a later spool only yields the prompts that its
    own requests were made for.
    """
    paths.check_id(session_id)  # before it names any file (spool, lock, context)
    result = ApiResult(session_id)
    spool = api_spool_dir(home) / f"{session_id}.jsonl"
    # the hook worker's lock: the two sources of one session never ingest at once
    lock = paths.ensure_dir(paths.state_dir(home)) / f"{session_id}.lock"
    lock_fd = session_lock(lock)
    try:
        if not spool.exists():
            lock.unlink(missing_ok=True)  # nothing left to assemble
            return result
        st = spool.stat()
        exchanges, result.problems = read_api_spool(spool)
        context = load_context(session_id, home)
        turns = turns_from_exchanges(session_id, exchanges, context)
        adopt_prompt_ids(turns, known_prompts(session_id, home))
        result.traces = assemble(turns)
        save_context(context, home)
        report = ingest(result.traces, TraceStorage(paths.traces_dir(home)))
        result.written = len(report.written)
        if drop_idle_s is not None and time.time() - st.st_mtime >= drop_idle_s:
            result.dropped = _drop_if_unchanged(spool, st.st_size)
            if result.dropped:
                lock.unlink(missing_ok=True)
        if not result.dropped:
            redact_in_place(spool)  # assembled: no secret stays in the clear on disk
        return result
    finally:
        os.close(lock_fd)


def main(argv: list[str] | None = None) -> int:
    """``python -m claude_bc.capture.api SESSION``: what the proxy starts when a turn ends."""
    return run_detached(
        "claude_bc.capture.api", sys.argv[1:] if argv is None else argv, assemble_api_session
    )


if __name__ == "__main__":
    sys.exit(main())
