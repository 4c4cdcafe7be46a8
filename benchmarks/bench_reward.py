"""Behavioural reward evaluations per second on one core (goal: >= 50,000).

Plain script: ``.venv/bin/python benchmarks/bench_reward.py [--n 4000] [--repeat 5]``.
Pins itself to one core and counts the process's CPU time (best of ``repeat`` runs).
Builds 50 reference traces shaped like real Claude Code turns (8 calls with reasoning
text, edits, a ~600-character answer) and ``n`` distinct model completions in the
training template's format, then measures side by side in one run:

* ``score``: one reward evaluation, the comparison of a completion's features with the
  reference's precomputed features (what the goal is about);
* ``from text``: the whole path from completion text (parse the tool calls, build the
  candidate trace, extract its signals, score);
* ``naive``: the same whole path recomputing the reference's features every time, as a
  reward without precomputation would; the ratio shows what precomputing buys.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from claude_bc.capture.schema import ClaudeTrace, ToolCall  # noqa: E402
from claude_bc.training.reward import (  # noqa: E402
    BehavioralRewardModel,
    features,
    parse_completion,
    reward,
    score,
)
from claude_bc.training.template import PYTHON_TAG, render_call  # noqa: E402

TOOLS = ["Read", "Grep", "Glob", "Bash", "Edit", "Write"]
REASONS = [
    "I can't modify the public API, so I'll check the callers first.",
    "Let me read the tests before changing anything.",
    "Actually, the failure is in the parser, not the lexer; let me look there.",
    "The config must stay compatible with Python 3.8.",
]


def reference(rng: random.Random, i: int) -> ClaudeTrace:
    calls = []
    for _ in range(8):
        tool = rng.choice(TOOLS)
        path = f"/repo/src/module_{rng.randint(0, 9)}.py"
        args: dict[str, object] = {"file_path": path}
        if tool == "Edit":
            args |= {"old_string": "x = parse(a)", "new_string": "x = parse(a, strict=True)"}
        if tool == "Bash":
            args = {"command": f"pytest -q tests/test_module_{rng.randint(0, 9)}.py"}
        calls.append(ToolCall(tool=tool, args=args, reasoning=rng.choice(REASONS), output="ok"))
    answer = "I fixed the parser so strict mode rejects trailing commas; all tests pass. " * 8
    return ClaudeTrace(
        trace_id=f"t{i}", user_prompt="fix it", tool_calls=calls, claude_response=answer
    )


def completion(rng: random.Random, ref: ClaudeTrace, i: int) -> str:
    calls = rng.sample(ref.tool_calls, rng.randint(1, 6))
    lines = [render_call(c.tool, {**c.args, "n": i}) for c in calls]
    return f"{rng.choice(REASONS)} (attempt {i}){PYTHON_TAG}" + "\n".join(lines)


def rate(fn: Callable[[], int], repeat: int) -> float:
    # CPU time of this process, not wall time: on a shared machine other work on the same
    # core stretches the wall clock, not the work a reward evaluation costs
    best = 0.0
    for _ in range(repeat):
        start = time.process_time()
        n = fn()
        best = max(best, n / (time.process_time() - start))
    return best


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=4000)
    parser.add_argument("--repeat", type=int, default=5)
    opts = parser.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    rng = random.Random(0)
    refs = [reference(rng, i) for i in range(50)]
    model = BehavioralRewardModel(refs)
    rows = [(completion(rng, refs[i % 50], i), refs[i % 50]) for i in range(opts.n)]
    parsed = [(parse_completion(text, ref), ref) for text, ref in rows]
    got = [(features(c), model.reference_features(r.trace_id)) for c, r in parsed if c]

    def run_score() -> int:
        for g, w in got:
            score(g, w)
        return len(got)

    def run_text() -> int:
        for text, ref in rows:
            model.score_trace(parse_completion(text, ref), ref.trace_id)
        return len(rows)

    def run_naive() -> int:
        for text, ref in rows:
            reward(parse_completion(text, ref), ref)
        return len(rows)

    score_rate = rate(run_score, opts.repeat)
    text_rate = rate(run_text, opts.repeat)
    naive_rate = rate(run_naive, opts.repeat)
    print(f"reward evaluations on one core ({len(got)} distinct completions, 50 references)")
    print(f"  score (features precomputed):   {score_rate:>10,.0f} /s   goal >= 50,000")
    print(f"  from completion text:           {text_rate:>10,.0f} /s")
    print(f"  from text, naive (no precompute): {naive_rate:>8,.0f} /s")
    print(f"  precomputing references: {text_rate / naive_rate:.2f}x faster from text")
    return 0 if score_rate >= 50_000 else 1


if __name__ == "__main__":
    sys.exit(main())
