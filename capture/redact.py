"""The one redactor every captured string passes before it reaches the trace store.

Prompts, tool inputs and outputs, file contents and shell output all go through
:class:`Redactor` (or the module-level :func:`redact_text` / :func:`redact`), so that no
secret ever reaches a trace, a dataset or an export.  Each secret is replaced by
``[REDACTED:<kind>]``; everything else is kept character for character.

Detection combines two sources:

* the pattern-based plugins of `detect-secrets` (Yelp, pinned 1.5.0).  Their compiled
  ``denylist`` regexes are run directly over the whole text (the line-by-line scanning
  API is far slower and does not give the span to replace).  The high-entropy-string
  plugins are deliberately *not* used: they would wipe git SHAs, uuids, ``toolu_...``
  ids and thinking-block ``signature`` values that traces need.  The keyword plugin
  contributes its vocabulary (:data:`KEYWORD_DENYLIST`) but not its regexes, which are
  written for one line at a time (``[^\\v'"]`` does not stop at a newline) and flag
  names such as ``secret_name``;
* our own rules: Anthropic keys and OAuth tokens, Authorization / API-key headers,
  whole PEM private-key blocks, passwords in URLs, ``.env`` / YAML / INI / JSON
  assignments to credential-named keys (value only), cookies, and generic token
  shapes (GitHub, Slack, AWS, Google, Hugging Face, OpenAI, JWT...).

Speed: every case-insensitive rule runs on one lower-cased copy of the text with a
lower-case pattern (``re.IGNORECASE`` is ~10x slower in CPython); every pattern starts
with a literal where it can; no pattern can fail after an unbounded scan (repeats
before a required suffix are bounded, or the search skips the run, see
:class:`_JwtRule`); the slow assignment-style plugin regexes only run on the lines
where a cheap gate hits; the rescans that make the result idempotent only read the
lines a replacement touched; short strings (dict values, tool names) are cached; and
once a redactor has read 1 MB (or at once, for an import), a Hyperscan prefilter
(``capture.prefilter``) picks the few rules that can match a string, so only those run.
"""

from __future__ import annotations

import bisect
import re
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from functools import lru_cache
from typing import Any, Final

from detect_secrets.plugins.artifactory import ArtifactoryDetector
from detect_secrets.plugins.aws import AWSKeyDetector
from detect_secrets.plugins.azure_storage_key import AzureStorageKeyDetector
from detect_secrets.plugins.basic_auth import BasicAuthDetector
from detect_secrets.plugins.cloudant import CloudantDetector
from detect_secrets.plugins.discord import DiscordBotTokenDetector
from detect_secrets.plugins.github_token import GitHubTokenDetector
from detect_secrets.plugins.gitlab_token import GitLabTokenDetector
from detect_secrets.plugins.ibm_cloud_iam import IbmCloudIamDetector
from detect_secrets.plugins.ibm_cos_hmac import IbmCosHmacDetector
from detect_secrets.plugins.jwt import JwtTokenDetector
from detect_secrets.plugins.keyword import DENYLIST as _DS_KEYWORD_DENYLIST
from detect_secrets.plugins.mailchimp import MailchimpDetector
from detect_secrets.plugins.openai import OpenAIDetector
from detect_secrets.plugins.pypi_token import PypiTokenDetector
from detect_secrets.plugins.sendgrid import SendGridDetector
from detect_secrets.plugins.slack import SlackDetector
from detect_secrets.plugins.softlayer import SoftlayerDetector
from detect_secrets.plugins.square_oauth import SquareOAuthDetector
from detect_secrets.plugins.stripe import StripeDetector
from detect_secrets.plugins.telegram_token import TelegramBotTokenDetector
from detect_secrets.plugins.twilio import TwilioKeyDetector

from claude_bc.capture.prefilter import Prefilter
from claude_bc.capture.secrets_rules import (
    GitleaksRule,
    KeywordIndex,
    entropy,
    find_all,
    gitleaks_rules_compiled,
    global_allow,
    is_placeholder,
    literal_starts,
    start_positions,
)

__all__ = [
    "CREDENTIAL",
    "DETECT_SECRETS_PLUGINS",
    "DETECT_SECRETS_SKIPPED",
    "KEYWORD_DENYLIST",
    "MARKER_PREFIX",
    "UNSCANNABLE",
    "Redactor",
    "default_redactor",
    "is_credential_key",
    "marker",
    "redact",
    "redact_text",
]

MARKER_PREFIX: Final = "[REDACTED:"
CREDENTIAL: Final = "credential"
#: What a whole string becomes when scanning it failed unexpectedly: fail closed.
UNSCANNABLE: Final = "[REDACTED:unscannable]"

#: detect-secrets' keyword vocabulary (``api_?key``, ``password``, ``secret``...).
KEYWORD_DENYLIST: Final[tuple[str, ...]] = tuple(str(w) for w in _DS_KEYWORD_DENYLIST)

Span = tuple[int, int, str]
Windows = list[tuple[int, int]]
_Validator = Callable[[str, "re.Match[str]"], bool]

_MAX_PASSES: Final = 4
_CACHE_MAX_LEN: Final = 256
#: Characters a redactor reads before it builds its Hyperscan prefilter.
PREFILTER_AFTER: Final = 1 << 20
#: The prefilter keeps counted repeats up to this length (``s\.[a-z0-9]{24}``: with
#: the default 8, every ``os.environment`` would make Vault's rule a candidate).
_REPEATS: Final = 24


def marker(kind: str) -> str:
    """The replacement for one secret of ``kind``."""
    return f"{MARKER_PREFIX}{kind}]"


# --------------------------------------------------------------------------------------
# Credential-named keys
# --------------------------------------------------------------------------------------

_SPLIT_RE: Final = re.compile(r"[A-Z\u00d1]+(?![a-z\u00f1])|[A-Z\u00d1]?[a-z\u00f1]+|\d+")


def _joined(word: str) -> str:
    return word.replace("_?", "").replace("_", "")


# A name is a credential when its lower-cased alphanumerics end with one of these...
_CREDENTIAL_SUFFIXES: Final[tuple[str, ...]] = tuple(
    sorted(
        {_joined(w) for w in KEYWORD_DENYLIST}
        | {
            "apikey",
            "apitoken",
            "auth",
            "authorization",
            "bearer",
            "clientsecret",
            "cookie",
            "cookies",
            "credential",
            "credentials",
            "accesskey",
            "encryptionkey",
            "hmackey",
            "jwt",
            "masterkey",
            "passphrase",
            "secretkey",
            "signingkey",
            "subscriptionkey",
            "token",
        }
    )
)
# ...unless it ends with one of these (tokenizer special tokens, pagination cursors)...
_NOT_CREDENTIAL_SUFFIXES: Final[tuple[str, ...]] = (
    "bostoken",
    "eostoken",
    "padtoken",
    "unktoken",
    "septoken",
    "clstoken",
    "masktoken",
    "starttoken",
    "endtoken",
    "stoptoken",
    "specialtoken",
    "imagetoken",
    "videotoken",
    "audiotoken",
    "pagetoken",
    "nexttoken",
    "cursortoken",
    "synctoken",
    "resumetoken",
    "paginationtoken",
    "continuationtoken",
    "cancellationtoken",
    "publickeytoken",
    "authenticitytoken",
)
# ...or has one of these parts (a public key or token is no secret)...
_NOT_CREDENTIAL_PARTS: Final = frozenset({"public"})
# ...or is exactly one of these (``PWD``/``OLDPWD`` are directories in every env dump).
_NOT_CREDENTIAL_EXACT: Final = frozenset({"pwd", "oldpwd"})
# A name that merely contains a strong word is a credential unless its last part says
# it names something about the secret rather than the secret itself.
_STRONG_WORDS: Final = frozenset(
    {"password", "passwd", "passphrase", "secret", "contrasena", "contrase\u00f1a"}
)
_STRONG_PAIRS: Final = frozenset(
    {("api", "key"), ("private", "key"), ("secret", "key"), ("access", "token")}
)
_QUALIFIERS: Final = frozenset(
    [
        "name",
        "names",
        "id",
        "ids",
        "arn",
        "path",
        "file",
        "filename",
        "dir",
        "ref",
        "refs",
        "type",
        "kind",
        "version",
        "env",
        "var",
        "header",
        "field",
        "prefix",
        "suffix",
        "url",
        "uri",
        "endpoint",
        "count",
        "length",
        "len",
        "size",
        "ttl",
        "expiry",
        "expires",
        "expiration",
        "at",
        "time",
        "timeout",
        "enabled",
        "required",
        "policy",
        "helper",
        "label",
        "description",
        "hint",
        "placeholder",
        "format",
        "min",
        "max",
        "regex",
        "pattern",
        "rotation",
        "manager",
        "store",
        "provider",
        "location",
        "source",
        "reset",
        "strength",
        "changed",
        "set",
        "updated",
        "exists",
        "mode",
        "method",
        "validators",
        "variable",
        "param",
        "parameter",
        "input",
        "widget",
        "attribute",
        "column",
        "option",
        "flag",
    ]
)


@lru_cache(maxsize=8192)
def is_credential_key(name: str) -> bool:
    """Whether a key / variable / header name holds a credential (case, ``-``/``_``/camel
    insensitive): ``api_key``, ``apiKey``, ``x-api-key``, ``Authorization``,
    ``client_secret``, ``refresh_token``, ``set-cookie``, ``AWS_SECRET_ACCESS_KEY``... but
    not ``tokens``, ``input_tokens``, ``max_tokens``, ``token_count``, ``totalTokens``,
    ``eos_token``, ``secret_name``, ``session_id``."""
    if not name or len(name) > 120:
        return False
    parts = [p.lower() for p in _SPLIT_RE.findall(name)]
    while parts and parts[-1].isdigit():
        parts.pop()
    if not parts:
        return False
    norm = "".join(parts)
    if norm in _NOT_CREDENTIAL_EXACT or norm.endswith(_NOT_CREDENTIAL_SUFFIXES):
        return False
    if _NOT_CREDENTIAL_PARTS.intersection(parts):
        return False
    if norm.endswith(_CREDENTIAL_SUFFIXES):
        return True
    if parts[-1] in _QUALIFIERS:
        return False
    if any(p in _STRONG_WORDS for p in parts):
        return True
    return any(pair in _STRONG_PAIRS for pair in zip(parts, parts[1:], strict=False))


# --------------------------------------------------------------------------------------
# Value heuristics for name-based rules
# --------------------------------------------------------------------------------------

_PLACEHOLDER_RE: Final = re.compile(
    r"""
    \$\{\{.*\}\}                # ${{ secrets.X }}
    | \$\{[^}]*\}               # ${VAR} ${VAR:-x}
    | \$\(.*\)                  # $(command)
    | \$[A-Za-z_][A-Za-z0-9_]*  # $VAR
    | \{\{.*\}\}                # {{ template }}
    | \{[A-Za-z_][\w.\[\]]*\}   # {python_format}
    | <[^<>]*>?                 # <your-api-key>, <user:password>
    | `[^`]*`                   # `command`
    | \[[^\[\]]*\]            # [PASSWORD]
    | %\(?[A-Za-z_]*\)?[sd]     # %(password)s
    | %[A-Za-z_][A-Za-z0-9_]*%  # %WINDOWS_VAR%
    | [*xX\u2022.]+             # ****** / xxxx (already masked)
    """,
    re.VERBOSE | re.DOTALL,
)
_BENIGN_VALUES: Final = frozenset(
    {
        "include",
        "omit",
        "same-origin",
        "true",
        "false",
        "null",
        "none",
        "nil",
        "undefined",
        "basic",
        "bearer",
        "token",
        "digest",
    }
)
_WORD_RE: Final = re.compile(r"[A-Za-z_$][A-Za-z_$]*")
_PATH_EXPR_RE: Final = re.compile(r"[A-Za-z_$][\w$]*(?:(?:\.|->|::)[A-Za-z_$][\w$]*)+")
_NUMBER_RE: Final = re.compile(r"[+-]?\d+(?:\.\d+)?")
_ENV_NAME_RE: Final = re.compile(r"[A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+")
_CODE_CHARS: Final = frozenset("()[]{}<>")
_TYPE_WORDS: Final = frozenset(
    [
        "str",
        "string",
        "int",
        "integer",
        "float",
        "number",
        "bool",
        "boolean",
        "any",
        "object",
        "bytes",
        "list",
        "dict",
        "optional",
        "secretstr",
    ]
)


def _skippable(value: str) -> bool:
    """Values never worth redacting: empty, a placeholder, already redacted, benign."""
    v = value.strip()
    return (
        not v
        or v.startswith(MARKER_PREFIX)
        or v.lower() in _BENIGN_VALUES
        or _PLACEHOLDER_RE.fullmatch(v) is not None
    )


def _looks_like_code(value: str, *, upper_name: bool) -> bool:
    """For an unquoted value: is it an expression rather than a literal secret?

    ``input()``, ``tokens[0]``, ``self._token``, ``hashedPassword``, ``str``, ``None``,
    ``4096`` are code or data; ``hunter2``, ``wJalr/K7MDENG``, ``cGFzcw==`` are not.
    Under an UPPER_CASE name (``POSTGRES_PASSWORD: example``) plain words are secrets.
    """
    if any(c in _CODE_CHARS for c in value):
        # a call or an index has its brackets in order; a password drawn with
        # punctuation (``u@D7GXt)t>8d(LtH^``, ``4nXYKv]mHDeom5``) seldom does
        return _balanced(value) or not _random_value(value)
    if _code_path(value) or _NUMBER_RE.fullmatch(value):
        return True
    if value.lower() in _TYPE_WORDS:
        return True
    return not upper_name and _WORD_RE.fullmatch(value) is not None and not _random_letters(value)


_PATH_SEP_RE: Final = re.compile(r"\.|->|::")


def _code_path(value: str) -> bool:
    """``self.token``, ``http.cookies``, ``os->secret``: names joined by ``.``/``->``/``::``
    -- unless a part is a random token (``ey5g5C73ichf…rsOC.SIDSLIy4jZ…``: a dotted
    token, not attribute access)."""
    return _PATH_EXPR_RE.fullmatch(value) is not None and not any(
        _random_token(p) for p in _PATH_SEP_RE.split(value)
    )


_CLOSING: Final = {")": "(", "]": "[", "}": "{"}


def _balanced(value: str) -> bool:
    """Whether ``()``, ``[]`` and ``{}`` in ``value`` open and close in order."""
    stack: list[str] = []
    for c in value:
        if c in "([{":
            stack.append(c)
        elif c in _CLOSING and (not stack or stack.pop() != _CLOSING[c]):
            return False
    return not stack


# --------------------------------------------------------------------------------------
# Rules
# --------------------------------------------------------------------------------------


class _Ctx:
    """One text being scanned, with a position-preserving lower-cased copy; ``words``:
    finds where the words rules look for occur, all in one pass (see :meth:`where`)."""

    __slots__ = ("_lower", "_where", "text", "windows", "words")

    def __init__(
        self, text: str, windows: Windows | None = None, words: _WordFinder | None = None
    ) -> None:
        self.text = text
        self.windows = windows
        self._lower: str | None = None
        # (a short text: a str.find per word costs less than one more scan)
        self.words = words if windows is None and len(text) >= _FIND_IN_ONE_PASS else None
        self._where: dict[str, list[int]] | None = None

    def where(self, word: str, lo: int, hi: int) -> list[int]:
        """Every position of ``word`` (lower-case) in ``lower[lo:hi]``, in order: what
        :func:`find_all` gives, from one scan for all of ``words``' words on first use."""
        if self.words is None or word not in self.words.index:
            return find_all(self.lower, word, lo, hi)
        if self._where is None:
            self._where = self.words.find(self.lower)
            if self._where is None:  # the scan failed: look each word up
                self.words = None
                return find_all(self.lower, word, lo, hi)
        got = self._where.get(word, [])
        if lo <= 0 and hi >= len(self.text):
            return got
        return got[bisect.bisect_left(got, lo) : bisect.bisect_right(got, hi - len(word))]

    @property
    def lower(self) -> str:
        """The text lower-cased, position for position (only inside ``windows`` when
        scanning windows: nothing reads the rest)."""
        if self._lower is None:
            if self.windows is None:
                self._lower = _lower(self.text)
            else:
                parts: list[str] = []
                last = 0
                for lo, hi in self.windows:
                    parts += (self.text[last:lo], _lower(self.text[lo:hi]))
                    last = hi
                parts.append(self.text[last:])
                self._lower = "".join(parts)
        return self._lower


#: From this length on, a text's words are found in one pass (:class:`_WordFinder`).
_FIND_IN_ONE_PASS: Final = 1024


class _WordFinder:
    """Where each of some words occurs in a lower-cased text, in one Hyperscan pass (the
    words rules run most often look for: ``key``, ``token``, ``password``…; one
    ``str.find`` pass per word costs several times more on a long text)."""

    def __init__(self, words: Iterable[str]) -> None:
        self.words = sorted(set(words))
        assert all(w.isascii() and w == w.lower() and "?" not in w for w in self.words)
        self.index = frozenset(self.words)
        self.pre = Prefilter(
            [[(re.escape(w), 0)] for w in self.words], "redact-words", every_match=True
        )

    def find(self, lower: str) -> dict[str, list[int]] | None:
        """``{word: positions}`` for every word; ``None``: the scan failed."""
        # one byte per character, each non-ASCII one a "?" (in no word): same positions
        got = self.pre.occurrences(lower.encode("ascii", "replace"))
        if got is None:
            return None
        out: dict[str, list[int]] = {}
        words = self.words
        for group, end in got:
            w = words[group]
            start = end - len(w)
            if lower.startswith(w, start):  # literals: exact, but checked
                out.setdefault(w, []).append(start)
        for positions in out.values():
            positions.sort()
        return out


def _lower(text: str) -> str:
    # str.lower() keeps every position except for U+0130 (İ -> i + U+0307).
    return (text.replace("\u0130", "i") if "\u0130" in text else text).lower()


class _Rule:
    kinds: tuple[str, ...] = ()

    def find(self, ctx: _Ctx, windows: Windows | None) -> Iterator[Span]:
        """Spans of secrets.  ``windows``: only look at these ranges (whole lines, see
        :meth:`Redactor.redact_text`), reading the text around them as usual; ``None``:
        the whole text."""
        raise NotImplementedError  # pragma: no cover - interface

    def prefilter(self) -> list[tuple[str, int]] | None:
        """Regexes (with ``re`` flags) at least one of which matches, on the whole text,
        wherever this rule can find a secret; ``None``: none known, always run it."""
        return None

    def may_run(self, keywords: frozenset[str]) -> bool:
        """Whether to run, given the gitleaks keywords in the text (no prefilter)."""
        return True


class _RegexRule(_Rule):
    """Regexes whose matches' ``group`` is the secret.

    ``lower``: the patterns are lower-case and run on the lower-cased text.
    ``hints``: literals (case-sensitive) one of which must occur for the rule to run;
    ``lower_hint``: the same on the lower-cased text.
    ``line_gate``: a fast lower-case regex; the (slow) patterns only run on the lines
    where it hits.
    ``validate(text, match)``: extra check against the original text.
    ``trim``: characters to drop from both ends of the span (delimiters the library's
    pattern includes in its match); ``skip_prefix``: a literal to drop from its start.
    """

    def __init__(
        self,
        kind: str | Callable[[re.Match[str]], str],
        patterns: re.Pattern[str] | str | Iterable[re.Pattern[str]],
        *,
        group: int | str = 0,
        lower: bool = False,
        hints: tuple[str, ...] = (),
        lower_hint: str | None = None,
        line_gate: str | None = None,
        window: tuple[str, int, int] | None = None,
        validate: _Validator | None = None,
        trim: str = "",
        skip_prefix: str = "",
        line_local: bool = True,
        source: str = "claude-bc",
    ) -> None:
        if isinstance(patterns, str):
            self.patterns = [re.compile(patterns)]
        elif isinstance(patterns, re.Pattern):
            self.patterns = [patterns]
        else:
            self.patterns = list(patterns)
        self.kind = kind
        self.group = group
        self.lower = lower
        self.hints = hints
        self.lower_hint = lower_hint
        self.line_gate = re.compile(line_gate) if line_gate else None
        self.window = window
        self.validate = validate
        self.trim = trim
        self.skip_prefix = skip_prefix
        self.line_local = line_local
        self.source = source
        self.kinds = (kind,) if isinstance(kind, str) else ()

    def _matches(self, ctx: _Ctx, lo: int, hi: int) -> Iterator[re.Match[str]]:
        subject = ctx.lower if self.lower else ctx.text
        if self.window is not None:
            literal, before, after = self.window
            yield from self._window_matches(subject, literal, before, after, lo, hi)
            return
        if self.line_gate is None:
            for p in self.patterns:
                yield from p.finditer(subject, lo, hi)
            return
        low = ctx.lower
        done = -1
        for g in self.line_gate.finditer(low, lo, hi):
            if g.start() < done:
                continue
            start = max(lo, low.rfind("\n", lo, g.start()) + 1)
            end = low.find("\n", g.end(), hi)
            end = hi if end < 0 else end
            done = end
            for p in self.patterns:
                yield from p.finditer(subject, start, end)

    def _window_matches(
        self, subject: str, literal: str, before: int, after: int, lo: int, hi: int
    ) -> Iterator[re.Match[str]]:
        """Matches within ``before``/``after`` characters of each ``literal``: bounds the
        work of a pattern with an unbounded repeat before its literal."""
        windows: Windows = []
        pos = subject.find(literal, lo, hi)
        while pos >= 0:
            a, b = max(lo, pos - before), min(hi, pos + len(literal) + after)
            if windows and a <= windows[-1][1]:
                windows[-1] = (windows[-1][0], b)
            else:
                windows.append((a, b))
            pos = subject.find(literal, pos + 1, hi)
        for a, b in windows:
            for p in self.patterns:
                yield from p.finditer(subject, a, b)

    def find(self, ctx: _Ctx, windows: Windows | None) -> Iterator[Span]:
        if not self.line_local:
            windows = None
        if windows is None:
            if self.hints and not any(h in ctx.text for h in self.hints):
                return
            if self.lower_hint is not None and self.lower_hint not in ctx.lower:
                return
        for lo, hi in windows or [(0, len(ctx.text))]:
            yield from self._find(ctx, lo, hi)

    def prefilter(self) -> list[tuple[str, int]] | None:
        return [(p.pattern, p.flags | (re.IGNORECASE if self.lower else 0)) for p in self.patterns]

    def _find(self, ctx: _Ctx, lo: int, hi: int) -> Iterator[Span]:
        text = ctx.text
        for m in self._matches(ctx, lo, hi):
            s, e = m.span(self.group)
            if s < 0 or e <= s:
                continue
            if self.skip_prefix and text.startswith(self.skip_prefix, s):
                s += len(self.skip_prefix)
            if self.trim:
                while s < e and text[s] in self.trim:
                    s += 1
                while e > s and text[e - 1] in self.trim:
                    e -= 1
            if e <= s:
                continue
            if self.validate is not None and not self.validate(text, m):
                continue
            yield s, e, self.kind if isinstance(self.kind, str) else self.kind(m)


def _prev_char(text: str, pos: int) -> str:
    """The character before ``pos``; the start of the text counts as a line start."""
    return text[pos - 1] if pos > 0 else "\n"


def _not_after(chars: str) -> _Validator:
    """Validator: the match must not directly follow one of ``chars`` (a word boundary
    written as a check, so that the pattern can start with its literal prefix)."""

    def check(text: str, m: re.Match[str]) -> bool:
        p = _prev_char(text, m.start())
        return p not in chars

    return check


_ALNUM: Final = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"


def _openai_generic_ok(text: str, m: re.Match[str]) -> bool:
    if not _not_after(_ALNUM + "_-")(text, m):
        return False
    body = text[m.start() + 3 : m.end()]
    letters = any(c.isalpha() for c in body)
    mixed = any(c.isupper() for c in body) and any(c.islower() for c in body)
    return mixed or (letters and any(c.isdigit() for c in body))


def _bounded(text: str, m: re.Match[str]) -> bool:
    """A whole word: ``AKIA…`` alone, not inside ``TODAYINASIAASACKOFRICE``."""
    end = text[m.end() : m.end() + 1]
    return _prev_char(text, m.start()) not in _ALNUM and (not end or end not in _ALNUM)


def _telegram_ok(text: str, m: re.Match[str]) -> bool:
    """A whole bot token: its id not the tail of a word (``clm52552192:Agency…`` in an
    XSD; ``/bot123…:`` in an API URL is fine, so is the tail of a longer number), its
    secret not the first 35 characters of a longer run (``…:A-some-other-thing-…``)."""
    s, e = m.span()
    before = _prev_char(text, s)
    after = text[e : e + 1]
    return (not before.isalpha() or text[max(0, s - 3) : s].lower() == "bot") and (
        not after or after not in _ALNUM + "_-"
    )


def _hf_ok(text: str, m: re.Match[str]) -> bool:
    """Hugging Face tokens are 34 random letters (and digits): mixed case, not the
    ``hf_servingcell…`` / ``hf_requiredCharacteristic…`` identifiers of C and ObjC."""
    body = m.group(0)[3:]
    upper = sum(c.isupper() for c in body)
    return (
        _prev_char(text, m.start()) not in _ALNUM
        and upper >= 3
        and sum(c.islower() for c in body) >= 3
        and (len(body) == 34 or any(c.isdigit() for c in body))
        and not re.search(r"[A-Z][a-z]{3,}[A-Z][a-z]{3,}[A-Z][a-z]{3,}", body)  # CamelCase
    )


def _jwt_ok(text: str, m: re.Match[str]) -> bool:
    header, _, rest = m.group(0).partition(".")
    if rest.startswith("eyJ"):
        return True
    try:
        return bool(JwtTokenDetector.is_formally_valid(header))
    except Exception:
        return False


def _bearer_ok(text: str, m: re.Match[str]) -> bool:
    if not _not_after(_ALNUM + "_-")(text, m):
        return False
    tok = text[m.start(1) : m.end(1)]
    return len(tok) >= 20 or (len(tok) >= 6 and any(c.isdigit() for c in tok))


def _authorization_ok(text: str, m: re.Match[str]) -> bool:
    if not _not_after(_ALNUM + "_")(text, m):
        return False
    tok = text[m.start("tok") : m.end("tok")]
    if _skippable(tok) or text.startswith("$(", m.start("tok")):
        return False
    if m.group("scheme"):
        return True
    # No scheme word: only a token-looking value (not ``f``, not ``headerValue``).
    return len(tok) >= 8 and not _looks_like_code(tok, upper_name=False)


_JWT_RE: Final = re.compile(r"eyJ[A-Za-z0-9_=\-]{6,}\.[A-Za-z0-9_=\-]{4,}(?:\.[A-Za-z0-9_+/=\-]*)*")
_JWT_RUN_RE: Final = re.compile(r"[A-Za-z0-9_=\-]*")


class _JwtRule(_Rule):
    """``eyJ<header>.<payload>[.<signature>...]`` (JWS and JWE).  Searched with
    ``str.find`` so that a failed attempt skips the rest of its base64url run: a plain
    ``finditer`` retries at every ``eyJ`` inside one long run (quadratic on
    ``eyJeyJeyJ...``)."""

    kinds = ("jwt",)

    def prefilter(self) -> list[tuple[str, int]] | None:
        return [("eyJ", 0)]

    def find(self, ctx: _Ctx, windows: Windows | None) -> Iterator[Span]:
        text = ctx.text
        for lo, hi in windows or [(0, len(text))]:
            yield from self._find(text, lo, hi)

    @staticmethod
    def _find(text: str, lo: int, hi: int) -> Iterator[Span]:
        pos = text.find("eyJ", lo, hi)
        while pos >= 0:
            m = _JWT_RE.match(text, pos)
            if m is not None:
                if _jwt_ok(text, m):
                    yield m.start(), m.end(), "jwt"
                nxt = m.end()
            else:
                run = _JWT_RUN_RE.match(text, pos)
                nxt = max(pos + 1, run.end() if run else pos + 1)
            pos = text.find("eyJ", nxt, hi)


def _anthropic_kind(m: re.Match[str]) -> str:
    return {
        "api": "anthropic-api-key",
        "admin": "anthropic-admin-key",
        "oat": "anthropic-oauth-token",
        "ort": "anthropic-oauth-refresh-token",
    }.get(m.group("t") or "", "anthropic-key")


def _xml_pair_ok(text: str, m: re.Match[str]) -> bool:
    """``<add key="Password" value="…"/>``, ``<apiToken>…</apiToken>``."""
    name, value = m.group("name"), m.group("v")
    if " " in value or "\t" in value:
        # ``<secret>{AQAAABAAAA… …}</secret>`` (Jenkins' credentials.xml): words under a
        # credential name only with a random-looking one among them, not a sentence
        return is_credential_key(name) and any(_random_token(w.strip("{}")) for w in value.split())
    if _skippable(value) or _same_word(value, name):
        return False
    if is_credential_key(name):
        return True
    return _weak_key_name(name) and _random_token(value)


def _url_password_ok(text: str, m: re.Match[str]) -> bool:
    return not _skippable(m.group(2))


# --- PEM private keys -----------------------------------------------------------------

_WORDS_BEFORE_KEY: Final = r"(?:[A-Z0-9]+[ \t]+){0,4}"
_PEM_BEGIN_RE: Final = re.compile(
    rf"BEGIN[ \t]+{_WORDS_BEFORE_KEY}PRIVATE[ \t]+KEY(?:[ \t]+BLOCK)?[ \t]*-{{0,5}}"
)
_PEM_END_RE: Final = re.compile(
    rf"END[ \t]+{_WORDS_BEFORE_KEY}PRIVATE[ \t]+KEY(?:[ \t]+BLOCK)?[ \t]*-{{0,5}}"
)
_PUTTY_RE: Final = re.compile(r"PuTTY-User-Key-File-\d+:[^\r\n]{0,512}")
_SEP: Final = r"(?:\r?\n|\r|\\r\\n|\\n)"
# What may follow a header when no END line comes: base64 on the same line, then lines
# of base64 or ``Name: value`` headers (Proc-Type, DEK-Info, PuTTY's fields).
_PEM_BODY_RE: Final = re.compile(
    rf"(?:[ \t]+[A-Za-z0-9+/=]+)*"
    rf"(?:{_SEP}[ \t]*(?:[A-Za-z0-9+/=]+|[A-Za-z][A-Za-z0-9-]{{0,40}}:[^\r\n\\]*)?[ \t]*"
    rf"(?={_SEP}|\Z|[\"']))*"
)
_BASE64_LINE_RE: Final = re.compile(r"[ \t]*[A-Za-z0-9+/=]{8,}[ \t]*")
_PEM_MAX: Final = 512 * 1024
_BASE64_RUN_RE: Final = re.compile(r"[A-Za-z0-9+/=]{32}")


def _dashes_before(text: str, pos: int) -> int:
    """Start of the ``-----`` (or ``---- ``) that opens a BEGIN/END line at ``pos``."""
    start = pos
    if start >= 2 and text[start - 1] in " \t" and text[start - 2] == "-":
        start -= 1
    dashes_end = start
    floor = max(0, start - 5)
    while start > floor and text[start - 1] == "-":
        start -= 1
    return start if start < dashes_end else pos


def _covered(spans: list[tuple[int, int]], pos: int) -> bool:
    """Whether ``pos`` lies in one of ``spans`` (sorted, non-overlapping)."""
    i = bisect.bisect_right(spans, (pos, 1 << 62)) - 1
    return i >= 0 and spans[i][0] <= pos < spans[i][1]


class _PrivateKeyRule(_Rule):
    """Whole ``-----BEGIN ... PRIVATE KEY-----`` ... ``-----END ...-----`` blocks (also with
    JSON-escaped ``\\n``), a header without its END (``head`` of a key file: the header
    and the base64 lines after it), an END without its header (``tail``), and PuTTY
    ``.ppk`` files.  The header list is a superset of detect-secrets' PrivateKeyDetector
    (enforced by the tests)."""

    kinds = ("private-key",)

    def prefilter(self) -> list[tuple[str, int]] | None:
        return [("PRIVATE", 0), ("PuTTY-User-Key-File", 0)]  # the gate in find()

    def find(self, ctx: _Ctx, windows: Windows | None) -> Iterator[Span]:
        # Always the whole text (blocks span lines); cheap unless a header is present.
        text = ctx.text
        if "PRIVATE" not in text and "PuTTY-User-Key-File" not in text:
            return
        ends = list(_PEM_END_RE.finditer(text)) if "END" in text else []
        end_starts = [e.start() for e in ends]
        pem: list[tuple[int, int]] = []  # increasing, non-overlapping
        for m in _PEM_BEGIN_RE.finditer(text):
            if pem and m.start() < pem[-1][1]:
                continue
            start = _dashes_before(text, m.start())
            i = bisect.bisect_left(end_starts, m.end())
            if i < len(end_starts) and end_starts[i] - m.end() <= _PEM_MAX:
                stop = ends[i].end()
            else:
                body = _PEM_BODY_RE.match(text, m.end())
                stop = body.end() if body else m.end()
            pem.append((start, stop))
        putty: list[tuple[int, int]] = []  # increasing, non-overlapping
        for m in _PUTTY_RE.finditer(text):
            if (putty and m.start() < putty[-1][1]) or _covered(pem, m.start()):
                continue
            body = _PEM_BODY_RE.match(text, m.end())
            putty.append((m.start(), body.end() if body else m.end()))
        tails: list[tuple[int, int]] = []
        for em in ends:
            if _covered(pem, em.start()) or _covered(putty, em.start()):
                continue
            tails.append((self._tail_start(text, em.start()), em.end()))
        for s, e in pem + putty + tails:
            if _BASE64_RUN_RE.search(text, s, e):  # not ``BEGIN…KEY-----\nanything``
                yield s, e, "private-key"

    @staticmethod
    def _tail_start(text: str, end_pos: int) -> int:
        """Start of the base64 lines just before an END line that has no BEGIN."""
        start = _dashes_before(text, end_pos)
        floor = max(0, end_pos - _PEM_MAX)
        # walk back one whole line at a time while the line is base64
        while start > floor and text[start - 1] == "\n":
            line_end = start - 1
            line_start = text.rfind("\n", floor, line_end) + 1 or floor
            if not _BASE64_LINE_RE.fullmatch(text[line_start:line_end].rstrip("\r")):
                break
            start = line_start
        return start


# --- name = value assignments ---------------------------------------------------------

# (``tokens``/``keys``/``author``... are not anchors: a credential word later in the
# same name, as in ``keys_secret``, is still found through its own anchor.)
_KW_ANCHORS: Final = (
    r"pass|pw|secret|token(?!s)|key(?!s|word|error|board|frame|stroke)|auth(?!or)"
    r"|credential|cookie|contrase"
)
_ASSIGN_RE: Final = re.compile(
    rf"(?P<name>(?:{_KW_ANCHORS})[a-z0-9_.\-\u00f1]{{0,80}})"
    r"(?P<close>\\*[\"'`]\]?|\])?"
    # a declared type between name and value: Go ``var token string = "…"``, Kotlin
    # ``val token: String = "…"``, Python ``token: str = "…"``
    r"(?P<type>[ \t]*:?[ \t]+(?:string|str|\[\]byte)(?=[ \t]*=))?"
    # make's ``::=`` / ``:::=`` / ``?=`` / ``+=``, PHP's ``.=`` / ``??=``, and a comma
    # between two quoted strings (``System.setProperty("X_TOKEN", "…")``: judged below)
    # and a dash before a quoted value (``sendbird token - '…'``, a note's label: judged
    # below)
    r"(?P<op>[ \t]*(?::{1,3}=|=>|\.=|\?\?=|\?=|\+=|=(?!=)|:(?![:=])|,|-(?=[ \t]*[\"'`]))[ \t]*)"
    # (long values too: an Azure AD refresh token is 1-2 KB)
    r"(?:(?P<q>\\*[\"'`])(?P<qv>(?:(?!(?P=q))[^\r\n]){0,4096})(?P=q)"
    r"|(?P<uv>[^\s\"'`]{1,4096}))"
)
#: What every match of ``_ASSIGN_RE`` starts with (``pass``, ``key``, ``token``…).
_ASSIGN_STARTS: Final = literal_starts(_ASSIGN_RE.pattern) or ()
assert _ASSIGN_STARTS, "_ASSIGN_RE must start with its anchor words"
_NAME_CHARS: Final = frozenset(_ALNUM + "_.-\u00f1\u00d1")
_QUOTES: Final = "\"'`"
_ENV_LINE_PREFIX_RE: Final = re.compile(
    # a gutter first: Read's "    12→", ``cat -n``'s "    12\t", grep's "path:12:"
    r"(?:[ \t]*\d{1,9}(?:\u2192|\t|:|\|)|[\w./\\-]{1,200}:(?:\d{1,9}[:\-])?)?"
    r"[ \t]*(?:#[ \t]*)?(?:(?:export|ENV|ARG|set|setx|declare(?:[ \t]+-x)?)[ \t]+|-[ \t]+)?"
)
_ANNOTATION_TAIL_RE: Final = re.compile(r"[ \t]*=")


_KEY_NAME_RE: Final = re.compile(r"(?:^|[a-z0-9_.-])(?:key|KEY|Key)$")
# ``primaryKey``, ``sort_key``, ``bucket_key``: keys that name data, not secrets
_DATA_KEY_PARTS: Final = frozenset(
    [
        "foreign",
        "primary",
        "sort",
        "partition",
        "bucket",
        "cache",
        "object",
        "row",
        "hash",
        "lookup",
        "map",
        "dict",
        "index",
        "unique",
        "composite",
        "idempotency",
        "routing",
        "registry",
        "translation",
        "i18n",
        "public",
        "react",
        "item",
        "group",
        "order",
        "config",
        "setting",
        "settings",
        "storage",
        "redis",
        "s3",
        "cursor",
        "dedup",
    ]
)


def _weak_key_name(name: str) -> bool:
    """A name ending in "key" that may hold a secret (``STRIPE_KEY``)."""
    if not _KEY_NAME_RE.search(name):
        return False
    parts = {p.lower() for p in _SPLIT_RE.findall(name)}
    # a bare ``key:`` is a cache key, a dict key, a sort key... as often as a secret
    return len(parts) > 1 and parts.isdisjoint(_DATA_KEY_PARTS)


_RANDOM_RE: Final = re.compile(r"[A-Za-z0-9+/=_\-.~]{16,}")


def _random_token(value: str) -> bool:
    """16+ token characters mixing letters and digits with some entropy, or random
    mixed-case letters (``wjXKCFzOWEPRqhTmmbWtVQ``: no digit drawn, as happens)."""
    v = value.strip("\"'")
    if _RANDOM_RE.fullmatch(v) is None:
        return False
    if not any(c.isdigit() for c in v):
        return _random_letters(v)
    return any(c.isalpha() for c in v) and entropy(v) >= 3.0


# the words of an identifier: ``get``, ``Api``, ``HTTP``, ``Server``
_CASE_WORD_RE: Final = re.compile(r"[A-Z]?[a-z]+|[A-Z]+(?![a-z])")


def _random_letters(value: str) -> bool:
    """16+ letters (``_``/``-`` allowed) in mixed case whose camel-case "words" average
    under 3 letters: drawn at random, not an identifier (``getApiKeyFromEnv`` averages
    3.2, ``HTTPServerConfig`` 5.3; ``wjXKCFzOWEPRqhTmmbWtVQ`` 1.8)."""
    letters = [c for c in value if c.isalpha()]
    if len(letters) < 16 or len(letters) + value.count("_") + value.count("-") != len(value):
        return False
    if not any(c.isupper() for c in letters) or not any(c.islower() for c in letters):
        return False
    words = _CASE_WORD_RE.findall(value)
    return len(letters) / len(words) < 3.0 and entropy(value) >= 3.5


def _random_value(value: str) -> bool:
    """16+ characters with no space, letters and digits, some entropy: a token that may
    hold ``%``, ``:`` or ``/`` (``WAgP6m4gYc1qe%Hnj…``, ``id:secret``)."""
    return (
        len(value) >= 16
        and not any(c.isspace() for c in value)
        and any(c.isdigit() for c in value)
        and any(c.isalpha() for c in value)
        and entropy(value) >= 3.0
    )


def _set_value(value: str, name: str) -> bool:
    """The second of two quoted strings after a name (``setProperty("X_TOKEN", "…")``):
    drawn at random, or, under a name that is a credential by itself (not a bare
    ``*_KEY``), any literal of 10+ characters with letters and digits, or 16+ digits
    (``"H1EC2BUPZ22S"``); a default such as ``get("API_TOKEN", "default")`` or
    ``"changeme"`` is neither."""
    if _random_value(value) or _random_letters(value):
        return True
    if not is_credential_key(name) or _skippable(value) or any(c.isspace() for c in value):
        return False
    if value.isdigit():
        return len(value) >= 16
    return (
        len(value) >= 10
        and any(c.isdigit() for c in value)
        and any(c.isalpha() for c in value)
        and not _code_path(value)
        and "/" not in value
    )


def _same_word(value: str, name: str) -> bool:
    def norm(x: str) -> str:
        return "".join(c for c in x.lower() if c.isalnum())

    return norm(value) == norm(name)


def _at_line_start(text: str, pos: int) -> bool:
    """Only a line-number gutter, whitespace, ``export``, ``ENV``, ``- ``, ``#`` before
    ``pos`` on its line."""
    lo = max(0, pos - 256)
    nl = text.rfind("\n", lo, pos)
    if nl < 0 and lo > 0:
        return False
    return _ENV_LINE_PREFIX_RE.fullmatch(text, nl + 1, pos) is not None


class _AssignmentRule(_Rule):
    """``name = "value"``, ``"name": "value"``, ``NAME=value`` (.env), ``name: value``
    (YAML), ``name = value`` (INI), ``?name=value&`` (query strings), ``Name=value;``
    (connection strings) where ``name`` is credential-named: the value alone is
    replaced.  Unquoted values that look like code (``input()``, ``self.token``,
    ``str``, ``4096``) are left alone so that source code read by a tool is not
    mangled; quoted names must have their closing quote (``"password: " + x`` is a
    string, not an assignment)."""

    kinds = (CREDENTIAL,)

    def prefilter(self) -> list[tuple[str, int]] | None:
        return [(_ASSIGN_RE.pattern, re.IGNORECASE)]  # run on the lower-cased text

    def find(self, ctx: _Ctx, windows: Windows | None) -> Iterator[Span]:
        for lo, hi in windows or [(0, len(ctx.text))]:
            yield from self._find(ctx, lo, hi)

    def _find(self, ctx: _Ctx, lo: int, hi: int) -> Iterator[Span]:
        # ``_ASSIGN_RE.search`` from ``pos`` on; on a long text tried only where a match
        # can start (an anchor word: Python's regex tries every position, but a
        # ``str.find`` per anchor costs more than that on a short text)
        text, low = ctx.text, ctx.lower
        pos = lo
        at: list[int] | None = None
        if hi - lo >= _FIND_IN_ONE_PASS:
            where = ctx.where if ctx.words is not None else None
            at = start_positions(low, _ASSIGN_STARTS, lo, hi, where=where)
        i = 0
        while True:
            if at is None:
                m = _ASSIGN_RE.search(low, pos, hi)
            else:
                m = None
                while m is None and i < len(at):
                    if at[i] >= pos:
                        m = _ASSIGN_RE.match(low, at[i], hi)
                    i += 1
            if m is None:
                return
            span = self._judge(text, m)
            if span is None:
                pos = m.end("name")
                continue
            yield span[0], span[1], CREDENTIAL
            pos = max(span[1], m.end("name"))

    @staticmethod
    def _judge(text: str, m: re.Match[str]) -> tuple[int, int] | None:
        ns = m.start("name")
        floor = max(0, ns - 80)
        while ns > floor and text[ns - 1] in _NAME_CHARS:
            ns -= 1
        if text[max(0, ns - len(MARKER_PREFIX)) : ns] == MARKER_PREFIX:
            return None
        name = text[ns : m.end("name")].lstrip("-.")
        # ``STRIPE_KEY``, ``curlAuthHeaderKey``: a bare "key" names a secret only when
        # its value looks drawn at random (a sort key or a dict key does not)
        weak = not is_credential_key(name)
        if weak and not _weak_key_name(name):
            return None
        span = _AssignmentRule._value_span(text, m, ns, name)
        if span is None or (weak and not _random_token(text[span[0] : span[1]])):
            return None
        return span

    @staticmethod
    def _value_span(text: str, m: re.Match[str], ns: int, name: str) -> tuple[int, int] | None:
        prev = _prev_char(text, ns)
        close = m.group("close") or ""
        name_quoted = prev in _QUOTES
        close_quote = close.rstrip("]")[-1:]
        op = m.group("op")
        if op.strip() == "-":
            # ``token - '…'``: a label in prose or notes, so only a random-looking value
            if m.group("q") is None or not m.group("op").startswith((" ", "\t")):
                return None
            s, e = m.span("qv")
            value = text[s:e]
            return (s, e) if _random_value(value) or _random_letters(value) else None
        if op.strip() == ",":
            # ``("X_TOKEN", "…")``: two quoted strings, the second drawn at random (an
            # argument list such as ``get("API_TOKEN", "default")`` is not a secret)
            if not name_quoted or close_quote != prev or m.group("q") is None:
                return None
            s, e = m.span("qv")
            return (s, e) if _set_value(text[s:e], name) else None
        if m.group("q") is not None:
            # quoted value: the name must be either unquoted or properly quoted
            if close_quote != (prev if name_quoted else ""):
                return None
            s, e = m.span("qv")
            value = text[s:e]
            if m.group("q").endswith("`") and " " in value:
                return None  # ``KEY=`etcdctl get /x` `` runs a command
            if (
                _skippable(value)
                or _ENV_NAME_RE.fullmatch(value)  # api_key = "ANTHROPIC_API_KEY"
                or _code_path(value)  # "Cookie": "http.cookies"
                or _same_word(value, name)  # "Password": "password" (a label)
            ):
                return None
            return s, e
        s, e = m.span("uv")
        upper = name.upper() == name and any(c.isalpha() for c in name)
        if upper and op == "=" and _at_line_start(text, ns):
            # .env line: the value is the rest of the line
            nl = text.find("\n", s)
            e = len(text) if nl < 0 else nl
            while e > s and text[e - 1] in " \t\r":
                e -= 1
            value = text[s:e]
            if _skippable(value) or re.match(r"[A-Za-z_][\w.]*\s*[(\[]", value):
                return None
            return s, e
        if prev in "?&":
            cut = min(
                (i for i in (text.find("&", s, e), text.find("#", s, e)) if i >= 0), default=e
            )
            e = cut
        cut = text.find(";", s, e)
        if cut >= 0:
            e = cut
        while e > s and text[e - 1] in ",;":
            e -= 1
        value = text[s:e]
        if not value or _skippable(value) or _same_word(value, name):
            return None  # ``?access_token=ACCESS_TOKEN``: the name as its own stand-in
        if (
            prev not in "?&;"
            and _looks_like_code(value, upper_name=upper)
            # a number of 16+ digits under a credential name is a numeric secret
            # (Discord's client secrets), not a count
            and not (len(value) >= 16 and value.isdigit() and is_credential_key(name))
        ):
            return None
        if op == ":" and not (name_quoted and close_quote == prev):
            return None  # ``io.jsonwebtoken:jjwt-jackson`` (YAML puts a space after ``:``)
        if op.strip() == ":" and _ANNOTATION_TAIL_RE.match(text, m.end("uv")):
            return None  # ``token: Token = ...`` is a type annotation
        return s, e


_HTTP_CLIENT_RE: Final = re.compile(r"\b(?:curl|wget|http|https|xh|ab|hey|git)\b")
#: the next option of a command line (``--verbose``, ``--dry-run=1``), not a flag's value
_NEXT_FLAG_RE: Final = re.compile(r"(?:--[A-Za-z][\w-]*(?:=.*)?|-[A-Za-z])$")


class _CliFlagRule(_Rule):
    """``--password hunter2`` / ``--api-key 'abc123'`` (space-separated CLI flags),
    ``curl -u user:password`` and ``.netrc`` ``password <value>`` lines."""

    kinds = (CREDENTIAL,)
    _FLAG_RE: Final = re.compile(
        r"--(?P<name>[a-z][a-z0-9_-]{0,40})[ \t]+(?P<q>[\"']?)(?P<v>[^\s\"']{1,1024})(?P=q)"
    )
    _NETRC_RE: Final = re.compile(
        r"password[ \t]+(?P<q>[\"']?)(?P<v>[^\s\"'=:][^\s\"']{0,1023})(?P=q)"
    )
    _USER_RE: Final = re.compile(
        r"-(?:u|-user|-proxy-user)[ \t]+(?P<q>[\"']?)[^\s:\"']{1,256}:"
        r"(?P<v>[^\s\"']{1,1024})(?P=q)"
    )
    _NETRC_PREFIX_RE: Final = re.compile(r"(?:[ \t]*|.*\blogin[ \t]+\S+[ \t]+)")

    def prefilter(self) -> list[tuple[str, int]] | None:
        return [(p.pattern, re.IGNORECASE) for p in (self._FLAG_RE, self._USER_RE, self._NETRC_RE)]

    def find(self, ctx: _Ctx, windows: Windows | None) -> Iterator[Span]:
        for lo, hi in windows or [(0, len(ctx.text))]:
            yield from self._find(ctx, lo, hi)

    def _find(self, ctx: _Ctx, lo: int, hi: int) -> Iterator[Span]:
        text, low = ctx.text, ctx.lower
        if low.find("--", lo, hi) >= 0:
            for m in self._FLAG_RE.finditer(low, lo, hi):
                if _prev_char(text, m.start()) not in " \t\n\r\"'":
                    continue
                if not is_credential_key(text[m.start("name") : m.end("name")]):
                    continue
                if span := self._value(text, m):
                    yield span
        if low.find("-u", lo, hi) >= 0:  # also finds --user, --proxy-user
            for m in self._USER_RE.finditer(low, lo, hi):
                # ``-u`` is a user for curl/wget/http, UTC for ``date -u +%H:%M``
                line = low[low.rfind("\n", 0, m.start()) + 1 : m.start()]
                if m.group(0)[1] != "-" and not _HTTP_CLIENT_RE.search(line):
                    continue
                user = low[m.start() : m.start("v")].split()[-1].lstrip("\"'")
                if user.startswith("<"):
                    continue  # ``-u <user:password>``: a usage line
                if _prev_char(text, m.start()) in " \t\n\r\"'":
                    s, e = m.span("v")
                    if not _skippable(text[s:e]):
                        yield s, e, CREDENTIAL
        if low.find("password", lo, hi) >= 0:
            for m in self._NETRC_RE.finditer(low, lo, hi):
                floor = max(0, m.start() - 512)
                line_start = text.rfind("\n", floor, m.start()) + 1 or floor
                if not self._NETRC_PREFIX_RE.fullmatch(text, line_start, m.start()):
                    continue
                if span := self._value(text, m):
                    yield span

    @staticmethod
    def _value(text: str, m: re.Match[str]) -> Span | None:
        s, e = m.span("v")
        value = text[s:e]
        if _skippable(value):
            return None
        if not m.group("q") and _NEXT_FLAG_RE.match(value):
            return None  # ``--token --verbose``: the flag's value is missing, not a flag
        if not m.group("q") and _looks_like_code(value.rstrip(".,;:!?"), upper_name=False):
            return None  # ``password combination.`` is prose
        return s, e, CREDENTIAL


# --------------------------------------------------------------------------------------
# The rule set
# --------------------------------------------------------------------------------------


def _denylist(plugin: Any) -> list[re.Pattern[str]]:
    return list(plugin.denylist)


#: detect-secrets plugins whose ``denylist`` regexes run (directly, or line-gated).
DETECT_SECRETS_PLUGINS: Final[tuple[str, ...]] = (
    "AWSKeyDetector",
    "ArtifactoryDetector",
    "AzureStorageKeyDetector",
    "BasicAuthDetector",
    "CloudantDetector",
    "DiscordBotTokenDetector",
    "GitHubTokenDetector",
    "GitLabTokenDetector",
    "IbmCloudIamDetector",
    "IbmCosHmacDetector",
    "JwtTokenDetector",
    "MailchimpDetector",
    "OpenAIDetector",
    "PypiTokenDetector",
    "SendGridDetector",
    "SlackDetector",
    "SoftlayerDetector",
    "SquareOAuthDetector",
    "StripeDetector",
    "TelegramBotTokenDetector",
    "TwilioKeyDetector",
)
#: Plugins (or parts) not run, and why.
DETECT_SECRETS_SKIPPED: Final[Mapping[str, str]] = {
    "Base64HighEntropyString": "entropy: would wipe signatures, base64 data, ids",
    "HexHighEntropyString": "entropy: would wipe git SHAs, uuids, hashes",
    "IPPublicDetector": "an IP address is not a secret",
    "KeywordDetector": "line-oriented regexes; its DENYLIST vocabulary is used instead",
    "NpmDetector": "`//.+/:_authToken` backtracks quadratically on long lines; own rule",
    "PrivateKeyDetector": "finds the header line only; own rule redacts the whole block",
    "ArtifactoryDetector[1]": "`AP[0-9A-F]...` matches identifiers like APDatabaseManager",
    "JwtTokenDetector.denylist": "its lazy tail drops the signature; own regex plus its "
    "is_formally_valid check",
}


def _plugin_rules() -> list[_Rule]:
    aws = _denylist(AWSKeyDetector)
    cloudant = _denylist(CloudantDetector)
    softlayer = _denylist(SoftlayerDetector)
    slack = _denylist(SlackDetector)
    src = "detect-secrets"
    assignment = r"[\"'\]]{0,3} *(?:=|:|=>| +|::) *[\"']?"
    return [
        _RegexRule("aws-access-key", aws[0], validate=_bounded, source=src),
        _RegexRule(
            "aws-secret-key",
            aws[1],
            group=1,
            line_gate=r"aws.{0,20}?(?:key|pwd|pw|pass|token).{0,20}?[\"'][0-9a-z/+]{40}[\"']",
            source=src,
        ),
        _RegexRule(
            "artifactory-token",
            _denylist(ArtifactoryDetector)[0],
            hints=("AKC",),
            trim=' \t\r\n\f\v=:"',
            source=src,
        ),
        _RegexRule(
            "azure-storage-key",
            _denylist(AzureStorageKeyDetector),
            hints=("AccountKey=",),
            skip_prefix="AccountKey=",
            source=src,
        ),
        _RegexRule(
            "url-password",
            _denylist(BasicAuthDetector),
            group=1,
            hints=("://",),
            validate=lambda t, m: not _skippable(m.group(1)),
            source=src,
        ),
        _RegexRule(
            "cloudant-credential",
            cloudant[:2],
            group=1,
            line_gate=r"cl(?:ou(?:dant)?)?[-_]?(?:api)?(?:key|pwd|pw|password|pass|token)",
            source=src,
        ),
        _RegexRule("cloudant-credential", cloudant[2:], group=1, lower_hint="cloudant", source=src),
        _RegexRule(
            "discord-bot-token",
            _denylist(DiscordBotTokenDetector),
            line_gate=r"\.[a-z0-9_-]{6}\.[a-z0-9_-]{27}",
            source=src,
        ),
        _RegexRule("github-token", _denylist(GitHubTokenDetector), hints=("gh",), source=src),
        _RegexRule(
            "gitlab-token",
            _denylist(GitLabTokenDetector),
            line_gate=r"gl(?:pat|dt|ft|soat|rt|cbt|imt|ptt|agent|oas)-|gr1348941",
            source=src,
        ),
        _RegexRule(
            "ibm-cloud-iam-key",
            _denylist(IbmCloudIamDetector),
            group=1,
            line_gate=rf"(?:key|pwd|pass|token){assignment}[a-z0-9_\-]{{44}}",
            source=src,
        ),
        _RegexRule(
            "ibm-cos-hmac-key",
            _denylist(IbmCosHmacDetector),
            group=1,
            line_gate=rf"secret[-_]?(?:access)?[-_]?key{assignment}[a-f0-9]{{48}}",
            source=src,
        ),
        _RegexRule(
            "mailchimp-key", _denylist(MailchimpDetector), line_gate=r"-us[0-9]", source=src
        ),
        _RegexRule(
            "openai-api-key", _denylist(OpenAIDetector), window=("T3BlbkFJ", 512, 64), source=src
        ),
        _RegexRule("pypi-token", _denylist(PypiTokenDetector), hints=("pypi-",), source=src),
        _RegexRule("sendgrid-key", _denylist(SendGridDetector), hints=("SG.",), source=src),
        _RegexRule("slack-webhook", slack[1], lower_hint="hooks.slack.com", source=src),
        _RegexRule(
            "softlayer-credential",
            softlayer[0],
            group=1,
            line_gate=r"(?:softlayer|sl)[-_]?(?:api)?(?:key|pwd|password|pass|token)",
            source=src,
        ),
        _RegexRule(
            "softlayer-credential", softlayer[1], group=1, lower_hint="softlayer", source=src
        ),
        _RegexRule(
            "square-oauth-secret", _denylist(SquareOAuthDetector), hints=("sq0csp-",), source=src
        ),
        _RegexRule("stripe-key", _denylist(StripeDetector), hints=("k_live_",), source=src),
        _RegexRule(
            "telegram-bot-token",
            _denylist(TelegramBotTokenDetector),
            line_gate=r":[0-9a-z_-]{35}",
            validate=_telegram_ok,
            source=src,
        ),
        _RegexRule("twilio-key", _denylist(TwilioKeyDetector), source=src),
    ]


#: Provider tokens with a prefix of their own, from the providers' documented formats:
#: (kind, regex, literals one of which must occur). Found with no keyword near.
_PROVIDER_SHAPES: Final[tuple[tuple[str, str, tuple[str, ...]], ...]] = (
    (
        "flyio-token",
        r"\bfo1_[\w-]{43}\b|\bfm[12][ar]?_[A-Za-z0-9+/]{100,}={0,3}",
        ("fo1_", "fm1", "fm2_"),
    ),
    ("typeform-token", r"\btfp_[A-Za-z0-9_\-.=]{40,64}", ("tfp_",)),
    ("spectralops-token", r"\bspu-[a-f0-9]{32}\b", ("spu-",)),
    ("cloudflare-token", r"\bcf[ku]_[A-Za-z0-9]{40,60}\b", ("cfk_", "cfu_")),
    ("adafruit-io-key", r"\baio_[A-Za-z0-9]{28}\b", ("aio_",)),
    ("figma-token", r"\bfig[dopr]_[A-Za-z0-9_\-]{38,48}", ("fig",)),
    ("sentry-token", r"\bsntryu_[a-f0-9]{64}\b|\bsntrys_eyJ[A-Za-z0-9+/=_]{40,}", ("sntry",)),
    ("sendgrid-key", r"\bSG\.[A-Za-z0-9_\-]{16,32}\.[A-Za-z0-9_\-]{30,60}\b", ("SG.",)),
    (
        "new-relic-key",
        r"\bNR(?:AK|II|JS|BR|RA|AA)-[A-Za-z0-9\-]{19,40}\b",
        ("NRAK-", "NRII-", "NRJS-", "NRBR-", "NRRA-", "NRAA-"),
    ),
    ("flutterwave-key", r"\bFLW(?:SECK|PUBK)(?:_TEST)?-[A-Za-z0-9]{32}-X\b", ("FLW",)),
    ("netlify-token", r"\bnf[pcu]_[A-Za-z0-9]{36,40}\b", ("nfp_", "nfc_", "nfu_")),
    ("contentful-token", r"\bCFPAT-[A-Za-z0-9_\-]{43}\b", ("CFPAT-",)),
    ("apify-token", r"\bapify_api_[A-Za-z0-9\-]{36}\b", ("apify_api_",)),
    ("teamwork-token", r"\btkn\.v1_[A-Za-z0-9+/=_\-]{40,}", ("tkn.v1_",)),
    ("ubidots-token", r"\bBBFF-[A-Za-z0-9]{30}\b", ("BBFF-",)),
    (
        "launchdarkly-key",
        r"\b(?:api|sdk|mob)-[a-z0-9]{8}-[a-z0-9]{4}-[a-z0-9]{4}-[a-z0-9]{4}-[a-z0-9]{12}\b",
        ("api-", "sdk-", "mob-"),
    ),
    # Azure AD / Entra refresh tokens: "0.A" or "1.A", the tenant and client, then
    # ".AgAB" (the token's version) and a long base64url body
    ("azure-refresh-token", r"\b[01]\.A[\w\-]{30,}\.(?:1\.)?AgAB[\w\-]{100,}", (".AgAB",)),
    ("zoho-token", r"\b1000\.[a-f0-9]{32}\.[a-f0-9]{32}\b", ("1000.",)),
    ("dropbox-token", r"\bsl\.(?:u\.)?[A-Za-z0-9_\-]{120,}", ("sl.",)),
    ("notion-token", r"\bsecret_[A-Za-z0-9]{43}\b", ("secret_",)),
    ("nightfall-key", r"\bNF-[A-Za-z0-9]{32}\b", ("NF-",)),
    ("cloudflare-ca-key", r"\bv1\.0-[a-f0-9]{24}-[a-f0-9]{146}\b", ("v1.0-",)),
    ("new-relic-key", r"\b[A-Za-z0-9]{42}-NRMA\b", ("-NRMA",)),
    ("flexport-token", r"\bshltm_[A-Za-z0-9_\-]{40}\b", ("shltm_",)),
    ("trufflehog-key", r"\bthog-(?:key-[a-f0-9]{16}|secret-[a-f0-9]{32})\b", ("thog-",)),
    ("photoroom-key", r"\b(?:sandbox_)?sk_pr_[a-z0-9]+_[a-f0-9]{40}\b", ("sk_pr_",)),
    # SonarQube user / project / global analysis tokens, SonarCloud's newer ``sqco_``
    (
        "sonar-token",
        r"\bsq(?:[upa]_[A-Za-z0-9]{40}|co_[A-Za-z0-9]{59})\b",
        ("squ_", "sqp_", "sqa_", "sqco_"),
    ),
    (
        "webhook-url",  # the URL is the credential: anyone holding it can post
        r"https?://(?:hooks\.slack\.com/(?:services|workflows|triggers)/[A-Za-z0-9_\-]+/"
        r"[A-Za-z0-9_/\-]{8,}"
        r"|[A-Za-z0-9\-]+\.webhook\.office\.com/webhookb2/[A-Za-z0-9@\-/]{40,}"
        r"|hooks\.zapier\.com/hooks/catch/[A-Za-z0-9]+(?:/[A-Za-z0-9]+)?"
        r"|(?:ptb\.|canary\.)?discord(?:app)?\.com/api/webhooks/\d+/[A-Za-z0-9_\-]{40,})",
        ("hooks.slack.com", ".webhook.office.com", "hooks.zapier.com", "/api/webhooks/"),
    ),
)


def _own_rules() -> list[_Rule]:
    word_start = _not_after(_ALNUM)
    return [
        _PrivateKeyRule(),
        _RegexRule(
            _anthropic_kind,
            r"sk-ant-(?:(?P<t>api|admin|oat|ort|sid)\d\d-)?[A-Za-z0-9_\-]{20,}",
        ),
        _RegexRule(
            "openai-api-key",
            r"sk-(?!ant-)(?:proj-|svcacct-|admin-)?[A-Za-z0-9_\-]{20,}",
            validate=_openai_generic_ok,
        ),
        _RegexRule("github-token", r"gh[pousr]_[A-Za-z0-9_]{20,}|github_pat_[A-Za-z0-9_]{20,}"),
        _RegexRule(
            "slack-token",
            r"xox[abposer]-\d{6,}-[A-Za-z0-9\-]{10,}|xoxe\.xox[bp]-\d-[A-Za-z0-9]{40,}"
            r"|xoxe-\d-[A-Za-z0-9]{40,}|xapp-\d-[A-Za-z0-9\-]{10,}",
        ),
        _RegexRule(
            "stripe-key",
            r"[rs]k_(?:live|test)_[0-9A-Za-z]{16,}|whsec_[A-Za-z0-9]{20,}",
            hints=("k_live_", "k_test_", "whsec_"),
        ),
        _RegexRule(
            "google-api-key",
            r"(?<![A-Za-z0-9_\-])AIza[0-9A-Za-z_\-]{35}(?![A-Za-z0-9_\-])",
            hints=("AIza",),
        ),
        # provider tokens with a prefix of their own: found with no keyword near
        _RegexRule("digitalocean-token", r"\bdo[opr]_v1_[a-f0-9]{64}\b", hints=("_v1_",)),
        _RegexRule("shopify-token", r"\bshp(?:at|ca|pa|ss)_[a-fA-F0-9]{32}\b", hints=("shp",)),
        _RegexRule("linear-api-key", r"\blin_(?:api|oauth)_[A-Za-z0-9]{40}\b", hints=("lin_",)),
        _RegexRule(
            "doppler-token",
            r"\bdp\.(?:pt|st|sa|ct|scim|audit)\.[A-Za-z0-9]{40,44}\b",
            hints=("dp.",),
        ),
        _RegexRule(
            "dynatrace-token", r"\bdt0[a-z][0-9]{2}\.[A-Z0-9]{24}\.[A-Z0-9]{64}\b", hints=("dt0",)
        ),
        _RegexRule("airtable-token", r"\bpat[A-Za-z0-9]{14}\.[a-f0-9]{64}\b", hints=("pat",)),
        _RegexRule(
            "terraform-token",
            r"\b[A-Za-z0-9]{14}\.atlasv1\.[A-Za-z0-9_=-]{60,70}",
            hints=(".atlasv1.",),
        ),
        _RegexRule("vault-token", r"\bhv[sbr]\.[A-Za-z0-9_-]{24,}", hints=("hv",)),
        _RegexRule(
            "twitter-bearer-token",  # 22 ``A``s, then URL-encoded random text
            r"(?<![A-Za-z0-9%+/=])A{20,24}[A-Za-z0-9%]{60,120}(?![A-Za-z0-9%+/=])",
            hints=("A" * 20,),
            validate=lambda t, m: _random_token(m.group(0).lstrip("A").replace("%", "")),
        ),
        *(_RegexRule(kind, rx, hints=hints) for kind, rx, hints in _PROVIDER_SHAPES),
        _RegexRule(
            # a signed URL's signature (Azure SAS ``sig=``, Power Automate triggers, S3
            # ``X-Amz-Signature=``): whoever holds the URL holds the access it grants
            CREDENTIAL,
            r"[?&;](?:sig|signature|x-amz-signature)=(?P<v>[a-z0-9%+/=_\-]{20,})",
            group="v",
            lower=True,
            lower_hint="sig",
            validate=lambda t, m: _random_value(m.group("v").replace("%", "")),
        ),
        _RegexRule(
            "azure-ad-client-secret",
            r"(?<![A-Za-z0-9_~.-])[A-Za-z0-9_~.]{3}\dQ~[A-Za-z0-9_~.-]{31,34}(?![A-Za-z0-9_~.-])",
            hints=("Q~",),
        ),
        _RegexRule("google-oauth-token", r"ya29\.[0-9A-Za-z_\-]{20,}"),
        _RegexRule(
            "asana-token",  # a personal access token: 1/<user id>[/<app id>]:<secret>
            r"[0-9]{1,64}(?:/[0-9]{16,128}){1,3}:[A-Za-z0-9]{32,128}",
            line_gate=r"/[0-9]{16}",
            validate=_bounded,
        ),
        _RegexRule("google-oauth-client-secret", r"GOCSPX-[0-9A-Za-z_\-]{20,}"),
        _RegexRule("huggingface-token", r"hf_[A-Za-z0-9]{30,}", validate=_hf_ok),
        _RegexRule("npm-token", r"npm_[A-Za-z0-9]{36}", validate=word_start),
        _RegexRule(
            "npm-token",
            r"_(?:authtoken|auth|password)[ \t]*=[ \t]*\"?(?P<v>[^\s\"]{1,1024})",
            group="v",
            lower=True,
            lower_hint="_auth",
            validate=lambda t, m: not _skippable(t[m.start("v") : m.end("v")]),
        ),
        _JwtRule(),
        _RegexRule(
            "url-password",
            r"://([^\s:/?#\[\]@\"'<>]{0,256}):([^\s/?#\[\]\"'<>]{1,256})@",
            group=2,
            validate=_url_password_ok,
        ),
        _RegexRule(
            "bearer-token",
            r"authorization[\"']?[ \t]*[:=][ \t]*[\"']?"
            r"(?:(?P<scheme>bearer|basic|token|bot|digest|negotiate|ntlm|apikey|sso-key)"
            r"[ \t]+)?(?P<tok>[^\s\"'<>\[\]{}(),;`]{1,2048})",
            group="tok",
            lower=True,
            lower_hint="authorization",
            validate=_authorization_ok,
        ),
        _RegexRule(
            "bearer-token",
            r"bearer[ \t]+([a-z0-9._~+/=\-]{6,2048})",
            group=1,
            lower=True,
            lower_hint="bearer",
            validate=_bearer_ok,
        ),
        _RegexRule(
            "cookie",
            r"cookie[\"']?[ \t]*:[ \t]*[\"']?"
            r"(?P<v>[!#$%&*+\-.^_|~0-9a-z]{1,256}=[^\r\n\"']{0,4096})",
            group="v",
            lower=True,
            lower_hint="cookie",
            validate=_not_after(_ALNUM + "_"),
        ),
        _AssignmentRule(),
        _CliFlagRule(),
        _RegexRule(
            CREDENTIAL,
            r"(?:key|name)[ \t]*=[ \t]*\"(?P<name>[^\"\r\n]{1,80})\"[ \t]+value[ \t]*=[ \t]*"
            # (up to 4 KB, as the assignment rule: an Azure AD refresh token is 1-2 KB)
            r"\"(?P<v>[^\"\r\n]{1,4096})\"",
            group="v",
            hints=("value",),
            validate=_xml_pair_ok,
        ),
        _RegexRule(
            CREDENTIAL,  # JSON ``{"name": "DB_PASSWORD", "value": "…"}`` (Kubernetes, ECS)
            r"\"(?i:name|key)\"[ \t]*:[ \t]*\"(?P<name>[^\"\r\n]{1,80})\"[ \t]*,[ \t]*"
            r"\"(?i:value)\"[ \t]*:[ \t]*\"(?P<v>[^\"\r\n]{1,4096})\"",
            group="v",
            hints=('"value"', '"Value"'),
            validate=_xml_pair_ok,
        ),
        _RegexRule(
            CREDENTIAL,  # YAML ``- name: DB_PASSWORD`` then ``value: …`` (a container's env)
            r"\bname:[ \t]*[\"']?(?P<name>[A-Za-z_][\w.\-]{0,80})[\"']?[ \t]*\r?\n"
            r"[ \t]*value:[ \t]*(?P<q>[\"']?)(?P<v>[^\s\"'#]{1,4096})(?P=q)[ \t]*(?:\r?\n|$)",
            group="v",
            hints=("value:",),
            validate=_xml_pair_ok,
            line_local=False,
        ),
        _RegexRule(
            CREDENTIAL,
            r"<(?P<name>[A-Za-z_][\w.\-]{0,80})>[ \t\r\n]*"
            r"(?P<v>[^<>\s](?:[^<>\r\n]{0,4094}[^<>\s])?)[ \t\r\n]*</(?P=name)>",
            group="v",
            hints=("</",),
            validate=_xml_pair_ok,
            line_local=False,
        ),
    ]


#: gitleaks keywords found in 1% or more of ordinary developer text (measured on the
#: strings of the recorded Claude Code sessions and 4 KB pieces of Python's standard
#: library): a rule with one of them is prefiltered by its regex, any other keyword rule
#: by its keywords. Only speed depends on this list, never a result.
_COMMON_KEYWORDS: Final = frozenset(
    [
        "s.",
        "ey",
        "key",
        "test_",
        "sk",
        "access",
        "api",
        "token",
        "auth",
        "ext_",
        "linear",
        "secret",
        "credential",
        "password",
    ]
)


class _GitleaksRule(_Rule):
    """One of gitleaks' rules (``capture.secrets_rules``): runs where a keyword occurs."""

    def __init__(self, rule: GitleaksRule) -> None:
        self.rule = rule
        self.kinds = (rule.id,)
        #: its keywords are in most texts: the prefilter asks for its regex instead
        self.common = not rule.keywords or not _COMMON_KEYWORDS.isdisjoint(rule.keywords)

    def prefilter(self) -> list[tuple[str, int]] | None:
        # its regex (a rule with uncommon keywords is gated by them: Redactor._plan)
        pattern, flags = self.rule.regex.pattern, 0
        if pattern.startswith("(?i)"):
            pattern, flags = pattern[4:], re.IGNORECASE
        return [(pattern, flags)]

    def may_run(self, keywords: frozenset[str]) -> bool:
        return not self.rule.keywords or not keywords.isdisjoint(self.rule.keywords)

    def find(self, ctx: _Ctx, windows: Windows | None) -> Iterator[Span]:
        text = ctx.text
        where = ctx.where if ctx.words is not None else None
        for lo, hi in windows or [(0, len(text))]:
            yield from self.rule.spans(text, ctx.lower, lo, hi, where)


def _build_rules(extra: Iterable[tuple[str, str | re.Pattern[str]]]) -> list[_Rule]:
    # Our rules first (PEM blocks before everything): ties in overlaps go to them.
    rules = _own_rules() + _plugin_rules()
    rules += [_GitleaksRule(r) for r in gitleaks_rules_compiled()]
    rules += [
        _RegexRule(kind, pattern, line_local=False, source="extra") for kind, pattern in extra
    ]
    return rules


# --------------------------------------------------------------------------------------
# The redactor
# --------------------------------------------------------------------------------------


def _merge(spans: list[Span]) -> list[Span]:
    """Union of overlapping spans; a group is named after its earliest, longest span
    (ties: the rule listed first)."""
    spans.sort(key=lambda s: (s[0], -s[1]))
    out: list[Span] = []
    for s, e, k in spans:
        if out and s < out[-1][1]:
            if e > out[-1][1]:
                out[-1] = (out[-1][0], e, out[-1][2])
        else:
            out.append((s, e, k))
    return out


def _apply(text: str, spans: list[Span]) -> tuple[str, Windows]:
    """``text`` with ``spans`` (sorted, disjoint) replaced by markers, and the windows
    of the result where a replacement changed the context: each line holding a marker,
    plus one character either side, merged."""
    parts: list[str] = []
    markers: list[tuple[int, int]] = []
    last = 0
    size = 0
    for s, e, k in spans:
        keep = text[last:s]
        mark = marker(k)
        parts += (keep, mark)
        size += len(keep)
        markers.append((size, size + len(mark)))
        size += len(mark)
        last = e
    parts.append(text[last:])
    out = "".join(parts)
    windows: Windows = []
    prev_end, line_lo, line_hi = 0, 0, -1
    for ms, me in markers:
        nl = out.rfind("\n", prev_end, ms)
        if nl >= 0 or prev_end == 0:
            line_lo = nl + 1  # else: same line as the previous marker
        if me > line_hi:
            nl = out.find("\n", me)
            line_hi = len(out) if nl < 0 else nl
        prev_end = me
        lo, hi = max(0, line_lo - 1), min(len(out), line_hi + 1)
        if windows and lo <= windows[-1][1]:
            windows[-1] = (windows[-1][0], max(hi, windows[-1][1]))
        else:
            windows.append((lo, hi))
    return out, windows


_MARKER_RE: Final = re.compile(r"\[REDACTED:[a-z0-9_.\-]{1,80}\]")


def _marker_spans(text: str) -> list[tuple[int, int]]:
    if MARKER_PREFIX not in text:
        return []
    return [m.span() for m in _MARKER_RE.finditer(text)]


def _cuts_marker(marks: list[tuple[int, int]], span: Span) -> bool:
    """Whether ``span`` overlaps a marker without covering all of it."""
    s, e = span[0], span[1]
    i = bisect.bisect_right(marks, (s, 1 << 62)) - 1
    near = marks[max(i, 0) : i + 3]
    return any(s < me and ms < e and not (s <= ms and me <= e) for ms, me in near)


#: Kinds of ours a loaded rule never lets go: PEM blocks, and values found by their
#: context (a credential name, a header, a URL's password) rather than by their shape.
_NO_LET_GO: Final = frozenset(
    {"private-key", CREDENTIAL, "bearer-token", "cookie", "url-password", "npm-token"}
)


class Redactor:
    """Compiled once; then :meth:`redact_text`, :meth:`redact`, :meth:`found`.

    ``extra``: more ``(kind, regex)`` rules (the whole match is the secret).
    """

    def __init__(
        self,
        extra: Iterable[tuple[str, str | re.Pattern[str]]] = (),
        *,
        prefilter: bool | None = None,
    ) -> None:
        self._rules = _build_rules(extra)
        # the same rule set as the rules: looking it up per value stats a file each time
        self._allow = global_allow()
        self._keywords = KeywordIndex(
            k for r in self._rules if isinstance(r, _GitleaksRule) for k in r.rule.keywords
        )
        # rules that always run (ours), and gitleaks' rules by keyword (list positions)
        self._unkeyed = [i for i, r in enumerate(self._rules) if r.may_run(frozenset())]
        self._keyed: dict[str, list[int]] = {}
        for i, r in enumerate(self._rules):
            if isinstance(r, _GitleaksRule):
                for k in r.rule.keywords:
                    self._keyed.setdefault(k, []).append(i)
        self._groups, self._owners = self._plan()
        self._let_go = lru_cache(maxsize=4096)(self._let_go_uncached)
        # JSON-like data repeats its short strings (names, paths, ids) a lot
        self._short = lru_cache(maxsize=8192)(self._redact_text)
        # Compiling the prefilter takes ~0.2 s: by default only once this redactor has
        # read enough text for it to pay off (``True``: now; ``False``: never).
        self._prefilter: Prefilter | None = None
        self._words: _WordFinder | None = None
        self._prefilter_after = {None: PREFILTER_AFTER, True: 0, False: -1}[prefilter]
        self.prefilter_error: str | None = None  # why there is none, if it failed
        self._read = 0
        self._lock = threading.Lock()
        if prefilter:
            self.use_prefilter()

    def _plan(self) -> tuple[list[list[tuple[str, int]] | None], list[tuple[int, ...]]]:
        """The prefilter's groups, and per group the rules it makes candidates. A gitleaks
        rule with a keyword common in ordinary text (``key``, ``s.``) is gated by its
        regex (which holds the keyword or a longer form of it: the rule itself still asks
        for a keyword, so this gives the same results); any other by its keywords, one
        group per keyword shared by the rules that have it (literals: the cheapest to
        scan for)."""
        groups: list[list[tuple[str, int]] | None] = []
        owners: list[tuple[int, ...]] = []
        by_keyword: dict[str, list[int]] = {}
        for i, r in enumerate(self._rules):
            if isinstance(r, _GitleaksRule) and not r.common:
                for k in r.rule.keywords:
                    by_keyword.setdefault(k, []).append(i)
                continue
            groups.append(r.prefilter())
            owners.append((i,))
        for k, idx in sorted(by_keyword.items()):
            groups.append([(re.escape(k), re.IGNORECASE)])
            owners.append(tuple(idx))
        return groups, owners

    def _finder_words(self) -> list[str]:
        """The words the rules that run most look for (three characters or more): the
        anchors of the assignment rule, the keywords and start literals of gitleaks'
        rules with common keywords."""
        words = set(_ASSIGN_STARTS)
        for r in self._rules:
            if isinstance(r, _GitleaksRule) and r.common:
                words.update(r.rule.keywords, r.rule.starts or ())
        return sorted(w for w in words if len(w) >= 3)

    def _candidates(self, pre: Prefilter, text: str) -> set[int] | None:
        """The rules (list positions) that may find something in ``text``; ``None``: the
        scan failed, run them all."""
        hits = pre.candidates(text)
        if not hits:
            return hits  # None, or an empty set: nothing can match
        owners = self._owners
        if len(hits) == 1:
            return set(owners[next(iter(hits))])
        out: set[int] = set()
        for g in hits:
            out.update(owners[g])
        return out

    def use_prefilter(self) -> Prefilter | None:
        """Build the prefilter now (bulk work: an import), unless ``prefilter=False``."""
        with self._lock:
            if self._prefilter is None and self._prefilter_after >= 0:
                try:
                    self._prefilter = Prefilter(self._groups, "redact", repeats=_REPEATS)
                    self._words = _WordFinder(self._finder_words())
                except Exception as exc:  # no Hyperscan for this machine: run every rule
                    self.prefilter_error = f"{type(exc).__name__}: {exc}"
                self._prefilter_after = -1  # built or not, once
        return self._prefilter

    @property
    def kinds(self) -> list[str]:
        """Every fixed kind a rule can report (the Anthropic rule reports several)."""
        out: list[str] = []
        for r in self._rules:
            out += [k for k in r.kinds if k not in out]
        return out

    @property
    def prefiltered(self) -> bool:
        """Whether the Hyperscan prefilter is in use (see ``capture.prefilter``)."""
        return self._prefilter is not None

    def _by_keywords(self, words: frozenset[str]) -> list[_Rule]:
        """Every rule but gitleaks' rules none of whose keywords is in ``words``."""
        picked = set(self._unkeyed)
        for w in words:
            picked.update(self._keyed.get(w, ()))
        return [self._rules[i] for i in sorted(picked)]

    def _let_go_uncached(self, value: str) -> bool:
        """Whether a value one of our shape rules found is let go by a rule of the
        third-party set made for that shape (its keyword in the value, its regex matching
        all of it): the public example keys and low-entropy stand-ins that set lists are no
        secrets for us either."""
        picked: set[int] = set()
        for w in self._keywords.present(value.lower()):
            picked.update(self._keyed.get(w, ()))
        for i in sorted(picked):
            rule = self._rules[i]
            if isinstance(rule, _GitleaksRule) and rule.rule.allows_value(value):
                return True
        return False

    def _spans(self, text: str, windows: Windows | None = None) -> list[Span]:
        rules: Iterable[_Rule] = self._rules
        if windows is None:  # the rescans of a few lines are cheap as they are
            pre = self._prefilter
            if pre is None and self._prefilter_after >= 0:
                self._read += len(text)
                if self._read >= self._prefilter_after:
                    pre = self.use_prefilter()
            may = self._candidates(pre, text) if pre is not None else None
            if may is not None and not may:
                return []  # most strings: no rule can match
            ctx = _Ctx(text, None, self._words)
            if may is not None:
                rules = [self._rules[i] for i in sorted(may)]
            else:  # no Hyperscan: gitleaks' rules still only run where a keyword is
                rules = self._by_keywords(self._keywords.present(ctx.lower))
        else:
            ctx = _Ctx(text, windows)
        spans: list[Span] = []
        if windows is not None:
            # a rescan reads a few lines: gitleaks' rules only where a keyword is in them
            # (their spans come from keyword hits inside the windows, so this is exact)
            low = ctx.lower
            words = frozenset().union(*(self._keywords.present(low[a:b]) for a, b in windows))
            rules = self._by_keywords(words)
        marks = _marker_spans(text)
        for rule in rules:
            ours = not isinstance(rule, _GitleaksRule)
            for span in rule.find(ctx, windows):
                # a stand-in (``ghp_xxxx…``, ``[PASSWORD]``, ``$2``) is left as it is;
                # not judged so: a PEM block (its own rule does) and Anthropic keys (this
                # project's own credentials: an ``sk-ant-`` shape is never ordinary text)
                kind = span[2]
                if (
                    kind != "private-key"
                    and not kind.startswith("anthropic")
                    and is_placeholder(text[span[0] : span[1]], self._allow)
                ):
                    continue
                if marks and _cuts_marker(marks, span):
                    continue  # a piece of an earlier ``[REDACTED:kind]`` is no secret
                if (
                    ours
                    and self._keyed
                    and kind not in _NO_LET_GO
                    and not kind.startswith("anthropic")
                    and self._let_go(text[span[0] : span[1]])
                ):
                    continue
                spans.append(span)
        return spans

    def redact_text(self, text: str) -> str:
        """``text`` with every secret replaced by ``[REDACTED:<kind>]``.  Idempotent;
        never raises (if scanning itself fails, the whole text is withheld)."""
        if not isinstance(text, str):
            return text
        if not text:
            return text
        try:
            if len(text) <= _CACHE_MAX_LEN:
                return self._short(text)
            return self._redact_text(text)
        except Exception:
            return UNSCANNABLE

    def _redact_text(self, text: str) -> str:
        # A replacement changes the context next to it, which may complete a match that
        # was not there before.  So rescan until nothing is found, which makes
        # redact_text(redact_text(x)) == redact_text(x).  Every rule but the PEM one
        # (always rerun whole) looks no further than the line it matches on, plus one
        # character, so a new match can only appear on a line that a replacement
        # touched: the rescans only read those lines.
        out = text
        windows: Windows | None = None
        found: dict[str, str] = {}  # secret -> kind: its other copies in the text go too
        for _ in range(_MAX_PASSES):
            spans = self._spans(out, windows)
            if not spans:
                break
            fresh = False
            for s, e, k in spans:
                value = out[s:e]
                if value not in found and _copyable(value):
                    found[value] = k
                    fresh = True
            if fresh:
                spans += _copies(out, found)
            new, windows = _apply(out, _merge(spans))
            if new == out:
                break
            out = new
        return out

    def found(self, text: str) -> list[str]:
        """The kinds of secret in ``text`` (first occurrence order, no repeats)."""
        try:
            spans = _merge(self._spans(text))  # one kind per secret, as redact_text
        except Exception:
            return ["unscannable"]
        out: list[str] = []
        for _, _, k in spans:
            if k not in out:
                out.append(k)
        return out

    def redact(self, obj: Any) -> Any:
        """A deep copy of JSON-like ``obj`` with every string redacted and the whole
        (non-empty string) value of every credential-named key replaced by
        ``"[REDACTED:credential]"``.  Dict keys are kept.  Iterative: any depth.

        Every copy goes: a secret found anywhere in ``obj`` (a tool input, a file read)
        is then replaced wherever else it occurs in ``obj`` (outputs, thinking, the
        final answer, subagent calls), with no keyword near it there."""
        found: dict[str, str] = {}
        out = self._redact(obj, found)
        return _replace_copies(out, found) if found else out

    def _redact(self, obj: Any, found: dict[str, str]) -> Any:
        # long strings repeat within one object too (a tool's output is also in its
        # structured result): each is scanned once (short ones have the LRU cache)
        # (keyed by length and ends, then compared: hashing a whole 64 KB string costs
        # nearly as much as scanning it)
        long: dict[tuple[int, str, str], tuple[str, str]] = {}
        short = self._short

        def seen(value: str) -> str:
            # redact_text(value), inlined: a trace has tens of thousands of strings
            if len(value) <= _CACHE_MAX_LEN:
                if not value:
                    return value
                try:
                    done = short(value)
                except Exception:
                    done = UNSCANNABLE
            else:
                key = (len(value), value[:64], value[-64:])
                was = long.get(key)
                if was is not None and was[0] == value:
                    done = was[1]
                else:
                    done = self.redact_text(value)
                    long[key] = (value, done)
            if done is not value and done != value:
                found.update(_removed(value, done))
            return done

        root: list[Any] = [None]
        # (container, key/index, value) still to copy; strings and other scalars are done
        # where they are met (most of a trace), containers wait on the stack
        stack: list[tuple[Any, Any, Any]] = [(root, 0, obj)]
        while stack:
            parent, slot, value = stack.pop()
            if isinstance(value, dict):
                new: dict[Any, Any] = {}
                parent[slot] = new
                pair_value = _pair_credential(value)
                for k, v in value.items():
                    if isinstance(v, str):
                        if v and (
                            (isinstance(k, str) and is_credential_key(k))
                            or (pair_value and k == "value")
                        ):
                            new[k] = marker(CREDENTIAL)
                            if _copyable(v):
                                found[v] = CREDENTIAL
                        else:
                            new[k] = seen(v)
                    elif v is None or isinstance(v, _SCALARS):
                        new[k] = v
                    else:
                        new[k] = None
                        stack.append((new, k, v))
            elif isinstance(value, _SEQUENCES):
                items: list[Any] = [None] * len(value)
                if isinstance(value, tuple):
                    # popped after all its items are done
                    stack.append((parent, slot, _TupleDone(items)))
                else:
                    parent[slot] = items
                for i, v in enumerate(value):
                    if isinstance(v, str):
                        items[i] = seen(v)
                    elif v is None or isinstance(v, _SCALARS):
                        items[i] = v
                    else:
                        stack.append((items, i, v))
            elif isinstance(value, str):
                parent[slot] = seen(value)
            elif isinstance(value, _TupleDone):
                parent[slot] = tuple(value.items)
            else:
                parent[slot] = value
        return root[0]


_SCALARS: Final = (bool, int, float)
_SEQUENCES: Final = (list, tuple)
_MIN_COPY: Final = 8  # shorter values are too likely to occur by chance elsewhere
_MAX_MARKERS: Final = 200


def _copies(text: str, found: dict[str, str]) -> list[Span]:
    """Every occurrence in ``text`` of a secret found in it (``found``: value -> kind)."""
    out: list[Span] = []
    marks: list[tuple[int, int]] | None = None
    for value, kind in found.items():
        at = text.find(value)
        while at >= 0:
            span = (at, at + len(value), kind)
            if marks is None:
                marks = _marker_spans(text)
            if not (marks and _cuts_marker(marks, span)):
                out.append(span)
            at = text.find(value, at + len(value))
    return out


def _copyable(value: str) -> bool:
    v = value.strip()
    return (
        len(v) >= _MIN_COPY
        and MARKER_PREFIX not in v
        and not _skippable(v)
        and not is_placeholder(v)
        and not v.isdigit()
    )


def _removed(original: str, redacted: str) -> dict[str, str]:
    """What the redactor took out of ``original`` (secret → kind): the markers of
    ``redacted`` stand where the removed values stood, between literal stretches."""
    marks = list(_MARKER_RE.finditer(redacted))
    if not marks or len(marks) > _MAX_MARKERS:
        return {}
    parts, last = [], 0
    for m in marks:
        parts.append(re.escape(redacted[last : m.start()]) + "(.+?)")
        last = m.end()
    parts.append(re.escape(redacted[last:]))
    try:
        got = re.fullmatch("".join(parts), original, re.DOTALL)
    except (re.error, RecursionError):
        return {}
    if got is None:
        return {}
    out: dict[str, str] = {}
    for m, value in zip(marks, got.groups(), strict=True):
        if _copyable(value):
            out[value] = m.group(0)[len(MARKER_PREFIX) : -1]
    return out


def _replace_copies(obj: Any, found: dict[str, str]) -> Any:
    """``obj`` (a fresh copy, changed in place) with every occurrence of a found secret
    replaced by its marker, in every string, at any depth."""
    pattern = re.compile("|".join(re.escape(v) for v in sorted(found, key=len, reverse=True)))

    def sub(value: str) -> str:
        return pattern.sub(lambda m: marker(found[m.group(0)]), value)

    def walk(value: Any) -> Any:
        if isinstance(value, str):
            return sub(value)
        if isinstance(value, tuple):  # rare: rebuilt (immutable)
            return tuple(walk(v) for v in value)
        if isinstance(value, dict | list):
            stack.append(value)
        return value

    stack: list[Any] = []
    out = walk(obj)
    while stack:
        node = stack.pop()
        keys: Iterable[Any] = list(node) if isinstance(node, dict) else range(len(node))
        for k in keys:
            node[k] = walk(node[k])
    return out


class _TupleDone:
    __slots__ = ("items",)

    def __init__(self, items: list[Any]) -> None:
        self.items = items


def _pair_credential(d: Mapping[Any, Any]) -> bool:
    """``{"name": "Authorization", "value": "..."}`` (HAR headers, env lists)."""
    if "value" not in d:
        return False
    for key in ("name", "key", "header"):
        n = d.get(key)
        if isinstance(n, str) and is_credential_key(n):
            return True
    return False


_default: Redactor | None = None
_default_lock = threading.Lock()


def default_redactor() -> Redactor:
    """The shared :class:`Redactor`, built on first use."""
    global _default
    if _default is None:
        with _default_lock:
            if _default is None:
                _default = Redactor()
    return _default


def redact_text(text: str) -> str:
    """:meth:`Redactor.redact_text` with the default redactor."""
    return default_redactor().redact_text(text)


def redact(obj: Any) -> Any:
    """:meth:`Redactor.redact` with the default redactor."""
    return default_redactor().redact(obj)
