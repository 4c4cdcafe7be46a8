"""Capture one real Claude Code session end to end, print the trace, then show learning.

Claude Code (the real, pinned CLI) runs offline against our scripted fake Anthropic API,
with the capture hooks installed by `bc-capture install` into a throw-away project.
Everything lands in a temporary BC_HOME unless you set one.

Then the imitation benchmark in small (`benchmarks/bench_imitation.py`): a scripted
teacher works three tasks of each of six families through the real Claude Code (captured by
the same hooks), `bc-train dataset` → `sft` → `rl` train the embedded SmolLM2-135M on
those eighteen traces, and `bc-train eval` plays base, SFT and RL on six held-out tasks
(unseen names and paths, reworded requests) in real copies of their repositories.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.claude_code import BASIC_SCENARIO, make_basic_project, run_claude  # noqa: E402
from tests.fake_anthropic import FakeAnthropic  # noqa: E402

BC = str(REPO / ".venv" / "bin" / "bc-capture")


def main() -> int:
    work = Path(tempfile.mkdtemp(prefix="claude-bc-demo-"))
    project = make_basic_project(work / "project")
    bc_home = Path(os.environ.get("BC_HOME") or work / "bc-home")
    env = {**os.environ, "BC_HOME": str(bc_home)}
    subprocess.run([BC, "install", "--project-dir", str(project)], env=env, check=True)
    with FakeAnthropic(BASIC_SCENARIO, cwd=str(project)) as api:
        print(f"running Claude Code in {project} against the fake API at {api.base_url}")
        run = run_claude(
            BASIC_SCENARIO["prompt"],
            project_dir=project,
            home_dir=work / "home",
            base_url=api.base_url,
            extra_env={"BC_HOME": str(bc_home)},
        )
    if run.returncode != 0:
        print(run.stderr, file=sys.stderr)
        return 1
    print(f"Claude Code finished in {run.wall_s:.1f}s (session {run.session_id}); assembling...")
    for _ in range(300):  # the detached worker removes the spool when it is done
        if not list((bc_home / "spool").glob("*.jsonl")):
            break
        time.sleep(0.1)
    ids = subprocess.run([BC, "list"], env=env, capture_output=True, text=True, check=True).stdout
    print(ids)
    trace_id = ids.split()[0]
    subprocess.run([BC, "show", trace_id], env=env, check=True)
    print(f"\nraw JSON: BC_HOME={bc_home} {BC} export")
    return imitation(work)


def imitation(work: Path) -> int:
    """A handful of teacher traces → SFT → RL → held-out table (base vs SFT vs RL)."""
    print("\n==> imitation: 18 teacher traces -> bc-train dataset -> sft -> rl -> eval")
    bench = REPO / "benchmarks" / "bench_imitation.py"
    cmd = [
        sys.executable, str(bench),
        "--quick",  # 18 traces, 20 SFT steps, 1 RL step, 6 held-out tasks (~15 min)
        "--root", str(work / "imitation-project"),
        "--cache", str(work / "imitation-cache"),
        "--out", str(work / "imitation"),
        "--json", str(work / "imitation.json"),
    ]  # fmt: skip
    if subprocess.run(cmd).returncode:
        return 1
    print(f"\nreport: {work / 'imitation' / 'eval' / 'report.html'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
