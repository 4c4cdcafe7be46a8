"""``bc-train``: the training pipeline (dataset → SFT → reward → RL → mine → eval → export).

Why here, above ``training`` and ``export``: imports go one way (capture ← training ←
export), and one command group that mounts every stage has to import all of them. Kept
in ``training`` it would import ``export``, which imports ``training``: a circle. So the
group lives in a module that nothing of ours imports; each stage only lists its commands.
"""

from __future__ import annotations

from typing import Any

import click

from claude_bc.capture.errors import run_cli
from claude_bc.export import commands as export_commands
from claude_bc.training import rl_cli, sft_cli


@click.group()
@click.version_option(package_name="claude-bc")
def cli() -> None:
    """Train a local Llama on captured Claude Code traces (stages: see README)."""


# Behavioural cloning (training/sft_cli.py): bc-train dataset | sft
for _command in sft_cli.COMMANDS:
    cli.add_command(_command)

# Shipping stage (export/): bc-train export | serve | abtest
for _command in export_commands.COMMANDS:
    cli.add_command(_command)

# Alignment stages (training/rl_cli.py): bc-train reward | rl | mine | eval
for _command in rl_cli.COMMANDS:
    cli.add_command(_command)


def main(argv: list[str] | None = None) -> Any:
    """Entry point: a ``BCError`` becomes one clean line and exit status 1."""
    return run_cli(cli, "bc-train", argv)
