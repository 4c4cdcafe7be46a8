"""The blind A/B test: statistics, the SQLite store, and the page in headless Chromium."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.support.expected_conditions import staleness_of
from selenium.webdriver.support.wait import WebDriverWait

from claude_bc.capture.errors import BCError
from claude_bc.export.abtest import (
    ABStore,
    Judgment,
    Pair,
    judgments_needed,
    read_samples,
    report,
    wilson_interval,
)
from tests.chromium import chromium

BC_TRAIN = Path(sys.executable).with_name("bc-train")


def _pairs(n: int) -> list[Pair]:
    return [
        Pair(f"s{i}", f"prompt {i}", f"claude answer {i}", f"local answer {i}", "tiny.gguf")
        for i in range(n)
    ]


# --------------------------------------------------------------------------- statistics


def test_wilson_interval_matches_the_textbook_values() -> None:
    lo, hi = wilson_interval(50, 100)
    assert (round(lo, 4), round(hi, 4)) == (0.4038, 0.5962)
    lo, hi = wilson_interval(0, 10)
    assert lo == 0.0 and round(hi, 4) == 0.2775


def test_a_45_percent_claim_needs_about_270_judgments_at_chance() -> None:
    assert judgments_needed(0.5) == 271
    assert judgments_needed(0.45) is None
    assert judgments_needed(0.48) > judgments_needed(0.5)  # type: ignore[operator]


def _judgments(fooled: int, unsure: int, found: int) -> list[Judgment]:
    return (
        [Judgment("B", "A", 4, 4)] * fooled
        + [Judgment("unsure", "B", 3, 3)] * unsure
        + [Judgment("A", "A", 5, 2)] * found
    )


def test_report_counts_cant_tell_as_half_and_says_how_many_more_votes() -> None:
    r = report(_judgments(fooled=30, unsure=40, found=30))
    assert r.judgments == 100 and r.indistinguishability == pytest.approx(0.5)
    assert r.ci95[0] < 0.5 < r.ci95[1]
    assert not r.claim_holds and r.more_needed == 171  # 271 in all at 50%
    assert r.quality_claude == pytest.approx((30 * 4 + 40 * 3 + 30 * 5) / 100)
    assert r.quality_local == pytest.approx((30 * 4 + 40 * 3 + 30 * 2) / 100)


def test_report_claim_holds_with_enough_judgments_and_never_below_45() -> None:
    held = report(_judgments(fooled=140, unsure=20, found=140))
    assert held.claim_holds and held.lower_one_sided > 0.45 and held.more_needed == 0
    easy = report(_judgments(fooled=10, unsure=0, found=90))
    assert not easy.claim_holds and easy.more_needed is None
    assert report([]).more_needed == 271


# --------------------------------------------------------------------------- store


def test_showings_hide_the_side_and_randomise_it(tmp_path: Path) -> None:
    store = ABStore(tmp_path / "ab.sqlite")
    store.add_pairs(_pairs(1))
    sides = set()
    for i in range(40):
        s = store.next_showing(f"rater{i}")
        assert s is not None and {s.answer_a, s.answer_b} == {"claude answer 0", "local answer 0"}
        sides.add("A" if s.answer_a.startswith("claude") else "B")
        assert "claude" not in s.token and "local" not in s.token
    assert sides == {"A", "B"}


def test_votes_are_checked_and_counted_once(tmp_path: Path) -> None:
    store = ABStore(tmp_path / "ab.sqlite")
    assert store.add_pairs(_pairs(2)) == 2
    assert store.add_pairs(_pairs(2)) == 0  # same sources: kept as they were
    first = store.next_showing("r")
    assert first is not None
    claude_side = "A" if first.answer_a.startswith("claude") else "B"
    qa, qb = (5, 2) if claude_side == "A" else (2, 5)  # Claude's answer rated 5
    store.vote(first.token, claude_side, qa, qb)
    with pytest.raises(BCError, match="already judged"):
        store.vote(first.token, "unsure", 3, 3)
    with pytest.raises(BCError, match="never shown"):
        store.vote("nope", "A", 3, 3)
    with pytest.raises(BCError, match="1 to 5"):
        store.vote(first.token, "A", 0, 3)
    second = store.next_showing("r")
    assert second is not None and second.pair_id != first.pair_id
    store.vote(second.token, "unsure", 3, 4)
    assert store.next_showing("r") is None  # this rater has judged every pair
    [j1, j2] = store.judgments()
    assert (j1.score, j1.quality_claude, j1.quality_local) == (0.0, 5, 2)
    assert j2.score == 0.5


def test_held_out_chats_become_samples_cut_before_the_final_answer(tmp_path: Path) -> None:
    chat = [
        {"role": "system", "content": "sys"},
        {"role": "user", "content": "Fix the bug"},
        {"role": "assistant", "content": "Reading.", "tool_calls": [{"name": "Read"}]},
        {"role": "tool", "content": "file text"},
        {"role": "assistant", "content": "Fixed it."},
    ]
    tool_last = chat[:3]
    path = tmp_path / "test.jsonl"
    path.write_text(
        json.dumps({"id": "a", "messages": chat})
        + "\n"
        + json.dumps({"id": "b", "messages": tool_last})
        + "\n"
    )
    [sample] = read_samples(path)
    assert (sample.source, sample.prompt, sample.claude) == ("a", "Fix the bug", "Fixed it.")
    assert sample.context == chat[:4]
    # a dataset folder: the test split, or the eval split while the test split is empty
    folder = tmp_path / "dataset"
    folder.mkdir()
    (folder / "test.jsonl").write_text("")
    (folder / "eval.jsonl").write_text(path.read_text())
    assert [s.source for s in read_samples(folder)] == ["a"]
    (folder / "eval.jsonl").unlink()
    with pytest.raises(BCError, match="no test.jsonl or eval.jsonl"):
        read_samples(folder)
    path.write_text("{not json\n")
    with pytest.raises(BCError, match=r"test.jsonl:1: not valid JSON"):
        read_samples(path)


# --------------------------------------------------------------------------- the page


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def _page_server(db: Path, port: int) -> Iterator[str]:
    proc = subprocess.Popen(
        [str(BC_TRAIN), "abtest", "serve", "--db", str(db), "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.startswith("A/B test page: "), proc.stderr.read() if proc.stderr else line
        yield line.split()[3]
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def _vote(driver: object, guess: str, qa: int, qb: int) -> None:
    find = driver.find_element  # type: ignore[attr-defined]
    find(By.ID, f"guess-{guess}").click()
    find(By.ID, f"qa-{qa}").click()
    find(By.ID, f"qb-{qb}").click()
    before = find(By.ID, "count")
    find(By.ID, "submit").click()
    WebDriverWait(driver, 10).until(staleness_of(before))  # the next page has loaded


def _count(driver: object) -> int:
    return int(driver.find_element(By.ID, "count").text)  # type: ignore[attr-defined]


@pytest.mark.slow
def test_page_votes_survive_reload_and_restart(tmp_path: Path) -> None:
    db = tmp_path / "ab.sqlite"
    ABStore(db).add_pairs(_pairs(3))
    port = _free_port()
    with chromium() as driver:
        with _page_server(db, port) as url:
            driver.get(url)
            assert _count(driver) == 0
            shown = {driver.find_element(By.ID, f"answer-{s}").text for s in "AB"}
            assert len(shown) == 2 and any(t.startswith("claude") for t in shown)
            # identities hidden: no model name, and the only hidden field is the random token
            assert "tiny.gguf" not in driver.page_source
            hidden = driver.find_elements(By.CSS_SELECTOR, "input[type=hidden]")
            assert [h.get_attribute("name") for h in hidden] == ["token"]
            _vote(driver, "A", 4, 2)
            assert _count(driver) == 1
            driver.refresh()  # the redirect after a vote: a reload does not vote again
            assert _count(driver) == 1
        time.sleep(0.2)
        with _page_server(db, port) as url:  # a restart keeps the votes
            driver.get(url)
            assert _count(driver) == 1
            _vote(driver, "unsure", 3, 3)
            assert _count(driver) == 2
            driver.get(url.split("?")[0] + "report")  # the cookie from the key admits it
            text = driver.find_element(By.ID, "report").text
    judgments = ABStore(db).judgments()
    assert [j.guess for j in judgments] == ["A", "unsure"]
    assert judgments[1].score == 0.5
    assert "judgments: 2" in text
    fooled = sum(1 for j in judgments if j.score == 1.0)
    assert f"took local for Claude: {fooled}, can't tell: 1" in text
    out = subprocess.run(
        [str(BC_TRAIN), "abtest", "report", "--db", str(db), "--json"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert json.loads(out.stdout)["judgments"] == 2


# --------------------------------------------------------------------------- with the model


def test_pairs_are_built_from_held_out_chats_with_the_local_model(
    exported: dict[str, Any], tmp_path: Path
) -> None:
    """`bc-train abtest pairs`: the exported model answers the held-out prompts."""
    rows = [
        {
            "trace_id": f"t{i}",
            "messages": [
                {"role": "system", "content": "You are a coding agent."},
                {"role": "user", "content": f"Question {i}: what does main() print?"},
                {"role": "assistant", "content": f"It prints hello {i}."},
            ],
            "tools": [],
        }
        for i in range(3)
    ]
    heldout = tmp_path / "test.jsonl"
    heldout.write_text("".join(json.dumps(r) + "\n" for r in rows))
    db = tmp_path / "ab.sqlite"
    model = exported["out"] / "llama-claude-bc-v1.gguf"
    proc = subprocess.run(
        [
            str(BC_TRAIN),
            "abtest",
            "pairs",
            "--heldout",
            str(heldout),
            "--model",
            str(model),
            "--db",
            str(db),
            "--max-tokens",
            "12",
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "3 new pairs (3 in all)" in proc.stdout
    store = ABStore(db)
    showing = store.next_showing("r")
    assert showing is not None
    answers = {showing.answer_a, showing.answer_b}
    claude = {f"It prints hello {i}." for i in range(3)}
    assert len(answers & claude) == 1  # one answer is Claude's, the other the model's
    (local,) = answers - claude
    assert local.strip()
