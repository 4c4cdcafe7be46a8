"""Session fixtures of the export tests: the tiny model, a LoRA adapter trained on nothing
but initialised non-zero (so merging changes the weights), and one real export of it."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

BC_TRAIN = Path(sys.executable).with_name("bc-train")

# An `ollama` stand-in: the one part faked here (Ollama cannot be installed from any
# registry). It records its arguments and the Modelfile it was given.
FAKE_OLLAMA = """#!/bin/sh
printf '%s\\n' "$@" > "$OLLAMA_LOG_DIR/argv.txt"
while [ $# -gt 0 ]; do
  if [ "$1" = "-f" ]; then cp "$2" "$OLLAMA_LOG_DIR/Modelfile"; fi
  shift
done
echo "success"
"""


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from claude_bc.training.tiny import build_tiny

    return build_tiny(tmp_path_factory.mktemp("tiny") / "model")


@pytest.fixture(scope="session")
def sft_output(tiny_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A training output folder as `bc-train sft` writes it: adapter/ + run.json."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    out = tmp_path_factory.mktemp("sft") / "run"
    torch.manual_seed(1)
    model = AutoModelForCausalLM.from_pretrained(tiny_model, dtype=torch.float32)
    cfg = LoraConfig(
        r=16,
        lora_alpha=32,
        target_modules="all-linear",
        init_lora_weights=False,
        task_type="CAUSAL_LM",
    )
    get_peft_model(model, cfg).save_pretrained(out / "adapter")
    AutoTokenizer.from_pretrained(tiny_model).save_pretrained(out / "adapter")
    (out / "run.json").write_text(json.dumps({"base": str(tiny_model)}))
    return out


def fake_ollama_dir(root: Path) -> Path:
    bin_dir = root / "bin"
    bin_dir.mkdir(parents=True, exist_ok=True)
    script = bin_dir / "ollama"
    script.write_text(FAKE_OLLAMA)
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return bin_dir


@pytest.fixture(scope="session")
def exported(sft_output: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """One `bc-train export` of the adapter, with the stand-in `ollama` on PATH."""
    root = tmp_path_factory.mktemp("export")
    logs = root / "ollama-log"
    logs.mkdir()
    env = {
        **os.environ,
        "PATH": f"{fake_ollama_dir(root)}{os.pathsep}{os.environ['PATH']}",
        "OLLAMA_LOG_DIR": str(logs),
        "BC_HOME": str(root / "bc-home"),
    }
    out = root / "models"
    proc = subprocess.run(
        [str(BC_TRAIN), "export", "--model", str(sft_output), "--out", str(out)],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return {"out": out, "stdout": proc.stdout, "ollama_log": logs}
