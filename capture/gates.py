"""Quality gates: which traces are good enough to train on, and why the others are not.

The quality gates, each configurable: exclude errors and incomplete turns, answers under 50
words, thumbs-down ratings and trivial one-step answers (an answer with no tool call). The
dataset builder and ``bc-capture stats`` share them::

    from claude_bc.capture.gates import GateConfig, gate
    reasons = gate(trace, GateConfig())        # [] when the trace passes

Settings come from a TOML or JSON file (``load_gate_config(path)``; without a path,
``$BC_HOME/gates.toml`` when it exists), e.g.::

    min_answer_words = 30
    require_thumbs_up = true
"""

from __future__ import annotations

import json
import re
import tomllib
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from claude_bc.capture import paths
from claude_bc.capture.errors import BCError
from claude_bc.capture.schema import ANTHROPIC, ClaudeTrace

GATES_FILE = "gates.toml"

# What each reason code means (codes are stable: reports and datasets count them).
REASONS: dict[str, str] = {
    "incomplete": "the turn never reached a final answer",
    "error": "the turn ended in an error, was interrupted, or has a call with no result",
    "short_answer": "the final answer is shorter than min_answer_words",
    "thumbs_down": "rated down",
    "not_thumbs_up": "not rated up (require_thumbs_up)",
    "trivial": "fewer reasoning steps than min_steps (an answer with no tool call)",
    "rating_command": "a /bc-rate turn: rating bookkeeping, not work",
    "served_locally": "answered by the local model (rollout), not by Claude",
}

# Claude Code's own failure texts in place of an answer.
_ERROR_ANSWER = re.compile(
    r"^\s*(?:API Error\b|Error:|Request (?:was aborted|timed out)|\[Request interrupted"
    r"|Prompt is too long|Credit balance is too low|Invalid API key)",
    re.IGNORECASE,
)
_RATE_PROMPT = re.compile(r"^\s*(?:/bc-rate\b|/bc-capture:bc-rate\b|<command-name>/?bc-rate)")
_WORD = re.compile(r"\S+")


class GateConfig(BaseModel):
    """Which gates apply; the defaults are the gates a training sample must pass."""

    model_config = ConfigDict(extra="forbid")

    exclude_incomplete: bool = True
    exclude_errors: bool = True
    min_answer_words: int = Field(default=50, ge=0)
    exclude_thumbs_down: bool = True
    require_thumbs_up: bool = False
    min_steps: int = Field(default=2, ge=0)  # calls + the answer: 1 = answered with no tool
    exclude_rating_commands: bool = True


def answer_words(trace: ClaudeTrace) -> int:
    return len(_WORD.findall(trace.claude_response))


def is_error(trace: ClaudeTrace) -> bool:
    """The answer is Claude Code's error text, the user interrupted the turn or a call, a
    call's result was never seen (the session died), or the last call failed and nothing
    was answered after it. A failure Claude recovered from is not an error."""
    if _ERROR_ANSWER.match(trace.claude_response):
        return True
    if trace.interrupted or any(c.is_interrupt or c.outcome == "unknown" for c in trace.tool_calls):
        return True
    last = trace.tool_calls[-1] if trace.tool_calls else None
    return last is not None and not last.success and not trace.claude_response.strip()


def is_rating_command(trace: ClaudeTrace) -> bool:
    """The turn is a ``/bc-rate`` slash command (its prompt as the hooks or transcript saw it)."""
    return bool(_RATE_PROMPT.match(trace.user_prompt))


def gate(trace: ClaudeTrace, config: GateConfig | None = None) -> list[str]:
    """The reason codes (keys of ``REASONS``) for which ``trace`` is excluded; [] = it passes.

    >>> from claude_bc.capture.schema import ClaudeTrace
    >>> gate(ClaudeTrace(trace_id="x", user_prompt="hi", claude_response="Hello!", complete=True))
    ['short_answer', 'trivial']
    """
    cfg = config or GateConfig()
    reasons: list[str] = []
    if cfg.exclude_incomplete and not trace.complete:
        reasons.append("incomplete")
    if cfg.exclude_errors and is_error(trace):
        reasons.append("error")
    if answer_words(trace) < cfg.min_answer_words:
        reasons.append("short_answer")
    if cfg.exclude_thumbs_down and trace.rating == "down":
        reasons.append("thumbs_down")
    if cfg.require_thumbs_up and trace.rating != "up":
        reasons.append("not_thumbs_up")
    if trace.reasoning_signals.reasoning_steps < cfg.min_steps:
        reasons.append("trivial")
    if cfg.exclude_rating_commands and is_rating_command(trace):
        reasons.append("rating_command")
    if trace.served_by not in (None, ANTHROPIC):
        reasons.append("served_locally")  # not a setting: never clone our own model
    return reasons


def load_gate_config(path: Path | None = None) -> GateConfig:
    """Settings from ``path`` (TOML, or JSON by suffix); else ``$BC_HOME/gates.toml``; else
    the defaults. A bad file raises ``BCError`` naming it."""
    if path is None:
        default = paths.data_dir() / GATES_FILE
        if not default.is_file():
            return GateConfig()
        path = default
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise BCError(f"cannot read gate settings {path}: {exc.strerror or exc}") from None
    try:
        data = json.loads(raw) if path.suffix == ".json" else tomllib.loads(raw.decode())
    except (ValueError, UnicodeDecodeError) as exc:
        raise BCError(f"gate settings {path} are not valid {_kind(path)}: {exc}") from None
    try:
        return GateConfig.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "(top level)"
        raise BCError(f"gate settings {path}: {where}: {first['msg']}") from None


def _kind(path: Path) -> str:
    return "JSON" if path.suffix == ".json" else "TOML"


@dataclass
class GateReport:
    """How many traces pass, and how many each reason excludes."""

    total: int = 0
    passed: int = 0
    reasons: Counter[str] = field(default_factory=Counter)

    @property
    def pass_rate(self) -> float:
        return self.passed / self.total if self.total else 0.0


def gate_report(traces: Iterable[ClaudeTrace], config: GateConfig | None = None) -> GateReport:
    report = GateReport()
    for trace in traces:
        reasons = gate(trace, config)
        report.total += 1
        report.passed += not reasons
        report.reasons.update(reasons)
    return report
