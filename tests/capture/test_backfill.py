"""`bc-capture import`: transcripts of past sessions → traces, incremental and merged."""

from __future__ import annotations

import fcntl
import json
import os
import pty
import random
import shutil
import struct
import subprocess
import sys
import termios
import textwrap
import threading
import time
from contextlib import suppress
from pathlib import Path
from typing import Any

import pytest

from claude_bc.capture import backfill
from claude_bc.capture import ingest as ingest_mod
from claude_bc.capture import transcript as transcript_mod
from claude_bc.capture.backfill import FileState, import_file, import_files, session_files
from claude_bc.capture.registry import REGISTRY_FILE, Registry
from claude_bc.capture.store import Problem, TraceStorage
from claude_bc.capture.transcript import subagent_files, subagents_of
from claude_bc.capture.worker import assemble_session
from tests.capture.transcripts import (
    PROJECT,
    age,
    big_output,
    lay_out,
    session_id_of,
    turn,
)
from tests.claude_code import dashed_project_name
from tests.conftest import REPO, stage_run
from tests.conftest import run_bc as run_cli

LATER = time.time() + 10_000  # "now" for imports that should see every file as idle
RUNS = ["basic", "subagent", "compact-resume", "v2.1.197/basic"]
# what only the hooks know: the transcript cannot give these
HOOK_ONLY = {"sources", "ended_at"}
HOOK_ONLY_CALL = {"duration_ms"}


def store_of(home: Path) -> TraceStorage:
    return TraceStorage(home / "traces")


def imp(path: Path, home: Path, **kw: Any) -> backfill.FileResult:
    return import_file(path, store_of(home), home / "state", **kw)


def records(home: Path) -> list[dict[str, Any]]:
    return list(store_of(home).records())


@pytest.mark.parametrize("run", RUNS)
def test_fixture_imports_to_the_hook_path_trace(run: str, tmp_path: Path) -> None:
    hooked_home, imported_home = tmp_path / "hooked", tmp_path / "imported"
    session, _ = stage_run(run, hooked_home)
    (hooked,) = assemble_session(session, hooked_home).traces
    transcript = lay_out(run, tmp_path / "projects")
    result = imp(transcript, imported_home, now=LATER)
    assert result.report.new == 1 and not result.problems and not result.in_progress
    (imported,) = store_of(imported_home).load_traces()
    a, b = hooked.record(), imported.record()
    assert imported.sources == ["transcript"]
    assert {k: v for k, v in a.items() if k not in HOOK_ONLY | {"tool_calls"}} == {
        k: v for k, v in b.items() if k not in HOOK_ONLY | {"tool_calls"}
    }
    assert len(a["tool_calls"]) == len(b["tool_calls"])
    for ca, cb in zip(a["tool_calls"], b["tool_calls"], strict=True):
        if cb["agent_id"]:  # a subagent's transcript has no structured tool results
            ca = {**ca, "tool_response": None}
        assert {k: v for k, v in ca.items() if k not in HOOK_ONLY_CALL} == {
            k: v for k, v in cb.items() if k not in HOOK_ONLY_CALL
        }

    # importing into the store the hooks wrote merges: no second trace, nothing lost
    again = imp(transcript, hooked_home, now=LATER)
    assert again.report.unchanged == 1 and len(records(hooked_home)) == 1
    # and the other way round ends with the very same trace
    session, _ = stage_run(run, imported_home)
    assemble_session(session, imported_home)
    (both,) = store_of(imported_home).load_traces()
    assert both.record() == hooked.record()


@pytest.mark.parametrize("run", RUNS)
def test_bookkeeping_lines_passed_over_unparsed_change_no_trace(
    run: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = lay_out(run, tmp_path / "p")
    parsed: list[bytes] = []
    parse = transcript_mod.parse_line

    def counted(raw: bytes) -> Any:
        parsed.append(raw)
        return parse(raw)

    monkeypatch.setattr(transcript_mod, "parse_line", counted)
    with monkeypatch.context() as m:  # as without Hyperscan: every line is parsed
        m.setattr(transcript_mod, "_turn_lines", None)
        m.setattr(transcript_mod, "use_prefilter", lambda: None)
        every = import_files([path], store_of(tmp_path / "a"), tmp_path / "a" / "state", idle=1)
    every_lines, parsed[:] = len(parsed), []
    fast = import_files([path], store_of(tmp_path / "b"), tmp_path / "b" / "state", idle=1)
    assert transcript_mod._turn_lines is not None
    assert every.report.new == fast.report.new == 1 and not every.problems + fast.problems
    assert records(tmp_path / "a") == records(tmp_path / "b")
    assert len(parsed) < every_lines  # (every recorded run has bookkeeping lines)


TURN_LINES = [
    b'{"parentUuid":null,"type":"user","message":{}}',
    b'{"type": "assistant", "message": {}}',
    b'{"type":"cost-state"}',
    b'{"type":"us\\u0065r","message":{}}',  # an escape anywhere: parsed to be sure
    b'{"type":"user","message":{"content":"' + b"x" * 5000 + b'"}}',
    b'{"type":"user","n":1}\r',
]
BOOKKEEPING = [
    b'{"type":"attachment","attachment":{"content":"x"}}',
    b'{"type":"queue-operation","operation":"enqueue"}',
    b'{"type":"api-request-shape","shape": }',  # malformed, but reading it changes no turn
    b'{"type":"attachment","attachment":{"content":"' + b"y" * 5000 + b'"}}',
]
OTHER = [b"not json", b"[1, 2]", b"", b"   "]


@pytest.mark.parametrize("run_bytes", [7, 100, 1 << 20])
def test_a_turn_line_is_never_passed_over(
    run_bytes: int, bc_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With ``only_turns``, every turn line and every line that is not a plain object is
    read as before; only well-framed bookkeeping lines are passed over. Runs of any size
    (lines longer than a run, a run boundary anywhere) read the same."""
    monkeypatch.setattr(transcript_mod, "RUN_BYTES", run_bytes)
    transcript_mod.use_prefilter()
    rng = random.Random(run_bytes)
    lines = [rng.choice(TURN_LINES + BOOKKEEPING + OTHER) for _ in range(300)]
    path = tmp_path / "t.jsonl"
    path.write_bytes(b"".join(line + b"\n" for line in lines) + b'{"type":"user"')  # torn
    read = {}
    for only_turns in (False, True):
        cursor, problems = transcript_mod.Cursor(), list[Problem]()
        with path.open("rb") as fh:
            got = list(transcript_mod.iter_lines(fh, path, cursor, problems, only_turns))
        read[only_turns] = (got, cursor, problems)
    (every, end, problems), (turns, end_too, problems_too) = read[False], read[True]
    assert end == end_too == transcript_mod.Cursor(len(path.read_bytes()) - 14, len(lines))
    assert [p for p in problems if b"shape" not in lines[p.line - 1]] == problems_too
    kept = [(o, n, obj) for o, n, obj in every if lines[n - 1] not in BOOKKEEPING]
    assert turns == kept and len(turns) > 50


def test_subagent_and_compaction(tmp_path: Path) -> None:
    projects = tmp_path / "projects"
    sub = lay_out("subagent", projects)
    compact = lay_out("compact-resume", projects)
    summary = import_files([sub, compact], store_of(tmp_path), tmp_path / "state", idle=1)
    assert summary.report.new == 2 and len(summary.read) == 2 and len(summary.sessions) == 2
    by_prompt = {t.user_prompt: t for t in store_of(tmp_path).load_traces()}
    agent, read = by_prompt["Use a subagent to find the function names in src/util.py."].tool_calls
    assert read.agent_id == "a3501419dc3b71293" and read.agent_type == "general-purpose"
    assert read.parent_tool_use_id == agent.tool_use_id
    # /compact, its summary and the command echo lines are not prompts
    assert list(by_prompt)[1:] == ["List the files."]


def test_resumed_session(tmp_path: Path) -> None:
    projects = tmp_path / "projects"
    path = lay_out("basic", projects)
    sid = session_id_of(path)
    assert imp(path, tmp_path, now=LATER).report.new == 1
    # --resume appends to the same file (2.1.332)
    with path.open("ab") as fh:
        fh.write(turn(sid, "Now add a docstring.", when="2026-11-30T11:00:00.000Z"))
    r = imp(path, tmp_path, now=LATER)
    assert (r.report.new, r.report.unchanged) == (1, 1)
    # older versions copy the history into a new session file: no duplicates
    copy = path.with_name("0000-resumed.jsonl")
    copy.write_bytes(path.read_bytes().replace(sid.encode(), b"0000-resumed"))
    r = imp(copy, tmp_path, now=LATER)
    assert r.report.new == 0 and store_of(tmp_path).count() == 2
    assert len(records(tmp_path)) == 2


def test_second_import_reads_only_what_was_appended(tmp_path: Path) -> None:
    path = tmp_path / "p" / PROJECT / "s1.jsonl"
    path.parent.mkdir(parents=True)
    turns = [turn("s1", f"task {i}", output="o" * 5000) for i in range(20)]
    path.write_bytes(b"".join(turns))
    first = imp(path, tmp_path, now=LATER)
    assert first.report.new == 20 and first.bytes_read == path.stat().st_size
    second = imp(path, tmp_path, now=LATER)
    assert second.skipped and second.bytes_read == 0
    added = turn("s1", "task 20")
    with path.open("ab") as fh:
        fh.write(added)
    third = imp(path, tmp_path, now=LATER)
    assert third.report.new == 1
    # the new turn, and the last one again (a turn may still grow): not the whole file
    assert third.bytes_read == len(turns[-1]) + len(added)
    assert store_of(tmp_path).count() == 21 and len(records(tmp_path)) == 21


def test_turn_in_progress_is_written_once_complete(tmp_path: Path) -> None:
    path = tmp_path / "p" / PROJECT / "s1.jsonl"
    path.parent.mkdir(parents=True)
    path.write_bytes(turn("s1", "first") + turn("s1", "second", answered=False))
    r = imp(path, tmp_path)  # just written: the second turn is still running
    assert r.report.new == 1 and r.in_progress == 1
    assert [t.user_prompt for t in store_of(tmp_path).load_traces()] == ["first"]
    assert imp(path, tmp_path).skipped  # nothing new, still running
    # it ends with its final answer
    with path.open("ab") as fh:
        fh.write(turn("s1", "third")[-400:].split(b"\n", 1)[1])  # the end_turn line
    r = imp(path, tmp_path)
    assert r.report.new == 1 and not r.in_progress
    (second,) = [t for t in store_of(tmp_path).load_traces() if t.user_prompt == "second"]
    assert second.claude_response == "Done: third" and second.complete
    # a turn that never gets its answer is written once the file has been idle
    path.write_bytes(path.read_bytes() + turn("s1", "fourth", answered=False))
    assert imp(path, tmp_path).in_progress == 1
    age(path, 600)
    r = imp(path, tmp_path)
    assert r.report.new == 1 and not r.in_progress
    assert store_of(tmp_path).count() == 3


def test_malformed_and_torn_lines(tmp_path: Path) -> None:
    path = tmp_path / "p" / PROJECT / "s1.jsonl"
    path.parent.mkdir(parents=True)
    good = turn("s1", "one")
    path.write_bytes(good + b'{"type":"user","message": oops}\n' + turn("s1", "two") + b'{"ty')
    bad_line = good.count(b"\n") + 1
    r = imp(path, tmp_path)  # fresh: the torn line may still be being written
    assert [(p.path, p.line) for p in r.problems] == [(path.resolve(), bad_line)]
    assert r.problems[0].reason.startswith("malformed")
    assert r.report.new == 2
    r = imp(path, tmp_path, now=LATER)  # idle now: the last line is torn for good
    assert [(p.line, p.reason) for p in r.problems] == [
        (bad_line + good.count(b"\n") + 1, "torn last line (skipped)")
    ]
    # the writer finishes the line after all: it is read, nothing is duplicated
    with path.open("ab") as fh:
        fh.write(b'pe":"last-prompt"}\n' + turn("s1", "three"))
    r = imp(path, tmp_path, now=LATER)
    assert r.report.new == 1 and not r.problems
    assert store_of(tmp_path).count() == 3 and len(records(tmp_path)) == 3


def test_cli_reports_malformed_lines_with_file_and_line(
    tmp_path: Path, bc_home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "p" / PROJECT / "s1.jsonl"
    path.parent.mkdir(parents=True)
    unknown = b'{"type":"from-a-future-version","message":{"content":[{"type":"hologram"}]}}\n'
    path.write_bytes(turn("s1", "one") + b"not json\n" + turn("s1", "two") + unknown)
    age(path)
    code, out, err = run_cli(capsys, "import", "--projects-dir", str(tmp_path / "p"))
    assert code == 0 and err == ""  # no progress bar when stderr is not a terminal
    lines = out.splitlines()
    assert lines[0] == ("1 files (1 read, 1 sessions): 2 new traces, 0 merged, 0 already stored")
    assert lines[1] == "1 malformed lines (skipped):"
    bad_line = turn("s1", "x").count(b"\n") + 1
    assert lines[2].startswith(f"  {path}:{bad_line}: malformed")


def test_file_growing_during_import(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(backfill, "BATCH_TURNS", 5)
    path = tmp_path / "p" / PROJECT / "s1.jsonl"
    path.parent.mkdir(parents=True)
    path.write_bytes(b"".join(turn("s1", f"task {i}") for i in range(12)))
    grown: list[int] = []
    half = turn("s1", "half")

    def grow(n: int) -> None:  # Claude Code appends while the import reads
        if not grown:
            with path.open("ab") as fh:
                fh.write(b"".join(turn("s1", f"late {i}") for i in range(3)))
                fh.write(half[:150])  # a line half written
            grown.append(n)

    r = imp(path, tmp_path, on_bytes=grow)
    assert grown and r.report.new >= 12 and not r.problems
    with path.open("ab") as fh:
        fh.write(half[150:])
    imp(path, tmp_path, now=LATER)
    prompts = [t.user_prompt for t in store_of(tmp_path).load_traces()]
    assert sorted(prompts) == sorted(
        [f"task {i}" for i in range(12)] + [f"late {i}" for i in range(3)] + ["half"]
    )
    assert len(records(tmp_path)) == 16


def test_truncated_or_replaced_file_is_read_again(tmp_path: Path) -> None:
    path = tmp_path / "p" / PROJECT / "s1.jsonl"
    path.parent.mkdir(parents=True)
    path.write_bytes(b"".join(turn("s1", f"task {i}") for i in range(3)))
    imp(path, tmp_path, now=LATER)
    # replaced by a shorter file (a new session file under the same name)
    path.write_bytes(turn("s2", "other"))
    r = imp(path, tmp_path, now=LATER)
    assert r.replaced and r.report.new == 1
    # replaced by a longer file with other first bytes
    replacement = path.with_suffix(".new")
    replacement.write_bytes(turn("s3", "x" * 10) + turn("s3", "y") * 2)
    os.replace(replacement, path)
    r = imp(path, tmp_path, now=LATER)
    assert r.replaced and r.report.new == 2
    # the stored traces stay (the store is append-only)
    assert store_of(tmp_path).count() == 6 and len(records(tmp_path)) == 6


def test_interrupted_import_resumes_without_duplicates(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(backfill, "BATCH_TURNS", 4)
    path = tmp_path / "p" / PROJECT / "s1.jsonl"
    path.parent.mkdir(parents=True)
    path.write_bytes(b"".join(turn("s1", f"task {i}") for i in range(20)))
    real = ingest_mod.ingest
    calls: list[int] = []

    def crash_after_writing(*args: Any) -> Any:
        report = real(*args)
        calls.append(1)
        if len(calls) == 2:  # killed after the store was written, before the state was
            raise KeyboardInterrupt
        return report

    monkeypatch.setattr(backfill, "ingest", crash_after_writing)
    with pytest.raises(KeyboardInterrupt):
        imp(path, tmp_path, now=LATER)
    assert store_of(tmp_path).count() == 8
    monkeypatch.setattr(backfill, "ingest", real)
    r = imp(path, tmp_path, now=LATER)
    assert (r.report.new, r.report.unchanged) == (12, 4)  # batch 2 again: already stored
    assert store_of(tmp_path).count() == 20 and len(records(tmp_path)) == 20


def test_subagent_written_after_its_turn_is_merged_in(tmp_path: Path) -> None:
    path = lay_out("subagent", tmp_path / "p")
    agent_file = next(path.with_suffix("").glob("subagents/agent-*.jsonl"))
    full = agent_file.read_bytes()
    cut = b"".join(line for line in full.splitlines(keepends=True) if b"tool_result" not in line)
    agent_file.write_bytes(cut)  # the subagent's tool result was not written yet
    imp(path, tmp_path, now=LATER)
    (t,) = store_of(tmp_path).load_traces()
    assert t.tool_calls[1].output == ""
    agent_file.write_bytes(full)
    r = imp(path, tmp_path, now=LATER)
    assert r.report.merged == 1
    (t,) = store_of(tmp_path).load_traces()
    assert t.tool_calls[1].output.startswith("1\tdef greet(name):")


def test_cli_project_since_and_config_dir(
    tmp_path: Path,
    bc_home: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    config = tmp_path / "config"
    mine = tmp_path / "work" / "my app"
    mine.mkdir(parents=True)
    dashed = dashed_project_name(mine)
    lay_out("basic", config / "projects", project=dashed)
    old = lay_out("subagent", config / "projects")  # /home/user/project
    age(old, 10 * 86400)
    monkeypatch.setenv("CLAUDE_CONFIG_DIR", str(config))

    code, out, _ = run_cli(capsys, "import", "--project", str(mine))
    assert code == 0 and "1 new traces" in out
    since = time.strftime("%Y-%m-%d", time.localtime(time.time() - 5 * 86400))
    code, out, _ = run_cli(capsys, "import", "--since", since)
    assert code == 0 and out.startswith("1 files (0 read")  # the old session is left out
    code, out, _ = run_cli(capsys, "import")
    assert code == 0 and "1 new traces" in out and "1 already stored" not in out
    assert store_of(bc_home).count() == 2

    code, _, err = run_cli(capsys, "import", "--project", str(tmp_path / "nowhere"))
    assert code == 1 and err.startswith("bc-capture: error: no Claude Code sessions for")
    code, _, err = run_cli(capsys, "import", "--projects-dir", str(tmp_path / "none"))
    assert (
        code == 1
        and err == f"bc-capture: error: no Claude Code projects folder at {tmp_path / 'none'}\n"
    )


def test_session_files_skip_links_out_of_the_folder(tmp_path: Path) -> None:
    projects = tmp_path / "projects"
    real = lay_out("basic", projects)
    outside = tmp_path / "secret.jsonl"
    outside.write_text("{}\n")
    (projects / PROJECT / "link.jsonl").symlink_to(outside)
    (projects / "-linked-project").symlink_to(tmp_path)
    assert session_files(projects) == [real]
    # subagent files and their meta files are read only inside the project folder too
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "agent-x.jsonl").write_text("{}\n")
    (elsewhere / "agent-y.meta.json").write_text('{"toolUseId": "t1"}')
    s9 = projects / PROJECT / "s9"
    s9.mkdir()
    (s9 / "subagents").symlink_to(elsewhere)
    assert subagent_files(projects / PROJECT / "s9.jsonl") == {}
    (s9 / "subagents").unlink()
    (s9 / "subagents").mkdir()
    (s9 / "subagents" / "agent-y.jsonl").write_text("{}\n")
    (s9 / "subagents" / "agent-y.meta.json").symlink_to(elsewhere / "agent-y.meta.json")
    (s9 / "subagents" / "agent-z.jsonl").symlink_to(elsewhere / "agent-x.jsonl")
    (sub,) = subagents_of(projects / PROJECT / "s9.jsonl")
    assert sub.agent_id == "y" and sub.tool_use_id is None


def test_a_corrupt_registry_is_started_over_and_nothing_is_stored_twice(
    tmp_path: Path,
) -> None:
    path = tmp_path / "p" / PROJECT / "s1.jsonl"
    path.parent.mkdir(parents=True)
    path.write_bytes(turn("s1", "one"))
    age(path)
    assert imp(path, tmp_path).report.new == 1
    with path.open("ab") as fh:
        fh.write(turn("s1", "two"))
    age(path)
    (tmp_path / "state" / REGISTRY_FILE).write_bytes(b"not a database" * 100)
    r = imp(path, tmp_path)  # read again from the start: "one" is found stored
    assert (r.report.new, r.report.unchanged, r.problems) == (1, 1, [])
    assert [t.user_prompt for t in store_of(tmp_path).load_traces()] == ["one", "two"]
    assert imp(path, tmp_path).skipped  # the registry works again


def test_states_of_older_versions_move_into_the_registry(tmp_path: Path) -> None:
    path = lay_out("basic", tmp_path / "p")
    imp(path, tmp_path / "new", now=LATER)
    saved = Registry(tmp_path / "new" / "state").get(path.resolve())
    assert saved is not None
    # an older version's home: the same store, the state in a JSON file of its own
    old = tmp_path / "old"
    shutil.copytree(tmp_path / "new" / "traces", old / "traces")
    legacy = old / "state" / "transcripts"
    legacy.mkdir(parents=True)
    (legacy / "0123abcd.json").write_text(json.dumps(saved))
    (legacy / "0123abcd.lock").touch()
    (legacy / "bad.json").write_text("{")
    r = imp(path, old, now=LATER)
    assert r.skipped and r.report.new == 0  # read nothing again: the old state was used
    assert not legacy.exists()
    assert Registry(old / "state").get(path.resolve()) == saved


@pytest.mark.slow
def test_large_transcript_imports_in_bounded_memory(tmp_path: Path) -> None:
    """≥ 100 MB of transcript (mostly big tool outputs), imported in a subprocess, peaks
    no higher than a tenth of it does: memory does not grow with the file."""
    out = big_output(256 * 1024)
    small = {"stdout": "[shown above]", "stderr": ""}

    def transcript(folder: str, mb: int) -> tuple[Path, int]:
        path = tmp_path / folder / PROJECT / "big.jsonl"
        path.parent.mkdir(parents=True)
        n = 0
        with path.open("wb") as fh:
            while fh.tell() < mb * 2**20:
                at = f"2026-11-30T1{n // 3600 % 10}:{n // 60 % 60:02d}:{n % 60:02d}.000Z"
                fh.write(turn("big", f"build {n}", output=out, calls=4, structured=small, when=at))
                n += 1
        age(path)
        return path, n

    path, n = transcript("p", 100)
    size = path.stat().st_size
    tenth, _ = transcript("tenth", 10)

    def peak_rss(projects: Path, home: Path) -> tuple[int, str]:
        script = textwrap.dedent(
            """
            import resource, subprocess, sys
            proc = subprocess.run(sys.argv[1:], capture_output=True, text=True)
            sys.stdout.write(proc.stdout + proc.stderr)
            print("PEAK", resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024)
            sys.exit(proc.returncode)
            """
        )
        cmd = [sys.executable, "-c", script, str(REPO / ".venv" / "bin" / "bc-capture")]
        cmd += ["import", "--projects-dir", str(projects)]
        env = {**os.environ, "BC_HOME": str(home)}
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=240)
        assert proc.returncode == 0, proc.stdout
        return int(proc.stdout.rsplit("PEAK", 1)[1]), proc.stdout

    base, _ = peak_rss(tenth.parents[1], tmp_path / "h1")
    t0 = time.monotonic()
    peak, out_text = peak_rss(path.parents[1], tmp_path / "h2")
    took = time.monotonic() - t0
    print(
        f"\nimported {size / 2**20:.0f} MB ({n} turns) in {took:.1f} s; peak RSS "
        f"{peak / 2**20:.0f} MB (a tenth of it: {base / 2**20:.0f} MB)"
    )
    assert f"{n} new traces" in out_text
    assert peak - base < size / 10, (peak, base)
    # below the file's own size: reading it whole would need more. (The fixed footprint,
    # ~70 MB with interpreter, libraries and the 420 betterleaks-derived rules compiled,
    # is most of the peak: 81 MB measured on CI, where 0.75 x size was once the bound.)
    assert peak < size, (peak, size)
    assert store_of(tmp_path / "h2").count() == n


def test_state_is_kept_per_file_in_a_private_registry(tmp_path: Path) -> None:
    path = lay_out("basic", tmp_path / "p")
    imp(path, tmp_path, now=LATER)
    # one registry file for every transcript, not a file (or lock) per transcript
    assert [f.name for f in (tmp_path / "state").iterdir()] == [REGISTRY_FILE]
    assert (tmp_path / "state" / REGISTRY_FILE).stat().st_mode & 0o777 == 0o600
    state = FileState(**(Registry(tmp_path / "state").get(path.resolve()) or {}))
    assert state.path == str(path.resolve()) and state.size == path.stat().st_size
    assert state.inode == path.stat().st_ino and not state.pending


@pytest.mark.slow
def test_progress_bar_on_a_terminal(tmp_path: Path) -> None:
    path = tmp_path / "p" / PROJECT / "s1.jsonl"
    path.parent.mkdir(parents=True)
    out = big_output(128 * 1024)
    path.write_bytes(b"".join(turn("s1", f"t{i}", output=out, calls=2) for i in range(64)))
    age(path)
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))
    proc = subprocess.Popen(
        [str(REPO / ".venv/bin/bc-capture"), "import", "--projects-dir", str(path.parents[1])],
        # at once: the import can beat the usual 0.5 s delay
        env={**os.environ, "BC_HOME": str(tmp_path / "bc"), "BC_PROGRESS_DELAY": "0"},
        stdout=subprocess.PIPE,
        stderr=slave,
    )
    os.close(slave)
    shown: list[bytes] = []

    def read_terminal() -> None:
        with suppress(OSError):  # EIO once the command has exited
            while chunk := os.read(master, 65536):
                shown.append(chunk)

    reader = threading.Thread(target=read_terminal)
    reader.start()
    stdout, _ = proc.communicate(timeout=120)
    reader.join(10)
    os.close(master)
    assert proc.returncode == 0
    screen = b"".join(shown)
    assert b"import:" in screen and b"MB" in screen, screen[-300:]
    assert stdout.decode().startswith("1 files (1 read, 1 sessions): 64 new traces")


def corpus(projects: Path) -> list[Path]:
    """Every recorded run, plus copies of one made the way older versions resume a
    session (the history copied into a new session file): the same turns, stored once."""
    first, *_ = [lay_out(run, projects) for run in RUNS]
    sid = session_id_of(first)
    for i in range(6):
        copy = first.with_name(f"resumed-{i}.jsonl")
        copy.write_bytes(first.read_bytes().replace(sid.encode(), f"resumed-{i}".encode()))
        age(copy)
    return session_files(projects)


def test_parallel_import_stores_what_a_sequential_one_does(tmp_path: Path) -> None:
    files = corpus(tmp_path / "projects")
    runs = {}
    total = sum(f.stat().st_size for f in files)
    for jobs in (1, 3):
        home = tmp_path / f"jobs-{jobs}"
        done: list[int] = []
        summary = import_files(
            files, store_of(home), home / "state", idle=1, jobs=jobs, on_bytes=done.append
        )
        assert sum(done) == total  # the progress bar reaches the end
        r = summary.report
        runs[jobs] = (r.new, r.merged + r.unchanged, len(summary.sessions), len(summary.read))
        assert not summary.problems
    assert runs[1] == runs[3] == (len(RUNS), 6, len(RUNS) + 6, len(RUNS) + 6)
    one, three = store_of(tmp_path / "jobs-1"), store_of(tmp_path / "jobs-3")
    assert len(records(tmp_path / "jobs-3")) == len(RUNS)  # no version written twice

    def by_prompt(store: TraceStorage) -> dict[tuple[str, str | None], dict[str, Any]]:
        # which copy of the resumed session is stored first (its id and session) depends
        # on the scheduling; two runs (two Claude Code versions) share a prompt, and the
        # order they are stored in depends on it too
        found = {
            (t.user_prompt, t.claude_code_version): {
                **t.record(),
                "session_id": None,
                "trace_id": None,
            }
            for t in store.load_traces()
        }
        assert len(found) == len(RUNS)
        return found

    assert by_prompt(one) == by_prompt(three)
    again = import_files(files, three, tmp_path / "jobs-3" / "state", idle=1, jobs=3)
    assert again.report.new == 0 and not again.read and len(again.files) == len(files)


def test_cli_import_with_jobs(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BC_HOME", str(tmp_path / "home"))
    projects = tmp_path / "projects"
    files = corpus(projects)
    assert backfill.default_jobs(files) == 1  # too small to be worth the processes
    code, out, err = run_cli(capsys, "import", "--projects-dir", str(projects), "--jobs", "2")
    assert code == 0, err
    assert f"{len(files)} files ({len(files)} read, {len(files)} sessions): 4 new traces" in out
    code, _, err = run_cli(capsys, "import", "--projects-dir", str(projects), "--jobs", "0")
    assert code == 2 and "--jobs" in err


def test_an_error_in_a_parallel_import_is_one_cli_line(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "home"
    monkeypatch.setenv("BC_HOME", str(home))
    projects = tmp_path / "projects"
    corpus(projects)
    (home / "traces").mkdir(parents=True)
    (home / "traces" / "traces.jsonl").mkdir()  # not a file: no process can append
    code, out, err = run_cli(capsys, "import", "--projects-dir", str(projects), "--jobs", "2")
    assert code == 1 and len(err.strip().splitlines()) == 1
    assert err.startswith("bc-capture: error: ") and "traces.jsonl: Is a directory" in err


def die(*args: Any) -> None:
    os._exit(9)  # an import process killed (by the OOM killer, say)


def test_a_parallel_import_whose_process_dies_is_one_error_line_and_can_be_run_again(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BC_HOME", str(tmp_path / "home"))
    projects = tmp_path / "projects"
    corpus(projects)
    real = backfill._import_chunk
    monkeypatch.setattr(backfill, "_import_chunk", die)
    code, _, err = run_cli(capsys, "import", "--projects-dir", str(projects), "--jobs", "2")
    assert code == 1 and "an import process died" in err and len(err.strip().splitlines()) == 1
    monkeypatch.setattr(backfill, "_import_chunk", real)
    code, out, err = run_cli(capsys, "import", "--projects-dir", str(projects), "--jobs", "2")
    assert code == 0 and ": 4 new traces" in out, err


def test_idle_file_without_final_newline_is_read_to_its_end_once(tmp_path: Path) -> None:
    """A finished file whose last line (a whole prompt) lacks its newline: read once when
    idle, never reported as torn, not read again."""
    path = tmp_path / "p" / PROJECT / "s1.jsonl"
    path.parent.mkdir(parents=True)
    last = turn("s1", "the last prompt", answered=False).split(b"\n")[0]  # the prompt line
    path.write_bytes(turn("s1", "one") + last)
    r = imp(path, tmp_path)  # not idle yet: the line may still be being written
    assert r.report.new == 1 and not r.problems
    r = imp(path, tmp_path, now=LATER)
    assert r.report.new == 1 and not r.problems
    assert [t.user_prompt for t in store_of(tmp_path).load_traces()] == ["one", "the last prompt"]
    r = imp(path, tmp_path, now=LATER)
    assert r.skipped and not r.problems and store_of(tmp_path).count() == 2
