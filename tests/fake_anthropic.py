"""A scripted fake of the Anthropic Messages API, for end-to-end tests with the real Claude Code.

Standard library only. Use it as a context manager::

    with FakeAnthropic(scenario, cwd=project_dir, log_path=tmp / "requests.jsonl") as api:
        env["ANTHROPIC_BASE_URL"] = api.base_url

or as a script (prints ``ANTHROPIC_BASE_URL=...`` and serves until SIGINT/SIGTERM)::

    python tests/fake_anthropic.py --scenario basic/scenario.json --cwd /path/to/project

The scenario format is the one of ``fixtures/claude-code/*/scenario.json``: ``prompt``, ``turns``
(``[{"content": [blocks]}]``, answered in order to the main agent), optional ``subagents``
(``[{"match": TEXT, "turns": [...]}]``: a conversation whose first user message contains TEXT),
``fallback_text`` (answer once the turns are used up), ``side_text`` (answer to side requests
such as a title request that asks for JSON through ``output_config.format``) and optionally
``compact_summary``. ``{{CWD}}`` in any string is replaced by ``cwd``.

Which turn answers a request is decided from the request itself (the number of assistant messages in
its ``messages``), so a retried request gets the same answer again.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import hashlib
import json
import os
import secrets
import signal
import socket
import struct
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import FrameType
from typing import Any, cast
from urllib.parse import urlsplit

JSON = dict[str, Any]

DEFAULT_FALLBACK_TEXT = "Nothing more to do."
DEFAULT_SIDE_TEXT = "Fake title"
DEFAULT_COMPACT_SUMMARY = (
    "<analysis>Fake analysis.</analysis>\n"
    "<summary>The user asked for a small change; it was made and verified.</summary>"
)
DEFAULT_MODEL = "claude-opus-5-5"

# Chunk sizes used to split streamed deltas (characters).
TEXT_CHUNK = 12
JSON_CHUNK = 10

REDACTED_HEADERS = frozenset({"x-api-key", "authorization"})

ERROR_TYPES: dict[int, str] = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    529: "overloaded_error",
}
ERROR_MESSAGES: dict[str, str] = {
    "overloaded_error": "Overloaded",
    "rate_limit_error": "Number of request tokens has exceeded your per-minute rate limit",
    "api_error": "Internal server error",
    "not_found_error": "Not found",
}


# --------------------------------------------------------------------------- scenario helpers


def load_scenario(path: str | os.PathLike[str]) -> JSON:
    """Read a scenario.json file."""
    with open(path, encoding="utf-8") as fh:
        data = json.load(fh)
    if not isinstance(data, dict):
        raise ValueError(f"{path}: a scenario must be a JSON object")
    return cast(JSON, data)


def substitute_cwd(value: Any, cwd: str) -> Any:
    """Return a deep copy of ``value`` with ``{{CWD}}`` replaced by ``cwd`` in every string."""
    if isinstance(value, str):
        return value.replace("{{CWD}}", cwd)
    if isinstance(value, list):
        return [substitute_cwd(v, cwd) for v in value]
    if isinstance(value, dict):
        return {substitute_cwd(k, cwd): substitute_cwd(v, cwd) for k, v in value.items()}
    return copy.deepcopy(value)


def message_text(message: Mapping[str, Any]) -> str:
    """All text of one API message (string content, or its text blocks joined by newlines)."""
    content = message.get("content")
    if isinstance(content, str):
        return content
    parts: list[str] = []
    if isinstance(content, list):
        for block in content:
            if isinstance(block, dict) and isinstance(block.get("text"), str):
                parts.append(block["text"])
    return "\n".join(parts)


def _messages(body: Mapping[str, Any]) -> list[JSON]:
    msgs = body.get("messages")
    return [m for m in msgs if isinstance(m, dict)] if isinstance(msgs, list) else []


def first_user_text(body: Mapping[str, Any]) -> str:
    """Text of the conversation's opening user turn: every user message before the first assistant
    message (Claude Code sends one user message whose text blocks hold context and prompt)."""
    parts: list[str] = []
    for m in _messages(body):
        if m.get("role") == "assistant":
            break
        if m.get("role") == "user":
            parts.append(message_text(m))
    return "\n".join(parts)


def last_user_text(body: Mapping[str, Any]) -> str:
    for m in reversed(_messages(body)):
        if m.get("role") == "user":
            return message_text(m)
    return ""


def count_assistant_messages(body: Mapping[str, Any]) -> int:
    return sum(1 for m in _messages(body) if m.get("role") == "assistant")


def estimate_tokens(value: Any) -> int:
    """A rough token count (4 characters a token) of a JSON value."""
    return max(1, len(json.dumps(value, ensure_ascii=False)) // 4)


def fake_signature(thinking: str) -> str:
    return "fake-signature-" + hashlib.sha256(thinking.encode()).hexdigest()[:32]


def new_message_id() -> str:
    return "msg_01fake" + secrets.token_hex(9)


def new_request_id() -> str:
    return "req_01fake" + secrets.token_hex(12)


def error_body(status: int, message: str | None = None, error_type: str | None = None) -> JSON:
    """Anthropic's error shape: ``{"type": "error", "error": {"type", "message"}}``."""
    etype = error_type or ERROR_TYPES.get(status, "api_error")
    return {
        "type": "error",
        "error": {"type": etype, "message": message or ERROR_MESSAGES.get(etype, etype)},
        "request_id": new_request_id(),
    }


def chunks(text: str, size: int) -> list[str]:
    """Split ``text`` into pieces of ``size`` characters (at least one piece, maybe empty)."""
    if not text:
        return [""]
    return [text[i : i + size] for i in range(0, len(text), size)]


def complete_block(block: Mapping[str, Any]) -> JSON:
    """A scenario block as it appears in a full Message (thinking gets a signature)."""
    out = dict(block)
    if out.get("type") == "thinking":
        out.setdefault("signature", fake_signature(str(out.get("thinking", ""))))
    if out.get("type") == "tool_use":
        out.setdefault("input", {})
    return out


def stream_events(message: Mapping[str, Any]) -> Iterator[tuple[str, JSON]]:
    """The SSE events (name, data) that stream ``message`` the way the real API does."""
    content = [complete_block(b) for b in message.get("content", [])]
    usage = dict(message.get("usage", {}))
    start = {k: v for k, v in message.items() if k != "content"}
    start.update(
        content=[],
        stop_reason=None,
        stop_sequence=None,
        usage={**usage, "output_tokens": 1},
    )
    yield "message_start", {"type": "message_start", "message": start}
    yield "ping", {"type": "ping"}
    for index, block in enumerate(content):
        btype = block.get("type")
        if btype == "text":
            yield _block_start(index, {"type": "text", "text": ""})
            for piece in chunks(str(block.get("text", "")), TEXT_CHUNK):
                yield _block_delta(index, {"type": "text_delta", "text": piece})
        elif btype == "thinking":
            yield _block_start(index, {"type": "thinking", "thinking": "", "signature": ""})
            for piece in chunks(str(block.get("thinking", "")), TEXT_CHUNK):
                yield _block_delta(index, {"type": "thinking_delta", "thinking": piece})
            yield _block_delta(
                index, {"type": "signature_delta", "signature": str(block["signature"])}
            )
        elif btype in ("tool_use", "server_tool_use"):
            head = {k: v for k, v in block.items() if k != "input"}
            yield _block_start(index, {**head, "input": {}})
            partial = json.dumps(block.get("input", {}), ensure_ascii=False)
            for piece in chunks(partial, JSON_CHUNK):
                yield _block_delta(index, {"type": "input_json_delta", "partial_json": piece})
        else:  # redacted_thinking and anything else: sent whole in the start event
            yield _block_start(index, block)
        yield "content_block_stop", {"type": "content_block_stop", "index": index}
    yield (
        "message_delta",
        {
            "type": "message_delta",
            "delta": {
                "stop_reason": message.get("stop_reason"),
                "stop_sequence": message.get("stop_sequence"),
            },
            "usage": {
                "input_tokens": usage.get("input_tokens", 0),
                "cache_creation_input_tokens": usage.get("cache_creation_input_tokens", 0),
                "cache_read_input_tokens": usage.get("cache_read_input_tokens", 0),
                "output_tokens": usage.get("output_tokens", 1),
            },
        },
    )
    yield "message_stop", {"type": "message_stop"}


def _block_start(index: int, block: Mapping[str, Any]) -> tuple[str, JSON]:
    return "content_block_start", {
        "type": "content_block_start",
        "index": index,
        "content_block": dict(block),
    }


def _block_delta(index: int, delta: JSON) -> tuple[str, JSON]:
    return "content_block_delta", {"type": "content_block_delta", "index": index, "delta": delta}


def encode_event(name: str, data: Mapping[str, Any]) -> bytes:
    return f"event: {name}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n".encode()


# --------------------------------------------------------------------------- answering


class Answer:
    """What the fake decided to answer to one messages request."""

    def __init__(
        self, conversation: str, turn: int | None, content: list[JSON], fallback: bool = False
    ) -> None:
        self.conversation = conversation
        self.turn = turn
        self.content = content
        self.fallback = fallback

    @property
    def stop_reason(self) -> str:
        has_tool = any(b.get("type") == "tool_use" for b in self.content)
        return "tool_use" if has_tool else "end_turn"


def _side_json(output_config: Mapping[str, Any], side_text: str) -> str:
    fmt = output_config.get("format")
    schema = fmt.get("schema") if isinstance(fmt, dict) else None
    props = schema.get("properties") if isinstance(schema, dict) else None
    if not isinstance(props, dict) or not props:
        return json.dumps({"title": side_text})
    out: JSON = {}
    for name, spec in props.items():
        ptype = spec.get("type") if isinstance(spec, dict) else None
        if ptype == "boolean":
            out[name] = False
        elif ptype in ("number", "integer"):
            out[name] = 0
        elif ptype == "array":
            out[name] = []
        elif ptype == "object":
            out[name] = {}
        else:
            out[name] = side_text
    return json.dumps(out)


def is_compact_request(body: Mapping[str, Any]) -> bool:
    text = last_user_text(body)
    return "<summary>" in text and "<analysis>" in text


def is_side_request(body: Mapping[str, Any]) -> bool:
    oc = body.get("output_config")
    return isinstance(oc, dict) and isinstance(oc.get("format"), dict)


def choose_answer(scenario: Mapping[str, Any], body: Mapping[str, Any]) -> Answer:
    """Pick the reply for a messages request (``scenario`` already has ``{{CWD}}`` replaced)."""
    fallback_text = str(scenario.get("fallback_text", DEFAULT_FALLBACK_TEXT))
    if is_side_request(body):
        side_text = str(scenario.get("side_text", DEFAULT_SIDE_TEXT))
        oc = cast(Mapping[str, Any], body["output_config"])
        return Answer("side", None, [{"type": "text", "text": _side_json(oc, side_text)}])
    if is_compact_request(body):
        summary = str(scenario.get("compact_summary", DEFAULT_COMPACT_SUMMARY))
        return Answer("compact", None, [{"type": "text", "text": summary}])
    conversation = "main"
    turns: list[Any] = list(scenario.get("turns", []))
    first = first_user_text(body)
    for i, sub in enumerate(scenario.get("subagents", []) or []):
        match = sub.get("match")
        if isinstance(match, str) and match and match in first:
            conversation = f"subagent:{i}"
            turns = list(sub.get("turns", []))
            break
    turn = count_assistant_messages(body)
    if turn < len(turns):
        content = [dict(b) for b in turns[turn].get("content", [])]
        return Answer(conversation, turn, content)
    return Answer(conversation, turn, [{"type": "text", "text": fallback_text}], fallback=True)


def build_message(answer: Answer, body: Mapping[str, Any]) -> JSON:
    content = [complete_block(b) for b in answer.content]
    return {
        "id": new_message_id(),
        "type": "message",
        "role": "assistant",
        "model": body.get("model") or DEFAULT_MODEL,
        "content": content,
        "stop_reason": answer.stop_reason,
        "stop_sequence": None,
        "usage": {
            "input_tokens": estimate_tokens(body.get("messages", [])),
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 0,
            "output_tokens": estimate_tokens(content),
            "service_tier": "standard",
        },
    }


# --------------------------------------------------------------------------- HTTP server


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    fake: FakeAnthropic


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "FakeAnthropic/1.0"
    sys_version = ""
    timeout = 60
    server: _Server
    final_hook: Callable[[], None] | None = None

    def on_final(self) -> None:
        """Called just before the last bytes of a response go out (the fake records it then),
        so a client that has read a whole response always finds it in the log."""
        if self.final_hook is not None:
            self.final_hook()

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        pass

    # -- dispatch

    def do_HEAD(self) -> None:  # noqa: N802 - stdlib name
        self.server.fake._handle(self)

    def do_GET(self) -> None:  # noqa: N802
        self.server.fake._handle(self)

    def do_POST(self) -> None:  # noqa: N802
        self.server.fake._handle(self)

    def do_PUT(self) -> None:  # noqa: N802
        self.server.fake._handle(self)

    def do_DELETE(self) -> None:  # noqa: N802
        self.server.fake._handle(self)

    # -- helpers

    def read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            data = bytearray()
            while True:
                size_line = self.rfile.readline()
                size = int(size_line.split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return bytes(data)
                data += self.rfile.read(size)
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def send_json(self, status: int, obj: Any, extra: Mapping[str, str] | None = None) -> None:
        payload = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.send_header("request-id", new_request_id())
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        self.on_final()
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(payload)
        self.wfile.flush()

    def write_chunk(self, data: bytes) -> None:
        if not data:
            self.on_final()
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.wfile.flush()

    def reset_connection(self) -> None:
        """Abort the TCP connection (RST) without finishing the response."""
        self.on_final()
        with contextlib.suppress(OSError):
            self.wfile.flush()
        with contextlib.suppress(OSError):
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        with contextlib.suppress(OSError):
            self.connection.close()
        self.close_connection = True


class FakeAnthropic:
    """A scripted Anthropic Messages API on 127.0.0.1.

    ``fail`` maps the 1-based number of a ``POST /v1/messages`` request to a failure:
    ``{"status": 529}`` answers with that status and Anthropic's error JSON (529 →
    ``overloaded_error``; optional ``"message"``, ``"type"``, ``"headers"``),
    ``{"reset": True}`` sends part of the stream then aborts the connection (optional
    ``"after_events"``, default 3), and ``{"sse_error": "overloaded_error"}`` sends an ``error``
    event mid-stream. It may be changed while the server runs.
    """

    def __init__(
        self,
        scenario: Mapping[str, Any] | str | os.PathLike[str],
        *,
        cwd: str | os.PathLike[str] | None = None,
        log_path: str | os.PathLike[str] | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        chunk_delay_s: float = 0.0,
        fail: Mapping[int, Mapping[str, Any]] | None = None,
    ) -> None:
        raw = scenario if isinstance(scenario, Mapping) else load_scenario(scenario)
        self.cwd = str(cwd) if cwd is not None else os.getcwd()
        self.scenario: JSON = substitute_cwd(dict(raw), self.cwd)
        self.log_path = Path(log_path) if log_path is not None else None
        self.host = host
        self.port = port
        self.chunk_delay_s = chunk_delay_s
        self.fail: dict[int, Mapping[str, Any]] = dict(fail or {})
        self.requests: list[JSON] = []
        self._lock = threading.Lock()
        self._seq = 0
        self._messages_seq = 0
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle

    @property
    def base_url(self) -> str:
        if self._server is None:
            raise RuntimeError("FakeAnthropic is not started")
        return f"http://{self.host}:{self._server.server_address[1]}"

    def start(self) -> FakeAnthropic:
        if self._server is not None:
            return self
        server = _Server((self.host, self.port), _Handler)
        server.fake = self
        self._server = server
        self.port = int(server.server_address[1])
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> FakeAnthropic:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- queries

    def messages_requests(self, conversation: str | None = None) -> list[JSON]:
        """Logged ``POST /v1/messages`` requests, optionally of one conversation."""
        with self._lock:
            reqs = [r for r in self.requests if r.get("kind") == "messages"]
        if conversation is not None:
            reqs = [r for r in reqs if r.get("conversation") == conversation]
        return reqs

    # -- request handling

    def _next_seq(self, is_messages: bool) -> tuple[int, int | None]:
        with self._lock:
            self._seq += 1
            if is_messages:
                self._messages_seq += 1
                return self._seq, self._messages_seq
            return self._seq, None

    def _record(self, entry: JSON) -> None:
        with self._lock:
            self.requests.append(entry)
            if self.log_path is not None:
                self.log_path.parent.mkdir(parents=True, exist_ok=True)
                with self.log_path.open("a", encoding="utf-8") as fh:
                    fh.write(json.dumps(entry, ensure_ascii=False) + "\n")

    def _handle(self, h: _Handler) -> None:
        t = time.time()
        path = urlsplit(h.path).path
        raw = h.read_body() if h.command not in ("HEAD", "GET") else b""
        body: Any = None
        if raw:
            try:
                body = json.loads(raw)
            except (ValueError, UnicodeDecodeError):
                body = raw.decode("utf-8", "replace")
        is_messages = h.command == "POST" and path == "/v1/messages"
        seq, mseq = self._next_seq(is_messages)
        headers = {
            k: ("[redacted]" if k.lower() in REDACTED_HEADERS else v) for k, v in h.headers.items()
        }
        entry: JSON = {
            "seq": seq,
            "t": t,
            "method": h.command,
            "path": h.path,
            "headers": headers,
            "body": body,
            "kind": "other",
            "conversation": "other",
            "turn": None,
        }
        recorded = False

        def record() -> None:
            nonlocal recorded
            if not recorded:
                recorded = True
                entry["t_done"] = time.time()
                self._record(entry)

        h.final_hook = record
        try:
            if h.command == "HEAD" and path in ("/", "/api/hello"):
                entry["response"] = {"status": 200}
                h.send_response(200)
                h.send_header("Content-Length", "0")
                h.on_final()
                h.end_headers()
            elif h.command == "POST" and path == "/v1/messages/count_tokens":
                entry["kind"] = "count_tokens"
                src = body if isinstance(body, dict) else {}
                n = estimate_tokens([src.get("system"), src.get("messages"), src.get("tools")])
                entry["response"] = {"status": 200, "input_tokens": n}
                h.send_json(200, {"input_tokens": n})
            elif is_messages:
                entry["kind"] = "messages"
                entry["messages_seq"] = mseq
                self._answer_messages(h, body, entry, mseq or 0)
            else:
                entry["response"] = {"status": 404}
                h.send_json(404, error_body(404, f"Not found: {h.command} {path}"))
        except (BrokenPipeError, ConnectionResetError, ConnectionAbortedError) as exc:
            entry.setdefault("response", {})["client_error"] = type(exc).__name__
            h.close_connection = True
        finally:
            record()
            h.final_hook = None

    def _answer_messages(self, h: _Handler, body: Any, entry: JSON, mseq: int) -> None:
        if not isinstance(body, dict):
            entry["response"] = {"status": 400}
            h.send_json(400, error_body(400, "request body must be a JSON object"))
            return
        answer = choose_answer(self.scenario, body)
        entry["conversation"] = answer.conversation
        entry["turn"] = answer.turn
        entry["fallback"] = answer.fallback
        failure = self.fail.get(mseq)
        if failure and "status" in failure:
            status = int(failure["status"])
            err = error_body(status, failure.get("message"), failure.get("type"))
            entry["response"] = {"status": status, "injected": dict(failure)}
            h.send_json(status, err, failure.get("headers"))
            return
        message = build_message(answer, body)
        summary: JSON = {
            "status": 200,
            "stream": bool(body.get("stream")),
            "id": message["id"],
            "stop_reason": message["stop_reason"],
            "content": message["content"],
        }
        entry["response"] = summary
        if not body.get("stream"):
            h.send_json(200, message)
            return
        h.send_response(200)
        h.send_header("Content-Type", "text/event-stream; charset=utf-8")
        h.send_header("Cache-Control", "no-cache")
        h.send_header("Transfer-Encoding", "chunked")
        h.send_header("request-id", new_request_id())
        h.end_headers()
        h.wfile.flush()
        reset_after = -1
        if failure and failure.get("reset"):
            reset_after = int(failure.get("after_events", 3))
        sse_error = failure.get("sse_error") if failure else None
        for i, (name, data) in enumerate(stream_events(message)):
            if i and self.chunk_delay_s > 0:
                time.sleep(self.chunk_delay_s)
            if i == reset_after:
                summary["injected"] = dict(failure or {})
                h.reset_connection()
                return
            if sse_error and name == "content_block_start":
                err = error_body(529, None, str(sse_error))
                summary["injected"] = dict(failure or {})
                h.write_chunk(encode_event("error", err))
                break
            h.write_chunk(encode_event(name, data))
        h.write_chunk(b"")  # the terminating zero-length chunk


# --------------------------------------------------------------------------- script


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--scenario", required=True, help="scenario.json file")
    parser.add_argument("--cwd", required=True, help="value substituted for {{CWD}}")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--log", default=None, help="append every request to this JSONL file")
    parser.add_argument("--chunk-delay", type=float, default=0.0, help="seconds between events")
    args = parser.parse_args(argv)

    api = FakeAnthropic(
        args.scenario,
        cwd=args.cwd,
        log_path=args.log,
        host=args.host,
        port=args.port,
        chunk_delay_s=args.chunk_delay,
    )
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    with api:
        print(f"ANTHROPIC_BASE_URL={api.base_url}", flush=True)
        while not stop.wait(0.2):
            pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
