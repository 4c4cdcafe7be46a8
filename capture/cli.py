"""``bc-capture``: install the capture hooks, see what was captured, read it back."""

from __future__ import annotations

import json
import os
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

import click

from capture import install as installer
from capture import paths
from capture.errlog import recent_errors
from capture.errors import BCError
from capture.schema import ClaudeTrace
from capture.spool import iter_spools
from capture.store import TraceStorage
from capture.worker import assemble_session

SCOPE = click.Choice(["project", "local", "user"])


def _store() -> TraceStorage:
    return TraceStorage(paths.traces_dir())


def _report_problems(store: TraceStorage) -> None:
    for problem in store.problems:
        click.echo(f"warning: {problem}", err=True)


@click.group()
@click.version_option(package_name="claude-bc")
def cli() -> None:
    """Capture Claude Code sessions as redacted traces (data folder: $BC_HOME)."""


@cli.command("install")
@click.option(
    "--scope",
    type=SCOPE,
    default="project",
    show_default=True,
    help="project: .claude/settings.json, local: .claude/settings.local.json, "
    "user: ~/.claude/settings.json",
)
@click.option(
    "--project-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=".",
    help="The project whose settings to change (default: the current folder).",
)
def install_cmd(scope: installer.Scope, project_dir: Path) -> None:
    """Register the capture hook for every capture event (idempotent, keeps other hooks)."""
    home = Path(os.environ["BC_HOME"]) if os.environ.get("BC_HOME") else None
    command = installer.hook_command(Path(sys.executable), installer.default_hook_script(), home)
    path = installer.settings_path(scope, project_dir.resolve(), Path.home())
    result = installer.install(path, command)
    if result.changed:
        click.echo(f"installed capture hooks for {len(result.events)} events in {path}")
        if result.backup:
            click.echo(f"backup of the previous file: {result.backup}")
    else:
        click.echo(f"already installed in {path} (nothing changed)")
    click.echo(f"traces will be written to {paths.data_dir()}")


@cli.command("uninstall")
@click.option("--scope", type=SCOPE, default="project", show_default=True)
@click.option("--project-dir", type=click.Path(file_okay=False, path_type=Path), default=".")
def uninstall_cmd(scope: installer.Scope, project_dir: Path) -> None:
    """Remove exactly our hooks from the settings file; everything else stays."""
    path = installer.settings_path(scope, project_dir.resolve(), Path.home())
    result = installer.uninstall(path)
    click.echo(
        f"removed capture hooks from {path}" if result.changed else f"no capture hooks in {path}"
    )


@cli.command("status")
@click.option("--project-dir", type=click.Path(file_okay=False, path_type=Path), default=".")
def status_cmd(project_dir: Path) -> None:
    """Where hooks are installed, the data folder, pending spools, traces and recent errors."""
    click.echo(f"data folder: {paths.data_dir()}")
    for scope, path, count in installer.installed_scopes(project_dir.resolve(), Path.home()):
        state = f"{count} hook entries" if count else "not installed"
        click.echo(f"hooks ({scope}): {state}  [{path}]")
    spools = list(iter_spools(paths.spool_dir()))
    click.echo(f"pending spools: {len(spools)} (sessions not yet ended or assembled)")
    store = _store()
    traces = store.load_traces()
    click.echo(f"traces: {len(traces)}  [{store.path}]")
    ends = [d for t in traces if (d := t.ended_at or t.started_at) is not None]
    click.echo(f"last capture: {max(ends).isoformat() if ends else 'never'}")
    errors = recent_errors(5)
    click.echo(f"recent errors: {len(errors) or 'none'}")
    for e in errors:
        click.echo(f"  {e.time} {e.component} {e.session}: {e.message}")
    _report_problems(store)


@cli.command("assemble")
@click.argument("sessions", nargs=-1)
def assemble_cmd(sessions: tuple[str, ...]) -> None:
    """Assemble pending spools now (all of them, or the given session ids)."""
    names = sessions or tuple(p.stem for p in iter_spools(paths.spool_dir()))
    total = 0
    for session in names:
        result = assemble_session(session)
        total += result.written
        for problem in result.problems:
            click.echo(f"warning: {problem}", err=True)
    click.echo(f"assembled {len(names)} sessions, {total} traces written")


@cli.command("export")
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write to this file (0600) instead of stdout.",
)
def export_cmd(output: Path | None) -> None:
    """Every trace (latest version of each) as JSONL."""
    store = _store()
    lines = (json.dumps(t.record(), ensure_ascii=False) + "\n" for t in store.load_traces())
    if output:
        output.touch(mode=0o600)
        with output.open("w", encoding="utf-8") as fh:
            fh.writelines(lines)
    else:
        sys.stdout.writelines(lines)
    _report_problems(store)


@cli.command("count")
def count_cmd() -> None:
    """How many traces are stored."""
    store = _store()
    click.echo(store.count())
    _report_problems(store)


def _short(text: str, width: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


def _when(dt: datetime | None) -> str:
    return dt.strftime("%Y-%m-%d %H:%M") if dt else "-"


@cli.command("list")
@click.option("-n", "--limit", type=int, default=20, show_default=True, help="0 for all")
def list_cmd(limit: int) -> None:
    """The most recent traces: id, time, tools, prompt."""
    store = _store()
    traces = sorted(store.load_traces(), key=lambda t: t.started_at or datetime.min.astimezone())
    for t in traces[-limit:] if limit else traces:
        click.echo(
            f"{t.trace_id[:8]}  {_when(t.started_at)}  {len(t.tool_calls):>3} tools  "
            f"{_short(t.user_prompt, 60)}"
        )
    _report_problems(store)


def _render(trace: ClaudeTrace) -> str:
    out = [
        f"trace {trace.trace_id}",
        f"session {trace.session_id}  prompt {trace.prompt_id}",
        f"time {_when(trace.started_at)}  model {trace.model}  "
        f"claude code {trace.claude_code_version}",
        f"sources {', '.join(trace.sources)}  complete {trace.complete}",
        "",
        f"USER: {trace.user_prompt}",
    ]
    for i, c in enumerate(trace.tool_calls, 1):
        out.append("")
        if c.thinking:
            out.append(f"  [thinking] {_short(c.thinking, 300)}")
        if c.reasoning:
            out.append(f"  [reasoning] {c.reasoning}")
        who = f" (subagent {c.agent_type or c.agent_id})" if c.agent_id else ""
        status = "ok" if c.success else "FAILED"
        took = f", {c.duration_ms} ms" if c.duration_ms is not None else ""
        out.append(f"  {i}. {c.tool}{who} {json.dumps(c.args, ensure_ascii=False)[:300]}")
        out.append(f"     -> {status}{took}: {_short(c.error or c.output, 300)}")
    out += ["", f"CLAUDE: {trace.claude_response}", ""]
    s = trace.reasoning_signals
    out.append(
        f"signals: {' > '.join(s.tool_sequence) or 'no tools'}; depth {s.exploration_depth.value}; "
        f"workflow {s.workflow_type.value}"
    )
    return "\n".join(out)


@cli.command("show")
@click.argument("trace_id")
@click.option("--json", "as_json", is_flag=True, help="The stored record as JSON.")
def show_cmd(trace_id: str, as_json: bool) -> None:
    """One trace, readable (or as JSON); an id prefix is enough."""
    store = _store()
    trace = store.get(trace_id)
    click.echo(
        json.dumps(trace.record(), indent=2, ensure_ascii=False) if as_json else _render(trace)
    )


def main(argv: list[str] | None = None) -> Any:
    """Entry point: a ``BCError`` becomes one clean line and exit status 1."""
    try:
        return cli.main(args=argv, prog_name="bc-capture", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except BCError as exc:
        click.echo(f"bc-capture: error: {exc}", err=True)
        sys.exit(1)
    except BrokenPipeError:
        sys.exit(0)
