"""claude_bc.capture.redact's Hyperscan prefilter: it only skips rules that cannot match, so a
redactor with it gives exactly what one without it gives."""

from __future__ import annotations

import json
import random
import string
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from claude_bc.capture import gitleaks_rules
from claude_bc.capture import redact as redact_mod
from claude_bc.capture.redact import Redactor
from claude_bc.capture.secrets_rules import gitleaks_rules_compiled
from tests.capture import test_redact as cases
from tests.conftest import FIXTURES

WITH = Redactor(prefilter=True)
WITHOUT = Redactor(prefilter=False)


def strings(obj: Any) -> Iterator[str]:
    if isinstance(obj, str):
        yield obj
    elif isinstance(obj, dict):
        for k, v in obj.items():
            yield from strings(k)
            yield from strings(v)
    elif isinstance(obj, list | tuple | set | frozenset):
        for v in obj:
            yield from strings(v)


def case_strings() -> list[str]:
    """Every string the redactor's own tests use: secrets of every kind in context,
    code that must stay untouched, pathological inputs."""
    out: set[str] = set()
    for name, value in vars(cases).items():
        if name.startswith("_"):
            continue
        out.update(strings(value))
        for mark in getattr(value, "pytestmark", []):
            if mark.name == "parametrize":
                out.update(strings(mark.args[1]))
    out.add("curl -H 'Authorization: Bearer " + cases.tok(40, cases.ALNUM, 7) + "' https://x")
    out.add("token Bearer " + cases.tok(40, cases.ALNUM, 8))
    # the pathological megabyte inputs: their first 20 k characters say as much here
    return sorted({text[:20_000] for text in out})


def fixture_strings() -> list[str]:
    out: set[str] = set()
    for path in sorted(FIXTURES.rglob("*.jsonl")):
        for line in path.read_text(errors="replace").splitlines():
            try:
                out.update(strings(json.loads(line)))
            except ValueError:
                out.add(line)
    return sorted(out)


def same(text: str) -> None:
    assert WITH.redact_text(text) == WITHOUT.redact_text(text), text[:200]
    assert WITH.found(text) == WITHOUT.found(text), text[:200]


def test_the_prefilter_is_built_and_covers_every_rule() -> None:
    pre = WITH._prefilter
    assert pre is not None and WITH.prefiltered and not WITHOUT.prefiltered
    # every rule has regexes Hyperscan compiles: none is run on every text
    assert pre.always == set()


@pytest.mark.slow
def test_every_test_case_string_redacts_the_same() -> None:
    texts = case_strings()
    assert len(texts) > 250
    kinds: set[str] = set()
    for text in texts:
        same(text)
        kinds.update(WITHOUT.found(text))
    # the comparison covers real hits of every kind of our own rules, not only misses
    # (gitleaks' rules are compared on the secrets corpus: test_redact_corpus.py)
    own = set(WITHOUT.kinds) - {r.id for r in gitleaks_rules_compiled()}
    assert own - SHADOWED - NOT_IN_CASES <= kinds, own - SHADOWED - NOT_IN_CASES - kinds


# kinds the case strings hold no example of (PEM blocks: test_redact.py; the newer
# provider prefixes: test_redact_corpus.py)
NOT_IN_CASES = {
    "private-key",
    "digitalocean-token",
    "shopify-token",
    "linear-api-key",
    "doppler-token",
    "dynatrace-token",
    "airtable-token",
    "terraform-token",
    "vault-token",
    "azure-ad-client-secret",
    "sonar-token",
}


# detect-secrets kinds whose test secrets a gitleaks rule now reports first, under its
# own name (aws-access-token, azure..., pypi-upload-token...)
SHADOWED = {
    "aws-secret-key",
    "azure-storage-key",
    "cloudant-credential",
    "ibm-cloud-iam-key",
    "ibm-cos-hmac-key",
    "pypi-token",
    # ours: webhook-url (Slack's /services/, /workflows/, /triggers/, Teams, Discord)
    "slack-webhook",
}


@pytest.mark.slow
def test_every_recorded_fixture_string_redacts_the_same() -> None:
    texts = fixture_strings()
    assert len(texts) > 1000
    for text in texts:
        same(text)


def candidates_cover_matches(text: str) -> None:
    """Every rule that finds something in ``text`` is a candidate for it."""
    pre = WITH._prefilter
    assert pre is not None
    may = WITH._candidates(pre, text)
    assert may is not None
    for i, rule in enumerate(WITH._rules):
        if any(True for _ in rule.find(redact_mod._Ctx(text), None)):
            assert i in may, (type(rule).__name__, text[:200])


@pytest.mark.slow
def test_a_rule_with_a_match_is_always_a_candidate() -> None:
    for text in case_strings():
        candidates_cover_matches(text)


# characters Python's regexes read differently from ASCII bytes: case folds to ASCII
# letters (Kelvin sign, long s, dotted and dotless i), Unicode spaces and digits, letters,
# symbols (Read's line-number arrow), the ASCII controls Python counts as space, a lone
# surrogate
ODD = [
    "\u212a", "\u017f", "\u0130", "\u0131", "\u00a0", "\u2003", "\u0663", "\u00e9",
    "\u00f1", "\u2192", "\U0001f600", "\x0b", "\x1c", "\x1f", "\ud800", "\u00d1",
]  # fmt: skip


@pytest.mark.parametrize(
    "text",
    [
        "caf\u00e9 password=hunter2x",
        "a\x1cpassword=hunter2x",
        "key:\x0bvalue",
        "    12\u2192API_KEY=abc123def456",
        "pa\u017f\u017fword: hunter2x",  # ſ: Python's case folding reads "password"
        "api_\u212aey = 'hunter2x'",  # the Kelvin sign lower-cases to k
        "x-api-\u212aey: abcdef123456",
        "--pa\u017f\u017fword hunter2x",
        "AUTHORIZATION:\u00a0Bearer abc.def.ghi",
        "\u0663\u0663\u0663\u0663\u0663\u0663\u0663\u0663\u0663:" + "A" * 35,
    ],
)
def test_text_the_engines_read_differently_is_prefiltered_and_redacts_the_same(
    text: str,
) -> None:
    same(text)
    candidates_cover_matches(text)


def test_a_default_redactor_builds_it_once_it_has_read_enough() -> None:
    r = Redactor()
    assert not r.prefiltered
    r.redact_text("x" * (redact_mod.PREFILTER_AFTER // 2))
    assert not r.prefiltered
    r.redact_text("y" * (redact_mod.PREFILTER_AFTER // 2 + 1))
    assert r.prefiltered


def test_without_hyperscan_every_rule_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    import builtins

    real = builtins.__import__

    def no_hyperscan(name: str, *args: Any, **kwargs: Any) -> Any:
        if name == "hyperscan":
            raise ImportError(name)
        return real(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_hyperscan)
    r = Redactor(prefilter=True)
    assert not r.prefiltered
    key = "sk-ant-" + "api03-" + "".join(random.Random(3).choices(string.ascii_letters, k=40))
    assert key not in r.redact_text(f"ANTHROPIC_API_KEY={key}")


fragments = [f for f in cases.FRAGMENTS if f != "\x00"] + ODD
generated_text = st.lists(
    st.one_of(
        st.sampled_from(fragments),
        st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=6),
        st.text(max_size=3),  # anything, surrogates included
    ),
    max_size=50,
).map("".join)


@pytest.mark.slow
@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(generated_text)
def test_generated_text_redacts_the_same(text: str) -> None:
    same(text)
    candidates_cover_matches(text)


@pytest.mark.slow
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    generated_text,
    st.sampled_from([cases.ANTHROPIC_API, cases.GH_PAT, cases.JWT]),
    generated_text,
)
def test_generated_text_around_a_secret_redacts_the_same(
    before: str, secret: str, after: str
) -> None:
    same(before + secret + after)


def test_the_compiled_prefilter_is_cached_and_a_bad_cache_rebuilt(bc_home: Path) -> None:
    Redactor(prefilter=True)
    cached = sorted((bc_home / "cache").glob("redact-prefilter-*.hsdb"))
    assert len(cached) == 2  # one database for ASCII text, one for any text
    assert all(f.stat().st_mode & 0o777 == 0o600 for f in cached)
    good = [f.read_bytes() for f in cached]
    assert Redactor(prefilter=True).prefiltered  # loaded from the cache
    for f in cached:
        f.write_bytes(b"not a database")
    r = Redactor(prefilter=True)
    assert r.prefiltered
    assert [f.read_bytes() for f in cached] == good
    key = "sk-ant-" + "api03-" + "".join(random.Random(3).choices(string.ascii_letters, k=40))
    assert key not in r.redact_text(f"ANTHROPIC_API_KEY={key}")
    assert key not in r.redact_text(f"ANTHROPIC_API_KEY={key} \u2192")


def random_text(rng: random.Random, pieces: list[str]) -> str:
    parts = []
    for _ in range(rng.randrange(1, 30)):
        r = rng.random()
        if r < 0.6:
            parts.append(rng.choice(pieces))
        elif r < 0.8:
            parts.append("".join(chr(rng.randrange(32, 127)) for _ in range(rng.randrange(1, 8))))
        else:
            top = rng.choice([0x80, 0x3000, 0x110000])
            parts.append("".join(chr(rng.randrange(0, top)) for _ in range(rng.randrange(1, 4))))
    return "".join(parts)


@pytest.mark.slow
def test_many_seeded_random_texts_redact_the_same() -> None:
    """A soak beside the hypothesis tests: secrets, keywords and test strings glued with
    random ASCII and random code points (surrogates, controls, every plane)."""
    rng = random.Random(20261130)
    pieces = cases.FRAGMENTS + ODD + [c[:200] for c in case_strings() if len(c) < 400]
    for _ in range(12_000):
        text = random_text(rng, pieces)
        same(text)
        candidates_cover_matches(text)


# --- gitleaks' rules tried only where a match can start -------------------------------


def test_start_literals_of_a_pattern() -> None:
    from claude_bc.capture.secrets_rules import literal_starts

    assert literal_starts(r"(?i)\b(?:access|auth|(?-i:[Aa]pi|API)|passw(?:or)?d)x") == (
        "access",
        "api",
        "auth",
        "passw",
    )
    assert literal_starts(r"\b((?:hvs\.[\w-]{90}|s\.(?i:[a-z0-9]{24})))") == ("hvs.", "s.")
    assert literal_starts(r"(?:lob)(?:[ \t\w.-]{0,20})=") == ("lob",)
    # a match may start with a class or an optional part: no literals
    assert literal_starts(r"[a-f0-9]{40}") is None
    assert literal_starts(r"(?:sgp_[a-f0-9]{40}|[a-f0-9]{40})") is None
    assert literal_starts(r"(?:x)?abc") is None
    assert literal_starts(r"(?:ab|)cd") == ("abcd", "cd")  # an empty branch: what follows
    assert literal_starts(r"a[bc]") == ("ab", "ac")
    assert literal_starts(r"ab*c") is None  # "a" alone is too short to look for


@pytest.mark.skipif(
    not gitleaks_rules.rules_file(),
    reason="no gitleaks rules file on this machine (tests/fixtures/secrets/PROVENANCE.md)",
)
def test_gitleaks_rules_tried_at_their_start_literals_find_what_finditer_finds(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Each rule with start literals (``GitleaksRule.starts``) gives exactly the spans
    that running its regex over every window gives, on corpus texts, recorded strings,
    and texts with the characters ``(?i)`` reads as ASCII letters (ı, ſ, K, İ)."""
    from claude_bc.capture import secrets_rules
    from tests.capture import redact_corpus as rc

    monkeypatch.setattr(secrets_rules, "_TRY_AT_STARTS", 0)  # short texts too
    fast = [r for r in gitleaks_rules_compiled() if r.starts]
    slow = [r for r in gitleaks_rules_compiled() if r.starts]
    assert len(fast) > 150
    for r in slow:
        r.__dict__["starts"] = None  # the cached property: finditer everywhere
    texts = [r["text"] for r in rc.corpus()[1::4]] + list(rc.benign_lines())
    texts += [t for t in fixture_strings() if len(t) > 40][::3]
    odd = [t for t in texts[::9] if t.isascii()]
    texts += [t.replace("i", "\u0131") for t in odd] + [t.replace("s", "\u017f") for t in odd]
    texts += [t.replace("k", "\u212a").replace("I", "\u0130") for t in odd]
    texts += [t.replace("e", "\u00e9", 1) for t in odd]  # non-ASCII, no fold
    for text in texts:
        lower = redact_mod._lower(text)
        for a, b in zip(fast, slow, strict=True):
            got = list(a.spans(text, lower, 0, len(text)))
            assert got == list(b.spans(text, lower, 0, len(text))), (a.id, text[:200])


def test_the_prefilter_knows_every_character_ignorecase_folds_to_an_ascii_letter() -> None:
    """``hs_syntax`` writes a case-folded i, k or s as the letter or the UTF-8 bytes of
    the non-ASCII characters Python's ``re.IGNORECASE`` matches to it: these must be all
    of them (checked over every code point)."""
    import re
    import sys

    from claude_bc.capture.prefilter import _FOLDS

    letter = re.compile("[a-z]", re.IGNORECASE)
    folds: dict[str, set[str]] = {}
    for code in range(0x80, sys.maxunicode + 1):
        ch = chr(code)
        if letter.fullmatch(ch):
            for a in string.ascii_lowercase:
                if re.fullmatch(a, ch, re.IGNORECASE):
                    folds.setdefault(a, set()).add(
                        "".join(f"\\x{b:02x}" for b in ch.encode("utf-8", "surrogatepass"))
                    )
    assert folds == {k: set(v) for k, v in _FOLDS.items()}


@pytest.mark.slow
def test_words_found_in_one_pass_give_what_a_find_per_word_gives(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Long texts: the assignment rule tried at its anchor words and the words gitleaks'
    rules look for found in one Hyperscan pass (``_FIND_IN_ONE_PASS``) redact exactly as
    short texts are (regex search, a ``str.find`` per word), here on every text."""
    from tests.capture import redact_corpus as rc

    texts = case_strings() + [t for t in fixture_strings() if len(t) > 40][::2]
    texts += [r["text"] for r in rc.corpus()[2::5]] if rc.have_corpus() else []
    monkeypatch.setattr(redact_mod, "_FIND_IN_ONE_PASS", 1 << 40)
    slow = Redactor(prefilter=True)
    expected = [slow.redact_text(t) for t in texts]
    monkeypatch.setattr(redact_mod, "_FIND_IN_ONE_PASS", 0)
    fast = Redactor(prefilter=True)
    for text, want in zip(texts, expected, strict=True):
        assert fast.redact_text(text) == want, text[:200]
