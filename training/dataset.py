"""Stage 1 of training: captured traces → a behavioural-cloning dataset.

Run: ``bc-train dataset [--config FILE] [--traces FILE] [--out DIR]`` (settings:
:class:`training.config.DatasetConfig`). Reads the trace store, and writes to ``--out``:

* ``bc_dataset.jsonl``: one seed-format record per kept trace (prompt, reasoning_chain,
  tool_sequence with each call's reasoning, response, workflow_type, exploration_depth);
* ``train.jsonl`` / ``eval.jsonl`` / ``test.jsonl``: chats with tools (system, user,
  assistant text + tool calls, tool results, …, final answer) plus the tool schemas the
  session offered, for ``bc-train sft``; load them with :func:`load_split`, which keeps
  every message exactly as written (``Dataset.from_list`` alone would give every tool
  call every other tool's argument names as ``null``);
* ``stats.json``: samples, tokens, tools per sample, categories, what was excluded and why.

Steps, in order: quality gates (``capture.gates``: ``gates`` in the config, else
``$BC_HOME/gates.toml``, else the defaults), dedup, session split (a session never
spans two splits; stable for a seed as the store grows), then long tool outputs are cut
(head and tail kept around a marker) until the chat fits ``max_length``. The folder is
built next to ``--out`` and renamed into place at the end, so a failed run leaves no
half-written dataset.
"""

from __future__ import annotations

import hashlib
import json
import statistics
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from claude_bc.capture import outdir, paths, store
from claude_bc.capture.errors import BCError
from claude_bc.capture.gates import gate, load_gate_config
from claude_bc.capture.redact import redact
from claude_bc.capture.safejson import read_jsonl
from claude_bc.capture.schema import ClaudeTrace, ToolCall
from claude_bc.training.config import DatasetConfig
from claude_bc.training.template import to_hf_tool

SPLITS = ("train", "eval", "test")
Message = dict[str, Any]
ChatCounter = Callable[[list[Message], list[dict[str, Any]]], int]
TextCounter = Callable[[str], int]


# --- reading traces ---------------------------------------------------------------------


def read_traces(source: Path | None, skip_bad: bool) -> list[ClaudeTrace]:
    """The last version of each trace in a store folder or JSONL file; bad rows stop us."""
    traces, problems = store.read_traces(source)
    if problems and not skip_bad:
        raise BCError(
            f"{len(problems)} unreadable row(s), first: {problems[0]}; "
            "fix or remove them, or pass --skip-bad"
        )
    if not traces:
        raise BCError(
            f"no traces in {source or paths.traces_dir()} (capture some with bc-capture first)"
        )
    return traces


# --- tool schemas -----------------------------------------------------------------------


def _anthropic_tools(data: Any) -> list[dict[str, Any]]:
    tools = data.get("tools") if isinstance(data, dict) else data
    if not isinstance(tools, list):
        return []
    # a deferred tool is only a placeholder to the model: it never sees its schema
    return [
        t
        for t in tools
        if isinstance(t, dict) and isinstance(t.get("name"), str) and not t.get("defer_loading")
    ]


def default_tool_schemas() -> list[dict[str, Any]]:
    """Claude Code's tool set as recorded (``--tools Bash,Read,Edit,Write,Grep,Glob,Agent``)."""
    text = resources.files("claude_bc.training").joinpath("tool_schemas.json").read_text()
    return _anthropic_tools(json.loads(text))


def session_tool_schemas(session_id: str | None) -> list[dict[str, Any]]:
    """The tools the proxy recorded for a session (``$BC_HOME/sessions/<id>.json``), if any."""
    if not session_id or not paths.is_safe_id(session_id):  # never a path out of sessions/
        return []
    path = paths.data_dir() / "sessions" / f"{session_id}.json"
    try:
        return _anthropic_tools(json.loads(path.read_text()))
    except (OSError, ValueError, RecursionError):
        return []


# --- traces → chats ---------------------------------------------------------------------


def _turns(calls: list[ToolCall]) -> Iterator[list[ToolCall]]:
    """Calls grouped by the API message that issued them (parallel calls share one)."""
    group: list[ToolCall] = []
    for call in calls:
        key = call.message_id or call.batch
        if group and (key is None or key != (group[-1].message_id or group[-1].batch)):
            yield group
            group = []
        group.append(call)
    if group:
        yield group


def _joined(texts: Iterable[str]) -> str:
    return "\n\n".join(t.strip() for t in texts if t.strip())


def to_messages(trace: ClaudeTrace, cfg: DatasetConfig) -> list[Message]:
    """One trace as a chat: the main agent's turns (subagent calls stay inside Agent)."""
    messages: list[Message] = [
        {"role": "system", "content": cfg.system_prompt},
        {"role": "user", "content": trace.model_prompt},
    ]
    for turn in _turns([c for c in trace.tool_calls if not c.agent_id]):
        msg: Message = {"role": "assistant", "content": _joined(c.reasoning for c in turn)}
        thinking = _joined(c.thinking for c in turn)
        if cfg.include_thinking and thinking:
            msg["thinking"] = thinking
        msg["tool_calls"] = [
            {"type": "function", "function": {"name": c.tool, "arguments": c.args}} for c in turn
        ]
        messages.append(msg)
        for c in turn:
            messages.append({"role": "tool", "name": c.tool, "content": c.output or c.error or ""})
    answer: Message = {"role": "assistant", "content": trace.claude_response.strip()}
    if cfg.include_thinking and trace.final_thinking.strip():
        answer["thinking"] = trace.final_thinking.strip()
    messages.append(answer)
    return messages


def seed_record(trace: ClaudeTrace) -> dict[str, Any]:
    """One trace as a ``bc_dataset.jsonl`` row: the prompt, the calls with their reasoning,
    the answer and the signals, flat (for reading and filtering outside claude-bc)."""
    sig = trace.reasoning_signals
    main = [c for c in trace.tool_calls if not c.agent_id]
    return {
        "trace_id": trace.trace_id,
        "session_id": trace.session_id,
        "prompt": trace.user_prompt,
        "reasoning_chain": sig.reasoning_chain,
        "tool_sequence": [
            {"tool": c.tool, "reasoning": c.reasoning.strip(), "args": c.args, "success": c.success}
            for c in main
        ],
        "response": trace.claude_response,
        "workflow_type": sig.workflow_type.value,
        "exploration_depth": sig.exploration_depth.value,
    }


def dedup_key(trace: ClaudeTrace) -> str:
    """Same prompt, same calls with the same arguments, same answer: the same sample."""
    main = [(c.tool, c.args) for c in trace.tool_calls if not c.agent_id]
    data = json.dumps(
        [trace.model_prompt.strip(), main, trace.claude_response.strip()],
        sort_keys=True,
        ensure_ascii=False,
    )
    return hashlib.sha256(data.encode()).hexdigest()


# --- split ------------------------------------------------------------------------------


def _unit(seed: int, session: str) -> float:
    digest = hashlib.sha256(f"{seed}:{session}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def split_sessions(sessions: Iterable[str], cfg: DatasetConfig) -> dict[str, str]:
    """session → split, from a hash of (seed, session): a session keeps its split as the
    store grows. If nothing lands in train, the held-out session nearest to it moves there."""
    units = {s: _unit(cfg.seed, s) for s in set(sessions)}
    out = {}
    for s, u in units.items():
        if u < cfg.eval_fraction:
            out[s] = "eval"
        elif u < cfg.eval_fraction + cfg.test_fraction:
            out[s] = "test"
        else:
            out[s] = "train"
    if units and "train" not in out.values():
        out[max(units, key=units.__getitem__)] = "train"
    return out


# --- fitting long chats -----------------------------------------------------------------


def approx_tokens(text: str) -> int:
    """≈ 4 UTF-8 bytes per token (used when no tokenizer is given)."""
    return (len(text.encode()) + 3) // 4


def approx_chat_tokens(messages: list[Message], tools: list[dict[str, Any]]) -> int:
    # JSON escaping overcounts a little, which errs on the side of fitting
    return approx_tokens(json.dumps(tools, ensure_ascii=False)) + sum(
        6 + approx_tokens(json.dumps(m, ensure_ascii=False)) for m in messages
    )


def cut_middle(text: str, keep_chars: int) -> str:
    """Keep the head and the tail of ``text`` around a marker saying how much was cut.

    >>> cut_middle("a" * 10 + "b" * 10, 8)
    'aaaa\\n[... 12 characters cut ...]\\nbbbb'
    """
    if len(text) <= keep_chars:
        return text
    head = keep_chars // 2
    tail = keep_chars - head
    return f"{text[:head]}\n[... {len(text) - keep_chars} characters cut ...]\n{text[-tail:]}"


def fit(
    messages: list[Message],
    tools: list[dict[str, Any]],
    max_length: int,
    count_chat: ChatCounter,
    count_text: TextCounter,
    min_keep: int,
) -> tuple[list[Message], int] | None:
    """Cut the longest tool outputs evenly until the chat fits; ``None`` if it cannot.

    Returns the fitted messages and how many tool outputs were cut.
    """
    total = count_chat(messages, tools)
    if total <= max_length:
        return messages, 0
    idx = [i for i, m in enumerate(messages) if m["role"] == "tool"]
    if not idx:
        return None
    base = count_chat(
        [{**m, "content": ""} if i in idx else m for i, m in enumerate(messages)], tools
    )
    sizes = {i: count_text(messages[i]["content"]) for i in idx}
    # chat tokens per text token of the outputs (escaping, merges at the edges)
    scale = max(1.0, (total - base) / max(1, sum(sizes.values())))
    budget = (max_length - base) / scale - _MARKER_TOKENS * len(idx)
    for _ in range(6):  # the real count after cutting can differ a little: shrink and retry
        cap = _water_level(list(sizes.values()), budget, min_keep)
        if cap is None:
            return None
        fitted = [dict(m) for m in messages]
        cut = 0
        for i in idx:
            if sizes[i] > cap:
                text = messages[i]["content"]
                fitted[i]["content"] = cut_middle(text, max(1, len(text) * cap // sizes[i]))
                cut += 1
        now = count_chat(fitted, tools)
        if now <= max_length:
            return fitted, cut
        budget -= (now - max_length) / scale + _MARKER_TOKENS
    return None


_MARKER_TOKENS = 16  # what the "[... N characters cut ...]" marker costs, with margin


def _water_level(sizes: list[int], budget: float, floor: int) -> int | None:
    """Largest cap with ``sum(min(size, cap)) <= budget``; ``None`` if even ``floor`` is over."""
    if sum(min(s, floor) for s in sizes) > budget:
        return None
    lo, hi = floor, max(sizes, default=floor)
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if sum(min(s, mid) for s in sizes) <= budget:
            lo = mid
        else:
            hi = mid - 1
    return lo


def tokenizer_counters(name: str) -> tuple[ChatCounter, TextCounter]:
    """Exact counters from a transformers tokenizer rendered with our chat template."""
    from claude_bc.training.model import load_tokenizer

    return counters(load_tokenizer(name))


def counters(tok: Any) -> tuple[ChatCounter, TextCounter]:
    """Token counters of a loaded tokenizer, chats counted as SFT tokenizes them."""
    from claude_bc.training.template import chat_ids

    def count_chat(messages: list[Message], tools: list[dict[str, Any]]) -> int:
        return len(chat_ids(tok, messages, tools)[0])

    def count_text(text: str) -> int:
        return len(tok.encode(text, add_special_tokens=False))

    return count_chat, count_text


# --- the build --------------------------------------------------------------------------


@dataclass
class Built:
    """What ``build`` made, before it is written."""

    seed_rows: list[dict[str, Any]] = field(default_factory=list)
    splits: dict[str, list[dict[str, Any]]] = field(default_factory=lambda: {s: [] for s in SPLITS})
    excluded: Counter[str] = field(default_factory=Counter)
    tokens: list[int] = field(default_factory=list)
    cut_outputs: int = 0


def build(traces: list[ClaudeTrace], cfg: DatasetConfig) -> Built:
    """Gate, dedup, split and fit: the whole dataset in memory."""
    counters = (
        tokenizer_counters(cfg.tokenizer) if cfg.tokenizer else (approx_chat_tokens, approx_tokens)
    )
    fallback = (
        default_tool_schemas() if cfg.tool_schemas is None else load_tool_schemas(cfg.tool_schemas)
    )
    out = Built()
    kept = _keep(traces, cfg, out.excluded)
    assign = split_sessions((_session(t) for t in kept), cfg)
    for trace in kept:
        sample = _sample(trace, cfg, fallback, counters)
        if sample is None:
            out.excluded["too long even with tool outputs cut"] += 1
            continue
        row, tokens, cut = sample
        out.cut_outputs += cut
        out.tokens.append(tokens)
        split = assign[_session(trace)]
        record = redact(seed_record(trace))
        out.seed_rows.append({**record, "split": split})
        out.splits[split].append(
            {
                **row,
                "workflow_type": record["workflow_type"],
                "exploration_depth": record["exploration_depth"],
            }
        )
    return out


def _keep(
    traces: list[ClaudeTrace], cfg: DatasetConfig, excluded: Counter[str]
) -> list[ClaudeTrace]:
    """The traces that pass the quality gates, first of each duplicate only."""
    gates = cfg.gates or load_gate_config()
    seen: set[str] = set()
    kept = []
    for trace in traces:
        reasons = gate(trace, gates)
        if reasons:
            excluded.update(reasons)
            continue
        key = dedup_key(trace)
        if key in seen:
            excluded["duplicate"] += 1
            continue
        seen.add(key)
        kept.append(trace)
    return kept


def _sample(
    trace: ClaudeTrace,
    cfg: DatasetConfig,
    fallback: list[dict[str, Any]],
    counters: tuple[ChatCounter, TextCounter],
) -> tuple[dict[str, Any], int, int] | None:
    """One chat row fitted to ``max_length``, its token count and outputs cut; None: too long."""
    schemas = session_tool_schemas(trace.session_id) or fallback
    if cfg.tool_set == "used":
        called = {c.tool for c in trace.tool_calls if not c.agent_id}
        schemas = [t for t in schemas if t["name"] in called]
    tools = [to_hf_tool(t, cfg.schema_detail) for t in schemas]
    # traces are redacted at capture; run it again so old or imported rows are too
    messages = redact(to_messages(trace, cfg))
    count_chat, count_text = counters
    fitted = fit(
        messages, tools, cfg.max_length, count_chat, count_text, cfg.min_tool_output_tokens
    )
    if fitted is None:
        return None
    messages, cut = fitted
    row = {
        "messages": messages,
        "tools": tools,
        "trace_id": trace.trace_id,
        "session_id": _session(trace),
    }
    return row, count_chat(messages, tools), cut


def _session(trace: ClaudeTrace) -> str:
    return trace.session_id or trace.trace_id


def load_tool_schemas(path: Path) -> list[dict[str, Any]]:
    """Anthropic-format tool schemas from a JSON file (one clear error when unusable)."""
    try:
        tools = _anthropic_tools(json.loads(path.read_text()))
    except (OSError, ValueError) as exc:
        raise BCError(f"cannot read tool schemas {path}: {exc}") from exc
    if not tools:
        raise BCError(f"no tools in {path} (expected a list of {{name, input_schema}})")
    return tools


def stats(built: Built, n_traces: int, cfg: DatasetConfig) -> dict[str, Any]:
    rows = [r for rows in built.splits.values() for r in rows]
    calls = [len(r["tool_sequence"]) for r in built.seed_rows]
    tools: Counter[str] = Counter(c["tool"] for r in built.seed_rows for c in r["tool_sequence"])
    return {
        "traces": n_traces,
        "samples": {s: len(built.splits[s]) for s in SPLITS},
        "sessions": {s: len({r["session_id"] for r in built.splits[s]}) for s in SPLITS},
        "tokens": {
            "counted_with": cfg.tokenizer or "approximation (4 bytes per token)",
            "total": sum(built.tokens),
            "mean": round(statistics.fmean(built.tokens), 1) if built.tokens else 0,
            "max": max(built.tokens, default=0),
            "max_length": cfg.max_length,
        },
        "tools_per_sample": {
            "mean": round(statistics.fmean(calls), 2) if calls else 0,
            "max": max(calls, default=0),
            "by_tool": dict(tools.most_common()),
        },
        "workflow_type": dict(Counter(r["workflow_type"] for r in rows)),
        "exploration_depth": dict(Counter(r["exploration_depth"] for r in rows)),
        "tool_outputs_cut": built.cut_outputs,
        "excluded": dict(built.excluded.most_common()),
    }


def _write_jsonl(path: Path, rows: Iterable[dict[str, Any]]) -> None:
    with path.open("w", encoding="utf-8") as fh:
        for row in rows:
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")


def write(built: Built, report: dict[str, Any], out: Path, force: bool = False) -> None:
    """Write the dataset into a temp folder beside ``out``, then swap it into place; a
    non-empty ``out`` that claude-bc did not write is refused unless ``force``."""
    with outdir.replacing(out, "bc-train dataset", force) as tmp:
        _write_jsonl(tmp / "bc_dataset.jsonl", built.seed_rows)
        for split in SPLITS:
            _write_jsonl(tmp / f"{split}.jsonl", built.splits[split])
        (tmp / "stats.json").write_text(json.dumps(report, indent=2) + "\n")


def run(cfg: DatasetConfig, force: bool = False) -> dict[str, Any]:
    """The whole stage: read, build, check, write. Returns the stats report."""
    outdir.check(cfg.out, force)  # before any work: never someone else's folder
    traces = read_traces(cfg.traces, cfg.skip_bad)
    built = build(traces, cfg)
    report = stats(built, len(traces), cfg)
    if not built.splits["train"]:
        why = ", ".join(f"{n} {r}" for r, n in built.excluded.most_common()) or "none kept"
        raise BCError(f"no training samples: all {len(traces)} traces were excluded ({why})")
    write(built, report, cfg.out, force)
    return report


def load_split(folder: Path, split: str) -> Any:
    """A split as an HF ``Dataset`` whose messages and tools stay exactly as written."""
    from datasets import Dataset, Features, Json, List, Value

    path = folder / f"{split}.jsonl"
    if not path.is_file():
        raise BCError(f"no {split}.jsonl in {folder} (build it with: bc-train dataset)")
    rows = []
    for number, row in read_jsonl(path):
        if not isinstance(row.get("messages"), list):
            raise BCError(f"{path}:{number}: corrupt row (no 'messages' list)")
        rows.append(
            {
                "messages": row["messages"],
                "tools": row.get("tools") or [],
                "trace_id": str(row.get("trace_id", number)),
            }
        )
    features = Features(
        {"messages": List(Json()), "tools": List(Json()), "trace_id": Value("string")}
    )
    columns = {k: [r[k] for r in rows] for k in features}  # from_list fails on no rows
    return Dataset.from_dict(columns, features=features)
