"""``bc-train dataset``: real captured sessions → chats with tools, gates, dedup, split, fit."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from claude_bc.capture.worker import assemble_session
from claude_bc.cli import main
from claude_bc.training.config import DatasetConfig
from claude_bc.training.dataset import cut_middle, default_tool_schemas, load_split, split_sessions
from tests.conftest import stage_run
from tests.training.conftest import ANSWER, call, make_trace, workflow, write_store

SECRET = "sk-ant-api03-" + "Zx9" * 30 + "AA"


def run_cli(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exit_info:
        main([*args])
        raise SystemExit(0)
    out = capsys.readouterr()
    return int(exit_info.value.code or 0), out.out, out.err


def rows(folder: Path, split: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (folder / f"{split}.jsonl").read_text().splitlines()]


def test_a_real_captured_session_becomes_a_chat_with_tools(
    bc_home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    session, _ = stage_run("basic", bc_home)
    assemble_session(session, bc_home)
    gates = tmp_path / "gates.toml"
    gates.write_text("min_answer_words = 5\n")  # the scripted answer is short
    code, out, err = run_cli(["dataset", "--gates", str(gates), "--json"], capsys)
    assert code == 0, err
    stats = json.loads(out)
    assert stats["samples"]["train"] == 1 and stats["tools_per_sample"]["max"] == 5
    [row] = rows(bc_home / "dataset", "train")
    roles = [m["role"] for m in row["messages"]]
    assert roles == [
        "system",
        "user",
        "assistant",
        "tool",
        "assistant",
        "tool",
        "tool",
        "assistant",
        "tool",
        "assistant",
        "tool",
        "assistant",
    ]
    parallel = row["messages"][4]  # Grep and Bash were one API message: one turn, two calls
    assert parallel["content"].startswith("Searching for function definitions")
    assert [c["function"]["name"] for c in parallel["tool_calls"]] == ["Grep", "Bash"]
    assert row["messages"][2]["thinking"].startswith("The user wants the greeting changed")
    assert row["messages"][8]["content"].startswith("Exit code 1")  # the failure Claude saw
    assert row["messages"][-1]["content"].startswith("Done. `src/app.py` now greets Claude")
    # Claude Code's own tool schemas (the shipped harness set), not the deferred placeholder
    names = [t["function"]["name"] for t in row["tools"]]
    assert names == ["Agent", "Bash", "Edit", "Glob", "Grep", "Read", "Write"]
    [seed] = [json.loads(x) for x in (bc_home / "dataset" / "bc_dataset.jsonl").open()]
    assert seed["prompt"].startswith("Look at src/app.py")
    assert [s["tool"] for s in seed["tool_sequence"]] == ["Read", "Grep", "Bash", "Bash", "Edit"]
    assert seed["tool_sequence"][0]["reasoning"] == "I'll start by reading the entry point."
    assert seed["workflow_type"] == "parallel" and seed["exploration_depth"] == "moderate"
    assert seed["reasoning_chain"] and seed["response"] == row["messages"][-1]["content"]


def test_gates_dedup_and_the_report(
    bc_home: Path, small_tools: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    short = workflow("s3", "Rename it", answer="Done.")
    unfinished = workflow("s4", "Half done")
    unfinished.complete = False
    no_tools = make_trace("s5", "What is 2+2?", [], ANSWER)
    twin = workflow("s6", "Fix the greeting")  # same prompt, calls and answer as s1's
    write_store(
        bc_home,
        [
            workflow("s1", "Fix the greeting"),
            workflow("s2", "Add a test"),
            short,
            unfinished,
            no_tools,
            twin,
        ],
    )
    code, out, err = run_cli(["dataset", "--config", str(_cfg(bc_home, small_tools))], capsys)
    assert code == 0, err
    stats = json.loads((bc_home / "dataset" / "stats.json").read_text())
    assert sum(stats["samples"].values()) == 2
    assert stats["excluded"] == {"short_answer": 1, "incomplete": 1, "trivial": 1, "duplicate": 1}
    assert stats["tools_per_sample"] == {
        "mean": 4.0,
        "max": 4,
        "by_tool": {"Read": 2, "Grep": 2, "Bash": 2, "Edit": 2},
    }
    assert stats["workflow_type"] == {"parallel": 2}
    assert "excluded        {'short_answer': 1" in out


def _cfg(home: Path, tools: Path, **extra: Any) -> Path:
    path = home.parent / "dataset.toml"
    lines = [f'tool_schemas = "{tools}"', *(f"{k} = {json.dumps(v)}" for k, v in extra.items())]
    path.write_text("[dataset]\n" + "\n".join(lines) + "\n")
    return path


def test_split_by_session_is_disjoint_stable_and_seeded() -> None:
    cfg = DatasetConfig(eval_fraction=0.2, test_fraction=0.2, seed=7)
    sessions = [f"session-{i}" for i in range(200)]
    first = split_sessions(sessions, cfg)
    grown = split_sessions([*sessions, *(f"new-{i}" for i in range(50))], cfg)
    assert all(grown[s] == first[s] for s in sessions)  # adding sessions moves no old one
    counts = {k: list(first.values()).count(k) for k in ("train", "eval", "test")}
    assert 20 <= counts["eval"] <= 60 and 20 <= counts["test"] <= 60
    assert split_sessions(sessions, cfg.model_copy(update={"seed": 8})) != first
    assert list(split_sessions(["only"], cfg).values()) == ["train"]


def test_no_session_spans_two_splits(
    bc_home: Path, small_tools: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    traces = [workflow(f"s{i // 3}", f"task {i}") for i in range(30)]  # 3 turns per session
    write_store(bc_home, traces)
    cfg = _cfg(bc_home, small_tools, eval_fraction=0.3, test_fraction=0.2)
    code, _, err = run_cli(["dataset", "--config", str(cfg)], capsys)
    assert code == 0, err
    out = bc_home / "dataset"
    seen = {s: {r["session_id"] for r in rows(out, s)} for s in ("train", "eval", "test")}
    assert seen["train"] and seen["eval"]
    assert not (
        seen["train"] & seen["eval"] or seen["train"] & seen["test"] or seen["eval"] & seen["test"]
    )
    assert sum(len(rows(out, s)) for s in seen) == 30


def test_long_tool_outputs_are_cut_to_fit_keeping_head_and_tail(
    bc_home: Path, small_tools: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    long = "HEAD-LINE\n" + "".join(f"{i:05d} filler line of output\n" for i in range(3000)) + "TAIL"
    write_store(bc_home, [workflow("s1", "Read the log", read_output=long)])
    cfg = _cfg(bc_home, small_tools, max_length=1024)
    code, _, err = run_cli(["dataset", "--config", str(cfg)], capsys)
    assert code == 0, err
    [row] = rows(bc_home / "dataset", "train")
    cut = row["messages"][3]["content"]
    assert cut.startswith("HEAD-LINE") and cut.endswith("TAIL") and "characters cut ...]" in cut
    stats = json.loads((bc_home / "dataset" / "stats.json").read_text())
    assert stats["tool_outputs_cut"] == 1 and stats["tokens"]["max"] <= 1024
    assert cut_middle("abcdef", 10) == "abcdef"


def test_exact_token_fit_with_a_real_tokenizer(
    bc_home: Path, small_tools: Path, tiny_model: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from claude_bc.training.model import load_tokenizer

    long = "x = compute(a, b)\n" * 2000
    write_store(bc_home, [workflow("s1", "Read the big file", read_output=long)])
    cfg = _cfg(bc_home, small_tools, max_length=1400)
    code, _, err = run_cli(
        ["dataset", "--config", str(cfg), "--tokenizer", str(tiny_model)], capsys
    )
    assert code == 0, err
    [row] = rows(bc_home / "dataset", "train")
    tok = load_tokenizer(str(tiny_model))
    ids = tok.apply_chat_template(
        row["messages"], tools=row["tools"], tokenize=True, return_dict=True
    )["input_ids"]
    assert 1200 < len(ids) <= 1400


def test_rows_load_exactly_without_null_filled_arguments(
    bc_home: Path, small_tools: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_store(bc_home, [workflow("s1", "Fix the greeting")])
    assert run_cli(["dataset", "--config", str(_cfg(bc_home, small_tools))], capsys)[0] == 0
    ds = load_split(bc_home / "dataset", "train")
    calls = [c["function"] for m in ds[0]["messages"] for c in m.get("tool_calls") or []]
    assert calls[0] == {"name": "Read", "arguments": {"file_path": "src/app.py"}}
    assert calls[2] == {"name": "Bash", "arguments": {"command": "pytest -q"}}


def test_secrets_never_reach_the_dataset(
    bc_home: Path, small_tools: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    leaky = workflow("s1", "Check the env", read_output=f"ANTHROPIC_API_KEY={SECRET}\n")
    leaky.tool_calls.append(
        call("Bash", {"command": f"curl -H 'x-api-key: {SECRET}' api"}, "ok", batch=3)
    )
    write_store(bc_home, [leaky])
    assert run_cli(["dataset", "--config", str(_cfg(bc_home, small_tools))], capsys)[0] == 0
    for f in (bc_home / "dataset").iterdir():
        assert SECRET not in f.read_text(), f.name
    assert "[REDACTED" in (bc_home / "dataset" / "train.jsonl").read_text()


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        ("none", "no traces"),
        ("gated", "no training samples: all 1 traces were excluded (1 short_answer)"),
        ("corrupt", "unreadable row(s), first:"),
        ("bad-config", "config"),
    ],
)
def test_bad_input_is_one_clear_error_and_no_output(
    setup: str,
    message: str,
    bc_home: Path,
    small_tools: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    args = ["dataset"]
    if setup == "gated":
        write_store(bc_home, [workflow("s1", "x", answer="Too short.")])
    if setup == "corrupt":
        path = write_store(bc_home, [workflow("s1", "Fix the greeting")])
        with path.open("a") as fh:
            fh.write('{"trace_id": "t2", "user_prompt": 5}\n')
    if setup == "bad-config":
        write_store(bc_home, [workflow("s1", "Fix the greeting")])
        args += ["--config", str(_cfg(bc_home, small_tools, max_lenght=10))]
    code, out, err = run_cli(args, capsys)
    assert code == 1
    assert err.startswith("bc-train: error: ") and message in err and err.count("\n") == 1
    assert not (bc_home / "dataset").exists()
    assert not [p for p in bc_home.glob(".dataset*")]  # no temp folder left behind


def test_shipped_schemas_are_claude_codes() -> None:
    names = {t["name"] for t in default_tool_schemas()}
    assert {"Bash", "Read", "Edit", "Write", "Grep", "Glob", "Agent"} == names


def test_the_sessions_own_tool_schemas_win(
    bc_home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_store(bc_home, [workflow("s1", "Fix the greeting"), workflow("s2", "Add a test")])
    sessions = bc_home / "sessions"
    sessions.mkdir()
    own = [
        {"name": "Read", "description": "Read.", "input_schema": {"type": "object"}},
        {"name": "Later", "description": "Deferred.", "defer_loading": True},
    ]
    (sessions / "s1.json").write_text(json.dumps({"tools": own}))
    assert run_cli(["dataset", "--json"], capsys)[0] == 0
    tools = {
        r["session_id"]: [t["function"]["name"] for t in r["tools"]]
        for r in rows(bc_home / "dataset", "train")
    }
    assert tools["s1"] == ["Read"]  # recorded by the proxy; the deferred one is not shown
    assert "Agent" in tools["s2"]  # no record: the shipped harness set


@pytest.mark.parametrize(
    ("run", "user", "thinking"),
    [
        ("slash-command", "/review src/app.py\n\nReview src/app.py for bugs", None),
        ("thinking-final", "What does src/app.py print?", 'main() prints greet("world")'),
    ],
)
def test_the_chat_holds_what_the_model_received_and_its_last_thinking(
    run: str,
    user: str,
    thinking: str | None,
    bc_home: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A slash command trains on its expansion (what the model acted on), and the thinking
    before the answer stays with the answer."""
    session, _ = stage_run(run, bc_home)
    assemble_session(session, bc_home)
    gates = tmp_path / "gates.toml"
    gates.write_text("min_answer_words = 1\n")
    code, _, err = run_cli(["dataset", "--gates", str(gates)], capsys)
    assert code == 0, err
    [row] = rows(bc_home / "dataset", "train")
    assert row["messages"][1]["content"].startswith(user)
    last = row["messages"][-1]
    assert (last.get("thinking") or "").startswith(thinking or "") and bool(
        last.get("thinking")
    ) == bool(thinking)
