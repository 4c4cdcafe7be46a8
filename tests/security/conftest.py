"""Security tests: each one is an attack from issue 17, run as an attacker (or a user who
mistypes) would, against the real parts: the CLIs, the hook, Claude Code, mitmdump."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import run_main


def run_train(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """``bc-train ARGS`` in-process: (exit code, out, err)."""
    from claude_bc.cli import main

    return run_main(main, capsys, *args)


@pytest.fixture
def victim(tmp_path: Path) -> Path:
    """A folder of the user's own work."""
    work = tmp_path / "mywork"
    (work / "src").mkdir(parents=True)
    (work / "src" / "main.py").write_text("print('mine')\n")
    return work
