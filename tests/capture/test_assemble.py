"""Assembly of the recorded Claude Code runs (hooks spool + transcript) into traces."""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path

from claude_bc.capture.spool import read_spool, session_lock, turns_from_hooks
from claude_bc.capture.store import TraceStorage
from claude_bc.capture.transcript import turns_from_transcript
from claude_bc.capture.turns import assemble
from claude_bc.capture.worker import assemble_session
from tests.conftest import FIXTURES, stage_run

BASIC_PROMPT = (
    "Look at src/app.py, find the function definitions, check notes.txt, "
    "and change the greeting target to Claude."
)
FINAL = (
    "Done. `src/app.py` now greets Claude; the functions are `greet` and `shout` in "
    "`src/util.py` and `main` in `src/app.py`."
)


def basic_expectations(trace) -> None:  # type: ignore[no-untyped-def]
    assert trace.user_prompt == BASIC_PROMPT
    assert [c.tool for c in trace.tool_calls] == ["Read", "Grep", "Bash", "Bash", "Edit"]
    read, grep, ls, fail, edit = trace.tool_calls
    assert read.args == {"file_path": "/home/user/project/src/app.py"}
    assert read.reasoning == "I'll start by reading the entry point."
    assert (
        grep.reasoning == "Searching for function definitions and listing the sources in parallel."
    )
    assert ls.reasoning == ""
    assert grep.batch == ls.batch == 1 and read.batch == 0 and edit.batch == 3
    assert (
        grep.output == "src/app.py:4:def main():\nsrc/util.py:1:def greet(name):\n"
        "src/util.py:5:def shout(name):"
    )
    assert fail.success is False and fail.args["command"] == "cat notes-missing.txt"
    assert fail.error == "Exit code 1\ncat: notes-missing.txt: No such file or directory"
    assert (
        edit.reasoning
        == "That file does not exist (the notes are in notes.txt). Making the edit now."
    )
    assert edit.success and edit.args["new_string"] == 'print(greet("Claude"))'
    assert all(c.success for c in (read, grep, ls, edit))
    assert trace.claude_response == FINAL
    assert trace.complete
    assert trace.reasoning_signals.tool_sequence == ["Read", "Grep", "Bash", "Bash", "Edit"]
    assert trace.reasoning_signals.used_terminal
    assert trace.reasoning_signals.workflow_type == "parallel"


def test_basic_run_hooks_plus_transcript(bc_home: Path) -> None:
    session, _ = stage_run("basic", bc_home)
    result = assemble_session(session, bc_home)
    assert result.ended and result.written == 1 and not result.problems
    (trace,) = TraceStorage(bc_home / "traces").load_traces()
    basic_expectations(trace)
    read = trace.tool_calls[0]
    assert read.thinking == "The user wants the greeting changed. I should read src/app.py first."
    assert trace.tool_calls[1].message_id == trace.tool_calls[2].message_id != read.message_id
    assert read.duration_ms == 12 and read.tool_response["file"]["numLines"] == 10
    assert read.output.startswith("1\tfrom util import greet")
    assert trace.sources == ["transcript", "hooks"]
    assert trace.session_id == session and trace.prompt_id == "a701ec3b-c7ee-4b13-b93a-8ec12fef40d0"
    assert trace.claude_code_version == "2.1.332" and trace.model
    assert trace.cwd == "/home/user/project"
    # the spool and the session's lock file are removed once the session ended, and a
    # late worker (a Stop's, that waited for the lock) leaves none behind either
    assert not (bc_home / "spool" / f"{session}.jsonl").exists()
    assert not list((bc_home / "state").glob("*.lock"))
    assert assemble_session(session, bc_home).written == 0
    assert not list((bc_home / "state").glob("*.lock"))


def waiting_on(inode: int) -> None:
    """Until a lock request waits on the file ``inode`` (Linux lists it in /proc/locks)."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        for line in Path("/proc/locks").read_text().splitlines():
            fields = line.split()
            if "->" in fields and fields[-3].rsplit(":", 1)[-1] == str(inode):
                return
        time.sleep(0.01)
    raise AssertionError("nobody waits on the lock")


def test_a_worker_that_waited_on_a_removed_lock_file_locks_the_new_one(
    tmp_path: Path,
) -> None:
    """An ended session's worker removes its lock file while holding it: one that was
    waiting on that file must not go on as if it held the lock."""
    lock = tmp_path / "s.lock"
    first = session_lock(lock)
    old = os.fstat(first).st_ino
    got: list[int] = []
    waiter = threading.Thread(target=lambda: got.append(session_lock(lock)))
    waiter.start()
    waiting_on(old)  # the waiter has opened the old file and blocks on it
    lock.unlink()
    third = session_lock(lock)  # a new worker: the new file is free
    os.close(first)  # the waiter now gets the old, removed file: it must not stop there
    waiting_on(os.fstat(third).st_ino)  # but wait for the holder of the new one
    assert waiter.is_alive() and not got
    os.close(third)
    waiter.join(timeout=10)
    assert got and os.fstat(got[0]).st_ino == lock.stat().st_ino
    os.close(got[0])


def test_reassembly_is_idempotent(bc_home: Path) -> None:
    session, _ = stage_run("basic", bc_home)
    spool = (bc_home / "spool" / f"{session}.jsonl").read_bytes()
    assemble_session(session, bc_home)
    (bc_home / "spool" / f"{session}.jsonl").write_bytes(spool)
    again = assemble_session(session, bc_home)
    assert again.written == 0
    store = TraceStorage(bc_home / "traces")
    assert store.count() == 1 and len(list(store.records())) == 1


def test_hooks_only_still_gives_the_turn(bc_home: Path) -> None:
    session, _ = stage_run("basic", bc_home)
    read = read_spool(bc_home / "spool" / f"{session}.jsonl")
    (trace,) = assemble(turns_from_hooks(read.events))
    basic_expectations(trace)
    assert trace.sources == ["hooks"]
    assert trace.tool_calls[0].thinking == ""  # thinking only exists in the transcript


def test_transcript_only_gives_the_same_turn() -> None:
    turns, problems = turns_from_transcript(FIXTURES / "basic" / "transcript.jsonl")
    assert not problems
    (trace,) = assemble(turns)
    basic_expectations(trace)
    assert trace.sources == ["transcript"]


def test_v2_1_197_transcript_lags_at_stop(bc_home: Path) -> None:
    """2.1.197 has not written the final message when Stop runs: the hook's copy fills it."""
    session, transcript = stage_run("v2.1.197/basic", bc_home)
    lines = transcript.read_text().splitlines()
    transcript.write_text("\n".join(lines[:-2]) + "\n")  # as it was at Stop
    spool = bc_home / "spool" / f"{session}.jsonl"
    events = [json.loads(x) for x in spool.read_text().splitlines()]
    upto_stop = [e for e in events if e["p"]["hook_event_name"] != "SessionEnd"]
    spool.write_text("".join(json.dumps(e) + "\n" for e in upto_stop))
    first = assemble_session(session, bc_home)
    (trace,) = first.traces
    basic_expectations(trace)
    assert trace.claude_code_version == "2.1.197"


def test_subagent_calls_are_linked(bc_home: Path) -> None:
    session, _ = stage_run("subagent", bc_home)
    result = assemble_session(session, bc_home)
    (trace,) = result.traces
    agent, sub_read = trace.tool_calls
    assert agent.tool == "Agent" and agent.agent_id is None
    assert sub_read.tool == "Read" and sub_read.agent_id == "a3501419dc3b71293"
    assert sub_read.parent_tool_use_id == agent.tool_use_id
    assert sub_read.agent_type == "general-purpose"
    assert sub_read.reasoning == "Reading the file."
    assert sub_read.output.startswith("1\tdef greet(name):")
    assert trace.claude_response == "The subagent reports two functions: greet and shout."
    assert trace.reasoning_signals.tool_sequence == ["Agent"]


def test_compact_run_gives_only_real_prompts(bc_home: Path) -> None:
    session, _ = stage_run("compact-resume", bc_home)
    result = assemble_session(session, bc_home)
    assert [t.user_prompt for t in result.traces] == ["List the files."]
    assert result.traces[0].claude_response == "Listed."
