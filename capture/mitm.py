"""``bc-capture proxy``: start mitmdump with the recording addon, loopback only.

mitmproxy lives in its own virtualenv (``.venv-mitm/``, made by ``scripts/setup``):
the newest mitmproxy for Python 3.11 pins an ``h11`` that conflicts with this package's
dependencies. The addon (``proxy/addon.py``) is standard library only, so it runs there.

Two ways to put it in front of Claude Code:

* reverse (default): Claude Code talks plain HTTP to the proxy
  (``ANTHROPIC_BASE_URL``), which forwards to the upstream API over HTTPS. No CA needed.
* regular: an HTTPS proxy (``HTTPS_PROXY``); Claude Code must trust mitmproxy's CA
  (``NODE_EXTRA_CA_CERTS``). Only the upstream host is intercepted; every other host is
  tunnelled through untouched, not even decrypted.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from claude_bc import proxy
from claude_bc.capture import paths
from claude_bc.capture.errors import BCError

Mode = Literal["reverse", "regular"]
REPO = Path(__file__).resolve().parents[1]
DEFAULT_UPSTREAM = "https://api.anthropic.com"
DEFAULT_PORT = 8082
LOOPBACK = "127.0.0.1"


def _executable(path: Path) -> bool:
    return path.is_file() and os.access(path, os.X_OK)


def find_mitmdump() -> Path:
    """``$BC_MITMDUMP``, else the project's ``.venv-mitm``, else ``mitmdump`` on PATH."""
    env = os.environ.get("BC_MITMDUMP")
    if env:
        if not _executable(Path(env).expanduser()):
            raise BCError(f"BC_MITMDUMP={env} is not an executable file")
        return Path(env).expanduser()
    local = REPO / ".venv-mitm" / "bin" / "mitmdump"
    if _executable(local):
        return local
    on_path = shutil.which("mitmdump")
    if on_path:
        return Path(on_path)
    raise BCError(
        "mitmdump not found: run scripts/setup (it creates .venv-mitm/) "
        "or set BC_MITMDUMP to a mitmdump 11 or 12"
    )


def addon_path() -> Path:
    return Path(proxy.__file__).resolve().parent / "addon.py"


def check_upstream(url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise BCError(f"--upstream must be an http(s) URL like {DEFAULT_UPSTREAM}, not {url!r}")
    return url.rstrip("/")


def claim_port(port: int) -> int:
    """``port`` if it is free on loopback (0: any free port), else a clear error."""
    with socket.socket() as sock:
        try:
            sock.bind((LOOPBACK, port))
        except OSError as exc:
            reason = f"port {port} on {LOOPBACK} is not free ({exc.strerror})"
            raise BCError(f"{reason}: choose another with --port") from None
        return int(sock.getsockname()[1])


@dataclass(frozen=True)
class ProxyPlan:
    """How to start mitmdump and what to tell Claude Code."""

    mode: Mode
    port: int
    upstream: str
    confdir: Path
    mitmdump: Path
    rollout: float = 0.0  # percent of sessions sent to ``local`` (proxy/rollout.py)
    local: str | None = None
    local_remote: bool = False  # --allow-remote-local: a local endpoint on another host

    @property
    def ca_cert(self) -> Path:
        return self.confdir / "mitmproxy-ca-cert.pem"

    def env_lines(self) -> list[str]:
        """The exact environment to give Claude Code."""
        url = f"http://{LOOPBACK}:{self.port}"
        if self.mode == "reverse":
            return [f"ANTHROPIC_BASE_URL={url}"]
        return [f"HTTPS_PROXY={url}", f"NODE_EXTRA_CA_CERTS={self.ca_cert}"]

    def argv(self) -> list[str]:
        host = urlsplit(self.upstream).hostname or ""
        mode = f"reverse:{self.upstream}" if self.mode == "reverse" else "regular"
        args = [str(self.mitmdump), "--mode", mode, "--listen-host", LOOPBACK]
        args += ["--listen-port", str(self.port), "-s", str(addon_path()), "-q"]
        args += ["--set", f"confdir={self.confdir}", "--set", f"bc_python={sys.executable}"]
        if self.rollout > 0 and self.local:
            args += ["--set", f"bc_rollout={self.rollout}", "--set", f"bc_local={self.local}"]
            # mitmproxy connects to the upstream as a client connects (eager) and drops the
            # client if it cannot: a session the rollout sends to the local model must not
            # depend on Anthropic being reachable (offline, or blocked)
            args += ["--set", "connection_strategy=lazy"]
            if self.local_remote:
                args += ["--set", "bc_local_remote=true"]
        if self.mode == "regular":  # decrypt the API host only; tunnel the rest untouched
            args += ["--set", f"allow_hosts=^{re.escape(host)}(:\\d+)?$"]
        return args


def check_rollout(percent: float, local: str | None, allow_remote: bool = False) -> str | None:
    """The local endpoint's URL when a share of sessions goes there, checked."""
    from claude_bc.proxy import rollout

    if not 0 <= percent <= 100:
        raise BCError(f"--rollout is a percent from 0 to 100, not {percent:g}")
    if percent > 0 and not local:
        raise BCError("--rollout needs --local URL (the endpoint of bc-train serve)")
    if local:
        try:
            rollout.local_target(local, allow_remote)
        except ValueError as exc:
            hint = "" if allow_remote else " (--allow-remote-local)"
            raise BCError(f"--local: {exc}{hint}") from None
    return local.rstrip("/") if local else None


def plan(
    mode: Mode,
    port: int,
    upstream: str | None,
    confdir: Path | None,
    home: Path | None = None,
    rollout: float = 0.0,
    local: str | None = None,
    local_remote: bool = False,
) -> ProxyPlan:
    """Check the options, find mitmdump and make the folders; raises ``BCError`` on
    anything unusable, before anything is printed or started."""
    home = home or paths.data_dir()
    p = ProxyPlan(
        mode=mode,
        port=claim_port(port),
        upstream=check_upstream(upstream or DEFAULT_UPSTREAM),
        confdir=(confdir or home / "mitmproxy").expanduser(),
        mitmdump=find_mitmdump(),
        rollout=rollout,
        local=check_rollout(rollout, local, local_remote),
        local_remote=local_remote,
    )
    try:
        for folder in (home, p.confdir, paths.spool_dir(home)):  # confdir: the CA's key
            paths.ensure_dir(folder)
    except OSError as exc:
        raise BCError(f"cannot create {exc.filename or home}: {exc.strerror or exc}") from None
    return p


def exec_mitmdump(p: ProxyPlan) -> None:
    """Replace this process with mitmdump (signals then reach it directly)."""
    env = {**os.environ, "BC_HOME": str(paths.data_dir())}
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(p.mitmdump, p.argv(), env)
