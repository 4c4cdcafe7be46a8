"""Captured text is shown as text: no terminal escape, no hidden direction change.

A trace holds whatever a tool printed or a file contained: an ``ESC ] 52 ;`` sequence that
writes the clipboard, ``ESC ] 0 ;`` that sets the window title, a carriage return that
overwrites a line, or a right-to-left override (U+202E) that makes ``txt.exe`` read as
``exe.txt``. :func:`visible` replaces each such character by a visible ``<U+XXXX>``, so
``bc-capture show``/``list`` never send one to the terminal and the viewer shows them.
"""

from __future__ import annotations

import re

# C0 controls but tab and newline, DEL, C1 controls; bidi embeddings, overrides, isolates
# and marks; zero-width and invisible format characters; line/paragraph separators.
_HIDDEN = re.compile(
    "[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u180e\u200b-\u200f\u2028-\u202e\u2060-\u206f\ufeff"
    "\ufff9-\ufffb]"
)


def _name(match: re.Match[str]) -> str:
    return f"<U+{ord(match.group()):04X}>"


def visible(text: str) -> str:
    """``text`` with every control, bidi and invisible format character made visible.

    >>> visible("a\\x1b]0;owned\\x07b \\u202etxt.exe")
    'a<U+001B>]0;owned<U+0007>b <U+202E>txt.exe'
    >>> visible("tabs\\tand\\nnewlines stay")
    'tabs\\tand\\nnewlines stay'
    """
    return _HIDDEN.sub(_name, text)


def json_visible(text: str) -> str:
    """JSON text (``ensure_ascii=False``) with those characters as ``\\uXXXX`` escapes:
    still the same JSON, nothing hidden. (``json.dumps`` escapes C0 controls itself.)"""
    return _HIDDEN.sub(lambda m: f"\\u{ord(m.group()):04x}", text)
