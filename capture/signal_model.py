"""The small trained model behind :func:`capture.signals.classify`: a logistic regression per
category over binary features of one text (a text or thinking block) and the tool result
before it.

Features (:func:`features`, shared by ``scripts/train-signals`` and inference, so the two
can never drift apart):

* the words and word pairs of the text (code masked, lower-cased, the first ``MAX_TOKENS``);
* which of the hand-written cues fire (``cue:constraint`` ...): the model learns how far
  to trust each of them;
* the shape of the text: a thinking block, a numbered or bulleted list, its length;
* the previous tool result: none, empty, an error, a failure word in it, its first words.
  Many self-corrections are visible only there ("Let me try the --yes flag" after a
  command that hung).

The weights ship as ``signal_weights.json`` next to this module (written by
``scripts/train-signals``): per feature one weight per category, plus a bias and a
decision threshold per category. Scoring is a dict lookup per feature, pure Python, no
numpy at run time.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Final, NamedTuple

CATEGORIES: Final = ("constraint", "pruning", "self_correction", "plan")
MAX_TOKENS = 400  # words read of one text: the decision is made early in a block
MAX_PREV = 600  # characters read of the previous tool result (its start, where errors show)
PREV_WORDS = 12  # its first words become features

_WORD = re.compile(r"[a-z][a-z'_-]*[a-z]|[a-z]|\d+|[:?!;]|--|\u2014")
_NUMBERED = re.compile(r"^\s*\d+[.)]\s+\S", re.MULTILINE)
_BULLET = re.compile(r"^\s*[-*\u2022]\s+\S", re.MULTILINE)
_FAILURE = re.compile(
    r"error|failed|failure|traceback|exception|not found|no such file|exit code [1-9]"
    r"|no matches|no files found|denied|rejected|timed? ?out|cannot|can't|invalid|warning"
)


class Model(NamedTuple):
    """Weights per feature (one float per category), bias and threshold per category."""

    weights: dict[str, tuple[float, ...]]
    bias: tuple[float, ...]
    threshold: tuple[float, ...]


def _length_bucket(n: int) -> str:
    return "len:short" if n < 80 else "len:mid" if n < 400 else "len:long"


def prev_features(previous_result: str | None) -> list[str]:
    """What the tool result before the text says, as features."""
    if previous_result is None:
        return ["p:none"]
    head = previous_result[:MAX_PREV].lower()
    if not head.strip():
        return ["p:empty"]
    out = ["p:some"]
    if head.startswith("[error]"):
        out.append("p:error")
    if _FAILURE.search(head):
        out.append("p:fail")
    out.extend("p=" + w for w in _WORD.findall(head)[:PREV_WORDS] if len(w) > 2)
    return out


def text_features(low: str, thinking: bool, cues: Iterable[str]) -> set[str]:
    """Features of one text, given lower-cased with code masked, and the cues found in it."""
    words = _WORD.findall(low)[:MAX_TOKENS]
    feats = set(words)
    feats.update(f"{a} {b}" for a, b in zip(words, words[1:], strict=False))
    feats.update("cue:" + c for c in cues)
    feats.add(_length_bucket(len(low)))
    if thinking:
        feats.add("k:thinking")
    if len(_NUMBERED.findall(low)) >= 2:
        feats.add("list:numbered")
    if len(_BULLET.findall(low)) >= 3:
        feats.add("list:bullets")
    return feats


def features(
    low: str, thinking: bool, cues: Iterable[str], previous_result: str | None
) -> set[str]:
    """Every feature of a text and the result before it."""
    feats = text_features(low, thinking, cues)
    feats.update(prev_features(previous_result))
    return feats


def scores(model: Model, feats: Iterable[str]) -> list[float]:
    """The linear score of each category (above its threshold: the category applies)."""
    total = list(model.bias)
    weights = model.weights
    for f in feats:
        w = weights.get(f)
        if w is not None:
            for i, x in enumerate(w):
                total[i] += x
    return total


def decide(model: Model, feats: Iterable[str]) -> set[str]:
    return {
        c
        for c, s, t in zip(CATEGORIES, scores(model, feats), model.threshold, strict=True)
        if s > t
    }


def parse(data: dict[str, object]) -> Model:
    """A model from the JSON the training script writes (validated: a bad file fails here)."""
    cats = data["categories"]
    if cats != list(CATEGORIES):
        raise ValueError(f"model categories {cats} != {list(CATEGORIES)}")
    raw = data["weights"]
    if not isinstance(raw, dict):
        raise ValueError("model weights must be an object")
    weights = {str(k): tuple(float(x) for x in v) for k, v in raw.items()}
    bias = tuple(float(x) for x in data["bias"])  # type: ignore[attr-defined]
    threshold = tuple(float(x) for x in data["threshold"])  # type: ignore[attr-defined]
    if any(len(v) != len(CATEGORIES) for v in (bias, threshold, *weights.values())):
        raise ValueError("model vectors must have one entry per category")
    return Model(weights, bias, threshold)


@lru_cache(maxsize=1)
def load() -> Model:
    """The shipped model (read once per process)."""
    text = resources.files("claude_bc.capture").joinpath("signal_weights.json").read_text("utf-8")
    return parse(json.loads(text))


# --- the labelled corpus (development only: scripts/train-signals, the tests, the benchmark)

CORPUS_ENV: Final = "BC_SIGNALS_CORPUS"


def labels_path() -> Path:
    """The corpus's labels, committed: ``tests/fixtures/signals/labels.jsonl`` (no text)."""
    return Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "signals" / "labels.jsonl"


def corpus_path() -> Path:
    """The full corpus, texts and labels: ``$BC_SIGNALS_CORPUS``, else
    ``.cache/signals/snippets.jsonl`` of the checkout (git-ignored). The texts are other
    people's and are never committed; ``scripts/signals-corpus rebuild`` writes this file
    from their repositories and ``labels.jsonl``."""
    env = os.environ.get(CORPUS_ENV)
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[1] / ".cache" / "signals" / "snippets.jsonl"
