"""Throughput of capture.redact on ~10 MB of mixed source / log text.

Plain script: ``.venv/bin/python benchmarks/bench_redact.py [--mb 10] [--repeat 3]``.
Prints MB/s of ``redact_text`` and, measured side by side in the same run over the same
text, of a plain ``str.replace`` pass (the floor any scan of the text costs), and their
ratio.  Two texts: one with no secret (the common case: a single scan), and the same
text with a few secrets planted (a second scan runs to make the result idempotent).
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

from capture.redact import Redactor  # noqa: E402


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
                f"  File \"/srv/app/module_{rng.randrange(99)}.py\", line {rng.randrange(999)}, "
                f"in handler\n    result = compute(key=key, value=value)\nKeyError: 'missing'"
            )
        else:
            line = f"-rw-r--r--  1 dev staff {rng.randrange(99999):>6} May  1 10:00 file_{sha[:8]}.txt"
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


def best_of(repeat: int, fn: Callable[[], object]) -> float:
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--mb", type=float, default=10.0)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
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
        t_base = best_of(args.repeat, lambda s=subject: s.replace("AKIA", "[REDACTED]"))  # type: ignore[misc]
        t_red = best_of(args.repeat, lambda s=subject: redactor.redact_text(s))  # type: ignore[misc]
        print(
            f"{label:>20}: {mb:5.1f} MB  redact_text {t_red:6.3f} s = {mb / t_red:7.1f} MB/s | "
            f"str.replace {t_base:6.3f} s = {mb / t_base:7.1f} MB/s | ratio x{t_red / t_base:.0f}"
        )


if __name__ == "__main__":
    main()
