"""The trace schema: ``ClaudeTrace``, ``ToolCall`` and ``ReasoningSignals``.

The core fields (``user_prompt``, ``tool_calls`` with ``tool``, ``args``, ``output``,
``reasoning``; ``claude_response``; ``reasoning_signals``) are what a training sample
needs; the rest is what the real Claude Code payloads give (ids, timings, failures,
subagents, provenance).

Every stored record carries ``schema_version``. ``upgrade()`` runs the ordered
``MIGRATIONS`` so a record written by any earlier version loads: never edit a
migration once released, append a new one and bump ``SCHEMA_VERSION``.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

SCHEMA_VERSION = 2

# trace ids are uuid5 in this namespace, so every source derives the same id
TRACE_NAMESPACE = uuid.UUID("6b1f3c52-4a8e-5d0b-9c47-2f1e8a7d3b60")

CaptureSource = Literal["hooks", "transcript", "proxy", "manual"]

# What became of a tool call. ``unknown``: no source saw its result (the session died
# mid-call, or the capture missed it): never counted as a success.
CallOutcome = Literal["success", "error", "denied", "interrupted", "unknown"]


class ExplorationDepth(StrEnum):
    MINIMAL = "minimal"  # 1-2 steps
    MODERATE = "moderate"  # 3-5
    THOROUGH = "thorough"  # 6-9
    EXHAUSTIVE = "exhaustive"  # 10+


class WorkflowType(StrEnum):
    LINEAR = "linear"
    EXPLORATORY = "exploratory"
    PARALLEL = "parallel"
    ITERATIVE = "iterative"


class Category(StrEnum):
    """What a trace is about; a trace may have several (or none)."""

    DATABASE_QUERIES = "database_queries"
    CODE_REFACTORING = "code_refactoring"
    DEBUGGING = "debugging"
    FILE_EXPLORATION = "file_exploration"
    SYSTEM_COMMANDS = "system_commands"
    MULTI_TOOL_WORKFLOWS = "multi_tool_workflows"
    COMPLEX_REASONING = "complex_reasoning"


class _Model(BaseModel):
    # Unknown keys from newer writers are kept, not dropped: the store is append-only
    # and an older reader must not lose data when it rewrites a record.
    model_config = ConfigDict(extra="allow", populate_by_name=True)


class ToolCall(_Model):
    tool: str
    args: dict[str, Any] = Field(default_factory=dict)
    output: str = ""  # the text the model saw as the tool_result
    reasoning: str = ""  # assistant text emitted before this call in the same turn
    thinking: str = ""  # thinking emitted before this call
    tool_use_id: str | None = None
    success: bool = True  # the call ran and succeeded (False for every other outcome)
    # None when built by hand: derived from ``success``/``is_interrupt`` below
    outcome: CallOutcome | None = None
    error: str | None = None  # the error, denial or interrupt text the model saw
    is_interrupt: bool = False
    duration_ms: int | None = None
    started_at: datetime | None = None
    ended_at: datetime | None = None
    tool_response: Any = None  # the structured result Claude Code reports to hooks
    message_id: str | None = None  # API message that issued it (shared by parallel calls)
    batch: int | None = None  # n-th tool-using assistant message of its agent in the turn
    agent_id: str | None = None  # set for calls made inside a subagent
    agent_type: str | None = None
    parent_tool_use_id: str | None = None  # the Agent call that started that subagent

    @model_validator(mode="after")
    def _outcome_agrees(self) -> ToolCall:
        """``success`` and ``outcome`` say the same: an outcome given wins."""
        if self.outcome is None:
            self.outcome = (
                "success" if self.success else "interrupted" if self.is_interrupt else "error"
            )
        self.success = self.outcome == "success"
        self.is_interrupt = self.is_interrupt or self.outcome == "interrupted"
        return self


class TurnEvent(_Model):
    """Something that happened inside a turn that is neither a call nor the prompt: a
    background task's notification (``task_notification``), which re-invokes the model
    within the same turn, or the user interrupting it (``interrupt``)."""

    kind: str
    text: str = ""
    at: datetime | None = None
    tool_use_id: str | None = None  # the background call a notification reports on


class ReasoningSignals(_Model):
    tool_sequence: list[str] = Field(default_factory=list)
    reasoning_steps: int = 0
    exploration_depth: ExplorationDepth = ExplorationDepth.MINIMAL
    used_terminal: bool = False
    multi_step_reasoning: bool = False
    constraints_detected: list[str] = Field(default_factory=list)
    pruning_decisions: list[str] = Field(default_factory=list)
    self_corrections: list[str] = Field(default_factory=list)
    workflow_type: WorkflowType = WorkflowType.LINEAR
    explicit_plan: str | None = None
    reasoning_chain: list[str] = Field(default_factory=list)
    # derived from the trace like the signals above, so assembly and `bc-capture reextract`
    # recompute them together (optional and additive: older records load with [])
    categories: list[Category] = Field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json")


#: ``served_by`` of a turn Anthropic's API answered (the rollout proxy's name for it).
ANTHROPIC = "anthropic"


class ClaudeTrace(_Model):
    schema_version: int = SCHEMA_VERSION
    trace_id: str
    user_prompt: str  # what the user typed (a slash command as typed: "/review src/app.py")
    # A slash command or skill: its name ("/review") and the text the model received
    # in its place (the command file, arguments filled in).
    command: str | None = None
    prompt_expansion: str | None = None
    tool_calls: list[ToolCall] = Field(default_factory=list)
    claude_response: str = ""  # the turn's last answer
    final_thinking: str = ""  # thinking between the last call and that answer
    events: list[TurnEvent] = Field(default_factory=list)
    interrupted: bool = False  # the user interrupted the turn
    reasoning_signals: ReasoningSignals = Field(default_factory=ReasoningSignals)
    started_at: datetime | None = None
    ended_at: datetime | None = None
    session_id: str | None = None
    prompt_id: str | None = None
    cwd: str | None = None
    git_branch: str | None = None
    model: str | None = None
    claude_code_version: str | None = None
    permission_mode: str | None = None
    # The system prompt and tool schemas the model saw, stored once per session in
    # $BC_HOME/sessions/<session_id>.json (proxy capture; optional, so no migration).
    system_prompt_id: str | None = None
    tools_id: str | None = None
    sources: list[CaptureSource] = Field(default_factory=list)
    complete: bool = False  # the turn reached Stop / a final answer
    # Who answered, when the proxy saw it: "anthropic", or the local model the rollout sent
    # the session to (whose turns are not Claude's behaviour to clone). None: not known.
    served_by: str | None = None
    rating: Literal["up", "down"] | None = None
    rating_note: str | None = None

    @property
    def timestamp(self) -> datetime | None:  # the v0 records' name for the start time
        return self.started_at

    @property
    def model_prompt(self) -> str:
        """The user's turn as the model received it: a slash command as typed, then the
        text it expanded to (what the model acted on); else the prompt itself."""
        if self.prompt_expansion:
            return f"{self.user_prompt}\n\n{self.prompt_expansion}"
        return self.user_prompt

    @property
    def categories(self) -> list[Category]:
        """The trace's categories (kept in ``reasoning_signals``, where they are derived)."""
        return self.reasoning_signals.categories

    def record(self) -> dict[str, Any]:
        """The JSON-ready dict that the store writes (one JSONL line)."""
        return self.model_dump(mode="json")


def trace_id_for(session_id: str | None, prompt_id: str | None, prompt: str, started: str) -> str:
    """Stable id: every capture source derives the same id for the same user turn."""
    key = f"{session_id}\n{prompt_id}" if prompt_id else f"{session_id}\n{started}\n{prompt}"
    return str(uuid.uuid5(TRACE_NAMESPACE, key))


def now() -> datetime:
    return datetime.now(UTC)


# --- migrations -----------------------------------------------------------------------------


def _v0_to_v1(rec: dict[str, Any]) -> dict[str, Any]:
    """v0 is the first manual-capture record (no schema_version).

    It had ``timestamp`` (ISO string), ``user_rating``/``rating`` as text or a number,
    and ``reasoning_signals.exploration_depth`` as the enum value.
    """
    rec = dict(rec)
    if "timestamp" in rec and "started_at" not in rec:
        rec["started_at"] = rec.pop("timestamp")
    rating = rec.pop("user_rating", rec.get("rating"))
    if isinstance(rating, int | float):
        rating = "up" if rating > 0 else "down" if rating < 0 else None
    elif isinstance(rating, str):
        rating = {
            "up": "up",
            "good": "up",
            "thumbs_up": "up",
            "down": "down",
            "bad": "down",
            "thumbs_down": "down",
        }.get(rating.lower())
    rec["rating"] = rating
    rec.setdefault("sources", ["manual"])
    rec.setdefault("trace_id", str(uuid.uuid4()))
    rec.setdefault("complete", bool(rec.get("claude_response")))
    return rec


def _v1_to_v2(rec: dict[str, Any]) -> dict[str, Any]:
    """v2 adds call outcomes, slash-command expansions, thinking before the answer and
    turn events. A v1 call's outcome follows its ``success`` (v1 stored a call with no
    result seen as a success: that cannot be told apart now)."""
    rec = dict(rec)
    calls = rec.get("tool_calls")
    if isinstance(calls, list):
        rec["tool_calls"] = [_v2_call(c) if isinstance(c, dict) else c for c in calls]
    return rec


def _v2_call(call: dict[str, Any]) -> dict[str, Any]:
    if "outcome" in call:
        return call
    ok, interrupted = call.get("success", True), call.get("is_interrupt", False)
    return {**call, "outcome": "success" if ok else "interrupted" if interrupted else "error"}


MIGRATIONS: list[Callable[[dict[str, Any]], dict[str, Any]]] = [_v0_to_v1, _v1_to_v2]
assert len(MIGRATIONS) == SCHEMA_VERSION


class SchemaError(ValueError):
    """A record that cannot be upgraded to the current schema."""


def upgrade(rec: dict[str, Any]) -> dict[str, Any]:
    """Bring a stored record of any earlier schema version up to ``SCHEMA_VERSION``."""
    version = rec.get("schema_version", 0)
    if not isinstance(version, int) or version < 0:
        raise SchemaError(f"bad schema_version {version!r}")
    if version > SCHEMA_VERSION:
        raise SchemaError(
            f"schema_version {version} is newer than this claude-bc ({SCHEMA_VERSION}): upgrade it"
        )
    for migrate in MIGRATIONS[version:]:
        rec = migrate(rec)
    rec["schema_version"] = SCHEMA_VERSION
    return rec


def load_trace(rec: dict[str, Any]) -> ClaudeTrace:
    return ClaudeTrace.model_validate(upgrade(rec))
