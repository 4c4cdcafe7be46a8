"""Blind A/B test: can people tell Claude's answer from the local model's?

Each *pair* holds one held-out prompt with Claude's captured answer and the local model's
answer. A *showing* puts a pair in front of a rater with the two answers in random order
(the side Claude is on is kept here, never sent to the page); a *vote* says which answer the
rater thinks is Claude's (or that they can't tell) and rates both answers 1–5. Everything
lives in one SQLite file, so votes survive a restart of the page.

Indistinguishability is scored per judgment: the rater took the local answer for Claude's
→ 1, can't tell → ½, found Claude → 0. Its mean is 50% when raters cannot tell at all, so
the goal "> 45%" (raters cannot reliably tell the two apart) means: the one-sided 95% lower
bound of that mean is above 0.45. At a true rate of 50% that takes ≈ 271 judgments
(:func:`judgments_needed`).

Run it with ``bc-train abtest pairs|serve|report`` (see ``claude_bc/cli.py``).
"""

from __future__ import annotations

import json
import math
import secrets
import sqlite3
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import closing, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from claude_bc.capture import paths
from claude_bc.capture.errors import BCError
from claude_bc.capture.redact import redact_text
from claude_bc.capture.safejson import read_jsonl

Guess = Literal["A", "B", "unsure"]
GUESSES: tuple[Guess, ...] = ("A", "B", "unsure")
CLAIM_THRESHOLD = 0.45
Z_TWO_SIDED_95 = 1.959964
Z_ONE_SIDED_95 = 1.644854

SCHEMA = """
CREATE TABLE IF NOT EXISTS pairs (
    id INTEGER PRIMARY KEY,
    source TEXT NOT NULL UNIQUE,
    prompt TEXT NOT NULL,
    claude TEXT NOT NULL,
    local TEXT NOT NULL,
    local_model TEXT NOT NULL,
    created_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS showings (
    token TEXT PRIMARY KEY,
    pair_id INTEGER NOT NULL REFERENCES pairs(id),
    claude_side TEXT NOT NULL CHECK (claude_side IN ('A', 'B')),
    rater TEXT NOT NULL,
    shown_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS votes (
    token TEXT PRIMARY KEY REFERENCES showings(token),
    guess TEXT NOT NULL CHECK (guess IN ('A', 'B', 'unsure')),
    quality_a INTEGER NOT NULL CHECK (quality_a BETWEEN 1 AND 5),
    quality_b INTEGER NOT NULL CHECK (quality_b BETWEEN 1 AND 5),
    voted_at TEXT NOT NULL
);
"""


def default_db() -> Path:
    """``$BC_HOME/abtest/abtest.sqlite``."""
    return paths.data_dir() / "abtest" / "abtest.sqlite"


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


# --------------------------------------------------------------------------- records


@dataclass(frozen=True)
class Pair:
    """One held-out prompt with both answers."""

    source: str
    prompt: str
    claude: str
    local: str
    local_model: str


@dataclass(frozen=True)
class Showing:
    """What a rater sees: a prompt and two unlabelled answers."""

    token: str
    pair_id: int
    prompt: str
    answer_a: str
    answer_b: str


@dataclass(frozen=True)
class Judgment:
    """One vote, resolved against the side Claude was shown on."""

    guess: Guess
    claude_side: Literal["A", "B"]
    quality_claude: int
    quality_local: int
    rater: str = ""

    @property
    def score(self) -> float:
        """1: took the local answer for Claude's; ½: can't tell; 0: found Claude."""
        if self.guess == "unsure":
            return 0.5
        return 0.0 if self.guess == self.claude_side else 1.0


# --------------------------------------------------------------------------- store


class ABStore:
    """The SQLite file of one A/B test. Each method opens its own connection, so the web
    page's threads can share one store."""

    #: Showings waiting for a vote, kept in memory only (a page view writes nothing).
    MAX_PENDING = 10_000

    def __init__(self, path: Path) -> None:
        self.path = path
        paths.ensure_dir(path.parent)
        with self._db() as db:
            db.executescript(SCHEMA)
        path.chmod(0o600)
        # token -> (pair id, Claude's side, rater, shown at); recorded when a vote needs it
        self._pending: OrderedDict[str, tuple[int, str, str, str]] = OrderedDict()
        self._lock = threading.Lock()

    @contextmanager
    def _db(self) -> Iterator[sqlite3.Connection]:
        with closing(sqlite3.connect(self.path, timeout=10)) as db, db:
            db.execute("PRAGMA foreign_keys = ON")
            yield db

    def add_pairs(self, pairs: Iterable[Pair]) -> int:
        """Store new pairs (a source already stored is kept as it was); returns how many."""
        rows = [(p.source, p.prompt, p.claude, p.local, p.local_model, _now()) for p in pairs]
        with self._db() as db:
            before = db.total_changes
            db.executemany(
                "INSERT OR IGNORE INTO pairs (source, prompt, claude, local, local_model,"
                " created_at) VALUES (?, ?, ?, ?, ?, ?)",
                rows,
            )
            return db.total_changes - before

    def pair_count(self) -> int:
        with self._db() as db:
            return int(db.execute("SELECT COUNT(*) FROM pairs").fetchone()[0])

    def next_showing(self, rater: str) -> Showing | None:
        """Show this rater the pair they have not judged yet that has the fewest votes
        (ties at random), Claude's answer on a random side; ``None`` once they have judged
        every pair."""
        claude_first = secrets.randbelow(2) == 0
        with self._db() as db:
            row = db.execute(
                "SELECT p.id, p.prompt, p.claude, p.local FROM pairs p"
                " WHERE p.id NOT IN (SELECT s.pair_id FROM showings s JOIN votes v"
                "   ON v.token = s.token WHERE s.rater = ?)"
                " ORDER BY (SELECT COUNT(*) FROM showings s JOIN votes v ON v.token = s.token"
                "   WHERE s.pair_id = p.id), RANDOM() LIMIT 1",
                (rater,),
            ).fetchone()
            if row is None:
                return None
            pair_id, prompt, claude, local = row
        token = secrets.token_urlsafe(16)
        side = "A" if claude_first else "B"
        with self._lock:
            self._pending[token] = (int(pair_id), side, rater, _now())
            while len(self._pending) > self.MAX_PENDING:
                self._pending.popitem(last=False)
        a, b = (claude, local) if claude_first else (local, claude)
        return Showing(token, int(pair_id), str(prompt), str(a), str(b))

    def vote(
        self, token: str, guess: str, quality_a: int, quality_b: int, rater: str | None = None
    ) -> None:
        """Record the vote for one showing: its showing is written with it. A showing takes
        one vote, a rater one vote per pair; ``rater`` (when given) must be the one the
        pair was shown to."""
        if guess not in GUESSES:
            raise BCError(f"guess must be one of {', '.join(GUESSES)}, not {guess!r}")
        for q in (quality_a, quality_b):
            if not 1 <= q <= 5:
                raise BCError(f"quality ratings are 1 to 5, not {q}")
        with self._lock:
            shown = self._pending.get(token)
        with self._db() as db:
            if shown is None:
                if db.execute("SELECT 1 FROM votes WHERE token = ?", (token,)).fetchone():
                    raise BCError("this pair was already judged")
                raise BCError("this pair was never shown (unknown token)")
            pair_id, side, shown_to, shown_at = shown
            if rater is not None and rater != shown_to:
                raise BCError("this pair was shown to another rater")
            db.execute("BEGIN IMMEDIATE")  # one vote per pair and rater, even when racing
            judged = db.execute(
                "SELECT 1 FROM showings s JOIN votes v ON v.token = s.token"
                " WHERE s.pair_id = ? AND s.rater = ?",
                (pair_id, shown_to),
            ).fetchone()
            if judged:
                raise BCError("this pair was already judged")
            db.execute(
                "INSERT INTO showings (token, pair_id, claude_side, rater, shown_at)"
                " VALUES (?, ?, ?, ?, ?)",
                (token, pair_id, side, shown_to, shown_at),
            )
            db.execute(
                "INSERT INTO votes (token, guess, quality_a, quality_b, voted_at)"
                " VALUES (?, ?, ?, ?, ?)",
                (token, guess, quality_a, quality_b, _now()),
            )
        with self._lock:
            self._pending.pop(token, None)

    def judgments(self) -> list[Judgment]:
        """Every vote, oldest first."""
        with self._db() as db:
            rows = db.execute(
                "SELECT v.guess, s.claude_side, v.quality_a, v.quality_b, s.rater FROM votes v"
                " JOIN showings s ON s.token = v.token ORDER BY v.voted_at, v.rowid"
            ).fetchall()
        out: list[Judgment] = []
        for guess, side, qa, qb, rater in rows:
            q_claude, q_local = (qa, qb) if side == "A" else (qb, qa)
            out.append(Judgment(guess, side, int(q_claude), int(q_local), str(rater)))
        return out


# --------------------------------------------------------------------------- statistics


def wilson_interval(successes: float, n: int, z: float = Z_TWO_SIDED_95) -> tuple[float, float]:
    """Wilson score interval of a proportion (``successes`` may be fractional: a "can't
    tell" counts half).

    >>> [round(x, 3) for x in wilson_interval(50, 100)]
    [0.404, 0.596]
    """
    if n <= 0:
        return (0.0, 1.0)
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return (max(0.0, centre - half), min(1.0, centre + half))


def judgments_needed(
    rate: float, threshold: float = CLAIM_THRESHOLD, z: float = Z_ONE_SIDED_95
) -> int | None:
    """How many judgments in all show ``rate > threshold`` at one-sided 95% confidence, if
    ``rate`` is the true rate; ``None`` when ``rate`` is not above ``threshold``.

    >>> judgments_needed(0.5)
    271
    """
    if rate <= threshold:
        return None
    return math.ceil(z * z * rate * (1 - rate) / (rate - threshold) ** 2)


@dataclass(frozen=True)
class Report:
    """The tally of an A/B test."""

    judgments: int
    raters: int
    fooled: int
    unsure: int
    found: int
    indistinguishability: float
    ci95: tuple[float, float]
    lower_one_sided: float
    claim_holds: bool
    more_needed: int | None
    quality_claude: float | None
    quality_local: float | None

    def as_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


def report(judgments: Sequence[Judgment]) -> Report:
    """Indistinguishability with a 95% CI and how many more judgments a > 45% claim needs
    (at the observed rate; at 50% before any vote)."""
    n = len(judgments)
    score = sum(j.score for j in judgments)
    rate = score / n if n else 0.5
    lower = wilson_interval(score, n, Z_ONE_SIDED_95)[0] if n else 0.0
    holds = n > 0 and lower > CLAIM_THRESHOLD
    needed = judgments_needed(rate)
    return Report(
        judgments=n,
        raters=len({j.rater for j in judgments}),
        fooled=sum(1 for j in judgments if j.score == 1.0),
        unsure=sum(1 for j in judgments if j.guess == "unsure"),
        found=sum(1 for j in judgments if j.score == 0.0),
        indistinguishability=rate,
        ci95=wilson_interval(score, n),
        lower_one_sided=lower,
        claim_holds=holds,
        more_needed=0 if holds else (None if needed is None else max(0, needed - n)),
        quality_claude=_mean([j.quality_claude for j in judgments]),
        quality_local=_mean([j.quality_local for j in judgments]),
    )


def _mean(values: Sequence[int]) -> float | None:
    return sum(values) / len(values) if values else None


def render_report(r: Report) -> str:
    """The report as a few lines of text."""
    if not r.judgments:
        return (
            "no judgments yet; at a true rate of 50% a > 45% claim needs "
            f"{judgments_needed(0.5)} judgments"
        )
    lo, hi = r.ci95
    lines = [
        f"judgments: {r.judgments} (took local for Claude: {r.fooled}, can't tell: {r.unsure},"
        f" found Claude: {r.found})",
        f"raters: {r.raters} (a few raters casting most judgments weaken the claim)",
        f"indistinguishability: {r.indistinguishability:.1%} (95% CI {lo:.1%} to {hi:.1%};"
        " 50% = raters cannot tell)",
    ]
    if r.claim_holds:
        lines.append(
            f"> 45% holds at 95% confidence (one-sided lower bound {r.lower_one_sided:.1%})"
        )
    elif r.more_needed is None:
        lines.append("> 45% cannot be claimed: the observed rate is not above 45%")
    else:
        lines.append(
            f"> 45% not shown yet: about {r.more_needed} more judgments at the observed rate"
        )
    if r.quality_claude is not None and r.quality_local is not None:
        lines.append(f"quality (1-5): Claude {r.quality_claude:.2f}, local {r.quality_local:.2f}")
    return "\n".join(lines)


# --------------------------------------------------------------------------- building pairs


@dataclass(frozen=True)
class Sample:
    """A held-out chat cut before Claude's final answer."""

    source: str
    prompt: str
    context: list[dict[str, Any]]
    claude: str
    tools: list[dict[str, Any]] = field(default_factory=list)


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(
            str(b.get("text", "")) for b in content if isinstance(b, Mapping) and "text" in b
        )
    return ""


def sample_from_chat(
    source: str, messages: Sequence[Mapping[str, Any]], tools: Sequence[Any] = ()
) -> Sample | None:
    """The first user message is the prompt; the last assistant message without tool calls
    is Claude's answer; everything before it is the context both models answer from.

    >>> s = sample_from_chat("x", [{"role": "user", "content": "hi"},
    ...                            {"role": "assistant", "content": "hello"}])
    >>> (s.prompt, s.claude, len(s.context))
    ('hi', 'hello', 1)
    """
    msgs = [dict(m) for m in messages]
    prompt = next((_text(m.get("content")) for m in msgs if m.get("role") == "user"), "")
    last = len(msgs) - 1
    if last < 1 or msgs[last].get("role") != "assistant" or msgs[last].get("tool_calls"):
        return None
    answer = _text(msgs[last].get("content")).strip()
    if not prompt.strip() or not answer:
        return None
    return Sample(source, prompt, msgs[:last], answer, [dict(t) for t in tools])


def heldout_file(path: Path) -> Path:
    """``path`` itself, or in a ``bc-train dataset`` folder its test split (its eval split
    when the test split is empty: neither was trained on)."""
    if not path.is_dir():
        return path
    for name in ("test.jsonl", "eval.jsonl"):
        if (path / name).is_file() and (path / name).stat().st_size:
            return path / name
    raise BCError(f"{path}: no test.jsonl or eval.jsonl with rows (bc-train dataset writes them)")


def read_samples(path: Path) -> list[Sample]:
    """Held-out chats from a JSONL file or a dataset folder (one ``{"messages": [...]}`` per
    line; ``id`` or ``trace_id`` names the row)."""
    path = heldout_file(path)
    if not path.is_file():
        raise BCError(f"{path}: no such file")
    out: list[Sample] = []
    for n, row in read_jsonl(path):
        messages = row.get("messages")
        if isinstance(messages, str):  # stored as one JSON string by some writers
            messages = json.loads(messages)
        if not isinstance(messages, list):
            raise BCError(f"{path}:{n}: a row needs a 'messages' list")
        source = str(row.get("id") or row.get("trace_id") or f"{path.name}:{n}")
        tools = row["tools"] if isinstance(row.get("tools"), list) else []
        sample = sample_from_chat(source, messages, tools)
        if sample is not None:
            out.append(sample)
    return out


Answer = Callable[[list[dict[str, Any]], list[dict[str, Any]]], str]


def build_pairs(samples: Iterable[Sample], answer: Answer, model_name: str) -> Iterator[Pair]:
    """A pair per sample: ``answer(context, tools)`` is the local model's reply to the same
    context. Every string passes the redactor before it is stored."""
    for s in samples:
        local = answer(s.context, s.tools).strip() or "(no answer)"
        yield Pair(
            source=s.source,
            prompt=redact_text(s.prompt),
            claude=redact_text(s.claude),
            local=redact_text(local),
            local_model=model_name,
        )
