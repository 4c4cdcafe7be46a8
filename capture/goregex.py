"""Go RE2 patterns (gitleaks' and betterleaks' rule files) as Python ``re`` patterns.

Both rule loaders need it, and the rule engine too: kept apart, none of the three has to
import another to translate a pattern.
"""

from __future__ import annotations

import re
from typing import Final

__all__ = ["python_regex"]


def python_regex(go: str) -> str:
    """A Go RE2 pattern in Python's syntax: ``\\z`` → ``\\Z``, ``(?<n>`` → ``(?P<n>``,
    and a flag group ``(?i)`` after the start (Go: to the end of its group; Python: only
    at the start of the pattern) → a scoped ``(?i:...)``."""
    p = go.replace(r"\z", r"\Z")
    p = re.sub(r"\(\?<(?=[A-Za-z])", "(?P<", p)
    out: list[str] = []
    closers: list[int] = []  # per open group: how many ")" our rewrites owe it
    closers.append(0)
    i = 0
    while i < len(p):
        ch = p[i]
        if ch == "\\":
            out.append(p[i : i + 2])
            i += 2
            continue
        if ch == "[":
            j = _class_end(p, i)
            out.append(_python_class(p[i:j]))
            i = j
            continue
        m = re.match(r"\(\?([a-zA-Z]+)\)", p[i:])
        if m and i > 0:
            out.append(f"(?{m.group(1)}:")
            closers[-1] += 1
            i += len(m.group(0))
            continue
        if ch == "(":
            closers.append(0)
        elif ch == ")":
            out.append(")" * closers.pop())
        out.append(ch)
        i += 1
    out.append(")" * closers.pop())
    return "".join(out)


def _class_end(p: str, i: int) -> int:
    """Index just past the character class that starts at ``p[i] == "["``."""
    j = i + 1
    if j < len(p) and p[j] == "^":
        j += 1
    if j < len(p) and p[j] == "]":
        j += 1
    while j < len(p) and p[j] != "]":
        if p[j] == "\\":
            j += 1
        elif p.startswith("[:", j):
            k = p.find(":]", j + 2)
            j = k + 1 if k >= 0 else j
        j += 1
    return j + 1


_POSIX: Final = {
    "alnum": "0-9A-Za-z",
    "alpha": "A-Za-z",
    "digit": "0-9",
    "lower": "a-z",
    "upper": "A-Z",
    "space": r" \t\n\r\f\v",
    "xdigit": "0-9A-Fa-f",
    "punct": r"!-/:-@\[-`{-~",
    "word": r"\w",
}


def _python_class(cls: str) -> str:
    """A Go character class in Python's syntax: POSIX names spelled out, a literal ``[``
    and doubled set operators (``&&``, ``||``, ``--``, ``~~``) escaped."""
    body = re.sub(r"\[:(\w+):\]", lambda m: _POSIX.get(m.group(1), m.group(0)), cls[1:-1])
    out, i = [], 0
    while i < len(body):
        ch = body[i]
        if ch == "\\":
            out.append(body[i : i + 2])
            i += 2
            continue
        if ch == "[" or (ch in "&|~-" and body[i + 1 : i + 2] == ch):
            out.append("\\" + ch)
        else:
            out.append(ch)
        i += 1
    return "[" + "".join(out) + "]"
