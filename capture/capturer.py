"""The library API: record a turn from Python code, into the same store.

Automatic capture (hooks, transcripts, proxy) is the main path; this is for scripts and
tests that want to record a turn by hand. It goes through the same assembler, so the
trace is redacted and gets its signals like any other (``sources`` is ``["manual"]``).

    >>> capturer = ClaudeCapturer()  # the store in $BC_HOME (or pass a TraceStorage)
    >>> capturer.start_trace("What's the difference between transformer 1 and 2?")
    >>> capturer.add_tool_call("Read", {"file_path": "schema.py"}, "...",
    ...                        reasoning="Read the schema")
    >>> trace = capturer.finish_trace("They differ in ...")
    >>> capturer.save(trace)
    >>> [c.tool for c in trace.tool_calls], trace.sources
    (['Read'], ['manual'])
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterable, Sequence
from typing import Any

from claude_bc.capture.errors import BCError
from claude_bc.capture.schema import ClaudeTrace
from claude_bc.capture.store import TraceStorage
from claude_bc.capture.turns import CallDraft, TurnDraft, to_trace


class ClaudeCapturer:
    def __init__(self, storage: TraceStorage | None = None) -> None:
        self.storage = storage or TraceStorage()
        self._turn: TurnDraft | None = None

    def start_trace(self, prompt: str) -> None:
        self._turn = TurnDraft(
            source="manual", prompt=prompt, prompt_id=str(uuid.uuid4()), started_at=time.time()
        )

    def add_tool_call(
        self,
        tool: str,
        args: dict[str, Any],
        output: str,
        reasoning: str = "",
        success: bool = True,
        error: str | None = None,
    ) -> None:
        turn = self._require()
        n = len(turn.calls)
        turn.calls[f"manual_{n}"] = CallDraft(
            tool_use_id=f"manual_{n}",
            tool=tool,
            args=args,
            output=output,
            reasoning=reasoning,
            success=success,
            error=error,
            batch=n,
            index=0,
            started_at=time.time(),
        )

    def finish_trace(self, claude_response: str) -> ClaudeTrace:
        turn = self._require()
        turn.response, turn.complete, turn.ended_at = claude_response, True, time.time()
        self._turn = None
        return to_trace(turn)

    def save(self, trace: ClaudeTrace) -> None:
        self.storage.append([trace])

    def get_trace_count(self) -> int:
        return self.storage.count()

    def _require(self) -> TurnDraft:
        if self._turn is None:
            raise BCError("call start_trace(prompt) first")
        return self._turn


def quick_capture(
    prompt: str,
    claude_response: str,
    tool_calls: Iterable[Sequence[Any]] = (),
    storage: TraceStorage | None = None,
) -> ClaudeTrace:
    """Record one turn in one call; ``tool_calls`` are ``(tool, args, output[, reasoning])``."""
    capturer = ClaudeCapturer(storage)
    capturer.start_trace(prompt)
    for call in tool_calls:
        tool, args, output, *rest = call
        capturer.add_tool_call(tool, args, output, reasoning=rest[0] if rest else "")
    trace = capturer.finish_trace(claude_response)
    capturer.save(trace)
    return trace
