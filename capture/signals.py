"""Reasoning signals and categories of a trace: pure functions, run at assembly.

``extract_signals(trace)`` (what ``capture.turns`` calls for every assembled turn, and
``bc-capture reextract`` for every stored one) returns the trace's ``ReasoningSignals``:

* from structure: ``tool_sequence`` (main agent), ``reasoning_steps`` (calls + the answer),
  ``exploration_depth`` (every call, subagents' too: minimal 1-2, moderate 3-5, thorough 6-9,
  exhaustive 10+), ``used_terminal``, ``workflow_type`` (parallel > iterative > exploratory >
  linear), and self-corrections seen as a failed call retried with changed input;
* from the text: every reasoning, thinking and answer block goes through :func:`classify`
  (the cues, a small trained model in ``capture.signal_model`` and the guideline's textbook
  phrasings, reading the tool result before the block): ``constraints_detected``,
  ``pruning_decisions``, ``self_corrections``, ``explicit_plan``;
* ``reasoning_chain`` (the sentences of the text before each call), ``multi_step_reasoning``;
* ``categories``: the seven of :class:`capture.schema.Category`, assigned from the prompt,
  the calls and the signals.

It runs in the hook worker after every turn, so the regexes are compiled once, each cue
is one alternation searched per sentence (after one search for any cue, or for bulk work
one Hyperscan scan: ``use_prefilter``), the model is a dict lookup per feature, and the
text read per trace is bounded (``MAX_SEGMENT`` per text, ``MAX_TEXT`` in all): a huge
trace costs no more than a big one. A labelled corpus of real Claude Code text (labels in
``tests/fixtures/signals/``; the texts are rebuilt locally by ``scripts/signals-corpus``)
measures precision and recall; ``scripts/train-signals`` trains the model.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from contextlib import suppress
from typing import Final, NamedTuple

from claude_bc.capture import signal_model
from claude_bc.capture.prefilter import Prefilter
from claude_bc.capture.schema import (
    Category,
    ClaudeTrace,
    ExplorationDepth,
    ReasoningSignals,
    ToolCall,
    WorkflowType,
)

TERMINAL_TOOLS = frozenset({"Bash", "BashOutput", "KillShell", "PowerShell"})
EXPLORE_TOOLS = frozenset(
    {"Read", "Grep", "Glob", "LS", "WebFetch", "WebSearch", "NotebookRead", "ListMcpResources"}
)
EDIT_TOOLS = frozenset({"Edit", "MultiEdit", "Write", "NotebookEdit"})
AGENT_TOOLS = frozenset({"Agent", "Task"})

MAX_SEGMENT = 6_000  # characters scanned of one text (a reasoning, a thinking, the answer)
MAX_TEXT = 32_000  # characters scanned of one trace in all (~100 ms of matching, worst case)
MAX_SENTENCE = 600  # longer "sentences" are code or logs: only their start is matched
MAX_ITEMS = 20  # entries kept per signal list
MAX_ITEM_CHARS = 300

# --- text cues -------------------------------------------------------------------------------

_I = re.IGNORECASE
# The cue patterns are lowercase and see lowercased text: IGNORECASE is 1.5-3x slower here.
_CUE = re.NOFLAG
_SENTENCE = re.compile(r"(?<=[.!?])\s+(?=\S)|\n+")
_INLINE_CODE = re.compile(r"`[^`\n]{0,200}`")
_FENCE = re.compile(r"```.*?(?:```|\Z)", re.DOTALL)
_NEG = r"(?:can't|cannot|can not|mustn't|must not|shouldn't|should not|may not|not allowed to)"
_HARM = r"(?:break\w*|chang\w*|touch\w*|affect\w*|modif\w*|los\w*|alter\w*|drop\w*)"

_CONSTRAINT_PARTS: Final = (
    rf"\b{_NEG}\s+(?!find|see|tell|locate|reproduce|figure|seem|wait|think|say)\w+",
    r"\b(?:isn't|not|aren't) (?:usable|supported|allowed|permitted|an option for us)\b"
    r"|\bcan't be (?:used|changed|modified)\b",
    r"\bonly (?:ships|has|have|supports|allows|works|runs|accepts)\b",
    r"\b(?:time limit|deadline|memory is tight|out of memory|tight on)\b"
    r"|\bwithin (?:the )?\d+",
    r"\bwould (?:invalidate|corrupt|break|wipe)\b",
    r"\bnot on (?:the )?path\b|\bcommand not found\b",
    r"\bavoid\b[^.]{0,80}\b(?:since|because|as)\b",
    r"\b(?:per|according to) the (?:contributing|style|coding) (?:guide|rules)\b"
    r"|\bper the (?:spec|requirements|guidelines|policy)\b",
    rf"\bwithout {_HARM}",
    r"\bbackwards?[- ]compat",
    r"\b(?:must|has to|have to|needs? to)\s+(?:\w+\s+){0,2}?(?:stay|remain|keep|be kept"
    r"|preserve|be preserved|match|pass|be compatible|work with|support|run on)\b",
    r"\b(?:preserve|keep|keeping|kept|maintain|leave|left)\b[^.;]{0,60}\b(?:unchanged"
    r"|intact|as is|the same|compatib\w*|existing|public api|signature|minimal)\b",
    r"\b(?:(?:must|need to|needs to|have to|has to|should|careful to|want to) avoid"
    r"|careful not to|be careful|make sure not to|so as not to|keep in mind"
    r"|bear in mind)\b",
    r"\b(?:read[- ]only|no (?:network|internet)|(?:don't|do not|doesn't|does not) have"
    r" (?:permission|access|root|sudo|write access|network)|permission denied"
    r"|no (?:write )?(?:permission|access)\b|(?:not|isn't|aren't) (?:installed|available)"
    r"|unavailable)",
    r"\b(?:rate[- ]limit\w*|limited to|capped at|at most \d|no more than|quota)\b",
    r"\b(?:requires?|relies on|rely on|depends on|pins it|(?:is|are) pinned)\b",
    r"\bthe user (?:said|asked|wants|requested|explicitly|specified)\b[^.]{0,40}"
    r"\b(?:not|only|keep|minimal|without|don't|never|must)\b",
    r"\b(?:(?:doesn't|does not|don't|won't) support|not supported|unsupported)\b",
    r"\b(?:the|one|a|main|key|hard|big) (?:constraint|limitation|restriction)"
    r" (?:is|here)\b",
    r"\b(?:isn't|is not|not|aren't) (?:feasible|possible|practical|viable)\b"
    r"|\bforbid\w*|\bprohibit\w*|\bdisallow\w*|\bpinned (?:to|at)\b"
    r"|\brul(?:e|es|ed) out\b",
    r",? so (?:i|we) (?:won't|can't|cannot|must|have to|need to)\b"
    r"|,? so [^.]{0,40}\b(?:has to|have to|must|isn't feasible|can't|cannot)\b",
)
CONSTRAINT = re.compile("|".join(_CONSTRAINT_PARTS), _CUE)

_PRUNING_PARTS: Final = (
    r"\b(?:could|would|might)\b[^.;]{0,80}\bbut\b",
    r"\b(?:considered|thought about|was going to|weighed)\b",
    r"\brather than\b",
    r"\binstead of\b(?=.*\b(?:i'll|i will|let me|let's|we'll|i'd|i'm going to|we should"
    r"|better|safer|simpler)\b)",
    r"\b(?:i'll|i will|let me|we'll)\b.*\binstead of\b",
    r"\b(?:no need to|not necessary|unnecessary|don't need to|overkill|not worth"
    r"|not an option|ruled? out|won't work|wouldn't work|would not work"
    r"|too (?:risky|slow|long|complex|complicated|invasive|expensive|fragile|much))\b",
    r"\bwould\b[^.;]{0,40}\b(?:hide|break|blow|fragile|slow|overkill|hit|miss|lose|mask"
    r"|leak|conflict|complicate)\w*",
    r"\b(?:option [ab12]|alternatively|another option|one option|the alternative"
    r"|(?:two|three|several|a few) (?:ways|options|approaches))\b",
    r"\b(?:tempting|not warranted|isn't warranted|isn't needed|not needed|is enough"
    r"|suffices|that's out|off the table)\b|^skipping\b|\b(?:i'll|let's) skip\b",
    r"\bwould be (?:harder|worse|slower|messier|riskier|uglier|overkill|more (?:complex"
    r"|fragile|error-prone|work|code)|less (?:readable|safe|clear|robust))\b",
    r"\b(?:won't|wouldn't|doesn't|will not|would not) help\b|\bno point\b|\bpointless\b",
    r"\bwould\b[^.;]{0,40}\b(?:hammer|overload|flood|swallow|clobber|overwrit\w*"
    r"|take ages|take forever)",
    r"\bso (?:i'll|we'll|i will|let's)\b[^.]{0,60}\binstead\b|\brul(?:e|es|ed) out\b",
    r"\b(?:opted|chose|picked|went with)\b[^.]{0,60}\b(?:over|instead of|rather than)\b",
    r"\bbut\b[^.]{0,80}\b(?:safer|simpler|cleaner|easier|clearer|better|less risky)\b"
    r"|;[^.;]{0,60}\b(?:is|are) (?:safer|simpler|cleaner|easier|clearer|better)\b",
    r"\bwould\b[^.;]{0,40}\b(?:invalidate|corrupt|wipe)\w*",
)
PRUNING = re.compile("|".join(_PRUNING_PARTS), _CUE)

_CORRECTION_PARTS: Final = (
    r"^(?:actually|wait\b,?|hmm+|oops|whoops|nope|hold on|correction|on second thought"
    r"|scratch that|no wait|my bad)\b(?! times)",
    r"\b(?:backwards|the wrong way round|mixed up|was off|was incorrect|misremembered"
    r"|misjudged|jumped to (?:a )?conclusions?|mangled|clobbered)\b",
    r"\brestor(?:e|ing) (?:it|the \w+) from git\b|\bsame (?:traceback|failure)\b"
    r"|^(?:that's|this is|that is) [^.,]{1,40}, not\b",
    r"\b(?:i was wrong|i was mistaken|my mistake|i made a mistake|i misread"
    r"|i misunderstood|i missed|i overlooked|i forgot|wrong assumption|was wrong)\b",
    r"\b(?:my (?:previous|earlier|first|last)|the (?:previous|earlier)) (?:fix|attempt"
    r"|edit|change|command|query|search|grep|approach|try|pattern|guess|patch|run)\b",
    r"\b(?:was|were) too (?:narrow|broad|strict|loose|specific|general)\b"
    r"|\b(?:widening|broadening|narrowing) (?:it|the)\b",
    r"\b(?:applied|edited|went|looked|ran|changed|patched)\b[^.]{0,30}\bwrong\b"
    r"|\bundo(?:ing)?\b|\bundid\b|\bi (?:had )?assumed\b",
    r"\b(?:didn't|did not|doesn't|does not) (?:work|match|help|exist|compile|fix)\b",
    r"(?:^|[,;:]\s*)(?:that|this|it) (?:\w+ )?(?:failed|broke)\b|\bsame error\b"
    r"|\bstill (?:fail\w*|broken|errors?|wrong)\b|\bno (?:matches|results)\b",
    r"\blet me (?:try (?:again|a different|another|something else)|fix (?:that|this|it"
    r"|the)|correct|redo|re-?run|retry|re-?check)\b|\btry (?:again|a different"
    r"|another)\b|\bretrying\b|\bretry (?:it|with|that)\b|\bsearching again\b"
    r"|\b(?:run|do) it again\b",
    r"\bdifferent (?:approach|pattern|path|way|strategy)\b|\brevert(?:ing)?\b",
    r"\b(?:turns out|i should have|not what i expected|that's not right"
    r"|that isn't right)\b",
    r"\b(?:command|query|edit|build|tests?|search|grep|call|install) (?:failed|fails)\b",
)
CORRECTION = re.compile("|".join(_CORRECTION_PARTS), _CUE)

_ANY_CUE = re.compile("|".join(f"(?:{p.pattern})" for p in (CONSTRAINT, PRUNING, CORRECTION)), _CUE)

PLAN = re.compile(
    "|".join(
        [
            r"^\s*1[.)]\s+\S[^\n]*\n(?:[^\n]*\n){0,6}?\s*2[.)]\s+\S",
            r"\b1\)\s[^\n]{3,200}?\b2\)\s|\bstep 1\b[^\n]{0,200}\bstep 2\b"
            r"|\b(?:my|the) next steps are\b",
            r"\b(?:plan|steps|step by step|approach|strategy|next steps|my approach"
            r"|(?:here's|here is) (?:my|the) (?:plan|approach)|let me break (?:this|it) down"
            r"|to do this,? i'll need to)\s*:",
            r"(?:\b(?:i'll|i will|let me|let's|we'll|we will|i'm going to|i need to|i should)\s+"
            r"(?:\w+\s+)?|^\s*|[.:]\s+)(?:first\b,?|start (?:by|with)|begin (?:by|with)|to start,)"
            r"[^\n]{0,200}?\b(?:then|after that|next|finally|afterwards)\b",
        ]
    ),
    _CUE | re.MULTILINE,
)


def head(text: str, limit: int) -> str:
    """The first ``limit`` characters, ending at a sentence end when one is near the cut,
    so a cut never leaves a half sentence to be read as a signal.

    >>> head("One. Two three four.", 12)
    'One.'
    """
    if len(text) <= limit:
        return text
    cut = text[:limit]
    end = max(cut.rfind(". "), cut.rfind("\n"))
    return cut[: end + 1] if end >= limit - 400 or end >= limit // 2 else cut


def has_text(text: str) -> bool:
    """Not empty or blank, without copying a huge string the way ``strip()`` does."""
    return bool(text) and not text.isspace()


def mask_code(text: str) -> str:
    """Inline code becomes a neutral word, so `must_fail` or `cannot_retry` are not cues."""
    return _INLINE_CODE.sub("CODE", _FENCE.sub(" CODE. ", text))


def sentences(text: str) -> list[str]:
    """Sentences and lines of ``text`` (bounded), code masked.

    >>> sentences("It failed. Let me retry.\\nDone")
    ['It failed.', 'Let me retry.', 'Done']
    """
    return _split(mask_code(head(text, MAX_SEGMENT)))


def _split(masked: str) -> list[str]:
    return [s.strip()[:MAX_SENTENCE] for s in _SENTENCE.split(masked) if s.strip()]


def cues(text: str, pattern: re.Pattern[str]) -> list[str]:
    """The sentences of ``text`` in which ``pattern`` finds a cue.

    >>> cues("I'll read it. We must not change the public API.", CONSTRAINT)
    ['We must not change the public API.']
    """
    return [s for s in sentences(text) if pattern.search(s.lower())]


def find_plan(text: str) -> str | None:
    """The paragraph of ``text`` that states a multi-step plan, if any.

    >>> find_plan("First I'll read the schema, then query both tables.")
    "First I'll read the schema, then query both tables."
    """
    masked = mask_code(head(text, MAX_SEGMENT))
    return _plan(masked, masked.lower())


def _plan(masked: str, low: str) -> str | None:
    m = PLAN.search(low)
    if m is None:
        return None
    start = masked.rfind("\n\n", 0, m.start()) + 1
    end = masked.find("\n\n", m.end())
    return masked[start : end if end >= 0 else None].strip()[: MAX_ITEM_CHARS * 2]


# --- classify: cues + the trained model -------------------------------------------------------

_CUES: Final = (CONSTRAINT, PRUNING, CORRECTION)  # the prefilter's groups, in this order
_EVERY_CUE: Final = frozenset(range(len(_CUES)))
_PLAN_GROUP: Final = len(_CUES)  # and PLAN after them

_CUE_NAMES: Final = (
    ("constraint", CONSTRAINT),
    ("pruning", PRUNING),
    ("self_correction", CORRECTION),
)


def cue_hits(masked: str, low: str, may: set[int] | None = None) -> dict[str, list[str]]:
    """The sentences of a masked text in which each hand-written cue fires (``plan``: the
    plan paragraph). One search for any cue per sentence first (or the prefilter's answer
    for the whole text, ``may``): most sentences hold none."""
    hits: dict[str, list[str]] = {}
    if may is None or may & _EVERY_CUE:
        for s in _split(masked):
            s_low = s.lower()
            # per sentence: some cues are anchored at a sentence's start
            if may is None and not _ANY_CUE.search(s_low):
                continue
            for name, pattern in _CUE_NAMES:
                if pattern.search(s_low):
                    hits.setdefault(name, []).append(s)
    plan = _plan(masked, low) if may is None or _PLAN_GROUP in may else None
    if plan:
        hits["plan"] = [plan]
    return hits


_PARTS: Final = {
    "constraint": [re.compile(p, _CUE) for p in _CONSTRAINT_PARTS],
    "pruning": [re.compile(p, _CUE) for p in _PRUNING_PARTS],
    "self_correction": [re.compile(p, _CUE) for p in _CORRECTION_PARTS],
}


def block_features(
    masked: str,
    low: str,
    previous_result: str | None,
    thinking: bool,
    may: set[int] | None = None,
) -> tuple[set[str], dict[str, list[str]]]:
    """The model's features of one text (and the cue sentences, which the extractor keeps
    as the signals' items). Which alternative of a cue fired is a feature of its own
    (``cue:pruning#2``): some alternatives are far more reliable than others. Only the
    sentences where a cue fired are searched again, so this costs little."""
    hits = cue_hits(masked, low, may)
    feats = signal_model.features(low, thinking, hits, previous_result)
    for name, sents in hits.items():
        for part_no, part in enumerate(_PARTS.get(name, ())):
            if any(part.search(s.lower()) for s in sents):
                feats.add(f"cue:{name}#{part_no}")
    return feats, hits


# The guideline's own canonical phrasings, trusted on short texts whatever the model says:
# the model learns from ~60 real constraints and misses textbook ones it never saw ("we
# can't change the public API", "backward compatibility"). On the train+dev snippets of at
# most GUIDELINE_MAX_CHARS these fire on 13 constraints and 0 non-constraints, and on 20
# self-corrections and 4 others; long texts are left to the model (there they are mostly
# summaries that quote a limit rather than work within it).
GUIDELINE_MAX_CHARS = 1200
GUIDELINE: Final = {
    "constraint": re.compile(
        r"\b(?:can't|cannot|can not|mustn't|must not|shouldn't|should not|not allowed to)\s+"
        r"(?:change|modify|break|touch|alter|edit)\b[^.]{0,60}\b(?:api|interface|signature"
        r"|schema|contract|file|format|clients?|callers?)\b|\bbackwards?[- ]compat\w*"
        r"|\bread-only mode\b|\b(?:doesn't|does not|don't|do not|won't) support\b"
        r"|\bis blocked by\b|\bdepends on (?:task|step|both|#?\d)|\bwithout breaking\b"
        r"|\b(?:isn't|is not|not) installed\b|\bpermission denied\b"
        r"|\bdoesn't have (?:ssh|permission|access|network)",
        _CUE,
    ),
    "self_correction": re.compile(
        r"^(?:actually|wait|hmm+|oops|oh no)\b,?\s*(?:let me|i'll|i need|i should|i see|that"
        r"|the)\b|\b(?:i was wrong|my mistake|i missed|i overlooked"
        r"|(?:let me )?try a different approach)\b",
        _CUE,
    ),
}


def guideline_hits(masked: str) -> dict[str, list[str]]:
    """The sentences of a short text that say a category in the guideline's own words."""
    if len(masked) > GUIDELINE_MAX_CHARS:
        return {}
    hits: dict[str, list[str]] = {}
    for s in _split(masked):
        s_low = s.lower()
        for name, pattern in GUIDELINE.items():
            if pattern.search(s_low):
                hits.setdefault(name, []).append(s)
    return hits


def classify(text: str, previous_result: str | None = None, *, thinking: bool = False) -> set[str]:
    """The reasoning categories one text or thinking block shows: any of ``constraint``,
    ``pruning``, ``self_correction``, ``plan``, read together with the tool result that came
    right before it (definitions: ``tests/fixtures/signals/GUIDELINE.md``).

    >>> sorted(classify("That didn't work. Let me try the --yes flag instead.",
    ...                 "[error] Error: prompt timed out"))
    ['self_correction']
    >>> classify("Let me read the file.")
    set()
    """
    if not has_text(text):
        return set()
    masked = mask_code(head(text, MAX_SEGMENT))
    feats, _ = block_features(masked, masked.lower(), previous_result, thinking)
    return signal_model.decide(signal_model.load(), feats) | set(guideline_hits(masked))


def best_sentence(masked: str, category: str) -> str:
    """The sentence of a text that speaks most for ``category`` (by the model's word
    weights): the item kept when the model, not a cue, found the category."""
    model = signal_model.load()
    i = signal_model.CATEGORIES.index(category)
    best, best_score = "", float("-inf")
    for s in _split(masked):
        feats = signal_model.text_features(s.lower(), False, ())
        score = sum(w[i] for f in feats if (w := model.weights.get(f)) is not None)
        if score > best_score:
            best, best_score = s, score
    return best


# --- texts of a trace ------------------------------------------------------------------------


class Block(NamedTuple):
    """One text of a trace, as the classifier reads it."""

    text: str
    previous_result: str | None  # the tool result right before it (None: a prompt came first)
    thinking: bool
    answer: bool  # the final answer (no plan is taken from it: it reports work done)


def result_text(call: ToolCall) -> str:
    """What the model saw of a call's result; failures marked the way the corpus marks
    ``is_error`` results, so the model reads both the same."""
    if call.success:
        return call.output
    return f"[error] {call.error or call.output}"


def _blocks(trace: ClaudeTrace) -> list[Block]:
    """Reasoning and thinking before each call, then the answer, in that order, each with
    the result of the same agent's previous call; at most ``MAX_TEXT`` in all, given first
    to the text before calls (short, and where Claude says what it is doing), then the
    answer, then thinking (long)."""
    parts: list[tuple[Block, int]] = []
    last: dict[str | None, str] = {}
    for c in trace.tool_calls:
        prev = last.get(c.agent_id)
        parts.append((Block(c.reasoning, prev, False, False), 0))
        parts.append((Block(c.thinking, prev, True, False), 2))
        last[c.agent_id] = result_text(c)
    parts.append((Block(trace.claude_response, last.get(None), False, True), 1))
    budget = MAX_TEXT
    chosen: dict[int, Block] = {}
    for i, (block, _) in sorted(enumerate(parts), key=lambda p: p[1][1]):
        if budget <= 0:
            break
        if has_text(block.text):
            text = head(block.text, min(MAX_SEGMENT, budget))
            chosen[i] = block._replace(text=text)
            budget -= len(text)
    return [chosen[i] for i in sorted(chosen)]


def _scan(text: str) -> tuple[str, str, set[int] | None]:
    """A text masked and lower-cased, and (with the prefilter) the cue groups that may
    match in it; ``None`` without the prefilter."""
    masked = mask_code(text)
    low = masked.lower()
    pre = _cue_prefilter
    return masked, low, pre.candidates(low) if pre else None


_cue_prefilter: Prefilter | None = None


def use_prefilter() -> None:
    """Prefilter texts with Hyperscan from now on (``capture.prefilter``: the cue patterns
    and ``PLAN``; the same signals, found faster): for bulk work such as an import, where
    loading the database pays off. Without Hyperscan nothing changes."""
    global _cue_prefilter
    if _cue_prefilter is None:
        with suppress(Exception):
            groups = [[(p.pattern, p.flags)] for p in (*_CUES, PLAN)]
            _cue_prefilter = Prefilter(groups, "cues")


def _add(items: list[str], new: Iterable[str]) -> None:
    for s in new:
        item = s[:MAX_ITEM_CHARS]
        if item and item not in items and len(items) < MAX_ITEMS:
            items.append(item)


class TextSignals(NamedTuple):
    """What the text of a trace says, category by category."""

    constraints: list[str]
    pruning: list[str]
    corrections: list[str]
    plan: str | None


def text_signals(trace: ClaudeTrace) -> TextSignals:
    """Each text of the trace classified (cues + model, with the result before it); the
    items kept for a category are the sentences where its cue fired, or else the sentence
    the model weighs highest. A cue in a text the model rejects keeps nothing."""
    model = signal_model.load()
    found: dict[str, list[str]] = {c: [] for c in signal_model.CATEGORIES}
    plan: str | None = None
    for block in _blocks(trace):
        masked, low, may = _scan(block.text)
        feats, hits = block_features(masked, low, block.previous_result, block.thinking, may)
        trusted = guideline_hits(masked)
        for cat in signal_model.decide(model, feats) | set(trusted):
            if cat != "plan":
                items = trusted.get(cat, []) + hits.get(cat, [])
                _add(found[cat], items or [best_sentence(masked, cat)])
            elif plan is None and not block.answer:
                plan = hits["plan"][0] if "plan" in hits else _paragraph(masked)
    return TextSignals(found["constraint"], found["pruning"], found["self_correction"], plan)


def _paragraph(masked: str) -> str:
    """The first paragraph of a text (the plan's item when no plan cue marks one)."""
    return masked.strip().split("\n\n", 1)[0][: MAX_ITEM_CHARS * 2]


def _first_line(text: str | None, width: int = 120) -> str:
    lines = (text or "")[:2000].strip().splitlines()
    return lines[0][:width] if lines else "no error text"


def retried_failures(calls: list[ToolCall]) -> list[str]:
    """Structural self-corrections: a failed call retried (same tool) with changed input."""
    out: list[str] = []
    for i, failed in enumerate(calls):
        if failed.success:
            continue
        for later in calls[i + 1 : i + 4]:
            if later.tool == failed.tool and later.agent_id == failed.agent_id:
                if later.args != failed.args:
                    out.append(
                        f"retried {failed.tool} with changed input after it failed: "
                        f"{_first_line(failed.error or failed.output)}"
                    )
                break
    return out[:MAX_ITEMS]


# --- structure -------------------------------------------------------------------------------


def depth_of(steps: int) -> ExplorationDepth:
    """minimal 1-2 steps, moderate 3-5, thorough 6-9, exhaustive 10+.

    >>> depth_of(4).value
    'moderate'
    """
    if steps >= 10:
        return ExplorationDepth.EXHAUSTIVE
    if steps >= 6:
        return ExplorationDepth.THOROUGH
    if steps >= 3:
        return ExplorationDepth.MODERATE
    return ExplorationDepth.MINIMAL


_PROGRAM = re.compile(r"^\s*(?:(?:sudo|env|time|nice)\s+)?(?:\w+=\S*\s+)*([\w./-]+)")
READ_PROGRAMS = frozenset(
    ["ls", "cat", "head", "tail", "find", "grep", "rg", "ag", "fd", "tree", "wc", "less"]
    + ["more", "file", "stat", "du", "df", "pwd", "which"]
)
TEST_RUN = re.compile(
    r"\b(?:pytest|py\.test|tox|nox|unittest|jest|vitest|mocha|go test|cargo test|npm (?:run )?test"
    r"|yarn test|pnpm test|make (?:test|check)|rspec|phpunit|ctest|mvn test|gradle test)\b"
)
DB_COMMAND = re.compile(
    r"\b(?:psql|mysql|sqlite3|mongosh|mongo|redis-cli|pg_dump|cqlsh|clickhouse-client|duckdb"
    r"|makemigrations|migrate|alembic|flyway|liquibase)\b|\bselect\b[\s\S]{1,200}?\bfrom\b"
    r"|\b(?:insert into|delete from|create table|alter table|drop table)\b|\bupdate \w+ set\b",
    _I,
)
DB_TOOL = re.compile(r"sql|postgres|mysql|database|bigquery|supabase|mongo|redis", _I)
# Read-only terminal commands count as exploring (psql SELECTs, git log, ls, cat ...).
READ_ONLY_COMMAND = re.compile(
    r"^\s*(?:ls|cat|head|tail|find|grep|rg|ag|fd|tree|wc|less|file|stat|du|df|pwd|which"
    r"|git (?:log|show|status|diff|blame|branch)|gh (?:run|pr|issue) (?:view|list))\b"
    r"|\bselect\b[\s\S]{1,200}?\bfrom\b|^\s*(?:psql|sqlite3|mysql)\b[^|;]*(?:\\d|\.schema)",
    _I,
)


def command_of(call: ToolCall) -> str:
    cmd = call.args.get("command") if call.tool in TERMINAL_TOOLS else None
    return cmd[:2000] if isinstance(cmd, str) else ""


def program_of(call: ToolCall) -> str:
    m = _PROGRAM.match(command_of(call))
    return m.group(1).rsplit("/", 1)[-1] if m else ""


def is_db_call(call: ToolCall) -> bool:
    if call.tool in TERMINAL_TOOLS:
        return bool(DB_COMMAND.search(command_of(call)))
    return call.tool.startswith("mcp__") and bool(DB_TOOL.search(call.tool))


def is_exploring(call: ToolCall) -> bool:
    """A call that only looks: a read tool or a read-only terminal command."""
    if call.tool in EXPLORE_TOOLS:
        return True
    return call.tool in TERMINAL_TOOLS and bool(READ_ONLY_COMMAND.search(command_of(call)))


def _main(trace: ClaudeTrace) -> list[ToolCall]:
    return [c for c in trace.tool_calls if not c.agent_id]


def _edit_test_cycles(calls: list[ToolCall]) -> int:
    """How often an edit is followed by a test run: edit → test → edit → test is iterating."""
    cycles, edited = 0, False
    for c in calls:
        if c.tool in EDIT_TOOLS:
            edited = True
        elif edited and TEST_RUN.search(command_of(c)):
            cycles, edited = cycles + 1, False
    return cycles


def workflow_of(trace: ClaudeTrace) -> WorkflowType:
    calls = _main(trace)
    per_batch: dict[int, int] = {}
    for c in calls:
        if c.batch is not None:
            per_batch[c.batch] = per_batch.get(c.batch, 0) + 1
    if any(n > 1 for n in per_batch.values()):  # several tool_use blocks in one message
        return WorkflowType.PARALLEL
    # try, fail, adjust, try again: a failed call followed later by the same tool
    for i, c in enumerate(calls):
        if not c.success and any(later.tool == c.tool for later in calls[i + 1 :]):
            return WorkflowType.ITERATIVE
    if _edit_test_cycles(calls) >= 2:
        return WorkflowType.ITERATIVE
    explored = 0
    for c in calls:
        if not is_exploring(c):
            break
        explored += 1
    return WorkflowType.EXPLORATORY if explored >= 3 else WorkflowType.LINEAR


def reasoning_chain(trace: ClaudeTrace) -> list[str]:
    texts = [c.reasoning[:MAX_SEGMENT] for c in _main(trace) if has_text(c.reasoning)]
    chain = [s.strip() for t in texts for s in _SENTENCE.split(t.strip()) if s.strip()]
    return chain[: MAX_ITEMS * 5]


# --- categories ------------------------------------------------------------------------------

REFACTOR_PROMPT = re.compile(
    r"\b(?:refactor\w*|renam\w*|extract\w*|restructur\w*|clean(?:\s|-)?up|deduplicat\w*|dedupe"
    r"|simplif\w*|reorgani[sz]\w*|consolidat\w*|tidy|split \w+ into|move \w+ (?:in)?to)\b",
    _I,
)
DEBUG_PROMPT = re.compile(
    r"\b(?:bugs?|errors?(?! handling)|crash\w*|fail\w*|broken|fix\w*|traceback|exception"
    r"|stack ?trace|slow\w*|hangs?|hanging|regression|debug\w*|investigat\w*|not working"
    r"|doesn't work|does not work|why (?:is|does|do|did|are|am)|make\b[^.]{0,60}\bpass)\b",
    _I,
)


def _debugging(trace: ClaudeTrace, calls: list[ToolCall]) -> bool:
    if DEBUG_PROMPT.search(trace.user_prompt[:MAX_SEGMENT]):
        return True
    # a failing test run, then an edit: the turn was fixing something
    for i, c in enumerate(calls):
        if not c.success and TEST_RUN.search(command_of(c)):
            return any(later.tool in EDIT_TOOLS for later in calls[i + 1 :])
    return False


def _system(calls: list[ToolCall]) -> bool:
    """Half the calls or more are terminal work that is neither a query nor a test run."""
    ops = [
        c
        for c in calls
        if c.tool in TERMINAL_TOOLS and not is_db_call(c) and not TEST_RUN.search(command_of(c))
    ]
    return bool(ops) and len(ops) * 2 >= len(calls)


def _exploring(every: list[ToolCall]) -> bool:
    """No edits, and most calls (subagents' too) only looked at files."""
    work = [c for c in every if c.tool not in AGENT_TOOLS]
    if not work or any(c.tool in EDIT_TOOLS for c in work):
        return False
    looked = sum(1 for c in work if c.tool in EXPLORE_TOOLS or program_of(c) in READ_PROGRAMS)
    return looked * 2 > len(work)


def categories_of(trace: ClaudeTrace, signals: ReasoningSignals) -> list[Category]:
    """The categories that fit the trace, in the enum's order."""
    calls = _main(trace)
    tools = {c.tool for c in calls}
    edits = any(c.tool in EDIT_TOOLS for c in trace.tool_calls)
    found = {
        Category.DATABASE_QUERIES: any(is_db_call(c) for c in trace.tool_calls),
        Category.CODE_REFACTORING: edits and bool(REFACTOR_PROMPT.search(trace.user_prompt)),
        Category.DEBUGGING: _debugging(trace, calls),
        Category.FILE_EXPLORATION: _exploring(trace.tool_calls),
        Category.SYSTEM_COMMANDS: _system(calls),
        Category.MULTI_TOOL_WORKFLOWS: len(tools) >= 3 or (len(tools) >= 2 and len(calls) >= 4),
        Category.COMPLEX_REASONING: bool(signals.explicit_plan or signals.pruning_decisions),
    }
    return [c for c in Category if found[c]]


# --- the extractor ---------------------------------------------------------------------------


class ReasoningSignalExtractor:
    """Every seed signal of a trace, from text cues and structure; pure and bounded.

    >>> from claude_bc.capture.schema import ClaudeTrace, ToolCall
    >>> t = ClaudeTrace(trace_id="x", user_prompt="fix it", tool_calls=[
    ...     ToolCall(tool="Bash", args={"command": "cat a"}, success=False, error="no such file"),
    ...     ToolCall(tool="Bash", args={"command": "cat b"}, reasoning="Actually, it is b.")])
    >>> s = ReasoningSignalExtractor().extract(t)
    >>> s.workflow_type.value, len(s.self_corrections)
    ('iterative', 2)
    """

    def extract(self, trace: ClaudeTrace) -> ReasoningSignals:
        main = _main(trace)
        chain = reasoning_chain(trace)
        text = text_signals(trace)
        corrections = retried_failures(trace.tool_calls) + text.corrections
        signals = ReasoningSignals(
            tool_sequence=[c.tool for c in main],
            reasoning_steps=len(main) + has_text(trace.claude_response),
            exploration_depth=depth_of(len(trace.tool_calls)),
            used_terminal=any(c.tool in TERMINAL_TOOLS for c in trace.tool_calls),
            multi_step_reasoning=len(main) >= 2 or len(chain) >= 2 or text.plan is not None,
            constraints_detected=text.constraints,
            pruning_decisions=text.pruning,
            self_corrections=corrections[:MAX_ITEMS],
            workflow_type=workflow_of(trace),
            explicit_plan=text.plan,
            reasoning_chain=chain,
        )
        signals.categories = categories_of(trace, signals)
        return signals


_EXTRACTOR = ReasoningSignalExtractor()


def extract_signals(trace: ClaudeTrace) -> ReasoningSignals:
    """The signals of ``trace`` (what the assembler and ``bc-capture reextract`` call)."""
    return _EXTRACTOR.extract(trace)
