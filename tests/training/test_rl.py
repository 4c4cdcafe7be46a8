"""RL (GRPO + KL), mining and evaluation on the tiny model, end to end on CPU.

One dataset and one real SFT run (1 step) are shared by the module; every stage then runs
for real: TRL GRPOTrainer with replay rollouts, the miner feeding ``bc-train sft``, and the
evaluation report.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from safetensors.torch import load_file

from claude_bc.cli import main
from claude_bc.training import dataset, mine, rl, sft
from claude_bc.training import eval as evaluation
from claude_bc.training.config import DatasetConfig, SFTSettings
from claude_bc.training.policy import Sampling, tasks_from_split
from tests.training.conftest import SMALL_TOOLS, workflow

SMALL = Sampling(max_turns=2, max_new_tokens=8, max_completion_length=64)


@pytest.fixture(scope="module")
def trained(tiny_model: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("rl")
    traces = [
        workflow(f"s{i}", f"Change the greeting {i} in the app. Keep the public API as it is.")
        for i in range(6)
    ]
    for t in traces:  # Claude states a constraint before his first call
        t.tool_calls[0].reasoning = "I can't change the public API, the v1 clients depend on it."
    traces_file = root / "traces.jsonl"
    traces_file.write_text("".join(json.dumps(t.record()) + "\n" for t in traces))
    tools = root / "tools.json"
    tools.write_text(json.dumps(SMALL_TOOLS))
    ds = root / "dataset"
    dataset.run(DatasetConfig(traces=traces_file, out=ds, tool_schemas=tools, eval_fraction=0.4))
    assert (ds / "eval.jsonl").read_text().strip(), "the split left no held-out sample"
    sft_ds = root / "sft-dataset"  # train only: SFT's eval pass is not what is tested here
    sft_ds.mkdir()
    shutil.copy(ds / "train.jsonl", sft_ds / "train.jsonl")
    sft_out = root / "sft"
    sft.train(
        SFTSettings(
            base=str(tiny_model),
            dataset=sft_ds,
            out=sft_out,
            device="cpu",
            max_steps=1,
            grad_accum=1,
            max_length=1024,
            progress=False,
        )
    )
    return {"root": root, "dataset": ds, "sft": sft_out, "tiny": tiny_model}


def test_grpo_moves_off_the_sft_policy_with_kl_and_stops_at_the_gate(
    trained: dict[str, Path],
) -> None:
    out = trained["root"] / "rl"
    settings = rl.RLSettings(
        sft=trained["sft"],
        dataset=trained["dataset"],
        out=out,
        device="cpu",
        max_steps=4,
        num_generations=4,
        num_iterations=2,
        max_turns=2,
        max_new_tokens=8,
        max_completion_length=64,
        learning_rate=5e-3,
        save_steps=1,
        eval_steps=2,
        eval_samples=1,
        gate=-1.0,
        progress=False,
    )
    rl.train(settings)
    history = json.loads((out / "metrics.json").read_text())["log_history"]
    kl = {h["step"]: h["kl"] for h in history if "kl" in h}
    # step 1 scores with the fresh LoRA (B = 0): the policy *is* the merged SFT model
    assert kl[1] == 0.0
    # after the first update the policy has moved and the KL to the SFT policy shows it
    assert kl[2] > 0.0
    assert all("reward" in h for h in history if "kl" in h and h["step"] == 1)
    # the adapter trained: LoRA B matrices start at zero
    weights = load_file(str(out / "adapter" / "adapter_model.safetensors"))
    lora_b = [w for k, w in weights.items() if "lora_B" in k]
    assert lora_b and any(float(w.abs().max()) > 0 for w in lora_b)
    run = json.loads((out / "run.json").read_text())
    # gate -1: any held-out reward passes, so it stops at the first check (step 2 of 4)
    assert run["gate"] == {"threshold": -1.0, "passed_at_step": 2}
    assert run["settings"]["beta"] > 0 and run["algorithm"].startswith("GRPO")
    assert (out / "checkpoints" / "checkpoint-1").is_dir()
    assert (out / "curves.png").stat().st_size > 0
    audit = [json.loads(line) for line in (out / "audit.jsonl").read_text().splitlines()]
    assert audit and audit == sorted(audit, key=lambda r: -r["reward"])
    assert not out.with_name("rl.partial").exists()


def test_grpo_trains_a_qlora_policy_on_cpu(
    trained: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    # quantization 4bit: the merged SFT policy in NF4, the RL LoRA on top (bitsandbytes on CPU)
    out = trained["root"] / "rl-4bit"
    settings = rl.RLSettings(
        sft=trained["sft"],
        dataset=trained["dataset"],
        out=out,
        device="cpu",
        quantization="4bit",
        max_steps=2,
        num_generations=2,
        num_iterations=2,
        max_turns=1,
        max_new_tokens=8,
        max_completion_length=32,
        learning_rate=5e-3,
        save_steps=2,
        eval_steps=2,
        eval_samples=1,
        gate=-1.0,
        progress=False,
    )
    rl.train(settings)
    assert "NF4 4-bit, QLoRA" in capsys.readouterr().err
    weights = load_file(str(out / "adapter" / "adapter_model.safetensors"))
    lora_b = [w for k, w in weights.items() if "lora_B" in k]
    assert lora_b and any(float(w.abs().max()) > 0 for w in lora_b)  # it trained
    assert json.loads((out / "run.json").read_text())["settings"]["quantization"] == "4bit"
    assert not (out / "merged").exists()  # the full-precision copy is not left behind


def test_mined_set_is_ranked_weighted_and_sft_trains_on_it(trained: dict[str, Path]) -> None:
    out = trained["root"] / "mined"
    report = mine.run(
        str(trained["sft"]),
        trained["dataset"],
        "train",
        out,
        top=2,
        max_copies=4,
        device="cpu",
        sample=SMALL,
    )
    gaps = [g["gap"] for g in report["ranking"]]
    assert gaps == sorted(gaps, reverse=True) and report["mined"] == 2
    rows = [json.loads(line) for line in (out / "train.jsonl").read_text().splitlines()]
    kinds = {r["variant"] for r in rows}
    assert {"original", "paraphrase", "reorder_constraints", "swap_file_names"} <= kinds
    worst = report["ranking"][0]
    copies = sum(r["trace_id"] == worst["trace_id"] for r in rows)
    assert copies == mine.copies_for(worst["gap"], 4) and copies > 1
    swapped = next(r for r in rows if r["variant"] == "swap_file_names")
    text = json.dumps(swapped["messages"])
    assert "app.py" not in text.replace("app_", "")  # renamed everywhere, consistently
    # the mined folder is a dataset the other stages take as it is
    assert tasks_from_split(out, "train")
    sft_out = trained["root"] / "sft-mined"
    sft.train(
        SFTSettings(
            base=str(trained["tiny"]),
            dataset=out,
            out=sft_out,
            device="cpu",
            max_steps=1,
            grad_accum=1,
            max_length=1024,
            progress=False,
        )
    )
    assert (sft_out / "adapter").is_dir()


def test_eval_reports_every_model_against_the_gates(trained: dict[str, Path]) -> None:
    out = trained["root"] / "eval"
    results, text = evaluation.run(
        [("base", str(trained["tiny"])), ("sft", str(trained["sft"]))],
        trained["dataset"],
        "eval",
        out,
        limit=2,
        sample=SMALL,
        device="cpu",
    )
    assert [r.name for r in results] == ["base", "sft"]
    for r in results:
        assert -1.0 <= r.metrics["reward"] <= 1.0  # type: ignore[operator]
        assert set(r.gates()) == {"reward", "tool_alignment", "constraint_detection"}
        assert r.metrics["constraint_detection"] is not None  # the traces state a constraint
    assert "tool_precision" in text and "gates passed" in text
    page = (out / "report.html").read_text()
    assert '<img src="components.png"' in page and '<img src="gates.png"' in page
    assert (out / "components.png").stat().st_size and (out / "gates.png").stat().st_size
    assert "| metric | base | sft | gate |" in (out / "report.md").read_text()
    assert len((out / "episodes.jsonl").read_text().splitlines()) == 4


def test_rl_bad_input_is_one_clear_error(
    trained: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cases = [
        (["rl", "--sft", str(tmp_path / "nope")], "is not a finished bc-train sft run"),
        (["rl", "--sft", str(trained["sft"]), "--beta", "0"], "beta: Input should be greater"),
        (["eval", "--model", "=x"], "expected NAME=MODEL"),
    ]
    for argv, message in cases:
        with pytest.raises(SystemExit) as done:
            main(argv)
        assert done.value.code == 1
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("bc-train: error:") and message in err[0]
    # the stage's former name still runs it, and says what it is called now
    with pytest.raises(SystemExit) as done:
        main(["ppo", "--sft", str(tmp_path / "nope")])
    warning, error = capsys.readouterr().err.strip().splitlines()
    assert done.value.code == 1 and "'ppo' is deprecated" in warning and "bc-train rl" in warning
    assert error.startswith("bc-train: error:") and "is not a finished bc-train sft run" in error
    assert not (tmp_path / "nope").exists()


def test_an_rl_table_is_read_and_the_former_ppo_table_still_is(tmp_path: Path) -> None:
    from claude_bc.training.config import load_settings
    from claude_bc.training.rl import RLSettings

    old = tmp_path / "old.toml"
    old.write_text("[ppo]\nmax_steps = 3\n[sft]\nmax_steps = 9\n")
    assert load_settings(RLSettings, old, "rl", {}, aliases=("ppo",)).max_steps == 3
    both = tmp_path / "both.toml"
    both.write_text("[rl]\nmax_steps = 5\n[ppo]\nmax_steps = 3\n")
    assert load_settings(RLSettings, both, "rl", {}, aliases=("ppo",)).max_steps == 5
