"""The behavioural reward: did the model design the same workflow as Claude?

A model's attempt at a captured prompt (its tool calls, the text around them and its final
answer, as a ``ClaudeTrace``) is compared with Claude's trace of the same prompt on five
components, each a similarity in [0, 1]; their weighted sum ``s`` maps to the reward
``2 * s - 1`` in [-1, 1] (identical workflows score 1)::

    constraints      25%  the same limitations noticed (soft F1 of the detected constraints)
    tools            30%  the same tools in a similar order, with similar arguments
    self_correction  15%  recovering as often as Claude did
    outcome          20%  the same final answer, and the same edits to the same files
    depth            10%  as many steps of exploration before answering

Absence matches absence only as far as the work was done: when neither side states a
constraint (or neither recovers from anything), that component scores the closeness of the
two call counts rather than 1, so doing nothing never earns the constraint and correction
shares a model earns by acting like Claude.

Guards against reward hacking: output whose tool calls cannot be parsed scores -1 outright;
sequence distances are normalised by the *longer* sequence, so padding or truncating a
workflow never pays; constraint and correction matches are F1/ratio scores, so spamming cue
phrases costs precision; and :class:`BehavioralRewardModel` keeps the top-scored samples of
a run for a human to audit (``write_audit``).

Speed (``benchmarks/bench_reward.py``): everything a reference needs is computed once
(:func:`features`), texts are compared on bounded heads and tails, and tool sequences are
compared as strings of one character per tool name, which rapidfuzz handles bit-parallel.
"""

from __future__ import annotations

import heapq
import json
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rapidfuzz.distance import Indel, Levenshtein

from claude_bc.capture.redact import redact
from claude_bc.capture.schema import ClaudeTrace, ReasoningSignals
from claude_bc.capture.signals import extract_signals
from claude_bc.training.replay import candidate_trace, parse_turn

WEIGHTS: Mapping[str, float] = {
    "constraints": 0.25,
    "tools": 0.30,
    "self_correction": 0.15,
    "outcome": 0.20,
    "depth": 0.10,
}
COMPONENTS = tuple(WEIGHTS)
_WEIGHTED = tuple(WEIGHTS.items())

# Two unrelated English sentences share roughly a third of their characters in order; below
# this a constraint or correction pair is noise, not a match.
MATCH_FLOOR = 0.5
TEXT_CAP = 192  # characters kept from each end of a long text (answers, diffs)
ARGS_CAP = 64  # the same for a call's arguments: paths and commands differ early or late
ARGS_WEIGHT = 1 / 3  # share of argument similarity inside the tool-alignment component
EDIT_TOOLS = frozenset({"Edit", "MultiEdit", "Write", "NotebookEdit"})
_SPACE = re.compile(r"\s+")
_TOOL_CODES: dict[str, str] = {}


def norm_text(text: str, cap: int = TEXT_CAP) -> str:
    """Lower-cased, whitespace-collapsed, and cut to its head and tail when long.

    >>> norm_text("  All   Tests\\nPASS ")
    'all tests pass'
    >>> norm_text("abcdefgh", cap=2)
    'ab…gh'
    """
    text = _SPACE.sub(" ", text).strip().lower()
    return text if len(text) <= 2 * cap else f"{text[:cap]}…{text[-cap:]}"


def tool_code(name: str) -> str:
    """One character per tool name, so a tool sequence is a short string for rapidfuzz.

    >>> tool_code("Read") == tool_code("Read") != tool_code("Grep")
    True
    """
    code = _TOOL_CODES.get(name)
    if code is None:
        code = _TOOL_CODES.setdefault(name, chr(0x4E00 + len(_TOOL_CODES)))
    return code


def args_text(args: Mapping[str, Any]) -> str:
    """Canonical text of a call's arguments: keys sorted, so key order never matters.

    >>> args_text({"b": 1, "a": "x"})
    '{"a":"x","b":1}'
    """
    text = json.dumps(args, sort_keys=True, separators=(",", ":"), default=str)
    return norm_text(text, cap=ARGS_CAP)


def edit_text(tool: str, args: Mapping[str, Any]) -> str:
    """What an editing call changes, as a small diff: removed lines ``-``, added ``+``.

    >>> edit_text("Edit", {"file_path": "a.py", "old_string": "x = 1", "new_string": "x = 2"})
    '-x = 1\\n+x = 2'
    """
    if tool == "MultiEdit":
        parts = [edit_text("Edit", e) for e in args.get("edits", []) if isinstance(e, dict)]
        return "\n".join(parts)
    old = str(args.get("old_string", args.get("old_source", "")))
    new = str(args.get("new_string", args.get("content", args.get("new_source", ""))))
    minus = [f"-{line}" for line in old.splitlines()]
    plus = [f"+{line}" for line in new.splitlines()]
    return "\n".join(minus + plus)


# --- the five components -----------------------------------------------------------------------


def text_similarity(a: str, b: str) -> float:
    """Indel similarity (rapidfuzz) of two already normalised texts, in [0, 1].

    >>> text_similarity("read the file", "read the file")
    1.0
    >>> round(text_similarity("abcd", "abxy"), 2)
    0.5
    """
    return float(Indel.normalized_similarity(a, b))


def soft_f1(got: Sequence[str], want: Sequence[str]) -> float:
    """F1 of fuzzy matches between two lists of normalised sentences; both empty → 1.

    Each sentence's match is its best similarity on the other side, zero below
    ``MATCH_FLOOR``. Listing extra sentences lowers precision, missing ones lower recall.

    >>> soft_f1(["no network access"], ["no network access"])
    1.0
    >>> soft_f1([], [])
    1.0
    >>> soft_f1(["keep the public api"], [])
    0.0
    >>> soft_f1(["no network access", "python 3.8 only"], ["no network access"])
    0.6666666666666666
    """
    if not got and not want:
        return 1.0
    if not got or not want:
        return 0.0
    best_got = [0.0] * len(got)
    best_want = [0.0] * len(want)
    for i, g in enumerate(got):
        for j, w in enumerate(want):
            sim = Indel.normalized_similarity(g, w, score_cutoff=MATCH_FLOOR)
            best_got[i] = max(best_got[i], sim)
            best_want[j] = max(best_want[j], sim)
    precision = sum(best_got) / len(got)
    recall = sum(best_want) / len(want)
    return 0.0 if precision + recall == 0 else 2 * precision * recall / (precision + recall)


def constraint_match(got: Sequence[str], want: Sequence[str]) -> float:
    """Did the model notice the same constraints as Claude? Soft F1 of the two lists.

    >>> constraint_match(["must not change the public api"], ["must not change the public api"])
    1.0
    >>> constraint_match([], ["the sandbox has no network access"])
    0.0
    """
    return soft_f1(got, want)


def tool_alignment(
    got_tools: str, want_tools: str, got_args: Sequence[str], want_args: Sequence[str]
) -> float:
    """Same tools in a similar order, with similar arguments; both empty → 1.

    ``*_tools`` are tool sequences as :func:`tool_code` strings, ``*_args`` the
    :func:`args_text` of each call. Two thirds of the score is the Levenshtein similarity
    of the sequences (normalised by the longer one); one third is the argument
    similarity of the calls the alignment pairs up, summed and divided by the longer
    length too, so extra or missing calls never raise it.

    >>> r, g, e = tool_code("Read"), tool_code("Grep"), tool_code("Edit")
    >>> tool_alignment(r + e, r + e, ['{"f":"a"}', '{"f":"b"}'], ['{"f":"a"}', '{"f":"b"}'])
    1.0
    >>> round(tool_alignment(r + e, r + g + e, ["x", "y"], ["x", "z", "y"]), 4)
    0.6667
    >>> tool_alignment("", "", [], [])
    1.0
    """
    longer = max(len(got_tools), len(want_tools))
    if longer == 0:
        return 1.0
    seq = float(Levenshtein.normalized_similarity(got_tools, want_tools))
    if seq == 0.0:
        return 0.0
    if got_tools == want_tools:  # the common case in a converged policy: calls pair in order
        pairs: Iterable[tuple[str, str]] = zip(got_args, want_args, strict=True)
    else:
        pairs = [
            (got_args[block.a + k], want_args[block.b + k])
            for block in Levenshtein.editops(got_tools, want_tools).as_matching_blocks()
            for k in range(block.size)
        ]
    paired = sum(1.0 if a == b else Indel.normalized_similarity(a, b) for a, b in pairs)
    return (1 - ARGS_WEIGHT) * seq + ARGS_WEIGHT * paired / longer


def count_match(got: int, want: int) -> float:
    """Closeness of two counts: ``min / max``; both zero → 1.

    >>> count_match(2, 4)
    0.5
    >>> count_match(0, 0)
    1.0
    >>> count_match(3, 0)
    0.0
    """
    if got == want:
        return 1.0
    return min(got, want) / max(got, want)


def self_correction_match(got: int, want: int) -> float:
    """Did the model recover like Claude? Compares the number of recoveries.

    A recovery is a self-correction in the text ("actually, let me read it first") or a
    failed call retried with the same tool. Never recovering when Claude did, and
    recovering (or claiming to) far more often, both score low.

    >>> self_correction_match(1, 1)
    1.0
    >>> self_correction_match(0, 2)
    0.0
    """
    return count_match(got, want)


def outcome_match(
    got_answer: str, want_answer: str, got_edits: Mapping[str, str], want_edits: Mapping[str, str]
) -> float:
    """Same final result: answer similarity, and a diff comparison when files were edited.

    ``*_edits`` map each edited file to its :func:`edit_text`. Without edits on either
    side the score is the answer similarity; otherwise it is half answer, half the mean
    diff similarity over every file either side edited (a file edited by one side only
    scores 0).

    >>> outcome_match("done", "done", {}, {})
    1.0
    >>> outcome_match("done", "done", {"a.py": "+x = 2"}, {"a.py": "+x = 2", "b.py": "+y"})
    0.75
    """
    answer = text_similarity(got_answer, want_answer)
    if not got_edits and not want_edits:
        return answer
    files = got_edits.keys() | want_edits.keys()
    diffs = sum(
        text_similarity(got_edits[f], want_edits[f]) if f in got_edits and f in want_edits else 0.0
        for f in files
    )
    return 0.5 * answer + 0.5 * diffs / len(files)


def depth_match(got_steps: int, want_steps: int) -> float:
    """Explored about as much before answering? ``min / max`` of the step counts.

    >>> depth_match(3, 6)
    0.5
    """
    return count_match(got_steps, want_steps)


def combine(components: Mapping[str, float]) -> float:
    """The reward in [-1, 1] from the five components in [0, 1], with ``WEIGHTS``.

    >>> combine(dict.fromkeys(COMPONENTS, 1.0))
    1.0
    >>> combine(dict.fromkeys(COMPONENTS, 0.0))
    -1.0
    >>> round(combine({"constraints": 1, "tools": 1, "self_correction": 0, "outcome": 0,
    ...                "depth": 0}), 2)
    0.1
    """
    total = sum(w * components[name] for name, w in _WEIGHTED)
    return max(-1.0, min(1.0, 2.0 * total - 1.0))


# --- features: what the components read, computed once per trace ------------------------------


@dataclass(frozen=True, slots=True)
class Features:
    """The cheap, comparable view of one workflow (a reference or a model's attempt)."""

    tools: str  # tool_code string of the main agent's calls
    args: tuple[str, ...]
    constraints: tuple[str, ...]
    recoveries: int
    answer: str
    edits: Mapping[str, str]
    steps: int
    tool_names: tuple[str, ...] = ()


def _retries(trace: ClaudeTrace) -> int:
    calls = [c for c in trace.tool_calls if not c.agent_id]
    return sum(
        1
        for before, after in zip(calls, calls[1:], strict=False)
        if not before.success and after.tool == before.tool
    )


def features(trace: ClaudeTrace, signals: ReasoningSignals | None = None) -> Features:
    """Extract what the reward compares; ``signals`` default to ``extract_signals(trace)``.

    >>> from claude_bc.capture.schema import ToolCall
    >>> t = ClaudeTrace(trace_id="t", user_prompt="fix it", claude_response="Fixed.",
    ...                 tool_calls=[ToolCall(tool="Read", args={"file_path": "a.py"})])
    >>> f = features(t)
    >>> (f.tool_names, f.answer, f.steps)
    (('Read',), 'fixed.', 2)
    """
    sig = signals if signals is not None else extract_signals(trace)
    main = [c for c in trace.tool_calls if not c.agent_id]
    edits: dict[str, str] = {}
    for c in main:
        if c.tool in EDIT_TOOLS:
            path = str(c.args.get("file_path", c.args.get("notebook_path", "")))
            edits[path] = norm_text(f"{edits.get(path, '')}\n{edit_text(c.tool, c.args)}".strip())
    return Features(
        tools="".join(tool_code(c.tool) for c in main),
        args=tuple(args_text(c.args) for c in main),
        constraints=tuple(norm_text(s) for s in sig.constraints_detected),
        recoveries=len(sig.self_corrections) + _retries(trace),
        answer=norm_text(trace.claude_response),
        edits=edits,
        steps=sig.reasoning_steps,
        tool_names=tuple(c.tool for c in main),
    )


@dataclass(frozen=True, slots=True)
class Reward:
    """One score: the total in [-1, 1], each component in [0, 1], and whether it parsed."""

    total: float
    components: Mapping[str, float]
    parsed: bool = True

    def breakdown(self) -> dict[str, float]:
        return {"total": self.total, **self.components}


UNPARSABLE = Reward(-1.0, dict.fromkeys(COMPONENTS, 0.0), parsed=False)


def score(got: Features, want: Features) -> Reward:
    """Compare a model's workflow with Claude's; the reward with its breakdown.

    >>> from claude_bc.capture.schema import ToolCall
    >>> t = ClaudeTrace(trace_id="t", user_prompt="p", claude_response="ok",
    ...                 tool_calls=[ToolCall(tool="Bash", args={"command": "ls"})])
    >>> score(features(t), features(t)).total
    1.0
    """
    # Noticing no constraint and needing no recovery match Claude only as far as the work
    # was done: otherwise a model that makes no call at all beats one that acts and slips.
    engaged = count_match(len(got.tools), len(want.tools))
    if got.constraints or want.constraints:
        constraints = constraint_match(got.constraints, want.constraints)
    else:
        constraints = engaged
    if got.recoveries or want.recoveries:
        recovery = self_correction_match(got.recoveries, want.recoveries)
    else:
        recovery = engaged
    tools = tool_alignment(got.tools, want.tools, got.args, want.args)
    outcome = outcome_match(got.answer, want.answer, got.edits, want.edits)
    depth = depth_match(got.steps, want.steps)
    # the weighted sum written out: this runs for every sampled episode (see the benchmark)
    total = 0.25 * constraints + 0.30 * tools + 0.15 * recovery + 0.20 * outcome + 0.10 * depth
    components = {
        "constraints": constraints,
        "tools": tools,
        "self_correction": recovery,
        "outcome": outcome,
        "depth": depth,
    }
    return Reward(max(-1.0, min(1.0, 2.0 * total - 1.0)), components)


def reward(candidate: ClaudeTrace | None, reference: ClaudeTrace) -> Reward:
    """The reward of a model's trace against Claude's; ``None`` (unparsable output) is -1.

    >>> t = ClaudeTrace(trace_id="t", user_prompt="p", claude_response="ok")
    >>> reward(t, t).total, reward(None, t).total
    (1.0, -1.0)
    """
    if candidate is None:
        return UNPARSABLE
    return score(features(candidate), features(reference))


# --- the model over a set of references, with the audit trail ----------------------------------


@dataclass(order=True)
class AuditSample:
    """A scored sample kept for audit: high rewards are where reward hacking shows first."""

    total: float
    seq: int
    trace_id: str = field(compare=False)
    completion: str = field(compare=False)
    components: dict[str, float] = field(compare=False)

    def record(self) -> dict[str, Any]:
        return {
            "reward": self.total,
            "trace_id": self.trace_id,
            "components": self.components,
            "completion": self.completion,
        }


Parser = Callable[[str, ClaudeTrace], ClaudeTrace | None]


def parse_completion(completion: str, reference: ClaudeTrace) -> ClaudeTrace | None:
    """One generated assistant turn as a candidate trace; ``None`` if its calls are malformed.

    >>> ref = ClaudeTrace(trace_id="t", user_prompt="p")
    >>> parse_completion('<|python_tag|>{"name": "Read", "parameters": {}}', ref).tool_calls[0].tool
    'Read'
    >>> parse_completion('<|python_tag|>{"name": Read}', ref) is None
    True
    """
    turn = parse_turn(completion)
    return None if turn is None else candidate_trace(reference, [turn])


class BehavioralRewardModel:
    """Scores model outputs against Claude's traces, keeping the top samples for audit.

    ``references`` are Claude's traces, looked up by ``trace_id``; their features are
    computed once. ``parse`` turns a completion (model output text) into a candidate
    trace for a reference, or ``None`` when its tool calls cannot be parsed (default:
    :func:`parse_completion`, one assistant turn in the training template's format).

    It is also a TRL reward function: ``model(prompts=..., completions=...,
    trace_id=[...])`` returns one float per completion (the ``trace_id`` column of the
    RL dataset names each prompt's reference). When the rollout already built the
    candidate trace (a multi-step replay episode), it comes as the ``candidate`` column,
    a trace record or ``None``.
    """

    __name__ = "behavioral_reward"  # TRL logs reward functions by name

    def __init__(
        self,
        references: Iterable[ClaudeTrace],
        parse: Parser | None = None,
        audit_top: int = 20,
    ) -> None:
        self.references = {t.trace_id: t for t in references}
        self._features = {tid: features(t) for tid, t in self.references.items()}
        self._parse = parse or parse_completion
        self.audit_top = audit_top
        self._top: list[AuditSample] = []
        self._seq = 0
        self.history: list[float] = []

    def reference_features(self, trace_id: str) -> Features:
        try:
            return self._features[trace_id]
        except KeyError:
            raise KeyError(f"no reference trace {trace_id!r}") from None

    def score_trace(self, candidate: ClaudeTrace | None, trace_id: str) -> Reward:
        """Reward of an already built candidate trace (``None``: unparsable)."""
        want = self.reference_features(trace_id)
        return UNPARSABLE if candidate is None else score(features(candidate), want)

    def score_text(self, completion: str, trace_id: str) -> Reward:
        """Reward of a completion's text against the reference ``trace_id``; audited."""
        candidate = self._parse(completion, self.references[trace_id])
        result = self.score_trace(candidate, trace_id)
        self.audit(result, trace_id, completion)
        return result

    def audit(self, result: Reward, trace_id: str, completion: str) -> None:
        """Remember the sample if it is among the ``audit_top`` best of this run."""
        self.history.append(result.total)
        self._seq += 1
        item = AuditSample(result.total, self._seq, trace_id, completion, dict(result.components))
        if len(self._top) < self.audit_top:
            heapq.heappush(self._top, item)
        elif item > self._top[0]:
            heapq.heapreplace(self._top, item)

    @property
    def top_samples(self) -> list[AuditSample]:
        return sorted(self._top, reverse=True)

    def write_audit(self, path: Path) -> Path:
        """Write the top-scored samples as JSONL, best first."""
        path.parent.mkdir(parents=True, exist_ok=True)
        # model output can echo anything it saw in training: redact it like any capture
        lines = [json.dumps(redact(s.record()), ensure_ascii=False) for s in self.top_samples]
        path.write_text("".join(f"{line}\n" for line in lines))
        return path

    def __call__(
        self, prompts: Sequence[Any], completions: Sequence[Any], **columns: Any
    ) -> list[float]:
        ids = columns.get("trace_id")
        if ids is None:
            raise ValueError("the RL dataset needs a trace_id column naming each reference")
        built = columns.get("candidate")
        if built is None:
            return [
                self.score_text(_completion_text(c), tid).total
                for c, tid in zip(completions, ids, strict=True)
            ]
        # the rollout's own text keeps the special tokens that TRL's decoding drops
        texts = columns.get("completion_text") or [_completion_text(c) for c in completions]
        totals = []
        for text, tid, record in zip(texts, ids, built, strict=True):
            candidate = None if record is None else ClaudeTrace.model_validate(record)
            result = self.score_trace(candidate, tid)
            self.audit(result, tid, text)
            totals.append(result.total)
        return totals


def _completion_text(completion: Any) -> str:
    """TRL passes plain strings, or message lists for conversational datasets."""
    if isinstance(completion, str):
        return completion
    return "".join(str(m.get("content") or "") for m in completion if isinstance(m, dict))
