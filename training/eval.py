"""Stage 5: evaluation — did base → SFT → RL actually move, on prompts no model trained on?

Run: ``bc-train eval --model base=embedded:smollm2 --model sft=DIR --model rl=DIR
[--dataset DIR] [--split eval] [--out DIR]``.

Every model plays every held-out prompt greedily as a multi-step episode against the
replay environment of its trace (:mod:`training.policy`); each episode is compared with
Claude's workflow. Per model:

* the behavioural reward and each of its five components (means);
* tool alignment as trajectory metrics: *exact* (the same calls, same arguments, same
  order), *in-order* (Claude's calls appear in order, extra calls allowed), *any-order*
  (Claude's calls all appear), and tool-call *precision* / *recall* (a call is its tool
  name + equivalent arguments);
* the constraint detection rate: the share of Claude's constraints the model also stated;
* the seed's gates: reward > 0.80, tool alignment (the reward's tool component) > 85%,
  constraint detection > 75%.

Writes ``results.json``, ``episodes.jsonl`` (every episode's scores, for audit),
``report.md`` and ``report.html`` (the table, the gates, and two plots: ``components.png``
and ``gates.png``) into ``--out``, and prints the table.
"""

from __future__ import annotations

import html
import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rapidfuzz.distance import Indel

from capture.redact import redact
from capture.schema import ClaudeTrace
from capture.signals import extract_signals
from training.policy import Sampling, Task, load_policy, run_episodes, tasks_from_split
from training.replay import canonical_args
from training.reward import COMPONENTS, MATCH_FLOOR, BehavioralRewardModel, norm_text

GATES = {"reward": 0.80, "tool_alignment": 0.85, "constraint_detection": 0.75}
METRICS = (
    "reward",
    *COMPONENTS,
    "tool_alignment",
    "exact_match",
    "in_order_match",
    "any_order_match",
    "tool_precision",
    "tool_recall",
    "constraint_detection",
    "unparsable",
)


# --- trajectory metrics ------------------------------------------------------------------------


def call_keys(trace: ClaudeTrace) -> list[str]:
    """Each main-agent call as ``tool + equivalent arguments``."""
    return [
        f"{c.tool}:{canonical_args(c.args, trace.cwd)}" for c in trace.tool_calls if not c.agent_id
    ]


def is_subsequence(want: Sequence[str], got: Sequence[str]) -> bool:
    """Do ``want``'s items appear in ``got`` in order (others may come between)?

    >>> is_subsequence(["a", "c"], ["a", "b", "c"]), is_subsequence(["c", "a"], ["a", "c"])
    (True, False)
    """
    it = iter(got)
    return all(any(x == y for y in it) for x in want)


def trajectory_scores(got: Sequence[str], want: Sequence[str]) -> dict[str, float]:
    """Exact / in-order / any-order match and call precision / recall (multisets).

    >>> s = trajectory_scores(["Read:a", "Grep:b", "Edit:c"], ["Read:a", "Edit:c"])
    >>> s["exact_match"], s["in_order_match"], s["any_order_match"], s["tool_precision"]
    (0.0, 1.0, 1.0, 0.6666666666666666)
    >>> trajectory_scores([], [])["tool_recall"]
    1.0
    """
    common = sum((Counter(got) & Counter(want)).values())
    return {
        "exact_match": float(list(got) == list(want)),
        "in_order_match": float(is_subsequence(want, got)),
        "any_order_match": float(not (Counter(want) - Counter(got))),
        "tool_precision": common / len(got) if got else float(not want),
        "tool_recall": common / len(want) if want else 1.0,
    }


def constraints_found(got: Sequence[str], want: Sequence[str]) -> int:
    """How many of Claude's constraints the model also stated (fuzzy, ``MATCH_FLOOR``).

    >>> constraints_found(["keep the public api stable"], ["Keep the public API stable.", "no net"])
    1
    """
    mine = [norm_text(g) for g in got]
    return sum(
        any(Indel.normalized_similarity(norm_text(w), g) >= MATCH_FLOOR for g in mine) for w in want
    )


# --- one model ---------------------------------------------------------------------------------


@dataclass
class ModelResult:
    name: str
    spec: str
    metrics: dict[str, float | None] = field(default_factory=dict)
    episodes: list[dict[str, Any]] = field(default_factory=list)

    def gates(self) -> dict[str, bool | None]:
        return {
            k: None if self.metrics.get(k) is None else bool(self.metrics[k] > v)  # type: ignore[operator]
            for k, v in GATES.items()
        }


def score_episodes(
    name: str, spec: str, tasks: list[Task], traces: list[ClaudeTrace | None]
) -> ModelResult:
    """Every metric of one model from its episodes' traces (``None``: unparsable)."""
    reward = BehavioralRewardModel([t.reference for t in tasks], audit_top=0)
    result = ModelResult(name, spec)
    found = stated = 0
    for task, trace in zip(tasks, traces, strict=True):
        scored = reward.score_trace(trace, task.trace_id)
        want = task.reference
        traj = trajectory_scores(call_keys(trace) if trace else [], call_keys(want))
        want_c = reward.reference_features(task.trace_id).constraints
        got_c = extract_signals(trace).constraints_detected if trace else []
        found += constraints_found(got_c, want_c)
        stated += len(want_c)
        result.episodes.append(
            {
                "trace_id": task.trace_id,
                "parsed": scored.parsed,
                **scored.breakdown(),
                **traj,
                "calls": [c.tool for c in trace.tool_calls] if trace else None,
                "answer": trace.claude_response if trace else None,
            }
        )
    n = len(result.episodes)
    means: dict[str, float | None] = {
        k: sum(float(e[k]) for e in result.episodes) / n
        for k in (
            "total",
            *COMPONENTS,
            "exact_match",
            "in_order_match",
            "any_order_match",
            "tool_precision",
            "tool_recall",
        )
    }
    means["reward"] = means.pop("total")
    means["tool_alignment"] = means["tools"]
    means["constraint_detection"] = found / stated if stated else None
    means["unparsable"] = sum(not e["parsed"] for e in result.episodes) / n
    result.metrics = {k: means[k] for k in METRICS}
    return result


def evaluate(name: str, spec: str, tasks: list[Task], sample: Sampling, device: str) -> ModelResult:
    policy = load_policy(spec, device)
    episodes = run_episodes(policy.model, policy.tokenizer, tasks, sample)
    return score_episodes(name, spec, tasks, [e.trace for e in episodes])


# --- the report --------------------------------------------------------------------------------


def fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:+.3f}" if value < 0 else f"{value:.3f}"


def table(results: list[ModelResult]) -> list[list[str]]:
    """Rows: one per metric, a column per model, then the gate."""
    head = ["metric", *(r.name for r in results), "gate"]
    rows = [head]
    for metric in METRICS:
        gate = f"> {GATES[metric]:.2f}" if metric in GATES else ""
        rows.append([metric, *(fmt(r.metrics.get(metric)) for r in results), gate])
    rows.append(["gates passed", *(_passed(r) for r in results), ""])
    return rows


def _passed(r: ModelResult) -> str:
    gates = r.gates()
    return f"{sum(bool(v) for v in gates.values())}/{len(gates)}"


def text_table(rows: list[list[str]]) -> str:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join(
        "  ".join(
            c.ljust(w) if i == 0 else c.rjust(w)
            for i, (c, w) in enumerate(zip(row, widths, strict=True))
        )
        for row in rows
    )


def plots(results: list[ModelResult], out: Path) -> list[str]:
    """``components.png`` (reward and components per model) and ``gates.png``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = ["reward", *COMPONENTS]
    width = 0.8 / len(results)
    fig, ax = plt.subplots(figsize=(9, 4))
    for i, r in enumerate(results):
        xs = [j + i * width for j in range(len(names))]
        ax.bar(xs, [r.metrics[n] or 0.0 for n in names], width, label=r.name)
    ax.set_xticks([j + 0.4 - width / 2 for j in range(len(names))], names, rotation=15)
    ax.axhline(GATES["reward"], color="gray", linestyle="--", linewidth=1)
    ax.set_ylim(-1.05, 1.05)
    ax.set_title("Behavioural reward and its components (held-out)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(out / "components.png", dpi=100)
    plt.close(fig)

    fig, axes = plt.subplots(1, len(GATES), figsize=(9, 3))
    for ax, (metric, threshold) in zip(axes, GATES.items(), strict=True):
        values = [r.metrics.get(metric) or 0.0 for r in results]
        colors = ["tab:green" if v > threshold else "tab:red" for v in values]
        ax.bar([r.name for r in results], values, color=colors)
        ax.axhline(threshold, color="black", linestyle="--", linewidth=1)
        ax.set_title(f"{metric} > {threshold:.2f}", fontsize=9)
        ax.set_ylim(min(0.0, *values) - 0.05, 1.05)
    fig.tight_layout()
    fig.savefig(out / "gates.png", dpi=100)
    plt.close(fig)
    return ["components.png", "gates.png"]


def markdown(rows: list[list[str]], images: list[str], n: int, split: str) -> str:
    lines = [
        "# bc-train eval",
        "",
        f"{n} held-out prompts (`{split}` split), greedy multi-step episodes against the "
        "replay environment, compared with Claude's workflow.",
        "",
        "| " + " | ".join(rows[0]) + " |",
        "|" + "|".join(["---"] + ["---:"] * (len(rows[0]) - 1)) + "|",
        *("| " + " | ".join(r) + " |" for r in rows[1:]),
        "",
        *(f"![{img}]({img})" for img in images),
        "",
    ]
    return "\n".join(lines)


def html_report(rows: list[list[str]], images: list[str], n: int, split: str) -> str:
    head = "".join(f"<th>{html.escape(c)}</th>" for c in rows[0])
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in r) + "</tr>" for r in rows[1:]
    )
    imgs = "".join(f'<p><img src="{html.escape(i)}" alt="{html.escape(i)}"></p>' for i in images)
    return (
        "<!doctype html><meta charset=utf-8><title>bc-train eval</title>"
        "<style>body{font-family:sans-serif;margin:2em}td,th{padding:4px 10px;"
        "border-bottom:1px solid #ddd;text-align:right}td:first-child,th:first-child"
        "{text-align:left}</style>"
        f"<h1>bc-train eval</h1><p>{n} held-out prompts (<code>{html.escape(split)}</code> "
        "split), greedy multi-step episodes against the replay environment.</p>"
        f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>{imgs}"
    )


def write_report(results: list[ModelResult], out: Path, n: int, split: str) -> str:
    out.mkdir(parents=True, exist_ok=True)
    rows = table(results)
    images = plots(results, out)
    (out / "report.md").write_text(markdown(rows, images, n, split))
    (out / "report.html").write_text(html_report(rows, images, n, split))
    (out / "results.json").write_text(
        json.dumps(
            [
                {"name": r.name, "model": r.spec, "metrics": r.metrics, "gates": r.gates()}
                for r in results
            ],
            indent=2,
        )
        + "\n"
    )
    with (out / "episodes.jsonl").open("w") as fh:
        for r in results:
            for e in r.episodes:
                record = redact({"model": r.name, **e})  # model output, as any capture
                fh.write(json.dumps(record, ensure_ascii=False) + "\n")
    return text_table(rows)


def run(
    models: list[tuple[str, str]],
    dataset: Path,
    split: str,
    out: Path,
    *,
    limit: int | None = None,
    sample: Sampling | None = None,
    device: str = "auto",
) -> tuple[list[ModelResult], str]:
    """Evaluate each ``(name, spec)`` on the split; returns the results and the table."""
    from capture.errors import BCError

    tasks = tasks_from_split(dataset, split, limit)
    if not tasks:
        raise BCError(f"{dataset}/{split}.jsonl has no held-out samples")
    results = [evaluate(name, spec, tasks, sample or Sampling(), device) for name, spec in models]
    return results, write_report(results, out, len(tasks), split)
