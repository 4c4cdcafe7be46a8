"""gitleaks' rules (``capture.gitleaks_rules``, MIT) run the way gitleaks runs them.

Each rule: a keyword must occur (case-insensitively) for its regex to run; the secret is
the rule's ``secretGroup``, else the first non-empty group, else the match; a secret at
or under the rule's Shannon entropy is dropped, and so is one that a global or rule
allowlist allows (regexes on the secret, match or line; stop words in the secret).
Rules gitleaks binds to a file path (``.php``, ``.tf``, ``nuget.config``...) run
everywhere but stay bound to their own keywords.

The Go RE2 patterns are translated to Python ``re`` (:func:`python_regex`); a pattern
that still does not compile is left out (listed in :data:`SKIPPED`).  To bound the work
of patterns that begin with ``[\\w.-]{0,50}?``, a rule's regex only runs on the lines
around each of its keywords.
"""

from __future__ import annotations

import bisect
import math
import re
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from functools import cached_property, lru_cache, partial
from typing import Any, Final

from claude_bc.capture import gitleaks_rules
from claude_bc.capture.betterleaks_rules import Filter, compile_filter
from claude_bc.capture.goregex import python_regex

__all__ = [
    "SKIPPED",
    "GitleaksRule",
    "KeywordIndex",
    "Where",
    "entropy",
    "find_all",
    "gitleaks_rules_compiled",
    "global_allow",
    "is_placeholder",
    "literal_starts",
    "python_regex",
    "start_positions",
]

#: Where a word occurs in ``lower[lo:hi]``: ``where(word, lo, hi)`` → positions, in order.
Where = Callable[[str, int, int], list[int]]

#: Rule ids not loaded, and why.
SKIPPED: dict[str, str] = {
    "curl-auth-user": "our curl -u/--user rule takes the password and keeps the user name",
    # betterleaks' rule tells code (``password: hashedPassword``) from configuration by
    # the file's path, which a trace string does not have; our own rules take passwords
    "generic-password": "needs the file path its filter reads; our password rules run",
}
#: How far from a keyword a rule's regex may reach: back to the start of its line but
#: at most ``_BACK`` characters (gitleaks' identifier prefix is ``[\w.-]{0,50}?``), on to
#: the end of the ``_LINES_AFTER``-th line after it (a value on the next line, a curl
#: command continued with ``\``).  Wider windows cost more than they found: measured on
#: the recorded sessions, 1 line before / 6 after made redaction ~5x slower.
_BACK: Final = 80
_IDENTIFIER_PREFIX_RE: Final = re.compile(r"^(\(\?i\))?\[\\w\.-\]\{0,50\}\?")
_LINES_AFTER: Final = 2
_MAX_WINDOW: Final = 4096


def entropy(s: str) -> float:
    """Shannon entropy in bits per character (gitleaks' ``shannonEntropy``)."""
    if not s:
        return 0.0
    n = len(s)
    return -sum(c / n * math.log2(c / n) for c in Counter(s).values())


class _Allow:
    """One gitleaks allowlist: ``regexes`` on its target or ``stopwords`` in the secret
    (both, with condition AND)."""

    def __init__(self, spec: dict[str, Any]) -> None:
        self.regexes = [re.compile(python_regex(r)) for r in spec.get("regexes", ())]
        words = sorted({w.lower() for w in spec.get("stopwords", ())}, key=len, reverse=True)
        # one regex for gitleaks' ~1,500 generic stop words, not one ``in`` per word
        self.stopwords = re.compile("|".join(map(re.escape, words))) if words else None
        self.target = spec.get("regexTarget", "secret")
        self.both = spec.get("condition", "OR").upper() == "AND"
        self.only_paths = not self.regexes and not self.stopwords

    def allows(self, secret: str, match: str, line: str) -> bool:
        if self.only_paths:
            return False  # we have no paths: a path-only allowlist never applies
        target = {"match": match, "line": line}.get(self.target, secret)
        by_regex = any(r.search(target) for r in self.regexes)
        by_word = self.stopwords is not None and self.stopwords.search(secret.lower()) is not None
        if self.both:
            return (by_regex or not self.regexes) and (by_word or not self.stopwords)
        return by_regex or by_word


class GitleaksRule:
    """One gitleaks rule; :meth:`spans` gives ``(start, end, rule id)`` of its secrets."""

    def __init__(
        self, spec: dict[str, Any], global_allow: _Allow, global_filter: Filter | None = None
    ) -> None:
        self.id: str = spec["id"]
        self.pattern = python_regex(spec["regex"])
        self.keywords = tuple(sorted({k.lower() for k in spec.get("keywords", ())}))
        self.min_entropy = float(spec.get("entropy", 0.0))
        self.group = int(spec.get("secretGroup", 0))
        self.allow = [global_allow] + [_Allow(a) for a in spec.get("allowlists", ())]
        # betterleaks' filter expressions (``capture.betterleaks_rules``): true drops it
        given = spec.get("filter")
        self.filters = [
            f
            for f in (global_filter, compile_filter(given) if isinstance(given, str) else None)
            if f is not None
        ]

    @cached_property
    def regex(self) -> re.Pattern[str]:
        # Drop the leading ``[\w.-]{0,50}?`` that gitleaks puts before an identifier: it
        # captures nothing and can match nothing, so the secrets found are the same, and
        # without it a failed attempt costs one character test instead of fifty.
        return re.compile(_IDENTIFIER_PREFIX_RE.sub(r"\1", self.pattern, count=1))

    @cached_property
    def starts(self) -> tuple[str, ...] | None:
        """Lower-case literals one of which every match starts with (``None``: unknown)."""
        return literal_starts(self.regex.pattern)

    def spans(
        self, text: str, lower: str, lo: int, hi: int, where: Where | None = None
    ) -> Iterator[tuple[int, int, str]]:
        """Secrets in ``text[lo:hi]`` (``lower``: ``text`` lower-cased, same positions;
        ``where``: where a word occurs in ``lower[lo:hi]``, if it is known already)."""
        # A rule whose matches all start with known literals is tried only where one of
        # them occurs in the lower-cased text: the same matches as ``finditer``, which
        # tries every position (slow for the ``(?i)`` patterns Python cannot search by
        # literal). Not in a text with a character that ``(?i)`` reads as an ASCII letter
        # but that does not lower-case to it: dotless i, long s (the others, the Kelvin
        # sign and İ, lower-case to k and i).
        starts = self.starts
        if hi - lo < _TRY_AT_STARTS or (
            starts is not None and not text.isascii() and ("\u0131" in text or "\u017f" in text)
        ):
            starts = None  # (a short text: finditer costs less than a find per literal)
        # every occurrence of each keyword (and start literal) in ``lower[lo:hi]``
        find = where or partial(find_all, lower)
        found: dict[str, list[int]] = {k: find(k, lo, hi) for k in self.keywords}
        windows = self._windows(text, found, lo, hi)
        if not windows:
            return
        at: list[int] | None = None
        if starts is not None:
            at = start_positions(lower, starts, lo, hi, found, where)
        for a, b in windows:
            matches = (
                self.regex.finditer(text, a, b)
                if at is None
                else _matches_at(self.regex, text, at, a, b)
            )
            for m in matches:
                span = self._secret(m)
                if span is not None and not self._allowed(text, m, span):
                    yield span[0], span[1], self.id

    def allows_value(self, value: str) -> bool:
        """Whether this rule, run on ``value`` alone, matches all of it as its secret and
        then lets it go (its entropy threshold, allowlists or filters: the public example
        keys gitleaks and betterleaks list, ``AIzaSyAnLA7Nfe…``)."""
        m = self.regex.search(value)
        if m is None or self._secret(m) != (0, len(value)):
            return False
        return self._allowed(value, m, (0, len(value)))

    def _windows(
        self, text: str, found: dict[str, list[int]], lo: int, hi: int
    ) -> list[tuple[int, int]]:
        """Where the regex runs: around each keyword (``found``: where each occurs)."""
        if not self.keywords:
            return [(lo, hi)]
        hits = sorted(pos for k in self.keywords for pos in found[k])
        out: list[tuple[int, int]] = []
        for pos in hits:
            if out and pos < out[-1][1]:
                continue
            a = max(_line_start(text, pos, 0, lo), pos - _BACK)
            b = _line_end(text, pos, _LINES_AFTER, hi)
            if out and a <= out[-1][1]:
                out[-1] = (out[-1][0], b)
            else:
                out.append((a, b))
        return out

    def _secret(self, m: re.Match[str]) -> tuple[int, int] | None:
        if self.group and self.group <= (m.re.groups or 0):
            s, e = m.span(self.group)
        else:
            s, e = m.span()
            for g in range(1, (m.re.groups or 0) + 1):
                gs, ge = m.span(g)
                if ge > gs:
                    s, e = gs, ge
                    break
        if e <= s:
            return None
        return s, e

    def _allowed(self, text: str, m: re.Match[str], span: tuple[int, int]) -> bool:
        secret = text[span[0] : span[1]]
        if self.min_entropy and entropy(secret) <= self.min_entropy:
            return True
        line = text[_line_start(text, span[0], 0, 0) : _line_end(text, span[1], 0, len(text))]
        # the match as gitleaks sees it: with the identifier characters before the
        # keyword that its ``[\w.-]{0,50}?`` takes (leftmost match: as many as it can)
        start = m.start()
        floor = max(0, start - 50) if self.regex.pattern != self.pattern else start
        while start > floor and (text[start - 1].isalnum() or text[start - 1] in "_.-"):
            start -= 1
        match = text[start : m.end()].strip("\n")
        if any(a.allows(secret, match, line) for a in self.allow):
            return True
        if self.filters:
            ls = _line_start(text, m.start(), 0, 0)
            finding = {
                "secret": secret,
                "match": match,
                "line": line,
                "fragment_raw": text,
                "match_start_idx": m.start(),
                "match_end_idx": m.end(),
                "match_line_start_idx": ls,
                "match_line_end_idx": _line_end(text, m.end(), 0, len(text)),
            }
            return any(f.drops(finding) for f in self.filters)
        return False


class KeywordIndex:
    """Which of many keywords occur in a lower-cased text, in one regex pass (for when
    there is no Hyperscan prefilter).  Keywords that start at the same place as a longer
    one are found through it (``api`` through ``apikey``)."""

    def __init__(self, keywords: Iterable[str]) -> None:
        words = sorted(set(keywords), key=len, reverse=True)
        self._inside = {w: frozenset(k for k in words if k in w) for w in words}
        body = "|".join(re.escape(w) for w in words) or "(?!)"
        self._re = re.compile(f"(?=({body}))")

    def present(self, lower: str) -> frozenset[str]:
        hits = set(self._re.findall(lower))
        out: set[str] = set()
        for h in hits:
            out |= self._inside[h]
        return frozenset(out)


def start_positions(
    lower: str,
    starts: Iterable[str],
    lo: int,
    hi: int,
    found: dict[str, list[int]] | None = None,
    where: Where | None = None,
) -> list[int]:
    """Every position in ``lower[lo:hi]`` where one of ``starts`` occurs, in order
    (``found``: the positions of some of them, already looked up; ``where``: a faster
    way to look them up)."""
    find = where or partial(find_all, lower)
    out: set[int] = set()
    for w in starts:
        out.update(found[w] if found and w in found else find(w, lo, hi))
    return sorted(out)


def _matches_at(
    regex: re.Pattern[str], text: str, at: list[int], lo: int, hi: int
) -> Iterator[re.Match[str]]:
    """What ``regex.finditer(text, lo, hi)`` gives, for a regex whose every match starts
    where one of its start literals occurs (``at``: every such place, in order): leftmost,
    non-overlapping, tried only there."""
    done = lo
    for i in range(bisect.bisect_left(at, lo), bisect.bisect_left(at, hi)):
        pos = at[i]
        if pos < done:
            continue
        m = regex.match(text, pos, hi)
        if m is not None:
            yield m
            done = m.end() if m.end() > pos else pos + 1


def find_all(text: str, word: str, lo: int, hi: int) -> list[int]:
    """Every position in ``text[lo:hi]`` where ``word`` occurs (overlapping ones too)."""
    out: list[int] = []
    pos = text.find(word, max(lo, 0), hi)
    while pos >= 0:
        out.append(pos)
        pos = text.find(word, pos + 1, hi)
    return out


def _line_start(text: str, pos: int, lines: int, floor: int) -> int:
    """Start of the line ``lines`` before the one holding ``pos`` (not before ``floor``)."""
    limit = max(floor, pos - _MAX_WINDOW)
    for _ in range(lines + 1):
        nl = text.rfind("\n", limit, pos)
        if nl < 0:
            return limit
        pos = nl if _ < lines else nl + 1
    return pos


def _line_end(text: str, pos: int, lines: int, ceil: int) -> int:
    """End of the line ``lines`` after the one holding ``pos`` (newline included)."""
    limit = min(ceil, pos + _MAX_WINDOW)
    for _ in range(lines + 1):
        nl = text.find("\n", pos, limit)
        if nl < 0:
            return limit
        pos = nl + 1
    return pos


def gitleaks_rules_compiled() -> list[GitleaksRule]:
    """Every rule of the rule set in use (``capture.gitleaks_rules``: a gitleaks-format
    file, else betterleaks' embedded rules) whose pattern Python can compile."""
    allow = global_allow()
    given = gitleaks_rules.global_filter()
    global_filter = compile_filter(given) if given else None
    out = []
    for spec in gitleaks_rules.rules():
        if spec["id"] in SKIPPED:
            continue
        try:
            rule = GitleaksRule(spec, allow, global_filter)
            rule.regex  # noqa: B018 - compile now: a failure leaves the rule out
        except re.error as exc:
            SKIPPED[spec["id"]] = f"pattern does not compile in Python: {exc}"
            continue
        out.append(rule)
    return out


# --- where a regex's matches start -----------------------------------------------------

_MAX_STARTS: Final = 64
#: From this length on, a rule with start literals is tried only where they occur.
_TRY_AT_STARTS: Final = 1024


@lru_cache(maxsize=1024)
def literal_starts(pattern: str) -> tuple[str, ...] | None:
    """Lower-case literals (2 characters or more) one of which every match of
    ``pattern`` starts with, read in ASCII text: ``(?i)(?:access|auth|…)…`` → ``access``,
    ``auth``…; ``None`` where a match may start otherwise (a class, a repeat, an empty
    branch) or the literals are too many.  Anchors and lookarounds are zero-width and
    skipped."""
    import re._parser as sre  # type: ignore[import-not-found]

    try:
        got = _seq_starts(list(sre.parse(pattern)))
    except (re.error, RecursionError, ValueError):
        return None
    if not got or min(map(len, got)) < 2:
        return None
    return tuple(sorted(got))


def _seq_starts(items: list[Any]) -> set[str] | None:
    """Prefixes every match of the sequence ``items`` starts with (``{""}``: none known)."""
    acc = {""}
    for op, arg in items:
        name = str(op)
        if name in ("AT", "ASSERT", "ASSERT_NOT"):
            continue  # zero-width: the match starts where it did
        whole = _whole(name, arg)
        if whole is not None:
            acc = {a + w for a in acc for w in whole}
            if len(acc) > _MAX_STARTS:
                return None
            continue
        part = _item_starts(name, arg)
        if part is not None and all(part):
            acc = {a + p for a in acc for p in part}
        break
    return acc if len(acc) <= _MAX_STARTS else None


def _whole(name: str, arg: Any) -> set[str] | None:
    """The literals (lower-cased) one item always matches in full, else ``None``."""
    if name == "LITERAL":
        return {chr(arg).lower()}
    if name == "IN":
        chars: set[str] = set()
        for op, a in arg:
            if str(op) != "LITERAL":
                return None  # a range, a category, a negation
            chars.add(chr(a).lower())
        return chars if 0 < len(chars) <= 4 else None
    if name == "SUBPATTERN":
        return _seq_whole(list(arg[-1]))
    if name == "BRANCH":
        out: set[str] = set()
        for branch in arg[1]:
            got = _seq_whole(list(branch))
            if got is None:
                return None
            out |= got
        return out if len(out) <= _MAX_STARTS else None
    return None


def _seq_whole(items: list[Any]) -> set[str] | None:
    acc = {""}
    for op, arg in items:
        name = str(op)
        if name in ("AT", "ASSERT", "ASSERT_NOT"):
            continue
        whole = _whole(name, arg)
        if whole is None:
            return None
        acc = {a + w for a in acc for w in whole}
        if len(acc) > _MAX_STARTS:
            return None
    return acc


def _item_starts(name: str, arg: Any) -> set[str] | None:
    """Prefixes of an item that is not a whole literal (a group, alternatives, a repeat
    of at least one)."""
    if name == "SUBPATTERN":
        return _seq_starts(list(arg[-1]))
    if name == "BRANCH":
        out: set[str] = set()
        for branch in arg[1]:
            got = _seq_starts(list(branch))
            if got is None or "" in got:
                return None
            out |= got
        return out
    if name in ("MAX_REPEAT", "MIN_REPEAT", "POSSESSIVE_REPEAT") and arg[0] >= 1:
        return _seq_starts(list(arg[2]))
    return None


# --- values that only look like secrets ----------------------------------------------

_RUN_RE: Final = re.compile(r"(.)\1{6,}", re.IGNORECASE)  # xxxxxxx, 0000000, *******
_PERIODIC_RE: Final = re.compile(r"(...?)\1{3,}")  # 123123123123, abababab
_PLACEHOLDER_WORD_RE: Final = re.compile(
    r"your[_-]?(?:api|token|key|secret|pass)|placeholder|changeme|example|redacted"
    r"|(?:put|insert|replace)[_-]?(?:your|here)|tokenhere|stringhere|_here\b|-here\b",
    re.IGNORECASE,
)
_PLACEHOLDER_VALUES: Final = frozenset(
    [
        "password",
        "passwd",
        "pass",
        "pwd",
        "secret",
        "token",
        "yyy",
        "xxx",
        "test",
        "username",
        "user",
        "changeme",
        "apikey",
        "api_key",
        "api-key",
        "mypassword",
        "mysecret",
    ]
)
# Values that stand for a secret rather than being one, whatever rule found them: words
# for "nothing", a run of one character, and the placeholder syntaxes of shells, templates,
# format strings and CI systems; home and system paths.
OWN_ALLOW_REGEXES: Final = (
    r"(?i)^(?:true|false|null|none|nil|undefined)$",
    r"^(.)\1*$",
    r"^\$(?:\d+|\{\d+\})$",
    r"^\$\{?[A-Za-z_][A-Za-z0-9_]*\}?$",
    r"^\$\{\{[^}]*\}\}$",
    r"^\{\{[^}]*\}\}$",
    r"^%[A-Za-z_][A-Za-z0-9_]*%$",
    r"^%[-+# 0]?[a-zA-Z]$",
    r"^\{\d{0,2}\}$",
    r"^@[A-Za-z_][A-Za-z0-9_]*@$",
    r"^/(?:Users|home|bin|etc|opt|tmp|usr|var)/[\w ./-]+$",
)


def global_allow() -> _Allow:
    """Ours, with the rules file's global allowlist (regexes, stop words) when given.
    It looks for the rules file each call: hold on to it where values come in bulk."""
    file = gitleaks_rules.rules_file()
    return _allow_for(str(file) if file else None)


@lru_cache(maxsize=4)
def _allow_for(file: str | None) -> _Allow:
    given = gitleaks_rules.global_allowlist()
    return _Allow({**given, "regexes": [*OWN_ALLOW_REGEXES, *given.get("regexes", ())]})


def _ascending_run(value: str, length: int = 7) -> bool:
    """``abcdefg``, ``1234567``: typed by a person, not drawn at random."""
    run = 1
    for a, b in zip(value, value[1:], strict=False):
        run = run + 1 if ord(b) - ord(a) == 1 and a.isalnum() and b.isalnum() else 1
        if run >= length:
            return True
    return False


def _without_runs(value: str, length: int = 7) -> str:
    """``value`` less its runs of one character, short periods and ascending runs."""
    v = _PERIODIC_RE.sub("", _RUN_RE.sub("", value))
    out: list[str] = []
    start = 0
    for i in range(1, len(v) + 1):
        if i == len(v) or not (ord(v[i]) - ord(v[i - 1]) == 1 and v[i].isalnum()):
            if i - start < length:
                out.append(v[start:i])
            start = i
    return "".join(out)


def _random_rest(value: str) -> bool:
    """Whether what is left of ``value`` once its runs are taken out is itself a random
    token (20+ characters, letters and digits, entropy 3.5+): a Twitter bearer token
    starts with 20 ``A``s, a Slack token may hold a typed-looking number."""
    rest = _without_runs(value)
    return (
        len(rest) >= 20
        and any(c.isdigit() for c in rest)
        and any(c.isalpha() for c in rest)
        and entropy(rest) >= 3.5
    )


def is_placeholder(value: str, allow: _Allow | None = None) -> bool:
    """Whether a found value is a stand-in, not a secret: ``ghp_xxxxxxxx…``,
    ``AKIAXXXXXXXXXXXXXXXX``, ``sk_abcdefghijklmnop…``, ``…YOUR_TOKEN_HERE…``, ``$2``,
    ``[PASSWORD]``, a value cut short with ``...``, or one of gitleaks' global allowlist
    shapes.  A random secret has none of these (a run of 7 equal characters in a 40
    character base62 token: about 1 in 10^10), unless the rest of it, runs taken out,
    is a random token of its own (``AAAAAAAAAAAAAAAAAAAAA`` + 80 random characters).
    ``allow``: the global allowlist to use (default: :func:`global_allow`, looked up now)."""
    v = value.strip().strip("\"'`")
    if len(v) < 2:
        return True
    if v.lower() in _PLACEHOLDER_VALUES:
        return True
    if v.endswith(("...", "\u2026")) or (v[0] == "[" and v[-1] == "]"):
        return True
    runs = _RUN_RE.search(v) or _PERIODIC_RE.search(v) or _ascending_run(v)
    if runs and not _random_rest(v):
        return True
    if _PLACEHOLDER_WORD_RE.search(v):
        return True
    return (allow or global_allow()).allows(v, v, v)
