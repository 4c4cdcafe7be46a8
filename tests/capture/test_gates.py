"""Quality gates: the exclusions, their settings file, and the report."""

from __future__ import annotations

from pathlib import Path

import pytest

from claude_bc.capture.errors import BCError
from claude_bc.capture.gates import GateConfig, gate, gate_report, load_gate_config
from claude_bc.capture.schema import ClaudeTrace, ToolCall
from claude_bc.capture.signals import extract_signals

ANSWER = " ".join(["word"] * 60)


def make(
    response: str = ANSWER,
    calls: int = 2,
    complete: bool = True,
    rating: str | None = None,
    prompt: str = "fix the login bug",
    last_ok: bool = True,
) -> ClaudeTrace:
    tool_calls = [ToolCall(tool="Read", args={"file_path": f"f{i}"}) for i in range(calls)]
    if tool_calls and not last_ok:
        tool_calls[-1] = ToolCall(tool="Bash", success=False, error="Exit code 1")
    t = ClaudeTrace(
        trace_id="t",
        user_prompt=prompt,
        tool_calls=tool_calls,
        claude_response=response,
        complete=complete,
        rating=rating,  # type: ignore[arg-type]
    )
    t.reasoning_signals = extract_signals(t)
    return t


def test_a_good_trace_passes() -> None:
    assert gate(make()) == []


@pytest.mark.parametrize(
    ("trace", "reason"),
    [
        (make(complete=False), "incomplete"),
        (make(response="API Error: 529 overloaded " + ANSWER), "error"),
        (make(response="", last_ok=False), "error"),
        (make(response="Done, it works now."), "short_answer"),
        (make(rating="down"), "thumbs_down"),
        (make(calls=0), "trivial"),
        (make(prompt="/bc-rate up nice"), "rating_command"),
        (make().model_copy(update={"served_by": "local"}), "served_locally"),
    ],
)
def test_each_seed_gate(trace: ClaudeTrace, reason: str) -> None:
    assert reason in gate(trace)


def test_a_turn_anthropic_answered_passes() -> None:
    assert gate(make().model_copy(update={"served_by": "anthropic"})) == []


def test_a_recovered_failure_is_not_an_error() -> None:
    t = make()
    t.tool_calls.insert(0, ToolCall(tool="Bash", success=False, error="Exit code 1"))
    assert gate(t) == []


def test_gates_are_configurable(tmp_path: Path) -> None:
    short = make(response="Done, it works now.", rating="down")
    loose = GateConfig(min_answer_words=3, exclude_thumbs_down=False)
    assert gate(short, loose) == []
    assert gate(make(), GateConfig(require_thumbs_up=True)) == ["not_thumbs_up"]
    toml = tmp_path / "gates.toml"
    toml.write_text("min_answer_words = 3\nexclude_thumbs_down = false\n")
    assert load_gate_config(toml) == loose
    js = tmp_path / "gates.json"
    js.write_text('{"min_steps": 0}')
    assert load_gate_config(js).min_steps == 0


def test_default_settings_file_in_bc_home(bc_home: Path) -> None:
    assert load_gate_config() == GateConfig()
    bc_home.mkdir(parents=True)
    (bc_home / "gates.toml").write_text("require_thumbs_up = true\n")
    assert load_gate_config().require_thumbs_up


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        ("g.toml", "min_answer_words = \n", "are not valid TOML"),
        ("g.json", "{", "are not valid JSON"),
        ("g.toml", "min_answer_word = 3\n", "min_answer_word: Extra inputs are not permitted"),
        ("g.toml", "min_answer_words = -1\n", "min_answer_words: Input should be greater"),
        ("missing.toml", None, "cannot read gate settings"),
    ],
)
def test_bad_settings_are_one_clear_error(
    tmp_path: Path, name: str, text: str | None, message: str
) -> None:
    path = tmp_path / name
    if text is not None:
        path.write_text(text)
    with pytest.raises(BCError, match=message):
        load_gate_config(path)


def test_report_counts_reasons() -> None:
    report = gate_report([make(), make(calls=0), make(complete=False, rating="down")])
    assert (report.total, report.passed) == (3, 1)
    assert report.reasons == {"trivial": 1, "incomplete": 1, "thumbs_down": 1}
    assert round(report.pass_rate, 2) == 0.33
