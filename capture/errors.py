"""The one user-facing error class, and the CLI edge that turns it into a single clean line."""

from __future__ import annotations

import sys
from typing import Any

import click


class BCError(Exception):
    """An error a user can act on; its message is printed as one line by the CLI."""


def run_cli(group: click.Command, prog: str, argv: list[str] | None = None) -> Any:
    """Run a click group: a ``BCError`` (or an ``OSError``: a file that cannot be read or
    written) becomes ``<prog>: error: …`` and exit status 1."""
    try:
        return group.main(args=argv, prog_name=prog, standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except BCError as exc:
        click.echo(f"{prog}: error: {exc}", err=True)
        sys.exit(1)
    except BrokenPipeError:
        sys.exit(0)
    except OSError as exc:  # a file or folder that cannot be read or written
        where = f"{exc.filename}: " if exc.filename else ""
        click.echo(f"{prog}: error: {where}{exc.strerror or exc}", err=True)
        sys.exit(1)
