"""``bc-train``: the training pipeline (dataset → SFT → reward → RL → mine → eval).

The stages land one per file in this package; until then the command only reports
what exists.
"""

from __future__ import annotations

from typing import Any

import click


@click.group()
@click.version_option(package_name="claude-bc")
def cli() -> None:
    """Train a local Llama on captured Claude Code traces (stages: see README)."""


def main(argv: list[str] | None = None) -> Any:
    return cli.main(args=argv, prog_name="bc-train")
