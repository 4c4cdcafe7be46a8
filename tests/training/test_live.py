"""The held-out environment and the turn-by-turn metrics, checked with an oracle: the
teacher's own calls, run for real in a copy of each held-out repository, end in the
teacher's final state and score 1 on every metric; a model that never calls a tool
scores 0 where it should."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from claude_bc.capture.schema import ClaudeTrace, ToolCall
from claude_bc.training.eval import score_episodes
from claude_bc.training.live import LiveEnv, Repo, final_state_matches
from claude_bc.training.policy import Task
from claude_bc.training.replay import candidate_trace
from claude_bc.training.template import ParsedTurn
from tests.teacher.families import FAMILIES, Instance, corpus, leaks

ROOT = "/tmp/bc-imitation-test/repo"


def _calls(inst: Instance) -> list[list[dict[str, Any]]]:
    """The teacher's calls, turn by turn, with the root filled in."""
    text = json.dumps(inst.turns).replace("{{CWD}}", ROOT)
    turns = json.loads(text)
    out = []
    for t in turns:
        calls = [
            {"name": b["name"], "arguments": b["input"]}
            for b in t["content"]
            if b["type"] == "tool_use"
        ]
        if calls:
            out.append(calls)
    return out


def _reference(inst: Instance) -> ClaudeTrace:
    calls = [
        ToolCall(tool=c["name"], args=c["arguments"], output="", batch=b)
        for b, turn in enumerate(_calls(inst))
        for c in turn
    ]
    answer = inst.turns[-1]["content"][0]["text"]
    return ClaudeTrace(
        trace_id=inst.key, user_prompt=inst.prompt, tool_calls=calls, claude_response=answer
    )


def test_the_split_never_leaks() -> None:
    train, held = corpus(55, 2)
    assert len(train) == 330 and len(held) == 18
    assert leaks(train, held) == []
    assert {i.family for i in held if i.reworded} == set(FAMILIES)


@pytest.mark.parametrize("family", FAMILIES)
def test_the_teacher_as_a_policy_scores_one_and_ends_in_the_final_state(
    family: str, tmp_path: Path
) -> None:
    _, held = corpus(1, 1)
    inst = next(i for i in held if i.family == family and not i.reworded)
    reference = _reference(inst)
    env = LiveEnv(reference, Repo(ROOT, inst.files, inst.final_files), tmp_path)
    turns, results = [], []
    for calls in _calls(inst):
        turns.append(ParsedTurn("", tool_calls=calls))
        results += [env.step(c["name"], c["arguments"]) for c in calls]
    # the reference here has no recorded outputs: make every call run for real instead
    fresh = LiveEnv(
        ClaudeTrace(trace_id="none", user_prompt=""),
        Repo(ROOT, inst.files, inst.final_files),
        tmp_path,
    )
    real = [fresh.step(c["name"], c["arguments"]) for calls in _calls(inst) for c in calls]
    assert final_state_matches(fresh), family
    if family == "fix_test":
        assert not real[0].success and "FAILED" in real[0].output and real[-1].success
    if family == "diagnose":
        assert any("Traceback" in r.output for r in real)
    turns.append(ParsedTurn(reference.claude_response))
    trace = candidate_trace(reference, turns, results)
    task = Task(inst.key, [], [], reference)
    good = score_episodes("teacher", "oracle", [task], [trace], [turns], [True]).metrics
    for metric in (
        "parsable_call_rate",
        "first_call",
        "exact_sequence",
        "argument_match",
        "final_state",
    ):
        assert good[metric] == 1.0, (metric, good)
    assert good["tool_alignment"] == 1.0 and good["reward"] == 1.0
    silent = [ParsedTurn("I would look at the code.")]
    bad = score_episodes(
        "base", "x", [task], [candidate_trace(reference, silent)], [silent], [False]
    ).metrics
    for metric in ("parsable_call_rate", "first_call", "argument_match", "final_state"):
        assert bad[metric] == 0.0, (metric, bad)
