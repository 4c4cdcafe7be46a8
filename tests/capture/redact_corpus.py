"""The secrets corpus (tests/fixtures/secrets) and how an engine is scored on it.

An engine is a function from a text to that text with its secrets replaced.  A secret is
caught when it no longer occurs in the output; a false-positive example or a benign line
counts as changed when the output differs from the input.  The peers (betterleaks,
kingfisher) report findings, not a redacted text: each reported value is replaced
wherever it occurs, so every engine is judged by the same leak check.
"""

from __future__ import annotations

import gzip
import json
import os
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "secrets"
REPO = Path(__file__).resolve().parents[2]
# Built on this machine from gitleaks' and trufflehog's public rule tests (see PROVENANCE):
# not in the repository, whose rules forbid committing content of fetched repositories.
CORPUS = Path(os.environ.get("BC_SECRETS_CORPUS", REPO / ".cache" / "secrets" / "corpus.jsonl.gz"))
BENIGN = FIXTURES / "benign.txt"


def have_corpus() -> bool:
    return CORPUS.is_file()


SPLITS = ("tune", "held-out")


def split_of(record: dict[str, Any]) -> str:
    """``tune`` or ``held-out``, by a hash of the record's rule or detector (its
    ``family``): every text of one rule is on the same side, so rule changes made while
    looking at the tune half are measured on rules never looked at."""
    import hashlib

    digest = hashlib.sha256(f"{record['source'].split('-')[0]}:{record['family']}".encode())
    return SPLITS[digest.digest()[0] & 1]


Engine = Callable[[str], str]


@cache
def corpus() -> tuple[dict[str, Any], ...]:
    """Every record of the corpus (the header left out)."""
    with gzip.open(CORPUS, "rt", encoding="utf-8") as fh:
        rows = [json.loads(line) for line in fh]
    return tuple(r for r in rows if not r.get("header"))


@cache
def benign_lines() -> tuple[str, ...]:
    """The benign corpus: one line of developer text each (``#`` lines are comments;
    ``\\n`` inside a line stands for a newline)."""
    out = []
    for line in BENIGN.read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.startswith("#"):
            out.append(line.replace("\\n", "\n"))
    return tuple(out)


@dataclass
class Tally:
    hit: int = 0
    total: int = 0

    def add(self, ok: bool) -> None:
        self.hit += ok
        self.total += 1

    @property
    def rate(self) -> float:
        return self.hit / self.total if self.total else 0.0


@dataclass
class Score:
    by_source: dict[str, Tally] = field(default_factory=lambda: defaultdict(Tally))
    by_context: dict[tuple[str, str], Tally] = field(default_factory=lambda: defaultdict(Tally))
    by_family: dict[tuple[str, str], Tally] = field(default_factory=lambda: defaultdict(Tally))
    fp_changed: Tally = field(default_factory=Tally)
    benign_changed: Tally = field(default_factory=Tally)
    missed: list[dict[str, Any]] = field(default_factory=list)
    changed: list[tuple[str, str]] = field(default_factory=list)
    #: the false-positive examples changed, with their outputs
    changed_records: list[tuple[dict[str, Any], str]] = field(default_factory=list)
    #: per (source, split): recall, or for ``gitleaks-fp`` the rate changed
    by_split: dict[tuple[str, str], Tally] = field(default_factory=lambda: defaultdict(Tally))
    seconds: float = 0.0
    kb: float = 0.0


def caught(out: str, secrets: Iterable[str]) -> bool:
    return all(s not in out for s in secrets)


def score(engine: Engine, records: Iterable[dict[str, Any]], benign: Iterable[str]) -> Score:
    import time

    sc = Score()
    t0 = time.perf_counter()
    for r in records:
        text = r["text"]
        sc.kb += len(text.encode()) / 1024
        out = engine(text)
        half = split_of(r)
        if r["source"] == "gitleaks-fp":
            sc.fp_changed.add(out != text)
            sc.by_split[("gitleaks-fp", half)].add(out != text)
            if out != text:
                sc.changed.append((text, out))
                sc.changed_records.append((r, out))
            continue
        ok = caught(out, r["secrets"])
        src = r["source"]
        sc.by_split[(src, half)].add(ok)
        sc.by_source[src].add(ok)
        sc.by_context[(src, r["context"])].add(ok)
        sc.by_family[(src, r["family"])].add(ok)
        if not ok:
            sc.missed.append(r)
    for line in benign:
        sc.kb += len(line.encode()) / 1024
        out = engine(line)
        sc.benign_changed.add(out != line)
        if out != line:
            sc.changed.append((line, out))
    sc.seconds = time.perf_counter() - t0
    return sc


def replacing(find: Callable[[str], Iterable[str]]) -> Engine:
    """An engine from a scanner that reports secret values: each one replaced."""

    def engine(text: str) -> str:
        for value in sorted({v for v in find(text) if v}, key=len, reverse=True):
            text = text.replace(value, "[REDACTED]")
        return text

    return engine


def betterleaks_engine() -> Engine | None:
    try:
        import betterleaks
    except ImportError:
        return None

    def find(text: str) -> list[str]:
        return [f.match.value or f.match.full for f in betterleaks.scan_string(text)]

    return replacing(find)


def kingfisher_engine() -> Engine | None:
    try:
        import kingfisher_sdk
    except ImportError:
        return None
    scanner = kingfisher_sdk.Scanner()

    def find(text: str) -> list[str]:
        return [f.secret for f in scanner.scan(text)]

    return replacing(find)
