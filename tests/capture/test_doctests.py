"""The docstring examples of the capture modules are real, checked examples."""

from __future__ import annotations

import doctest
import importlib
from pathlib import Path

import pytest

MODULES = [
    "claude_bc.capture.capturer",
    "claude_bc.capture.gates",
    "claude_bc.capture.rating",
    "claude_bc.capture.signals",
    "claude_bc.capture.turns",
]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name: str, bc_home: Path) -> None:
    result = doctest.testmod(importlib.import_module(name))
    assert result.attempted > 0 and result.failed == 0
