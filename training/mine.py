"""Stage 4: adversarial prompt mining — find where the model's workflow departs from Claude's.

Run: ``bc-train mine --model DIR [--dataset DIR] [--split train] [--out DIR]``.

1. play every prompt of the split with the model (greedy, multi-step, against the replay
   environment of its trace) and score it with the behavioural reward;
2. rank prompts by the gap between Claude's reward and the model's. Claude's is his own
   workflow replayed and scored against itself, which is 1 (the reward is a similarity),
   so the gap is ``1 - reward``, in [0, 2];
3. for the ``top`` worst prompts, write the original plus variants that keep Claude's
   workflow valid: a *paraphrase* of the request, the *constraints reordered*, and *file
   names swapped* consistently through the whole chat (prompt, arguments, outputs,
   answer);
4. write ``OUT/train.jsonl`` in the dataset's row format, so ``bc-train sft --dataset OUT``
   and ``bc-train rl --dataset OUT`` take it as it is. Each row carries ``weight`` (its
   gap) and is repeated ``1 + round(gap * (copies - 1) / 2)`` times, so a stage that knows
   nothing of weights still sees the worst prompts most; ``mined.json`` holds the ranking.
"""

from __future__ import annotations

import json
import random
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from claude_bc.capture import outdir
from claude_bc.capture.errors import BCError
from claude_bc.capture.redact import redact
from claude_bc.capture.safejson import read_jsonl
from claude_bc.training.policy import Sampling, Task, load_policy, run_episodes, tasks_from_split
from claude_bc.training.reward import BehavioralRewardModel

Message = dict[str, Any]
CONSTRAINT_CUES = re.compile(
    r"\b(must|mustn't|don't|do not|never|without|only|keep|avoid|make sure|should not|"
    r"shouldn't|no )",
    re.IGNORECASE,
)
FILE_NAME = re.compile(
    r"(?<![\w.-])([\w-]+)\.(py|js|jsx|ts|tsx|md|json|toml|ya?ml|txt|go|rs|java|c|h|cpp|sh|rb|"
    r"html|css|cfg|ini|sql)\b"
)
_SENTENCE = re.compile(r"(?<=[.!?])\s+")
POLITE = re.compile(r"^(please|can you|could you|would you)\s+", re.IGNORECASE)
REWRITES = [
    (re.compile(r"\bfix\b"), "repair"),
    (re.compile(r"\bchange\b"), "update"),
    (re.compile(r"\bmake\b"), "ensure"),
    (re.compile(r"\bfind\b"), "locate"),
    (re.compile(r"\bshow me\b"), "tell me"),
]
OPENERS = ["I need you to ", "Please ", "Your task: ", "Go ahead and "]


# --- variants ----------------------------------------------------------------------------------


def paraphrase(prompt: str, rng: random.Random) -> str:
    """The same request in other words: word swaps and a different opener.

    >>> paraphrase("Please fix the failing test.", random.Random(0))
    'Go ahead and repair the failing test.'
    >>> paraphrase("Change the greeting.", random.Random(1))
    'Please update the greeting.'
    """
    text = POLITE.sub("", prompt.strip())
    text = text[:1].lower() + text[1:]  # the opener starts the sentence now
    for pattern, repl in REWRITES:
        text = pattern.sub(repl, text)
    return rng.choice(OPENERS) + text if text else prompt


def reorder_constraints(prompt: str) -> str | None:
    """The constraints stated first, in reverse order; ``None`` if fewer than two sentences
    or no constraint to move.

    >>> reorder_constraints("Rename greet(). Keep the API. Do not touch tests.")
    'Do not touch tests. Keep the API. Rename greet().'
    >>> reorder_constraints("Rename greet().") is None
    True
    """
    sentences = [s for s in _SENTENCE.split(prompt.strip()) if s]
    constraints = [s for s in sentences if CONSTRAINT_CUES.search(s)]
    rest = [s for s in sentences if not CONSTRAINT_CUES.search(s)]
    if len(sentences) < 2 or not constraints:
        return None
    moved = " ".join([*reversed(constraints), *rest])
    return None if moved == prompt.strip() else moved


def file_names(messages: list[Message]) -> list[str]:
    """File names the user named, else the ones the tool calls touched (order kept).

    >>> file_names([{"role": "user", "content": "Fix src/app.py and util.py"}])
    ['app.py', 'util.py']
    """
    user = " ".join(str(m.get("content") or "") for m in messages if m.get("role") == "user")
    found = [m.group(0) for m in FILE_NAME.finditer(user)]
    if not found:
        calls = json.dumps([m.get("tool_calls") for m in messages if m.get("tool_calls")])
        found = [m.group(0) for m in FILE_NAME.finditer(calls)]
    return list(dict.fromkeys(found))


def swap_file_names(messages: list[Message], rng: random.Random) -> list[Message] | None:
    """The whole chat with its file names renamed consistently (``app.py`` → ``app_core.py``,
    and two names swapped with each other when there are two), so Claude's workflow is
    still the right answer. ``None`` if no file name is found.

    >>> chat = [{"role": "user", "content": "Edit app.py"},
    ...         {"role": "tool", "content": "app.py: ok"}]
    >>> [m["content"] for m in swap_file_names(chat, random.Random(1))]
    ['Edit app_main.py', 'app_main.py: ok']
    """
    names = file_names(messages)
    if not names:
        return None
    if len(names) >= 2:
        a, b = rng.sample(names, 2)
        mapping = {a: b, b: a}
    else:
        stem, ext = names[0].rsplit(".", 1)
        mapping = {names[0]: f"{stem}_{rng.choice(['core', 'main', 'v2', 'impl'])}.{ext}"}
    pattern = re.compile(r"(?<![\w.-])(" + "|".join(map(re.escape, mapping)) + r")\b")

    def rename(value: Any) -> Any:
        if isinstance(value, str):
            return pattern.sub(lambda m: mapping[m.group(1)], value)
        if isinstance(value, list):
            return [rename(v) for v in value]
        if isinstance(value, dict):
            return {k: rename(v) for k, v in value.items()}
        return value

    renamed: list[Message] = rename(messages)
    return renamed


def variants(messages: list[Message], rng: random.Random) -> list[tuple[str, list[Message]]]:
    """The original chat and each variant that applies: ``(kind, messages)``."""
    out: list[tuple[str, list[Message]]] = [("original", messages)]
    user = next(i for i, m in enumerate(messages) if m.get("role") == "user")
    prompt = str(messages[user].get("content") or "")

    def with_prompt(text: str) -> list[Message]:
        changed = [dict(m) for m in messages]
        changed[user]["content"] = text
        return changed

    out.append(("paraphrase", with_prompt(paraphrase(prompt, rng))))
    reordered = reorder_constraints(prompt)
    if reordered:
        out.append(("reorder_constraints", with_prompt(reordered)))
    swapped = swap_file_names(messages, rng)
    if swapped is not None:
        out.append(("swap_file_names", swapped))
    return out


# --- ranking and writing -----------------------------------------------------------------------


@dataclass(frozen=True)
class Gap:
    trace_id: str
    reward: float
    gap: float
    components: dict[str, float]


def rank(tasks: list[Task], rewards: list[float], comps: list[dict[str, float]]) -> list[Gap]:
    """Prompts ordered by how far the model falls below Claude (1.0), worst first.

    >>> t = [Task("a", [], [], None), Task("b", [], [], None)]  # type: ignore[arg-type]
    >>> [g.trace_id for g in rank(t, [0.9, -0.2], [{}, {}])]
    ['b', 'a']
    """
    gaps = [Gap(t.trace_id, r, 1.0 - r, c) for t, r, c in zip(tasks, rewards, comps, strict=True)]
    return sorted(gaps, key=lambda g: (-g.gap, g.trace_id))


def copies_for(gap: float, max_copies: int) -> int:
    """How many times a row is repeated: 1 for no gap, ``max_copies`` for the worst (2).

    >>> copies_for(0.0, 4), copies_for(1.0, 4), copies_for(2.0, 4)
    (1, 3, 4)
    """
    return 1 + round(gap * (max_copies - 1) / 2)


def mine(
    tasks: list[Task],
    rows: dict[str, dict[str, Any]],
    play: Callable[[list[Task]], list[Any]],
    out: Path,
    *,
    top: int,
    max_copies: int,
    seed: int,
    force: bool = False,
) -> dict[str, Any]:
    """Score, rank, build variants and write the weighted retraining set into ``out``."""
    reward = BehavioralRewardModel([t.reference for t in tasks], audit_top=0)
    episodes = play(tasks)
    scored = [reward.score_trace(e.trace, e.task.trace_id) for e in episodes]
    ranking = rank(tasks, [r.total for r in scored], [dict(r.components) for r in scored])
    rng = random.Random(seed)
    written: list[dict[str, Any]] = []
    for g in ranking[:top]:
        row = rows[g.trace_id]
        for kind, messages in variants(list(row["messages"]), rng):
            sample = {
                "messages": messages,
                "tools": row.get("tools") or [],
                "trace_id": g.trace_id if kind == "original" else f"{g.trace_id}:{kind}",
                "source_trace_id": g.trace_id,
                "variant": kind,
                "weight": round(g.gap, 4),
                "model_reward": round(g.reward, 4),
            }
            written += [redact(sample)] * copies_for(g.gap, max_copies)
    report = {
        "prompts_scored": len(tasks),
        "mean_reward": sum(r.total for r in scored) / len(scored),
        "mined": min(top, len(ranking)),
        "rows_written": len(written),
        "ranking": [g.__dict__ for g in ranking],
    }
    _write(out, written, report, force)
    return report


def _write(out: Path, rows: list[dict[str, Any]], report: dict[str, Any], force: bool) -> None:
    """Into a temp folder beside ``out``, renamed into place: no half-written set, and a
    non-empty ``out`` that claude-bc did not write is refused unless ``force``."""
    with outdir.replacing(out, "bc-train mine", force) as tmp:
        (tmp / "train.jsonl").write_text(
            "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
        )
        (tmp / "mined.json").write_text(json.dumps(report, indent=2) + "\n")


def run(
    model: str,
    dataset: Path,
    split: str,
    out: Path,
    *,
    top: int = 20,
    max_copies: int = 4,
    device: str = "auto",
    sample: Sampling | None = None,
    seed: int = 42,
    force: bool = False,
) -> dict[str, Any]:
    """The whole stage for a model spec (run folder or base model)."""
    outdir.check(out, force)  # before any work: never someone else's folder
    tasks = tasks_from_split(dataset, split)
    if not tasks:
        raise BCError(f"{dataset}/{split}.jsonl has no samples to mine")
    rows = _rows(dataset, split)
    policy = load_policy(model, device)
    settings = sample or Sampling()

    def play(batch: list[Task]) -> list[Any]:
        return run_episodes(policy.model, policy.tokenizer, batch, settings)

    return mine(tasks, rows, play, out, top=top, max_copies=max_copies, seed=seed, force=force)


def _rows(dataset: Path, split: str) -> dict[str, dict[str, Any]]:
    rows: dict[str, dict[str, Any]] = {}
    for number, row in read_jsonl(dataset / f"{split}.jsonl"):
        rows.setdefault(str(row.get("trace_id", number)), row)
    return rows
