"""TraceStorage: append-only JSONL, latest version wins, torn lines never fatal."""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from claude_bc.capture.errors import BCError
from claude_bc.capture.schema import SCHEMA_VERSION, ClaudeTrace, ToolCall, load_trace
from claude_bc.capture.store import TraceStorage


def trace(i: int, response: str = "done") -> ClaudeTrace:
    return ClaudeTrace(
        trace_id=f"{i:08d}-0000-5000-8000-000000000000",
        user_prompt=f"prompt {i}",
        tool_calls=[ToolCall(tool="Read", args={"file_path": f"/f{i}"})],
        claude_response=response,
        session_id="s",
    )


def test_round_trip_and_permissions(tmp_path: Path) -> None:
    store = TraceStorage(tmp_path / "traces")
    assert store.append([trace(1), trace(2)]) == 2
    loaded = store.load_traces()
    assert [t.user_prompt for t in loaded] == ["prompt 1", "prompt 2"]
    assert loaded[0] == trace(1)
    assert store.path.stat().st_mode & 0o777 == 0o600
    assert store.path.parent.stat().st_mode & 0o777 == 0o700


def test_latest_version_wins_and_is_counted_once(tmp_path: Path) -> None:
    store = TraceStorage(tmp_path)
    store.append([trace(1, "first"), trace(2)])
    store.append([trace(1, "second")])
    assert store.count() == 2
    assert store.get(trace(1).trace_id).claude_response == "second"
    assert [t.trace_id for t in store.load_traces()] == [trace(1).trace_id, trace(2).trace_id]


def test_torn_last_line_is_skipped_reported_and_sealed(tmp_path: Path) -> None:
    store = TraceStorage(tmp_path)
    store.append([trace(1)])
    with store.path.open("ab") as fh:
        fh.write(json.dumps(trace(2).record()).encode()[:50])  # writer killed mid-line
    assert [t.user_prompt for t in store.load_traces()] == ["prompt 1"]
    assert len(store.problems) == 1 and "torn last line" in str(store.problems[0])
    store.append([trace(3)])  # must not be glued onto the torn line
    fresh = TraceStorage(tmp_path)
    assert [t.user_prompt for t in fresh.load_traces()] == ["prompt 1", "prompt 3"]
    assert "malformed" in str(fresh.problems[0]) and ":2:" in str(fresh.problems[0])


def test_bad_records_are_reported_not_fatal(tmp_path: Path) -> None:
    store = TraceStorage(tmp_path)
    store.append([trace(1)])
    with store.path.open("a") as fh:
        fh.write("[1, 2]\n")
        fh.write(json.dumps({"schema_version": SCHEMA_VERSION + 1, "trace_id": "x"}) + "\n")
        fh.write(json.dumps({"schema_version": 1, "trace_id": "y"}) + "\n")  # no user_prompt
    store.append([trace(2)])
    assert store.count() == 2
    reasons = " | ".join(str(p) for p in store.problems)
    assert "not a JSON object" in reasons and "newer than this claude-bc" in reasons
    assert "invalid trace" in reasons


def test_v0_seed_record_upgrades() -> None:
    seed = {
        "trace_id": "abc",
        "timestamp": "2025-01-02T03:04:05",
        "user_prompt": "What differs?",
        "tool_calls": [
            {
                "tool": "Read",
                "args": {"file_path": "schema.py"},
                "output": "...",
                "reasoning": "Read the schema",
            }
        ],
        "claude_response": "They differ.",
        "user_rating": 1,
        "reasoning_signals": {"tool_sequence": ["Read"], "exploration_depth": "minimal"},
    }
    t = load_trace(seed)
    assert t.schema_version == SCHEMA_VERSION and t.rating == "up" and t.sources == ["manual"]
    assert t.started_at is not None and t.started_at.year == 2025
    assert t.tool_calls[0].reasoning == "Read the schema"


def test_unknown_fields_survive_a_round_trip(tmp_path: Path) -> None:
    rec = trace(1).record() | {"from_the_future": {"a": 1}}
    assert load_trace(rec).record()["from_the_future"] == {"a": 1}


def test_get_by_prefix(tmp_path: Path) -> None:
    store = TraceStorage(tmp_path)
    store.append([trace(1), trace(12)])
    assert store.get("00000001").user_prompt == "prompt 1"
    with pytest.raises(BCError, match="ambiguous"):
        store.get("0000")
    with pytest.raises(BCError, match="no trace"):
        store.get("ffff")


WRITER = """
import sys
sys.path.insert(0, sys.argv[1])
from claude_bc.capture.schema import ClaudeTrace
from claude_bc.capture.store import TraceStorage
w = int(sys.argv[3])
store = TraceStorage(sys.argv[2])
for i in range(50):
    store.append([ClaudeTrace(trace_id=f"{w}-{i}", user_prompt="p" * (i * 997), session_id="s")])
"""


@pytest.mark.slow
def test_concurrent_writers_lose_nothing(tmp_path: Path) -> None:
    repo = str(Path(__file__).resolve().parents[2])
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, repo, str(tmp_path), str(w)], env={**os.environ}
        )
        for w in range(16)
    ]
    assert all(p.wait(timeout=120) == 0 for p in procs)
    store = TraceStorage(tmp_path)
    assert store.count() == 16 * 50 and not store.problems


def test_a_batch_of_huge_and_many_small_lines_is_written_whole_and_in_order(
    tmp_path: Path,
) -> None:
    """One append is split into several writes (at most ~1 MB and 512 parts each): every
    line still lands whole, in order, after what was there."""
    store = TraceStorage(tmp_path)
    store.append([trace(0)])
    before = store.path.read_bytes()
    lines = [b'{"n":%d}' % i for i in range(1500)]
    lines[700] = b'{"big":"' + b"x" * (3 << 20) + b'"}'
    lines[701] = b'{"big":"' + b"y" * 700_000 + b'"}'
    end, offsets = store.append_lines(lines)
    data = store.path.read_bytes()
    assert end == len(before) and data == before + b"".join(line + b"\n" for line in lines)
    assert all(data[o : o + len(line)] == line for o, line in zip(offsets, lines, strict=True))


def test_a_full_disk_leaves_the_store_as_it_was(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = TraceStorage(tmp_path)
    store.append([trace(1)])
    before = store.path.read_bytes()

    def short_writev(fd: int, parts: list[bytes]) -> int:
        return os.write(fd, parts[0][:10])  # the disk fills up part way

    def enospc(fd: int, data: object) -> int:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "writev", short_writev)
    monkeypatch.setattr(os, "write", enospc)
    with pytest.raises(BCError, match="No space left on device"):
        store.append([trace(2), trace(3)])
    monkeypatch.undo()
    assert store.path.read_bytes() == before
    store.append([trace(4)])
    assert [t.user_prompt for t in store.load_traces()] == ["prompt 1", "prompt 4"]


# --- an append that waits while ``bc-capture redact`` swaps the file ------------------

SWAPPER = """
import fcntl, os, sys
path = sys.argv[1]
fd = os.open(path, os.O_RDWR)
fcntl.flock(fd, fcntl.LOCK_EX)  # as bc-capture redact holds it while it rewrites
print("locked", flush=True)
sys.stdin.readline()  # until the writer waits on this lock
with open(path, "rb") as src, open(path + ".new", "wb") as dest:
    dest.write(src.read())  # the rewritten copy
os.replace(path + ".new", path)
os.close(fd)  # the writer's lock on the old file is granted now
"""

APPENDER = """
import sys
sys.path.insert(0, sys.argv[1])
from claude_bc.capture.schema import ClaudeTrace
from claude_bc.capture.store import TraceStorage
TraceStorage(sys.argv[2]).append([ClaudeTrace(trace_id="late", user_prompt="p", session_id="s")])
"""


def _waits_on_a_lock(pid: int) -> bool:
    """Whether ``pid`` is blocked on an ``flock`` (``/proc/locks`` lists a waiting
    request as ``N: -> FLOCK ADVISORY WRITE <pid> ...``)."""
    for line in Path("/proc/locks").read_text().splitlines():
        fields = line.split()
        if "->" in fields and str(pid) in fields:
            return True
    return False


@pytest.mark.skipif(not Path("/proc/locks").exists(), reason="needs Linux /proc/locks")
def test_an_append_waiting_while_the_file_is_swapped_goes_to_the_new_file(
    tmp_path: Path,
) -> None:
    """Two real processes: one holds the store's lock as ``bc-capture redact`` does and
    swaps in a new file; the other opened the old file and waits on its lock. Once it
    gets the lock, its line must land in the file now at the path, not the replaced one."""
    repo = str(Path(__file__).resolve().parents[2])
    store = TraceStorage(tmp_path)
    store.append([trace(0)])
    swapper = subprocess.Popen(
        [sys.executable, "-c", SWAPPER, str(store.path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert swapper.stdin is not None and swapper.stdout is not None
    assert swapper.stdout.readline().strip() == "locked"
    writer = subprocess.Popen([sys.executable, "-c", APPENDER, repo, str(tmp_path)])
    deadline = time.monotonic() + 60
    while not _waits_on_a_lock(writer.pid):  # it has the old file open, and waits
        assert writer.poll() is None and time.monotonic() < deadline
        time.sleep(0.01)
    swapper.stdin.write("go\n")
    swapper.stdin.flush()
    assert swapper.wait(timeout=60) == 0
    assert writer.wait(timeout=60) == 0
    ids = [json.loads(line)["trace_id"] for line in store.path.read_bytes().splitlines()]
    assert ids == [trace(0).trace_id, "late"]
    assert TraceStorage(tmp_path).count() == 2
