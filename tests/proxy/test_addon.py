"""The recording addon in real mitmdump (started by the real ``bc-capture proxy``), in
front of the scripted fake Anthropic API: what the client sees, and what is recorded."""

from __future__ import annotations

import json
import os
import shutil
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from claude_bc.capture.api import to_exchange
from claude_bc.hooks import spooler
from claude_bc.proxy import addon
from tests import fake_anthropic
from tests.claude_code import BASIC_SCENARIO
from tests.fake_anthropic import FakeAnthropic
from tests.proxy.mitm import Proxy, Reply, needs_mitmdump, post, run_proxy

pytestmark = needs_mitmdump


@pytest.fixture(scope="module")
def api() -> Iterator[FakeAnthropic]:
    with FakeAnthropic(BASIC_SCENARIO, cwd="/project") as fake:
        yield fake


@pytest.fixture(scope="module")
def proxy(api: FakeAnthropic, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Proxy]:
    home = tmp_path_factory.mktemp("proxy") / "bc-home"
    with run_proxy(api.base_url, home) as p:
        yield p


@pytest.fixture(autouse=True)
def fixed_ids(monkeypatch: pytest.MonkeyPatch, api: FakeAnthropic) -> Iterator[None]:
    """Same message and request ids every time, so direct and proxied bytes compare."""
    monkeypatch.setattr(fake_anthropic, "new_message_id", lambda: "msg_01fixed")
    monkeypatch.setattr(fake_anthropic, "new_request_id", lambda: "req_01fixed")
    yield
    api.chunk_delay_s = 0.0
    api.fail.clear()


def body(text: str = "hello", **extra: Any) -> dict[str, Any]:
    return {
        "model": "claude-opus-5-5",
        "max_tokens": 100,
        "stream": True,
        "messages": [{"role": "user", "content": text}],
        **extra,
    }


def session(name: str) -> dict[str, str]:
    return {"X-Claude-Code-Session-Id": name}


def fail_next(api: FakeAnthropic, n: int, failure: dict[str, Any]) -> None:
    """Make the next ``n`` messages requests fail this way (the fake counts them)."""
    seq = len(api.messages_requests())
    for i in range(1, n + 1):
        api.fail[seq + i] = failure


def same_for_client(direct: Reply, proxied: Reply) -> None:
    assert proxied.status == direct.status
    assert proxied.dechunked() == direct.dechunked()


# --- streaming ------------------------------------------------------------------------------


@pytest.mark.slow
def test_streams_events_as_they_arrive_and_bytes_match_direct(
    api: FakeAnthropic, proxy: Proxy
) -> None:
    api.chunk_delay_s = 0.03  # 26 events: the upstream takes about 0.8 s
    direct = post(api.port, body())
    proxied = post(proxy.port, body(), session("stream"))
    same_for_client(direct, proxied)
    assert direct.ended == proxied.ended == "complete"
    assert b"event: ping" in proxied.dechunked()  # keep-alive pings pass through
    # the first event was at the client long before the upstream finished its stream
    assert proxied.arrivals[-1][0] - proxied.first_event_at() > 0.5
    assert len(proxied.arrivals) > 10  # chunk by chunk, not one buffered block

    (rec,) = proxy.records("stream", 1)
    assert rec["ok"] and rec["complete"] and rec["status"] == 200 and rec["error"] is None
    assert rec["response"].encode() == proxied.dechunked()
    assert rec["request"] == body() and rec["session"] == "stream"
    t = rec["timing"]
    assert rec["t"] <= t["request_end"] <= t["response_headers"] <= t["first_byte"] <= t["end"]
    assert to_exchange(rec).message["content"][0]["thinking"].startswith("The user wants")


def test_credentials_are_never_written(api: FakeAnthropic, proxy: Proxy) -> None:
    key = "sk-ant-api03-" + "K3y" * 12
    oauth = "sk-ant-oat01-" + "0Au" * 12
    opaque = "opaque-bearer-" + "t0k" * 8
    sent = body(f"my key is {key}", credentials={"access_token": "at-" + "x" * 20})
    headers = {
        **session("secrets"),
        "x-api-key": key,
        "Authorization": f"Bearer {oauth}",
        "Proxy-Authorization": f"Bearer {opaque}",
        "Cookie": "sessionKey=" + "c" * 20,
        "anthropic-beta": "claude-code-20250219",
    }
    assert post(proxy.port, sent, headers).status == 200
    (rec,) = proxy.records("secrets", 1)
    text = proxy.spool("secrets").read_text()
    for secret in (key, oauth, opaque, "c" * 20, "x" * 20):
        assert secret not in text
    names = {k.lower() for k in rec["request_headers"]}
    assert not names & {"x-api-key", "authorization", "proxy-authorization", "cookie"}
    assert "anthropic-beta" in names  # what the assembler needs is kept
    assert "[REDACTED:" in rec["request"]["messages"][0]["content"]
    # while the upstream got the request exactly as the client sent it
    assert api.messages_requests()[-1]["body"] == sent
    assert proxy.spool("secrets").stat().st_mode & 0o777 == 0o600
    assert proxy.spool("secrets").parent.stat().st_mode & 0o777 == 0o700


# --- failures --------------------------------------------------------------------------------


@pytest.mark.parametrize("status", [529, 500])
def test_http_errors_pass_through_and_are_recorded_as_failed(
    api: FakeAnthropic, proxy: Proxy, status: int
) -> None:
    fail_next(api, 2, {"status": status})
    direct = post(api.port, body())
    proxied = post(proxy.port, body(), session(f"status-{status}"))
    same_for_client(direct, proxied)
    assert proxied.status == status
    (rec,) = proxy.records(f"status-{status}", 1)
    assert rec["status"] == status and rec["ok"] is False
    assert json.loads(rec["response"])["error"]["type"] == fake_anthropic.ERROR_TYPES[status]
    assert to_exchange(rec).error.startswith(f"HTTP {status}")


def test_reset_mid_stream_reaches_the_client_and_is_recorded(
    api: FakeAnthropic, proxy: Proxy
) -> None:
    api.chunk_delay_s = 0.02
    fail_next(api, 2, {"reset": True, "after_events": 6})
    direct = post(api.port, body())
    proxied = post(proxy.port, body(), session("reset"))
    # the client gets the same events, then the connection ends with the body unfinished
    same_for_client(direct, proxied)
    assert direct.ended != "complete" and proxied.ended != "complete"
    assert proxied.dechunked().count(b"\n\n") == 6
    (rec,) = proxy.records("reset", 1)
    assert rec["ok"] is False and rec["complete"] is False and rec["error"]
    assert rec["response"].encode() == proxied.dechunked()


@pytest.mark.slow
def test_client_abort_is_recorded(api: FakeAnthropic, proxy: Proxy) -> None:
    api.chunk_delay_s = 0.05
    reply = post(proxy.port, body(), session("abort"), abort_after=200)
    assert reply.ended == "aborted"
    (rec,) = proxy.records("abort", 1)
    assert rec["ok"] is False and rec["error"] and rec["status"] == 200
    assert rec["response"].startswith("event: message_start")
    # the proxy goes on serving
    assert post(proxy.port, body(), session("after-abort")).ended == "complete"


def test_error_event_in_a_stream_is_a_failed_exchange(api: FakeAnthropic, proxy: Proxy) -> None:
    fail_next(api, 1, {"sse_error": "overloaded_error"})
    reply = post(proxy.port, body(), session("sse-error"))
    assert b"event: error" in reply.dechunked()
    (rec,) = proxy.records("sse-error", 1)
    assert "overloaded_error" in (to_exchange(rec).error or "")


@pytest.mark.slow
def test_twenty_concurrent_streams_are_recorded_whole(api: FakeAnthropic, proxy: Proxy) -> None:
    api.chunk_delay_s = 0.01
    replies: dict[int, Reply] = {}

    def one(i: int) -> None:
        replies[i] = post(proxy.port, body(f"stream {i}"), session(f"many-{i}"))

    threads = [threading.Thread(target=one, args=(i,)) for i in range(20)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(timeout=60)
    assert len(replies) == 20
    for i, reply in replies.items():
        assert reply.ended == "complete", i
        (rec,) = proxy.records(f"many-{i}", 1)
        assert rec["request"]["messages"][0]["content"] == f"stream {i}"
        assert rec["response"].encode() == reply.dechunked() and rec["ok"]
        assert to_exchange(rec).message is not None


def test_other_traffic_passes_untouched_and_is_not_recorded(
    api: FakeAnthropic, proxy: Proxy
) -> None:
    before = set((proxy.home / "spool" / "api").glob("*"))
    count = post(proxy.port, body(), session("other"), path="/v1/messages/count_tokens")
    direct = post(api.port, body(), path="/v1/messages/count_tokens")
    same_for_client(direct, count)
    assert post(proxy.port, b"", session("other"), path="/nothing").status == 404
    with socket.create_connection(("127.0.0.1", proxy.port)) as sock:
        sock.sendall(b"HEAD /api/hello HTTP/1.1\r\nHost: x\r\n\r\n")
        assert sock.recv(4096).startswith(b"HTTP/1.1 200")
    assert set((proxy.home / "spool" / "api").glob("*")) == before


def test_a_failing_recorder_never_affects_the_flow(api: FakeAnthropic, proxy: Proxy) -> None:
    folder = proxy.home / "spool" / "api"
    shutil.move(folder, folder.with_name("api-aside"))
    folder.write_text("not a folder")  # every append of the recorder now fails
    try:
        direct = post(api.port, body())
        proxied = post(proxy.port, body(), session("broken"))
        same_for_client(direct, proxied)
        assert proxied.ended == "complete"
        errors = proxy.home / "errors.log"
        assert proxy.records("never", 1, timeout=0.5) == []
        assert "recording failed" in errors.read_text()
    finally:
        folder.unlink()
        shutil.move(folder.with_name("api-aside"), folder)


def test_addon_and_hook_agree_on_the_data_folder_and_the_error_log(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The addon keeps its own copy of the hook's rules (it runs in mitmproxy's
    environment): the same folder, the same line format, the same fallback log."""
    for env in ({"BC_HOME": str(tmp_path / "x")}, {"XDG_DATA_HOME": str(tmp_path / "xdg")}, {}):
        monkeypatch.delenv("BC_HOME", raising=False)
        monkeypatch.delenv("XDG_DATA_HOME", raising=False)
        for k, v in env.items():
            monkeypatch.setenv(k, v)
        assert addon.data_dir() == spooler.data_dir()
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    monkeypatch.setenv("BC_HOME", str(blocker / "home"))  # cannot be created
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    spooler.log_error(spooler.data_dir(), "s1", "hook\tfailed\n")
    addon.log_error("s2", "proxy   failed")
    fallback = tmp_path / f"claude-bc-{os.getuid()}-errors.log"
    rows = [line.split("\t")[1:] for line in fallback.read_text().splitlines()]
    assert rows == [["hook", "s1", "hook failed"], ["proxy", "s2", "proxy failed"]]


# --- the command ----------------------------------------------------------------------------


@pytest.mark.slow
def test_regular_mode_prints_the_proxy_and_ca(api: FakeAnthropic, tmp_path: Path) -> None:
    home = tmp_path / "bc-home"
    with run_proxy(api.base_url, home, "--mode", "regular") as p:
        ca = home / "mitmproxy" / "mitmproxy-ca-cert.pem"
        assert f"HTTPS_PROXY=http://127.0.0.1:{p.port}\n" in p.stdout
        assert f"NODE_EXTRA_CA_CERTS={ca}\n" in p.stdout
        assert ca.is_file() and (home / "mitmproxy").stat().st_mode & 0o777 == 0o700
        # a proxy request for the API host is recorded like in reverse mode
        url = f"{api.base_url}/v1/messages?beta=true"
        assert post(p.port, body(), session("regular"), path=url).ended == "complete"
        (rec,) = p.records("regular", 1)
        assert rec["ok"] and rec["url"] == f"{api.base_url}/v1/messages"
        # an upstream that cannot be reached: the client gets mitmproxy's 502, and the
        # exchange is recorded as failed
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            closed = f"http://127.0.0.1:{sock.getsockname()[1]}/v1/messages"
        assert post(p.port, body(), session("down"), path=closed).status == 502
        (down,) = p.records("down", 1)
        assert down["ok"] is False and down["status"] is None and down["error"]


def test_reverse_mode_prints_the_base_url(proxy: Proxy, api: FakeAnthropic) -> None:
    lines = [line for line in proxy.stdout.splitlines() if not line.startswith("#")]
    assert lines == [f"ANTHROPIC_BASE_URL=http://127.0.0.1:{proxy.port}"]
    assert f"-> {api.base_url}" in proxy.stdout
