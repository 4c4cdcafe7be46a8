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

from capture.prefilter import Prefilter
from capture.store import Problem
from capture.turns import AGENT_TOOLS, CallDraft, TurnDraft

NOT_PROMPTS = (
    "<command-name>",
    "<local-command-stdout>",
    "<local-command-caveat>",
    "<command-message>",
    "[Request interrupted by user",
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
) -> Iterator[tuple[int, int, dict[str, Any]]]:
    """``(offset, line number, object)`` of each whole line from ``cursor`` on.

    ``cursor`` advances past every whole line (malformed ones are reported in
    ``problems``). A last line without its newline is left unread: it is either being
    written right now or torn, and the caller decides which.

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
            return
        start = cursor.offset
        cursor.offset += len(raw)
        cursor.line += 1
        if not wanted or raw.isspace():  # (strip() would copy every line)
            continue
        try:
            obj = parse_line(raw)
        except ValueError as exc:
            problems.append(Problem(path, cursor.line, f"malformed: {exc}"))
            continue
        if isinstance(obj, dict):
            yield start, cursor.line, obj


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


def read_lines(path: Path, only_turns: bool = False) -> Lines:
    """The JSON objects of a (small) transcript file; malformed and torn lines are
    reported. ``only_turns``: as for :func:`iter_lines`."""
    out = Lines()
    cursor = Cursor()
    with path.open("rb") as fh:
        lines = iter_lines(fh, path, cursor, out.problems, only_turns)
        out.lines = [obj for _, _, obj in lines]
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
    open_calls: set[str] = field(default_factory=set)  # tool uses still waiting for a result
    stop_reason: str | None = None  # of the last assistant message

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
            self.open_calls.add(block["id"])

    def result(self, line: dict[str, Any], block: dict[str, Any]) -> None:
        tool_use_id = str(block.get("tool_use_id"))
        self.open_calls.discard(tool_use_id)
        call = self.draft.call(tool_use_id)
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

    def assistant(self, line: dict[str, Any], agent: str | None) -> None:
        message = line.get("message") or {}
        if isinstance(message.get("model"), str) and message["model"] != "<synthetic>":
            self.draft.model = message["model"]
        for block in message.get("content") or []:
            if isinstance(block, dict):
                self.block(line, block, agent)
        stop = message.get("stop_reason")
        self.stop_reason = stop if isinstance(stop, str) else self.stop_reason
        self.draft.ended_at = _ts(line.get("timestamp")) or self.draft.ended_at

    def answered(self) -> bool:
        """The model gave its final answer and waits for the user."""
        return self.stop_reason in FINAL_STOPS and not self.open_calls

    def finish(self) -> TurnDraft:
        self.draft.response = "\n\n".join(t for t in self.text if t.strip())
        self.draft.complete = bool(self.draft.response)
        return self.draft


def _new_turn(line: dict[str, Any], prompt: str) -> _Turn:
    return _Turn(
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


class TurnBuilder:
    """Turns of one transcript file, fed a line at a time.

    ``feed`` hands back the previous turn, finished, when a line starts the next one;
    ``close`` hands back the last. ``answered``/``ended`` tell whether the turn still
    open has reached its final answer / whether Claude Code exited after it.
    """

    def __init__(self, agent: str | None = None) -> None:
        self.agent = agent
        self.current: _Turn | None = None
        self.ended = False  # a ``cost-state`` line (written at exit) followed the open turn

    def feed(self, line: dict[str, Any]) -> TurnDraft | None:
        kind = line.get("type")
        if self.agent is None and line.get("isSidechain"):
            return None  # older versions wrote subagent lines inline; they are not this turn's
        if kind == "cost-state":
            self.ended = True
        if kind == "user":
            prompt = _prompt_text(line)
            if prompt is not None:
                done = self.close()
                self.current, self.ended = _new_turn(line, prompt), False
                return done
            content = (line.get("message") or {}).get("content")
            if self.current and isinstance(content, list):
                for block in content:
                    if isinstance(block, dict) and block.get("type") == "tool_result":
                        self.current.result(line, block)
        elif kind == "assistant" and self.current:
            self.current.assistant(line, self.agent)
        return None

    @property
    def answered(self) -> bool:
        return self.current is not None and self.current.answered()

    def close(self) -> TurnDraft | None:
        done = self.current.finish() if self.current else None
        self.current = None
        return done


def turns_from_lines(lines: Iterable[dict[str, Any]], agent: str | None = None) -> list[TurnDraft]:
    """One draft per user prompt of one transcript file (a subagent file: its task)."""
    builder = TurnBuilder(agent)
    out = [t for line in lines if (t := builder.feed(line)) is not None]
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
        with os.scandir(folder) as entries:  # (no stat per file: a link is not a file)
            names = sorted(
                e.name
                for e in entries
                if e.name.startswith("agent-")
                and e.name.endswith(".jsonl")
                and e.is_file(follow_symlinks=False)
            )
    except OSError:
        return {}
    return {name[len("agent-") : -len(".jsonl")]: folder / name for name in names}


def subagents_of(transcript: Path, extra: dict[str, Path] | None = None) -> list[Subagent]:
    given = {aid: p for aid, p in (extra or {}).items() if p.is_file()}
    found = {**subagent_files(transcript), **given}
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
    path: Path, subagents: dict[str, Path] | None = None
) -> tuple[list[TurnDraft], list[Problem]]:
    """Read a whole session transcript and its subagent transcripts into turn drafts."""
    main = read_lines(path)
    turns = turns_from_lines(main.lines)
    problems = list(main.problems)
    subs = subagents_of(path, subagents)
    for turn in turns:
        for sub in attach_subagents(turn, subs, problems):
            subs.remove(sub)
    return turns, problems
