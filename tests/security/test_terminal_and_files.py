"""Attack 8: captured text drove the terminal (OSC title and clipboard writes) and hid
its direction (U+202E) in the CLI and the viewer; `-o` onto an existing 0644 file left it
readable by everyone."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from selenium.webdriver.common.by import By

from claude_bc.capture.capturer import quick_capture
from claude_bc.capture.store import TraceStorage
from tests.chromium import chromium
from tests.conftest import run_bc as run

OSC_TITLE = "\x1b]0;pwned title\x07"
OSC_CLIPBOARD = "\x1b]52;c;cm0gLXJmIH4=\x07"
CSI = "\x1b[2J\x1b[31m"
RLO = "\u202e"  # shows "invoice_exe.txt" for invoice_txt.exe
HOSTILE = f"read {OSC_TITLE}{OSC_CLIPBOARD}{CSI}\r\x9b31m the file invoice_{RLO}txt.exe"


@pytest.fixture
def hostile(bc_home: Path) -> str:
    trace = quick_capture(
        HOSTILE, f"done {OSC_TITLE}{RLO}", [("Bash", {"command": "cat x"}, HOSTILE)],
        TraceStorage(bc_home / "traces"),
    )  # fmt: skip
    return trace.trace_id


def _clean(text: str) -> None:
    assert "\x1b" not in text and "\x07" not in text and "\r" not in text
    assert "\x9b" not in text and RLO not in text


def test_show_and_list_send_no_control_to_the_terminal(
    hostile: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(capsys, "list")
    assert code == 0
    _clean(out)
    assert "<U+001B>]0;pwned title<U+0007>" in out
    for args in (["show", hostile], ["show", hostile, "--json"]):
        code, out, _ = run(capsys, *args)
        assert code == 0
        _clean(out)
    code, out, _ = run(capsys, "show", hostile, "--json")
    import json

    assert json.loads(out)["user_prompt"] == HOSTILE  # --json: the same data, escaped


@pytest.mark.parametrize("command", ["view", "export"])
def test_output_files_end_at_0600(
    hostile: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], command: str
) -> None:
    out = tmp_path / f"out.{command}"
    out.write_text("old")
    out.chmod(0o644)
    assert run(capsys, command, "-o", str(out))[0] == 0
    assert stat.S_IMODE(out.stat().st_mode) == 0o600 and out.read_text() != "old"
    link = tmp_path / "link"
    target = tmp_path / "target"
    target.write_text("keep")
    link.symlink_to(target)
    assert run(capsys, command, "-o", str(link))[0] == 1  # never written through a link
    assert target.read_text() == "keep"


@pytest.mark.slow
def test_the_viewer_shows_what_is_hidden(
    hostile: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    page = tmp_path / "t.html"
    assert run(capsys, "view", "-o", str(page))[0] == 0
    html = page.read_text()
    _clean(html)
    with chromium() as driver:
        driver.get(page.as_uri())
        text = driver.find_element(By.CSS_SELECTOR, "#list").get_attribute("textContent")
    assert RLO not in text and "invoice_<U+202E>txt.exe" in text
    assert "<U+001B>]52;c;" in text
    assert os.path.getsize(page) > 0
