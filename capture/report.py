"""What the store holds, in numbers (``bc-capture stats``) and per trace (``bc-capture show``).

``collect_stats(traces, gates)`` counts traces by source, category, depth and workflow,
tools per trace (the target is an average of 4 or more per sample), how often each text
signal occurs, ratings, and the quality-gate pass rate with the reasons traces were excluded.
"""

from __future__ import annotations

import statistics
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any

from claude_bc.capture.gates import REASONS, GateConfig, gate, gate_report
from claude_bc.capture.schema import Category, ClaudeTrace, ExplorationDepth, WorkflowType

SEED_TOOLS_PER_TRACE = 4.0


@dataclass
class Stats:
    traces: int = 0
    by_source: dict[str, int] = field(default_factory=dict)
    by_category: dict[str, int] = field(default_factory=dict)
    uncategorised: int = 0
    by_depth: dict[str, int] = field(default_factory=dict)
    by_workflow: dict[str, int] = field(default_factory=dict)
    tools_mean: float = 0.0
    tools_median: float = 0.0
    tools_max: int = 0
    with_signal: dict[str, int] = field(default_factory=dict)
    ratings: dict[str, int] = field(default_factory=dict)
    gates_passed: int = 0
    gates_excluded_by: dict[str, int] = field(default_factory=dict)
    passing_tools_mean: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _ordered(counts: Counter[str], order: list[str]) -> dict[str, int]:
    return {k: counts[k] for k in order if counts[k]} | {
        k: v for k, v in sorted(counts.items()) if k not in order
    }


def _mean(values: list[int]) -> float:
    return round(statistics.fmean(values), 2) if values else 0.0


def collect_stats(traces: list[ClaudeTrace], gates: GateConfig | None = None) -> Stats:
    tools = [len(t.tool_calls) for t in traces]
    passing = [t for t in traces if not gate(t, gates)]
    report = gate_report(traces, gates)
    signals = Counter[str]()
    for t in traces:
        s = t.reasoning_signals
        signals.update(
            name
            for name, present in (
                ("constraints", s.constraints_detected),
                ("pruning", s.pruning_decisions),
                ("self_corrections", s.self_corrections),
                ("explicit_plan", s.explicit_plan),
            )
            if present
        )
    return Stats(
        traces=len(traces),
        by_source=dict(sorted(Counter(src for t in traces for src in t.sources).items())),
        by_category=_ordered(
            Counter(c.value for t in traces for c in t.reasoning_signals.categories),
            [c.value for c in Category],
        ),
        uncategorised=sum(1 for t in traces if not t.reasoning_signals.categories),
        by_depth=_ordered(
            Counter(t.reasoning_signals.exploration_depth.value for t in traces),
            [d.value for d in ExplorationDepth],
        ),
        by_workflow=_ordered(
            Counter(t.reasoning_signals.workflow_type.value for t in traces),
            [w.value for w in WorkflowType],
        ),
        tools_mean=_mean(tools),
        tools_median=float(statistics.median(tools)) if tools else 0.0,
        tools_max=max(tools, default=0),
        with_signal=_ordered(
            signals, ["constraints", "pruning", "self_corrections", "explicit_plan"]
        ),
        ratings={
            "up": sum(t.rating == "up" for t in traces),
            "down": sum(t.rating == "down" for t in traces),
            "unrated": sum(t.rating is None for t in traces),
        },
        gates_passed=report.passed,
        gates_excluded_by=dict(report.reasons.most_common()),
        passing_tools_mean=_mean([len(t.tool_calls) for t in passing]),
    )


def _pct(n: int, total: int) -> str:
    return f"{100 * n / total:.0f}%" if total else "-"


def _counts(counts: dict[str, int], total: int) -> str:
    return ", ".join(f"{k} {v} ({_pct(v, total)})" for k, v in counts.items()) or "none"


def _seed_check(mean: float) -> str:
    verdict = "met" if mean >= SEED_TOOLS_PER_TRACE else "below"
    return f"seed target avg >= {SEED_TOOLS_PER_TRACE:g}: {verdict}"


def render_stats(s: Stats) -> str:
    n = s.traces
    if not n:
        return "traces: 0 (nothing captured yet)"
    excluded = ", ".join(f"{k} {v}" for k, v in s.gates_excluded_by.items()) or "nothing"
    return "\n".join(
        [
            f"traces: {n}",
            f"by source: {_counts(s.by_source, n)}",
            f"by category: {_counts(s.by_category, n)}; uncategorised {s.uncategorised}",
            f"exploration depth: {_counts(s.by_depth, n)}",
            f"workflow: {_counts(s.by_workflow, n)}",
            f"tools per trace: mean {s.tools_mean:g}, median {s.tools_median:g}, "
            f"max {s.tools_max} ({_seed_check(s.tools_mean)})",
            f"traces with signal: {_counts(s.with_signal, n)}",
            f"ratings: up {s.ratings['up']}, down {s.ratings['down']}, "
            f"unrated {s.ratings['unrated']}",
            f"quality gates: {s.gates_passed} of {n} pass ({_pct(s.gates_passed, n)}); "
            f"excluded by: {excluded}",
            f"passing traces: tools per trace mean {s.passing_tools_mean:g} "
            f"({_seed_check(s.passing_tools_mean)})",
        ]
    )


def signal_lines(trace: ClaudeTrace, gates: GateConfig | None = None) -> list[str]:
    """The signals, categories, rating and gate verdict of one trace, for ``show``."""
    s = trace.reasoning_signals
    out = [
        f"signals: {' > '.join(s.tool_sequence) or 'no tools'}; depth {s.exploration_depth.value}; "
        f"workflow {s.workflow_type.value}; {s.reasoning_steps} steps",
        f"categories: {', '.join(c.value for c in s.categories) or 'none'}",
    ]
    if s.explicit_plan:
        out.append(f"plan: {' '.join(s.explicit_plan.split())}")
    for label, items in (
        ("constraint", s.constraints_detected),
        ("pruned", s.pruning_decisions),
        ("self-correction", s.self_corrections),
    ):
        out += [f"{label}: {item}" for item in items]
    rating = trace.rating or "unrated"
    out.append(f"rating: {rating}" + (f" ({trace.rating_note})" if trace.rating_note else ""))
    reasons = gate(trace, gates)
    verdict = (
        "pass" if not reasons else "excluded: " + "; ".join(f"{r} ({REASONS[r]})" for r in reasons)
    )
    out.append(f"quality gates: {verdict}")
    return out
