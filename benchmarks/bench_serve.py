"""`bc-train serve` overhead: generation through the Anthropic endpoint vs llama_cpp direct.

Goal: streamed tokens per second through the endpoint (HTTP, SSE, the template and the
stream splitter, the anthropic SDK on the client side) ≥ 0.9× generating the same tokens
with llama-cpp-python directly, on the same model and prompt, measured side by side.

Sampling is unconstrained (a llama.cpp grammar costs more than the tiny model itself), so a
reply may end early; both sides count the tokens they produced.

Run: ``.venv/bin/python benchmarks/bench_serve.py [MODEL.gguf]``. Without a model it
builds the tiny test model and exports it first (about a minute), which makes the model
so small that the endpoint's fixed costs weigh the most: a worst case for the ratio.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from claude_bc.export.serve import LocalModel, Server

TOKENS = 200
ROUNDS = 5
PROMPT = [{"role": "user", "content": "Write a long line of lowercase words."}]


def tiny_export(tmp: Path) -> Path:
    from claude_bc.training.tiny import build_tiny

    model = build_tiny(tmp / "tiny")
    out = tmp / "export"
    bc_train = Path(sys.executable).with_name("bc-train")
    cmd = [str(bc_train), "export", "--model", str(model), "--out", str(out), "--no-ollama"]
    subprocess.run(cmd, check=True, capture_output=True)
    return out / "llama-claude-bc-v1.gguf"


def direct(model: LocalModel, tokens: list[int]) -> float:
    """Tokens per second, llama_cpp alone, on the prompt the endpoint renders."""
    t0 = time.perf_counter()
    result = model.complete(tokens, max_tokens=TOKENS, temperature=0.7)
    return result.output_tokens / (time.perf_counter() - t0)


CLIENT = """
import sys, time, anthropic
client = anthropic.Anthropic(base_url=sys.argv[1], api_key="local", max_retries=0)
for _ in range(2):  # the first request warms the client up (connection, SDK models)
    t0 = time.perf_counter()
    with client.messages.stream(model="m", max_tokens=int(sys.argv[2]),
                                messages=[{"role": "user", "content": sys.argv[3]}]) as s:
        for _ in s:
            pass
        final = s.get_final_message()
print(final.usage.output_tokens / (time.perf_counter() - t0))
"""


def endpoint(base_url: str) -> float:
    """Tokens per second through the endpoint, streamed, read by the SDK in its own
    process (as Claude Code is), timed on the client's second request."""
    args = [sys.executable, "-c", CLIENT, base_url, str(TOKENS), PROMPT[0]["content"]]
    out = subprocess.run(args, check=True, capture_output=True, text=True).stdout
    return float(out.strip().splitlines()[-1])


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(sys.argv[1]) if len(sys.argv) > 1 else tiny_export(Path(tmp))
        model = LocalModel(path, n_ctx=4096, threads=1)  # steadier on a shared machine
        server = Server(("127.0.0.1", 0), model)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        tokens = server.job({"max_tokens": TOKENS, "messages": PROMPT}).tokens
        direct(model, tokens), endpoint(server.base_url)  # warm up both
        pairs = [(direct(model, tokens), endpoint(server.base_url)) for _ in range(ROUNDS)]
        server.shutdown()
    d = statistics.median(p[0] for p in pairs)
    e = statistics.median(p[1] for p in pairs)
    print(f"model: {path.name}, {TOKENS} tokens a reply, median of {ROUNDS} rounds")
    print(f"llama_cpp direct: {d:,.0f} tokens/s")
    print(f"through the endpoint: {e:,.0f} tokens/s")
    print(f"ratio: {e / d:.2f}x (goal >= 0.9x)")


if __name__ == "__main__":
    main()
