"""What every local HTTP endpoint of claude-bc checks before it reads a request.

``bc-train serve`` (the Anthropic-compatible model endpoint) and ``bc-train abtest serve``
(the rating page) listen on loopback, where any web page the user opens can reach them too:

* **Host allow-list**: only ``localhost``, ``127.0.0.1`` and ``[::1]`` (with the server's
  port, or none) plus names the user allowed; a DNS-rebinding page sends its own name.
* **Origin check**: a browser request from another origin (a ``fetch`` or a ``text/plain``
  form POST, which needs no preflight) carries ``Origin`` or ``Sec-Fetch-Site`` and is
  refused unless it is this server's own origin.
* **Bodies**: ``Content-Length`` must be a plain number no larger than the server's cap
  (else 400, or 413 when too large); no chunked bodies; JSON nested deeper than
  :data:`MAX_DEPTH` is refused, and no parser error escapes as a traceback.

Standard library only.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from http.server import BaseHTTPRequestHandler
from typing import Any

from claude_bc.capture import safejson

LOCAL_NAMES = ("localhost", "127.0.0.1", "[::1]")
MAX_DEPTH = 64
_DIGITS = re.compile(r"[0-9]{1,15}")


class Refused(Exception):
    """A request refused before its body was used: status and a one-line reason."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def allowed_hosts(port: int, extra: Iterable[str] = ()) -> frozenset[str]:
    """The ``Host`` header values accepted by a server on ``port``.

    >>> sorted(allowed_hosts(8090))[:3]
    ['127.0.0.1', '127.0.0.1:8090', '[::1]']
    """
    names = [*LOCAL_NAMES, *(e.lower() for e in extra)]
    return frozenset(n for name in names for n in (name, f"{name}:{port}"))


def check_host(handler: BaseHTTPRequestHandler, allowed: frozenset[str]) -> None:
    host = (handler.headers.get("Host") or "").strip().lower()
    if host not in allowed:
        raise Refused(403, f"Host {host[:100]!r} is not allowed (this server answers on loopback)")


def check_origin(handler: BaseHTTPRequestHandler, allowed: frozenset[str]) -> None:
    """Refuse a browser request made by a page of another origin."""
    origin = handler.headers.get("Origin")
    if origin is not None:
        scheme, _, rest = origin.strip().lower().partition("://")
        if scheme != "http" or rest not in allowed:
            raise Refused(403, f"cross-origin request from {origin[:100]!r} refused")
    site = (handler.headers.get("Sec-Fetch-Site") or "").lower()
    if site and site not in ("same-origin", "none"):
        raise Refused(403, f"cross-site request ({site}) refused")


def read_body(handler: BaseHTTPRequestHandler, limit: int) -> bytes:
    """The request body, read only when its ``Content-Length`` is a number ``<= limit``."""
    if handler.headers.get("Transfer-Encoding"):
        raise Refused(411, "a chunked body is not accepted: send Content-Length")
    values = handler.headers.get_all("Content-Length") or []
    if not values:
        return b""
    if len(set(values)) != 1 or not _DIGITS.fullmatch(values[0].strip()):
        raise Refused(400, "Content-Length must be one decimal number")
    length = int(values[0])
    if length > limit:
        raise Refused(413, f"request body too large: {length} bytes > {limit} maximum")
    data = handler.rfile.read(length) if length else b""
    if len(data) != length:
        raise Refused(400, "request body shorter than its Content-Length")
    return data


def parse_json(raw: bytes, max_depth: int = MAX_DEPTH) -> Any:
    """``raw`` as JSON; a :class:`Refused` 400 for anything else: bad UTF-8, bad JSON,
    nesting deeper than ``max_depth`` (the parser's own recursion limit included)."""
    try:
        return safejson.loads(raw, max_depth)
    except ValueError as exc:
        raise Refused(400, f"the request body is not valid JSON: {exc}"[:200]) from None
