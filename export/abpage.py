"""The A/B test's web page: one pair at a time, answers unlabelled, votes into SQLite.

``GET /`` shows the next pair for this rater (a random ``bc_rater`` cookie tells raters
apart), ``POST /vote`` records the vote and redirects back (so a reload never votes twice),
``GET /report`` shows the tally. The page never carries which answer is Claude's: the side
is kept in memory under a random token, and written with the vote (a page view writes
nothing). Standard library only; loopback by default.

Who may see and vote: each launch makes a key, printed in the page's URL (as Jupyter
does); the first visit trades it for a cookie, and every request needs one or the other.
Requests must name a loopback Host (DNS rebinding) and come from the page itself (Origin),
and a rater votes once per pair.

Run it with ``bc-train abtest serve``.
"""

from __future__ import annotations

import hmac
import html
import re
import secrets
from http.cookies import CookieError, SimpleCookie
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from claude_bc.capture.errors import BCError
from claude_bc.export import httpguard
from claude_bc.export.abtest import ABStore, Showing, render_report, report

COOKIE = "bc_rater"
KEY_COOKIE = "bc_ab_key"
SAFE_RATER = re.compile(r"[A-Za-z0-9_-]{16}")
MAX_FORM = 16 * 1024

STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 70em; color: #222; }
.prompt, .answer { white-space: pre-wrap; border: 1px solid #ccc; border-radius: 6px;
  padding: .8em; background: #fafafa; }
.answers { display: flex; gap: 1.5em; }
.answers > section { flex: 1; min-width: 0; }
fieldset { border: none; padding: 0; margin: .8em 0; }
.muted { color: #777; font-size: .9em; }
"""


def _page(title: str, body: str) -> bytes:
    return (
        "<!doctype html><html lang=en><head><meta charset=utf-8>"
        f"<title>{html.escape(title)}</title><style>{STYLE}</style></head>"
        f"<body>{body}</body></html>"
    ).encode()


def _quality(name: str) -> str:
    radios = "".join(
        f"<label><input type=radio name={name} id={name}-{q} value={q} required> {q}</label> "
        for q in range(1, 6)
    )
    return f"<fieldset><legend>Quality (1 poor – 5 excellent)</legend>{radios}</fieldset>"


def showing_html(s: Showing, judged: int) -> bytes:
    """The page for one showing: the prompt, answers A and B, the vote form."""
    answers = "".join(
        f"<section><h2>Answer {side}</h2><div class=answer id=answer-{side}>"
        f"{html.escape(text)}</div>{_quality('q' + side.lower())}</section>"
        for side, text in (("A", s.answer_a), ("B", s.answer_b))
    )
    guesses = "".join(
        f"<label><input type=radio name=guess id=guess-{v} value={v} required> {label}</label> "
        for v, label in (("A", "A is Claude"), ("B", "B is Claude"), ("unsure", "Can't tell"))
    )
    body = (
        "<h1>Which answer is Claude's?</h1>"
        f"<p class=muted>Judgments so far: <span id=count>{judged}</span></p>"
        f"<h2>Prompt</h2><div class=prompt id=prompt>{html.escape(s.prompt)}</div>"
        f'<form method=post action="/vote"><input type=hidden name=token value="{s.token}">'
        f"<div class=answers>{answers}</div>"
        f"<fieldset><legend>Your guess</legend>{guesses}</fieldset>"
        "<button type=submit id=submit>Vote</button></form>"
    )
    return _page("Blind A/B test", body)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    store: ABStore
    secret: str  # this launch's key: in the printed URL, then in a cookie
    hosts: frozenset[str]

    @property
    def url(self) -> str:
        """The page's address with this launch's key (what to give raters)."""
        return f"http://127.0.0.1:{self.server_address[1]}/?key={self.secret}"


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        pass

    def _send(self, status: int, body: bytes, headers: list[tuple[str, str]] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        # the key is in no page's URL (the first visit redirects), and Origin stays real
        self.send_header("Referrer-Policy", "same-origin")
        self.send_header("X-Frame-Options", "DENY")
        self.send_header(
            "Content-Security-Policy",
            "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; "
            "frame-ancestors 'none'",
        )
        for k, v in headers or []:
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _refuse(self, exc: httpguard.Refused) -> None:
        self.close_connection = True
        body = f"<p id=error>{html.escape(exc.message)}</p>"
        self._send(exc.status, _page("Refused", body))

    def _cookies(self) -> SimpleCookie:
        try:
            return SimpleCookie(self.headers.get("Cookie", ""))
        except CookieError:
            return SimpleCookie()

    def _cookie_name(self) -> str:
        return f"{KEY_COOKIE}_{self.server.server_address[1]}"

    def _admit(self) -> tuple[str, list[tuple[str, str]]] | None:
        """Host and Origin checks, then this launch's key (``?key=`` once, then a cookie);
        the rater's id and cookies to set, or None when refused (already answered)."""
        try:
            httpguard.check_host(self, self.server.hosts)
            httpguard.check_origin(self, self.server.hosts)
        except httpguard.Refused as exc:
            self._refuse(exc)
            return None
        jar = self._cookies()
        name = self._cookie_name()
        held = jar[name].value if name in jar else ""
        given = parse_qs(urlsplit(self.path).query).get("key", [""])[0]
        secret = self.server.secret
        headers: list[tuple[str, str]] = []
        if given and hmac.compare_digest(given.encode(), secret.encode()):
            headers.append(("Set-Cookie", f"{name}={secret}; Path=/; HttpOnly; SameSite=Strict"))
        elif not (held and hmac.compare_digest(held.encode(), secret.encode())):
            self._refuse(
                httpguard.Refused(
                    403,
                    "This page needs the link that `bc-train abtest serve` printed "
                    "(it holds this launch's key).",
                )
            )
            return None
        rater = jar[COOKIE].value if COOKIE in jar else ""
        if not SAFE_RATER.fullmatch(rater):
            rater = secrets.token_urlsafe(12)
            cookie = f"{COOKIE}={rater}; Path=/; Max-Age=31536000; HttpOnly; SameSite=Strict"
            headers.append(("Set-Cookie", cookie))
        return rater, headers

    def do_HEAD(self) -> None:  # noqa: N802 - stdlib name
        self.do_GET()

    def do_GET(self) -> None:  # noqa: N802 - stdlib name
        admitted = self._admit()
        if admitted is None:
            return
        rater, headers = admitted
        parts = urlsplit(self.path)
        if parts.query:  # the key came in the URL: drop it from the address bar
            self._send(303, b"", [*headers, ("Location", parts.path or "/")])
            return
        store = self.server.store
        if parts.path == "/report":
            text = render_report(report(store.judgments()))
            body = _page("A/B report", f"<pre id=report>{html.escape(text)}</pre>")
            self._send(200, body, headers)
            return
        if parts.path != "/":
            self._send(404, _page("Not found", "<p>Not found.</p>"), headers)
            return
        showing = store.next_showing(rater)  # nothing is written until a vote
        judged = len(store.judgments())
        if showing is None:
            done = (
                "<h1>Thank you</h1><p id=done>You have judged every pair.</p>"
                f"<p class=muted>Judgments so far: <span id=count>{judged}</span></p>"
            )
            self._send(200, _page("Blind A/B test", done), headers)
            return
        self._send(200, showing_html(showing, judged), headers)

    def do_POST(self) -> None:  # noqa: N802
        admitted = self._admit()
        if admitted is None:
            return
        rater, headers = admitted
        if urlsplit(self.path).path != "/vote":
            self._send(404, _page("Not found", "<p>Not found.</p>"))
            return
        try:
            ctype = (self.headers.get("Content-Type") or "").split(";")[0].strip().lower()
            if ctype != "application/x-www-form-urlencoded":
                raise httpguard.Refused(400, "a vote is sent by the page's form")
            raw = httpguard.read_body(self, MAX_FORM)
        except httpguard.Refused as exc:
            self._refuse(exc)
            return
        form = {k: v[0] for k, v in parse_qs(raw.decode("utf-8", "replace")).items()}
        try:
            self.server.store.vote(
                form.get("token", ""),
                form.get("guess", ""),
                _int(form.get("qa")),
                _int(form.get("qb")),
                rater=rater,
            )
        except BCError as exc:
            body = f"<p id=error>{html.escape(str(exc))}</p><p><a href='/'>Next pair</a></p>"
            self._send(400, _page("Vote not recorded", body), headers)
            return
        # Post/redirect/get: reloading the page that follows never sends the vote again.
        self._send(303, b"", [*headers, ("Location", "/")])


def _int(value: str | None) -> int:
    try:
        return int(value or "")
    except ValueError as exc:
        raise BCError(f"a quality rating is a number from 1 to 5, not {value!r}") from exc


def make_server(
    store: ABStore, host: str = "127.0.0.1", port: int = 0, secret: str | None = None
) -> _Server:
    """A server for the page (not started: call ``serve_forever``); its ``url`` holds a
    fresh key for this launch (or ``secret``)."""
    server = _Server((host, port), _Handler)
    server.store = store
    server.secret = secret or secrets.token_urlsafe(24)
    server.hosts = httpguard.allowed_hosts(server.server_address[1])
    return server
