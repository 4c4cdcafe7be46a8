"""Hook cost per event, as a ratio to a bare interpreter start (goal: ≤ 1.2×).

Runs, interleaved so machine noise hits both alike:
  baseline: <venv python> -I -S -c pass            (stdin = a PreToolUse payload)
  hook:     <venv python> -I -S hooks/record.py    (same payload, appended to a spool)
and prints the median wall time of each and their ratio.

    .venv/bin/python benchmarks/bench_hook.py [--runs 200]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PAYLOAD = REPO / "tests/fixtures/claude-code/hook-payloads/PreToolUse.json"


def payload() -> bytes:
    if PAYLOAD.exists():
        return json.dumps(json.loads(PAYLOAD.read_text())[0]["payload"]).encode()
    return json.dumps(
        {
            "session_id": "bench",
            "hook_event_name": "PreToolUse",
            "tool_name": "Read",
            "tool_input": {"file_path": "/x"},
        }
    ).encode()


def once(cmd: list[str], stdin: bytes, env: dict[str, str]) -> float:
    t0 = time.perf_counter()
    subprocess.run(cmd, input=stdin, env=env, stdout=subprocess.DEVNULL, check=True)
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=200)
    args = ap.parse_args()
    python = str(REPO / ".venv" / "bin" / "python")
    stdin = payload()
    with tempfile.TemporaryDirectory() as tmp:
        env = {"PATH": os.environ["PATH"], "BC_HOME": tmp, "BC_NO_ASSEMBLE": "1"}
        base_cmd = [python, "-I", "-S", "-c", "pass"]
        hook_cmd = [python, "-I", "-S", str(REPO / "hooks" / "record.py")]
        for _ in range(10):  # warm the page cache
            once(base_cmd, stdin, env), once(hook_cmd, stdin, env)
        base, hook = [], []
        for _ in range(args.runs):
            base.append(once(base_cmd, stdin, env))
            hook.append(once(hook_cmd, stdin, env))
        spooled = sum(1 for f in Path(tmp, "spool").glob("*") for _ in f.open())
    b, h = statistics.median(base), statistics.median(hook)
    print(f"baseline python -I -S -c pass: {b * 1000:.2f} ms (median of {args.runs})")
    print(f"hook record.py:               {h * 1000:.2f} ms ({spooled} records spooled)")
    print(f"ratio: {h / b:.2f}x (goal <= 1.2x)")
    sys.exit(0)


if __name__ == "__main__":
    main()
