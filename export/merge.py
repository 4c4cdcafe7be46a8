"""A trained model as one plain HF checkpoint: the LoRA adapter merged into its base.

What ``bc-train export`` accepts as ``--model``:

* a training output folder (``bc-train sft`` / ``rl``): ``adapter/`` + ``run.json`` naming
  the base it was trained on (and, for RL, the SFT run under it);
* a PEFT adapter folder (``adapter_config.json`` names the base);
* a full model folder (``config.json`` + weights), e.g. an already merged model.

The checkpoint is written to ``out`` with the tokenizer that training saved and the
training chat template (``training.template.CHAT_TEMPLATE``) on it, so the converter embeds
that template in the GGUF.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from claude_bc.capture.errors import BCError
from claude_bc.training.template import CHAT_TEMPLATE


def locate(model: Path, base: str | None = None) -> tuple[list[Path], str]:
    """``(adapters to merge, oldest first; base model or the model folder itself)``.

    An RL output stands on its SFT run: its adapter was trained on the SFT-merged weights,
    so both are merged, in order (``run.json``'s ``sft``), as eval and serve load it. The
    ``adapter/`` folder of a run stands for the run (its config names only the bare base)."""
    if model.name == "adapter" and (model.parent / "run.json").is_file():
        model = model.parent
    if (model / "adapter" / "adapter_config.json").is_file():
        if (model / "run.json").is_file():
            from claude_bc.training.policy import run_chain

            trained_on, adapters = run_chain(model)
            return adapters, base or trained_on
        return [model / "adapter"], base or _adapter_base(model / "adapter")
    if (model / "adapter_config.json").is_file():
        return [model], base or _adapter_base(model)
    if (model / "config.json").is_file():
        return [], str(model)
    raise BCError(f"{model}: not a model, adapter or training output folder")


def _adapter_base(adapter: Path) -> str:
    cfg = json.loads((adapter / "adapter_config.json").read_text())
    found = cfg.get("base_model_name_or_path")
    if not found:
        raise BCError(f"{adapter}: the adapter does not say which base it was trained on")
    return str(found)


def merge(model: Path, out: Path, base: str | None = None) -> Path:
    """Write the merged checkpoint (in the dtype of the base) and tokenizer to ``out``."""
    from transformers import AutoModelForCausalLM

    adapters, base_path = locate(model, base)
    tokenizer = _tokenizer(adapters[-1] if adapters else model, base_path)
    try:
        merged: Any = AutoModelForCausalLM.from_pretrained(base_path, dtype="auto")
    except (OSError, ValueError) as exc:
        raise BCError(f"cannot load {base_path}: {str(exc).splitlines()[0]}") from exc
    if adapters:
        from claude_bc.training.policy import merge_adapters

        if len(tokenizer) > merged.get_input_embeddings().weight.shape[0]:
            # training added the Llama 3.1 special tokens the base lacked
            merged.resize_token_embeddings(len(tokenizer))
        merged = merge_adapters(merged, adapters)
    out.mkdir(parents=True, exist_ok=True)
    merged.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


def _tokenizer(preferred: Path, fallback: str) -> Any:
    from transformers import AutoTokenizer

    for source in (preferred, fallback):
        try:
            tok = AutoTokenizer.from_pretrained(source)
            break
        except (OSError, ValueError):
            continue
    else:
        raise BCError(f"no tokenizer in {preferred} or {fallback}")
    tok.chat_template = CHAT_TEMPLATE
    return tok
