"""Capture one real Claude Code session end to end, print the trace, then train on it.

Claude Code (the real, pinned CLI) runs offline against our scripted fake Anthropic API,
with the capture hooks installed by `bc-capture install` into a throw-away project.
Everything lands in a temporary BC_HOME unless you set one. The trace then goes through
`bc-train dataset` and two steps of `bc-train sft` on the embedded default base, then
two steps of `bc-train ppo` and a `bc-train eval` of base, SFT and RL.
"""

from __future__ import annotations

import json
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
    return train_step(bc_home, env) or align_step(bc_home, env)


TRAIN = str(REPO / ".venv" / "bin" / "bc-train")


def train_step(bc_home: Path, env: dict[str, str]) -> int:
    """Capture → dataset → SFT on the embedded default base, kept small to run in minutes."""
    # the scripted answer has ~25 words; the seed's gate wants 50 for real sessions
    (bc_home / "gates.toml").write_text("min_answer_words = 5\n")
    config = bc_home / "demo-train.toml"
    config.write_text(
        '[dataset]\ntool_set = "used"\nmax_length = 2048\n\n'
        "[sft]\nmax_steps = 2\ngrad_accum = 1\nmax_length = 2048\nlogging_steps = 1\n"
        "save_steps = 2\nlearning_rate = 1e-4\nwarmup = 0.0\n"
    )
    print("\n==> bc-train dataset (traces -> chats with tools)")
    if subprocess.run([TRAIN, "dataset", "--config", str(config)], env=env).returncode:
        return 1
    print("\n==> bc-train sft (2 LoRA steps on CPU; the base falls back to the embedded SmolLM2)")
    out = bc_home / "models" / "sft"
    sft = [TRAIN, "sft", "--config", str(config), "--out", str(out)]
    if subprocess.run(sft, env=env).returncode:
        return 1
    print(f"\nadapter:    {out / 'adapter'}")
    print(f"loss curve: {out / 'loss.png'}")
    print(f"metrics:    {out / 'metrics.json'}")
    return 0


def align_step(bc_home: Path, env: dict[str, str]) -> int:
    """SFT → RL (GRPO + KL, 2 steps) → eval of base, SFT and RL, kept small as well."""
    config = bc_home / "demo-align.toml"
    config.write_text(
        "[ppo]\nmax_steps = 2\nnum_generations = 2\nmax_turns = 1\nmax_new_tokens = 32\n"
        "max_completion_length = 256\nlearning_rate = 1e-4\n"
    )
    sft, rl = bc_home / "models" / "sft", bc_home / "models" / "ppo"
    print("\n==> bc-train ppo (GRPO with a KL penalty to the SFT policy; replayed tool calls)")
    ppo = [TRAIN, "ppo", "--config", str(config), "--out", str(rl)]
    if subprocess.run(ppo, env=env).returncode:
        return 1
    base = json.loads((sft / "run.json").read_text())["base"]
    # one captured session means no held-out split: the demo evaluates on its training prompt
    print("\n==> bc-train eval (base -> SFT -> RL, on the demo's only prompt: not held out)")
    models = ["--model", f"base={base}", "--model", f"sft={sft}", "--model", f"rl={rl}"]
    evaluate = [TRAIN, "eval", *models, "--split", "train", "--max-turns", "1",
                "--max-new-tokens", "32"]
    if subprocess.run(evaluate, env=env).returncode:
        return 1
    print(f"\nRL curves:   {rl / 'curves.png'}")
    print(f"eval report: {bc_home / 'eval' / 'report.html'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
