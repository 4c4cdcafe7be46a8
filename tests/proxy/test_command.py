"""``bc-capture proxy`` refuses bad input with one clear line, before starting anything."""

from __future__ import annotations

import os
import socket
import subprocess
from pathlib import Path

import pytest

from tests.proxy.mitm import BC_CAPTURE


def bc(*args: str, home: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BC_CAPTURE), "proxy", *args],
        env={**os.environ, "BC_HOME": str(home), **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize(
    ("args", "env", "message"),
    [
        (["--upstream", "ftp://example.com"], {}, "--upstream must be an http(s) URL"),
        (["--upstream", "api.anthropic.com"], {}, "--upstream must be an http(s) URL"),
        ([], {"BC_MITMDUMP": "/nonexistent/mitmdump"}, "is not an executable file"),
    ],
)
def test_bad_input_is_one_error_line(
    tmp_path: Path, args: list[str], env: dict[str, str], message: str
) -> None:
    out = bc("--port", "0", *args, home=tmp_path / "bc", **env)
    assert out.returncode == 1 and out.stdout == ""
    assert out.stderr.count("\n") == 1 and out.stderr.startswith("bc-capture: error: ")
    assert message in out.stderr
    assert not (tmp_path / "bc").exists()  # nothing started, nothing created


def test_a_busy_port_is_refused(tmp_path: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        out = bc("--port", str(port), home=tmp_path / "bc")
    assert out.returncode == 1
    assert f"port {port} on 127.0.0.1 is not free" in out.stderr and "--port" in out.stderr


def test_an_unusable_data_folder_is_refused(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    out = bc("--port", "0", home=blocker / "bc")
    assert out.returncode == 1 and out.stdout == ""
    assert out.stderr.startswith("bc-capture: error: cannot create")
