"""``bc-train sft`` on a tiny random Llama: masks, learning, resume, 2 processes, bad input."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from claude_bc.cli import main
from claude_bc.training.config import SFTSettings
from claude_bc.training.dataset import load_split
from tests.conftest import REPO
from tests.training.conftest import workflow, write_store

FAST = {
    "grad_accum": 1,
    "batch_size": 2,
    "max_length": 1024,
    "learning_rate": 5e-3,
    "warmup": 0.0,
    "logging_steps": 1,
    "progress": False,
}


def run_cli(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    with pytest.raises(SystemExit) as exit_info:
        main(args)
        raise SystemExit(0)
    return int(exit_info.value.code or 0), capsys.readouterr().err


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Four real-shaped workflows with small tool schemas, built by `bc-train dataset`."""
    from claude_bc.training.config import DatasetConfig
    from claude_bc.training.dataset import run
    from tests.training.conftest import SMALL_TOOLS

    root = tmp_path_factory.mktemp("sft-data")
    tools = root / "tools.json"
    tools.write_text(json.dumps(SMALL_TOOLS))
    traces = [workflow(f"s{i}", f"Fix bug {i}") for i in range(4)]
    write_store(root, traces)
    run(
        DatasetConfig(
            traces=root / "traces",
            out=root / "dataset",
            tool_schemas=tools,
            eval_fraction=0.0,
            max_length=1024,
        )
    )
    return root / "dataset"


def config(tmp_path: Path, **values: Any) -> Path:
    path = tmp_path / "sft.json"
    path.write_text(json.dumps({"sft": {**FAST, **values}}, default=str))
    return path


def lora_b_norm(adapter: Path) -> float:
    from safetensors.torch import load_file

    weights = load_file(str(adapter / "adapter_model.safetensors"))
    return sum(float(v.abs().sum()) for k, v in weights.items() if "lora_B" in k)


@pytest.mark.parametrize("split", ["llama3", "gpt2"])
def test_trl_trains_the_ids_generation_feeds_and_only_the_assistant_tokens(
    split: str, tiny_model: Path, dataset: Path, tmp_path: Path
) -> None:
    from claude_bc.training import model as models
    from claude_bc.training import sft
    from claude_bc.training.template import chat_ids
    from claude_bc.training.tiny import build_tiny

    base = tiny_model if split == "llama3" else build_tiny(tmp_path / "gpt2", gpt2_split=True)
    s = SFTSettings(base=str(base), dataset=dataset, out=tmp_path / "o", **FAST)
    tok = models.load_tokenizer(str(base))
    model, rows = models.load_model(models.Base(str(base), "test"), "cpu", False, tok)
    trainer = sft._trainer(
        s, model, tok, load_split(dataset, "train"), None, tmp_path, "cpu", False, rows
    )
    row = trainer.train_dataset[0]
    source = load_split(dataset, "train")[0]
    # the same ids as generation feeds (tests/training/test_template.py), which TRL's own
    # tokenization of the whole text misses at every assistant header for GPT-2's split
    ids, mask = chat_ids(tok, source["messages"], source["tools"])
    whole = tok.apply_chat_template(
        source["messages"], tools=source["tools"], tokenize=True, return_dict=True
    )["input_ids"]
    assert row["input_ids"] == ids
    assert (whole == ids) == (split == "llama3")
    for token, label, m in zip(row["input_ids"], row["labels"], mask, strict=True):
        assert label == (token if m else -100)
    assert sum(mask) > 20


def test_a_chat_with_no_assistant_turn_is_one_clear_error(tiny_model: Path) -> None:
    from datasets import Dataset

    from claude_bc.capture.errors import BCError
    from claude_bc.training import model as models
    from claude_bc.training import sft

    tok = models.load_tokenizer(str(tiny_model))
    rows = Dataset.from_list(
        [{"trace_id": "t1", "messages": [{"role": "user", "content": "hi"}], "tools": []}]
    )
    with pytest.raises(BCError, match="t1: no assistant turn"):
        sft.tokenized(rows, tok, assistant_only=True)
    # with the loss on every token, the same chat trains as it is
    assert sft.tokenized(rows, tok, assistant_only=False).column_names == ["input_ids"]


def test_sft_learns_and_writes_adapter_curves_and_metrics(
    tiny_model: Path, dataset: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "sft"
    code, err = run_cli(
        [
            "sft",
            "--config",
            str(config(tmp_path, save_steps=100)),
            "--base",
            str(tiny_model),
            "--dataset",
            str(dataset),
            "--out",
            str(out),
            "--max-steps",
            "6",
        ],
        capsys,
    )
    assert code == 0, err
    assert "plain LoRA" in err and "QLoRA on CPU is ~13x slower" in err
    assert f"adapter: {out / 'adapter'}" in err
    metrics = json.loads((out / "metrics.json").read_text())["summary"]
    assert metrics["steps"] == 6
    assert metrics["last_loss"] < metrics["first_loss"] - 0.3
    assert lora_b_norm(out / "adapter") > 0  # B starts at zero: the adapter really trained
    assert (out / "loss.png").read_bytes()[:4] == b"\x89PNG"
    run = json.loads((out / "run.json").read_text())
    assert run["device"] == "cpu" and run["quantization"] == "none"
    assert run["precision"] == "fp32"  # the default on CPU
    assert run["settings"]["lora_r"] == 16 and run["settings"]["lora_alpha"] == 32
    config_json = json.loads((out / "adapter" / "adapter_config.json").read_text())
    targets = {name.rsplit(".", 1)[-1] for name in config_json["target_modules"]}
    assert targets == {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"}
    assert "{%- generation %}" in (out / "adapter" / "chat_template.jinja").read_text()
    assert not out.with_name("sft.partial").exists()


def test_bf16_autocast_on_cpu_learns(
    tiny_model: Path, dataset: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``bf16 = true`` trains under bf16 autocast on a CPU too (1.4x faster where the CPU has
    avx512_bf16); the adapter still learns and is saved in full precision."""
    out = tmp_path / "sft"
    cfg = config(tmp_path, save_steps=100, bf16=True)
    args = ["sft", "--config", str(cfg), "--base", str(tiny_model), "--dataset", str(dataset)]
    code, err = run_cli([*args, "--out", str(out), "--max-steps", "6"], capsys)
    assert code == 0, err
    run = json.loads((out / "run.json").read_text())
    assert run["device"] == "cpu" and run["precision"] == "bf16"
    metrics = json.loads((out / "metrics.json").read_text())["summary"]
    assert metrics["last_loss"] < metrics["first_loss"] - 0.3
    from safetensors.torch import load_file

    weights = load_file(str(out / "adapter" / "adapter_model.safetensors"))
    assert {str(v.dtype) for v in weights.values()} == {"torch.float32"}
    assert lora_b_norm(out / "adapter") > 0


def test_resume_continues_from_the_checkpoint_step(
    tiny_model: Path, dataset: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "sft"
    common = [
        "--config",
        str(config(tmp_path, save_steps=2)),
        "--base",
        str(tiny_model),
        "--dataset",
        str(dataset),
        "--out",
        str(out),
    ]
    assert run_cli(["sft", *common, "--max-steps", "2"], capsys)[0] == 0
    first = json.loads((out / "metrics.json").read_text())["log_history"]
    code, err = run_cli(["sft", *common, "--max-steps", "4", "--resume"], capsys)
    assert code == 0, err
    history = json.loads((out / "metrics.json").read_text())["log_history"]
    steps = [h["step"] for h in history if "loss" in h]
    assert steps == [1, 2, 3, 4]
    # steps 1-2 come from the checkpoint, not from training again
    assert [h for h in history if h["step"] <= 2 and "loss" in h] == [
        h for h in first if "loss" in h
    ]
    assert (out / "checkpoints" / "checkpoint-4").is_dir()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--base", "/no/such/model"], "base model /no/such/model is not a model folder"),
        (["--base", "nobody/no-such-model"], "base model 'nobody/no-such-model' not found"),
        (["--device", "cuda"], "no CUDA GPU is available"),
        (["--dataset", "/no/such/dataset"], "no train.jsonl in /no/such/dataset"),
        (["--epochs", "-1"], "epochs: Input should be greater than 0"),
        (["--resume"], "nothing to resume"),
    ],
)
def test_bad_input_is_one_clear_error_and_no_output(
    args: list[str],
    message: str,
    tiny_model: Path,
    dataset: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    out = tmp_path / "sft"
    base = [] if any(a == "--base" for a in args) else ["--base", str(tiny_model)]
    code, err = run_cli(["sft", "--dataset", str(dataset), "--out", str(out), *base, *args], capsys)
    assert code == 1
    assert err.startswith("bc-train: error: ") and message in err, err
    assert err.count("\n") == 1
    assert not out.exists() and not out.with_name("sft.partial").exists()


def test_corrupt_dataset_row_is_one_clear_error(
    tiny_model: Path, dataset: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "train.jsonl").write_text((dataset / "train.jsonl").read_text() + "{not json\n")
    code, err = run_cli(
        ["sft", "--dataset", str(broken), "--base", str(tiny_model), "--out", str(tmp_path / "o")],
        capsys,
    )
    assert code == 1 and "train.jsonl:5: not valid JSON" in err and err.count("\n") == 1
    assert not (tmp_path / "o").exists()


def test_two_process_accelerate_launch(tiny_model: Path, dataset: Path, tmp_path: Path) -> None:
    out = tmp_path / "sft"
    accelerate = Path(sys.executable).with_name("accelerate")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
    proc = subprocess.run(
        [
            str(accelerate),
            "launch",
            "--config_file",
            str(REPO / "training" / "accelerate" / "cpu_ddp.yaml"),
            "-m",
            "claude_bc.training.sft",
            "--config",
            str(config(tmp_path, save_steps=100, batch_size=1)),
            "--base",
            str(tiny_model),
            "--dataset",
            str(dataset),
            "--out",
            str(out),
            "--max-steps",
            "3",
        ],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=400,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    run = json.loads((out / "run.json").read_text())
    assert run["processes"] == 2 and run["summary"]["steps"] == 3
    state = json.loads((out / "checkpoints" / "checkpoint-3" / "trainer_state.json").read_text())
    # 4 samples, batch 1 per process, 2 processes: an epoch is 2 steps
    assert state["global_step"] == 3 and state["epoch"] == pytest.approx(1.5)
    assert lora_b_norm(out / "adapter") > 0


@pytest.mark.slow
def test_added_special_tokens_start_apart_from_their_names() -> None:
    # SmolLM2 lacks Llama 3.1's tokens: mean resizing starts <|python_tag|> and <|eot_id|>
    # with near-equal rows, and a short SFT then ended its turns where a call was due
    import torch

    from claude_bc.training.model import embedded_base, load_model, load_tokenizer, resolve_base

    base = resolve_base("embedded:smollm2")
    assert Path(base.path) == embedded_base()
    tok = load_tokenizer(base.path)
    model, rows = load_model(base, "cpu", False, tok)
    table = model.get_input_embeddings().weight
    tag, eot = (tok.convert_tokens_to_ids(t) for t in ("<|python_tag|>", "<|eot_id|>"))
    assert {tag, eot} <= set(rows)
    words = tok.encode("python tag", add_special_tokens=False)
    assert torch.allclose(table[tag], table[words].mean(dim=0))
    cos = torch.nn.functional.cosine_similarity(table[tag], table[eot], dim=0)
    assert float(cos) < 0.9
    assert model.get_output_embeddings().weight.data_ptr() == table.data_ptr()  # tied
