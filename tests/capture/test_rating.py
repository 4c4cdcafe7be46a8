"""Ratings: `bc-capture rate`, the /bc-rate slash command installed with the hooks (run by the
real Claude Code), and `reextract` / `stats` / `show` over rated traces."""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

import pytest

from claude_bc.capture.capturer import quick_capture
from claude_bc.capture.gates import gate
from claude_bc.capture.rating import COMMAND_MARKER, command_text
from claude_bc.capture.store import TraceStorage
from tests.claude_code import make_basic_project, play_basic, run_claude
from tests.conftest import REPO
from tests.conftest import run_bc as run
from tests.fake_anthropic import FakeAnthropic

BC = REPO / ".venv" / "bin" / "bc-capture"


@pytest.fixture
def two(bc_home: Path) -> list[str]:
    store = TraceStorage(bc_home / "traces")
    first = quick_capture(
        "first question", "answer one", [("Read", {"file_path": "a"}, "x")], store
    )
    time.sleep(0.01)  # distinct start times: the second is the last
    second = quick_capture("second question", "answer two", [], store)
    return [first.trace_id, second.trace_id]


def test_rate_by_id_and_last(two: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "rate", two[0][:6], "up", "--note", "clear and short")
    assert code == 0 and f"rated up: {two[0][:8]} first question" in out
    code, out, _ = run(capsys, "rate", "--last", "down", "missed", "the", "point")
    assert code == 0 and two[1][:8] in out
    traces = {t.trace_id: t for t in TraceStorage().load_traces()}
    assert (traces[two[0]].rating, traces[two[0]].rating_note) == ("up", "clear and short")
    assert (traces[two[1]].rating, traces[two[1]].rating_note) == ("down", "missed the point")
    assert run(capsys, "rate", two[1], "clear")[0] == 0
    assert TraceStorage().get(two[1]).rating is None
    # nothing is lost: the store keeps every version, the last one wins
    assert len(TraceStorage().path.read_text().splitlines()) == 5


def test_rate_last_prefers_this_session(
    two: list[str], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    store = TraceStorage()
    older = store.get(two[0]).model_copy(update={"session_id": "s-1"})
    store.append([older])
    monkeypatch.setenv("CLAUDE_CODE_SESSION_ID", "s-1")
    assert run(capsys, "rate", "--last", "up")[0] == 0
    assert store.get(two[0]).rating == "up" and store.get(two[1]).rating is None


def test_rating_note_is_redacted(two: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    key = "sk-ant-" + "api03-" + "Zq9" * 15 + "AA"
    assert run(capsys, "rate", two[0], "down", "--note", f"it printed {key}")[0] == 0
    note = TraceStorage().get(two[0]).rating_note or ""
    assert key not in note and "[REDACTED:" in note
    assert key not in TraceStorage().path.read_text()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["rate"], "say which trace to rate: an id (prefix) or --last"),
        (["rate", "--last"], "say how to rate it: up, down or clear (then an optional note)"),
        (["rate", "--last", "meh"], "rating must be up, down or clear, not 'meh'"),
        (["rate", "zzzz", "up"], "no trace with id 'zzzz'"),
    ],
)
def test_rate_bad_input_is_one_error_line(
    two: list[str], capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    before = TraceStorage().path.read_bytes()
    code, out, err = run(capsys, *args)
    assert code == 1 and out == "" and err == f"bc-capture: error: {message}\n"
    assert TraceStorage().path.read_bytes() == before


def test_rate_with_nothing_captured(bc_home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "rate", "--last", "up")
    assert code == 1 and "no trace to rate yet" in err


def test_reextract_rewrites_only_changed(
    two: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    store = TraceStorage()
    stale = store.get(two[0])
    stale.reasoning_signals.categories = []
    stale.reasoning_signals.tool_sequence = ["Stale"]
    store.append([stale.model_copy(update={"rating": "up"})])
    lines = len(store.path.read_text().splitlines())
    code, out, _ = run(capsys, "reextract", "--dry-run")
    assert code == 0 and out == "2 traces, 1 would change\n"
    assert len(store.path.read_text().splitlines()) == lines
    assert run(capsys, "reextract")[1] == "2 traces, 1 updated\n"
    fresh = store.get(two[0])
    assert fresh.reasoning_signals.tool_sequence == ["Read"] and fresh.rating == "up"
    assert run(capsys, "reextract")[1] == "2 traces, 0 updated\n"


def test_stats_and_show(two: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    run(capsys, "rate", two[0], "down", "--note", "wrong file")
    code, out, _ = run(capsys, "stats")
    assert code == 0
    assert "traces: 2" in out and "by source: manual 2 (100%)" in out
    assert "ratings: up 0, down 1, unrated 1" in out
    assert "quality gates: 0 of 2 pass (0%)" in out and "short_answer 2" in out
    assert "tools per trace: mean 0.5, median 0.5, max 1 (seed target avg >= 4: below)" in out
    stats = json.loads(run(capsys, "stats", "--json")[1])
    assert stats["by_depth"] == {"minimal": 2} and stats["gates_excluded_by"]["trivial"] == 1
    code, out, _ = run(capsys, "show", two[0])
    assert "categories: file_exploration" in out and "rating: down (wrong file)" in out
    assert "quality gates: excluded: short_answer (" in out and "thumbs_down" in out


def test_stats_with_a_gates_file(
    two: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = tmp_path / "gates.toml"
    cfg.write_text("min_answer_words = 1\nmin_steps = 1\n")
    assert "quality gates: 2 of 2 pass (100%)" in run(capsys, "stats", "--gates", str(cfg))[1]
    cfg.write_text("min_answer_words = 'many'\n")
    code, _, err = run(capsys, "stats", "--gates", str(cfg))
    assert code == 1 and err.startswith("bc-capture: error: gate settings") and err[-1] == "\n"


# --- the slash command, installed with the hooks -----------------------------------------


def bc(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BC), *args], env=env, capture_output=True, text=True, timeout=60, check=False
    )


@pytest.mark.slow
def test_install_writes_and_uninstall_removes_the_command(tmp_path: Path) -> None:
    project = tmp_path / "p"
    project.mkdir()
    env = {**os.environ, "BC_HOME": str(tmp_path / "bc data"), "HOME": str(tmp_path / "home")}
    out = bc("install", "--project-dir", str(project), env=env)
    command = project / ".claude" / "commands" / "bc-rate.md"
    assert out.returncode == 0 and f"installed the /bc-rate slash command: {command}" in out.stdout
    text = command.read_text()
    assert COMMAND_MARKER in text and "'/" in text and "/bc data' " in text  # quoted BC_HOME
    assert bc("install", "--project-dir", str(project), env=env).stdout.count("slash") == 0
    out = bc("uninstall", "--project-dir", str(project), env=env)
    assert "removed the /bc-rate slash command" in out.stdout and not command.exists()
    # a command file of the same name that is not ours is never overwritten or removed
    command.write_text("my own command\n")
    out = bc("install", "--project-dir", str(project), env=env)
    assert out.returncode == 1 and "is not claude-bc's: left unchanged" in out.stderr
    bc("uninstall", "--project-dir", str(project), env=env)
    assert command.read_text() == "my own command\n"
    user = bc("install", "--scope", "user", "--project-dir", str(project), env=env)
    assert (tmp_path / "home" / ".claude" / "commands" / "bc-rate.md").exists(), user.stderr


def test_shipped_command_files_match_what_install_writes() -> None:
    """The plugin's command and this repository's own differ from ``command_text`` only in
    how they name the interpreter."""
    written = command_text(Path("/PY"), None)
    plugin = (REPO / "commands" / "bc-rate.md").read_text()
    repo = (REPO / ".claude" / "commands" / "bc-rate.md").read_text()
    assert repo == written.replace("/PY", ".venv/bin/python")
    body = written.split(COMMAND_MARKER)[1].replace(
        "/PY", '"${CLAUDE_PLUGIN_ROOT}/.venv/bin/python"'
    )
    assert plugin.endswith(body)
    text = plugin
    assert '/.venv/bin/python" -m claude_bc.capture.cli rate --last --args-from-hook`' in text
    # the user's words never reach a shell: no placeholder in any command file
    assert "$ARGUMENTS" not in text and "$ARGUMENTS" not in written and "<<" not in written


def wait_for(predicate, timeout: float = 30) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError("timed out")


@pytest.mark.e2e
def test_slash_command_rates_the_last_turn_from_inside_claude_code(tmp_path: Path) -> None:
    project = make_basic_project(tmp_path / "project")
    home, bc_home = tmp_path / "home", tmp_path / "bc data"
    env = {**os.environ, "BC_HOME": str(bc_home), "HOME": str(home)}
    assert bc("install", "--project-dir", str(project), env=env).returncode == 0
    store = TraceStorage(bc_home / "traces")
    play_basic(project, home, bc_home)
    wait_for(lambda: store.count() == 1)
    (turn,) = store.load_traces()

    # The arguments never reach a shell (they come from the hook's spool): none of this runs.
    note = 'it\'s "wrong"; touch pwned $(touch pwned2) && echo `touch pwned4` | tee pwned3 \\'
    reply = {"prompt": "x", "turns": [{"content": [{"type": "text", "text": "Rated."}]}]}
    with FakeAnthropic(reply, cwd=str(project), log_path=tmp_path / "requests.jsonl") as api:
        rated_run = run_claude(
            f"/bc-rate down {note}",
            project_dir=project,
            home_dir=home,
            base_url=api.base_url,
            # no bypass: the command's allowed-tools must be what lets the rating run
            extra_args=["--permission-mode", "default"],
            extra_env={"BC_HOME": str(bc_home)},
        )
    assert rated_run.returncode == 0, rated_run.stderr
    rated = store.get(turn.trace_id)
    assert rated.rating == "down" and rated.rating_note == note
    assert not list(project.glob("pwned*"))  # the note stayed text, never ran
    sent = (tmp_path / "requests.jsonl").read_text()
    assert f"claude-bc: rated down: {turn.trace_id[:8]}" in sent  # what the model was shown
    # the /bc-rate turn is captured too, and the quality gates leave it out
    wait_for(lambda: store.count() == 2)
    meta = next(t for t in store.load_traces() if t.trace_id != turn.trace_id)
    assert "rating_command" in gate(meta)
    assert store.get(turn.trace_id).rating == "down"  # re-assembly kept the rating
