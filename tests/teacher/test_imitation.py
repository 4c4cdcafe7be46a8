"""Training clones behaviour: a tiny run of ``benchmarks/bench_imitation.py`` end to end.

Teacher traces captured through the real Claude Code and our hooks, ``bc-train dataset``
and ``sft`` on the embedded SmolLM2-135M, then ``bc-train eval`` of base and SFT acting turn
by turn on held-out tasks (unseen names, paths and values, plus one reworded request per
family). Three families, three training traces each, 20 LoRA steps: minutes on 2 cores.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO

# ~10 min on an idle 2-core machine (SFT ~32k tokens at ~100 tokens/s); 30+ min when shared
pytestmark = [pytest.mark.e2e, pytest.mark.timeout(3000)]


def test_sft_beats_base_on_held_out_parsable_calls(tmp_path: Path) -> None:
    report_file = tmp_path / "report.json"
    cmd = [
        sys.executable,
        str(REPO / "benchmarks" / "bench_imitation.py"),
        "--families", "locate,fix_test,config",
        "--train-per-family", "3",
        "--heldout-per-family", "1",
        "--sft-steps", "20",
        "--eval-turns", "4",
        "--no-rl",
        "--no-claude-code",
        "--cache", str(tmp_path / "cache"),
        "--root", str(tmp_path / "project"),
        "--out", str(tmp_path / "work"),
        "--json", str(report_file),
    ]  # fmt: skip
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(report_file.read_text())
    assert report["instances"] == {"train": 9, "heldout": 6}
    base, sft = report["models"]["base"], report["models"]["sft"]
    # the base has never seen the call format; after SFT the model calls tools
    assert sft["parsable_call_rate"] > base["parsable_call_rate"], report["models"]
    assert sft["tool_alignment"] > base["tool_alignment"], report["models"]
    assert report["sft"]["last_loss"] < report["sft"]["first_loss"]
