"""The rollout in the real proxy: `bc-capture proxy --rollout P --local URL` in front of
two scripted APIs (one standing for Anthropic, one for the local model's endpoint)."""

from __future__ import annotations

import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from claude_bc.capture.api import assemble_api_session
from claude_bc.capture.gates import gate
from claude_bc.proxy.rollout import route
from tests.claude_code import BASIC_SCENARIO
from tests.fake_anthropic import FakeAnthropic
from tests.proxy.mitm import BC_CAPTURE, Proxy, needs_mitmdump, post, run_proxy

pytestmark = needs_mitmdump
SHARE = 50.0


@pytest.fixture(scope="module")
def apis() -> Iterator[tuple[FakeAnthropic, FakeAnthropic]]:
    with (
        FakeAnthropic(BASIC_SCENARIO, cwd="/p") as anthropic,
        FakeAnthropic(BASIC_SCENARIO, cwd="/p") as local,
    ):
        yield anthropic, local


@pytest.fixture(scope="module")
def proxy(
    apis: tuple[FakeAnthropic, FakeAnthropic], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Proxy]:
    anthropic, local = apis
    home = tmp_path_factory.mktemp("rollout") / "bc-home"
    with run_proxy(
        anthropic.base_url, home, "--rollout", str(SHARE), "--local", local.base_url
    ) as p:
        yield p


def _ask(proxy: Proxy, session: str) -> None:
    body: dict[str, Any] = {
        "model": "claude-opus-5-5",
        "max_tokens": 50,
        "stream": True,
        "messages": [{"role": "user", "content": f"hello from {session}"}],
        # with tools: a conversation turn (a request without them is a side request)
        "tools": [{"name": "Read", "input_schema": {"type": "object", "properties": {}}}],
    }
    reply = post(proxy.port, body, headers={"X-Claude-Code-Session-Id": session})
    assert reply.status == 200


def _served(apis: tuple[FakeAnthropic, FakeAnthropic], session: str) -> list[str]:
    """Which API got each request of ``session``, in the order they came."""
    got = [
        (r["t"], name)
        for name, api in zip(("anthropic", "local"), apis, strict=True)
        for r in api.messages_requests()
        if f"hello from {session}" in str(r["body"])
    ]
    return [name for _, name in sorted(got)]


def _switch(proxy: Proxy, action: str) -> None:
    env = {"BC_HOME": str(proxy.home), "PATH": "/usr/bin:/bin"}
    subprocess.run([str(BC_CAPTURE), "rollout", action], env=env, check=True, capture_output=True)


def test_sessions_go_where_the_rollout_says_and_stay_there(
    proxy: Proxy, apis: tuple[FakeAnthropic, FakeAnthropic]
) -> None:
    sessions = [f"session-{i:03d}" for i in range(24)]
    for s in sessions + sessions:  # two requests each
        _ask(proxy, s)
    for s in sessions:
        expected = route(s, SHARE)
        assert _served(apis, s) == [expected, expected]
        records = proxy.records(s, 2)
        assert [r["served_by"] for r in records] == [expected, expected]
    assert {route(s, SHARE) for s in sessions} == {"local", "anthropic"}
    assert "rollout: 50% of sessions" in proxy.stdout
    # the traces say who answered, and the local model's turns never become training data
    for s in sessions[:6]:
        (trace,) = assemble_api_session(s, proxy.home).traces
        assert trace.served_by == route(s, SHARE)
        assert ("served_locally" in gate(trace)) == (trace.served_by == "local")


def test_the_kill_switch_sends_everything_back_at_once(
    proxy: Proxy, apis: tuple[FakeAnthropic, FakeAnthropic]
) -> None:
    local_sessions = [s for s in (f"kill-{i}" for i in range(40)) if route(s, SHARE) == "local"]
    first, second = local_sessions[:2]
    _ask(proxy, first)
    _switch(proxy, "off")
    try:
        _ask(proxy, first)
        _ask(proxy, second)
    finally:
        _switch(proxy, "on")
    _ask(proxy, first)
    assert _served(apis, first) == ["local", "anthropic", "local"]
    assert _served(apis, second) == ["anthropic"]


@pytest.mark.slow
def test_local_sessions_need_no_reachable_anthropic(tmp_path: Path) -> None:
    """At 100% (offline, or Anthropic blocked) the local model still answers: mitmproxy
    must not connect to the upstream before the rollout has chosen where a request goes."""
    with socket.socket() as sock:  # a loopback port nobody listens on
        sock.bind(("127.0.0.1", 0))
        nowhere = f"http://127.0.0.1:{sock.getsockname()[1]}"
    with (
        FakeAnthropic(BASIC_SCENARIO, cwd="/p") as local,
        run_proxy(
            nowhere, tmp_path / "bc-home", "--rollout", "100", "--local", local.base_url
        ) as p,
    ):
        _ask(p, "offline-session")
        assert len(local.messages_requests()) == 1
        assert [r["served_by"] for r in p.records("offline-session", 1)] == ["local"]


def test_bad_rollout_options_are_one_line_errors(tmp_path: Path) -> None:
    for args, message in (
        (["--rollout", "20"], "--rollout needs --local URL"),
        (["--rollout", "120", "--local", "http://127.0.0.1:1"], "percent from 0 to 100"),
        (["--rollout", "5", "--local", "127.0.0.1:8090"], "--local: not an http(s) base URL"),
    ):
        proc = subprocess.run(
            [str(BC_CAPTURE), "proxy", "--port", "0", *args],
            capture_output=True,
            text=True,
            env={"BC_HOME": str(tmp_path), "PATH": "/usr/bin:/bin"},
            check=False,
        )
        assert proc.returncode == 1
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("bc-capture: error: ")
        assert message in lines[0]
