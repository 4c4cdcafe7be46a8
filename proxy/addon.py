"""mitmproxy addon: record Claude Code's Messages API exchanges into the claude-bc spool.

Run it with ``bc-capture proxy`` (which starts ``mitmdump -s proxy/addon.py``), or by hand::

    mitmdump --mode reverse:https://api.anthropic.com --listen-host 127.0.0.1 \\
        --listen-port 8082 -s proxy/addon.py

It runs inside mitmproxy's own virtualenv (11.x or 12.x), so it is standard library only
and imports nothing from claude-bc. Rules:

* Nothing is ever modified. Responses of ``POST …/v1/messages`` are streamed through
  chunk by chunk (``flow.response.stream``), and a tap keeps a copy of the chunks;
  everything else is streamed through untouched and not recorded.
* Each exchange becomes one line of ``$BC_HOME/spool/api/<session>.jsonl`` (0600 in 0700
  folders, appended under ``flock``): request body, raw response (the SSE text), status,
  timings, and the failure if there was one (HTTP error, reset, client abort, timeout).
  ``x-api-key``, ``authorization``, cookies and tokens are never written.
* The hooks run on mitmproxy's event loop and must not slow a flow: they only take
  references; a writer thread builds, scrubs and appends the records.
* An exception in the addon never reaches a flow: every hook is guarded and errors go
  to ``$BC_HOME/errors.log`` (shown by ``bc-capture status``).
* When a conversation request ends with ``stop_reason: end_turn`` and the ``bc_python``
  option names claude-bc's interpreter, ``python -I -m claude_bc.capture.api <session>`` is started
  detached to assemble the session's traces (re-running it is a no-op).
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import functools
import json
import os
import queue
import re
import stat
import subprocess
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

try:  # claude-bc's own virtualenv (tests, mypy)
    from claude_bc.proxy import rollout
except ImportError:  # inside mitmdump, whose script loader puts this folder on sys.path
    import rollout  # type: ignore[import-not-found,no-redef]

if TYPE_CHECKING:
    from mitmproxy import http
    from mitmproxy.addonmanager import Loader

SPOOL_VERSION = 1
META_KEY = "claude_bc"  # our per-flow state in flow.metadata
MAX_COPY = 64 << 20  # stop copying a response beyond this (it still streams through)
LOCK_DEADLINE_S = 3.0
# never through a planted link
PRIVATE_APPEND = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC

# Header names never written: exact names, and any name containing one of the parts.
SECRET_HEADERS = frozenset({"x-api-key", "authorization", "proxy-authorization", "cookie"})
SECRET_HEADER_PARTS = ("auth", "cookie", "token", "secret", "api-key", "apikey", "password")

# Anthropic API keys and OAuth tokens (sk-ant-api03-…, sk-ant-oat01-…, sk-ant-ort01-…).
ANTHROPIC_KEY = re.compile(rb"sk-ant-[A-Za-z0-9_\-]{8,}")
# JSON string values of credential-named fields.
CREDENTIAL_FIELD = re.compile(
    rb'("(?:access_token|refresh_token|id_token|oauth_token|api_key|apiKey|x-api-key|'
    rb'authorization|client_secret|session_key|sessionKey|password)"\s*:\s*")'
    rb'(?:[^"\\]|\\.)*(")'
)
SESSION_IN_BODY = re.compile(rb'session_id\\?"\s*:\s*\\?"([A-Za-z0-9_][A-Za-z0-9_\-]{0,127})\\?"')
END_TURN = re.compile(rb'"stop_reason"\s*:\s*"end_turn"')
SAFE_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_\-]{0,127}")  # capture.paths.SAFE_ID

F = TypeVar("F", bound=Callable[..., Any])


# --- where things go --------------------------------------------------------------------
# The same rules as hooks/spooler.py, which the package takes them from. This addon runs
# in mitmproxy's environment and imports nothing of ours, so it keeps a copy;
# tests/proxy/test_addon.py holds the two equal.


def data_dir() -> str:
    home = os.environ.get("BC_HOME")
    if home:
        return os.path.expanduser(home)
    xdg = os.environ.get("XDG_DATA_HOME")
    base = os.path.expanduser(xdg) if xdg else os.path.expanduser("~/.local/share")
    return os.path.join(base, "claude-bc")


def ensure_dir(path: str) -> str:
    os.makedirs(path, mode=0o700, exist_ok=True)
    if os.stat(path).st_mode & 0o077:
        os.chmod(path, 0o700)
    return path


def log_error(session: str, message: str) -> None:
    """One line in the side error log (hooks/spooler.py's format), or in the per-user one
    in ``$TMPDIR`` when the data folder cannot be written; never raises."""
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    line = f"{stamp}\tproxy\t{session or '-'}\t{' '.join(message.split())[:500]}\n"
    home, tmp = data_dir(), os.environ.get("TMPDIR") or "/tmp"
    with contextlib.suppress(OSError):
        ensure_dir(home)
    for path in (
        os.path.join(home, "errors.log"),
        os.path.join(tmp, f"claude-bc-{os.getuid()}-errors.log"),
    ):
        try:
            fd = os.open(path, PRIVATE_APPEND, 0o600)
        except OSError:
            continue
        try:
            st = os.fstat(fd)  # never into a file someone else owns (a shared $TMPDIR)
            if st.st_uid == os.geteuid() and stat.S_ISREG(st.st_mode):
                os.write(fd, line.encode("utf-8", "replace"))
                return
        except OSError:
            continue
        finally:
            os.close(fd)


def append_locked(path: str, data: bytes) -> None:
    """Append whole lines under an exclusive lock (the hooks' spool discipline)."""
    ensure_dir(os.path.dirname(os.path.dirname(path)))
    ensure_dir(os.path.dirname(path))
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        deadline = time.monotonic() + LOCK_DEADLINE_S
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    break  # an O_APPEND write still lands whole: record rather than drop
                time.sleep(0.002)
        start = os.lseek(fd, 0, os.SEEK_END)
        view = memoryview(data)
        try:
            while view:
                view = view[os.write(fd, view) :]
        except OSError:
            os.ftruncate(fd, start)  # never leave a torn line behind (disk full)
            raise
    finally:
        os.close(fd)


# --- scrubbing ---------------------------------------------------------------------------


def is_secret_header(name: str) -> bool:
    low = name.lower()
    return low in SECRET_HEADERS or any(part in low for part in SECRET_HEADER_PARTS)


Pairs = list[tuple[str, str]]


def safe_headers(pairs: Pairs) -> dict[str, str]:
    """Headers without credentials (a repeated header keeps its last value)."""
    return {k: v for k, v in pairs if not is_secret_header(k)}


def header_secrets(pairs: Pairs) -> list[bytes]:
    """The credential values a request carried, to be scrubbed wherever they reappear."""
    out: list[bytes] = []
    for name, value in pairs:
        words = value.split()
        if is_secret_header(name) and words and len(words[-1]) >= 8:
            out.append(words[-1].encode("utf-8", "replace"))
    return out


def scrub(data: bytes, secrets: list[bytes]) -> bytes:
    """Remove credentials from a body; replacements keep JSON and SSE structure intact."""
    for secret in secrets:
        data = data.replace(secret, b"[REDACTED:credential]")
    data = ANTHROPIC_KEY.sub(b"[REDACTED:anthropic-key]", data)
    return CREDENTIAL_FIELD.sub(rb"\1[REDACTED:credential]\2", data)


def header(pairs: Pairs, name: str) -> str:
    return next((v for k, v in reversed(pairs) if k.lower() == name), "")


def session_of(pairs: Pairs, body: bytes) -> str:
    """``X-Claude-Code-Session-Id``, else ``metadata.user_id``'s session_id, else "unknown"."""
    sid = header(pairs, "x-claude-code-session-id")
    if SAFE_NAME.fullmatch(sid):
        return sid
    match = SESSION_IN_BODY.search(body)
    return match.group(1).decode() if match else "unknown"


def decode_body(raw: bytes, encoding: str) -> tuple[str, str | None]:
    """Body text, undoing a content-encoding; undecodable bytes are kept as base64."""
    if encoding and encoding.lower() != "identity":
        try:
            from mitmproxy.net import encoding as codecs  # only inside mitmproxy

            raw = codecs.decode(raw, encoding)
        except Exception:  # noqa: BLE001 - keep what we have, marked as such
            return base64.b64encode(raw).decode(), f"base64+{encoding}"
    try:
        return raw.decode("utf-8"), None
    except UnicodeDecodeError:
        return base64.b64encode(raw).decode(), "base64"


# --- the record --------------------------------------------------------------------------


def request_json(body: bytes) -> tuple[Any, bytes]:
    """The parsed request body, and the bytes that stand for it in the spool line: the body
    itself when it is one line of UTF-8 JSON (a large body is not encoded again), else
    its JSON encoding."""
    try:
        parsed = json.loads(body.decode("utf-8"))
    except (ValueError, RecursionError):  # not JSON, or nested too deep: kept as text
        text = body.decode("utf-8", "replace")
        return text, json.dumps(text, ensure_ascii=False).encode()
    if b"\n" in body or b"\r" in body:
        return parsed, json.dumps(parsed, ensure_ascii=False, separators=(",", ":")).encode()
    return parsed, body


def build_record(snap: dict[str, Any]) -> tuple[str, dict[str, Any], bytes]:
    """(session, the spool record less its request, the request's JSON bytes) of one
    exchange; runs on the writer thread."""
    secrets = header_secrets(snap["request_headers"]) + list(snap.get("secrets") or [])
    body = scrub(snap["request_body"], secrets)
    session = session_of(snap["request_headers"], body)
    rec: dict[str, Any] = {
        "v": SPOOL_VERSION,
        "t": snap["t_request"],
        "session": session,
        "method": snap["method"],
        "url": snap["url"],
        "request_headers": safe_headers(snap["request_headers"]),
        "status": snap["status"],
        "response_headers": None,
        "response": None,
        "complete": snap["complete"],
        "error": snap["error"],
        "timing": snap["timing"],
        "served_by": snap.get("served_by", rollout.ANTHROPIC),  # the rollout's choice
    }
    if snap["response_headers"] is not None:
        rec["response_headers"] = safe_headers(snap["response_headers"])
        raw = scrub(b"".join(snap["chunks"]), secrets)
        text, form = decode_body(raw, header(snap["response_headers"], "content-encoding"))
        rec["response"] = text
        if form:
            rec["response_form"] = form
        if snap["truncated"]:
            rec["response_truncated"] = True
    rec["ok"] = bool(
        snap["complete"] and not snap["error"] and snap["status"] and snap["status"] < 400
    )
    return session, rec, body


def encode_line(rec: dict[str, Any], request: bytes) -> bytes:
    """One JSONL line: the record with ``"request"`` spliced in as raw JSON."""
    head = json.dumps(rec, ensure_ascii=False, separators=(",", ":"))
    return head.encode("utf-8", "surrogatepass")[:-1] + b',"request":' + request + b"}\n"


def wants_assembly(rec: dict[str, Any], request: Any) -> bool:
    """A conversation request (tools, no structured output) that ended its turn."""
    if not rec.get("ok") or not isinstance(request, dict) or not request.get("tools"):
        return False
    output_config = request.get("output_config")
    if isinstance(output_config, dict) and output_config.get("format"):
        return False
    return bool(END_TURN.search(str(rec.get("response") or "").encode()))


# --- the addon ---------------------------------------------------------------------------


def guarded(method: F) -> F:
    """Run a hook so that no exception of ours can reach mitmproxy or the flow."""

    @functools.wraps(method)
    def run(*args: Any, **kwargs: Any) -> Any:
        try:
            return method(*args, **kwargs)
        except Exception as exc:  # noqa: BLE001 - the flow must go on whatever we did wrong
            log_error("-", f"{method.__name__}: {type(exc).__name__}: {exc}")
            return None

    return run  # type: ignore[return-value]


class Tap:
    """The response stream function: forwards every chunk as is and keeps a copy."""

    __slots__ = ("chunks", "size", "first", "ended", "truncated")

    def __init__(self) -> None:
        self.chunks: list[bytes] = []
        self.size = 0
        self.first: float | None = None
        self.ended: float | None = None
        self.truncated = False

    def __call__(self, data: bytes) -> bytes:
        try:
            if data:
                if self.first is None:
                    self.first = time.time()
                if self.size + len(data) <= MAX_COPY:
                    self.chunks.append(data)
                    self.size += len(data)
                else:
                    self.truncated = True
            else:
                self.ended = time.time()
        except Exception:  # noqa: BLE001, S110 - forwarding must never fail
            pass
        return data


def is_messages_call(flow: http.HTTPFlow) -> bool:
    path: str = flow.request.path.split("?", 1)[0]
    return flow.request.method == "POST" and path.endswith("/v1/messages")


SERVED_BY_KEY = "claude_bc_served_by"


SECRETS_KEY = "claude_bc_secrets"  # credentials taken off a request, to scrub the record


def route(flow: http.HTTPFlow, percent: float, local: str, allow_remote: bool = False) -> None:
    """Rollout: send the request to the local model when its session is in the share
    (sticky per session, see proxy/rollout.py). The destination changes, and the user's
    Anthropic credentials (``x-api-key``, ``authorization``, any auth/token header) are
    taken off the request: the local model never sees them."""
    req = flow.request
    pairs = list(req.headers.items(multi=True))
    session = session_of(pairs, req.get_content(strict=False) or b"")
    killed = rollout.is_killed(data_dir())
    known = None if session == "unknown" else session
    if rollout.route(known, percent, killed=killed) == rollout.LOCAL:
        target = rollout.local_target(local, allow_remote)  # raises: stays with Anthropic
        flow.metadata[SECRETS_KEY] = header_secrets(pairs)
        for name in {k for k, _ in pairs if rollout.is_credential_header(k)}:
            del req.headers[name]
        req.scheme, req.host, req.port = target
        flow.metadata[SERVED_BY_KEY] = rollout.LOCAL


class Recorder:
    def __init__(self) -> None:
        self.queue: queue.SimpleQueue[dict[str, Any] | None] = queue.SimpleQueue()
        self.writer: threading.Thread | None = None
        self.workers: dict[str, subprocess.Popen[bytes]] = {}  # session -> its assembler
        self.pending: set[str] = set()  # sessions whose turn ended since their last assembly
        self.bc_python = ""
        self.rollout = 0.0
        self.local = ""
        self.allow_remote = False

    # -- mitmproxy hooks

    def load(self, loader: Loader) -> None:
        loader.add_option(
            "bc_python", str, "", "claude-bc's Python: assemble a session when its turn ends"
        )
        loader.add_option("bc_rollout", str, "0", "percent of sessions sent to bc_local")
        loader.add_option("bc_local", str, "", "the local model's endpoint (bc-train serve)")
        loader.add_option(
            "bc_local_remote", bool, False, "allow a bc_local on another host (https only)"
        )

    @guarded
    def configure(self, updated: set[str]) -> None:
        from mitmproxy import ctx

        self.bc_python = str(ctx.options.bc_python or "")
        self.rollout = float(ctx.options.bc_rollout or 0)
        self.allow_remote = bool(ctx.options.bc_local_remote)
        self.local = ""
        local = str(ctx.options.bc_local or "")
        if local:
            try:
                rollout.local_target(local, self.allow_remote)
                self.local = local
            except ValueError as exc:  # never route there: every session stays with Anthropic
                log_error("-", f"bc_local refused: {exc}")

    @guarded
    def request(self, flow: http.HTTPFlow) -> None:
        if self.rollout > 0 and self.local and is_messages_call(flow):
            route(flow, self.rollout, self.local, self.allow_remote)

    @guarded
    def responseheaders(self, flow: http.HTTPFlow) -> None:
        if is_messages_call(flow):
            tap = Tap()
            flow.metadata[META_KEY] = {"tap": tap}
            flow.response.stream = tap
        else:
            flow.response.stream = True  # not ours: pass it through as it comes

    @guarded
    def response(self, flow: http.HTTPFlow) -> None:
        self.record(flow, None)

    @guarded
    def error(self, flow: http.HTTPFlow) -> None:
        # also before any response headers (upstream unreachable, client gone early)
        if is_messages_call(flow):
            flow.metadata.setdefault(META_KEY, {"tap": None})
            self.record(flow, flow.error.msg if flow.error else "error")

    @guarded
    def done(self) -> None:
        if self.writer is not None:
            self.queue.put(None)
            self.writer.join(timeout=10)

    # -- recording

    def record(self, flow: http.HTTPFlow, error: str | None) -> None:
        """Take references to what the flow holds and hand them to the writer thread."""
        state = flow.metadata.get(META_KEY)
        if state is None or state.get("recorded"):
            return
        state["recorded"] = True
        tap: Tap | None = state.get("tap")
        resp = flow.response
        req = flow.request
        self.queue.put(
            {
                "t_request": req.timestamp_start,
                "method": req.method,
                "url": req.url.split("?", 1)[0],
                "request_headers": list(req.headers.items(multi=True)),
                "secrets": flow.metadata.get(SECRETS_KEY, []),
                "request_body": req.get_content(strict=False) or b"",
                "status": resp.status_code if resp else None,
                "response_headers": list(resp.headers.items(multi=True)) if resp else None,
                "chunks": tap.chunks if tap else ([resp.raw_content or b""] if resp else []),
                "truncated": bool(tap and tap.truncated),
                "complete": error is None and resp is not None,
                "error": error,
                "served_by": flow.metadata.get(SERVED_BY_KEY, rollout.ANTHROPIC),
                "timing": {
                    "request_end": req.timestamp_end,
                    "response_headers": resp.timestamp_start if resp else None,
                    "first_byte": tap.first if tap else None,
                    "end": (resp.timestamp_end if resp else None) or time.time(),
                },
            }
        )
        if self.writer is None:
            self.writer = threading.Thread(target=self.write_loop, name="claude-bc", daemon=True)
            self.writer.start()

    def write_loop(self) -> None:
        while True:
            try:
                snap = self.queue.get(timeout=0.5)
            except queue.Empty:
                snap = {}
            if snap is None:
                self.start_pending()
                return
            if snap:
                self.write(snap)
            self.start_pending()

    def write(self, snap: dict[str, Any]) -> None:
        session = "-"
        try:
            session, rec, body = build_record(snap)
            request, request_bytes = request_json(body)
            path = os.path.join(data_dir(), "spool", "api", f"{session}.jsonl")
            append_locked(path, encode_line(rec, request_bytes))
            if self.bc_python and session != "unknown" and wants_assembly(rec, request):
                self.pending.add(session)
        except Exception as exc:  # noqa: BLE001 - lose a record, never the proxy
            log_error(session, f"recording failed: {type(exc).__name__}: {exc}")

    def start_pending(self) -> None:
        """Start the assembler of each session whose turn ended, detached; at most one per
        session at a time (a turn that ends meanwhile starts the next one when it exits)."""
        for session in list(self.pending):
            worker = self.workers.get(session)
            if worker is not None and worker.poll() is None:
                continue
            self.pending.discard(session)
            try:
                self.workers[session] = subprocess.Popen(
                    [self.bc_python, "-I", "-m", "claude_bc.capture.api", session],
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                    start_new_session=True,
                    env={**os.environ, "BC_HOME": data_dir()},
                )
            except OSError as exc:
                log_error(session, f"cannot start the assembler: {exc}")


addons = [Recorder()]
