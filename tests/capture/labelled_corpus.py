"""The labelled corpus of real Claude Code text (built on this machine by
``scripts/signals-corpus rebuild`` into ``.cache/signals/snippets.jsonl``, never committed:
``tests/fixtures/signals/labels.jsonl`` holds its labels) and the scoring shared by the
tests, the benchmark and ``scripts/train-signals``' readers.

Every snippet is one assistant text or thinking block from a session recorded by somebody
else (sources and licences: ``tests/fixtures/signals/PROVENANCE.md``), with the tool result
that came right before it, its session, its split (by session: train / dev / test) and its
labels by the definitions in ``tests/fixtures/signals/GUIDELINE.md``. The test split carries
two labelling passes (``labels_a``, ``labels_b``) and the adjudicated ``labels``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from claude_bc.capture import signals as sig
from claude_bc.capture.signal_model import corpus_path

CORPUS: Path = corpus_path()
CATEGORIES = ("constraint", "pruning", "self_correction", "plan")


@dataclass(frozen=True)
class Snippet:
    id: str
    source: str
    session: str
    kind: str  # "text" or "thinking"
    split: str  # "train", "dev" or "test"
    text: str
    prev_result: str | None
    labels: frozenset[str]
    labels_a: frozenset[str]
    labels_b: frozenset[str] | None  # the second, independent pass (test split)


@cache
def corpus() -> tuple[Snippet, ...]:
    rows = [json.loads(line) for line in CORPUS.read_text("utf-8").splitlines() if line]
    return tuple(
        Snippet(
            id=r["id"],
            source=r["source"],
            session=r["session"],
            kind=r["kind"],
            split=r["split"],
            text=r["text"],
            prev_result=r["prev_result"],
            labels=frozenset(r["labels"]),
            labels_a=frozenset(r["labels_a"]),
            labels_b=frozenset(r["labels_b"]) if "labels_b" in r else None,
        )
        for r in rows
    )


def split(name: str) -> list[Snippet]:
    return [s for s in corpus() if s.split == name]


@dataclass
class Score:
    tp: int = 0
    fp: int = 0
    fn: int = 0

    @property
    def precision(self) -> float:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else 1.0

    @property
    def recall(self) -> float:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else 1.0

    @property
    def f1(self) -> float:
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r else 0.0


Predictor = Callable[[Snippet], set[str]]


def new_classifier(s: Snippet) -> set[str]:
    """``capture.signals.classify``: cues + model, with the previous result."""
    return sig.classify(s.text, s.prev_result, thinking=s.kind == "thinking")


def old_cues(s: Snippet) -> set[str]:
    """The cue-only extractor as it was before the model: a cue in any sentence."""
    found = {
        name
        for name, pattern in (
            ("constraint", sig.CONSTRAINT),
            ("pruning", sig.PRUNING),
            ("self_correction", sig.CORRECTION),
        )
        if sig.cues(s.text, pattern)
    }
    return found | ({"plan"} if sig.find_plan(s.text) else set())


def score(snippets: Iterable[Snippet], predict: Predictor) -> dict[str, Score]:
    scores = {c: Score() for c in CATEGORIES}
    for s in snippets:
        got = predict(s)
        for c in CATEGORIES:
            sc = scores[c]
            sc.tp += c in got and c in s.labels
            sc.fp += c in got and c not in s.labels
            sc.fn += c in s.labels and c not in got
    return scores


def kappa(a: list[bool], b: list[bool]) -> float:
    """Cohen's kappa of two binary labellings of the same items."""
    n = len(a)
    observed = sum(x == y for x, y in zip(a, b, strict=True)) / n
    pa, pb = sum(a) / n, sum(b) / n
    expected = pa * pb + (1 - pa) * (1 - pb)
    return (observed - expected) / (1 - expected) if expected < 1 else 1.0


def table(scores: dict[str, Score]) -> str:
    return "\n".join(
        f"  {c:<16} P {s.precision:.2f}  R {s.recall:.2f}  F1 {s.f1:.2f}  (n={s.tp + s.fn})"
        for c, s in scores.items()
    )
