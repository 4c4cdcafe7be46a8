"""Installed from a wheel: one ``claude_bc`` package, and capture works end to end.

The wheel is built from this checkout (no build isolation: nothing is downloaded) and
installed into a fresh virtualenv, the way pipx or ``uv tool install`` lay one out. Its
third-party dependencies come from the repository's ``.venv`` through a ``.pth`` line,
which adds only that folder to ``sys.path``: the ``.venv``'s editable finder (which maps
``claude_bc`` to this checkout) is not loaded, so every ``claude_bc`` module is the
wheel's. Then the wheel's ``bc-capture install`` hooks a real Claude Code run.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

from tests.claude_code import BASIC_SCENARIO, make_basic_project, play_basic
from tests.test_e2e_capture import wait_assembled

REPO = Path(__file__).resolve().parents[1]
OURS = ("capture", "hooks", "proxy", "training", "export")

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    cmd = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation"]
    proc = subprocess.run(
        [*cmd, "--no-index", "-w", str(out), str(REPO)], capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "warning" not in proc.stderr.lower().replace("warning: location", ""), proc.stderr
    (found,) = out.glob("claude_bc-*.whl")
    return found


def test_the_wheel_installs_one_top_level_name(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    tops = {n.split("/", 1)[0] for n in names if not n.split("/", 1)[0].endswith(".dist-info")}
    assert tops == {"claude_bc"}
    for pkg in OURS:
        assert f"claude_bc/{pkg}/__init__.py" in names
    # the data the code reads at run time travels with it
    for data in (
        "hooks/record.py",
        "hooks/run.sh",
        "hooks/hooks.json",
        "capture/signal_weights.json",
    ):
        assert f"claude_bc/{data}" in names


@pytest.fixture(scope="module")
def venv(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("venv") / "v"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(root)], check=True)
    site = root / "lib" / f"python{sys.version_info.major}.{sys.version_info.minor}"
    (site / "site-packages" / "_deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    pip = [sys.executable, "-m", "pip", "--python", str(root / "bin" / "python")]
    proc = subprocess.run(
        [*pip, "install", "--no-deps", "--no-index", str(wheel)], capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    return root


def test_imports_come_from_the_wheel(venv: Path, tmp_path: Path) -> None:
    code = (
        "import json, sys, claude_bc.capture.worker as w, claude_bc.cli;"
        "print(json.dumps([w.__file__, sorted(m for m in sys.modules"
        f" if m.split('.')[0] in {OURS!r})]))"
    )
    proc = subprocess.run(
        [str(venv / "bin" / "python"), "-I", "-c", code],
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr
    where, bare = json.loads(proc.stdout)
    assert where.startswith(str(venv)) and bare == []


def test_a_wheel_install_captures_a_real_claude_code_run(venv: Path, tmp_path: Path) -> None:
    project = make_basic_project(tmp_path / "project")
    home, bc_home = tmp_path / "home", tmp_path / "bc"
    env = {**os.environ, "HOME": str(home), "BC_HOME": str(bc_home)}
    env.pop("PYTHONPATH", None)
    bc_capture = str(venv / "bin" / "bc-capture")
    out = subprocess.run(
        [bc_capture, "install", "--scope", "user"], env=env, capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr
    settings = (home / ".claude" / "settings.json").read_text()
    assert str(venv / "bin" / "python") in settings
    assert "/site-packages/claude_bc/hooks/record.py" in settings
    run = play_basic(project, home, bc_home)
    wait_assembled(bc_home)
    exported = subprocess.run([bc_capture, "export"], env=env, capture_output=True, text=True)
    (rec,) = [json.loads(line) for line in exported.stdout.splitlines()]
    assert rec["user_prompt"] == BASIC_SCENARIO["prompt"]
    assert rec["session_id"] == run.session_id and rec["complete"]
    assert [c["tool"] for c in rec["tool_calls"]] == ["Read", "Grep", "Bash", "Bash", "Edit"]
    assert not (bc_home / "errors.log").exists() or not (bc_home / "errors.log").read_text()
