"""Proxy cost: time to first byte and total time of a streamed Messages response through
mitmdump + our addon, as a ratio to bare mitmdump on the same stream (goal: ≤ 1.05×).

The proxies run side by side in reverse mode in front of one fake API
(``tests/fake_anthropic.py``) that streams a realistic answer (thinking, text, tool
calls: ~60 events, 1 ms apart). The baseline ("bare") is mitmdump with a two-line
addon that only sets ``flow.response.stream = True`` (by default mitmdump buffers the
whole response and would lose on first byte by far); ``stream_large_bodies=1`` is
shown too, for reference, with the direct (no proxy) figures, and a second bare
instance ("bare2") whose ratio to the first is the noise of the machine. Requests rotate over all
of them so machine noise hits each alike; medians are printed.

    .venv/bin/python benchmarks/bench_proxy.py [--runs 60]
"""

from __future__ import annotations

import argparse
import os
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.fake_anthropic import FakeAnthropic  # noqa: E402
from tests.proxy.mitm import MITMDUMP, post  # noqa: E402

ANSWER = {
    "prompt": "bench",
    "turns": [
        {
            "content": [
                {"type": "thinking", "thinking": "Let me look at the code first. " * 8},
                {"type": "text", "text": "I will read the files and run the tests. " * 4},
                {"type": "tool_use", "id": "toolu_1", "name": "Read", "input": {"file_path": "/a"}},
                {"type": "tool_use", "id": "toolu_2", "name": "Bash", "input": {"command": "ls"}},
            ]
        }
    ],
}
BODY = {
    "model": "claude-opus-5-5",
    "max_tokens": 1000,
    "stream": True,
    "messages": [{"role": "user", "content": "x " * 5000}],  # a 10 kB request, as Claude Code's
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def mitmdump(upstream: str, home: Path, *extra: str) -> Iterator[tuple[int, int]]:
    port = free_port()
    cmd = [str(MITMDUMP), "--mode", f"reverse:{upstream}", "--listen-host", "127.0.0.1"]
    cmd += ["--listen-port", str(port), "-q", "--set", f"confdir={home / 'conf'}", *extra]
    proc = subprocess.Popen(cmd, env={**os.environ, "BC_HOME": str(home)})
    try:
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.05)
        yield port, proc.pid
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def cpu_s(pid: int) -> float:
    """User + system CPU seconds a process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def timed(port: int) -> tuple[float, float]:
    t0 = time.monotonic()
    reply = post(port, BODY, {"X-Claude-Code-Session-Id": "bench"})
    assert reply.ended == "complete", reply.ended
    return reply.arrivals[0][0] - t0, reply.arrivals[-1][0] - t0


STREAM_ONLY = """
def responseheaders(flow):
    flow.response.stream = True
"""


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=60)
    runs = ap.parse_args().runs
    addon = str(REPO / "proxy" / "addon.py")
    tmp_dir = tempfile.TemporaryDirectory()
    tmp = Path(tmp_dir.name)
    (tmp / "stream_only.py").write_text(STREAM_ONLY)
    with (
        tmp_dir,
        FakeAnthropic(ANSWER, chunk_delay_s=0.001) as api,
        mitmdump(api.base_url, tmp / "bare", "-s", str(tmp / "stream_only.py")) as bare,
        mitmdump(api.base_url, tmp / "bare2", "-s", str(tmp / "stream_only.py")) as bare2,
        mitmdump(api.base_url, tmp / "large", "--set", "stream_large_bodies=1") as large,
        mitmdump(api.base_url, tmp / "ours", "-s", addon) as ours,
    ):
        ports = {
            "direct": api.port,
            "large": large[0],
            "bare": bare[0],
            "bare2": bare2[0],
            "ours": ours[0],
        }
        results: dict[str, list[tuple[float, float]]] = {name: [] for name in ports}
        for _ in range(5):  # warm up the proxies
            for port in ports.values():
                timed(port)
        cpu0 = {"bare": cpu_s(bare[1]), "ours": cpu_s(ours[1])}
        for i in range(runs):
            order = list(ports.items())
            random.Random(i).shuffle(order)  # no proxy always goes right after another
            for name, port in order:
                results[name].append(timed(port))
        time.sleep(1)  # the addon's writer thread appends the last records
        spool = tmp / "ours" / "spool" / "api" / "bench.jsonl"
        recorded = len(spool.read_text().splitlines())
        cpu = {
            k: (cpu_s(pid) - cpu0[k]) / runs for k, pid in (("bare", bare[1]), ("ours", ours[1]))
        }
    med = {k: tuple(statistics.median(x[i] for x in v) for i in (0, 1)) for k, v in results.items()}
    low = {k: tuple(min(x[i] for x in v) for i in (0, 1)) for k, v in results.items()}
    for name in results:
        print(
            f"{name:>6}: first byte {med[name][0] * 1000:7.2f} ms (min {low[name][0] * 1000:6.2f})"
            f"   total {med[name][1] * 1000:7.2f} ms (min {low[name][1] * 1000:6.2f})"
        )
    print(
        f"CPU per exchange: bare {cpu['bare'] * 1000:.2f} ms, ours {cpu['ours'] * 1000:.2f} ms "
        "(ours includes writing the record)"
    )
    for label, s in (("median", med), ("min", low)):
        ours, noise = (
            (s["ours"][0] / s["bare"][0], s["ours"][1] / s["bare"][1]),
            (
                s["bare2"][0] / s["bare"][0],
                s["bare2"][1] / s["bare"][1],
            ),
        )
        print(
            f"{label:>6} addon / bare mitmdump: first byte {ours[0]:.3f}x, total {ours[1]:.3f}x"
            f"   (noise, bare2 / bare: {noise[0]:.3f}x, {noise[1]:.3f}x)"
        )
    print(f"goal <= 1.05x; {runs} runs each, {recorded} exchanges recorded")


if __name__ == "__main__":
    main()
