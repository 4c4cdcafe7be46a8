"""Attack 1: `--out` onto a folder of the user's deleted it."""

from __future__ import annotations

from pathlib import Path

import pytest

from claude_bc.capture import outdir
from tests.security.conftest import run_train
from tests.training.conftest import workflow, write_store


def test_dataset_out_refuses_a_folder_it_did_not_write(
    bc_home: Path, victim: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_store(bc_home, [workflow("s1", "Fix the greeting"), workflow("s2", "Add a test")])
    code, out, err = run_train(capsys, "dataset", "--out", str(victim))
    assert code == 1 and out == ""
    assert err.startswith("bc-train: error: --out ") and "--force" in err and err.count("\n") == 1
    assert (victim / "src" / "main.py").read_text() == "print('mine')\n"
    assert sorted(p.name for p in victim.parent.iterdir()) == ["bc-home", "mywork"]

    # its own output is replaced without --force; a foreign one only with --force
    ours = victim.parent / "ds"
    assert run_train(capsys, "dataset", "--out", str(ours))[0] == 0
    assert outdir.is_ours(ours) and (ours / "train.jsonl").exists()
    assert run_train(capsys, "dataset", "--out", str(ours))[0] == 0
    assert run_train(capsys, "dataset", "--out", str(victim), "--force")[0] == 0
    assert (victim / "train.jsonl").exists() and not (victim / "src").exists()


def test_a_failed_run_leaves_the_old_output(
    bc_home: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    write_store(bc_home, [workflow("s1", "Fix the greeting"), workflow("s2", "Add a test")])
    out = bc_home.parent / "ds"
    assert run_train(capsys, "dataset", "--out", str(out))[0] == 0
    before = {p.name: p.read_bytes() for p in out.iterdir()}

    from claude_bc.training import dataset

    def broken(path: Path, rows: object) -> None:
        raise OSError(28, "No space left on device", str(path))

    monkeypatch.setattr(dataset, "_write_jsonl", broken)
    code, _, err = run_train(capsys, "dataset", "--out", str(out))
    assert code == 1 and "No space left" in err
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert sorted(p.name for p in out.parent.iterdir()) == ["bc-home", "ds"]  # no temp left


def test_mine_out_refuses_a_folder_it_did_not_write(
    victim: Path, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    # refused before the model is even loaded: the check comes first
    code, _, err = run_train(
        capsys, "mine", "--model", "no-such-model", "--dataset", str(tmp_path / "none"),
        "--out", str(victim),
    )  # fmt: skip
    assert code == 1 and "did not write" in err
    assert (victim / "src" / "main.py").exists()


def test_mine_writes_through_a_temp_sibling(tmp_path: Path) -> None:
    from claude_bc.training.mine import _write

    out = tmp_path / "mined"
    _write(out, [{"messages": []}], {"n": 1}, False)
    assert outdir.is_ours(out) and (out / "train.jsonl").exists()
    with pytest.raises(Exception, match="did not write"):
        foreign = tmp_path / "foreign"
        foreign.mkdir()
        (foreign / "keep.txt").write_text("x")
        _write(foreign, [], {}, False)
    assert (tmp_path / "foreign" / "keep.txt").exists()
