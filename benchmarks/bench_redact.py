"""Detection quality and throughput of capture.redact.

Plain script: ``.venv/bin/python benchmarks/bench_redact.py [--mb 10] [--repeat 3]``;
``--corpus`` instead scores claude-bc and the peers (betterleaks, kingfisher: the
``bench`` extra) on the secrets corpus (tests/fixtures/secrets): recall per source, per
context and per provider family, gitleaks' false-positive examples changed, benign lines
changed, and time per KB, every engine judged by the same leak check
(``tests/capture/redact_corpus.py``).

The throughput part:
Prints MB/s of ``redact_text`` and, measured side by side in the same run over the same
text, of a plain ``str.replace`` pass (the floor any scan of the text costs), and their
ratio.  Two texts: Python standard-library sources plus generated tool / server output
(the stdlib holds one real-looking credential, a ``.pypirc`` example), and the same text
with 20 secrets planted; then the first text in ~32 KB pieces (as tool outputs come), with
the Hyperscan prefilter and with every rule run on every piece.  When something is
replaced, a rescan of the touched lines follows (it makes the result idempotent).  Wall
and CPU seconds are both shown: on a shared machine the CPU figure is the steadier one.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import sysconfig
import time
import uuid
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from claude_bc.capture.redact import Redactor  # noqa: E402
from tests.capture import redact_corpus as rc  # noqa: E402


def source_text(limit: int) -> str:
    """Python standard-library sources, in a stable order, up to ``limit`` characters."""
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    parts: list[str] = []
    size = 0
    for path in sorted(stdlib.rglob("*.py")):
        if "site-packages" in path.parts or "test" in path.parts:
            continue
        try:
            chunk = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            continue
        parts.append(chunk)
        size += len(chunk)
        if size >= limit:
            break
    return "".join(parts)[:limit]


def log_text(limit: int, rng: random.Random) -> str:
    """Shell / server / CLI output of the kind tools print: timestamps, ids, SHAs, JSON."""
    lines: list[str] = []
    size = 0
    levels = ["INFO", "DEBUG", "WARN", "ERROR"]
    while size < limit:
        sha = f"{rng.getrandbits(160):040x}"
        uid = str(uuid.UUID(int=rng.getrandbits(128)))
        kind = rng.randrange(6)
        if kind == 0:
            line = (
                f"2024-05-{rng.randrange(1, 29):02d}T12:{rng.randrange(60):02d}:07.123Z "
                f"{rng.choice(levels)} worker[{rng.randrange(9999)}] request_id={uid} "
                f"took {rng.random() * 900:.1f}ms"
            )
        elif kind == 1:
            line = f"commit {sha}\nAuthor: Dev <dev@example.com>\n\n    Fix the thing ({sha[:7]})"
        elif kind == 2:
            line = json.dumps(
                {
                    "type": "tool_use",
                    "id": "toolu_01" + f"{rng.getrandbits(88):022x}",
                    "usage": {
                        "input_tokens": rng.randrange(9999),
                        "output_tokens": rng.randrange(999),
                        "cache_creation_input_tokens": 0,
                    },
                    "max_tokens": 4096,
                }
            )
        elif kind == 3:
            line = (
                f'10.0.0.{rng.randrange(255)} - - [01/May/2024:10:00:00 +0000] "GET '
                f'/api/v1/items/{uid}?page={rng.randrange(99)} HTTP/1.1" 200 {rng.randrange(99999)}'
            )
        elif kind == 4:
            line = (
                f'  File "/srv/app/module_{rng.randrange(99)}.py", line {rng.randrange(999)}, '
                f"in handler\n    result = compute(key=key, value=value)\nKeyError: 'missing'"
            )
        else:
            line = (
                f"-rw-r--r--  1 dev staff {rng.randrange(99999):>6} May  1 10:00 file_{sha[:8]}.txt"
            )
        lines.append(line)
        size += len(line) + 1
    return "\n".join(lines)[:limit]


def planted(text: str, rng: random.Random) -> str:
    """``text`` with a handful of secrets (built from pieces) inserted at random lines."""
    secrets = [
        "ANTHROPIC_API_KEY=" + "sk-ant-" + "api03-" + "Q" * 30 + "x9" * 10,
        "Authorization: Bearer " + "tok" + "1234567890abcdef" * 2,
        "aws_access_key_id = " + "AKIA" + "Z" * 16,
        "postgres://app:" + "pw" + "Secret77" + "@db.internal/app",
        "-----BEGIN " + "PRIVATE KEY-----\n" + ("MIIB" + "A" * 60 + "\n") * 10 + "-----END "
        "PRIVATE KEY-----",
    ]
    lines = text.split("\n")
    for s in secrets * 4:
        lines.insert(rng.randrange(len(lines)), s)
    return "\n".join(lines)


def side_by_side(
    repeat: int, a: Callable[[], object], b: Callable[[], object]
) -> tuple[tuple[float, float], tuple[float, float]]:
    """Best (wall, CPU) seconds of ``a`` and of ``b``, run alternately so that both see
    the same machine load (CPU time is the steadier figure on a shared machine)."""
    best = [[float("inf")] * 2 for _ in range(2)]
    for _ in range(repeat):
        for k, fn in enumerate((a, b)):
            w0, c0 = time.perf_counter(), time.process_time()
            fn()
            best[k][0] = min(best[k][0], time.perf_counter() - w0)
            best[k][1] = min(best[k][1], time.process_time() - c0)
    return (best[0][0], best[0][1]), (best[1][0], best[1][1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--mb", type=float, default=10.0)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--corpus", action="store_true", help="score on the secrets corpus")
    ap.add_argument("--worst", type=int, default=12, help="families listed (--corpus)")
    ap.add_argument(
        "--every", type=int, default=1, help="--corpus: score every Nth record only (speed)"
    )
    ap.add_argument(
        "--engines",
        default="claude-bc,betterleaks,kingfisher",
        help="--corpus: which engines, comma-separated (claude-bc's rule set: "
        "BC_SECRET_RULES=none|FILE, default betterleaks' embedded rules where installed)",
    )
    ap.add_argument(
        "--split",
        choices=("all", *rc.SPLITS),
        default="all",
        help="--corpus: the tune or held-out half only (by rule / detector: rc.split_of)",
    )
    ap.add_argument(
        "--dump",
        type=Path,
        help="--corpus: write the first engine's misses and changed texts here (JSON lines)",
    )
    args = ap.parse_args()
    if args.corpus:
        corpus_table(args.worst, args.every, args.engines.split(","), args.split, args.dump)
        return
    rng = random.Random(0)
    n = int(args.mb * 1_000_000)
    text = source_text(n // 2) + "\n" + log_text(n - n // 2, rng)
    with_secrets = planted(text, rng)

    t0 = time.perf_counter()
    redactor = Redactor()
    build = time.perf_counter() - t0
    print(f"Redactor() built in {build * 1000:.0f} ms")

    for label, subject in (("no secrets", text), ("20 planted secrets", with_secrets)):
        mb = len(subject.encode("utf-8", "surrogatepass")) / 1e6

        def baseline(s: str = subject) -> str:
            return s.replace("AKIA", "[REDACTED]")

        def redaction(s: str = subject) -> str:
            return redactor.redact_text(s)

        (bw, bc), (rw, rcpu) = side_by_side(args.repeat, baseline, redaction)
        print(
            f"{label}: {mb:.1f} MB\n"
            f"  redact_text  {rw:6.3f} s wall = {mb / rw:6.1f} MB/s"
            f"   ({rcpu:6.3f} s CPU = {mb / rcpu:6.1f} MB/s)\n"
            f"  str.replace  {bw:6.3f} s wall = {mb / bw:6.0f} MB/s"
            f"   ({bc:6.3f} s CPU = {mb / bc:6.0f} MB/s)\n"
            f"  ratio        x{rw / bw:.0f} wall, x{rcpu / bc:.0f} CPU"
        )

    # As tool outputs come: pieces of ~32 KB (Claude Code cuts a Bash output at 30,000
    # characters), where the Hyperscan prefilter skips the rules a piece cannot match.
    pieces = _pieces(text, 32_000)
    mb = sum(len(p.encode("utf-8", "surrogatepass")) for p in pieces) / 1e6
    for label, r in (
        ("prefilter", Redactor(prefilter=True)),
        ("every rule", Redactor(prefilter=False)),
    ):

        def baseline_pieces() -> list[str]:
            return [p.replace("AKIA", "[REDACTED]") for p in pieces]

        def redact_pieces(r: Redactor = r) -> list[str]:
            return [r.redact_text(p) for p in pieces]

        (bw, bc), (rw, rcpu) = side_by_side(args.repeat, baseline_pieces, redact_pieces)
        print(
            f"{len(pieces)} pieces of ~32 KB, {label}: {mb:.1f} MB\n"
            f"  redact_text  {rw:6.3f} s wall = {mb / rw:6.1f} MB/s"
            f"   ({rcpu:6.3f} s CPU = {mb / rcpu:6.1f} MB/s)\n"
            f"  ratio        x{rw / bw:.0f} wall, x{rcpu / bc:.0f} CPU (vs str.replace)"
        )


def corpus_table(
    worst: int,
    every: int = 1,
    names: list[str] | None = None,
    split: str = "all",
    dump: Path | None = None,
) -> None:
    """The engines side by side on the secrets corpus, as Markdown tables."""
    if not rc.have_corpus():
        sys.exit(
            f"no secrets corpus at {rc.CORPUS}: it is built on this machine from gitleaks' and "
            "trufflehog's public rule tests (tests/fixtures/secrets/PROVENANCE.md)"
        )
    from claude_bc.capture import gitleaks_rules

    makers: dict[str, Callable[[], rc.Engine | None]] = {
        "claude-bc": lambda: Redactor(prefilter=True).redact_text,
        "betterleaks": rc.betterleaks_engine,
        "kingfisher": rc.kingfisher_engine,
    }
    print(
        f"claude-bc's rule set: {gitleaks_rules.source()}; every {every}th record; split: {split}\n"
    )
    records = rc.corpus()[::every]
    if split != "all":
        records = tuple(r for r in records if rc.split_of(r) == split)
    scores = {}
    for name in names or list(makers):
        engine = makers[name]()
        if engine is None:
            print(f"({name}: not installed; pip install -e '.[bench]')")
            continue
        engine("warm up")
        scores[name] = rc.score(engine, records, rc.benign_lines())
    names = list(scores)
    if dump is not None and names:
        _dump(dump, scores[names[0]])
    print(
        "| engine | gitleaks-derived recall | trufflehog-derived recall "
        "| gitleaks fp changed | benign changed | µs per KB |"
    )
    print("|---|---|---|---|---|---|")
    for n, sc in scores.items():
        print(
            f"| {n} | {_pct(sc.by_source['gitleaks'])} | {_pct(sc.by_source['trufflehog'])} "
            f"| {_pct(sc.fp_changed)} | {sc.benign_changed.hit} of {sc.benign_changed.total} "
            f"| {sc.seconds / sc.kb * 1e6:.0f} |"
        )
    if split == "all":
        print("\n| engine | split | gitleaks-derived | trufflehog-derived | gitleaks fp changed |")
        print("|---|---|---|---|---|")
        for n, sc in scores.items():
            for half in rc.SPLITS:
                rates = [sc.by_split[(src, half)] for src in ("gitleaks", "trufflehog")]
                rates.append(sc.by_split[("gitleaks-fp", half)])
                print(f"| {n} | {half} | " + " | ".join(_pct(t) for t in rates) + " |")
    first = scores[names[0]]
    print("\n| source | context | n | " + " | ".join(names) + " |")
    print("|---|---|---|" + "---|" * len(names))
    for key in sorted(first.by_context):
        cells = " | ".join(_pct(scores[n].by_context[key]) for n in names)
        print(f"| {key[0]} | {key[1]} | {first.by_context[key].total} | {cells} |")
    print(f"\nThe {worst} provider families {names[0]} catches least (all contexts):")
    print("\n| source | family | n | " + " | ".join(names) + " |")
    print("|---|---|---|" + "---|" * len(names))
    fams = sorted(first.by_family, key=lambda k: (first.by_family[k].rate, k))[:worst]
    for key in fams:
        cells = " | ".join(_pct(scores[n].by_family[key]) for n in names)
        print(f"| {key[0]} | {key[1]} | {first.by_family[key].total} | {cells} |")


def _dump(path: Path, sc: rc.Score) -> None:
    """The misses and the changed texts (fp examples, benign lines), one JSON line each."""
    with open(path, "w", encoding="utf-8") as fh:
        for r in sc.missed:
            fh.write(json.dumps({"kind": "missed", "split": rc.split_of(r), **r}) + "\n")
        for r, out in sc.changed_records:
            row = {"kind": "changed", "split": rc.split_of(r), **r, "out": out}
            fh.write(json.dumps(row) + "\n")


def _pct(t: rc.Tally) -> str:
    return f"{100 * t.rate:.1f}%"


def _pieces(text: str, size: int) -> list[str]:
    """``text`` cut at line ends into pieces of about ``size`` characters."""
    out, start = [], 0
    while start < len(text):
        end = text.find("\n", start + size)
        end = len(text) if end < 0 else end + 1
        out.append(text[start:end])
        start = end
    return out


if __name__ == "__main__":
    main()
