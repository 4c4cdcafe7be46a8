"""Attack 4: `bc-train serve` and the A/B page trusted every request: any body size, any
Content-Length, any nesting, any Host (DNS rebinding), any Origin (a web page's
text/plain POST), and anyone who could reach the port could read pairs and vote."""

from __future__ import annotations

import http.client
import re
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from claude_bc.export.abpage import make_server
from claude_bc.export.abtest import ABStore, Pair, render_report, report
from claude_bc.export.serve import Server


class StubModel:
    """What the HTTP layer needs of a model (no weights: these tests are about requests)."""

    name = "stub"

    class llm:  # noqa: N801 - mirrors llama_cpp.Llama
        @staticmethod
        def n_ctx() -> int:
            return 4096

    def tokens(self, prompt: Any) -> list[int]:
        return [1, 2, 3]


@pytest.fixture
def serve_port() -> Iterator[int]:
    server = Server(("127.0.0.1", 0), StubModel())  # type: ignore[arg-type]
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    yield int(server.server_address[1])
    server.shutdown()
    server.server_close()


def raw(port: int, request: bytes, timeout: float = 10) -> tuple[int, bytes]:
    """Send bytes as they are; the status and the whole reply."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(request)
        data = b""
        try:
            while chunk := s.recv(65536):
                data += chunk
                if b"\r\n\r\n" in data and len(data) > 12:
                    head, _, body = data.partition(b"\r\n\r\n")
                    m = re.search(rb"Content-Length: (\d+)", head)
                    if m and len(body) >= int(m.group(1)):
                        break
        except (ConnectionResetError, TimeoutError):
            pass
    return int(data.split(b" ", 2)[1]), data


def count_tokens(port: int, body: bytes, **headers: str) -> tuple[int, bytes]:
    head = {"Host": f"127.0.0.1:{port}", "Content-Type": "application/json", **headers}
    if "Content-Length" not in head:
        head["Content-Length"] = str(len(body))
    lines = "".join(f"{k}: {v}\r\n" for k, v in head.items())
    req = f"POST /v1/messages/count_tokens HTTP/1.1\r\n{lines}\r\n".encode() + body
    return raw(port, req)


GOOD = b'{"model":"m","messages":[{"role":"user","content":"hi"}]}'


def test_serve_answers_a_good_request(serve_port: int) -> None:
    status, data = count_tokens(serve_port, GOOD)
    assert status == 200 and b'"input_tokens": 3' in data


def test_serve_refuses_a_huge_body_without_reading_it(serve_port: int) -> None:
    # 300 MB announced: refused at once (413), before a byte of it is read
    status, data = count_tokens(serve_port, b"", **{"Content-Length": str(300 << 20)})
    assert status == 413 and b"request_too_large" in data


@pytest.mark.parametrize("length", ["abc", "-5", "1e9", "99999999999999999999999", "3, 4"])
def test_serve_refuses_a_bad_content_length(serve_port: int, length: str) -> None:
    status, data = count_tokens(serve_port, GOOD, **{"Content-Length": length})
    assert status in (400, 413) and b"invalid_request_error" in data or b"too_large" in data


@pytest.mark.parametrize("body", [b"[" * 100_000, b'{"a":' * 100_000 + b"1" + b"}" * 100_000])
def test_serve_refuses_deep_json_with_an_api_error(serve_port: int, body: bytes) -> None:
    status, data = count_tokens(serve_port, body)
    assert status == 400 and b"nested" in data


@pytest.mark.parametrize(
    "headers",
    [
        {"Host": "attacker.example"},
        {"Host": "attacker.example:8090"},
        {"Origin": "http://attacker.example"},
        {"Origin": "null"},
        {"Sec-Fetch-Site": "cross-site"},
        {"Content-Type": "text/plain"},  # a simple POST: no CORS preflight protects it
        {"Content-Type": "application/x-www-form-urlencoded"},
    ],
)
def test_serve_refuses_what_a_web_page_can_send(serve_port: int, headers: dict[str, str]) -> None:
    status, _ = count_tokens(serve_port, GOOD, **headers)
    assert status in (400, 403)


# --------------------------------------------------------------------------- the A/B page


@pytest.fixture
def page(tmp_path: Path) -> Iterator[tuple[Any, ABStore]]:
    store = ABStore(tmp_path / "ab.sqlite")
    store.add_pairs(
        Pair(f"s{i}", f"secret prompt {i}", f"claude {i}", f"local {i}", "m.gguf") for i in range(3)
    )
    server = make_server(store)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    yield server, store
    server.shutdown()
    server.server_close()


def get(port: int, path: str, **headers: str) -> http.client.HTTPResponse:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request("GET", path, headers={"Host": f"127.0.0.1:{port}", **headers})
    resp = conn.getresponse()
    resp.read()
    return resp


def rows(store: ABStore, table: str) -> int:
    import sqlite3

    with sqlite3.connect(store.path) as db:
        return int(db.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0])  # noqa: S608


def test_the_page_needs_this_launchs_key(page: tuple[Any, ABStore]) -> None:
    server, store = page
    port = server.server_address[1]
    for path in ("/", "/report", "/?key=wrong"):
        assert get(port, path).status == 403
    assert get(port, "/", Host="attacker.example").status == 403  # DNS rebinding
    entry = get(port, f"/?key={server.secret}")
    assert entry.status == 303 and entry.headers["Location"] == "/"
    cookies = [c.split(";")[0] for c in entry.headers.get_all("Set-Cookie") or []]
    assert any(server.secret in c for c in cookies)
    assert get(port, "/", Cookie="; ".join(cookies)).status == 200
    # page views write nothing
    for _ in range(20):
        get(port, "/", Cookie="; ".join(cookies))
    assert rows(store, "showings") == 0


def _vote(port: int, cookie: str, token: str, origin: str | None = None, ctype: str = "") -> int:
    body = f"token={token}&guess=unsure&qa=3&qb=3"
    headers = {
        "Host": f"127.0.0.1:{port}",
        "Cookie": cookie,
        "Content-Type": ctype or "application/x-www-form-urlencoded",
    }
    if origin:
        headers["Origin"] = origin
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request("POST", "/vote", body=body, headers=headers)
    resp = conn.getresponse()
    resp.read()
    return resp.status


def _token(port: int, cookie: str) -> str:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request("GET", "/", headers={"Host": f"127.0.0.1:{port}", "Cookie": cookie})
    html = conn.getresponse().read().decode()
    match = re.search(r'name=token value="([^"]+)"', html)
    assert match, html
    return match.group(1)


def test_one_vote_per_pair_and_rater_and_none_from_elsewhere(page: tuple[Any, ABStore]) -> None:
    server, store = page
    port = server.server_address[1]
    entry = get(port, f"/?key={server.secret}")
    cookie = "; ".join(c.split(";")[0] for c in entry.headers.get_all("Set-Cookie") or [])
    token = _token(port, cookie)
    assert _vote(port, cookie, token, origin="http://attacker.example") == 403
    assert _vote(port, cookie, token, ctype="text/plain") == 400
    assert _vote(port, f"bc_rater=xxxxxxxxxxxxxxxx; {cookie.split('; ')[0]}", token) == 400
    assert _vote(port, "", token) == 403  # no key: no vote
    assert rows(store, "votes") == 0
    assert _vote(port, cookie, token, origin=f"http://127.0.0.1:{port}") == 303
    assert _vote(port, cookie, token) == 400  # the same showing again
    # a second showing of a pair this rater judged cannot be voted either
    shown = store.next_showing("r2")
    assert shown is not None
    store.vote(shown.token, "A", 3, 3, rater="r2")
    again = store._pending  # noqa: SLF001 - force the same pair to be shown again
    token2 = "forced"
    again[token2] = (shown.pair_id, "A", "r2", "now")
    with pytest.raises(Exception, match="already judged"):
        store.vote(token2, "B", 3, 3, rater="r2")
    assert rows(store, "votes") == 2 and rows(store, "showings") == 2


def test_the_report_says_how_many_raters_voted(page: tuple[Any, ABStore]) -> None:
    _, store = page
    for rater in ("a", "a", "b"):
        shown = store.next_showing(rater)
        assert shown is not None
        store.vote(shown.token, "unsure", 3, 3, rater=rater)
    r = report(store.judgments())
    assert (r.judgments, r.raters) == (3, 2)
    assert "raters: 2" in render_report(r)
