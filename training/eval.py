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
* how the model acts, turn by turn: the *parsable-call rate* (of the turns at which Claude
  called tools, the share where the model wrote well-formed calls), *first-call accuracy*
  (the first call is Claude's, same tool and equivalent arguments), *exact sequence* (the
  same tool names in the same order), *argument match* (of Claude's calls, the share the
  model made at the same position with equivalent arguments: paths, patterns, commands);
* with ``--repos FILE`` (:mod:`training.live`) the episodes act in real copies of the
  held-out repositories (a call that matches Claude's gets his recorded output, any
  other runs for real) and *final state* is the share of tasks that ended with the
  repository exactly as Claude's run left it (tests fixed, value changed, nothing else);
* the gates a model must pass: reward > 0.80, tool alignment (the reward's tool component) > 85%,
  constraint detection > 75%.

Writes ``results.json``, ``episodes.jsonl`` (every episode's scores, for audit),
``report.md`` and ``report.html`` (the table, the gates, and two plots: ``components.png``
and ``gates.png``) into ``--out``, and prints the table.
"""

from __future__ import annotations

import html
import json
import tempfile
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rapidfuzz.distance import Indel

from claude_bc.capture.redact import redact
from claude_bc.capture.schema import ClaudeTrace
from claude_bc.capture.signals import extract_signals
from claude_bc.training.live import LiveEnv, Repo, final_state_matches, load_repos
from claude_bc.training.policy import (
    EpisodeResult,
    Sampling,
    Task,
    load_policy,
    run_episodes,
    tasks_from_split,
)
from claude_bc.training.replay import canonical_args
from claude_bc.training.reward import COMPONENTS, MATCH_FLOOR, BehavioralRewardModel, norm_text
from claude_bc.training.template import ParsedTurn

GATES = {"reward": 0.80, "tool_alignment": 0.85, "constraint_detection": 0.75}
METRICS = (
    "parsable_call_rate",
    "first_call",
    "exact_sequence",
    "argument_match",
    "final_state",
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


def call_turns(trace: ClaudeTrace) -> int:
    """How many assistant turns of a trace called tools (calls of one turn share a batch)."""
    return len({c.batch for c in trace.tool_calls if not c.agent_id})


def parsable_call_rate(turns: Sequence[ParsedTurn], want_turns: int) -> float:
    """Of the first ``want_turns`` turns (where Claude called tools), the share in which the
    model wrote well-formed calls; a turn it never reached, or whose calls did not parse
    (the episode stopped there), counts as a miss. No calls wanted: 1 if none were made.

    >>> from claude_bc.training.template import parse_tool_calls as p
    >>> parsable_call_rate([p('<|python_tag|>{"name": "Read", "parameters": {}}'), p("Done.")], 2)
    0.5
    """
    if want_turns == 0:
        return float(not any(t.tool_calls for t in turns))
    return sum(bool(t.tool_calls) for t in turns[:want_turns]) / want_turns


def call_scores(got: Sequence[str], want: Sequence[str]) -> dict[str, float]:
    """First-call accuracy, exact tool-name sequence and positional argument match of two
    lists of :func:`call_keys`.

    >>> call_scores(["Grep:{}", "Read:{\\"f\\":1}"], ["Grep:{}", "Read:{\\"f\\":2}"])
    {'first_call': 1.0, 'exact_sequence': 1.0, 'argument_match': 0.5}
    """
    names = [k.split(":", 1)[0] for k in got], [k.split(":", 1)[0] for k in want]
    if not want:
        return dict.fromkeys(("first_call", "exact_sequence", "argument_match"), float(not got))
    return {
        "first_call": float(bool(got) and got[0] == want[0]),
        "exact_sequence": float(names[0] == names[1]),
        "argument_match": sum(g == w for g, w in zip(got, want, strict=False)) / len(want),
    }


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
    name: str,
    spec: str,
    tasks: list[Task],
    traces: list[ClaudeTrace | None],
    turns: list[list[ParsedTurn]] | None = None,
    final: list[bool] | None = None,
) -> ModelResult:
    """Every metric of one model from its episodes' traces (``None``: unparsable), the
    turns it generated (parsed; default: those of the traces) and, when the episodes ran in
    real repositories, whether each ended in Claude's final state."""
    reward = BehavioralRewardModel([t.reference for t in tasks], audit_top=0)
    result = ModelResult(name, spec)
    found = stated = 0
    for task, trace in zip(tasks, traces, strict=True):
        scored = reward.score_trace(trace, task.trace_id)
        want = task.reference
        got_keys = call_keys(trace) if trace else []
        traj = trajectory_scores(got_keys, call_keys(want))
        acts = call_scores(got_keys, call_keys(want))
        parsed_turns = turns[len(result.episodes)] if turns is not None else turns_of(trace)
        acts["parsable_call_rate"] = parsable_call_rate(parsed_turns, call_turns(want))
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
                **acts,
                **({"final_state": float(final[len(result.episodes)])} if final else {}),
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
            "parsable_call_rate",
            "first_call",
            "exact_sequence",
            "argument_match",
        )
    }
    means["final_state"] = sum(final) / n if final else None
    means["reward"] = means.pop("total")
    means["tool_alignment"] = means["tools"]
    means["constraint_detection"] = found / stated if stated else None
    means["unparsable"] = sum(not e["parsed"] for e in result.episodes) / n
    result.metrics = {k: means[k] for k in METRICS}
    return result


def turns_of(trace: ClaudeTrace | None) -> list[ParsedTurn]:
    """A trace's main-agent call turns, in order: the calls of one API message (or batch)
    together, with the reasoning before them (for scoring a captured or candidate trace)."""
    turns: list[ParsedTurn] = []
    last: object = object()
    for c in trace.tool_calls if trace is not None else []:
        if c.agent_id:
            continue
        key = c.message_id or c.batch
        call = {"name": c.tool, "arguments": dict(c.args)}
        if turns and key is not None and key == last:
            turns[-1].tool_calls.append(call)
        else:
            turns.append(ParsedTurn(c.reasoning, tool_calls=[call]))
        last = key
    return turns


def evaluate(
    name: str,
    spec: str,
    tasks: list[Task],
    sample: Sampling,
    device: str,
    repos: dict[str, Repo] | None = None,
) -> ModelResult:
    """Load one model and play every task (in real repository copies with ``repos``)."""
    policy = load_policy(spec, device)
    if repos is None:
        episodes = run_episodes(policy.model, policy.tokenizer, tasks, sample)
        return score_episodes(name, spec, tasks, [e.trace for e in episodes], _turns(episodes))
    with tempfile.TemporaryDirectory(prefix="bc-eval-") as scratch:
        envs = [LiveEnv(t.reference, _repo(repos, t), Path(scratch)) for t in tasks]
        episodes = run_episodes(policy.model, policy.tokenizer, tasks, sample, list(envs))
        final = [final_state_matches(env) for env in envs]
    traces = [e.trace for e in episodes]
    return score_episodes(name, spec, tasks, traces, _turns(episodes), final)


def _turns(episodes: list[EpisodeResult]) -> list[list[ParsedTurn]]:
    return [e.turns for e in episodes]


def _repo(repos: dict[str, Repo], task: Task) -> Repo:
    try:
        return repos[task.reference.user_prompt]
    except KeyError:
        from claude_bc.capture.errors import BCError

        raise BCError(
            f"no repository for the held-out prompt {task.reference.user_prompt!r}"
        ) from None


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
    repos: Path | None = None,
) -> tuple[list[ModelResult], str]:
    """Evaluate each ``(name, spec)`` on the split; returns the results and the table.
    ``repos``: a repositories file (:mod:`training.live`): act in real copies of them."""
    from claude_bc.capture.errors import BCError

    tasks = tasks_from_split(dataset, split, limit)
    if not tasks:
        raise BCError(f"{dataset}/{split}.jsonl has no held-out samples")
    known = load_repos(repos) if repos else None
    results = [
        evaluate(name, spec, tasks, sample or Sampling(), device, known) for name, spec in models
    ]
    return results, write_report(results, out, len(tasks), split)
