"""``bc-train``: the training pipeline (dataset → SFT → reward → RL → mine → eval).

The stages land one per file in this package; until then the command only reports
what exists.
"""

from __future__ import annotations

from typing import Any

import click

from capture.errors import run_cli
from export import commands as export_commands
from training import rl_cli, sft_cli


@click.group()
@click.version_option(package_name="claude-bc")
def cli() -> None:
    """Train a local Llama on captured Claude Code traces (stages: see README)."""


# Behavioural cloning (training/sft_cli.py): bc-train dataset | sft
for _command in sft_cli.COMMANDS:
    cli.add_command(_command)

# Shipping stage (export/): bc-train export | serve | abtest
for _command in (export_commands.export_cmd, export_commands.serve_cmd):
    cli.add_command(_command)
cli.add_command(export_commands.abtest_group)

# Alignment stages (training/rl_cli.py): bc-train reward | ppo | mine | eval
for _command in rl_cli.COMMANDS:
    cli.add_command(_command)


def main(argv: list[str] | None = None) -> Any:
    """Entry point: a ``BCError`` becomes one clean line and exit status 1."""
    return run_cli(cli, "bc-train", argv)
