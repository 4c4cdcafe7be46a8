"""claude_bc.capture.prefilter: the Hyperscan pass that picks which Python regexes can match a text.

The redactor's use of it has its own tests (``test_redact_prefilter.py``); here: the
pattern rewriting itself, and the signal extractor's cue prefilter (same signals found).
"""

from __future__ import annotations

import os
import random
import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from claude_bc.capture import prefilter, signals
from claude_bc.capture.prefilter import Prefilter
from claude_bc.capture.schema import ClaudeTrace, ToolCall
from tests.capture.labelled_snippets import DEV, HELD_OUT, ROUND1, ROUND2
from tests.capture.labelled_traces import TRACES

# (pattern, flags, texts Python finds it in): classes with ranges and non-ASCII members,
# negated classes, case folds to ASCII letters, Unicode digits and spaces, repeats,
# back-references, lookarounds and anchors, inline flags
MATCHING = [
    (r"[a-z0-9_.\-\u00f1]{3,80}=x", 0, ["contrase\u00f1a=x", "abc=x", "a\u00f1\u00f1=x"]),
    (r"[^\s\"']{1,1024}@h", 0, ["\u2192\u2192@h", "x@h", "\u00e9@h"]),
    (r"a.b", 0, ["a\u00e9b", "a-b", "a\U0001f600b"]),
    (r"pass(?:word)?\s*=", re.IGNORECASE, ["PA\u017f\u017fword =", "pass="]),
    (r"key", re.IGNORECASE, ["\u212aey", "KEY"]),
    (r"\bid\b", re.IGNORECASE, ["\u0130d", "id"]),
    (r"\d{3}:", 0, ["\u0663\u0663\u0663:", "123:"]),
    (r"a\sb", 0, ["a\u00a0b", "a\x1cb", "a\x0bb", "a b"]),
    (r"\w{4}!", 0, ["\u00e9\u00e9\u00e9\u00e9!", "abcd!"]),
    (r"(?P<q>[\"'])v(?P=q)", 0, ['"v"', "'v'"]),
    (r"(?<=\W)tok(?!s)\b$", 0, [" tok", "(tok"]),
    (r"(?i:abc)d", 0, ["ABCd"]),
    (r"x{2,5}y", 0, ["xxy", "xxxxxxy"]),
    (r"[\u0100-\u0200]z", 0, ["\u0150z"]),
]


@pytest.fixture(scope="module")
def pre() -> Prefilter:
    return Prefilter([[(p, f)] for p, f, _ in MATCHING], "test")


@pytest.mark.parametrize("index", range(len(MATCHING)))
def test_a_pattern_is_a_candidate_wherever_python_finds_it(pre: Prefilter, index: int) -> None:
    pattern, flags, texts = MATCHING[index]
    for text in texts:
        assert re.search(pattern, text, flags), text  # the case itself is right
        for around in ("", "lead ", "\u00e9\u2192 "):
            may = pre.candidates(around + text + " tail")
            assert may is not None and index in may, (pattern, text)


def test_text_that_matches_nothing_has_no_candidates(pre: Prefilter) -> None:
    assert pre.candidates("nothing to see here, move along") == set()


def test_a_group_without_patterns_is_always_a_candidate() -> None:
    p = Prefilter([None, [("zzz", 0)]], "test")
    assert p.candidates("abc") == {0}
    assert p.candidates("zzz") == {0, 1}


def test_a_cached_prefilter_is_loaded_without_rewriting_and_keeps_its_always_groups(
    bc_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    groups = [[("abc", 0)], [("(", 0)], None]  # "(" does not parse: always a candidate
    first = Prefilter(groups, "test-cache")
    assert first.always == {1, 2}
    assert len(list((bc_home / "cache").glob("test-cache-prefilter-*.hsdb"))) == 2

    def no_rewriting(*args: object, **kwargs: object) -> bytes:
        raise AssertionError("a cache hit rewrites no pattern")

    monkeypatch.setattr(prefilter, "hs_syntax", no_rewriting)
    again = Prefilter(groups, "test-cache")
    assert again.always == {1, 2}
    assert again.candidates("xyz") == {1, 2} and again.candidates("xabcx") == {0, 1, 2}
    # other patterns are another key: compiled (here: rewriting is needed, and fails)
    with pytest.raises(AssertionError, match="rewrites no pattern"):
        Prefilter([[("abd", 0)]], "test-cache")


def test_cached_databases_nobody_loads_are_pruned(bc_home: Path) -> None:
    cache = bc_home / "cache"
    cache.mkdir(parents=True, exist_ok=True)
    month_ago = time.time() - 40 * 86400
    stale = cache / "test-prune-prefilter-0000-utf8.hsdb"  # an earlier version's patterns
    in_use = cache / "test-prune-prefilter-1111-utf8.hsdb"  # another process's, still loaded
    other = cache / "redact-prefilter-0000-utf8.hsdb"  # another name: not this one's to prune
    for f in (stale, in_use, other):
        f.write_bytes(b"[]\n")
    for f in (stale, other):
        os.utime(f, (month_ago, month_ago))
    Prefilter([[("abc", 0)]], "test-prune")  # compiles and writes its own: prunes
    assert not stale.exists() and in_use.exists() and other.exists()
    mine = sorted(set(cache.glob("test-prune-prefilter-*.hsdb")) - {in_use})
    assert len(mine) == 2  # one for ASCII text, one for any
    for f in mine:
        os.utime(f, (month_ago, month_ago))
    assert Prefilter([[("abc", 0)]], "test-prune").candidates("xabc") == {0}  # from the cache
    assert all(f.stat().st_mtime > month_ago + 86400 for f in mine)  # marked as in use


# --- the signal extractor's cues ---------------------------------------------------------------


@pytest.fixture
def cue_prefilter(monkeypatch: pytest.MonkeyPatch, bc_home: Path) -> Iterator[None]:
    monkeypatch.setattr(signals, "_cue_prefilter", None)
    signals.use_prefilter()
    assert signals._cue_prefilter is not None
    yield


def both(trace: ClaudeTrace, monkeypatch: pytest.MonkeyPatch) -> None:
    with_pre = signals.extract_signals(trace)
    kept = signals._cue_prefilter
    monkeypatch.setattr(signals, "_cue_prefilter", None)
    without = signals.extract_signals(trace)
    monkeypatch.setattr(signals, "_cue_prefilter", kept)
    assert with_pre == without, trace.claude_response[:200]


def as_trace(text: str) -> ClaudeTrace:
    return ClaudeTrace(
        trace_id="t",
        user_prompt="do it",
        tool_calls=[ToolCall(tool="Read", reasoning=text), ToolCall(tool="Bash", thinking=text)],
        claude_response=text,
    )


def test_every_labelled_snippet_and_trace_gives_the_same_signals(
    cue_prefilter: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    found = 0
    for text, labels in DEV + ROUND1 + ROUND2 + HELD_OUT:
        both(as_trace(text), monkeypatch)
        found += bool(labels)
    for labelled in TRACES:
        both(labelled.trace, monkeypatch)
    assert found > 100  # the comparison covers many texts that hold cues


def test_seeded_random_text_gives_the_same_signals(
    cue_prefilter: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    rng = random.Random(7)
    pieces = [text for text, _ in DEV + ROUND1 + ROUND2 + HELD_OUT]
    words = [w for p in pieces for w in p.split()]
    for _ in range(400):
        parts = []
        for _ in range(rng.randrange(1, 40)):
            r = rng.random()
            if r < 0.7:
                parts.append(rng.choice(words))
            elif r < 0.85:
                parts.append(rng.choice([".", "!", "?", "\n", "\n\n", "`x`", ",", ":"]))
            else:
                parts.append("".join(chr(rng.randrange(0, 0x3000)) for _ in range(2)))
        both(as_trace(" ".join(parts)), monkeypatch)
