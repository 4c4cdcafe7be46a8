"""A Hyperscan prefilter for Python regexes: which of them can match a text, in one pass.

The redactor runs ~40 rules over every string of a trace and the signal extractor three
cue patterns over every sentence; most strings match none. Hyperscan scans for all of
them at once (~2 GB/s on ASCII text), and only the candidates then run as Python regexes,
so results are exactly what running every pattern gives: Hyperscan's prefilter mode
reports a superset of a pattern's matches, and :func:`hs_syntax` rewrites each Python
pattern into one over UTF-8 bytes that matches wherever the original can (and more).
The tests compare results with and without the prefilter on every test case, every
recorded fixture string, hypothesis-generated text and a seeded soak of random text.

Two databases per set of patterns: one for ASCII text (plainer, several times faster)
and one for any text; compiled once (~0.1-0.3 s) and cached in ``$BC_HOME/cache``.
Without a Hyperscan wheel (the dependency is pinned for Linux x86-64 only), building a
:class:`Prefilter` raises and callers run every pattern.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import re
import threading
import time
from collections.abc import Sequence
from contextlib import suppress
from functools import lru_cache
from pathlib import Path
from typing import Any, Final

from claude_bc.capture import paths

__all__ = ["Prefilter", "engine", "hs_syntax"]


def engine() -> str:
    """What the prefilters run on (``bc-capture status``)."""
    try:
        import hyperscan
    except Exception as exc:  # no wheel for this machine
        return f"unavailable ({type(exc).__name__}): every pattern runs, slower"
    version = getattr(hyperscan, "__version__", "(version unknown)")
    return f"Hyperscan {version}"


class Prefilter:
    """Which of several groups of Python regexes can match a text, in one Hyperscan pass.

    ``groups[i]``: the ``(pattern, re flags)`` of group ``i``, or ``None`` (no patterns:
    always a candidate). :meth:`candidates` gives the groups one of whose patterns may
    match; a group left out cannot match, so running only the candidates gives what
    running all of them gives. ``name`` names the cached databases. ``every_match``:
    report every match, not only a pattern's first (for :meth:`match_ends`).
    ``repeats``: counted repeats keep at most this lower bound (see :func:`hs_syntax`).
    """

    def __init__(
        self,
        groups: Sequence[Sequence[tuple[str, int]] | None],
        name: str,
        every_match: bool = False,
        repeats: int = 8,
    ) -> None:
        import hyperscan  # optional: callers run every pattern without it

        self._hs: Any = hyperscan
        self.name = name
        self.every_match = every_match
        self.repeats = repeats
        self.always = {i for i, pats in enumerate(groups) if pats is None}
        # The cache is keyed by the Python patterns and this module's source (the rewriting
        # rules), so a cache hit needs no rewriting at all (~40 ms for the redactor's rules).
        key = hashlib.sha256(
            repr(
                (
                    self._hs.__version__,
                    platform.machine(),
                    _source_digest(),
                    list(groups),
                    every_match,
                    repeats,
                )
            ).encode()
        ).hexdigest()[:24]
        self._wide = self._load(groups, f"{name}-prefilter-{key}-utf8.hsdb", wide=True)
        self._narrow = self._load(groups, f"{name}-prefilter-{key}-ascii.hsdb", wide=False)
        self._local = threading.local()  # scratch per thread: scans may run at once

    def _exprs(
        self, groups: Sequence[Sequence[tuple[str, int]] | None], wide: bool
    ) -> list[tuple[bytes, int, int]]:
        """``(Hyperscan pattern, flags, group)`` of every pattern; a group with a pattern
        that has no prefilter form goes to ``always``."""
        out = []
        for i, pats in enumerate(groups):
            if pats is None:
                continue
            try:
                flags = [_hs_flags(self._hs, f, self.every_match) for _, f in pats]
                out += [
                    (hs_syntax(p, f, wide, self.repeats), h, i)
                    for (p, f), h in zip(pats, flags, strict=True)
                ]
            except (ValueError, re.error):
                self.always.add(i)
        return out

    def _load(
        self, groups: Sequence[Sequence[tuple[str, int]] | None], name: str, wide: bool
    ) -> Any:
        """The database from the cache in ``$BC_HOME/cache`` (compiling takes 0.1-0.4 s).
        A cached file is the JSON list of the groups that are always candidates, a newline,
        then the serialised database."""
        hs = self._hs
        cached = paths.data_dir() / "cache" / name
        with suppress(Exception):  # missing, unreadable, or from another Hyperscan
            head, _, blob = cached.read_bytes().partition(b"\n")
            always = {int(i) for i in json.loads(head)}
            db = hs.loadb(blob, hs.HS_MODE_BLOCK)
            self.always |= always
            with suppress(OSError):
                os.utime(cached)  # in use: not pruned (see _prune)
            return db
        exprs = self._exprs(groups, wide)
        try:
            db = self._compile(exprs)
        except hs.error:
            # a pattern Hyperscan cannot read: its group is always a candidate
            ok = []
            for expr in exprs:
                with suppress(hs.error):
                    self._compile([expr])
                    ok.append(expr)
                    continue
                self.always.add(expr[2])
            db = self._compile([e for e in ok if e[2] not in self.always])
            return db  # not cached: the next process finds the same pattern unreadable
        with suppress(OSError):
            paths.ensure_dir(cached.parent)
            tmp = cached.with_suffix(f".{os.getpid()}.tmp")
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "wb") as fh:
                fh.write(json.dumps(sorted(self.always)).encode() + b"\n" + hs.dumpb(db))
            os.replace(tmp, cached)
            _prune(cached.parent, self.name)
        return db

    def _compile(self, exprs: list[tuple[bytes, int, int]]) -> Any:
        db = self._hs.Database()
        db.compile(
            expressions=[e for e, _, _ in exprs],
            flags=[f for _, f, _ in exprs],
            ids=[i for _, _, i in exprs],
        )
        return db

    def candidates(self, text: str) -> set[int] | None:
        """The groups that may match ``text``; ``None``: run them all."""
        # lone surrogates: still bytes
        return self._scan(text.encode("utf-8", "surrogatepass"), narrow=text.isascii())

    def match_ends(self, data: bytes) -> set[int] | None:
        """The offsets just past every match in the UTF-8 bytes ``data`` (read as they
        are, not decoded), of any group; ``None``: the scan failed (take every offset).
        Needs ``every_match`` (else only a pattern's first match is reported)."""
        if self.always:
            return None
        ends: set[int] = set()

        def hit(group: int, start: int, end: int, flags: int, context: Any) -> None:
            ends.add(end)

        try:
            self._wide.scan(data, match_event_handler=hit, scratch=self._scratch(False))
        except Exception:
            return None
        return ends

    def occurrences(self, data: bytes) -> list[tuple[int, int]] | None:
        """``(group, end offset)`` of every match in the ASCII bytes ``data``, in no set
        order; ``None``: the scan failed. Needs ``every_match``."""
        out: list[tuple[int, int]] = []
        try:
            self._narrow.scan(
                data,
                match_event_handler=_add_match,
                context=out,
                scratch=self._scratch(True),
            )
        except Exception:
            return None
        return out

    def _scratch(self, narrow: bool) -> Any:
        """This thread's scratch space for one of the databases (scans may run at once)."""
        scratch = getattr(self._local, "narrow" if narrow else "wide", None)
        if scratch is None:
            scratch = self._hs.Scratch(self._narrow if narrow else self._wide)
            setattr(self._local, "narrow" if narrow else "wide", scratch)
        return scratch

    def _scan(self, data: bytes, narrow: bool) -> set[int] | None:
        # called once per string of a trace: kept lean (no closure, scratch looked up once)
        hits = set(self.always) if self.always else set()
        try:
            scratch = getattr(self._local, "narrow" if narrow else "wide")
        except AttributeError:
            scratch = self._scratch(narrow)
        try:
            (self._narrow if narrow else self._wide).scan(
                data, match_event_handler=_add_group, context=hits, scratch=scratch
            )
        except Exception:
            return None
        return hits


def _add_group(group: int, start: int, end: int, flags: int, hits: set[int]) -> None:
    hits.add(group)


def _add_match(group: int, start: int, end: int, flags: int, out: list[tuple[int, int]]) -> None:
    out.append((group, end))


# Hyperscan reads bytes; a Python pattern reads characters. To keep a superset, the
# prefilter's patterns are rewritten from Python's own parse of them (``re._parser``):
# every atom that can match a non-ASCII character becomes a byte class that also takes
# the bytes of any non-ASCII character (\x80-\xff), repeated (a case-folded i, k or s:
# the bytes of the characters that fold to it, see _FOLDS): one character is 1-4
# bytes, so a count of characters is at most the count of bytes; ``\s`` also takes the
# ASCII controls Python counts as space; anchors and lookarounds are dropped; a
# back-reference takes anything; counted repeats ``{m,n}`` become ``{min(m, 8),}``
# (Hyperscan compiles those several times faster; ``repeats`` raises the 8 where a
# longer run is what keeps a pattern from matching most texts).
_HIGH: Final = "\\x80-\\xff"
_FOLDS_TO_NON_ASCII: Final = frozenset("iksIKS")  # İ ı → i, K (Kelvin) → k, ſ → s
#: The non-ASCII characters Python's ``re.IGNORECASE`` matches to an ASCII letter (all
#: of them: checked over every code point by the tests), as escaped UTF-8 bytes.
_FOLDS: Final = {
    letter: tuple("".join(f"\\x{b:02x}" for b in c.encode("utf-8")) for c in chars)
    for letter, chars in {"i": "\u0130\u0131", "k": "\u212a", "s": "\u017f"}.items()
}
_CATEGORIES: Final = {
    "CATEGORY_DIGIT": "\\d",
    "CATEGORY_NOT_DIGIT": "\\D",
    "CATEGORY_SPACE": "\\s\\x0b\\x1c-\\x1f",
    "CATEGORY_NOT_SPACE": "\\S",
    "CATEGORY_WORD": "\\w",
    "CATEGORY_NOT_WORD": "\\W",
}


def hs_syntax(pattern: str, flags: int, wide: bool = True, repeats: int = 8) -> bytes:
    """``pattern`` (with ``re`` ``flags``) as a Hyperscan prefilter pattern over UTF-8;
    ``wide=False``: over ASCII text only (no byte of a non-ASCII character to allow for:
    a plainer pattern Hyperscan runs several times faster); ``repeats``: the largest
    lower bound a counted repeat keeps."""
    import re._parser as sre  # type: ignore[import-not-found]

    caseless = bool(flags & re.IGNORECASE)
    parsed = sre.parse(pattern, flags & ~re.IGNORECASE)
    return _emit(parsed, caseless, wide, repeats).encode("ascii")


def _char(code: int) -> str:
    return f"\\x{code:02x}"


def _byte_class(op: str, arg: Any, caseless: bool, wide: bool) -> str | None:
    """The bytes one character matched by this atom can be made of, as a class; ``None``
    for an ASCII literal that matches itself only."""
    high = _HIGH if wide else ""
    if op == "LITERAL":
        if arg >= 0x80:
            return f"[{_HIGH}]"  # in ASCII text: never
        if wide and caseless and chr(arg) in _FOLDS_TO_NON_ASCII:
            return f"[{_char(arg)}{high}]"
        return None
    if op == "NOT_LITERAL":
        return f"[^{_char(arg)}]" if arg < 0x80 else "[\\x00-\\xff]"
    if op == "ANY":  # with or without DOTALL: a newline too (a superset)
        return "[\\x00-\\xff]"
    if op == "CATEGORY":
        cat = _CATEGORIES[str(arg)]
        return f"[{cat}]" if "NOT" in str(arg) else f"[{cat}{high}]"
    if op == "IN":
        return _class(arg, high)
    return None


def _emit(items: Any, caseless: bool, wide: bool, repeats: int = 8) -> str:
    out: list[str] = []
    more = "+" if wide else ""  # one character: one or more bytes
    for op, arg in items:
        name = str(op)
        if name == "LITERAL" and wide and caseless and chr(arg) in _FOLDS_TO_NON_ASCII:
            # the letter, or the UTF-8 bytes of each non-ASCII character that case-folds
            # to it (a few literals Hyperscan looks for cheaply, not a run of any bytes)
            out.append("(?:" + "|".join([_char(arg), *_FOLDS[chr(arg).lower()]]) + ")")
        elif name in ("LITERAL", "NOT_LITERAL", "ANY", "CATEGORY", "IN"):
            cls = _byte_class(name, arg, caseless, wide)
            out.append(_char(arg) if cls is None else cls + more)
        elif name in ("MAX_REPEAT", "MIN_REPEAT", "POSSESSIVE_REPEAT"):
            low, _, sub = arg
            low = min(low, repeats)
            one = list(sub)
            cls = _byte_class(str(one[0][0]), one[0][1], caseless, wide) if len(one) == 1 else None
            body = cls or f"(?:{_emit(sub, caseless, wide, repeats)})"
            out.append(f"{body}{{{low},}}")
        elif name in ("SUBPATTERN", "ATOMIC_GROUP"):
            sub = arg[-1]
            if name == "SUBPATTERN" and arg[1] & re.IGNORECASE and not caseless:
                out.append(f"(?i:{_emit(sub, True, wide, repeats)})")
            else:
                out.append(f"(?:{_emit(sub, caseless, wide, repeats)})")
        elif name == "BRANCH":
            out.append("(?:" + "|".join(_emit(b, caseless, wide, repeats) for b in arg[1]) + ")")
        elif name == "GROUPREF_EXISTS":
            _, yes, no = arg
            alt = _emit(no, caseless, wide, repeats) if no else ""
            out.append(f"(?:{_emit(yes, caseless, wide, repeats)}|{alt})")
        elif name in ("GROUPREF", "GROUPREF_IGNORE"):
            out.append("[\\x00-\\xff]*")  # the same text as the group: anything
        elif name in ("AT", "ASSERT", "ASSERT_NOT"):
            pass  # anchors and lookarounds only ever narrow: dropped
        else:
            raise ValueError(f"no prefilter form for {name}")  # the rule then always runs
    return "".join(out)


def _class(items: Any, high: str) -> str:
    """A character class as the bytes its characters can be made of (``high``: the bytes
    of non-ASCII characters, or "" for ASCII text)."""
    negate, parts = False, []
    for op, arg in items:
        name = str(op)
        if name == "NEGATE":
            negate = True
        elif name == "LITERAL":
            if arg < 0x80:
                parts.append(_char(arg))
        elif name == "RANGE":
            first, last = arg
            if first < 0x80:
                parts.append(f"{_char(first)}-{_char(min(last, 0x7F))}")
        elif name == "CATEGORY":
            parts.append(_CATEGORIES[str(arg)])
        else:
            raise ValueError(f"no prefilter form for {name} in a class")
    if negate:  # the bytes \x80-\xff are never among the ASCII members left out
        return f"[^{''.join(parts)}]" if parts else "[\\x00-\\xff]"
    if not parts and not high:
        return f"[{_HIGH}]"  # only non-ASCII members: never in ASCII text
    # any member may match a non-ASCII character (a case fold, a Unicode digit, letter)
    return f"[{''.join(parts)}{high}]"


PRUNE_DAYS = 30  # a cached database nobody loaded for this long is deleted


def _prune(folder: Path, name: str) -> None:
    """Delete the cached databases of ``name`` that no process has loaded for
    ``PRUNE_DAYS``: those of earlier versions' patterns (each upgrade that changes them
    compiles new ones, ~1 MB), checked whenever a new one is written."""
    cutoff = time.time() - PRUNE_DAYS * 86400
    for old in folder.glob(f"{name}-prefilter-*.hsdb"):
        with suppress(OSError):
            if old.stat().st_mtime < cutoff:
                old.unlink()


@lru_cache(maxsize=1)
def _source_digest() -> str:
    """This module's source: a change to the rewriting rules is a new cache key."""
    return hashlib.sha256(Path(__file__).read_bytes()).hexdigest()


def _hs_flags(hs: Any, flags: int, every_match: bool = False) -> int:
    out = hs.HS_FLAG_PREFILTER | hs.HS_FLAG_ALLOWEMPTY
    if not every_match:
        out |= hs.HS_FLAG_SINGLEMATCH  # which patterns match is all that is asked
    if flags & re.IGNORECASE:
        out |= hs.HS_FLAG_CASELESS
    if flags & re.MULTILINE:
        out |= hs.HS_FLAG_MULTILINE
    if flags & re.DOTALL:
        out |= hs.HS_FLAG_DOTALL
    return int(out)
