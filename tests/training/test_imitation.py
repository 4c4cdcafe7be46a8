"""The imitation benchmark in miniature (issue 15): real Claude Code captures a handful of
teacher traces through our hooks, SmolLM2-135M is fine-tuned on them, and on held-out
tasks (unseen names and paths, reworded requests) the SFT model writes well-formed tool
calls where the base model does not."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.e2e


def test_sft_beats_base_on_heldout_parsable_calls(tmp_path: Path) -> None:
    out = tmp_path / "result.json"
    cmd = [
        sys.executable,
        str(REPO / "benchmarks" / "bench_imitation.py"),
        "--train-per-family", "1",
        "--heldout-per-family", "0",  # the reworded held-out task of each family only
        "--sft-steps", "12",
        "--no-rl",
        "--eval-turns", "2",
        "--eval-tokens", "64",
        "--root", str(tmp_path / "project"),
        "--cache", str(tmp_path / "cache"),
        "--out", str(tmp_path / "work"),
        "--json", str(out),
    ]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=1200, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(out.read_text())
    assert report["instances"] == {"train": 6, "heldout": 6}
    base, sft = report["models"]["base"], report["models"]["sft"]
    assert sft["parsable_call_rate"] > base["parsable_call_rate"], report["models"]
    assert report["sft"]["last_loss"] < report["sft"]["first_loss"]
