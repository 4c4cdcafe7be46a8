"""The docstring examples of the training and export modules are real, checked examples."""

from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = [
    "claude_bc.training.dataset",
    "claude_bc.training.template",
    "claude_bc.training.reward",
    "claude_bc.training.replay",
    "claude_bc.training.mine",
    "claude_bc.training.eval",
    "claude_bc.training.policy",
    "claude_bc.export.abtest",
    "claude_bc.export.fidelity",
    "claude_bc.export.gguf",
    "claude_bc.export.serve",
]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name: str) -> None:
    result = doctest.testmod(importlib.import_module(name))
    assert result.attempted > 0 and result.failed == 0
