"""A real Claude Code run with the capture hooks vs without (goal: ≤ 1.4×).

The pinned Claude Code CLI runs the `basic` scenario (5 tool calls, 23 hook events)
against the scripted fake API, alternately in a project with our hooks installed by
`bc-capture install` and in an identical project without them. Prints the median wall
time of each and the ratio. The detached assembly worker is not waited for (Claude Code
does not wait for it either).

    .venv/bin/python benchmarks/bench_e2e.py [--runs 7]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.claude_code import BASIC_SCENARIO, make_basic_project, run_claude  # noqa: E402
from tests.fake_anthropic import FakeAnthropic  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=7)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(ignore_cleanup_errors=True) as tmp:
        work = Path(tmp)
        bc_home = work / "bc-home"
        env = {**os.environ, "BC_HOME": str(bc_home)}
        times: dict[str, list[float]] = {"without": [], "with": []}
        for i in range(args.runs + 1):  # the first round warms caches and is dropped
            for mode in ("without", "with"):
                project = make_basic_project(work / f"{mode}-{i}")
                if mode == "with":
                    subprocess.run(
                        [
                            str(REPO / ".venv/bin/bc-capture"),
                            "install",
                            "--project-dir",
                            str(project),
                        ],
                        env=env,
                        check=True,
                        capture_output=True,
                    )
                with FakeAnthropic(BASIC_SCENARIO, cwd=str(project)) as api:
                    run = run_claude(
                        BASIC_SCENARIO["prompt"],
                        project_dir=project,
                        home_dir=work / "home",
                        base_url=api.base_url,
                        extra_env={"BC_HOME": str(bc_home)},
                    )
                assert run.returncode == 0, run.stderr
                if i:
                    times[mode].append(run.wall_s)
    a, b = statistics.median(times["without"]), statistics.median(times["with"])
    print(f"claude -p without hooks: {a:.3f} s (median of {args.runs})")
    print(f"claude -p with capture:  {b:.3f} s")
    print(f"ratio: {b / a:.2f}x (goal <= 1.4x)")


if __name__ == "__main__":
    main()
