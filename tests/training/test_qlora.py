"""QLoRA on CPU (issue 15): NF4 + double quantization + bf16 compute, chosen by what
bitsandbytes supports, on the tiny random Llama, beside plain LoRA on the same data."""

from __future__ import annotations

import json
import resource
import time
from pathlib import Path

import pytest

from claude_bc.training.model import bnb_4bit_supported, use_4bit
from tests.training.test_sft import FAST, config, dataset, lora_b_norm, run_cli  # noqa: F401


@pytest.mark.slow
def test_bitsandbytes_decides_not_cuda() -> None:
    assert bnb_4bit_supported("cpu") is None  # bitsandbytes 0.50 quantizes NF4 on CPU
    assert use_4bit("4bit", "cpu") and not use_4bit("auto", "cpu") and not use_4bit("none", "cpu")


def test_qlora_trains_on_cpu_beside_plain_lora(
    tiny_model: Path,
    dataset: Path,  # noqa: F811
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    runs = {}
    for quant in ("4bit", "none"):
        out = tmp_path / quant
        cfg = config(tmp_path, max_steps=6, quantization=quant)
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        t0 = time.monotonic()
        args = ["sft", "--config", str(cfg), "--base", str(tiny_model), "--out", str(out)]
        args += ["--dataset", str(dataset)]
        code, err = run_cli(args, capsys)
        assert code == 0, err
        run = json.loads((out / "run.json").read_text())
        runs[quant] = {
            "s": time.monotonic() - t0,
            "rss_growth_mb": (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024,
            "run": run,
        }
        assert lora_b_norm(out / "adapter") > 0  # B starts at zero: the adapter trained
        summary = run["summary"]
        assert summary["last_loss"] < summary["first_loss"], summary  # it learned
    q = runs["4bit"]["run"]
    assert q["quantization"] == "4bit-nf4" and q["device"] == "cpu"
    for quant, r in runs.items():  # shown with -s; the README quotes a measured run
        tokens = r["run"]["summary"]["train_tokens"]
        print(f"{quant}: {r['s']:.1f} s, {tokens} tokens, rss growth {r['rss_growth_mb']:.0f} MB")
