"""A policy that acts in the replay environment: load a model, run batched episodes.

Shared by ``bc-train rl`` (its rollouts), ``bc-train mine`` and ``bc-train eval``.

* :func:`load_policy` takes what the stages write (an ``sft`` or ``rl`` output folder,
  whose ``run.json`` names the base and, for RL, the SFT run below it) or a plain base
  model (hub id, local folder, ``embedded:smollm2``), and returns it merged and ready;
* :func:`tasks_from_split` turns a dataset split (``bc-train dataset``) into tasks: the
  prompt (system + user), the tools offered, and Claude's workflow as the reference
  (rebuilt from the chat, so the dataset folder is all a stage needs);
* :func:`run_episodes` plays every task as a multi-step episode against
  :class:`training.replay.ReplayEnv`: all live episodes generate their next turn in one
  batch, tool calls get the recorded outputs, and the token ids come back with a mask
  that tells the model's tokens (1) from the environment's (0) for RL.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from claude_bc.capture.errors import BCError
from claude_bc.capture.schema import ClaudeTrace
from claude_bc.training.replay import (
    ReplayEnv,
    ReplayResult,
    assistant_message,
    candidate_trace,
    parse_turn,
    turns_from_messages,
)
from claude_bc.training.template import EOM, EOT, ParsedTurn, chat_ids

Message = dict[str, Any]
TOOL_OUTPUT_CHARS = 4000  # a replayed output longer than this keeps its head and tail


# --- tasks -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Task:
    """One prompt to act on, with Claude's workflow as the reference."""

    trace_id: str
    prompt: list[Message]  # system + user
    tools: list[dict[str, Any]]
    reference: ClaudeTrace


def reference_from_chat(trace_id: str, messages: list[Message]) -> ClaudeTrace:
    """Claude's workflow rebuilt from a dataset chat (system, user, assistant/tool turns).

    >>> chat = [{"role": "system", "content": "s"}, {"role": "user", "content": "hi"},
    ...         {"role": "assistant", "content": "Hello!"}]
    >>> reference_from_chat("t", chat).claude_response
    'Hello!'
    """
    user = next((m for m in messages if m.get("role") == "user"), None)
    if user is None:
        raise BCError(f"sample {trace_id} has no user message")
    start = messages.index(user) + 1
    parsed = turns_from_messages(messages[start:])
    if parsed is None:
        raise BCError(f"sample {trace_id} has a malformed tool call")
    prompt = ClaudeTrace(trace_id=trace_id, user_prompt=str(user.get("content") or ""))
    trace = candidate_trace(prompt, *parsed)
    return trace.model_copy(update={"trace_id": trace_id, "sources": ["manual"]})


def prompt_key(prompt: list[Message]) -> str:
    """What identifies a prompt: roles and texts only (datasets may add ``None`` fields).

    >>> prompt_key([{"role": "user", "content": "hi", "name": None}])
    '[["user", "hi"]]'
    """
    return json.dumps([[m.get("role"), m.get("content")] for m in prompt])


def task_from_row(row: dict[str, Any]) -> Task:
    messages = list(row["messages"])
    user = next((i for i, m in enumerate(messages) if m.get("role") == "user"), None)
    if user is None:
        raise BCError(f"sample {row.get('trace_id')} has no user message")
    trace_id = str(row.get("trace_id"))
    return Task(
        trace_id=trace_id,
        prompt=messages[: user + 1],
        tools=list(row.get("tools") or []),
        reference=reference_from_chat(trace_id, messages),
    )


def tasks_from_split(folder: Path, split: str, limit: int | None = None) -> list[Task]:
    """The tasks of ``<folder>/<split>.jsonl``, one per distinct prompt, in file order."""
    from claude_bc.training.dataset import load_split

    seen: set[str] = set()
    tasks = []
    for row in load_split(folder, split):
        task = task_from_row(row)
        key = prompt_key(task.prompt)
        if key in seen:  # weighted sets repeat rows; a prompt is one task
            continue
        seen.add(key)
        tasks.append(task)
        if limit is not None and len(tasks) >= limit:
            break
    return tasks


# --- loading -----------------------------------------------------------------------------------


@dataclass
class Policy:
    model: Any
    tokenizer: Any
    name: str
    chain: list[str] = field(default_factory=list)  # what was merged, base first


def run_chain(folder: Path) -> tuple[str, list[Path]]:
    """The base model and the adapters (oldest first) an output folder stands on."""
    adapters: list[Path] = []
    current: Path | None = folder
    while current is not None:
        run_file = current / "run.json"
        if not run_file.is_file() or not (current / "adapter").is_dir():
            raise BCError(f"{current} is not a finished bc-train sft/rl run (no run.json/adapter)")
        run = json.loads(run_file.read_text())
        adapters.insert(0, current / "adapter")
        parent = run.get("sft")
        if parent:
            current = Path(parent)
            continue
        if not run.get("base"):
            raise BCError(f"{run_file} does not name the base model it was trained on")
        return str(run["base"]), adapters
    raise AssertionError("unreachable")


def load_policy(spec: str, device: str = "auto") -> Policy:
    """A model ready to generate: a run folder (adapters merged in order) or a base model."""
    from claude_bc.training.model import (
        Base,
        load_model,
        load_tokenizer,
        resolve_base,
        resolve_device,
    )

    dev = resolve_device(device)
    path = Path(spec).expanduser()
    if (path / "run.json").is_file():
        base_path, adapters = run_chain(path)
        tokenizer = load_tokenizer(str(adapters[-1]))
        model, _ = load_model(Base(base_path, "from run.json"), dev, False, tokenizer)
        model = merge_adapters(model, adapters)
        chain = [base_path, *map(str, adapters)]
    else:
        base = resolve_base(spec)
        tokenizer = load_tokenizer(base.path)
        model, _ = load_model(base, dev, False, tokenizer)
        chain = [base.path]
    model.eval()
    return Policy(model, tokenizer, spec, chain)


def merge_adapters(model: Any, adapters: list[Path]) -> Any:
    """Merge each LoRA adapter into the weights in turn (SFT, then RL on top of it)."""
    from peft import PeftModel

    for adapter in adapters:
        model = PeftModel.from_pretrained(model, str(adapter)).merge_and_unload()
    return model


# --- episodes ----------------------------------------------------------------------------------


class Env(Protocol):
    """What an episode acts against: :class:`ReplayEnv`, or ``training.live.LiveEnv``."""

    @property
    def misses(self) -> int: ...

    def step(self, tool: str, args: Mapping[str, Any]) -> ReplayResult: ...


@dataclass
class EpisodeResult:
    """One finished episode: what RL trains on and what the reward and eval read."""

    task: Task
    prompt_ids: list[int]
    completion_ids: list[int] = field(default_factory=list)
    env_mask: list[int] = field(default_factory=list)  # 1: the model's token, 0: replayed
    trace: ClaudeTrace | None = None  # None: malformed tool calls (reward -1)
    messages: list[Message] = field(default_factory=list)  # the assistant and tool turns
    text: str = ""  # the model's turns as generated, for audit
    misses: int = 0
    done: bool = False
    malformed: bool = False
    turns: list[ParsedTurn] = field(default_factory=list)
    results: list[ReplayResult] = field(default_factory=list)


@dataclass(frozen=True)
class Sampling:
    max_turns: int = 4
    max_new_tokens: int = 256  # per turn
    max_completion_length: int = 1024  # all turns and replayed outputs together
    do_sample: bool = False
    temperature: float = 1.0
    top_p: float = 1.0
    tool_output_chars: int = TOOL_OUTPUT_CHARS


def _cut(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    half = limit // 2
    return f"{text[:half]}\n[… {len(text) - 2 * half} characters cut …]\n{text[-half:]}"


def _prompt_ids(tokenizer: Any, task: Task) -> list[int]:
    return chat_ids(tokenizer, task.prompt, task.tools, add_generation_prompt=True)[0]


def _tool_ids(tokenizer: Any, outputs: list[str]) -> list[int]:
    """Replayed results as ``ipython`` turns, then the next assistant header: tokenized
    apart from the model's tokens before them, as training does (``template.piece_ids``)."""
    text = "".join(f"<|start_header_id|>ipython<|end_header_id|>\n\n{out}{EOT}" for out in outputs)
    text += "<|start_header_id|>assistant<|end_header_id|>\n\n"
    return list(tokenizer.encode(text, add_special_tokens=False))


def generate_batch(
    model: Any, tokenizer: Any, inputs: list[list[int]], s: Sampling
) -> list[list[int]]:
    """Each input's continuation up to and including its first end-of-turn token."""
    import torch
    from transformers import GenerationConfig

    pad = tokenizer.pad_token_id
    stops = [tokenizer.convert_tokens_to_ids(t) for t in (EOT, EOM)]
    width = max(len(x) for x in inputs)
    ids = torch.tensor([[pad] * (width - len(x)) + x for x in inputs])
    mask = torch.tensor([[0] * (width - len(x)) + [1] * len(x) for x in inputs])
    device = next(model.parameters()).device
    config = GenerationConfig(  # type: ignore[no-untyped-call]
        max_new_tokens=s.max_new_tokens,
        do_sample=s.do_sample,
        temperature=s.temperature if s.do_sample else None,
        top_p=s.top_p if s.do_sample else None,
        top_k=None,
        eos_token_id=stops,
        pad_token_id=pad,
    )
    with torch.no_grad():
        out = model.generate(
            input_ids=ids.to(device), attention_mask=mask.to(device), generation_config=config
        )
    rows = []
    for row in out[:, width:].tolist():
        end = next((i for i, t in enumerate(row) if t in stops), None)
        rows.append(row if end is None else row[: end + 1])
    return rows


def _step(ep: EpisodeResult, new: list[int], tokenizer: Any, env: Env, s: Sampling) -> None:
    """Take one generated turn into the episode; replay its calls."""
    ep.completion_ids += new
    ep.env_mask += [1] * len(new)
    raw = tokenizer.decode(new, skip_special_tokens=False)
    ep.text += raw
    turn = parse_turn(raw)
    if turn is None:
        ep.malformed = ep.done = True
        return
    ep.turns.append(turn)
    ep.messages.append(assistant_message(turn))
    finished = bool(new) and new[-1] == tokenizer.convert_tokens_to_ids(EOT)
    if not turn.tool_calls or not finished:
        ep.done = True
        return
    outputs = []
    for call in turn.tool_calls:
        result = env.step(call["name"], call["arguments"])
        ep.results.append(result)
        outputs.append(_cut(result.output, s.tool_output_chars))
        ep.messages.append({"role": "tool", "content": outputs[-1]})
    tool_ids = _tool_ids(tokenizer, outputs)
    ep.completion_ids += tool_ids
    ep.env_mask += [0] * len(tool_ids)
    ep.text += tokenizer.decode(tool_ids, skip_special_tokens=False)
    if len(ep.completion_ids) >= s.max_completion_length:
        ep.done = True


def run_episodes(
    model: Any,
    tokenizer: Any,
    tasks: list[Task],
    s: Sampling,
    envs: list[Env] | None = None,
) -> list[EpisodeResult]:
    """Play every task against its environment (default: the replay of its trace); turns
    are generated in batches."""
    episodes = [EpisodeResult(task=t, prompt_ids=_prompt_ids(tokenizer, t)) for t in tasks]
    if envs is None:
        envs = [ReplayEnv(t.reference) for t in tasks]
    for _ in range(s.max_turns):
        live = [i for i, ep in enumerate(episodes) if not ep.done]
        if not live:
            break
        inputs = [episodes[i].prompt_ids + episodes[i].completion_ids for i in live]
        for i, new in zip(live, generate_batch(model, tokenizer, inputs, s), strict=True):
            _step(episodes[i], new, tokenizer, envs[i], s)
    for ep, env in zip(episodes, envs, strict=True):
        ep.misses = env.misses
        if not ep.malformed:
            ep.trace = candidate_trace(ep.task.reference, ep.turns, ep.results)
        # RL trains on at most max_completion_length tokens; cut the replayed tail first
        ep.completion_ids = ep.completion_ids[: s.max_completion_length]
        ep.env_mask = ep.env_mask[: s.max_completion_length]
    return episodes
