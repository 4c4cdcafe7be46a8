"""`bc-capture view`: one self-contained HTML file, checked as text and in headless Chromium."""

from __future__ import annotations

import base64
import hashlib
import os
import re
import time
from pathlib import Path

import pytest
from selenium.webdriver.common.by import By

from claude_bc.capture.capturer import ClaudeCapturer
from claude_bc.capture.cli import main
from claude_bc.capture.store import TraceStorage
from claude_bc.capture.viewer import SCRIPT
from claude_bc.capture.worker import assemble_session
from tests.chromium import browser_errors, chromium
from tests.conftest import stage_run

EVIL = '</script><img src=x onerror="window.__pwned=1"><script>window.__pwned=2</script>'
BIG = "\n".join(f"line {i}: " + "x" * 60 for i in range(400))


def fill_store(home: Path) -> TraceStorage:
    """The recorded real Claude Code run, plus hand-made turns that stress the page."""
    session, _ = stage_run("basic", home)
    assemble_session(session, home)
    store = TraceStorage(home / "traces")
    capturer = ClaudeCapturer(store)
    capturer.start_trace(f"Why does the parser crash? {EVIL}")
    capturer.add_tool_call(
        "Bash",
        {"command": "pytest -x tests/test_parser.py"},
        BIG,
        reasoning="Actually, let me run the failing test first. We can't change the public API.",
        success=False,
        error="Exit code 1\n" + BIG,
    )
    capturer.add_tool_call("Read", {"file_path": "parser.py"}, f"def parse(s):  # {EVIL}")
    capturer.save(capturer.finish_trace("The parser crashed on empty input; fixed. " * 10))
    time.sleep(0.01)
    capturer.start_trace("List the services in the compose file")
    capturer.add_tool_call("Bash", {"command": "docker compose config --services"}, "web\ndb")
    capturer.save(capturer.finish_trace("web and db."))
    return store


def write_page(home: Path, out: Path, capsys: pytest.CaptureFixture[str]) -> str:
    try:
        main(["view", "-o", str(out)])
    except SystemExit as exc:  # pragma: no cover - a failure shows the error below
        raise AssertionError(capsys.readouterr().err) from exc
    assert f"wrote {out} (3 traces)" in capsys.readouterr().out
    assert out.stat().st_mode & 0o777 == 0o600
    return out.read_text()


def test_page_is_self_contained_and_escaped(
    bc_home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fill_store(bc_home)
    page = write_page(bc_home, tmp_path / "v.html", capsys)
    assert page.count("<script>") == 1 and page.count("</script>") == 1  # only ours
    assert "<img" not in page and "&lt;/script&gt;&lt;img src=x onerror=" in page
    assert not re.search(r"""(?:src|href)=["']?(?:https?:)?//""", page)  # nothing to fetch
    digest = base64.b64encode(hashlib.sha256(SCRIPT.encode()).digest()).decode()
    assert f"script-src 'sha256-{digest}'" in page and "default-src 'none'" in page
    assert '<mark class="correction"' in page and '<mark class="constraint"' in page
    assert "output: 401 lines" in page  # the big output is collapsed


def test_unwritable_output_is_one_error_line(
    bc_home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["view", "-o", str(tmp_path / "missing" / "v.html")])
    err = capsys.readouterr().err
    assert exc.value.code == 1 and err.startswith("bc-capture: error: cannot write ")
    assert err.count("\n") == 1


def visible(driver: object) -> list[str]:
    rows = driver.find_elements(By.CSS_SELECTOR, "details.trace")  # type: ignore[attr-defined]
    return [r.get_attribute("id") for r in rows if r.is_displayed()]


@pytest.mark.slow
def test_page_in_headless_chromium(
    bc_home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fill_store(bc_home)
    page = tmp_path / "traces.html"
    write_page(bc_home, page, capsys)
    artifacts = Path(os.environ.get("BC_TEST_ARTIFACTS") or tmp_path)
    artifacts.mkdir(parents=True, exist_ok=True)
    with chromium() as driver:
        driver.get(page.as_uri())
        assert driver.title == "claude-bc traces"
        assert browser_errors(driver) == []  # no console error, exception or CSP block
        assert len(visible(driver)) == 3
        assert driver.find_element(By.ID, "count").text == "3 of 3 traces"
        # the hostile prompt is shown as text and ran nothing
        assert driver.execute_script("return window.__pwned === undefined")
        assert not driver.find_elements(By.CSS_SELECTOR, "main img")
        assert EVIL in driver.find_element(By.CSS_SELECTOR, "#list").get_attribute("textContent")

        search = driver.find_element(By.ID, "q")
        search.send_keys("parser crash")
        (hit,) = visible(driver)
        assert driver.find_element(By.ID, "count").text == "1 of 3 traces"
        search.clear()
        search.send_keys("greeting target")  # the recorded Claude Code run
        assert len(visible(driver)) == 1
        search.clear()
        search.send_keys("no such words anywhere")
        assert visible(driver) == [] and driver.find_element(By.ID, "empty").is_displayed()
        search.clear()
        search.send_keys(" ")  # clear() fires no input event; typing does
        assert len(visible(driver)) == 3

        driver.find_element(By.CSS_SELECTOR, "#f-category option[value=debugging]").click()
        assert visible(driver) == [hit]
        driver.find_element(By.CSS_SELECTOR, "#f-category option[value='']").click()
        driver.find_element(By.ID, "f-failed").click()
        assert len(visible(driver)) == 2  # the recorded run and the parser turn failed a call
        driver.find_element(By.ID, "f-failed").click()

        trace = driver.find_element(By.ID, hit)
        assert trace.get_attribute("open") is None
        trace.find_element(By.TAG_NAME, "summary").click()
        assert trace.get_attribute("open") == "true"
        timeline = trace.find_element(By.CSS_SELECTOR, "ol.timeline")
        assert timeline.is_displayed()
        steps = [s.get_attribute("class") for s in timeline.find_elements(By.CSS_SELECTOR, "li")]
        assert steps[0] == "step prompt" and steps[-1] == "step answer"
        assert "step call failed" in steps and "step reasoning" in steps
        marks = trace.find_elements(By.CSS_SELECTOR, ".reasoning mark")
        assert {m.get_attribute("class") for m in marks} == {"correction", "constraint"}
        big = trace.find_element(By.CSS_SELECTOR, "details.output")
        assert big.get_attribute("open") is None  # the 400-line output starts collapsed
        assert not big.find_element(By.TAG_NAME, "pre").is_displayed()
        big.find_element(By.TAG_NAME, "summary").click()
        assert big.find_element(By.TAG_NAME, "pre").is_displayed()
        assert browser_errors(driver) == []

        driver.execute_script("window.scrollTo(0, 0)")
        shot = artifacts / "bc-capture-view.png"
        assert driver.save_screenshot(str(shot)) and shot.stat().st_size > 10_000
        print(f"\nscreenshot of the viewer: {shot}")
