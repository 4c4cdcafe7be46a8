"""The rollout decision: share, stickiness, monotone steps and the kill switch."""

from __future__ import annotations

import random
import uuid
from pathlib import Path

import pytest

from claude_bc.proxy.rollout import is_killed, kill_file, local_target, place, route

STEPS = (5.0, 20.0, 50.0, 80.0)


def _sessions(n: int = 2000, seed: int = 7) -> list[str]:
    rng = random.Random(seed)
    return [str(uuid.UUID(int=rng.getrandbits(128), version=4)) for _ in range(n)]


@pytest.mark.parametrize("percent", STEPS)
def test_share_within_3_points_over_2000_sessions(percent: float) -> None:
    for sessions in (_sessions(), [f"session-{i}" for i in range(2000)]):
        local = sum(route(s, percent) == "local" for s in sessions)
        assert abs(local / len(sessions) * 100 - percent) <= 3.0


def test_sticky_per_session_and_across_restarts() -> None:
    sessions = _sessions()
    first = [route(s, 20.0) for s in sessions]
    # every request of a session, in any order, gets the same answer
    for s, expected in random.Random(1).sample(list(zip(sessions, first, strict=True)), 500):
        assert route(s, 20.0) == expected
    assert [place(s) for s in sessions] == [place(s) for s in sessions]


def test_raising_the_share_keeps_local_sessions_local() -> None:
    sessions = _sessions()
    previous: set[str] = set()
    for percent in STEPS:
        now = {s for s in sessions if route(s, percent) == "local"}
        assert previous <= now
        previous = now


def test_a_salt_reshuffles_which_sessions_go_local() -> None:
    sessions = _sessions()
    plain = {s for s in sessions if route(s, 50.0) == "local"}
    salted = {s for s in sessions if route(s, 50.0, salt="v2") == "local"}
    assert plain != salted and abs(len(salted) - 1000) <= 60


def test_kill_switch_and_missing_session_go_to_anthropic(tmp_path: Path) -> None:
    sessions = _sessions(200)
    assert not is_killed(str(tmp_path))
    Path(kill_file(str(tmp_path))).touch()
    killed = is_killed(str(tmp_path))
    assert killed
    assert {route(s, 100.0, killed=killed) for s in sessions} == {"anthropic"}
    assert route(None, 100.0) == "anthropic" and route("", 100.0) == "anthropic"
    assert {route(s, 100.0) for s in sessions} == {"local"}
    assert {route(s, 0.0) for s in sessions} == {"anthropic"}


def test_local_target_parses_base_urls() -> None:
    assert local_target("http://127.0.0.1:8090/") == ("http", "127.0.0.1", 8090)
    assert local_target("https://gpu-box", allow_remote=True) == ("https", "gpu-box", 443)
    for bad in ("ftp://x", "127.0.0.1:80", "http://x/v1"):
        with pytest.raises(ValueError):
            local_target(bad)
