"""Attack 6: input nested 100,000 levels deep (and any other decoder error) crashed the
readers. Attack 7: the raw spools kept secrets in the clear after assembly."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from claude_bc.capture.api import assemble_api_session, read_api_spool
from claude_bc.capture.store import TraceStorage
from claude_bc.capture.worker import assemble_session
from tests.conftest import run_bc as run
from tests.conftest import stage_run
from tests.proxy.test_api import fixture_records, write_spool

DEEP = b"[" * 100_000 + b"]" * 100_000
DEEP_OBJ = b'{"a":' * 100_000 + b"1" + b"}" * 100_000
NOT_JSON = (b"\xff\xfe garbage", b'{"v":1,"t":"x","p":{}}', b'{"v":1', b"null", b"1e999999")

# Secrets as the proxy's spool held them: only Anthropic keys were scrubbed there.
AWS_SECRET = "Zx9Kq2Lm4Np6Rt8Vw0Yb3/d5" + "Ef7Gh1Jk3Mn5Pq7S"
GITHUB_TOKEN = "ghp_" + "R4nd0mT0k3nV4lu3F0rT3st1ngXyZ12ab"


def test_deep_lines_in_a_hook_spool_are_reported_bad_lines(bc_home: Path) -> None:
    session, _ = stage_run("basic", bc_home)
    with (bc_home / "spool" / f"{session}.jsonl").open("ab") as fh:
        for bad in (DEEP, DEEP_OBJ, *NOT_JSON):
            fh.write(bad + b"\n")
    result = assemble_session(session, bc_home)
    assert len(result.traces) == 1
    assert len(result.problems) >= 2 + len(NOT_JSON) - 1  # "null"… each reported


def test_assemble_cli_survives_a_deep_spool(
    bc_home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    session, _ = stage_run("basic", bc_home)
    with (bc_home / "spool" / f"{session}.jsonl").open("ab") as fh:
        fh.write(DEEP + b"\n")
    code, out, err = run(capsys, "assemble", session)
    assert code == 0 and "assembled 1 sessions, 1 traces written" in out
    assert "warning:" in err


def test_deep_lines_in_an_api_spool_are_reported_bad_records(bc_home: Path) -> None:
    session, records = fixture_records("basic")
    path = write_spool(bc_home, session, records)
    with path.open("ab") as fh:
        for bad in (DEEP, DEEP_OBJ, *NOT_JSON):
            fh.write(bad + b"\n")
    exchanges, problems = read_api_spool(path)
    assert len(exchanges) == len(records) and len(problems) == 2 + len(NOT_JSON)
    result = assemble_api_session(session, bc_home)
    assert len(result.traces) == 1


def test_a_deep_transcript_line_is_a_reported_bad_line(
    bc_home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from tests.conftest import FIXTURES

    projects = tmp_path / "projects" / "-work-p"
    projects.mkdir(parents=True)
    lines = (FIXTURES / "basic" / "transcript.jsonl").read_bytes().splitlines(keepends=True)
    session = json.loads(lines[0]).get("sessionId") or "s1"
    lines.insert(1, DEEP + b"\n")
    lines.insert(2, DEEP_OBJ + b"\n")
    (projects / f"{session}.jsonl").write_bytes(b"".join(lines))
    code, out, err = run(capsys, "import", "--projects-dir", str(tmp_path / "projects"))
    assert code == 0, err
    assert TraceStorage().count() == 1


def test_the_proxy_keeps_a_deep_request_as_text() -> None:
    from claude_bc.proxy.addon import request_json

    parsed, raw = request_json(DEEP)
    assert isinstance(parsed, str) and json.loads(raw) == DEEP.decode()


def test_an_api_spool_holds_no_secret_once_assembled(bc_home: Path) -> None:
    session, records = fixture_records("basic")
    leak = f"aws_secret_access_key = {AWS_SECRET}\nGITHUB_TOKEN={GITHUB_TOKEN}\n"
    body = records[-1]["request"]
    body["messages"][0]["content"] = [{"type": "text", "text": leak}]
    path = write_spool(bc_home, session, records)
    assert AWS_SECRET in path.read_text()
    result = assemble_api_session(session, bc_home)
    assert not result.problems and result.traces
    text = path.read_text()
    assert AWS_SECRET not in text and GITHUB_TOKEN not in text
    # re-assembling the redacted spool writes nothing new and reads cleanly
    again = assemble_api_session(session, bc_home)
    assert not again.problems and again.written == 0
    # a record the proxy appends later is redacted at the next assembly
    write_spool(bc_home, session, [records[-1]])
    assert AWS_SECRET in path.read_text()
    assemble_api_session(session, bc_home)
    assert AWS_SECRET not in path.read_text()


def test_a_hook_spool_holds_no_secret_once_assembled(bc_home: Path) -> None:
    session, _ = stage_run("basic", bc_home)
    spool = bc_home / "spool" / f"{session}.jsonl"
    lines = [json.loads(line) for line in spool.read_text().splitlines()]
    # a live session (no SessionEnd yet) whose tool output printed secrets
    lines = [r for r in lines if r["p"].get("hook_event_name") != "SessionEnd"]
    post = next(r for r in lines if r["p"].get("hook_event_name") == "PostToolUse")
    post["p"]["tool_response"] = {"stdout": f"AWS_SECRET_ACCESS_KEY={AWS_SECRET} {GITHUB_TOKEN}"}
    spool.write_text("".join(json.dumps(r) + "\n" for r in lines))
    first = assemble_session(session, bc_home)
    assert not first.ended and spool.exists()
    text = spool.read_text()
    assert AWS_SECRET not in text and GITHUB_TOKEN not in text
    again = assemble_session(session, bc_home)
    assert again.written == 0 and len(again.traces) == len(first.traces)
