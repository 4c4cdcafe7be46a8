"""``bc-train dataset`` and ``bc-train sft``: the behavioural-cloning stages.

Each command loads its settings (config file, then options), validates them, and runs
the stage module (``training.dataset`` / ``training.sft``). Heavy imports happen inside
the commands so that ``bc-train --help`` stays fast.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from claude_bc.training.config import DatasetConfig, SFTSettings, load_settings

CONFIG = click.option(
    "--config",
    "config",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Settings file (TOML, or JSON); options given here override it.",
)


def _report(stats: dict[str, Any], out: Path) -> str:
    samples = stats["samples"]
    lines = [
        f"dataset written to {out}",
        f"  traces read     {stats['traces']}",
        f"  samples         train {samples['train']}, eval {samples['eval']}, "
        f"test {samples['test']} (sessions: {stats['sessions']})",
        f"  tokens          total {stats['tokens']['total']}, mean {stats['tokens']['mean']}, "
        f"max {stats['tokens']['max']} of {stats['tokens']['max_length']} "
        f"({stats['tokens']['counted_with']})",
        f"  tools/sample    mean {stats['tools_per_sample']['mean']}, "
        f"max {stats['tools_per_sample']['max']}; {stats['tools_per_sample']['by_tool']}",
        f"  workflow        {stats['workflow_type']}",
        f"  exploration     {stats['exploration_depth']}",
        f"  outputs cut     {stats['tool_outputs_cut']}",
        f"  excluded        {stats['excluded'] or 'none'}",
    ]
    return "\n".join(lines)


@click.command("dataset")
@CONFIG
@click.option(
    "--traces",
    type=click.Path(path_type=Path),
    help="A traces.jsonl file or a store folder (default: the capture store).",
)
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    help="Output folder (default: $BC_HOME/dataset).",
)
@click.option("--max-length", type=int, help="Token budget of one sample (default 4096).")
@click.option("--tokenizer", help="Count tokens with this tokenizer (default: ≈ 4 bytes each).")
@click.option("--seed", type=int, help="Seed of the session split.")
@click.option("--skip-bad", is_flag=True, default=None, help="Skip unreadable rows.")
@click.option(
    "--gates",
    "gates_file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Quality-gate settings (default: $BC_HOME/gates.toml, else the defaults).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the stats report as JSON.")
@click.option("--force", is_flag=True, help="Replace --out even if claude-bc did not write it.")
def dataset_cmd(
    config: Path | None, gates_file: Path | None, as_json: bool, force: bool, **options: Any
) -> None:
    """Traces → bc_dataset.jsonl + train/eval/test chats with tools + stats.json."""
    from claude_bc.capture.gates import load_gate_config
    from claude_bc.training.dataset import run

    options["gates"] = load_gate_config(gates_file) if gates_file else None
    cfg = load_settings(DatasetConfig, config, "dataset", options)
    stats = run(cfg, force=force)
    click.echo(json.dumps(stats, indent=2) if as_json else _report(stats, cfg.out))


@click.command("sft")
@CONFIG
@click.option(
    "--base",
    help="Base model: hub id or local folder (default: Llama 3.1 8B "
    "Instruct, or the embedded SmolLM2 when the hub is out of reach).",
)
@click.option(
    "--dataset",
    type=click.Path(file_okay=False, path_type=Path),
    help="Dataset folder from `bc-train dataset` (default: $BC_HOME/dataset).",
)
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    help="Output folder (default: $BC_HOME/models/sft).",
)
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]))
@click.option("--epochs", type=float)
@click.option("--max-steps", type=int, help="Stop after this many steps (overrides epochs).")
@click.option("--max-length", type=int)
@click.option("--packing/--no-packing", default=None)
@click.option("--resume", is_flag=True, help="Continue from the last checkpoint of --out.")
def sft_cmd(config: Path | None, resume: bool, **options: Any) -> None:
    """LoRA fine-tuning (QLoRA on CUDA) with TRL; writes adapter, loss.png, metrics.json."""
    from claude_bc.training.sft import train

    settings = load_settings(SFTSettings, config, "sft", options)
    out = train(settings, resume=resume)
    click.echo(str(out))


COMMANDS = [dataset_cmd, sft_cmd]
