"""The docstring examples of the training and export modules are real, checked examples."""

from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = [
    "training.dataset",
    "training.template",
    "training.reward",
    "training.replay",
    "training.mine",
    "training.eval",
    "training.policy",
    "export.abtest",
    "export.fidelity",
    "export.gguf",
    "export.serve",
]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name: str) -> None:
    result = doctest.testmod(importlib.import_module(name))
    assert result.attempted > 0 and result.failed == 0
