"""Test helpers: the real ``bc-capture proxy`` (real mitmdump + our addon) on loopback,
and a raw HTTP/1.1 client that sees exactly what arrives on the socket, and when."""

from __future__ import annotations

import json
import os
import re
import socket
import struct
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import REPO

BC_CAPTURE = REPO / ".venv" / "bin" / "bc-capture"
MITMDUMP = REPO / ".venv-mitm" / "bin" / "mitmdump"

needs_mitmdump = pytest.mark.skipif(
    not MITMDUMP.exists() and not os.environ.get("BC_MITMDUMP"),
    reason="mitmproxy's virtualenv is missing: run scripts/setup",
)


@dataclass
class Proxy:
    port: int
    home: Path
    process: subprocess.Popen[bytes]
    stdout: str
    log: Path

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def spool(self, session: str) -> Path:
        return self.home / "spool" / "api" / f"{session}.jsonl"

    def records(self, session: str, count: int, timeout: float = 10) -> list[dict[str, Any]]:
        """The session's spool records once ``count`` are there (the writer is a thread)."""
        deadline = time.monotonic() + timeout
        while True:
            path = self.spool(session)
            lines = path.read_text().splitlines() if path.exists() else []
            if len(lines) >= count or time.monotonic() > deadline:
                return [json.loads(line) for line in lines]
            time.sleep(0.02)


def _wait_listening(port: int, proc: subprocess.Popen[bytes], log: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"the proxy exited ({proc.returncode}): {log.read_text()}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise AssertionError(f"the proxy did not listen within {timeout}s: {log.read_text()}")


@contextmanager
def run_proxy(
    upstream: str,
    home: Path,
    *args: str,
    env: dict[str, str] | None = None,
    timeout: float = 30,
) -> Iterator[Proxy]:
    """``bc-capture proxy --port 0 --upstream URL ARGS…``; killed on exit, whatever happened."""
    out, log = home.parent / "proxy.out", home.parent / "proxy.log"
    full_env = {**os.environ, "BC_HOME": str(home), **(env or {})}
    cmd = [str(BC_CAPTURE), "proxy", "--port", "0", "--upstream", upstream, *args]
    with out.open("wb") as fo, log.open("wb") as fe:
        proc = subprocess.Popen(cmd, env=full_env, stdout=fo, stderr=fe, stdin=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + timeout
        while not (m := re.search(r"=http://127\.0\.0\.1:(\d+)", out.read_text())):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"no proxy address: {out.read_text()} {log.read_text()}")
            time.sleep(0.05)
        port = int(m.group(1))
        _wait_listening(port, proc, log, deadline - time.monotonic())
        yield Proxy(port, home, proc, out.read_text(), log)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


# --- a raw client ---------------------------------------------------------------------------


@dataclass
class Reply:
    """What a client got: the status line and headers, the body as it arrived (still
    chunked), when each piece came, and how the connection ended."""

    head: bytes = b""
    body: bytes = b""
    arrivals: list[tuple[float, int]] = field(default_factory=list)  # (time, bytes so far)
    ended: str = ""  # "complete", "eof" (closed early) or the socket error's name

    @property
    def status(self) -> int:
        return int(self.head.split(b" ", 2)[1])

    def dechunked(self) -> bytes:
        """The body without chunked framing, as far as it arrived."""
        out, rest = b"", self.body
        while b"\r\n" in rest:
            size_line, rest = rest.split(b"\r\n", 1)
            size = int(size_line.split(b";")[0] or b"0", 16)
            if size == 0 or len(rest) < size:
                out += rest[:size] if size else b""
                break
            out, rest = out + rest[:size], rest[size + 2 :]
        return out

    def first_event_at(self) -> float:
        """When the first complete SSE event had arrived."""
        for t, n in self.arrivals:
            if b"\n\n" in self.body[:n]:
                return t
        raise AssertionError("no complete event arrived")


def post(
    port: int,
    body: dict[str, Any] | bytes,
    headers: dict[str, str] | None = None,
    path: str = "/v1/messages?beta=true",
    abort_after: int | None = None,
    timeout: float = 20,
) -> Reply:
    """POST over one fresh connection and read until the response ends (or ``abort_after``
    body bytes, when the client hangs up as an aborting client would)."""
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    head = {"Host": "127.0.0.1", "Content-Type": "application/json", **(headers or {})}
    head["Content-Length"] = str(len(data))
    request = f"POST {path} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in head.items())
    reply = Reply()
    raw = b""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(request.encode() + b"\r\n" + data)
        while True:
            try:
                chunk = sock.recv(65536)
            except OSError as exc:
                reply.ended = type(exc).__name__
                break
            if not chunk:
                reply.ended = "eof"
                break
            raw += chunk
            reply.head, _, reply.body = raw.partition(b"\r\n\r\n")
            reply.arrivals.append((time.monotonic(), len(reply.body)))
            if _complete(reply):
                reply.ended = "complete"
                break
            if abort_after is not None and len(reply.body) >= abort_after:
                reply.ended = "aborted"
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                break
    return reply


def _complete(reply: Reply) -> bool:
    if not reply.head:
        return False
    length = re.search(rb"(?i)\r\ncontent-length: *(\d+)", reply.head)
    if length:
        return len(reply.body) >= int(length.group(1))
    return reply.body.endswith(b"0\r\n\r\n")
