"""The ``bc-train`` commands of the shipping stage: ``export``, ``serve`` and ``abtest``.

They are registered on ``bc-train`` in ``claude_bc/cli.py``. Heavy packages (torch,
llama_cpp) are imported inside the commands, so ``bc-train --help`` stays fast.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

import click

from claude_bc.capture import paths
from claude_bc.capture.errors import BCError
from claude_bc.export import abtest


def _default_out() -> Path:
    return paths.data_dir() / "models" / "export"


@click.command("export")
@click.option(
    "--model",
    required=True,
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="A bc-train sft/rl output folder, a LoRA adapter folder or a full model folder.",
)
@click.option(
    "--base",
    default=None,
    help="The base the adapter was trained on (default: what the training run recorded).",
)
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Where the GGUF files go (default: $BC_HOME/models/export).",
)
@click.option(
    "--name",
    default="llama-claude-bc-v1",
    show_default=True,
    help="File name stem.",
)
@click.option(
    "--rl",
    "rl_version",
    type=int,
    default=None,
    help="Name the files llama-claude-rl-vN instead (a bc-train rl output).",
)
# the option's former name, still accepted; not in --help
@click.option("--ppo", "ppo_version", type=int, default=None, hidden=True)
@click.option("--no-ollama", is_flag=True, help="Write the Modelfile but do not run ollama.")
@click.option("--keep-hf", is_flag=True, help="Keep the merged HF checkpoint (NAME-hf/).")
def export_cmd(
    model: Path,
    base: str | None,
    out: Path | None,
    name: str,
    rl_version: int | None,
    ppo_version: int | None,
    no_ollama: bool,
    keep_hf: bool,
) -> None:
    """Merge LoRA → HF checkpoint → GGUF f16 → q4_k_m, check both, write the Modelfile.

    \b
    Files: NAME.gguf (q4_k_m, the one to ship), NAME-f16.gguf, fidelity.json, Modelfile.
    The export fails, keeping nothing, when a fidelity check fails.
    """
    from claude_bc.export import fidelity, gguf, merge, ollama, quantize

    version = rl_version if rl_version is not None else ppo_version
    stem = f"llama-claude-rl-v{version}" if version is not None else name
    out = out or _default_out()
    out.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{stem}-", dir=out))
    try:
        click.echo(f"merging {model}")
        hf = merge.merge(model, work / "hf", base)
        click.echo("converting to GGUF f16 (llama.cpp convert_hf_to_gguf.py)")
        f16 = gguf.convert(hf, work / f"{stem}-f16.gguf")
        click.echo("quantizing to q4_k_m")
        q4 = quantize.quantize(f16, work / f"{stem}.gguf")
        click.echo("checking: template, tokenization, f16 logits, q4_k_m top-1, tool calls")
        report = fidelity.check(hf, f16, q4)
        (work / "fidelity.json").write_text(json.dumps(report.as_dict(), indent=2) + "\n")
        fidelity.require(report)
        _publish(work, out, stem, keep_hf)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    q4_final = out / f"{stem}.gguf"
    click.echo(_summary(report, out, stem))
    mf = ollama.write_modelfile(q4_final, out / "Modelfile")
    click.echo(f"Modelfile: {mf}")
    if not no_ollama:
        click.echo(ollama.register(mf))


def _publish(work: Path, out: Path, stem: str, keep_hf: bool) -> None:
    """Move the checked files into place (only once every check passed)."""
    for name in (f"{stem}.gguf", f"{stem}-f16.gguf", "fidelity.json"):
        (work / name).replace(out / name)
    if keep_hf:
        dest = out / f"{stem}-hf"
        shutil.rmtree(dest, ignore_errors=True)
        (work / "hf").rename(dest)


def _summary(report: object, out: Path, stem: str) -> str:
    r = report.as_dict()  # type: ignore[attr-defined]
    return (
        f"{out / (stem + '.gguf')} (q4_k_m) and {out / (stem + '-f16.gguf')}\n"
        f"  template embedded: {r['template_embedded']}; tokenization matches: "
        f"{r['tokenization_matches']}\n"
        f"  f16 logits NMSE {r['f16_nmse']:.2e} (limit 1e-4) over {r['positions']} positions\n"
        f"  q4_k_m top-1 agreement {r['q4_top1_agreement']:.1%}, NMSE {r['q4_nmse']:.2e}\n"
        f"  tool-call round trip: {'ok' if r['roundtrip'].get('ok') else 'FAILED'}"
    )


@click.command("serve")
@click.argument("gguf_path", metavar="MODEL.gguf", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=int, default=8090, show_default=True, help="0: any free port")
@click.option(
    "--ctx", "n_ctx", type=int, default=16384, show_default=True, help="Context window (tokens)."
)
@click.option(
    "--max-tokens",
    "max_tokens_cap",
    type=int,
    default=None,
    help="Cap every reply at this many tokens, whatever the request asks.",
)
@click.option(
    "--system",
    type=click.Choice(["training", "request"]),
    default="training",
    show_default=True,
    help="training: the system prompt, tool schemas and prompt "
    "text as bc-train dataset wrote them for training; request: as sent.",
)
@click.option(
    "--temperature", type=float, default=0.7, show_default=True, help="When a request sets none."
)
@click.option("--name", default=None, help="Model name in replies (default: the file stem).")
@click.option(
    "--allow-host",
    "allow_hosts",
    multiple=True,
    help="A Host name requests may use besides localhost/127.0.0.1/[::1] (when serving "
    "another machine; repeatable).",
)
@click.option(
    "--tool-schemas",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="Training mode: the tool schemas the model was trained with (the dataset's "
    "tool_schemas file); they replace the request's tools of the same name.",
)
@click.option(
    "--grammar",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="A GBNF grammar every reply must match (llama.cpp syntax).",
)
def serve_cmd(
    gguf_path: Path,
    host: str,
    port: int,
    n_ctx: int,
    max_tokens_cap: int | None,
    system: str,
    temperature: float,
    name: str | None,
    grammar: Path | None,
    allow_hosts: tuple[str, ...],
    tool_schemas: Path | None,
) -> None:
    """Serve MODEL.gguf as an Anthropic Messages API (for ANTHROPIC_BASE_URL)."""
    from claude_bc.export.serve import LocalModel, Server, serve
    from claude_bc.training.dataset import load_tool_schemas

    schemas = load_tool_schemas(tool_schemas) if tool_schemas else []
    model = LocalModel(gguf_path, n_ctx=n_ctx, name=name)
    try:
        server = Server(
            (host, port),
            model,
            max_tokens_cap=max_tokens_cap,
            system="training" if system == "training" else "request",
            temperature=temperature,
            grammar=grammar.read_text() if grammar else None,
            allow_hosts=allow_hosts,
            tool_schemas=schemas,
        )
    except OSError as exc:
        raise BCError(f"cannot listen on {host}:{port}: {exc.strerror}") from exc
    click.echo(f"serving {model.name} at {server.base_url}")
    click.echo(f"ANTHROPIC_BASE_URL={server.base_url}")
    serve(server)


@click.group("abtest")
def abtest_group() -> None:
    """Blind A/B test: can people tell Claude's answers from the local model's?

    \b
    1. bc-train abtest pairs --heldout test.jsonl --model MODEL.gguf
    2. bc-train abtest serve        (raters vote on a local web page)
    3. bc-train abtest report
    """


DB_OPTION = click.option(
    "--db",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="The test's SQLite file (default: $BC_HOME/abtest/abtest.sqlite).",
)


@abtest_group.command("pairs")
@click.option(
    "--heldout",
    required=True,
    type=click.Path(path_type=Path),
    help="Held-out chats (JSONL with 'messages'), or a bc-train dataset folder (its test "
    "split, else its eval split).",
)
@click.option(
    "--model",
    "gguf",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="The local model (GGUF) that answers the same prompts.",
)
@DB_OPTION
@click.option("--limit", type=int, default=50, show_default=True, help="At most this many pairs.")
@click.option("--max-tokens", type=int, default=512, show_default=True)
def abtest_pairs_cmd(
    heldout: Path, gguf: Path, db: Path | None, limit: int, max_tokens: int
) -> None:
    """Let the local model answer held-out prompts and store (Claude, local) pairs.

    The local model sees what Claude saw before its final answer (prompt, tool calls,
    tool results) and writes its own final answer.
    """
    from claude_bc.export.serve import LocalModel

    samples = abtest.read_samples(heldout)[: max(0, limit)]
    if not samples:
        raise BCError(f"{heldout}: no held-out chat ends with an assistant answer")
    model = LocalModel(gguf)
    store = abtest.ABStore(db or abtest.default_db())
    with click.progressbar(samples, label="local answers") as bar:
        pairs = abtest.build_pairs(
            bar,
            lambda ctx, tools: model.answer_text(ctx, tools=tools, max_tokens=max_tokens),
            gguf.name,
        )
        added = store.add_pairs(pairs)
    click.echo(f"{added} new pairs ({store.pair_count()} in all) in {store.path}")


@abtest_group.command("serve")
@DB_OPTION
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=int, default=8765, show_default=True, help="0: any free port")
def abtest_serve_cmd(db: Path | None, host: str, port: int) -> None:
    """Serve the rating page until interrupted (votes are saved as they come)."""
    from claude_bc.export.abpage import make_server

    store = abtest.ABStore(db or abtest.default_db())
    if not store.pair_count():
        raise BCError(f"{store.path} holds no pairs: run `bc-train abtest pairs` first")
    try:
        server = make_server(store, host, port)
    except OSError as exc:
        raise BCError(f"cannot listen on {host}:{port}: {exc.strerror}") from exc
    base = f"http://{host}:{server.server_address[1]}/"
    click.echo(f"A/B test page: {base}?key={server.secret}  (tally: {base}report)", nl=True)
    try:
        server.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


@abtest_group.command("report")
@DB_OPTION
@click.option("--json", "as_json", is_flag=True, help="The figures as JSON.")
def abtest_report_cmd(db: Path | None, as_json: bool) -> None:
    """Indistinguishability with a 95% CI, and how many more votes a > 45% claim needs."""
    path = db or abtest.default_db()
    if not path.exists():
        raise BCError(f"{path}: no A/B test here yet")
    result = abtest.report(abtest.ABStore(path).judgments())
    click.echo(json.dumps(result.as_dict()) if as_json else abtest.render_report(result))


COMMANDS: list[click.Command] = [export_cmd, serve_cmd, abtest_group]
