"""Cost of the reasoning-signal extractor, which runs in the hook worker after every turn.

Plain script: ``.venv/bin/python benchmarks/bench_signals.py [--repeat 5]``.

Side by side in one run, for three traces, it times ``extract_signals`` and, as the yardstick
the assembler pays for every turn anyway, redacting the same trace (``redact(record())``, what
``capture.turns.to_trace`` does just before extracting), and prints their ratio:

* typical: the 22 hand-labelled traces of ``tests/capture/labelled_traces.py`` (mean);
* big: 50 calls with 2 KB of reasoning and thinking each and 20 KB outputs (~2 MB);
* huge: the big trace with 10 MB of reasoning in one call and a 5 MB answer.

The goal: extraction stays a fraction of the redaction pass, and the huge trace costs about
what the big one does (the text scanned per trace is bounded), not 5-10x more.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from capture.redact import redact  # noqa: E402
from capture.schema import ClaudeTrace, ToolCall  # noqa: E402
from capture.signals import extract_signals  # noqa: E402
from tests.capture.labelled_traces import TRACES  # noqa: E402

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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    rows: list[tuple[str, float, float]] = []
    typical_extract = statistics.fmean(
        best(lambda t=t: extract_signals(t.trace), args.repeat) for t in TRACES
    )
    typical_redact = statistics.fmean(
        best(lambda t=t: redacted(t.trace), args.repeat) for t in TRACES
    )
    rows.append(("typical (labelled, mean)", typical_extract, typical_redact))
    for name, trace in (
        ("big (~2 MB)", big_trace()),
        ("huge (~17 MB)", big_trace(extra_reasoning=10_000_000, extra_answer=5_000_000)),
    ):
        rows.append(
            (
                name,
                best(lambda tr=trace: extract_signals(tr), args.repeat),
                best(lambda tr=trace: redacted(tr), args.repeat),
            )
        )
    print(f"{'trace':<26}{'extract ms':>12}{'redact ms':>12}{'extract/redact':>16}")
    for name, extract, red in rows:
        print(f"{name:<26}{extract * 1e3:>12.2f}{red * 1e3:>12.2f}{extract / red:>16.2f}")
    print(f"huge/big extraction time: {rows[2][1] / rows[1][1]:.2f}x (text scanned is bounded)")


if __name__ == "__main__":
    main()
