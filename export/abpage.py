"""The A/B test's web page: one pair at a time, answers unlabelled, votes into SQLite.

``GET /`` shows the next pair for this rater (a random ``bc_rater`` cookie tells raters
apart), ``POST /vote`` records the vote and redirects back (so a reload never votes twice),
``GET /report`` shows the tally. The page never carries which answer is Claude's: the side
is kept in the store under a random token. Standard library only; loopback by default.

Run it with ``bc-train abtest serve``.
"""

from __future__ import annotations

import html
import secrets
from http.cookies import SimpleCookie
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from capture.errors import BCError
from export.abtest import ABStore, Showing, render_report, report

COOKIE = "bc_rater"

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


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        pass

    def _send(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def _rater(self) -> tuple[str, dict[str, str]]:
        cookie = SimpleCookie(self.headers.get("Cookie", ""))
        if COOKIE in cookie and cookie[COOKIE].value:
            return cookie[COOKIE].value, {}
        rater = secrets.token_urlsafe(12)
        return rater, {"Set-Cookie": f"{COOKIE}={rater}; Path=/; Max-Age=31536000; SameSite=Lax"}

    def do_GET(self) -> None:  # noqa: N802 - stdlib name
        path = urlsplit(self.path).path
        store = self.server.store
        if path == "/report":
            text = render_report(report(store.judgments()))
            self._send(200, _page("A/B report", f"<pre id=report>{html.escape(text)}</pre>"))
            return
        if path != "/":
            self._send(404, _page("Not found", "<p>Not found.</p>"))
            return
        rater, headers = self._rater()
        showing = store.next_showing(rater)
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
        if urlsplit(self.path).path != "/vote":
            self._send(404, _page("Not found", "<p>Not found.</p>"))
            return
        length = min(int(self.headers.get("Content-Length") or 0), 64 * 1024)
        form = {k: v[0] for k, v in parse_qs(self.rfile.read(length).decode()).items()}
        try:
            self.server.store.vote(
                form.get("token", ""),
                form.get("guess", ""),
                _int(form.get("qa")),
                _int(form.get("qb")),
            )
        except BCError as exc:
            body = f"<p id=error>{html.escape(str(exc))}</p><p><a href='/'>Next pair</a></p>"
            self._send(400, _page("Vote not recorded", body))
            return
        # Post/redirect/get: reloading the page that follows never sends the vote again.
        self._send(303, b"", {"Location": "/"})


def _int(value: str | None) -> int:
    try:
        return int(value or "")
    except ValueError as exc:
        raise BCError(f"a quality rating is a number from 1 to 5, not {value!r}") from exc


def make_server(store: ABStore, host: str = "127.0.0.1", port: int = 0) -> ThreadingHTTPServer:
    """A server for the page (not started: call ``serve_forever``)."""
    server = _Server((host, port), _Handler)
    server.store = store
    return server
