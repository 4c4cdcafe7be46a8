"""Stage 3 of training: RL from the SFT model with the behavioural reward, KL-anchored.

Run: ``bc-train rl [--config FILE] [--sft DIR] [--dataset DIR] [--out DIR]`` (settings:
:class:`RLSettings`, the ``[rl]`` table of a config file; ``[ppo]``, its former name, is read too).

The algorithm is TRL's ``GRPOTrainer``: PPO's clipped policy-gradient objective, with the
advantage of each episode taken relative to the other episodes of the same prompt (a
group of ``num_generations``) instead of from a learned value model, plus a KL penalty
``beta`` to a reference policy. TRL removed its ``PPOTrainer`` in 1.13 (and it needed a
reward *model* and a value model); GRPO takes our plain reward function and needs no
critic, which also halves the memory. ``beta`` must be > 0 here (TRL's default is 0:
no KL at all), and ``num_iterations`` > 1 reuses each batch so the clipping bites.

What it does, in order (nothing is written until every input checked out):

1. load the base named by the SFT run and merge the SFT LoRA into it; the policy trains
   a *fresh* LoRA on top, so "adapter off" — TRL's reference for the KL — is exactly
   the SFT policy;
2. turn the dataset's ``train`` split into tasks (prompt, tools, Claude's workflow);
3. roll out: every episode is multi-step against the replay environment built from the
   task's trace (:mod:`training.policy`); replayed tool outputs are in the sequence but
   masked out of the loss;
4. score each episode with :class:`training.reward.BehavioralRewardModel`;
5. every ``eval_steps`` (and at the end) play the held-out ``eval`` split greedily; stop
   once its mean reward passes ``gate`` (0.80 by default: the reward gate of
   ``bc-train eval``);
6. checkpoint every ``save_steps`` (50) into ``<out>.partial/checkpoints``, then write
   the adapter, ``metrics.json``, ``curves.png`` (reward and KL per step, held-out reward),
   the top-reward episodes for audit (``audit.jsonl``) and ``run.json``, and rename
   ``<out>.partial`` to ``<out>``.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any, Literal, cast

from pydantic import Field

from claude_bc.capture import paths
from claude_bc.capture.errors import BCError
from claude_bc.training.config import _Settings
from claude_bc.training.policy import (
    Sampling,
    Task,
    load_policy,
    prompt_key,
    run_episodes,
    tasks_from_split,
)
from claude_bc.training.reward import BehavioralRewardModel, Reward


class RLSettings(_Settings):
    """``bc-train rl``: GRPO with a KL penalty, from the SFT model."""

    sft: Path = Field(default_factory=lambda: paths.data_dir() / "models" / "sft")
    dataset: Path = Field(default_factory=lambda: paths.data_dir() / "dataset")
    eval_dataset: Path | None = None  # where eval.jsonl is (default: dataset)
    out: Path = Field(default_factory=lambda: paths.data_dir() / "models" / "rl")
    device: Literal["auto", "cpu", "cuda"] = "auto"
    # 4bit: the merged SFT policy is quantized to NF4 and the RL LoRA trains on it (QLoRA),
    # wherever bitsandbytes runs NF4 (CPU too); auto: on CUDA only, as for bc-train sft
    quantization: Literal["auto", "4bit", "none"] = "auto"
    beta: float = Field(0.04, gt=0)  # KL coefficient to the SFT policy: must be > 0
    epsilon: float = Field(0.2, gt=0)  # PPO clip range
    num_iterations: int = Field(2, ge=1)  # updates per generated batch (clipping needs > 1)
    num_generations: int = Field(4, ge=2)  # episodes per prompt (the GRPO group)
    prompts_per_step: int = Field(1, ge=1)
    max_steps: int = Field(200, ge=1)
    learning_rate: float = Field(1e-5, gt=0)
    lora_r: int = Field(16, ge=1)
    lora_alpha: int = Field(32, ge=1)
    lora_dropout: float = Field(0.05, ge=0.0, lt=1.0)
    max_turns: int = Field(4, ge=1)  # assistant turns per episode
    max_new_tokens: int = Field(256, ge=1)  # per turn
    max_completion_length: int = Field(1024, ge=8)
    temperature: float = Field(1.0, gt=0)
    save_steps: int = Field(50, ge=1)
    eval_steps: int = Field(50, ge=1)
    eval_samples: int = Field(32, ge=1)  # held-out prompts for the gate
    gate: float = Field(0.80, ge=-1.0, le=1.0)
    audit_top: int = Field(20, ge=0)
    seed: int = 42
    progress: bool = True


def log(msg: str) -> None:
    if int(os.environ.get("RANK", "0")) == 0:
        print(f"bc-train rl: {msg}", file=sys.stderr, flush=True)


# --- rollouts and the held-out gate ------------------------------------------------------------


def sampling(s: RLSettings, *, greedy: bool) -> Sampling:
    return Sampling(
        max_turns=s.max_turns,
        max_new_tokens=s.max_new_tokens,
        max_completion_length=s.max_completion_length,
        do_sample=not greedy,
        temperature=s.temperature,
    )


def make_rollout(tasks: list[Task], reward: BehavioralRewardModel, s: RLSettings) -> Any:
    """TRL ``rollout_func``: multi-step replay episodes for the prompts of a batch.

    TRL hands over the batch's prompts (each already repeated ``num_generations``
    times); the other columns come back through the task found for each prompt. The
    episode's candidate trace goes to the reward as the ``candidate`` column.
    """
    from trl.models.utils import unwrap_model_for_generation

    by_prompt = {prompt_key(t.prompt): t for t in tasks}
    sample = sampling(s, greedy=False)

    def rollout(prompts: list[Any], trainer: Any) -> dict[str, Any]:
        batch = [by_prompt[prompt_key(p)] for p in prompts]
        with unwrap_model_for_generation(trainer.model_wrapped, trainer.accelerator) as model:
            episodes = run_episodes(model, trainer.processing_class, batch, sample)
        return {
            "prompt_ids": [e.prompt_ids for e in episodes],
            "completion_ids": [e.completion_ids for e in episodes],
            "logprobs": None,  # generated with transformers: no importance-sampling correction
            "env_mask": [e.env_mask for e in episodes],
            "candidate": [None if e.trace is None else e.trace.record() for e in episodes],
            "completion_text": [e.text for e in episodes],
        }

    return rollout


def heldout_reward(model: Any, tokenizer: Any, tasks: list[Task], s: RLSettings) -> float:
    """Mean reward of greedy episodes on the held-out tasks."""
    reward = BehavioralRewardModel([t.reference for t in tasks], audit_top=0)
    was_training = model.training
    model.eval()
    try:
        episodes = run_episodes(model, tokenizer, tasks, sampling(s, greedy=True))
    finally:
        model.train(was_training)
    scores: list[Reward] = [reward.score_trace(e.trace, e.task.trace_id) for e in episodes]
    return sum(r.total for r in scores) / len(scores)


def gate_callback(tasks: list[Task], s: RLSettings, tokenizer: Any) -> Any:
    """Every ``eval_steps``: held-out reward into the log; stop once it passes the gate."""
    from transformers import TrainerCallback

    class Gate(TrainerCallback):
        passed_at: int | None = None

        def on_step_end(self, args: Any, state: Any, control: Any, **kw: Any) -> Any:
            if not tasks or state.global_step % s.eval_steps:
                return control
            value = heldout_reward(kw["model"], tokenizer, tasks, s)
            state.log_history.append({"step": state.global_step, "heldout_reward": value})
            log(f"step {state.global_step}: held-out reward {value:+.3f} (gate {s.gate:+.2f})")
            if value > s.gate:
                self.passed_at = state.global_step
                control.should_training_stop = True
                control.should_save = True
            return control

    return Gate()


# --- outputs -----------------------------------------------------------------------------------


def write_curves(history: list[dict[str, Any]], out: Path) -> dict[str, Any]:
    """``metrics.json`` and ``curves.png``: reward and KL per step, held-out reward."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    reward = [(h["step"], h["reward"]) for h in history if "reward" in h]
    kl = [(h["step"], h["kl"]) for h in history if "kl" in h]
    held = [(h["step"], h["heldout_reward"]) for h in history if "heldout_reward" in h]
    summary = {
        "steps": max((h.get("step", 0) for h in history), default=0),
        "first_reward": reward[0][1] if reward else None,
        "last_reward": reward[-1][1] if reward else None,
        "max_kl": max((v for _, v in kl), default=None),
        "heldout_reward": held[-1][1] if held else None,
    }
    (out / "metrics.json").write_text(
        json.dumps({"summary": summary, "log_history": history}, indent=2) + "\n"
    )
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(7, 6), sharex=True)
    if reward:
        top.plot(*zip(*reward, strict=True), label="train reward (mean of episodes)")
    if held:
        top.plot(*zip(*held, strict=True), "o-", label="held-out reward (greedy)")
    top.set_ylabel("behavioural reward")
    top.set_ylim(-1.05, 1.05)
    top.legend(loc="lower right")
    if kl:
        bottom.plot(*zip(*kl, strict=True), color="tab:red", label="KL to the SFT policy")
    bottom.set_xlabel("step")
    bottom.set_ylabel("KL")
    bottom.legend(loc="upper left")
    fig.suptitle("bc-train rl (GRPO + KL)")
    fig.tight_layout()
    fig.savefig(out / "curves.png", dpi=100)
    plt.close(fig)
    return summary


def _work_dir(out: Path) -> Path:
    work = out.with_name(out.name + ".partial")
    if out.exists():
        raise BCError(f"{out} exists: pick another --out or remove it")
    if work.exists():
        raise BCError(f"{work} holds an unfinished run: remove it, or pick another --out")
    return work


# --- the run -----------------------------------------------------------------------------------


def train(s: RLSettings) -> Path:
    """The whole stage; returns the finished output folder."""
    from datasets import Dataset
    from peft import LoraConfig
    from trl.trainer.grpo_config import GRPOConfig
    from trl.trainer.grpo_trainer import GRPOTrainer

    if not (s.sft / "run.json").is_file():
        raise BCError(f"{s.sft} is not a finished bc-train sft run: train one first (bc-train sft)")
    tasks = tasks_from_split(s.dataset, "train")
    if not tasks:
        raise BCError(f"{s.dataset}/train.jsonl has no samples (bc-train dataset made none?)")
    held_dir = s.eval_dataset or s.dataset
    held = (
        tasks_from_split(held_dir, "eval", s.eval_samples)
        if (held_dir / "eval.jsonl").is_file()
        else []
    )
    if not held:
        log(f"no held-out samples in {held_dir}/eval.jsonl: the quality gate is off")
    policy = load_policy(str(s.sft), s.device)
    device = str(next(policy.model.parameters()).device)
    work = _work_dir(s.out)
    from claude_bc.training.model import use_4bit

    four_bit = use_4bit(s.quantization, device.split(":")[0])
    if four_bit:
        policy.model = quantized(policy.model, policy.tokenizer, work / "merged", device)
    log(
        f"policy: {' + '.join(policy.chain)} (SFT LoRA merged"
        f"{'; NF4 4-bit, QLoRA' if four_bit else ''}); reference for the KL: the same"
    )
    log(
        f"GRPO: beta {s.beta}, clip {s.epsilon}, {s.num_generations} episodes per prompt, "
        f"up to {s.max_turns} turns each against the replay environment"
    )
    reward = BehavioralRewardModel([t.reference for t in tasks], audit_top=s.audit_top)
    train_ds = Dataset.from_dict(
        {"prompt": [t.prompt for t in tasks], "trace_id": [t.trace_id for t in tasks]}
    )
    cpu = not device.startswith("cuda")
    args = GRPOConfig(
        output_dir=str(work / "checkpoints"),
        beta=s.beta,
        epsilon=s.epsilon,
        num_iterations=s.num_iterations,
        num_generations=s.num_generations,
        per_device_train_batch_size=s.num_generations * s.prompts_per_step,
        gradient_accumulation_steps=1,
        max_steps=s.max_steps,
        learning_rate=s.learning_rate,
        max_completion_length=s.max_completion_length,
        temperature=s.temperature,
        logging_steps=1,
        save_steps=s.save_steps,
        seed=s.seed,
        data_seed=s.seed,
        use_cpu=cpu,
        bf16=not cpu and _bf16(),
        gradient_checkpointing=False,
        report_to="none",
        disable_tqdm=not s.progress,
        remove_unused_columns=False,
    )
    gate = gate_callback(held, s, policy.tokenizer)
    # rollout_func is "experimental" in TRL; pyproject pins the TRL minor it was tested on
    os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")
    trainer = GRPOTrainer(
        model=policy.model,
        reward_funcs=[cast(Any, reward)],  # a plain callable; TRL's hint misses __call__
        args=args,
        train_dataset=train_ds,
        processing_class=policy.tokenizer,
        peft_config=LoraConfig(
            r=s.lora_r,
            lora_alpha=s.lora_alpha,
            lora_dropout=s.lora_dropout,
            target_modules="all-linear",
            task_type="CAUSAL_LM",
        ),
        rollout_func=make_rollout(tasks, reward, s),
        callbacks=[gate],
    )
    log(
        f"training on {len(tasks)} prompts; checkpoints every {s.save_steps} steps in "
        f"{work / 'checkpoints'}"
    )
    trainer.train()
    history = list(trainer.state.log_history)
    if held and gate.passed_at is None:
        final = heldout_reward(trainer.model, policy.tokenizer, held, s)
        history.append({"step": trainer.state.global_step, "heldout_reward": final})
    if trainer.accelerator.is_main_process:
        _finish(s, trainer, policy, work, reward, history, gate.passed_at)
    trainer.accelerator.wait_for_everyone()
    return s.out


def quantized(model: Any, tokenizer: Any, folder: Path, device: str) -> Any:
    """The merged policy reloaded in NF4 4-bit and made ready for k-bit training.

    bitsandbytes quantizes while loading, so the merged model goes through a folder
    (deleted after loading)."""
    from peft import prepare_model_for_kbit_training

    from claude_bc.training.model import Base, load_model

    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    dev = "cuda" if device.startswith("cuda") else "cpu"
    four, _ = load_model(Base(str(folder), "the merged SFT policy"), dev, True, tokenizer)
    shutil.rmtree(folder, ignore_errors=True)
    prepare: Any = prepare_model_for_kbit_training  # untyped
    return prepare(four, use_gradient_checkpointing=False)


def _bf16() -> bool:
    import torch

    return bool(torch.cuda.is_available() and torch.cuda.is_bf16_supported())


def _finish(
    s: RLSettings,
    trainer: Any,
    policy: Any,
    work: Path,
    reward: BehavioralRewardModel,
    history: list[dict[str, Any]],
    passed_at: int | None,
) -> None:
    trainer.model.save_pretrained(work / "adapter")
    policy.tokenizer.save_pretrained(work / "adapter")
    summary = write_curves(history, work)
    reward.write_audit(work / "audit.jsonl")
    base = policy.chain[0]
    run = {
        "stage": "rl",
        "algorithm": "GRPO (PPO-clip objective, group-relative advantages, no critic) + KL",
        "base": base,
        "sft": str(s.sft.resolve()),
        "settings": json.loads(s.model_dump_json()),
        "summary": summary,
        "gate": {"threshold": s.gate, "passed_at_step": passed_at},
        "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    (work / "run.json").write_text(json.dumps(run, indent=2) + "\n")
    work.rename(s.out)
    log(f"adapter: {s.out / 'adapter'} (a LoRA on the merged SFT model)")
    log(
        f"curves: {s.out / 'curves.png'}; metrics: {s.out / 'metrics.json'}; "
        f"top-reward episodes for audit: {s.out / 'audit.jsonl'}"
    )
    held = summary["heldout_reward"]
    if passed_at is not None:
        verdict = f"passed the {s.gate:+.2f} gate at step {passed_at}"
    elif held is None:
        verdict = "no held-out split, so the gate was not checked"
    else:
        verdict = f"held-out reward {held:+.3f}, gate {s.gate:+.2f} not passed"
    log(
        f"{summary['steps']} steps, train reward {summary['first_reward']} -> "
        f"{summary['last_reward']}, max KL {summary['max_kl']}; {verdict}"
    )
