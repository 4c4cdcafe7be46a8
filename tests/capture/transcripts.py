"""Transcript files for the import and watch tests: recorded fixtures laid out as Claude
Code keeps them, and synthetic sessions in the recorded 2.1.332 line format."""

from __future__ import annotations

import json
import os
import shutil
import time
import uuid
from pathlib import Path
from typing import Any

from tests.conftest import FIXTURES

PROJECT = "-home-user-project"  # the dashed folder of the fixtures' /home/user/project


def session_id_of(transcript: Path) -> str:
    for line in transcript.read_text().splitlines():
        sid = json.loads(line).get("sessionId")
        if sid:
            return str(sid)
    raise AssertionError(f"no sessionId in {transcript}")


def age(path: Path, seconds: float = 3600) -> None:
    """Make a file look untouched for ``seconds`` (a finished session)."""
    when = time.time() - seconds
    os.utime(path, (when, when))


def lay_out(run: str, projects: Path, project: str = PROJECT, idle: bool = True) -> Path:
    """Copy a fixture run's transcript (and subagents) to ``projects/<project>/<session>.jsonl``."""
    src = FIXTURES / run
    sid = session_id_of(src / "transcript.jsonl")
    folder = projects / project
    folder.mkdir(parents=True, exist_ok=True)
    dest = folder / f"{sid}.jsonl"
    shutil.copyfile(src / "transcript.jsonl", dest)
    if (src / "subagents").is_dir():
        shutil.copytree(src / "subagents", folder / sid / "subagents", dirs_exist_ok=True)
    if idle:
        age(dest)
    return dest


def _line(obj: dict[str, Any]) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode() + b"\n"


def turn(
    session: str,
    prompt: str,
    *,
    output: str = "ok",
    calls: int = 1,
    answered: bool = True,
    when: str = "2026-11-30T10:00:00.000Z",
    structured: Any = None,
) -> bytes:
    """One user turn as 2.1.332 writes it: the prompt, per call a text + tool_use line and a
    tool_result line, then the final answer (``answered=False``: the turn is still running).
    """
    prompt_id = str(uuid.uuid4())
    common: dict[str, Any] = {"sessionId": session, "timestamp": when, "cwd": "/home/user/project"}
    common |= {"version": "2.1.332", "gitBranch": "main", "isSidechain": False}
    out = [
        _line(
            {
                "type": "user",
                "promptId": prompt_id,
                "message": {"role": "user", "content": prompt},
                "uuid": str(uuid.uuid4()),
                "permissionMode": "default",
                **common,
            }
        ),
        _line({"type": "attachment", "attachment": {"type": "date", "date": "2026-11-30"}}),
    ]
    for n in range(calls):
        mid, tid = f"msg_{uuid.uuid4().hex}", f"toolu_{uuid.uuid4().hex}"
        for block in (
            {"type": "text", "text": f"Step {n}: running the tool."},
            {"type": "tool_use", "id": tid, "name": "Bash", "input": {"command": f"run {n}"}},
        ):
            msg: dict[str, Any] = {"id": mid, "role": "assistant", "model": "claude-opus-5-5"}
            msg |= {"content": [block], "stop_reason": "tool_use"}
            out.append(_line({"type": "assistant", "message": msg, **common}))
        result: dict[str, Any] = {"type": "tool_result", "tool_use_id": tid, "content": output}
        out.append(
            _line(
                {
                    "type": "user",
                    "promptId": prompt_id,
                    "message": {"role": "user", "content": [result]},
                    "toolUseResult": structured
                    if structured is not None
                    else {"stdout": output, "stderr": ""},
                    **common,
                }
            )
        )
    if answered:
        msg = {"id": f"msg_{uuid.uuid4().hex}", "role": "assistant"}
        msg["model"] = "claude-opus-5-5"
        msg |= {"content": [{"type": "text", "text": f"Done: {prompt}"}], "stop_reason": "end_turn"}
        out.append(_line({"type": "assistant", "message": msg, **common}))
    return b"".join(out)


def big_output(size: int) -> str:
    """Tool output of about ``size`` characters: build-log lines."""
    line = "2026-11-30 10:00:00 INFO compiled module {:06d} in 12 ms (cache miss)\n"
    return "".join(line.format(i) for i in range(size // len(line.format(0)) + 1))[:size]
