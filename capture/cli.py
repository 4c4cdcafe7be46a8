"""``bc-capture``: install the capture hooks, see what was captured, read it back."""

from __future__ import annotations

import json
import os
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

import click

from claude_bc.capture import install as installer
from claude_bc.capture import paths, prefilter, rating, report
from claude_bc.capture.errlog import log_error, recent_errors
from claude_bc.capture.errors import BCError, run_cli
from claude_bc.capture.gates import load_gate_config
from claude_bc.capture.schema import ClaudeTrace
from claude_bc.capture.spool import iter_spools
from claude_bc.capture.store import TraceStorage
from claude_bc.capture.termsafe import json_visible, visible
from claude_bc.capture.worker import assemble_session, recover_dead, recovered

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
    cmd_path = rating.command_path(scope, project_dir.resolve(), Path.home())
    if rating.install_command(cmd_path, rating.command_text(Path(sys.executable), home)):
        click.echo(f"installed the /bc-rate slash command: {cmd_path}")
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
    cmd_path = rating.command_path(scope, project_dir.resolve(), Path.home())
    if rating.uninstall_command(cmd_path):
        click.echo(f"removed the /bc-rate slash command: {cmd_path}")


@cli.command("status")
@click.option("--project-dir", type=click.Path(file_okay=False, path_type=Path), default=".")
def status_cmd(project_dir: Path) -> None:
    """Where hooks are installed, the data folder, pending spools, traces and recent errors."""
    click.echo(f"data folder: {paths.data_dir()}")
    for scope, path, count in installer.installed_scopes(project_dir.resolve(), Path.home()):
        state = f"{count} hook entries" if count else "not installed"
        click.echo(f"hooks ({scope}): {state}  [{path}]")
        for gone in installer.missing_hook_paths(path) if count else []:
            click.echo(f"  broken: the hooks run {gone}, which is gone: run `bc-capture install`")
    spools = list(iter_spools(paths.spool_dir()))
    click.echo(f"pending spools: {len(spools)} (sessions not yet ended or assembled)")
    dead = recovered()
    if dead:
        last = dead[-1]
        click.echo(
            f"recovered sessions: {len(dead)} (Claude Code died before SessionEnd; "
            f"last {last.get('session')}: {last.get('traces')} traces, "
            f"{last.get('unknown_calls')} calls with no result)"
        )
    api_spools = list(paths.spool_dir().glob("api/*.jsonl"))
    if api_spools:
        click.echo(f"proxy spools: {len(api_spools)} (kept until an hour idle)")
    store = _store()
    traces = store.load_traces()
    click.echo(f"traces: {len(traces)}  [{store.path}]")
    ends = [d for t in traces if (d := t.ended_at or t.started_at) is not None]
    click.echo(f"last capture: {max(ends).isoformat() if ends else 'never'}")
    click.echo(f"redaction and signal prefilter: {prefilter.engine()}")
    from claude_bc.capture import gitleaks_rules

    click.echo(f"secret rules besides our own: {gitleaks_rules.source()}")
    errors = recent_errors(5)
    click.echo(f"recent errors: {len(errors) or 'none'}")
    for e in errors:
        click.echo(f"  {e.time} {e.component} {e.session}: {e.message}")
    _report_problems(store)


@cli.command("assemble")
@click.argument("sessions", nargs=-1)
def assemble_cmd(sessions: tuple[str, ...]) -> None:
    """Assemble pending spools now (all of them, or the given session ids)."""
    for session in sessions:
        paths.check_id(session)  # one clear error before anything is touched
    names = sessions or tuple(
        p.stem for p in iter_spools(paths.spool_dir()) if paths.is_safe_id(p.stem)
    )
    total = 0
    for session in names:
        result = assemble_session(session, recover=False)
        total += result.written
        for problem in result.problems:
            click.echo(f"warning: {problem}", err=True)
    click.echo(f"assembled {len(names)} sessions, {total} traces written")
    dead = recover_dead()
    if dead:
        click.echo(
            f"recovered {len(dead)} sessions whose Claude Code process had died "
            f"({sum(len(r.traces) for r in dead)} traces; their spools are cleared)"
        )
    from claude_bc.capture.api import IDLE_DROP_S, assemble_api_session, iter_api_spools

    api_names = sessions or tuple(p.stem for p in iter_api_spools() if paths.is_safe_id(p.stem))
    if api_names:  # the proxy's spools (spool/api/): an idle one is removed once assembled
        api_total = 0
        for session in api_names:
            api = assemble_api_session(session, drop_idle_s=IDLE_DROP_S)
            api_total += api.written
            for problem in api.problems:
                click.echo(f"warning: {problem}", err=True)
        click.echo(f"assembled {len(api_names)} api sessions, {api_total} traces written")


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
        with os.fdopen(paths.open_output(output), "w", encoding="utf-8") as fh:
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
        click.echo(  # captured text: no escape sequence or bidi control reaches the terminal
            f"{t.trace_id[:8]}  {_when(t.started_at)}  {len(t.tool_calls):>3} tools  "
            f"{visible(_short(t.user_prompt, 60))}"
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
    if trace.prompt_expansion:
        out.append(f"  [{trace.command} expanded to] {_short(trace.prompt_expansion, 300)}")
    for i, c in enumerate(trace.tool_calls, 1):
        out.append("")
        if c.thinking:
            out.append(f"  [thinking] {_short(c.thinking, 300)}")
        if c.reasoning:
            out.append(f"  [reasoning] {c.reasoning}")
        who = f" (subagent {c.agent_type or c.agent_id})" if c.agent_id else ""
        status = (
            "ok" if c.success else {"error": "FAILED"}.get(c.outcome or "", str(c.outcome).upper())
        )
        took = f", {c.duration_ms} ms" if c.duration_ms is not None else ""
        out.append(f"  {i}. {c.tool}{who} {json.dumps(c.args, ensure_ascii=False)[:300]}")
        out.append(f"     -> {status}{took}: {_short(c.error or c.output, 300)}")
    for e in trace.events:
        out += ["", f"  [{e.kind.replace('_', ' ')}] {_short(e.text, 300)}"]
    if trace.final_thinking:
        out += ["", f"  [thinking] {_short(trace.final_thinking, 300)}"]
    out += ["", f"CLAUDE: {trace.claude_response}", ""]
    out += report.signal_lines(trace, load_gate_config())
    return "\n".join(out)


@cli.command("show")
@click.argument("trace_id")
@click.option("--json", "as_json", is_flag=True, help="The stored record as JSON.")
def show_cmd(trace_id: str, as_json: bool) -> None:
    """One trace, readable (or as JSON); an id prefix is enough."""
    store = _store()
    trace = store.get(trace_id)
    # captured text: no escape sequence or bidi control reaches the terminal
    click.echo(
        json_visible(json.dumps(trace.record(), indent=2, ensure_ascii=False))
        if as_json
        else visible(_render(trace))
    )


_PROJECTS_DIR = click.option(
    "--projects-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Claude Code's projects folder (default: $CLAUDE_CONFIG_DIR/projects, "
    "else ~/.claude/projects).",
)


@cli.command("import")
@_PROJECTS_DIR
@click.option(
    "--since",
    type=click.DateTime(["%Y-%m-%d", "%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S"]),
    help="Only session files written to since DATE (local time).",
)
@click.option(
    "--project",
    type=click.Path(file_okay=False, path_type=Path),
    help="Only the sessions run in this project folder.",
)
@click.option(
    "--jobs",
    "-j",
    type=click.IntRange(min=1),
    help="Processes importing side by side (default: one per core for a large import).",
)
def import_cmd(
    projects_dir: Path | None, since: datetime | None, project: Path | None, jobs: int | None
) -> None:
    """Import past Claude Code sessions from their transcripts (only what is new)."""
    from claude_bc.capture import backfill  # the capture commands above do not need it loaded

    files = backfill.session_files(paths.projects_dir(projects_dir), project)
    jobs = jobs or backfill.default_jobs(files)
    with backfill.progress_bar(files) as on_bytes:
        summary = backfill.import_files(files, since=since, on_bytes=on_bytes, jobs=jobs)
    for line in summary.lines():
        click.echo(line)
    summary.log_problems("import")


@cli.command("watch")
@_PROJECTS_DIR
@click.option(
    "--idle",
    type=click.FloatRange(min=1),
    default=120.0,
    show_default=True,
    help="Seconds without writes after which a session's last turn counts as complete.",
)
def watch_cmd(projects_dir: Path | None, idle: float) -> None:
    """Follow Claude Code's projects folder and capture each turn as it completes."""
    from claude_bc.capture import backfill, watcher  # watchdog is loaded only for this command

    folder = paths.projects_dir(projects_dir)
    click.echo(f"watching {folder} (stop with Ctrl-C or SIGTERM)", err=True)

    def report(result: backfill.FileResult) -> None:
        r = result.report
        if r.new or r.merged:
            click.echo(f"{result.path.name}: {r.new} new, {r.merged} merged traces")
        for problem in result.problems:
            click.echo(f"warning: skipped {problem}", err=True)
            log_error("watch", "-", f"skipped {problem}")

    summary = watcher.watch(folder, idle=idle, on_result=report)
    for line in summary.lines():
        click.echo(line)


_GATES = click.option(
    "--gates",
    "gates_file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Quality-gate settings, TOML or JSON (default: $BC_HOME/gates.toml if it exists).",
)


@cli.command("reextract")
@click.option("--dry-run", is_flag=True, help="Count what would change; write nothing.")
def reextract_cmd(dry_run: bool) -> None:
    """Recompute signals and categories of every stored trace (after the extractor changed)."""
    from claude_bc.capture.signals import extract_signals

    store = _store()
    traces = store.load_traces()
    changed = []
    for t in traces:
        fresh = extract_signals(t)
        if fresh.to_dict() != t.reasoning_signals.to_dict():
            changed.append(t.model_copy(update={"reasoning_signals": fresh}))
    if not dry_run:
        store.append(changed)
    verb = "would change" if dry_run else "updated"
    click.echo(f"{len(traces)} traces, {len(changed)} {verb}")
    _report_problems(store)


@cli.command("rate")
@click.argument("words", nargs=-1)
@click.option("--last", is_flag=True, help="Rate the latest turn (of this Claude Code session).")
@click.option("--note", help="Why: kept with the rating (redacted like every captured text).")
@click.option("--args-stdin", is_flag=True, hidden=True, help="Read 'up|down [note]' from stdin.")
@click.option(
    "--args-from-hook",
    is_flag=True,
    hidden=True,
    help="/bc-rate: the arguments as the capture hook recorded the typed command.",
)
def rate_cmd(
    words: tuple[str, ...], last: bool, note: str | None, args_stdin: bool, args_from_hook: bool
) -> None:
    """Rate a trace: bc-capture rate ID|--last up|down|clear [--note TEXT]."""
    args = list(words) + (sys.stdin.read().split() if args_stdin else [])
    if args_from_hook:
        args += rating.args_from_hook(os.environ.get("CLAUDE_CODE_SESSION_ID", "")).split()
    if not last:
        if not args:
            raise BCError("say which trace to rate: an id (prefix) or --last")
        ident, args = args[0], args[1:]
    value, trailing = rating.parse_rating(args)
    store = _store()
    if last:
        session = os.environ.get("CLAUDE_CODE_SESSION_ID")
        trace = rating.last_trace(store.load_traces(), session)
    else:
        trace = store.get(ident)
    rated = rating.rate(store, trace, value, note or trailing)
    what = f"rated {value}" if value else "rating cleared"
    click.echo(f"claude-bc: {what}: {rated.trace_id[:8]} {_short(rated.user_prompt, 60)}")


@cli.command("stats")
@_GATES
@click.option("--json", "as_json", is_flag=True, help="The figures as JSON.")
def stats_cmd(gates_file: Path | None, as_json: bool) -> None:
    """Traces by source, category, depth and workflow; tools per trace; ratings; gates."""
    store = _store()
    stats = report.collect_stats(store.load_traces(), load_gate_config(gates_file))
    click.echo(json.dumps(stats.to_dict(), indent=2) if as_json else report.render_stats(stats))
    _report_problems(store)


@cli.command("view")
@_GATES
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    default="claude-bc-traces.html",
    show_default=True,
    help="The HTML file to write (0600).",
)
def view_cmd(gates_file: Path | None, output: Path) -> None:
    """Write every trace into one self-contained HTML file (search, filters, timelines)."""
    from claude_bc.capture.viewer import render_html

    store = _store()
    page = render_html(store.load_traces(), load_gate_config(gates_file))
    try:
        with os.fdopen(paths.open_output(output), "w", encoding="utf-8") as fh:
            fh.write(page)
    except OSError as exc:
        raise BCError(f"cannot write {output}: {exc.strerror or exc}") from None
    click.echo(f"wrote {output} ({store.count()} traces); open it in a browser")
    _report_problems(store)


@cli.command("proxy")
@click.option(
    "--mode",
    type=click.Choice(["reverse", "regular"]),
    default="reverse",
    show_default=True,
    help="reverse: ANTHROPIC_BASE_URL points at the proxy; regular: an HTTPS proxy.",
)
@click.option("--port", type=int, default=8082, show_default=True, help="0: any free port")
@click.option("--upstream", help="The API to forward to (default https://api.anthropic.com).")
@click.option(
    "--confdir",
    type=click.Path(file_okay=False, path_type=Path),
    help="mitmproxy's folder, with its CA (default: $BC_HOME/mitmproxy).",
)
@click.option(
    "--rollout",
    type=float,
    default=0.0,
    help="Send this percent of Claude Code sessions (sticky per session) to --local.",
)
@click.option("--local", help="The local model's endpoint, e.g. http://127.0.0.1:8090.")
@click.option(
    "--allow-remote-local",
    is_flag=True,
    help="Allow a --local on another host (https only): it receives prompts and code.",
)
def proxy_cmd(
    mode: str,
    port: int,
    upstream: str | None,
    confdir: Path | None,
    rollout: float,
    local: str | None,
    allow_remote_local: bool,
) -> None:
    """Record Claude Code's API traffic through mitmdump (loopback only) until stopped."""
    from claude_bc.capture import mitm

    p = mitm.plan(
        "regular" if mode == "regular" else "reverse",
        port,
        upstream,
        confdir,
        rollout=rollout,
        local=local,
        local_remote=allow_remote_local,
    )
    click.echo(f"# claude-bc proxy ({p.mode}) on 127.0.0.1:{p.port} -> {p.upstream}")
    if p.rollout > 0:
        click.echo(
            f"# rollout: {p.rollout:g}% of sessions -> {p.local} (kill switch: "
            "bc-capture rollout off)"
        )
    click.echo(f"# recording to {paths.spool_dir() / 'api'}; give Claude Code this environment:")
    for line in p.env_lines():
        click.echo(line)
    mitm.exec_mitmdump(p)


@cli.command("rollout")
@click.argument("action", type=click.Choice(["off", "on", "status"]))
def rollout_cmd(action: str) -> None:
    """Kill switch of the proxy's rollout: `off` sends every session back to Anthropic at
    once (from the next request on), `on` resumes the configured share."""
    from claude_bc.proxy import rollout

    kill = Path(rollout.kill_file(str(paths.ensure_dir(paths.data_dir()))))
    if action == "off":
        kill.touch(mode=0o600)
    elif action == "on":
        kill.unlink(missing_ok=True)
    state = "off: every session goes to Anthropic" if kill.exists() else "on"
    click.echo(f"rollout {state}  [{kill}]")


@cli.command("redact")
@click.option("--dry-run", is_flag=True, help="Count what would change; write nothing.")
@click.option(
    "--datasets",
    "dataset_dirs",
    multiple=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Folders to search for datasets built before the rewrite (default: .).",
)
def redact_cmd(dry_run: bool, dataset_dirs: tuple[Path, ...]) -> None:
    """Apply the current redaction rules to every stored trace (after an upgrade)."""
    from claude_bc.capture.reredact import reredact, stale_datasets

    store = _store()
    done = reredact(store, dry_run=dry_run)
    verb = "would change" if dry_run else "rewritten"
    click.echo(f"{done.lines} lines, {len(done.changed)} traces {verb}")
    for kind, n in done.kinds.most_common():
        click.echo(f"  {n:6d}  [REDACTED:{kind}]")
    if done.kept_unreadable:
        click.echo(f"{done.kept_unreadable} unreadable lines kept as they were")
    for folder in stale_datasets(list(dataset_dirs) or [Path(".")]):
        click.echo(f"stale dataset (built before the rewrite; rebuild it): {folder}")
    _report_problems(store)


def main(argv: list[str] | None = None) -> Any:
    """Entry point: a ``BCError`` becomes one clean line and exit status 1."""
    return run_cli(cli, "bc-capture", argv)


if __name__ == "__main__":  # the /bc-rate slash command runs `python -m claude_bc.capture.cli rate`
    main()
