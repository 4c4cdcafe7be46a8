"""Reasoning signals of a trace: pure functions, run at assembly.

This module computes the structural signals (tool sequence, depth, terminal use,
workflow shape, reasoning chain). The text-cue signals (constraints, pruning,
self-correction, explicit plan) are extracted in ``capture.extract`` once it exists;
until then they stay empty rather than guessed.
"""

from __future__ import annotations

import re

from capture.schema import ClaudeTrace, ExplorationDepth, ReasoningSignals, WorkflowType

TERMINAL_TOOLS = frozenset({"Bash", "BashOutput", "KillShell", "PowerShell"})
EXPLORE_TOOLS = frozenset({"Read", "Grep", "Glob", "LS", "WebFetch", "WebSearch", "NotebookRead"})
_SENTENCE = re.compile(r"(?<=[.!?])\s+")


def depth_of(steps: int) -> ExplorationDepth:
    """minimal 1-2 steps, moderate 3-5, thorough 6-9, exhaustive 10+.

    >>> depth_of(4).value
    'moderate'
    """
    if steps >= 10:
        return ExplorationDepth.EXHAUSTIVE
    if steps >= 6:
        return ExplorationDepth.THOROUGH
    if steps >= 3:
        return ExplorationDepth.MODERATE
    return ExplorationDepth.MINIMAL


def workflow_of(trace: ClaudeTrace) -> WorkflowType:
    calls = [c for c in trace.tool_calls if not c.agent_id]
    per_batch: dict[int, int] = {}
    for c in calls:
        if c.batch is not None:
            per_batch[c.batch] = per_batch.get(c.batch, 0) + 1
    if any(n > 1 for n in per_batch.values()):  # several tool_use blocks in one message
        return WorkflowType.PARALLEL
    # a failed call followed by another call of the same tool: try, fail, adjust, retry
    for before, after in zip(calls, calls[1:], strict=False):
        if not before.success and after.tool == before.tool:
            return WorkflowType.ITERATIVE
    explored = 0
    for c in calls:
        if c.tool not in EXPLORE_TOOLS:
            break
        explored += 1
    return WorkflowType.EXPLORATORY if explored >= 3 else WorkflowType.LINEAR


def reasoning_chain(trace: ClaudeTrace) -> list[str]:
    texts = [c.reasoning for c in trace.tool_calls if not c.agent_id and c.reasoning.strip()]
    return [s.strip() for t in texts for s in _SENTENCE.split(t.strip()) if s.strip()]


def extract_signals(trace: ClaudeTrace) -> ReasoningSignals:
    main = [c for c in trace.tool_calls if not c.agent_id]
    chain = reasoning_chain(trace)
    steps = len(main) + (1 if trace.claude_response.strip() else 0)
    return ReasoningSignals(
        tool_sequence=[c.tool for c in main],
        reasoning_steps=steps,
        exploration_depth=depth_of(len(main)),
        used_terminal=any(c.tool in TERMINAL_TOOLS for c in trace.tool_calls),
        multi_step_reasoning=len(main) >= 2 or len(chain) >= 2,
        workflow_type=workflow_of(trace),
        reasoning_chain=chain,
    )
