"""Quality and cost of the reasoning-signal extractor, which runs in the hook worker after
every turn (and in the reward, for every sampled completion).

Plain script: ``.venv/bin/python benchmarks/bench_signals.py [--repeat 5] [--baseline FILE]``.

Quality: precision, recall and F1 per category on the held-out test split of the labelled
corpus of real Claude Code text (labels in ``tests/fixtures/signals/``), for
``capture.signals.classify`` (cues + trained model, reading the previous tool result) beside
the cue-only rules it replaced, on all blocks and on text blocks only. The texts are not in
the repository: build them first with ``scripts/signals-corpus rebuild`` (read from
``$BC_SIGNALS_CORPUS``, else ``.cache/signals/snippets.jsonl``); without them only the
timings below are printed.

Cost: ``classify`` per snippet over the whole corpus, then extraction per trace.

Side by side in one run, for three traces, it times ``extract_signals`` and, as the yardstick
the assembler pays for every turn anyway, redacting the same trace (``redact(record())``, what
``capture.turns.to_trace`` does just before extracting), and prints their ratio:

* typical: the 22 hand-labelled traces of ``tests/capture/labelled_traces.py`` (mean);
* big: 50 calls with 2 KB of reasoning and thinking each and 20 KB outputs (~2 MB);
* huge: the big trace with 10 MB of reasoning in one call and a 5 MB answer.

The goal: extraction stays a fraction of the redaction pass, and the huge trace costs about
what the big one does (the text scanned per trace is bounded), not 5-10x more.

``--baseline FILE`` times another version of ``capture/signals.py`` in the same run, for a
before/after on the same machine, e.g. the cue-only extractor:
``git show 5377f8d:capture/signals.py > /tmp/signals_before.py``.
"""

from __future__ import annotations

import argparse
import functools
import importlib.util
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from claude_bc.capture.redact import redact  # noqa: E402
from claude_bc.capture.schema import ClaudeTrace, ToolCall  # noqa: E402
from claude_bc.capture.signals import extract_signals  # noqa: E402
from tests.capture import labelled_corpus  # noqa: E402
from tests.capture.labelled_corpus import (  # noqa: E402
    CATEGORIES,
    corpus,
    new_classifier,
    old_cues,
    score,
    split,
)
from tests.capture.labelled_traces import TRACES  # noqa: E402

# issue 16's goal on held-out real text (pruning, which is rare: recall 0.5)
GOAL_PRECISION = 0.8
GOAL_RECALL = {"pruning": 0.5}

REASONING = (
    "First I'll read the handler, then the tests. We can't change the public API because "
    "other services call it. A regex would be fragile here; the ast module is safer. "
) * 12


def big_trace(extra_reasoning: int = 0, extra_answer: int = 0) -> ClaudeTrace:
    calls = [
        ToolCall(
            tool="Bash" if i % 3 else "Read",
            args={"command": f"pytest tests/test_{i}.py"},
            # every text different, as in a real turn (the redactor scans a repeated long
            # string once, and the extractor masks a repeated text once)
            reasoning=f"Step {i}. {REASONING}",
            thinking=f"Thinking {i}. {REASONING}",
            output=f"{i:04d} " + "x" * 20_000,
            batch=i,
        )
        for i in range(50)
    ]
    if extra_reasoning:
        calls[0].reasoning = REASONING * (extra_reasoning // len(REASONING))
    return ClaudeTrace(
        trace_id="bench",
        user_prompt="Fix the failing tests in the parser package.",
        tool_calls=calls,
        claude_response="Done. " * 200 + "word " * (extra_answer // 5),
    )


def best(fn: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def redacted(trace: ClaudeTrace) -> object:
    return redact(trace.record())


def quality() -> None:
    test = split("test")
    print(f"held-out test split: {len(test)} snippets of real Claude Code text")
    print(
        f"{'category':<16}{'n':>4}   {'old cues P/R/F1':<18}"
        f"{'new P/R/F1':<18}{'new, text only':<18}{'goal P/R'}"
    )
    text_only = [s for s in test if s.kind == "text"]
    old, new, new_text = (
        score(test, old_cues),
        score(test, new_classifier),
        score(text_only, new_classifier),
    )
    for c in CATEGORIES:
        o, n, t = old[c], new[c], new_text[c]
        print(
            f"{c:<16}{n.tp + n.fn:>4}   {o.precision:.2f}/{o.recall:.2f}/{o.f1:.2f}    "
            f"{n.precision:.2f}/{n.recall:.2f}/{n.f1:.2f}    "
            f"{t.precision:.2f}/{t.recall:.2f}/{t.f1:.2f}    "
            f"{GOAL_PRECISION:.1f}/{GOAL_RECALL.get(c, 0.7):.1f}"
        )
    missed = [
        c
        for c in CATEGORIES
        if new[c].precision < GOAL_PRECISION or new[c].recall < GOAL_RECALL.get(c, 0.7)
    ]
    print(f"categories below the goal: {', '.join(missed) or 'none'}")


def classify_rate(repeat: int) -> None:
    snippets = corpus()
    elapsed = best(lambda: [new_classifier(s) for s in snippets], repeat)
    cues = best(lambda: [old_cues(s) for s in snippets], repeat)
    print(
        f"classify: {len(snippets) / elapsed:,.0f} snippets/s "
        f"({elapsed / len(snippets) * 1e6:.0f} us each; cue-only rules: "
        f"{cues / len(snippets) * 1e6:.0f} us each)"
    )


def load_baseline(path: str) -> Callable[[ClaudeTrace], object]:
    spec = importlib.util.spec_from_file_location("signals_baseline", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    fn: Callable[[ClaudeTrace], object] = module.extract_signals
    return fn


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--baseline", help="another capture/signals.py to time beside this one")
    args = parser.parse_args()
    if labelled_corpus.CORPUS.is_file():
        quality()
        classify_rate(args.repeat)
    else:
        print(
            f"no signals corpus at {labelled_corpus.CORPUS} (the texts are not in the "
            "repository): scripts/signals-corpus rebuild; timing extraction only"
        )
    extractors: list[tuple[str, Callable[[ClaudeTrace], object]]] = [
        ("extract ms", extract_signals)
    ]
    if args.baseline:
        extractors.append(("baseline ms", load_baseline(args.baseline)))
    traces = [
        ("typical (labelled, mean)", [t.trace for t in TRACES]),
        ("big (~2 MB)", [big_trace()]),
        ("huge (~17 MB)", [big_trace(extra_reasoning=10_000_000, extra_answer=5_000_000)]),
    ]
    header = "".join(f"{name:>14}" for name, _ in extractors)
    print(f"{'trace':<26}{header}{'redact ms':>12}{'extract/redact':>16}")
    rows = []
    for name, group in traces:
        times = [
            statistics.fmean(best(functools.partial(fn, t), args.repeat) for t in group)
            for _, fn in extractors
        ]
        red = statistics.fmean(best(functools.partial(redacted, t), args.repeat) for t in group)
        rows.append(times)
        cols = "".join(f"{x * 1e3:>14.2f}" for x in times)
        print(f"{name:<26}{cols}{red * 1e3:>12.2f}{times[0] / red:>16.2f}")
    print(f"huge/big extraction time: {rows[2][0] / rows[1][0]:.2f}x (text scanned is bounded)")
    if args.baseline:
        ratios = ", ".join(f"{r[0] / r[1]:.2f}x" for r in rows)
        print(f"this extractor / baseline (typical, big, huge): {ratios}")


if __name__ == "__main__":
    main()
