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
4. ``bc-train rl`` (GRPO + KL to the SFT policy, replay rollouts).
5. ``bc-train eval`` of base, SFT and RL on the held-out tasks, acting turn by turn in
   real copies of the held-out repositories (``--repos``).
6. **In Claude Code** (``tests/teacher/in_claude_code.py``; ``--no-claude-code`` skips it):
   each model of ``--cc-models`` is exported (``bc-train export``), served
   (``bc-train serve``, training system prompt) and the real Claude Code works every
   held-out task against it (``--max-turns``, a wall-clock limit per task), our hooks
   capturing the sessions into a ``BC_HOME`` of their own; the captured traces are scored
   against the teacher's with the eval's metrics and the final repository state.

One table (eval columns, then "in Claude Code" columns), ``--json FILE``. To (re)run
only stage 6 on a finished run's folder: ``--claude-code-only --from WORK``.
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
from typing import TYPE_CHECKING, Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.teacher.families import FAMILIES, Instance, corpus, leaks  # noqa: E402
from tests.teacher.run import Recorder  # noqa: E402

if TYPE_CHECKING:
    from tests.teacher.in_claude_code import Settings

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

# per family: train, held-out (+1 reworded); steps; eval turns and tokens per turn; how
# many held-out tasks stage 6 plays in Claude Code (0: all). Measured on 2 CPU cores (bf16
# SFT at ~83 tokens/s, ~20 s a step): SFT is two thirds of a run's time, so the quick run
# (~15 min, also what scripts/demo runs) trains 20 steps on 18 traces and evaluates the 6
# reworded held-out tasks; the full one (~60 min) 80 steps on 300, 18 held-out tasks.
# Tokens per turn, in eval, RL and Claude Code: the teacher's longest turn (a rename's two
# parallel Edits) is 133 tokens in training and 141 held out (SmolLM2's tokenizer); a
# smaller limit cuts the right answer off and scores it unparsable.
TURN_TOKENS = 160
SIZES: dict[str, dict[str, int]] = {
    "quick": {
        "train": 3, "heldout": 0, "sft_steps": 20, "rl_steps": 1,
        "eval_turns": 6, "eval_tokens": TURN_TOKENS, "cc_tasks": 3,
    },
    "full": {
        "train": 50, "heldout": 2, "sft_steps": 80, "rl_steps": 4,
        "eval_turns": 8, "eval_tokens": TURN_TOKENS, "cc_tasks": 0,
    },
}  # fmt: skip
CC_MODELS = {"quick": "sft", "full": "base,sft,rl"}  # played in Claude Code by default


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


def make_dataset(cfg: Path, traces: Path, out: Path, env: dict[str, str]) -> float:
    cmd = [TRAIN, "dataset", "--config", str(cfg), "--traces", str(traces), "--out", str(out)]
    return run(cmd, env, f"dataset {out.name}")


def train_sft(cfg: Path, dataset: Path, out: Path, env: dict[str, str]) -> float:
    cmd = [TRAIN, "sft", "--config", str(cfg), "--dataset", str(dataset), "--out", str(out)]
    return run([*cmd, "--base", "embedded:smollm2"], env, f"sft {out.name}")


def evaluate(
    models: dict[str, str], work: Path, out: Path, args: argparse.Namespace, env: dict[str, str]
) -> float:
    """``bc-train eval`` of ``models`` (name: folder) on the held-out tasks, acting live."""
    cmd = [TRAIN, "eval", "--dataset", str(work / "dataset"), "--split", "eval"]
    cmd += ["--repos", str(work / "repos.json"), "--out", str(out)]
    cmd += ["--max-turns", str(args.eval_turns), "--max-new-tokens", str(args.eval_tokens)]
    for name, folder in models.items():
        cmd += ["--model", f"{name}={folder}"]
    return run(cmd, env, f"eval {', '.join(models)}")


def cpu_bf16() -> bool:
    """Whether this CPU multiplies bf16 natively (avx512_bf16 or AMX): SFT then trains under
    bf16 autocast, 1.4x faster here than fp32; elsewhere emulated bf16 would be slower."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return any(f in flags.split() for f in ("avx512_bf16", "amx_bf16"))


def config_text(size: dict[str, int], tools: Path, checkpoints: int = 1) -> str:
    """The run's ``bench.toml``; SFT saves (and evaluates) ``checkpoints`` times."""
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
        + ("bf16 = true\n" if cpu_bf16() else "")  # else the default: bf16 on CUDA only
        + f"save_steps = {max(1, size['sft_steps'] // checkpoints)}\n"
        f"save_total_limit = {checkpoints}\n\n"
        "[rl]\n"
        f"max_steps = {size['rl_steps']}\n"
        f"num_generations = 4\nmax_turns = 6\nmax_new_tokens = {TURN_TOKENS}\n"
        "max_completion_length = 1536\n"
        "learning_rate = 2e-5\nbeta = 0.04\ntemperature = 0.8\n"
        f"eval_steps = {max(1, size['rl_steps'])}\nsave_steps = {max(1, size['rl_steps'])}\n"
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
    ap.add_argument("--rl-steps", "--ppo-steps", dest="rl_steps", type=int)
    ap.add_argument("--no-rl", action="store_true", help="stop after SFT (eval base and SFT)")
    ap.add_argument(
        "--families",
        help=f"only these task families, comma-separated (default: all of {','.join(FAMILIES)})",
    )
    ap.add_argument("--eval-turns", type=int, help="assistant turns per episode (8; quick 6)")
    ap.add_argument("--eval-tokens", type=int, help=f"new tokens per turn ({TURN_TOKENS})")
    ap.add_argument(
        "--curve-steps", action="store_true", help="also eval SFT's checkpoints (4 per run)"
    )
    ap.add_argument(
        "--curve-sizes", help="also train SFT on N traces per family (e.g. 5,20), same steps"
    )
    cc = ap.add_argument_group("in Claude Code (stage 6)")
    cc.add_argument("--no-claude-code", action="store_true", help="skip stage 6")
    cc.add_argument(
        "--claude-code-only",
        action="store_true",
        help="only stage 6, on the finished run in --from (its sft/, rl/, dataset/, repos.json)",
    )
    cc.add_argument("--from", dest="from_work", type=Path, help="a finished run's work folder")
    cc.add_argument(
        "--cc-models",
        help="models to play, of base,sft,rl (default: sft with --quick, else all trained)",
    )
    cc.add_argument("--cc-max-turns", type=int, default=8, help="Claude Code --max-turns")
    cc.add_argument("--cc-timeout", type=float, default=150, help="seconds per task")
    cc.add_argument("--cc-max-tokens", type=int, default=TURN_TOKENS, help="tokens per reply")
    cc.add_argument("--cc-tasks", type=int, help="only N held-out tasks, spread over the split")
    cc.add_argument(
        "--cc-gguf",
        choices=("q4_k_m", "f16"),
        default="q4_k_m",
        help="which export Claude Code plays: the q4_k_m that ships, or f16 to compare",
    )
    cc.add_argument(
        "--cc-rollout",
        action="store_true",
        help="Claude Code goes through `bc-capture proxy --rollout 100 --local` to the model",
    )
    args = ap.parse_args()
    if args.claude_code_only:
        if args.from_work is None:
            ap.error("--claude-code-only needs --from WORK")
        return claude_code_only(args)
    size = dict(SIZES["quick" if args.quick else "full"])
    for key, value in (
        ("train", args.train_per_family),
        ("heldout", args.heldout_per_family),
        ("sft_steps", args.sft_steps),
        ("rl_steps", args.rl_steps),
        ("eval_turns", args.eval_turns),
        ("eval_tokens", args.eval_tokens),
        ("cc_tasks", args.cc_tasks),
    ):
        if value is not None:
            size[key] = value
    args.eval_turns, args.eval_tokens = size["eval_turns"], size["eval_tokens"]
    args.cc_tasks = size["cc_tasks"] or None
    t_start = time.monotonic()
    work = args.out or Path(os.environ.get("TMPDIR", "/tmp")) / f"bench-imitation-{os.getpid()}"
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    cache = args.cache / f"seed{args.seed}-{str(args.root).strip('/').replace('/', '-')}"
    cache.mkdir(parents=True, exist_ok=True)
    timings: dict[str, float] = {}

    train, held = corpus(size["train"], size["heldout"], args.seed)
    families = args.families.split(",") if args.families else list(FAMILIES)
    if unknown := set(families) - set(FAMILIES):
        raise SystemExit(f"unknown families: {sorted(unknown)} (known: {', '.join(FAMILIES)})")
    train = [i for i in train if i.family in families]
    held = [i for i in held if i.family in families]
    problems = leaks(train, held)
    if problems:
        raise SystemExit(f"the held-out split leaks into training: {problems[:5]}")
    log(f"corpus: {len(train)} training and {len(held)} held-out instances, split checked")
    timings["capture_s"], runs = capture(train + held, cache, args.root)

    env = {**os.environ, "BC_HOME": str(cache / "bc_home"), "HF_HUB_OFFLINE": "1"}
    tools = tools_file(work / "tools.json")
    cfg = work / "bench.toml"
    cfg.write_text(config_text(size, tools, 4 if args.curve_steps else 1))
    export_traces(cache, train, work / "train_traces.jsonl")
    export_traces(cache, held, work / "heldout_traces.jsonl")
    dataset, heldout = work / "dataset", work / "heldout"
    t = make_dataset(cfg, work / "train_traces.jsonl", dataset, env)
    t += make_dataset(cfg, work / "heldout_traces.jsonl", heldout, env)
    shutil.copy(heldout / "train.jsonl", dataset / "eval.jsonl")
    timings["dataset_s"] = t
    stats = json.loads((dataset / "stats.json").read_text())
    root = str(args.root)
    repos = {i.prompt: {"root": root, "files": i.files, "final_files": i.final_files} for i in held}
    (work / "repos.json").write_text(json.dumps(repos))

    sft, rl = work / "sft", work / "rl"
    timings["sft_s"] = train_sft(cfg, dataset, sft, env)
    models = {"base": "embedded:smollm2", "sft": str(sft)}
    if not args.no_rl:
        timings["rl_s"] = run(
            [
                TRAIN,
                "rl",
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
            "rl",
        )
        models["rl"] = str(rl)
    timings["eval_s"] = evaluate(models, work, work / "eval", args, env)
    if args.curve_steps or args.curve_sizes:
        t0 = time.monotonic()
        sizes = [int(n) for n in args.curve_sizes.split(",")] if args.curve_sizes else []
        curve = curves(args, work, size, train, sizes, cache, cfg, env)
        timings["curves_s"] = time.monotonic() - t0
    results = json.loads((work / "eval" / "results.json").read_text())
    sft_summary = json.loads((sft / "metrics.json").read_text())["summary"]
    report = {
        "mode": "quick" if args.quick else "full",
        "size": size,
        "families": families,
        "instances": {"train": len(train), "heldout": len(held)},
        "dataset": {"samples": stats["samples"], "tokens": stats["tokens"]},
        "captured_now": runs,
        "timings_s": {},
        "sft": sft_summary,
        "models": {r["name"]: r["metrics"] for r in results},
        "work": str(work),
    }
    if args.curve_steps or args.curve_sizes:
        report["curves"] = curve
    if not args.no_claude_code:
        t0 = time.monotonic()
        report["in_claude_code"] = in_claude_code(args, work, cc_settings(args, work))
        timings["claude_code_s"] = time.monotonic() - t0
    timings["total_s"] = time.monotonic() - t_start
    report["timings_s"] = {k: round(v, 1) for k, v in timings.items()}
    return finish(report, args.json)


# --- learning curves ---------------------------------------------------------------------------

CURVE_METRICS = ("parsable_call_rate", "tool_alignment", "first_call", "reward", "final_state")


def checkpoint_run(sft: Path, checkpoint: Path, out: Path) -> Path:
    """An SFT checkpoint as a run folder ``bc-train eval`` loads: the checkpoint's adapter
    with the finished run's ``run.json`` and tokenizer files."""
    adapter = out / "adapter"
    skip = shutil.ignore_patterns("optimizer.pt", "scheduler.pt", "rng_state*", "training_args.bin")
    shutil.copytree(checkpoint, adapter, ignore=skip, dirs_exist_ok=True)
    for f in (sft / "adapter").iterdir():
        if f.is_file() and not f.name.startswith("adapter_") and not (adapter / f.name).exists():
            shutil.copy(f, adapter / f.name)
    shutil.copy(sft / "run.json", out / "run.json")
    return out


def eval_losses(sft: Path) -> dict[int, float]:
    history = json.loads((sft / "metrics.json").read_text())["log_history"]
    return {h["step"]: round(h["eval_loss"], 4) for h in history if "eval_loss" in h}


def curves(
    args: argparse.Namespace,
    work: Path,
    size: dict[str, int],
    train: list[Instance],
    sizes: list[int],
    cache: Path,
    cfg: Path,
    env: dict[str, str],
) -> dict[str, list[dict[str, Any]]]:
    """Where learning stops: held-out metrics over SFT steps (the run's checkpoints; step 0
    is the base) and over corpus size (the first N instances of each family, as many steps).
    One ``bc-train eval`` plays every extra model, with the main eval's settings."""
    out = work / "curves"
    models: dict[str, str] = {}
    if args.curve_steps:
        for ckpt in (work / "sft" / "checkpoints").glob("checkpoint-*"):
            step = int(ckpt.name.rsplit("-", 1)[1])
            if step < size["sft_steps"]:
                models[f"step{step}"] = str(checkpoint_run(work / "sft", ckpt, out / f"step{step}"))
    corpus_runs: dict[int, Path] = {}
    for n in sorted(k for k in sizes if k < size["train"]):
        part = [i for i in train if int(i.key.rsplit(":", 1)[1]) < n]
        export_traces(cache, part, out / f"train{n}.jsonl")
        make_dataset(cfg, out / f"train{n}.jsonl", out / f"dataset{n}", env)
        shutil.copy(work / "dataset" / "eval.jsonl", out / f"dataset{n}" / "eval.jsonl")
        train_sft(cfg, out / f"dataset{n}", out / f"sft{n}", env)
        corpus_runs[len(part)] = out / f"sft{n}"
        models[f"corpus{len(part)}"] = str(out / f"sft{n}")
    extra: dict[str, dict[str, Any]] = {}
    if models:
        evaluate(models, work, out / "eval", args, env)
        extra = {
            r["name"]: r["metrics"] for r in json.loads((out / "eval" / "results.json").read_text())
        }
    main = {
        r["name"]: r["metrics"] for r in json.loads((work / "eval" / "results.json").read_text())
    }
    losses = eval_losses(work / "sft")

    def point(metrics: dict[str, Any], **where: Any) -> dict[str, Any]:
        return {**where, **{k: metrics.get(k) for k in CURVE_METRICS}}

    steps = [point(main["base"], step=0)]
    steps += [
        point(extra[name], step=int(name[4:]), eval_loss=losses.get(int(name[4:])))
        for name in sorted((n for n in extra if n.startswith("step")), key=lambda n: int(n[4:]))
    ]
    final = size["sft_steps"]
    steps.append(point(main["sft"], step=final, eval_loss=losses.get(final)))
    sizes_out = [
        point(extra[f"corpus{k}"], traces=k, eval_loss=eval_losses(p).get(final))
        for k, p in sorted(corpus_runs.items())
    ]
    sizes_out.append(point(main["sft"], traces=len(train), eval_loss=losses.get(final)))
    return {"steps": steps if args.curve_steps else [], "corpus": sizes_out if sizes else []}


def curve_table(curve: dict[str, list[dict[str, Any]]]) -> list[str]:
    lines = []
    for axis, key in (("steps", "step"), ("corpus", "traces")):
        if not curve.get(axis):
            continue
        lines += ["", f"| SFT {key} | eval loss | " + " | ".join(CURVE_METRICS) + " |"]
        lines.append("|---:|---:|" + "---:|" * len(CURVE_METRICS))
        for p in curve[axis]:
            cells = [p.get("eval_loss"), *(p.get(k) for k in CURVE_METRICS)]
            text = ["n/a" if c is None else f"{c:.3f}" for c in cells]
            lines.append(f"| {p[key]} | " + " | ".join(text) + " |")
    return lines


def finish(report: dict[str, Any], json_out: Path | None) -> int:
    print(table(report))
    if json_out:
        json_out.write_text(json.dumps(report, indent=2) + "\n")
    return 0


# --- stage 6: in Claude Code ------------------------------------------------------------------


def cc_settings(args: argparse.Namespace, work: Path) -> Settings:
    from tests.teacher.in_claude_code import Settings

    tools = work / "tools.json"  # the compact schemas the dataset trained with
    return Settings(
        max_turns=args.cc_max_turns,
        task_timeout_s=args.cc_timeout,
        max_tokens=args.cc_max_tokens,
        tool_schemas=tools if tools.is_file() else None,
        rollout=args.cc_rollout,
        gguf=args.cc_gguf,
    )


def cc_models(work: Path, wanted: str) -> list[tuple[str, Path]]:
    """``(name, folder)`` of the models to play: the base (the folder SFT trained on),
    ``sft/`` and ``rl/`` where they exist."""
    found: dict[str, Path] = {}
    run_file = work / "sft" / "run.json"
    if run_file.is_file():
        base = Path(json.loads(run_file.read_text()).get("base") or "")
        if (base / "config.json").is_file():
            found["base"] = base
        found["sft"] = work / "sft"
    if (work / "rl" / "run.json").is_file():
        found["rl"] = work / "rl"
    names = [n.strip() for n in wanted.split(",") if n.strip()]
    unknown = [n for n in names if n not in ("base", "sft", "rl")]
    if unknown:
        raise SystemExit(f"--cc-models: unknown model(s) {unknown} (base, sft, rl)")
    missing = [n for n in names if n not in found and n != "rl"]
    if missing:
        raise SystemExit(f"no {', '.join(missing)} model in {work}")
    return [(n, found[n]) for n in names if n in found]


def in_claude_code(
    args: argparse.Namespace, work: Path, settings: Settings
) -> dict[str, dict[str, Any]]:
    from tests.teacher.in_claude_code import stage

    wanted = args.cc_models or CC_MODELS["quick" if args.quick else "full"]
    models = cc_models(work, wanted)
    # another quantization plays in a folder of its own, beside the shipped one's results
    out = work / ("claude_code" if settings.gguf == "q4_k_m" else f"claude_code-{settings.gguf}")
    results = stage(
        models, work / "dataset", work / "repos.json", out, settings, log, args.cc_tasks
    )
    for name, r in results.items():
        if "error" in r:
            log(f"in Claude Code, {name}: FAILED: {r['error']}")
    return results


def claude_code_only(args: argparse.Namespace) -> int:
    """Stage 6 alone on a finished run's folder; the table shows its eval beside it."""
    work: Path = args.from_work
    for need in ("dataset/eval.jsonl", "repos.json", "sft/run.json"):
        if not (work / need).is_file():
            raise SystemExit(f"{work} is not a finished bench_imitation run: no {need}")
    t0 = time.monotonic()
    results_file = work / "eval" / "results.json"
    results = json.loads(results_file.read_text()) if results_file.is_file() else []
    repos = json.loads((work / "repos.json").read_text())
    stats_file = work / "dataset" / "stats.json"
    stats = json.loads(stats_file.read_text()) if stats_file.is_file() else {}
    train_file = work / "train_traces.jsonl"
    trained = len(train_file.read_text().splitlines()) if train_file.is_file() else 0
    report: dict[str, Any] = {
        "mode": "claude-code-only",
        "families": list(FAMILIES),
        "instances": {"train": trained, "heldout": len(repos)},
        "dataset": {k: stats.get(k) for k in ("samples", "tokens")},
        "models": {r["name"]: r["metrics"] for r in results},
        "work": str(work),
    }
    if args.cc_models is None:
        args.cc_models = "sft"
    report["in_claude_code"] = in_claude_code(args, work, cc_settings(args, work))
    report["timings_s"] = {"claude_code_s": round(time.monotonic() - t0, 1)}
    return finish(report, args.json)


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


CC_ROWS = (
    "call_turn_rate",
    "finished",
    "api_error",
    "max_turns_hit",
    "timed_out",
    "model_turns",
    "wall_s",
)


def table(report: dict[str, Any]) -> str:
    """The eval's columns, then one "in Claude Code" column per model played there (its
    extra rows: how the sessions ran; n/a for the eval's columns)."""
    cc = {n: r for n, r in (report.get("in_claude_code") or {}).items() if "metrics" in r}
    cols = [(n, m) for n, m in report["models"].items()]
    cols += [(f"{n} in Claude Code", r["metrics"]) for n, r in cc.items()]
    lines = [
        f"held-out: {report['instances']['heldout']} tasks ({len(report['families'])} families, "
        f"one reworded each); trained on {report['instances']['train']} teacher traces",
        "| metric | " + " | ".join(n for n, _ in cols) + " |",
        "|---|" + "---:|" * len(cols),
    ]
    runs = [None] * len(report["models"]) + [r["runs"] for r in cc.values()]
    for row in ROWS:
        cells = ["n/a" if m.get(row) is None else f"{m[row]:.3f}" for _, m in cols]
        lines.append(f"| {row} | " + " | ".join(cells) + " |")
    if cc:
        for row in CC_ROWS:
            cells = ["n/a" if r is None or row not in r else f"{r[row]:.3f}" for r in runs]
            lines.append(f"| {row} | " + " | ".join(cells) + " |")
    for name, r in (report.get("in_claude_code") or {}).items():
        if "error" in r:
            lines.append(f"{name} in Claude Code: FAILED: {r['error']}")
        else:
            lines.append(
                f"{name} in Claude Code, timings (s): "
                + ", ".join(f"{k} {v}" for k, v in r["timings_s"].items())
            )
            if "rollout" in r:  # requests the rollout proxy sent to each side
                served = ", ".join(f"{k} {v}" for k, v in sorted(r["rollout"].items()))
                lines.append(f"{name} in Claude Code, through the rollout proxy at 100%: {served}")
    lines += curve_table(report.get("curves") or {})
    lines.append("timings (s): " + ", ".join(f"{k} {v}" for k, v in report["timings_s"].items()))
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
