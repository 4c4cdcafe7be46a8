"""Attack 3: the rollout sent the user's Anthropic key to the local endpoint, and any
plain-http host was accepted as "local". Real mitmdump in front of two scripted APIs."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from claude_bc.capture.errors import BCError
from claude_bc.capture.mitm import check_rollout
from claude_bc.proxy.rollout import local_target
from tests.claude_code import BASIC_SCENARIO
from tests.fake_anthropic import FakeAnthropic
from tests.proxy.mitm import needs_mitmdump, post, run_proxy

KEY = "sk-ant-" + "api03-" + "Lk4" * 15 + "AA"
OAUTH = "sk-ant-" + "oat01-" + "Pq8" * 15 + "AA"


@pytest.fixture
def apis() -> Iterator[tuple[FakeAnthropic, FakeAnthropic]]:
    with (
        FakeAnthropic(BASIC_SCENARIO, cwd="/p") as anthropic,
        FakeAnthropic(BASIC_SCENARIO, cwd="/p") as local,
    ):
        yield anthropic, local


@pytest.mark.slow
@needs_mitmdump
def test_the_local_model_never_gets_the_users_credentials(
    apis: tuple[FakeAnthropic, FakeAnthropic], tmp_path: Path
) -> None:
    anthropic, local = apis
    home = tmp_path / "bc-home"
    with run_proxy(anthropic.base_url, home, "--rollout", "100", "--local", local.base_url) as p:
        body = {
            "model": "claude-opus-5-5",
            "max_tokens": 50,
            "stream": True,
            "messages": [{"role": "user", "content": "hello"}],
            "tools": [{"name": "Read", "input_schema": {"type": "object", "properties": {}}}],
        }
        headers = {
            "X-Claude-Code-Session-Id": "s-1",
            "x-api-key": KEY,
            "Authorization": f"Bearer {OAUTH}",
            "anthropic-beta": "oauth-2025-04-20",
            "Cookie": "session=abc123456789",
        }
        assert post(p.port, body, headers=headers).status == 200
    (got,) = local.messages_requests()
    sent = {k.lower(): v for k, v in got["headers"].items()}
    assert "x-api-key" not in sent and "authorization" not in sent and "cookie" not in sent
    assert KEY not in str(got) and OAUTH not in str(got)
    assert sent.get("anthropic-beta") == "oauth-2025-04-20"  # the rest goes as it came
    assert not anthropic.messages_requests()
    spool = next((home / "spool" / "api").glob("*.jsonl")).read_text()
    assert KEY not in spool and OAUTH not in spool


@pytest.mark.parametrize(
    "url",
    ["http://10.0.0.5:8090", "http://model.lan:8090", "http://0.0.0.0:8090", "https://gpu.lan"],
)
def test_a_local_endpoint_elsewhere_needs_https_and_the_option(url: str) -> None:
    with pytest.raises(ValueError):
        local_target(url)
    with pytest.raises(BCError, match="--allow-remote-local"):
        check_rollout(50, url)
    if url.startswith("https://"):
        assert check_rollout(50, url, allow_remote=True) == url
    else:
        with pytest.raises(BCError, match="https"):
            check_rollout(50, url, allow_remote=True)


@pytest.mark.parametrize("url", ["http://127.0.0.1:8090", "http://localhost:1", "http://[::1]:2"])
def test_loopback_stays_plain_http(url: str) -> None:
    assert check_rollout(50, url) == url
