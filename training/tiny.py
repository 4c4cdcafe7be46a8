"""A tiny random Llama with a locally trained tokenizer, for tests, CI and benchmarks.

Nothing is downloaded: the byte-level BPE vocabulary is trained with ``tokenizers`` on
text that ships with Python (a few standard-library sources) plus the chat template's
own markup, and the Llama 3.1 special tokens are added, so our chat template renders
exactly as with the real Llama 3.1 tokenizer. Every weight matrix has rows that are a
multiple of 256 wide, so a later Q4_K quantization applies to every tensor.

Run: ``python -m claude_bc.training.tiny OUT_DIR`` (or ``build_tiny(path)`` from code).
"""

from __future__ import annotations

import inspect
import json
import sys
from pathlib import Path
from typing import Any

from claude_bc.training.template import BOS, CHAT_TEMPLATE, EOT, PAD, SPECIAL_TOKENS

HIDDEN = 256
LAYERS = 2
VOCAB = 2048  # trained vocabulary size before the special tokens
# Llama 3's pre-tokenizer split (from its tokenizer.json): "\n\n" stays one token, as there
LLAMA3_SPLIT = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"
    r"|\s*[\r\n]+|\s+(?!\S)|\s+"
)


def _corpus() -> list[str]:
    """Deterministic training text: stdlib sources (code + English) and template markup."""
    import argparse
    import json as json_mod
    import pathlib
    import subprocess
    import textwrap

    texts = [inspect.getsource(m) for m in (argparse, json_mod, pathlib, subprocess, textwrap)]
    texts.append(CHAT_TEMPLATE)
    texts.append('{"name": "Read", "parameters": {"file_path": "/home/user/project/app.py"}}')
    return texts


def build_tokenizer(out: Path, *, gpt2_split: bool = False) -> None:
    """Train the byte-level BPE tokenizer and save it as a transformers fast tokenizer.
    ``gpt2_split``: GPT-2's pre-tokenizer split instead of Llama 3's, as SmolLM2 has
    (``\\n\\n`` before a word becomes two tokens there)."""
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = (
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
        if gpt2_split
        else pre_tokenizers.Sequence(
            [
                pre_tokenizers.Split(Regex(LLAMA3_SPLIT), behavior="isolated"),
                pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
            ]
        )
    )
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(_corpus(), trainer=trainer)
    make: Any = PreTrainedTokenizerFast  # untyped constructor
    fast = make(
        tokenizer_object=tok,
        bos_token=BOS,
        eos_token=EOT,
        pad_token=PAD,
        additional_special_tokens=[t for t in SPECIAL_TOKENS if t not in (BOS, EOT, PAD)],
    )
    fast.chat_template = CHAT_TEMPLATE
    fast.model_max_length = 8192
    fast.save_pretrained(out)


def build_tiny(out: Path, *, seed: int = 0, gpt2_split: bool = False) -> Path:
    """Write a tiny random ``LlamaForCausalLM`` + tokenizer to ``out`` (returns ``out``);
    ``gpt2_split``: see :func:`build_tokenizer`."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    build_tokenizer(out, gpt2_split=gpt2_split)
    tokenizer = AutoTokenizer.from_pretrained(out)
    vocab = -(-len(tokenizer) // 256) * 256  # rows padded to a multiple of 256 too
    config = LlamaConfig(
        vocab_size=vocab,
        hidden_size=HIDDEN,
        intermediate_size=2 * HIDDEN,
        num_hidden_layers=LAYERS,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=8192,
        rope_parameters={"rope_type": "default", "rope_theta": 500000.0},
        tie_word_embeddings=False,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config)
    model.generation_config.eos_token_id = [tokenizer.eos_token_id]
    model.save_pretrained(out)
    (out / "tiny.json").write_text(json.dumps({"hidden": HIDDEN, "layers": LAYERS, "vocab": vocab}))
    return out


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python -m claude_bc.training.tiny OUT_DIR")
    print(build_tiny(Path(sys.argv[1])))
