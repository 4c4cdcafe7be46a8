"""claude_bc.capture.ingest: one dedup/merge step for every source, bounded by a sidecar index."""

from __future__ import annotations

import multiprocessing
import multiprocessing.synchronize
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from claude_bc.capture import ingest as ingest_mod
from claude_bc.capture.ingest import ingest
from claude_bc.capture.schema import ClaudeTrace, ToolCall, trace_id_for
from claude_bc.capture.spool import read_spool, turns_from_hooks
from claude_bc.capture.store import TraceStorage, encode
from claude_bc.capture.transcript import turns_from_transcript
from claude_bc.capture.turns import assemble
from tests.conftest import FIXTURES, stage_run

T0 = datetime(2026, 11, 30, 10, 0, tzinfo=UTC)


def trace(
    prompt: str,
    session: str | None = "s1",
    prompt_id: str | None = None,
    started: datetime = T0,
    **fields: object,
) -> ClaudeTrace:
    return ClaudeTrace(
        trace_id=trace_id_for(session, prompt_id, prompt, started.isoformat()),
        user_prompt=prompt,
        session_id=session,
        prompt_id=prompt_id,
        started_at=started,
        **fields,
    )


def versions(store: TraceStorage) -> int:
    return len(list(store.records()))


def test_new_then_unchanged(tmp_path: Path) -> None:
    store = TraceStorage(tmp_path / "traces")
    t = trace("hello", prompt_id="p1", claude_response="hi")
    first = ingest([t], store)
    assert (first.new, first.merged, first.unchanged) == (1, 0, 0)
    assert [w.trace_id for w in first.written] == [t.trace_id]
    again = ingest([t, t], store)
    assert (again.new, again.merged, again.unchanged) == (0, 0, 2) and not again.written
    assert versions(store) == 1


def test_hooks_and_transcript_merge_in_either_order(bc_home: Path) -> None:
    session, transcript = stage_run("basic", bc_home)
    (hooks,) = assemble(turns_from_hooks(read_spool(bc_home / "spool" / f"{session}.jsonl").events))
    (text,) = assemble(turns_from_transcript(transcript)[0])
    results = []
    for order in ([hooks, text], [text, hooks]):
        store = TraceStorage(bc_home / f"traces-{order[0].sources[0]}")
        assert ingest([order[0]], store).new == 1
        report = ingest([order[1]], store)
        assert report.merged == 1 and versions(store) == 2
        (merged,) = store.load_traces()
        assert merged.sources == ["transcript", "hooks"]
        read = merged.tool_calls[0]
        assert read.thinking  # only the transcript has it
        assert read.duration_ms == 12  # only the hooks have it
        assert ingest([order[0], order[1]], store).unchanged == 2
        results.append(merged.record())
    assert results[0] == results[1]


def test_rating_survives_a_merge(tmp_path: Path) -> None:
    store = TraceStorage(tmp_path / "traces")
    t = trace("fix it", prompt_id="p1", sources=["hooks"], claude_response="ok")
    store.append([t.model_copy(update={"rating": "up", "rating_note": "great"})])
    richer = t.model_copy(update={"sources": ["transcript"], "claude_response": "ok, fixed."})
    assert ingest([richer], store).merged == 1
    (stored,) = store.load_traces()
    assert stored.rating == "up" and stored.rating_note == "great"
    assert stored.claude_response == "ok, fixed." and stored.sources == ["transcript", "hooks"]


def test_without_prompt_id_same_session_and_prompt_merges(tmp_path: Path) -> None:
    store = TraceStorage(tmp_path / "traces")
    ingest([trace("continue", sources=["hooks"], claude_response="a")], store)
    later = T0 + timedelta(seconds=2)
    proxy = trace(
        "continue",
        started=later,
        sources=["proxy"],
        tool_calls=[ToolCall(tool="Read", tool_use_id="t1", output="x")],
    )
    assert ingest([proxy], store).merged == 1
    # the same prompt an hour later in that session is another turn
    assert ingest([trace("continue", started=T0 + timedelta(hours=1))], store).new == 1
    # and the same prompt in another session too
    assert ingest([trace("continue", session="s2", started=later)], store).new == 1
    traces = store.load_traces()
    assert len(traces) == 3
    assert traces[0].sources == ["proxy", "hooks"] and traces[0].tool_calls[0].tool == "Read"


def test_resumed_copy_in_another_session_is_the_same_turn(tmp_path: Path) -> None:
    """Older Claude Code copies the conversation into a new session file on --resume."""
    store = TraceStorage(tmp_path / "traces")
    original = trace("list files", session="old", prompt_id="p1", sources=["transcript"])
    ingest([original], store)
    copy = trace("list files", session="new", prompt_id="p1", sources=["transcript"])
    assert copy.trace_id != original.trace_id
    report = ingest([copy], store)
    assert report.new == 0 and store.count() == 1
    assert store.load_traces()[0].trace_id == original.trace_id


def test_index_follows_other_writers_and_rebuilds(tmp_path: Path) -> None:
    store = TraceStorage(tmp_path / "traces")
    a, b = trace("a", prompt_id="pa"), trace("b", prompt_id="pb")
    ingest([a], store)
    store.append([b])  # a writer that does not use ingest
    assert ingest([b], store).unchanged == 1
    # the store replaced by another file: the index must not answer from the old one
    store.path.write_text(store.path.read_text().split("\n", 1)[1])  # only b is left
    assert ingest([a], store).new == 1
    # a corrupt index is rebuilt from traces.jsonl
    (store.root / ingest_mod.INDEX_FILE).write_bytes(b"not a database" * 100)  # type: ignore[operator]
    assert ingest([a, b], store).unchanged == 2
    assert store.count() == 2


def test_a_run_reads_only_what_was_appended(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The hook worker ingests after every turn: its cost must not grow with the store."""
    store = TraceStorage(tmp_path / "traces")
    ingest([trace(f"p{i}", prompt_id=f"id{i}", output="x" * 1000) for i in range(200)], store)
    size = store.path.stat().st_size
    scanned: list[int] = []
    real_scan = ingest_mod._Index._scan

    def spy(self: ingest_mod._Index, fh: object, offset: int) -> int:
        scanned.append(offset)
        return real_scan(self, fh, offset)

    monkeypatch.setattr(ingest_mod._Index, "_scan", spy)
    ingest([trace("one more", prompt_id="new")], store)
    # neither the 200 lines before nor the one it wrote were read back
    assert scanned == []
    store.append([trace("by another writer", prompt_id="other")])
    assert ingest([trace("one more", prompt_id="new")], store).unchanged == 1
    assert scanned == [size + len(encode(trace("one more", prompt_id="new"))) + 1]
    assert ingest([trace("by another writer", prompt_id="other")], store).unchanged == 1


def test_a_line_appended_by_another_writer_during_an_ingest_is_indexed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = TraceStorage(tmp_path / "traces")
    ingest([trace("first", prompt_id="p1")], store)
    real = TraceStorage.append_lines
    foreign = trace("foreign", prompt_id="p2")

    def racing(self: TraceStorage, lines: list[bytes]) -> tuple[int, list[int]]:
        real(self, [encode(foreign)])  # lands between the catch-up and this append
        return real(self, lines)

    monkeypatch.setattr(TraceStorage, "append_lines", racing)
    assert ingest([trace("mine", prompt_id="p3")], store).new == 1
    monkeypatch.setattr(TraceStorage, "append_lines", real)
    report = ingest([foreign, trace("mine", prompt_id="p3"), trace("first", prompt_id="p1")], store)
    assert report.unchanged == 3 and report.new == 0


def _ingest_many(root: str, barrier: multiprocessing.synchronize.Barrier) -> None:
    store = TraceStorage(Path(root))
    batch = [trace(f"p{i}", prompt_id=f"id{i}", sources=["hooks"]) for i in range(20)]
    for _ in range(3):
        barrier.wait(30)  # all at once, so that an unlocked ingest would write twice
        ingest(batch, store)


def test_concurrent_ingests_never_duplicate(tmp_path: Path) -> None:
    ctx = multiprocessing.get_context("fork")
    barrier = ctx.Barrier(4)
    procs = [ctx.Process(target=_ingest_many, args=(str(tmp_path), barrier)) for _ in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    store = TraceStorage(tmp_path)
    assert store.count() == 20 and versions(store) == 20


def test_fixture_traces_roundtrip_unchanged(tmp_path: Path) -> None:
    """A stored trace merged with itself is itself (calls keep their order and batches)."""
    turns, _ = turns_from_transcript(
        FIXTURES / "subagent" / "transcript.jsonl",
        {
            "a3501419dc3b71293": FIXTURES
            / "subagent"
            / "subagents"
            / "agent-a3501419dc3b71293.jsonl"
        },
    )
    traces = assemble(turns)
    store = TraceStorage(tmp_path)
    ingest(traces, store)
    stored = store.load_traces()[0]
    same = ingest_mod.merge_traces(stored, stored)
    assert same.record() == stored.record()


def test_a_proxy_trace_without_prompt_id_meets_the_hook_trace_of_its_turn(
    tmp_path: Path,
) -> None:
    """The proxy could not learn Claude Code's prompt id (no hook spool, no transcript):
    its trace and the hooks' trace of the same turn are still one trace, in either order,
    and a later re-assembly of the hooks' trace finds it by the prompt id."""
    for order in ("proxy first", "hooks first"):
        store = TraceStorage(tmp_path / order.replace(" ", "-"))
        proxy = trace("fix the bug", claude_response="done", sources=["proxy"], model="m1")
        hooks = trace(
            "fix the bug", prompt_id="p1", started=T0 + timedelta(seconds=0.4), sources=["hooks"]
        )
        first, second = (proxy, hooks) if order == "proxy first" else (hooks, proxy)
        assert ingest([first], store).new == 1
        assert ingest([second], store).merged == 1
        (both,) = store.load_traces()
        assert both.prompt_id == "p1" and both.model == "m1"
        assert set(both.sources) == {"proxy", "hooks"}
        assert ingest([hooks], store).unchanged == 1
        assert ingest([proxy, hooks], store).unchanged == 2
        assert store.count() == 1


def test_a_prompt_said_twice_in_a_session_stays_two_traces(tmp_path: Path) -> None:
    store = TraceStorage(tmp_path / "traces")
    a = trace("continue", prompt_id="p1")
    b = trace("continue", prompt_id="p2", started=T0 + timedelta(seconds=20))
    assert ingest([a, b], store).new == 2
    c = trace("continue", prompt_id="p3", started=T0 + timedelta(seconds=40))
    assert ingest([c], store).new == 1
    # a proxy trace of the second one (no prompt id) goes to the nearest of them
    proxy = trace("continue", started=T0 + timedelta(seconds=20.3), sources=["proxy"])
    assert ingest([proxy], store).merged == 1
    by_id = {t.prompt_id: t for t in store.load_traces()}
    assert len(by_id) == 3 and [p for p, t in by_id.items() if "proxy" in t.sources] == ["p2"]


def test_an_index_of_the_old_layout_is_rebuilt(tmp_path: Path) -> None:
    store = TraceStorage(tmp_path / "traces")
    t = trace("hello", prompt_id="p1")
    store.append([t])
    db = sqlite3.connect(tmp_path / "traces" / ingest_mod.INDEX_FILE)
    db.execute("CREATE TABLE traces(trace_id TEXT PRIMARY KEY, offset INTEGER)")
    db.execute("CREATE TABLE meta(key TEXT PRIMARY KEY, value)")
    db.commit()
    db.close()
    assert ingest([t], store).unchanged == 1
    assert ingest([trace("hello", prompt_id="p1", started=T0 + timedelta(1))], store).merged == 1


@pytest.mark.parametrize("batches", [[3], [1, 2], [1, 1, 1]])
def test_a_proxy_trace_merges_with_one_turn_of_a_repeated_prompt_only(
    tmp_path: Path, batches: list[int]
) -> None:
    """A proxy trace without prompt id meets the first "continue"; the second "continue"
    (another prompt id) stays its own trace, whether they come in one ingest or several."""
    store = TraceStorage(tmp_path / "traces")
    proxy = trace("continue", sources=["proxy"], model="m1")
    first = trace("continue", prompt_id="p1", started=T0 + timedelta(seconds=0.3))
    second = trace("continue", prompt_id="p2", started=T0 + timedelta(seconds=20))
    todo = [proxy, first, second]
    for n in batches:
        ingest(todo[:n], store)
        todo = todo[n:]
    by_id = {t.prompt_id: t for t in store.load_traces()}
    assert set(by_id) == {"p1", "p2"}
    assert by_id["p1"].model == "m1" and "proxy" in by_id["p1"].sources
    assert "proxy" not in by_id["p2"].sources
