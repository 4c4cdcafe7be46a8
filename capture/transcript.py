"""Claude Code's session transcripts (``~/.claude/projects/<dashed-cwd>/<session>.jsonl``).

Rules the real files need (see ``shared/fixtures/claude-code/README.md``):

* assistant lines hold one content block each; blocks of one API message share
  ``message.id`` and are merged in line order;
* parallel tool results come as separate ``user`` lines;
* bookkeeping lines (``queue-operation``, ``api-request*``, ``last-prompt``, …) and
  unknown line types are skipped, never fatal (in an import, most without being parsed:
  :func:`iter_lines`); so are meta/command/compact-summary
  ``user`` lines (``/compact`` and its ``compact_boundary``), which are not prompts;
* ``parentUuid`` is not followed (attachments break the chain): file order is used;
* subagents live in ``<session>/subagents/agent-<id>.jsonl`` (with ``agent-<id>.meta.json``
  naming the Agent call); their calls are attached to the turn whose Agent call started them.

Files are read as a stream (``iter_lines`` from a byte offset, ``TurnBuilder`` fed line by
line), so a transcript of any size is read in memory bounded by its largest turn, and a
reader can stop and resume at the start of any prompt line.
"""

from __future__ import annotations

import json
import os
import re
import stat
from collections.abc import Iterable, Iterator
from contextlib import suppress
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, BinaryIO, Final

import orjson

from claude_bc.capture.prefilter import Prefilter
from claude_bc.capture.store import Problem
from claude_bc.capture.turns import (
    AGENT_TOOLS,
    INTERRUPTED,
    TASK_NOTIFICATION,
    CallDraft,
    TurnDraft,
    call_outcome,
    result_text,
)

# stop reasons after which the model waits for the user: the turn's answer is in
FINAL_STOPS = frozenset({"end_turn", "stop_sequence", "max_tokens", "refusal"})


# --- reading lines ------------------------------------------------------------------------


def parse_line(raw: bytes) -> Any:
    """One JSON line; orjson first (fast), the stdlib for what orjson refuses (huge ints)."""
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        return json.loads(raw)


@dataclass
class Cursor:
    """Where a streamed read stands: the next byte to read and the lines before it."""

    offset: int = 0
    line: int = 0


# The line types ``TurnBuilder`` reads; every other type is bookkeeping to it.
TURN_LINE_TYPES: Final = ("user", "assistant", "cost-state")
# Bytes read at a time when bookkeeping lines are passed over (a longer line: whole).
RUN_BYTES: Final = 1 << 20
_turn_lines: Prefilter | None = None


def use_prefilter() -> None:
    """Pass over bookkeeping lines unparsed from now on (bulk work: an import), when
    Hyperscan is there (see :func:`iter_lines`)."""
    global _turn_lines
    if _turn_lines is None:
        with suppress(Exception):  # no Hyperscan: every line is parsed
            needles = "|".join(re.escape(f'"{kind}"') for kind in TURN_LINE_TYPES)
            # a line that spells one (or holds an escape: parsed to be sure), to its end
            pattern = f"(?:{needles}|\\\\u)[^\\n]*\\n"
            _turn_lines = Prefilter([[(pattern, 0)]], "turn-lines", every_match=True)


def iter_lines(
    fh: BinaryIO,
    path: Path,
    cursor: Cursor,
    problems: list[Problem],
    only_turns: bool = False,
    final: bool = False,
) -> Iterator[tuple[int, int, dict[str, Any]]]:
    """``(offset, line number, object)`` of each whole line from ``cursor`` on.

    ``cursor`` advances past every whole line (malformed ones, and JSON values that are
    not objects, are reported in ``problems``). A last line without its newline is left
    unread: it is either being written right now or torn, and the caller decides which;
    ``final`` (the file is idle or ended): it is read as a line too (reported if torn).

    ``only_turns`` (after :func:`use_prefilter`): bookkeeping lines are passed over
    unparsed. Most bytes of a real transcript are bookkeeping (attachments, request
    snapshots: ~78% of the recorded sessions), and parsing them was a fifth of an import.
    A plain object line in none of whose bytes a turn line type is spelt (quoted, and no
    ``\\u`` escape anywhere) has another type; one Hyperscan pass over a run of lines
    finds those that do. Anything else (not ``{"…}``) is parsed, so a malformed line is
    still reported unless it is a well-framed bookkeeping line.
    """
    fh.seek(cursor.offset)
    if only_turns and _turn_lines is not None:
        lines: Iterator[tuple[bytes, bool]] = _turn_lines_of(fh, _turn_lines)
    else:
        lines = ((raw, True) for raw in fh)
    for raw, wanted in lines:
        if not raw.endswith(b"\n"):
            if not final:
                return
            wanted = True
        start = cursor.offset
        cursor.offset += len(raw)
        cursor.line += 1
        if not wanted or raw.isspace():  # (strip() would copy every line)
            continue
        try:
            obj = parse_line(raw)
        except (ValueError, RecursionError) as exc:
            torn = not raw.endswith(b"\n")
            reason = "torn last line (skipped)" if torn else f"malformed: {exc}"
            problems.append(Problem(path, cursor.line, reason))
            continue
        if isinstance(obj, dict):
            yield start, cursor.line, obj
        else:
            problems.append(Problem(path, cursor.line, f"not a JSON object: {type(obj).__name__}"))


def _turn_lines_of(fh: BinaryIO, spelt: Prefilter) -> Iterator[tuple[bytes, bool]]:
    """Each line from where ``fh`` stands (a last one without its newline too), and
    whether it may be a turn line: read and scanned a run of whole lines at a time."""
    for run, stop in _runs(fh):
        ends = spelt.match_ends(run)  # just past each line that spells a turn line type
        pos = 0
        while pos < stop:
            end = run.find(b"\n", pos, stop) + 1 or stop
            raw = run[pos:end]
            framed = raw.startswith(b'{"') and raw.endswith(b"}\n")
            yield raw, ends is None or end in ends or not framed
            pos = end


def _runs(fh: BinaryIO) -> Iterator[tuple[bytes, int]]:
    """The rest of ``fh`` as runs of whole lines, ``RUN_BYTES`` or so at a time (a longer
    line comes whole in a run of its own): ``(data, stop)``, the run being ``data[:stop]``
    (not sliced out: that would copy every byte once more; what follows ``stop`` begins
    the next run). What follows the last newline of the file comes last, alone."""
    pending: list[bytes] = []  # the start of a line that goes on in the next block
    while block := fh.read(RUN_BYTES):
        last = block.rfind(b"\n")
        if last < 0:
            pending.append(block)
            continue
        if pending:
            start = sum(map(len, pending))
            block, last = b"".join([*pending, block]), start + last
        yield block, last + 1
        pending = [block[last + 1 :]] if last + 1 < len(block) else []
    if pending:
        data = b"".join(pending)
        yield data, len(data)


@dataclass
class Lines:
    lines: list[dict[str, Any]] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    numbers: list[int] = field(default_factory=list)  # the line number of each of ``lines``
    path: Path | None = None


def read_lines(path: Path, only_turns: bool = False, final: bool = False) -> Lines:
    """The JSON objects of a (small) transcript file; malformed and torn lines are
    reported. ``only_turns``, ``final``: as for :func:`iter_lines`."""
    out = Lines(path=path)
    cursor = Cursor()
    with path.open("rb") as fh:
        for _, number, obj in iter_lines(fh, path, cursor, out.problems, only_turns, final):
            out.lines.append(obj)
            out.numbers.append(number)
        fh.seek(cursor.offset)
        if fh.read(1):
            out.problems.append(Problem(path, cursor.line + 1, "torn last line"))
    return out


# --- one transcript's turns ---------------------------------------------------------------


def _ts(value: Any) -> float | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def _message(line: dict[str, Any]) -> dict[str, Any]:
    message = line.get("message")
    return message if isinstance(message, dict) else {}


def _blocks(message: dict[str, Any]) -> list[dict[str, Any]]:
    content = message.get("content")
    return [b for b in content if isinstance(b, dict)] if isinstance(content, list) else []


def _str(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _user_text(line: dict[str, Any]) -> str | None:
    """The text of a ``user`` line that is not tool results (None if it holds any)."""
    content = _message(line).get("content")
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        return None
    blocks = [b for b in content if isinstance(b, dict)]
    if any(b.get("type") == "tool_result" for b in blocks):
        return None
    return "\n".join(_str(b.get("text")) for b in blocks if b.get("type") == "text")


_COMMAND = re.compile(r"<command-name>\s*(.*?)\s*</command-name>", re.S)
_COMMAND_ARGS = re.compile(r"<command-args>(.*?)</command-args>", re.S)
_COMMAND_CONTENTS = re.compile(r"<command-contents>(.*?)(?:</command-contents>|$)", re.S)
_COMMAND_TAG = re.compile(r"</command-(?:name|message|args)>")
_TOOL_USE_ID = re.compile(r"<tool-use-id>\s*(.*?)\s*</tool-use-id>", re.S)
# user lines Claude Code writes itself: output of a local command or of the user's own
# shell (``!``), caveats; never a prompt
LOCAL_OUTPUT = (
    "<local-command-stdout>",
    "<local-command-stderr>",
    "<local-command-caveat>",
    "<bash-input>",
    "<bash-stdout>",
    "<bash-stderr>",
)
COMMAND_TAGS = ("<command-name>", "<command-message>", "<command-args>")


@dataclass(frozen=True)
class UserLine:
    """What a ``user`` line is to a turn."""

    kind: str  # prompt, command, meta, notification, interrupt, results, other
    text: str = ""
    command: str | None = None
    expansion: str = ""  # a command's expansion written in the same line


def user_line(line: dict[str, Any]) -> UserLine:
    """Classify one ``user`` line (see the module docstring)."""
    if line.get("isCompactSummary") or line.get("isVisibleInTranscriptOnly"):
        return UserLine("other")
    text = _user_text(line)
    if text is None:
        return UserLine("results")
    if line.get("isMeta"):
        return UserLine("meta", text)
    start = text.lstrip()
    origin = line.get("origin")
    if start.startswith(TASK_NOTIFICATION) or (
        isinstance(origin, dict) and origin.get("kind") == "task-notification"
    ):
        return UserLine("notification", text)
    if start.startswith(INTERRUPTED):
        return UserLine("interrupt", text)
    typed, command, expansion = split_command(start)
    if command is not None:
        return UserLine("command", typed, command, expansion)
    if start.startswith(LOCAL_OUTPUT) or not start:
        return UserLine("other")
    return UserLine("prompt", text)


def split_command(text: str) -> tuple[str, str | None, str]:
    """``(typed, command, expansion)`` of a prompt as the API carries it: a slash
    command's ``<command-name>`` block followed by what it expanded to; any other
    prompt is ``(text, None, "")``. The tags come in any order; 1.0.x wrote the name
    without its slash and the expansion inline in ``<command-contents>``."""
    start = text.lstrip()
    name = _COMMAND.search(start) if start.startswith(COMMAND_TAGS) else None
    if name is None:
        return text, None, ""
    command = name.group(1) if name.group(1).startswith("/") else f"/{name.group(1)}"
    args = _COMMAND_ARGS.search(start)
    typed = f"{command} {args.group(1).strip() if args else ''}".strip()
    contents = _COMMAND_CONTENTS.search(start)
    if contents:
        return typed, command, contents.group(1).strip()
    tags = [m.end() for m in _COMMAND_TAG.finditer(start)]
    return typed, command, start[max(tags) :].strip()


@dataclass
class _Agent:
    """What one agent (the main one, or an inline subagent) said since its last call."""

    agent_id: str | None = None
    parent: str | None = None  # the Agent/Task call that started it (inline subagents)
    text: list[str] = field(default_factory=list)
    thinking: list[str] = field(default_factory=list)
    batches: dict[str, tuple[int, int]] = field(default_factory=dict)  # message -> (batch, next)


@dataclass
class _Turn:
    draft: TurnDraft
    main: _Agent = field(default_factory=_Agent)
    open_calls: set[str] = field(default_factory=set)  # tool uses still waiting for a result
    stop_reason: str | None = None  # of the main agent's last assistant message
    active: bool = False  # an assistant line was seen (a local command has none)
    side: dict[str, _Agent] = field(default_factory=dict)  # inline subagent line uuid -> agent

    def block(self, line: dict[str, Any], block: dict[str, Any], agent: _Agent) -> None:
        kind = block.get("type")
        if kind == "text":
            agent.text.append(_str(block.get("text")))
        elif kind == "thinking":
            agent.thinking.append(_str(block.get("thinking")))
        elif kind == "tool_use" and isinstance(block.get("id"), str):
            mid = str(_message(line).get("id") or line.get("uuid"))
            batch, index = agent.batches.get(mid, (len(agent.batches), 0))
            agent.batches[mid] = (batch, index + 1)
            call = self.draft.call(block["id"])
            call.tool = _str(block.get("name"))
            tool_input = block.get("input")
            call.args = tool_input if isinstance(tool_input, dict) else {}
            call.reasoning = "\n\n".join(t for t in agent.text if t.strip())
            call.thinking = "\n\n".join(t for t in agent.thinking if t.strip())
            call.message_id = mid
            call.batch, call.index = batch, index
            call.started_at = _ts(line.get("timestamp"))
            call.agent_id = agent.agent_id
            call.parent_tool_use_id = call.parent_tool_use_id or agent.parent
            agent.text, agent.thinking = [], []
            self.open_calls.add(block["id"])

    def result(self, line: dict[str, Any], block: dict[str, Any]) -> None:
        tool_use_id = block.get("tool_use_id")
        if not isinstance(tool_use_id, str):
            return
        self.open_calls.discard(tool_use_id)
        call = self.draft.call(tool_use_id)
        call.output = result_text(block.get("content"))
        call.ended_at = _ts(line.get("timestamp"))
        structured = line.get("toolUseResult")
        call.outcome = call_outcome(call.output, bool(block.get("is_error")))
        call.success = call.outcome == "success"
        call.is_interrupt = call.outcome == "interrupted"
        if not call.success:
            call.error = call.output or (structured if isinstance(structured, str) else "error")
        if isinstance(structured, dict | list):
            call.tool_response = structured

    def assistant(self, line: dict[str, Any], agent: _Agent) -> None:
        self.active = True
        message = _message(line)
        model = message.get("model")
        if isinstance(model, str) and model != "<synthetic>":
            self.draft.model = model
        for block in _blocks(message):
            self.block(line, block, agent)
        if agent is self.main:
            stop = message.get("stop_reason")
            self.stop_reason = stop if isinstance(stop, str) else self.stop_reason
            self.draft.ended_at = _ts(line.get("timestamp")) or self.draft.ended_at

    def notification(self, line: dict[str, Any], text: str) -> None:
        """A background task finished and the model is invoked again, in this turn: what it
        answered before is no longer the turn's answer."""
        tool_use_id = _TOOL_USE_ID.search(text)
        self.draft.events.append(
            {
                "kind": "task_notification",
                "text": text,
                "at": _ts(line.get("timestamp")),
                "tool_use_id": tool_use_id.group(1) if tool_use_id else None,
                "answer_before": "\n\n".join(t for t in self.main.text if t.strip()),
            }
        )
        self.main.text, self.main.thinking = [], []
        self.stop_reason = None

    def interrupt(self, line: dict[str, Any], text: str) -> None:
        """The user stopped the turn: calls still open were cut short by it."""
        self.draft.interrupted = True
        self.draft.events.append(
            {"kind": "interrupt", "text": text, "at": _ts(line.get("timestamp"))}
        )
        for tool_use_id in self.open_calls:
            call = self.draft.call(tool_use_id)
            call.outcome, call.success, call.is_interrupt = "interrupted", False, True
            call.error = call.error or text
        self.open_calls.clear()

    def answered(self) -> bool:
        """The model gave its final answer and waits for the user."""
        return self.stop_reason in FINAL_STOPS and not self.open_calls

    def finish(self) -> TurnDraft | None:
        """The finished draft; None for a command that the model never saw (a local one
        such as ``/clear`` or ``/compact``)."""
        if self.draft.command and not self.active:
            return None
        self.draft.response = "\n\n".join(t for t in self.main.text if t.strip())
        self.draft.final_thinking = "\n\n".join(t for t in self.main.thinking if t.strip())
        self.draft.complete = bool(self.draft.response)
        return self.draft


def _new_turn(line: dict[str, Any], user: UserLine) -> _Turn:
    def text(key: str) -> str | None:
        value = line.get(key)
        return value if isinstance(value, str) and value else None

    return _Turn(
        TurnDraft(
            source="transcript",
            prompt=user.text,
            prompt_id=text("promptId"),
            session_id=text("sessionId"),
            started_at=_ts(line.get("timestamp")),
            cwd=text("cwd"),
            git_branch=text("gitBranch"),
            version=text("version"),
            permission_mode=text("permissionMode"),
            command=user.command,
            expansion=user.expansion,
        )
    )


class TurnBuilder:
    """Turns of one transcript file, fed a line at a time.

    ``feed`` hands back the previous turn, finished, when a line starts the next one;
    ``close`` hands back the last. ``answered``/``ended`` tell whether the turn still
    open has reached its final answer / whether Claude Code exited after it.

    ``agent``: the file is a subagent's own transcript (every line is that agent's).
    """

    def __init__(self, agent: str | None = None) -> None:
        self.agent = agent
        self.current: _Turn | None = None
        self.ended = False  # a ``cost-state`` line (written at exit) followed the open turn

    def feed(
        self, line: dict[str, Any], problems: list[Problem] | None = None, where: str = ""
    ) -> TurnDraft | None:
        """Take one line; a line the reader cannot make sense of is reported in
        ``problems`` (``where``: its ``file:line``) and passed over, never raised."""
        try:
            return self._feed(line)
        except Exception as exc:  # noqa: BLE001 - one odd line must never stop a batch
            if problems is not None:
                path, _, number = where.rpartition(":")
                problems.append(
                    Problem(
                        Path(path), int(number or 0), f"unreadable: {type(exc).__name__}: {exc}"
                    )
                )
            return None

    def _feed(self, line: dict[str, Any]) -> TurnDraft | None:
        kind = line.get("type")
        if kind == "cost-state":
            self.ended = True
        elif kind == "user":
            if self.agent is None and line.get("isSidechain") is True:
                self._sidechain_user(line)
                return None
            return self._user(line)
        elif kind == "assistant":
            if self.current is None and self.agent is not None:
                # a subagent file may open with the agent's own message (2.0.x)
                self.current = _new_turn(line, UserLine("prompt"))
            if self.current is not None:
                self.current.assistant(line, self._agent_of(line))
        elif kind == "progress" and self.current and self.agent is None:
            self._progress(line)
        return None

    def _progress(self, line: dict[str, Any]) -> None:
        """2.1.x mirrors each subagent message in an ``agent_progress`` line: the
        fallback for a subagent whose own file is missing (the file, when read, wins)."""
        data = line.get("data")
        inner = data.get("message") if isinstance(data, dict) else None
        if not isinstance(data, dict) or data.get("type") != "agent_progress":
            return
        if not isinstance(inner, dict) or inner.get("type") not in ("user", "assistant"):
            return
        mirrored = {
            **inner,
            "isSidechain": True,
            "agentId": data.get("agentId"),
            "parentToolUseID": line.get("parentToolUseID"),
        }
        if inner.get("type") == "user":
            self._sidechain_user(mirrored)
        else:
            assert self.current is not None
            self.current.assistant(mirrored, self._sidechain(mirrored))

    def _user(self, line: dict[str, Any]) -> TurnDraft | None:
        user = user_line(line)
        turn = self.current
        if user.kind in ("prompt", "command"):
            done = self.close()
            self.current, self.ended = _new_turn(line, user), False
            return done
        if turn is None:
            return None
        if user.kind == "results":
            for block in _blocks(_message(line)):
                if block.get("type") == "tool_result":
                    turn.result(line, block)
        elif user.kind == "meta" and turn.draft.command and not turn.active:
            # the text a slash command or skill expands to: what the model received
            turn.draft.expansion = "\n\n".join(x for x in (turn.draft.expansion, user.text) if x)
        elif user.kind == "notification":
            turn.notification(line, user.text)
        elif user.kind == "interrupt":
            turn.interrupt(line, user.text)
        return None

    def _agent_of(self, line: dict[str, Any]) -> _Agent:
        assert self.current is not None
        if self.agent is not None:
            self.current.main.agent_id = self.agent
            return self.current.main
        if line.get("isSidechain") is True:
            return self._sidechain(line)
        return self.current.main

    # Older versions (1.0.x-2.0.x) wrote subagent lines inline, marked ``isSidechain``.
    # Each subagent's lines form a chain by ``parentUuid`` from a first user line that
    # holds the Task/Agent call's prompt; that is how they are told apart and linked.
    def _sidechain(self, line: dict[str, Any], prompt: str = "") -> _Agent:
        """The inline subagent a sidechain line belongs to: by its ``agentId`` where it
        has one, else by the ``parentUuid`` chain; a new one at a chain's first line."""
        assert self.current is not None
        turn = self.current
        aid, parent = line.get("agentId"), line.get("parentUuid")
        agent = turn.side.get(f"agent:{aid}") if isinstance(aid, str) and aid else None
        if agent is None and isinstance(parent, str):
            agent = turn.side.get(parent)
        if agent is None:
            agent = self._new_sidechain(line, prompt)
            if isinstance(aid, str) and aid:
                turn.side[f"agent:{aid}"] = agent
        uuid = line.get("uuid")
        if isinstance(uuid, str):
            turn.side[uuid] = agent
        return agent

    def _new_sidechain(self, line: dict[str, Any], prompt: str) -> _Agent:
        assert self.current is not None
        turn = self.current
        aid = line.get("agentId")
        uuid = _str(line.get("uuid"))
        given = line.get("parentToolUseID")
        if isinstance(given, str) and given:
            return _Agent(aid if isinstance(aid, str) and aid else f"progress-{given}", given)
        agent = _Agent(
            aid if isinstance(aid, str) and aid else f"inline-{uuid[:13] or len(turn.side)}"
        )
        linked = {a.parent for a in turn.side.values()}
        starts = [
            c
            for c in turn.draft.calls.values()
            if c.tool in AGENT_TOOLS
            and not c.agent_id
            and c.tool_use_id not in linked
            and c.tool_use_id in turn.open_calls  # a finished call starts no subagent
        ]
        agent.parent = next(
            (
                c.tool_use_id
                for c in starts
                if prompt and _str(c.args.get("prompt")).strip() == prompt.strip()
            ),
            starts[0].tool_use_id if len(starts) == 1 else None,
        )
        return agent

    def _sidechain_user(self, line: dict[str, Any]) -> None:
        turn = self.current
        if turn is None:
            return
        self._sidechain(line, _user_text(line) or "")
        for block in _blocks(_message(line)):
            if block.get("type") == "tool_result":
                turn.result(line, block)
                turn.open_calls.discard(_str(block.get("tool_use_id")))

    @property
    def answered(self) -> bool:
        return self.current is not None and self.current.answered()

    def close(self) -> TurnDraft | None:
        done = self.current.finish() if self.current else None
        self.current = None
        return done


def turns_from_lines(
    lines: Lines | Iterable[dict[str, Any]], agent: str | None = None
) -> list[TurnDraft]:
    """One draft per user prompt of one transcript file (a subagent file: its task).
    Given ``Lines``, a line that cannot be read is added to its problems."""
    builder = TurnBuilder(agent)
    if isinstance(lines, Lines):
        where = [f"{lines.path}:{n}" for n in lines.numbers]
        fed = (
            builder.feed(ln, lines.problems, w) for ln, w in zip(lines.lines, where, strict=True)
        )
    else:
        fed = (builder.feed(ln) for ln in lines)
    out = [t for t in fed if t is not None]
    last = builder.close()
    return out + [last] if last else out


# --- subagents ----------------------------------------------------------------------------


@dataclass
class Subagent:
    """One ``agent-<id>.jsonl`` of a session, with what its ``.meta.json`` says."""

    agent_id: str
    path: Path
    tool_use_id: str | None = None  # the Agent call that started it
    agent_type: str | None = None
    _prompt_id: str | None = field(default=None, repr=False)
    _prompt_read: bool = field(default=False, repr=False)

    @classmethod
    def at(cls, agent_id: str, path: Path) -> Subagent:
        meta: Any = {}
        meta_path = path.with_suffix(".meta.json")
        # older versions write no meta file: the Agent call's result links it then
        if _regular(meta_path):  # in the agent file's folder, so (not a link) nowhere else
            with suppress(OSError, ValueError):
                meta = parse_line(meta_path.read_bytes())
        meta = meta if isinstance(meta, dict) else {}
        tool_use_id, agent_type = meta.get("toolUseId"), meta.get("agentType")
        return cls(
            agent_id,
            path,
            tool_use_id if isinstance(tool_use_id, str) else None,
            agent_type if isinstance(agent_type, str) and agent_type else None,
        )

    def prompt_id(self) -> str | None:
        """The ``promptId`` of its first line that has one (read once, only as far as needed)."""
        if not self._prompt_read:
            self._prompt_read = True
            try:
                with self.path.open("rb") as fh:
                    for _, _, obj in iter_lines(fh, self.path, Cursor(), []):
                        if isinstance(obj.get("promptId"), str):
                            self._prompt_id = obj["promptId"]
                            break
            except OSError:
                pass
        return self._prompt_id

    def parent_in(self, turn: TurnDraft) -> CallDraft | None:
        """The Agent call of ``turn`` that started this subagent, if it is there."""
        if self.tool_use_id and self.tool_use_id in turn.calls:
            return turn.calls[self.tool_use_id]
        return next(
            (
                c
                for c in turn.calls.values()
                if c.tool in AGENT_TOOLS
                and isinstance(c.tool_response, dict)
                and c.tool_response.get("agentId") == self.agent_id
            ),
            None,
        )

    def belongs_to(self, turn: TurnDraft) -> bool:
        if self.parent_in(turn):
            return True
        return turn.prompt_id is not None and self.prompt_id() == turn.prompt_id


def _regular(path: Path) -> bool:
    """A regular file, not a link (that could lead anywhere)."""
    try:
        return stat.S_ISREG(os.lstat(path).st_mode)
    except OSError:
        return False


def subagent_files(transcript: Path) -> dict[str, Path]:
    """``agent-<id>.jsonl`` files next to a session transcript, by agent id: only files
    that are really in the transcript's folder (no link leads out of it)."""
    session = transcript.with_suffix("")
    folder = session / "subagents"
    try:
        # neither step down from the transcript's folder is a link, so the files in it
        # that are not links are inside that folder too
        if not all(stat.S_ISDIR(os.lstat(d).st_mode) for d in (session, folder)):
            return {}
    except OSError:
        return {}
    return {name[len("agent-") : -len(".jsonl")]: folder / name for name in _agent_names(folder)}


def _agent_names(folder: Path) -> list[str]:
    """The ``agent-*.jsonl`` files of a folder that are files, not links, sorted."""
    try:
        with os.scandir(folder) as entries:  # (no stat per file: a link is not a file)
            return sorted(
                e.name
                for e in entries
                if e.name.startswith("agent-")
                and e.name.endswith(".jsonl")
                and e.is_file(follow_symlinks=False)
            )
    except OSError:
        return []


def flat_agent_files(folder: Path) -> dict[str, dict[str, Path]]:
    """2.0.x wrote subagents as ``<project>/agent-<id>.jsonl`` beside the sessions: by
    parent session id (each line's ``sessionId``), by agent id. Cached per folder until
    the folder changes."""
    try:
        st = os.lstat(folder)
    except OSError:
        return {}
    key = (str(folder), st.st_mtime_ns, st.st_ino)
    cached = _flat_cache.get(str(folder))
    if cached is not None and cached[0] == key:
        return cached[1]
    found: dict[str, dict[str, Path]] = {}
    for name in _agent_names(folder):
        session = first_session_id(folder / name)
        if session:
            found.setdefault(session, {})[name[len("agent-") : -len(".jsonl")]] = folder / name
    _flat_cache[str(folder)] = (key, found)
    return found


_SAFE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,127}")
_flat_cache: dict[str, tuple[tuple[str, int, int], dict[str, dict[str, Path]]]] = {}


def first_session_id(path: Path) -> str | None:
    """The ``sessionId`` of a file's first line that has one (a few lines at most), if
    it is a plain id (it names a file: nothing that could climb out of a folder)."""
    try:
        with path.open("rb") as fh:
            for _, number, obj in iter_lines(fh, path, Cursor(), [], final=True):
                sid = obj.get("sessionId")
                if isinstance(sid, str) and sid:
                    return sid if _SAFE_ID.fullmatch(sid) else None
                if number >= 20:
                    break
    except OSError:
        pass
    return None


def is_agent_file(path: Path) -> bool:
    """A subagent's transcript (``agent-<id>.jsonl``), not a session of its own."""
    return path.name.startswith("agent-") and path.suffix == ".jsonl"


def subagents_of(transcript: Path, extra: dict[str, Path] | None = None) -> list[Subagent]:
    given = {aid: p for aid, p in (extra or {}).items() if p.is_file()}
    flat = flat_agent_files(transcript.parent).get(transcript.stem, {})
    found = {**flat, **subagent_files(transcript), **given}
    return [Subagent.at(aid, p) for aid, p in found.items()]


def add_subagent_calls(turn: TurnDraft, sub: Subagent, lines: list[dict[str, Any]]) -> None:
    """Put a subagent's calls into ``turn`` (the one whose Agent call started it)."""
    parent = sub.parent_in(turn)
    for draft in turns_from_lines(lines, sub.agent_id):
        for call in draft.calls.values():
            call.parent_tool_use_id = parent.tool_use_id if parent else None
            call.agent_type = call.agent_type or sub.agent_type
            turn.calls[call.tool_use_id] = call


def attach_subagents(
    turn: TurnDraft, subagents: list[Subagent], problems: list[Problem]
) -> list[Subagent]:
    """Attach every subagent that belongs to ``turn``; returns those attached."""
    attached = [s for s in subagents if s.belongs_to(turn)]
    for sub in attached:
        read = read_lines(sub.path, only_turns=True)  # only its turns are taken from it
        problems += read.problems
        add_subagent_calls(turn, sub, read.lines)
    return attached


def attach_subagent(turns: list[TurnDraft], agent_id: str, lines: list[dict[str, Any]]) -> None:
    """Put a subagent's calls (already read) into the turn whose Agent call started it."""
    sub = Subagent(agent_id, Path())
    prompt_ids = {ln.get("promptId") for ln in lines if ln.get("promptId")}
    for turn in turns:
        if sub.parent_in(turn) or turn.prompt_id in prompt_ids:
            add_subagent_calls(turn, sub, lines)
            return


def turns_from_transcript(
    path: Path, subagents: dict[str, Path] | None = None, final: bool = False
) -> tuple[list[TurnDraft], list[Problem]]:
    """Read a whole session transcript and its subagent transcripts into turn drafts;
    ``final``: the session is over (a last line without its newline is read too)."""
    main = read_lines(path, final=final)
    turns = turns_from_lines(main)
    problems = list(main.problems)
    subs = subagents_of(path, subagents)
    for turn in turns:
        for sub in attach_subagents(turn, subs, problems):
            subs.remove(sub)
    return turns, problems
