"""JSON from files and requests that anyone may have written: parsed without a crash.

``json.loads`` recurses once per nesting level: 100,000 ``[`` raise ``RecursionError``
(not a ``ValueError``), and a value that parses just under the limit can still exhaust the
stack of the code that walks it later. :func:`loads` turns both into a ``ValueError``, so
a reader reports a bad line and goes on.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from claude_bc.capture.errors import BCError

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


def read_jsonl(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """The numbered JSON objects of a JSONL file a user passed (blank lines skipped); a
    line that is not one stops the reading with a one-line ``BCError`` naming it."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise BCError(f"cannot read {path}: {exc.strerror}") from exc
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            row = loads(line)
        except ValueError as exc:
            why = exc.msg if isinstance(exc, json.JSONDecodeError) else str(exc)
            raise BCError(f"{path}:{number}: not valid JSON ({why})") from None
        if not isinstance(row, dict):
            raise BCError(f"{path}:{number}: not a JSON object")
        yield number, row
