"""The export chain on the tiny model: merge → GGUF f16 → q4_k_m → checks → Ollama."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from claude_bc.capture.errors import BCError
from claude_bc.export import fidelity, merge, ollama
from claude_bc.export.serve import LocalModel
from claude_bc.training.template import CHAT_TEMPLATE, parse_tool_calls
from tests.export.conftest import BC_TRAIN, fake_ollama_dir


def tensor_types(path: Path) -> dict[str, int]:
    """How many tensors of each type a GGUF file holds (e.g. ``{"Q4_K": 14, "F32": 5}``)."""
    from collections import Counter

    from gguf import GGUFReader

    reader = GGUFReader(str(path))
    return dict(Counter(t.tensor_type.name for t in reader.tensors))


def test_export_writes_checked_gguf_files_named_as_in_the_seeds(exported: dict[str, Any]) -> None:
    out: Path = exported["out"]
    assert sorted(p.name for p in out.iterdir()) == [
        "Modelfile",
        "fidelity.json",
        "llama-claude-bc-v1-f16.gguf",
        "llama-claude-bc-v1.gguf",
    ]
    report = json.loads((out / "fidelity.json").read_text())
    assert report["failures"] == []
    assert report["template_embedded"] and report["tokenization_matches"]
    assert report["f16_nmse"] < 1e-4
    assert 0.0 <= report["q4_top1_agreement"] <= 1.0
    assert report["roundtrip"]["ok"] and report["roundtrip"]["calls"][0]["name"] in {
        "Read",
        "Bash",
    }
    assert "q4_k_m top-1 agreement" in exported["stdout"]
    # hidden size 256: Q4_K applies to the weight matrices, none falls back to f16
    types = tensor_types(out / "llama-claude-bc-v1.gguf")
    assert types.get("Q4_K", 0) > 0 and "F16" not in types


def test_llama_cpp_loads_the_export_and_generates(exported: dict[str, Any]) -> None:
    model = LocalModel(exported["out"] / "llama-claude-bc-v1.gguf", n_ctx=1024)
    assert model.template == CHAT_TEMPLATE  # the training template travels in the file
    tokens = model.llm.tokenize(b"<|begin_of_text|>def main():", add_bos=False, special=True)
    result = model.complete(list(tokens), max_tokens=8, temperature=0.0)
    assert result.output_tokens > 0 and result.text
    assert result.finish in ("max_tokens", "end_turn")


def test_ollama_create_gets_the_modelfile_with_the_training_template(
    exported: dict[str, Any],
) -> None:
    logs: Path = exported["ollama_log"]
    argv = (logs / "argv.txt").read_text().split("\n")
    assert argv[:3] == ["create", "cc-claude-agent:latest", "-f"]
    text = (logs / "Modelfile").read_text()
    assert f"FROM {exported['out'] / 'llama-claude-bc-v1.gguf'}" in text
    for stop in ("<|eot_id|>", "<|eom_id|>", "<|end_of_text|>"):
        assert f'PARAMETER stop "{stop}"' in text
    assert "<|python_tag|>" in text and "{{ range .Messages }}" not in text  # Go syntax
    assert "registered with Ollama as cc-claude-agent:latest" in exported["stdout"]


def test_without_ollama_the_command_to_run_is_printed(
    exported: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # no ollama anywhere
    message = ollama.register(exported["out"] / "Modelfile")
    assert "ollama is not installed" in message
    assert f"ollama create cc-claude-agent:latest -f {exported['out'] / 'Modelfile'}" in message


def test_a_failing_ollama_create_is_an_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bin_dir = fake_ollama_dir(tmp_path)
    (bin_dir / "ollama").write_text("#!/bin/sh\necho 'Error: invalid model file' >&2\nexit 1\n")
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    with pytest.raises(BCError, match="invalid model file"):
        ollama.register(tmp_path / "Modelfile")


def test_merge_bakes_the_adapter_into_the_weights(sft_output: Path, tmp_path: Path) -> None:
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    merged_dir = merge.merge(sft_output, tmp_path / "hf")
    base_dir = json.loads((sft_output / "run.json").read_text())["base"]
    peft_model = PeftModel.from_pretrained(
        AutoModelForCausalLM.from_pretrained(base_dir), sft_output / "adapter"
    )
    ids = torch.tensor([[1, 50, 300, 7, 900]])
    with torch.no_grad():
        with_adapter = peft_model(ids).logits
        with peft_model.disable_adapter():
            plain = peft_model(ids).logits
        merged = AutoModelForCausalLM.from_pretrained(merged_dir)(ids).logits
    assert torch.allclose(merged, with_adapter, atol=1e-4)
    assert not torch.allclose(merged, plain, atol=1e-3)  # the adapter did change the model
    assert (merged_dir / "chat_template.jinja").read_text() == CHAT_TEMPLATE


def test_merge_of_an_rl_run_stacks_its_sft_adapter_under_it(
    tiny_model: Path, sft_output: Path, tmp_path: Path
) -> None:
    """`bc-train rl` trains its LoRA on the SFT-merged weights and names the SFT run in
    run.json: exporting it must merge SFT first, then RL (it once merged RL alone onto the
    base, shipping a model that had lost what SFT taught)."""
    import torch
    from peft import LoraConfig, PeftModel, get_peft_model
    from transformers import AutoModelForCausalLM

    rl = tmp_path / "rl"
    torch.manual_seed(2)
    cfg = LoraConfig(r=4, target_modules="all-linear", init_lora_weights=False)
    get_peft_model(AutoModelForCausalLM.from_pretrained(tiny_model), cfg).save_pretrained(
        rl / "adapter"
    )  # its adapter_config names the plain base, as the RL stage's does
    (rl / "run.json").write_text(json.dumps({"base": str(tiny_model), "sft": str(sft_output)}))

    merged_dir = merge.merge(rl, tmp_path / "hf")
    # naming the run's adapter/ folder is the same as naming the run
    assert merge.locate(rl / "adapter") == merge.locate(rl)

    def with_adapters(*adapters: Path) -> Any:
        model: Any = AutoModelForCausalLM.from_pretrained(tiny_model)
        for adapter in adapters:
            model = PeftModel.from_pretrained(model, adapter).merge_and_unload()
        return model

    ids = torch.tensor([[1, 50, 300, 7, 900]])
    with torch.no_grad():
        merged = AutoModelForCausalLM.from_pretrained(merged_dir)(ids).logits
        stacked = with_adapters(sft_output / "adapter", rl / "adapter")(ids).logits
        rl_alone = with_adapters(rl / "adapter")(ids).logits
    assert torch.allclose(merged, stacked, atol=1e-4)
    assert not torch.allclose(merged, rl_alone, atol=1e-3)


def test_the_checks_catch_a_gguf_that_is_not_the_model(
    tiny_model: Path, exported: dict[str, Any]
) -> None:
    out = exported["out"]
    # the export of the adapter-merged model compared with the plain base: logits differ
    report = fidelity.check(
        tiny_model, out / "llama-claude-bc-v1-f16.gguf", out / "llama-claude-bc-v1.gguf"
    )
    assert report.f16_nmse > 1e-4
    with pytest.raises(fidelity.FidelityError, match="f16 logits NMSE"):
        fidelity.require(report)


def test_an_unknown_pre_tokenizer_stops_the_export_and_leaves_nothing(
    tiny_model: Path, tmp_path: Path
) -> None:
    model = tmp_path / "model"
    shutil.copytree(tiny_model, model)
    tok = json.loads((model / "tokenizer.json").read_text())
    tok["pre_tokenizer"] = {
        "type": "ByteLevel",
        "add_prefix_space": True,
        "trim_offsets": True,
        "use_regex": True,
    }
    (model / "tokenizer.json").write_text(json.dumps(tok))
    out = tmp_path / "out"
    proc = subprocess.run(
        [str(BC_TRAIN), "export", "--model", str(model), "--out", str(out), "--no-ollama"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env={**os.environ, "BC_HOME": str(tmp_path / "home")},
    )
    assert proc.returncode == 1
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("bc-train: error: GGUF conversion")
    assert "BPE pre-tokenizer was not recognized" in last
    assert list(out.iterdir()) == []


def test_parse_of_the_round_trip_call_matches_the_template(exported: dict[str, Any]) -> None:
    generated = json.loads((exported["out"] / "fidelity.json").read_text())["roundtrip"]
    turn = parse_tool_calls(generated["generated"])
    assert [{"name": c["name"], "input": c["arguments"]} for c in turn.tool_calls] == generated[
        "calls"
    ]


class _Vocab:
    """llama.cpp's ``tokenize`` for a vocabulary with or without ``<|python_tag|>``."""

    def __init__(self, has_tag: bool) -> None:
        self.has_tag = has_tag

    def tokenize(self, text: bytes, add_bos: bool = True, special: bool = False) -> list[int]:
        return [7] if self.has_tag and special else list(text)


def test_the_call_grammar_names_the_tag_as_the_vocabulary_has_it() -> None:
    # a trained model has <|python_tag|> as one special token: the grammar names the token;
    # a base model exported as it is (SmolLM2 for the base-in-Claude-Code run) has none,
    # and naming it made llama.cpp refuse the grammar, so the tag is then plain text
    assert fidelity.call_grammar(_Vocab(True)).startswith("\nroot ::= <|python_tag|> call")
    assert fidelity.call_grammar(_Vocab(False)).startswith('\nroot ::= "<|python_tag|>" call')
