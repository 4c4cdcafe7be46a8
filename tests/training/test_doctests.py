"""The docstring examples of the alignment modules are real, checked examples."""

from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = [
    "training.reward",
    "training.replay",
    "training.mine",
    "training.eval",
    "training.policy",
]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name: str) -> None:
    result = doctest.testmod(importlib.import_module(name))
    assert result.attempted > 0 and result.failed == 0
