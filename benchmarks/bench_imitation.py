"""Does training clone behaviour? Teacher corpus → dataset → SFT → RL → held-out eval.

    .venv/bin/python benchmarks/bench_imitation.py --quick --json quick.json   # ≤ 15 min
    .venv/bin/python benchmarks/bench_imitation.py --json full.json            # the full run

1. **Corpus** (``tests/teacher``): six task families over generated repositories. For
   each instance the fake Messages API plays a scripted teacher that works like Claude
   Code, the real Claude Code (2.1.332) executes every call in the repository, and our
   hooks (``bc-capture install``) capture the turn. Held-out instances come from disjoint
   name/path/value pools, plus one reworded request per family; the split is checked
   (no held-out prompt, repository or file path in training) before anything trains.
   Captures are cached (``--cache``): a corpus is a prefix of any bigger one of its seed.
2. ``bc-train dataset`` on the training traces, and on the held-out traces (which
   become the ``eval`` split), with compact tool schemas so samples stay short.
3. ``bc-train sft`` (plain LoRA on CPU) on the embedded SmolLM2-135M-Instruct.
4. ``bc-train ppo`` (GRPO + KL to the SFT policy, replay rollouts).
5. ``bc-train eval`` of base, SFT and RL on the held-out tasks, acting turn by turn in
   real copies of the held-out repositories (``--repos``): one table, ``--json FILE``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.teacher.families import FAMILIES, Instance, corpus, leaks  # noqa: E402
from tests.teacher.run import Recorder  # noqa: E402

TRAIN = str(REPO / ".venv" / "bin" / "bc-train")
ROOT = Path("/tmp/bc-imitation/repo")  # every trace names this project folder

# Claude Code's five tools as the model sees them: short, so a sample stays ~500 tokens
TOOLS = [
    ("Bash", "Run a shell command in the project.", {"command": "string"}),
    ("Read", "Read a file (absolute path).", {"file_path": "string"}),
    (
        "Edit",
        "Replace text in a file.",
        {
            "file_path": "string",
            "old_string": "string",
            "new_string": "string",
            "replace_all": "boolean",
        },
    ),
    (
        "Grep",
        "Search file contents with a regex.",
        {"pattern": "string", "output_mode": "string", "-n": "boolean"},
    ),
    ("Glob", "Find files by name pattern.", {"pattern": "string"}),
]

SIZES: dict[str, dict[str, int]] = {  # per family: train, held-out (+1 reworded); steps
    "quick": {"train": 5, "heldout": 1, "sft_steps": 40, "ppo_steps": 2},
    "full": {"train": 55, "heldout": 2, "sft_steps": 200, "ppo_steps": 8},
}


def log(msg: str) -> None:
    print(f"[bench_imitation {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def tools_file(path: Path) -> Path:
    tools = [
        {
            "name": name,
            "description": desc,
            "input_schema": {
                "type": "object",
                "properties": {k: {"type": v} for k, v in props.items()},
            },
        }
        for name, desc, props in TOOLS
    ]
    path.write_text(json.dumps(tools))
    return path


# --- corpus --------------------------------------------------------------------------------------


def capture(instances: list[Instance], cache: Path, root: Path) -> tuple[float, int]:
    """Record the instances not yet in the cache's store; returns (seconds, runs)."""
    index_file = cache / "recorded.json"
    done: dict[str, str] = json.loads(index_file.read_text()) if index_file.exists() else {}
    todo = [i for i in instances if done.get(i.key) != i.prompt]
    if not todo:
        return 0.0, 0
    recorder = Recorder(root, cache / "home", cache / "bc_home")
    recorder.install()
    t0 = time.monotonic()
    log(f"capturing {len(todo)} teacher runs with the real Claude Code (~4-7 s each)")
    for k, inst in enumerate(todo, 1):
        recorder.play(inst)
        done[inst.key] = inst.prompt
        index_file.write_text(json.dumps(done, indent=1))  # a crash keeps what was captured
        if k % 10 == 0 or k == len(todo):
            log(f"  {k}/{len(todo)} captured")
    recorder.wait()
    return time.monotonic() - t0, len(todo)


def export_traces(cache: Path, instances: list[Instance], out: Path) -> int:
    """The captured traces of ``instances`` (last version of each) as a JSONL file."""
    prompts = {i.prompt for i in instances}
    latest: dict[str, dict[str, Any]] = {}
    store = cache / "bc_home" / "traces" / "traces.jsonl"
    for line in store.read_text().splitlines():
        rec = json.loads(line)
        if rec.get("user_prompt") in prompts:
            latest[rec["trace_id"]] = rec
    by_prompt = {r["user_prompt"]: r for r in latest.values()}
    missing = prompts - by_prompt.keys()
    if missing:
        raise SystemExit(
            f"no captured trace for {len(missing)} prompt(s), e.g. {sorted(missing)[0]}"
        )
    out.write_text("".join(json.dumps(by_prompt[i.prompt]) + "\n" for i in instances))
    return len(instances)


def run(cmd: list[str], env: dict[str, str], what: str) -> float:
    log(f"{what}: {' '.join(cmd[1:4])} ...")
    t0 = time.monotonic()
    proc = subprocess.run(cmd, env=env, check=False)
    if proc.returncode:
        raise SystemExit(f"{what} failed (exit {proc.returncode})")
    return time.monotonic() - t0


def config_text(size: dict[str, int], tools: Path) -> str:
    return (
        "[dataset]\n"
        f'tool_schemas = "{tools}"\n'
        "max_length = 1536\n"
        "eval_fraction = 0.0\n"
        "test_fraction = 0.0\n\n"
        "[sft]\n"
        f"max_steps = {size['sft_steps']}\n"
        "batch_size = 2\ngrad_accum = 1\nmax_length = 1536\n"
        "learning_rate = 1e-3\nwarmup = 0.05\nlogging_steps = 5\n"
        f"save_steps = {size['sft_steps']}\n\n"
        "[ppo]\n"
        f"max_steps = {size['ppo_steps']}\n"
        "num_generations = 4\nmax_turns = 6\nmax_new_tokens = 96\nmax_completion_length = 1536\n"
        "learning_rate = 2e-5\nbeta = 0.04\ntemperature = 0.8\n"
        f"eval_steps = {max(1, size['ppo_steps'])}\nsave_steps = {max(1, size['ppo_steps'])}\n"
        "eval_samples = 6\n"
    )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--quick", action="store_true", help="fewer traces and steps (≤ 15 min)")
    ap.add_argument("--json", type=Path, help="write the results here")
    ap.add_argument("--out", type=Path, help="work folder (default: a new temporary one)")
    ap.add_argument("--cache", type=Path, default=REPO / ".cache" / "bench_imitation")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--root", type=Path, default=ROOT, help="the project folder traces name")
    ap.add_argument("--train-per-family", type=int)
    ap.add_argument("--heldout-per-family", type=int)
    ap.add_argument("--sft-steps", type=int)
    ap.add_argument("--ppo-steps", type=int)
    ap.add_argument("--no-rl", action="store_true", help="stop after SFT (eval base and SFT)")
    ap.add_argument("--eval-turns", type=int, default=8, help="assistant turns per episode")
    ap.add_argument("--eval-tokens", type=int, default=96, help="new tokens per turn")
    args = ap.parse_args()
    size = dict(SIZES["quick" if args.quick else "full"])
    for key, value in (
        ("train", args.train_per_family),
        ("heldout", args.heldout_per_family),
        ("sft_steps", args.sft_steps),
        ("ppo_steps", args.ppo_steps),
    ):
        if value is not None:
            size[key] = value
    t_start = time.monotonic()
    work = args.out or Path(os.environ.get("TMPDIR", "/tmp")) / f"bench-imitation-{os.getpid()}"
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    cache = args.cache / f"seed{args.seed}-{str(args.root).strip('/').replace('/', '-')}"
    cache.mkdir(parents=True, exist_ok=True)
    timings: dict[str, float] = {}

    train, held = corpus(size["train"], size["heldout"], args.seed)
    problems = leaks(train, held)
    if problems:
        raise SystemExit(f"the held-out split leaks into training: {problems[:5]}")
    log(f"corpus: {len(train)} training and {len(held)} held-out instances, split checked")
    timings["capture_s"], runs = capture(train + held, cache, args.root)

    env = {**os.environ, "BC_HOME": str(cache / "bc_home"), "HF_HUB_OFFLINE": "1"}
    tools = tools_file(work / "tools.json")
    cfg = work / "bench.toml"
    cfg.write_text(config_text(size, tools))
    export_traces(cache, train, work / "train_traces.jsonl")
    export_traces(cache, held, work / "heldout_traces.jsonl")
    dataset, heldout = work / "dataset", work / "heldout"
    t = run(
        [
            TRAIN,
            "dataset",
            "--config",
            str(cfg),
            "--traces",
            str(work / "train_traces.jsonl"),
            "--out",
            str(dataset),
        ],
        env,
        "dataset",
    )
    t += run(
        [
            TRAIN,
            "dataset",
            "--config",
            str(cfg),
            "--traces",
            str(work / "heldout_traces.jsonl"),
            "--out",
            str(heldout),
        ],
        env,
        "held-out dataset",
    )
    shutil.copy(heldout / "train.jsonl", dataset / "eval.jsonl")
    timings["dataset_s"] = t
    stats = json.loads((dataset / "stats.json").read_text())
    root = str(args.root)
    repos = {i.prompt: {"root": root, "files": i.files, "final_files": i.final_files} for i in held}
    (work / "repos.json").write_text(json.dumps(repos))

    sft, rl = work / "sft", work / "rl"
    timings["sft_s"] = run(
        [
            TRAIN,
            "sft",
            "--config",
            str(cfg),
            "--dataset",
            str(dataset),
            "--out",
            str(sft),
            "--base",
            "embedded:smollm2",
        ],
        env,
        "sft",
    )
    models = ["--model", "base=embedded:smollm2", "--model", f"sft={sft}"]
    if not args.no_rl:
        timings["ppo_s"] = run(
            [
                TRAIN,
                "ppo",
                "--config",
                str(cfg),
                "--sft",
                str(sft),
                "--dataset",
                str(dataset),
                "--out",
                str(rl),
            ],
            env,
            "ppo",
        )
        models += ["--model", f"rl={rl}"]
    timings["eval_s"] = run(
        [
            TRAIN,
            "eval",
            *models,
            "--dataset",
            str(dataset),
            "--split",
            "eval",
            "--repos",
            str(work / "repos.json"),
            "--out",
            str(work / "eval"),
            "--max-turns",
            "8",
            "--max-new-tokens",
            "96",
        ],
        env,
        "eval",
    )
    timings["total_s"] = time.monotonic() - t_start
    results = json.loads((work / "eval" / "results.json").read_text())
    sft_summary = json.loads((sft / "metrics.json").read_text())["summary"]
    report = {
        "mode": "quick" if args.quick else "full",
        "size": size,
        "families": list(FAMILIES),
        "instances": {"train": len(train), "heldout": len(held)},
        "dataset": {"samples": stats["samples"], "tokens": stats["tokens"]},
        "captured_now": runs,
        "timings_s": {k: round(v, 1) for k, v in timings.items()},
        "sft": sft_summary,
        "models": {r["name"]: r["metrics"] for r in results},
        "work": str(work),
    }
    print(table(report))
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    return 0


ROWS = (
    "parsable_call_rate",
    "first_call",
    "tool_alignment",
    "exact_sequence",
    "argument_match",
    "reward",
    "constraints",
    "tools",
    "self_correction",
    "outcome",
    "depth",
    "final_state",
)


def table(report: dict[str, Any]) -> str:
    names = list(report["models"])
    lines = [
        f"held-out: {report['instances']['heldout']} tasks ({len(report['families'])} families, "
        f"one reworded each); trained on {report['instances']['train']} teacher traces",
        "| metric | " + " | ".join(names) + " |",
        "|---|" + "---:|" * len(names),
    ]
    for row in ROWS:
        cells = []
        for n in names:
            v = report["models"][n].get(row)
            cells.append("n/a" if v is None else f"{v:.3f}")
        lines.append(f"| {row} | " + " | ".join(cells) + " |")
    lines.append("timings (s): " + ", ".join(f"{k} {v}" for k, v in report["timings_s"].items()))
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
