"""``bc-train reward | rl | mine | eval``: the behavioural-alignment commands.

Registered on the ``bc-train`` group in ``claude_bc/cli.py``. Heavy imports (torch, TRL)
happen inside the commands, so ``bc-train --help`` and ``bc-train reward`` stay fast.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from claude_bc.capture import paths, store
from claude_bc.capture.errors import BCError
from claude_bc.capture.safejson import read_jsonl
from claude_bc.capture.schema import ClaudeTrace
from claude_bc.training.replay import candidate_trace, turns_from_messages
from claude_bc.training.reward import COMPONENTS, BehavioralRewardModel, Reward, parse_completion

TRACES_HELP = "Claude's traces as JSONL (default: the capture store under $BC_HOME)."


def load_traces(path: Path | None) -> list[ClaudeTrace]:
    """Traces from a JSONL file (last version of an id wins) or from the capture store."""
    traces, problems = store.read_traces(path)
    if path is not None and path.is_file() and problems:
        raise BCError(str(problems[0]))
    for problem in problems:
        click.echo(f"warning: {problem}", err=True)
    if not traces:
        where = path or paths.traces_dir()
        raise BCError(f"no traces in {where}: capture some first (bc-capture install)")
    return traces


def score_row(model: BehavioralRewardModel, row: dict[str, Any], where: str) -> Reward:
    """Score one row of a model-outputs file: ``completion`` text or chat ``messages``."""
    trace_id = row.get("trace_id")
    if not isinstance(trace_id, str) or trace_id not in model.references:
        raise BCError(f"{where}: trace_id {trace_id!r} is not one of the given traces")
    reference = model.references[trace_id]
    if isinstance(row.get("completion"), str):
        text = row["completion"]
        candidate = parse_completion(text, reference)
    elif isinstance(row.get("messages"), list):
        text = json.dumps(row["messages"], ensure_ascii=False)
        parsed = turns_from_messages(row["messages"])
        candidate = None if parsed is None else candidate_trace(reference, *parsed)
    else:
        raise BCError(f"{where}: needs a 'completion' string or a 'messages' list")
    result = model.score_trace(candidate, trace_id)
    model.audit(result, trace_id, text)
    return result


def summary_table(rows: list[tuple[str, list[Reward]]]) -> str:
    """Mean reward and components per group (e.g. per model), as an aligned text table."""
    head = ["", "n", "reward", *COMPONENTS, "unparsable"]
    body = []
    for name, results in rows:
        n = len(results)
        means = [sum(r.components[c] for r in results) / n for c in COMPONENTS]
        body.append(
            [
                name,
                str(n),
                f"{sum(r.total for r in results) / n:+.3f}",
                *(f"{m:.3f}" for m in means),
                str(sum(not r.parsed for r in results)),
            ]
        )
    widths = [max(len(line[i]) for line in [head, *body]) for i in range(len(head))]
    return "\n".join(
        "  ".join(
            cell.ljust(w) if i == 0 else cell.rjust(w)
            for i, (cell, w) in enumerate(zip(line, widths, strict=True))
        )
        for line in [head, *body]
    )


@click.command("reward")
@click.argument("outputs", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--traces", type=click.Path(dir_okay=False, path_type=Path), help=TRACES_HELP)
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write each row's reward and breakdown here as JSONL.",
)
@click.option(
    "--audit",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Where the top-scored samples go (default: OUTPUTS with .audit.jsonl).",
)
@click.option("--audit-top", default=20, show_default=True, help="How many samples to audit.")
def reward_cmd(
    outputs: Path, traces: Path | None, out: Path | None, audit: Path | None, audit_top: int
) -> None:
    """Score a file of model outputs against Claude's traces (behavioural reward).

    OUTPUTS is JSONL, one row per attempt: {"trace_id": ..., "completion": TEXT} (one
    generated assistant turn) or {"trace_id": ..., "messages": [...]} (a multi-step
    episode: assistant and tool messages), optionally with "model" to group rows.
    """
    model = BehavioralRewardModel(load_traces(traces), audit_top=audit_top)
    groups: dict[str, list[Reward]] = {}
    records = []
    for number, row in read_jsonl(outputs):
        result = score_row(model, row, f"{outputs}:{number}")
        name = str(row.get("model", "model"))
        groups.setdefault(name, []).append(result)
        records.append(
            {
                "line": number,
                "trace_id": row["trace_id"],
                "model": name,
                "parsed": result.parsed,
                **result.breakdown(),
            }
        )
    if not records:
        raise BCError(f"{outputs}: no rows to score")
    if out:
        out.write_text("".join(json.dumps(r) + "\n" for r in records))
    audit_path = model.write_audit(audit or outputs.with_suffix(".audit.jsonl"))
    click.echo(summary_table(list(groups.items())))
    click.echo(f"top {len(model.top_samples)} samples for audit: {audit_path}")


# --- rl | mine | eval --------------------------------------------------------------------------

DATASET = click.option(
    "--dataset",
    type=click.Path(file_okay=False, path_type=Path),
    help="Dataset folder from `bc-train dataset` (default: $BC_HOME/dataset).",
)
DEVICE = click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default=None)


def _default_dataset(dataset: Path | None) -> Path:
    return dataset or paths.data_dir() / "dataset"


def _sampling(max_turns: int, max_new_tokens: int) -> Any:
    from claude_bc.training.policy import Sampling

    return Sampling(
        max_turns=max_turns,
        max_new_tokens=max_new_tokens,
        max_completion_length=max_turns * (max_new_tokens + 512),
    )


@click.command("rl")
@click.option(
    "--config",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Settings file (TOML, JSON or YAML; an [rl] table or top level).",
)
@click.option(
    "--sft",
    type=click.Path(file_okay=False, path_type=Path),
    help="The bc-train sft output to start from (default: $BC_HOME/models/sft).",
)
@DATASET
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    help="Output folder (default: $BC_HOME/models/rl).",
)
@DEVICE
@click.option("--max-steps", type=int, help="Training steps (default 200).")
@click.option("--beta", type=float, help="KL coefficient to the SFT policy, > 0 (default 0.04).")
@click.option("--gate", type=float, help="Stop once the held-out reward passes this (0.80).")
@click.option("--num-generations", type=int, help="Episodes per prompt (the GRPO group, 4).")
@click.option("--max-turns", type=int, help="Assistant turns per episode (4).")
@click.option("--max-new-tokens", type=int, help="Tokens per turn (256).")
def rl_cmd(config: Path | None, **options: Any) -> None:
    """RL from the SFT model: GRPO (PPO's clipped objective, no critic) + KL to SFT."""
    from claude_bc.training.config import load_settings
    from claude_bc.training.rl import RLSettings, train

    # [ppo]: the table's name before the stage was called rl
    settings = load_settings(RLSettings, config, "rl", options, aliases=("ppo",))
    out = train(settings)
    click.echo(f"RL adapter: {out / 'adapter'}; curves: {out / 'curves.png'}")


# The stage's former name, still accepted so old scripts keep working; not in --help.
ppo_alias = click.Command(
    "ppo",
    params=rl_cmd.params,
    callback=rl_cmd.callback,
    help="Former name of `bc-train rl`.",
    hidden=True,
    deprecated="Use `bc-train rl` instead.",
)


@click.command("mine")
@click.option(
    "--model",
    "model",
    required=True,
    help="The model to probe: a bc-train sft/rl output folder, or a base model.",
)
@DATASET
@click.option("--split", default="train", show_default=True, help="Which split to mine.")
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    help="Output folder (default: $BC_HOME/mined).",
)
@click.option("--top", default=20, show_default=True, help="How many of the worst prompts.")
@click.option(
    "--max-copies",
    default=4,
    show_default=True,
    help="Repeats of the worst prompt's rows in train.jsonl (weighting).",
)
@click.option("--max-turns", default=4, show_default=True)
@click.option("--max-new-tokens", default=256, show_default=True)
@DEVICE
@click.option("--seed", default=42, show_default=True)
@click.option("--force", is_flag=True, help="Replace --out even if claude-bc did not write it.")
def mine_cmd(
    model: str,
    dataset: Path | None,
    split: str,
    out: Path | None,
    top: int,
    max_copies: int,
    max_turns: int,
    max_new_tokens: int,
    device: str | None,
    seed: int,
    force: bool,
) -> None:
    """Adversarial mining: rank prompts by the model's reward gap to Claude, write variants
    of the worst as a weighted retraining set (a dataset folder sft and rl accept)."""
    from claude_bc.training.mine import run

    if top < 1 or max_copies < 1:
        raise BCError("--top and --max-copies must be at least 1")
    target = out or paths.data_dir() / "mined"
    report = run(
        model,
        _default_dataset(dataset),
        split,
        target,
        top=top,
        max_copies=max_copies,
        device=device or "auto",
        sample=_sampling(max_turns, max_new_tokens),
        seed=seed,
        force=force,
    )
    click.echo(
        f"scored {report['prompts_scored']} prompts (mean reward "
        f"{report['mean_reward']:+.3f}); the {report['mined']} worst, with variants: "
        f"{report['rows_written']} rows in {target / 'train.jsonl'}"
    )
    for g in report["ranking"][: min(5, report["mined"])]:
        click.echo(f"  gap {g['gap']:.3f}  reward {g['reward']:+.3f}  {g['trace_id']}")


def _model_spec(value: str) -> tuple[str, str]:
    name, sep, spec = value.partition("=")
    if not sep:
        return Path(value).name or value, value
    if not name or not spec:
        raise BCError(f"--model {value!r}: expected NAME=MODEL or MODEL")
    return name, spec


@click.command("eval")
@click.option(
    "--model",
    "models",
    multiple=True,
    required=True,
    help="NAME=MODEL (repeatable): a bc-train sft/rl folder or a base model, "
    "e.g. --model base=embedded:smollm2 --model sft=DIR --model rl=DIR.",
)
@DATASET
@click.option("--split", default="eval", show_default=True, help="The held-out split.")
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    help="Report folder (default: $BC_HOME/eval).",
)
@click.option("--limit", type=int, help="Use at most this many held-out prompts.")
@click.option("--max-turns", default=4, show_default=True)
@click.option("--max-new-tokens", default=256, show_default=True)
@click.option(
    "--repos",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Held-out repositories (JSON, see training/live.py): act in real copies of them "
    "and report how many tasks end in Claude's final state.",
)
@DEVICE
def eval_cmd(
    models: tuple[str, ...],
    dataset: Path | None,
    split: str,
    out: Path | None,
    limit: int | None,
    max_turns: int,
    max_new_tokens: int,
    repos: Path | None,
    device: str | None,
) -> None:
    """Held-out evaluation of any set of models against the quality gates: one table, plus
    report.md / report.html with plots."""
    from claude_bc.training.eval import run

    specs = [_model_spec(m) for m in models]
    names = [n for n, _ in specs]
    if len(set(names)) != len(names):
        raise BCError(f"model names must differ: {names}")
    target = out or paths.data_dir() / "eval"
    _, text = run(
        specs,
        _default_dataset(dataset),
        split,
        target,
        limit=limit,
        sample=_sampling(max_turns, max_new_tokens),
        device=device or "auto",
        repos=repos,
    )
    click.echo(text)
    click.echo(f"report: {target / 'report.html'} (and report.md, results.json)")


COMMANDS = [reward_cmd, rl_cmd, ppo_alias, mine_cmd, eval_cmd]
