"""The loop closed in Claude Code itself: a trained model, exported and served, does the
held-out tasks while the real Claude Code executes its calls and our hooks capture them.

For one model (a ``bc-train sft``/``rl`` output folder, or a plain HF model folder for
the base): ``bc-train export`` writes the GGUF, ``bc-train serve`` serves it as an
Anthropic Messages API (``--system training``: Claude Code's long system prompt is
replaced by the training one, its tool schemas are compacted and its reminders dropped,
as ``bc-train dataset`` does), and for every held-out task the repository is written at
the traces' root and the real Claude Code (``tests/claude_code.py``) works the task
against that endpoint, with ``--max-turns`` and a wall-clock limit (the process group is
killed on time-out, so a looping model cannot hang the run). The hooks that
``bc-capture install --scope user`` put into a throw-away ``HOME`` record each session
into a ``BC_HOME`` of its own (:class:`tests.teacher.run.Recorder`).

Each captured trace is then scored against the teacher's held-out workflow with the
eval's own functions (:func:`training.eval.score_episodes`: reward and components, call
keys, trajectory and call scores, parsable-call rate), and the repository Claude Code left
is compared with the teacher's final state. A session the hooks did not capture (killed at
the time limit) is rebuilt from Claude Code's ``stream-json`` output; a session that
produced nothing at all scores as an empty turn, never as a crash.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import socket
import subprocess
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from claude_bc.capture.schema import ClaudeTrace
from claude_bc.capture.store import TraceStorage
from claude_bc.training.eval import ModelResult, score_episodes, turns_of
from claude_bc.training.policy import Task
from claude_bc.training.replay import candidate_trace
from claude_bc.training.template import ParsedTurn
from tests.claude_code import claude_args, claude_env, parse_stream_json
from tests.teacher.run import Recorder, snapshot, write_repo

REPO = Path(__file__).resolve().parents[2]
BC_TRAIN = REPO / ".venv" / "bin" / "bc-train"
TOOLS = "Bash,Read,Edit,Grep,Glob"  # the teacher's tool set
STEM = "llama-claude-bc-v1"


@dataclass
class Settings:
    max_turns: int = 8  # Claude Code's --max-turns (assistant turns per task)
    task_timeout_s: float = 180.0  # wall clock per task; the process group is killed after
    max_tokens: int = 160  # bc-train serve --max-tokens (per reply; the longest teacher turn: 141)
    ctx: int = 8192  # bc-train serve --ctx
    temperature: float = 0.0  # bc-train serve --temperature (Claude Code sends none): greedy
    system: str = "training"  # bc-train serve --system
    gguf: str = "q4_k_m"  # which export to serve: q4_k_m (the one shipped) or f16
    tool_schemas: Path | None = None  # bc-train serve --tool-schemas: those trained with
    # through `bc-capture proxy --rollout 100 --local URL` (the way a user rolls the model
    # out) instead of pointing Claude Code at bc-train serve directly
    rollout: bool = False


@dataclass
class Played:
    """One held-out task as Claude Code worked it against the local model."""

    prompt: str
    session_id: str | None = None
    returncode: int | None = None
    timed_out: bool = False
    wall_s: float = 0.0
    stop: str | None = None  # the result message's subtype (success, error_max_turns, …)
    api_error: bool = False  # Claude Code ended on its own "API Error: …" (not the model's)
    model_turns: int = 0  # assistant API replies Claude Code got
    call_turns: int = 0  # of those, replies with at least one tool_use
    calls: list[str] = field(default_factory=list)  # tool names in order
    answer: str = ""
    final_state: bool = False  # the repository ended as the teacher's run left it
    source: str = "none"  # where the scored trace came from: hooks, stream or none
    error: str = ""

    def row(self) -> dict[str, Any]:
        return asdict(self)


# --- export and serve ----------------------------------------------------------------------


def export_gguf(model: Path, out: Path, log: Path, gguf: str = "q4_k_m") -> Path:
    """``bc-train export --no-ollama``; returns the GGUF to serve. Raises RuntimeError."""
    out.mkdir(parents=True, exist_ok=True)
    cmd = [str(BC_TRAIN), "export", "--model", str(model), "--out", str(out), "--no-ollama"]
    with log.open("w") as fh:
        proc = subprocess.run(cmd, stdout=fh, stderr=subprocess.STDOUT, check=False)
    if proc.returncode:
        tail = log.read_text(errors="replace").strip().splitlines()[-3:]
        raise RuntimeError(f"bc-train export of {model} failed: {' | '.join(tail)}")
    return out / (f"{STEM}-f16.gguf" if gguf == "f16" else f"{STEM}.gguf")


@contextmanager
def serving(gguf: Path, log: Path, settings: Settings, timeout: float = 180) -> Iterator[str]:
    """``bc-train serve GGUF --port 0`` while the block runs; yields its base URL."""
    cmd = [
        str(BC_TRAIN),
        "serve",
        str(gguf),
        "--port",
        "0",
        "--max-tokens",
        str(settings.max_tokens),
        "--ctx",
        str(settings.ctx),
        "--system",
        settings.system,
        "--temperature",
        str(settings.temperature),
    ]
    if settings.tool_schemas is not None:
        cmd += ["--tool-schemas", str(settings.tool_schemas)]
    with log.open("w") as err:
        proc = subprocess.Popen(
            cmd,
            stdout=subprocess.PIPE,
            stderr=err,
            stdin=subprocess.DEVNULL,
            text=True,
            start_new_session=True,
        )
    try:
        yield _base_url(proc, log, timeout)
    finally:
        _stop(proc)


def _base_url(proc: subprocess.Popen[str], log: Path, timeout: float) -> str:
    assert proc.stdout is not None
    deadline = time.monotonic() + timeout
    seen = []
    while time.monotonic() < deadline:
        ready, _, _ = select.select([proc.stdout], [], [], 0.5)
        if ready:
            line = proc.stdout.readline()
            if not line:  # the server exited
                break
            seen.append(line.strip())
            # "serving NAME at URL", then "ANTHROPIC_BASE_URL=URL" (select() cannot see
            # a second line already in the reader's buffer: the first one is enough)
            if line.startswith("serving ") and " at http" in line:
                return line.strip().rsplit(" at ", 1)[1]
        elif proc.poll() is not None:
            break
    raise RuntimeError(
        f"bc-train serve gave no address ({' | '.join(seen)}): "
        f"{log.read_text(errors='replace')[-500:]}"
    )


def _stop(proc: subprocess.Popen[Any], grace: float = 10) -> None:
    """End a process started with ``start_new_session`` and everything it started."""
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=grace)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            pass
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)  # what the leader left (a Bash call's children)
    proc.wait()


@contextmanager
def rolled_out(local: str, home: Path, timeout: float = 60) -> Iterator[str]:
    """``bc-capture proxy --rollout 100 --local LOCAL`` while the block runs; its base URL.

    The proxy's Anthropic upstream is a loopback port nobody listens on: a request the
    rollout sent there fails as an API error instead of leaving the machine.
    :func:`rollout_counts` then says how each request was served."""
    from tests.proxy.mitm import run_proxy

    with contextlib.closing(socket.socket()) as sock:
        sock.bind(("127.0.0.1", 0))
        nowhere = f"http://127.0.0.1:{sock.getsockname()[1]}"
    home.mkdir(parents=True, exist_ok=True)
    with run_proxy(nowhere, home, "--rollout", "100", "--local", local, timeout=timeout) as p:
        yield p.base_url


def rollout_counts(home: Path) -> dict[str, int]:
    """Conversation requests in the proxy's spool, by who served them (rollout's choice)."""
    counts: dict[str, int] = {}
    for path in sorted((home / "spool" / "api").glob("*.jsonl")):
        for line in path.read_text(errors="replace").splitlines():
            with contextlib.suppress(ValueError):
                rec = json.loads(line)
                if isinstance(rec, dict):
                    who = str(rec.get("served_by") or "unknown")
                    counts[who] = counts.get(who, 0) + 1
    return counts


# --- play ------------------------------------------------------------------------------------


def run_task(
    prompt: str, root: Path, recorder: Recorder, base_url: str, settings: Settings
) -> tuple[Played, list[dict[str, Any]]]:
    """Claude Code on one task (``--max-turns``, killed at ``task_timeout_s``)."""
    args = claude_args(prompt, tools=TOOLS, extra_args=["--max-turns", str(settings.max_turns)])
    env = claude_env(recorder.home, base_url, {"BC_HOME": str(recorder.bc_home)})
    t0 = time.monotonic()
    proc = subprocess.Popen(
        args,
        cwd=str(root),
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    played = Played(prompt)
    try:
        out, err = proc.communicate(timeout=settings.task_timeout_s)
    except subprocess.TimeoutExpired:
        played.timed_out = True
        # SIGTERM first: Claude Code may still end the session (and its hooks) cleanly
        _stop(proc, grace=5)
        out, err = proc.communicate()
    else:
        _stop(proc, grace=0)  # a tool call may have left children behind
    played.wall_s = time.monotonic() - t0
    played.returncode = proc.returncode
    messages = parse_stream_json(out or "")
    played.session_id = next(
        (str(m["session_id"]) for m in messages if isinstance(m.get("session_id"), str)), None
    )
    result = next((m for m in reversed(messages) if m.get("type") == "result"), None)
    played.stop = str(result.get("subtype")) if result else None
    played.api_error = result is not None and _api_error(str(result.get("result") or ""))
    if proc.returncode and not played.timed_out and result is None:
        played.error = (err or "")[-300:]
    return played, messages


def stream_turns(messages: Sequence[dict[str, Any]]) -> list[ParsedTurn]:
    """The model's replies from Claude Code's ``stream-json`` (one message per content
    block there: blocks of one API message share its id)."""
    order: list[str] = []
    blocks: dict[str, list[dict[str, Any]]] = {}
    for m in messages:
        msg = m.get("message") or {}
        if m.get("type") != "assistant" or m.get("parent_tool_use_id"):
            continue
        if msg.get("model") == "<synthetic>":  # Claude Code's own text (an API error)
            continue
        key = str(msg.get("id") or len(order))
        if key not in blocks:
            order.append(key)
            blocks[key] = []
        blocks[key].extend(b for b in msg.get("content") or [] if isinstance(b, dict))
    turns = []
    for key in order:
        text = "\n".join(str(b.get("text", "")) for b in blocks[key] if b.get("type") == "text")
        calls = [
            {"name": str(b.get("name")), "arguments": dict(b.get("input") or {})}
            for b in blocks[key]
            if b.get("type") == "tool_use"
        ]
        turns.append(ParsedTurn(text, tool_calls=calls))
    return turns


def captured(bc_home: Path) -> dict[str, ClaudeTrace]:
    """The latest captured trace of each session in ``bc_home``'s store, by session id."""
    return {t.session_id: t for t in TraceStorage(bc_home / "traces").load_traces() if t.session_id}


def play(
    tasks: Sequence[tuple[str, dict[str, str], dict[str, str]]],
    root: Path,
    work: Path,
    base_url: str,
    settings: Settings,
    log: Any = None,
) -> list[tuple[Played, ClaudeTrace | None, list[ParsedTurn]]]:
    """Claude Code on every ``(prompt, files, final_files)``; our hooks capture into
    ``work/bc_home``. Returns each task's outcome, its trace and the model's turns."""
    recorder = Recorder(root, work / "home", work / "bc_home")
    recorder.install()
    (recorder.bc_home / "gates.toml").write_text("min_answer_words = 0\nmin_steps = 0\n")
    runs = []
    for k, (prompt, files, final_files) in enumerate(tasks, 1):
        write_repo(root, files)
        played, messages = run_task(prompt, root, recorder, base_url, settings)
        played.final_state = snapshot(root) == final_files
        runs.append((played, messages))
        streams = work / "streams"  # Claude Code's stream-json of each task, for audit
        streams.mkdir(exist_ok=True)
        (streams / f"{k:02d}.jsonl").write_text("".join(json.dumps(m) + "\n" for m in messages))
        if log:
            log(
                f"  {k}/{len(tasks)} {played.stop or 'no result'} in {played.wall_s:.0f}s"
                f"{' (timed out)' if played.timed_out else ''}"
            )
    try:
        recorder.wait(timeout=30)
    except RuntimeError as exc:  # a killed session may never be assembled
        if log:
            log(f"  capture: {exc}")
    traces = captured(recorder.bc_home)
    out = []
    for played, messages in runs:
        turns = stream_turns(messages)
        played.model_turns = len(turns)
        played.call_turns = sum(bool(t.tool_calls) for t in turns)
        trace = traces.get(played.session_id or "")
        if trace is not None:
            played.source = "hooks"
        elif turns:
            played.source = "stream"
        if trace is not None:
            played.calls = [c.tool for c in trace.tool_calls if not c.agent_id]
            played.answer = trace.claude_response
        else:
            played.calls = [c["name"] for t in turns for c in t.tool_calls]
            played.answer = next((t.content for t in reversed(turns) if not t.tool_calls), "")
        out.append((played, trace, turns))
    return out


# --- score -----------------------------------------------------------------------------------


def candidate(
    trace: ClaudeTrace | None, turns: list[ParsedTurn], reference: ClaudeTrace
) -> ClaudeTrace:
    """What is scored: the captured trace (with the reference's ``cwd``, as the eval's
    candidates have), else the trace rebuilt from the model's replies."""
    if trace is not None:
        return trace.model_copy(update={"cwd": reference.cwd, "user_prompt": reference.user_prompt})
    return candidate_trace(reference, turns)


def score(
    name: str,
    spec: str,
    tasks: Sequence[Task],
    outcomes: dict[str, tuple[Played, ClaudeTrace | None, list[ParsedTurn]]],
) -> tuple[ModelResult, dict[str, float]]:
    """The eval's metrics of the sessions (``outcomes`` by prompt), and how they ran."""
    traces: list[ClaudeTrace | None] = []
    turns: list[list[ParsedTurn]] = []
    final: list[bool] = []
    for task in tasks:
        played, trace, model_turns = outcomes[task.reference.user_prompt]
        traces.append(candidate(trace, model_turns, task.reference))
        turns.append(model_turns or turns_of(trace))
        final.append(played.final_state)
    result = score_episodes(name, spec, list(tasks), traces, turns, final)
    played_all = [outcomes[t.reference.user_prompt][0] for t in tasks]
    n = len(played_all) or 1
    replies = sum(p.model_turns for p in played_all)
    runs = {
        "call_turn_rate": sum(p.call_turns for p in played_all) / replies if replies else 0.0,
        "captured": sum(p.source == "hooks" for p in played_all) / n,
        # ended with an answer of the model's (not Claude Code's "API Error: …" text, e.g.
        # after its output-token recovery gave up on a model that never stops)
        "finished": sum(p.stop == "success" and not p.api_error for p in played_all) / n,
        "api_error": sum(p.api_error for p in played_all) / n,
        "max_turns_hit": sum(p.stop == "error_max_turns" for p in played_all) / n,
        "timed_out": sum(p.timed_out for p in played_all) / n,
        "model_turns": replies / n,
        "wall_s": sum(p.wall_s for p in played_all) / n,
    }
    return result, runs


# --- the stage -------------------------------------------------------------------------------


def stage(
    models: Sequence[tuple[str, Path]],
    dataset: Path,
    repos_file: Path,
    out: Path,
    settings: Settings | None = None,
    log: Any = None,
    limit: int | None = None,
) -> dict[str, dict[str, Any]]:
    """Export, serve and play every model on the held-out tasks (``dataset``'s eval split,
    repositories from ``repos_file``); per model its metrics, how the sessions ran and the
    stage's timings (or the error that stopped it). Writes ``out/NAME/sessions.jsonl``.
    ``limit``: only that many tasks, spread evenly over the split (a quicker look that
    still covers every family)."""
    from claude_bc.training.policy import tasks_from_split

    settings = settings or Settings()
    tasks = tasks_from_split(dataset, "eval")
    if limit is not None and 0 < limit < len(tasks):
        tasks = [tasks[k * len(tasks) // limit] for k in range(limit)]
    repos = json.loads(repos_file.read_text())
    root = Path(next(iter(repos.values()))["root"])
    work = [(t.reference.user_prompt, repos[t.reference.user_prompt]) for t in tasks]
    plays = [(p, r["files"], r["final_files"]) for p, r in work]
    results: dict[str, dict[str, Any]] = {}
    for name, model in models:
        folder = out / name
        folder.mkdir(parents=True, exist_ok=True)
        timings: dict[str, float] = {}
        t0 = time.monotonic()
        try:
            gguf = _exported(folder / "gguf", settings.gguf, model)
            if gguf is None:
                if log:
                    log(f"in Claude Code, {name}: bc-train export {model}")
                gguf = export_gguf(model, folder / "gguf", folder / "export.log", settings.gguf)
            timings["export_s"] = time.monotonic() - t0
            t1 = time.monotonic()
            if log:
                log(f"in Claude Code, {name}: bc-train serve, Claude Code on {len(plays)} tasks")
            with contextlib.ExitStack() as stack:
                url = stack.enter_context(serving(gguf, folder / "serve.log", settings))
                if settings.rollout:
                    url = stack.enter_context(rolled_out(url, folder / "proxy-home"))
                outcomes = play(plays, root, folder, url, settings, log)
            timings["play_s"] = time.monotonic() - t1
        except (RuntimeError, OSError, subprocess.SubprocessError) as exc:
            results[name] = {"model": str(model), "error": str(exc)}
            if log:
                log(f"in Claude Code, {name}: {exc}")
            continue
        by_prompt = {o[0].prompt: o for o in outcomes}
        result, runs = score(name, str(model), tasks, by_prompt)
        with (folder / "sessions.jsonl").open("w") as fh:
            for task, episode in zip(tasks, result.episodes, strict=True):
                played = by_prompt[task.reference.user_prompt][0]
                fh.write(json.dumps({**played.row(), "scores": episode}, default=str) + "\n")
        timings["total_s"] = time.monotonic() - t0
        results[name] = {
            "model": str(model),
            "gguf": str(gguf),
            "metrics": result.metrics,
            "runs": runs,
            "timings_s": {k: round(v, 1) for k, v in timings.items()},
        }
        if settings.rollout:
            results[name]["rollout"] = rollout_counts(folder / "proxy-home")
    return results


def _api_error(answer: str) -> bool:
    return answer.lstrip().startswith("API Error")


def _exported(folder: Path, gguf: str, model: Path) -> Path | None:
    """The GGUF an earlier stage exported into ``folder`` (checked: fidelity.json), if any
    and newer than every file of the model it came from (a retrained model is exported
    again)."""
    path = folder / (f"{STEM}-f16.gguf" if gguf == "f16" else f"{STEM}.gguf")
    if not (path.is_file() and (folder / "fidelity.json").is_file()):
        return None
    files = [f for f in model.rglob("*") if f.is_file()] if model.is_dir() else []
    newest = max((f.stat().st_mtime for f in files), default=0.0)
    return path if path.stat().st_mtime > newest else None
