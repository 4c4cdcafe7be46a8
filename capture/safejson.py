"""JSON from files and requests that anyone may have written: parsed without a crash.

``json.loads`` recurses once per nesting level: 100,000 ``[`` raise ``RecursionError``
(not a ``ValueError``), and a value that parses just under the limit can still exhaust the
stack of the code that walks it later. :func:`loads` turns both into a ``ValueError``, so
a reader reports a bad line and goes on.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

#: Deeper than anything Claude Code, the API or a hook writes (tool inputs included).
MAX_DEPTH = 256


def depth(value: Any, limit: int = MAX_DEPTH) -> int:
    """Nesting depth of parsed JSON, counted without recursion (stops once past ``limit``).

    >>> depth({"a": [1, {"b": []}]})
    4
    """
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        node, level = stack.pop()
        if isinstance(node, dict):
            children: Iterable[Any] = node.values()
        elif isinstance(node, list):
            children = node
        else:
            continue
        deepest = max(deepest, level)
        if deepest > limit:
            return deepest
        stack.extend((child, level + 1) for child in children)
    return deepest


def loads(raw: str | bytes, max_depth: int = MAX_DEPTH) -> Any:
    """``json.loads(raw)``; a ``ValueError`` for bad JSON and for nesting deeper than
    ``max_depth`` (the parser's own recursion limit included).

    >>> loads(b"[" * 100_000)
    Traceback (most recent call last):
    ...
    ValueError: JSON nested too deeply
    """
    try:
        value = json.loads(raw)
    except RecursionError:
        raise ValueError("JSON nested too deeply") from None
    if depth(value, max_depth) > max_depth:
        raise ValueError(f"JSON nested deeper than {max_depth} levels")
    return value
