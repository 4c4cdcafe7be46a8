"""Gradual rollout: which Claude Code sessions the proxy sends to the local model.

A session's place in [0, 100) comes from a hash of its id, so the choice is the same for
every request of a session (sticky), the same after a restart, and needs no state. A
session goes local when its place is below the rollout percent: raising the percent
(5 → 20 → 50 → 80) keeps every session that was already local, local. The kill switch is a
file: while ``$BC_HOME/rollout-off`` exists, every request goes to Anthropic again, from
the next request on, without restarting anything.

Standard library only: the mitmproxy addon (``proxy/addon.py``) imports it inside
mitmdump's own virtualenv.
"""

from __future__ import annotations

import hashlib
import ipaddress
import os
from urllib.parse import urlsplit

KILL_FILE = "rollout-off"
CREDENTIAL_HEADERS = frozenset(
    {"x-api-key", "authorization", "proxy-authorization", "cookie", "anthropic-admin-api-key"}
)
CREDENTIAL_PARTS = ("auth", "cookie", "token", "secret", "api-key", "apikey", "password", "key")
LOCAL = "local"
ANTHROPIC = "anthropic"


def place(session: str, salt: str = "") -> float:
    """The session's fixed place in [0, 100): the first 8 bytes of sha256(salt:session).

    >>> round(place("fc2fb996-3bc1-43d5-8559-d8f23dc29903"), 3)
    66.82
    """
    digest = hashlib.sha256(f"{salt}:{session}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 * 100


def route(session: str | None, percent: float, *, killed: bool = False, salt: str = "") -> str:
    """``"local"`` or ``"anthropic"`` for a request of ``session``. No session id, a
    percent of 0 or the kill switch all mean Anthropic.

    >>> [route("s1", 100.0), route("s1", 0.0), route("s1", 100.0, killed=True), route(None, 50)]
    ['local', 'anthropic', 'anthropic', 'anthropic']
    """
    if killed or not session or percent <= 0:
        return ANTHROPIC
    return LOCAL if place(session, salt) < percent else ANTHROPIC


def kill_file(data_dir: str) -> str:
    return os.path.join(data_dir, KILL_FILE)


def is_killed(data_dir: str) -> bool:
    """Whether the kill switch is on (one ``stat`` per request)."""
    return os.path.exists(kill_file(data_dir))


LOOPBACK_NAMES = frozenset({"localhost", "localhost.", "ip6-localhost"})


def is_loopback(host: str) -> bool:
    """Whether ``host`` names this machine only (127.0.0.0/8, ::1, localhost).

    >>> [is_loopback(h) for h in ("127.0.0.1", "::1", "localhost", "10.0.0.5", "example.com")]
    [True, True, True, False, False]
    """
    if host.lower() in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def local_target(url: str, allow_remote: bool = False) -> tuple[str, str, int]:
    """``(scheme, host, port)`` of the local endpoint's base URL.

    The requests sent there carry the user's prompts and code, so a host other than this
    machine's loopback is refused unless ``allow_remote`` (an explicit option) is given,
    and then only over https.

    >>> local_target("http://127.0.0.1:8090")
    ('http', '127.0.0.1', 8090)
    >>> local_target("https://gpu.lan:8443", allow_remote=True)
    ('https', 'gpu.lan', 8443)
    """
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"not an http(s) base URL: {url!r}")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise ValueError(f"the local endpoint's URL takes no path: {url!r}")
    if parts.username is not None or parts.password is not None:
        raise ValueError(f"the local endpoint's URL takes no user or password: {url!r}")
    if not is_loopback(parts.hostname):
        if not allow_remote:
            raise ValueError(
                f"{parts.hostname} is not this machine (127.0.0.1, ::1, localhost): a "
                "model elsewhere needs https and the explicit option to allow it"
            )
        if parts.scheme != "https":
            raise ValueError(f"a local endpoint on another host needs https: {url!r}")
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return parts.scheme, parts.hostname, port


def is_credential_header(name: str) -> bool:
    """Headers that carry the user's Anthropic credentials (or any credential): never sent
    to the local model.

    >>> [is_credential_header(h) for h in ("x-api-key", "Authorization", "anthropic-beta")]
    [True, True, False]
    """
    low = name.lower()
    return low in CREDENTIAL_HEADERS or any(part in low for part in CREDENTIAL_PARTS)
