"""Claude Code capture hook: append the raw hook payload to a per-session spool.

Registered for every capture event and run as ``<venv python> -I -S hooks/record.py``
(which imports this module, so its bytecode is cached rather than compiled per event).
This is the hot path (it runs twice per tool call), so it is standard library only and
imports nothing that pulls in ``re`` or ``json``: it does not parse the payload, it
checks its outer shape, finds ``session_id`` by scanning bytes, and appends

    {"v":1,"t":<receive time>,"pid":<Claude Code's pid>,"p":<payload as received>}\\n

to ``$BC_HOME/spool/<session_id>.jsonl`` under an exclusive lock. On Stop,
SubagentStop and SessionEnd it starts a detached ``python -m claude_bc.capture.worker`` that
assembles traces; Claude Code does not wait for it.

It never disturbs Claude Code: every failure (bad stdin, unwritable folder, full disk)
ends in exit 0 with nothing on stdout, and one line in the error log that
``bc-capture status`` shows.
"""

import os
import sys
import time

MAX_BYTES = 64 << 20  # a payload larger than this is not a hook payload we can use
READ_DEADLINE_S = 5.0  # Claude Code closes stdin at once; never wait longer than this
LOCK_DEADLINE_S = 3.0
ASSEMBLE_EVENTS = (b"Stop", b"SubagentStop", b"SessionEnd")
APPEND = os.O_WRONLY | os.O_APPEND | os.O_CREAT


# --- the data folder and the error log ---------------------------------------------------
# The package (capture.paths, capture.errlog) takes these from here: the hook cannot import
# the package, so this stdlib module holds the one copy. The proxy addon runs in
# mitmproxy's own environment and keeps its own; tests/proxy/test_addon.py holds it equal.


def data_dir() -> str:
    """``$BC_HOME`` if set, else ``$XDG_DATA_HOME/claude-bc``, else ``~/.local/share/claude-bc``."""
    home = os.environ.get("BC_HOME")
    if home:
        return os.path.expanduser(home)
    xdg = os.environ.get("XDG_DATA_HOME")
    base = (
        os.path.expanduser(xdg) if xdg else os.path.join(os.path.expanduser("~"), ".local", "share")
    )
    return os.path.join(base, "claude-bc")


def ensure_dir(path: str) -> str:
    """Create ``path`` (and parents) with mode 0700; tighten it if it already exists."""
    os.makedirs(path, mode=0o700, exist_ok=True)
    if os.stat(path).st_mode & 0o077:
        os.chmod(path, 0o700)
    return path


def error_logs(home: str) -> tuple[str, str]:
    """The error log in the data folder, then the per-user one in ``$TMPDIR`` for when
    the data folder itself cannot be written."""
    tmp = os.environ.get("TMPDIR") or "/tmp"
    return os.path.join(home, "errors.log"), os.path.join(
        tmp, f"claude-bc-{os.getuid()}-errors.log"
    )


def log_error(home: str, session: str, message: str, component: str = "hook") -> None:
    """One line ``<UTC time>\t<component>\t<session>\t<message>`` in the first error log
    that takes it; never raises (capture must not disturb Claude Code)."""
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    line = f"{stamp}\t{component}\t{session or '-'}\t{' '.join(message.split())[:500]}\n"
    primary, fallback = error_logs(home)
    try:
        ensure_dir(home)
    except OSError:
        pass
    for path in (primary, fallback):
        try:
            fd = open_private(path)  # never a link, never a file someone else owns
            try:
                os.write(fd, line.encode("utf-8", "replace"))
            finally:
                os.close(fd)
            return
        except OSError:
            continue


def open_private(path: str | os.PathLike[str], flags: int = APPEND) -> int:
    """``os.open`` a data file for this user only: never through a symlink, created 0600,
    and refused (``PermissionError``) unless it is a regular file this user owns (a planted
    link or someone else's file in a shared ``$TMPDIR``)."""
    fd = os.open(path, flags | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NOCTTY, 0o600)
    try:
        st = os.fstat(fd)
        if st.st_uid != os.geteuid() or (st.st_mode & 0o170000) != 0o100000:
            raise PermissionError(f"{os.fspath(path)}: not a regular file of this user: refused")
    except BaseException:
        os.close(fd)
        raise
    return fd


def read_stdin() -> bytes:
    # Non-blocking reads with a deadline instead of select(): Claude Code has written the
    # payload before we start, so this normally never sleeps (and select costs an import).
    os.set_blocking(0, False)
    chunks: list[bytes] = []
    size = 0
    deadline = time.monotonic() + READ_DEADLINE_S
    while True:
        try:
            chunk = os.read(0, 1 << 20)
        except BlockingIOError:
            if time.monotonic() > deadline:
                raise TimeoutError(f"stdin not closed within {READ_DEADLINE_S:.0f} s") from None
            time.sleep(0.0005)
            continue
        if not chunk:
            return b"".join(chunks)
        size += len(chunk)
        if size > MAX_BYTES:
            raise ValueError(f"payload larger than {MAX_BYTES >> 20} MiB")
        chunks.append(chunk)


def field(payload: bytes, key: bytes) -> bytes:
    """The string value of the first ``"key": "..."`` in ``payload``, without a JSON parser.

    Claude Code writes the top-level keys (session_id, hook_event_name, ...) before
    any tool input, and a key inside a JSON *string* is escaped (``\\"key\\"``), so
    the first unescaped match is the top-level one.
    """
    i = payload.find(b'"' + key + b'"')
    if i < 0:
        return b""
    j = i + len(key) + 2
    while payload[j : j + 1] in (b" ", b"\t", b":"):
        j += 1
    if payload[j : j + 1] != b'"':
        return b""
    k = payload.find(b'"', j + 1, j + 131)
    return payload[j + 1 : k] if k > 0 else b""


def session_of(payload: bytes) -> str:
    """The payload's session id if it is safe as a file name (capture.paths.SAFE_ID: ASCII
    letters, digits, ``-`` and ``_``, no leading ``-``), else the env's, else "unknown"."""
    for sid in (
        field(payload, b"session_id"),
        os.environ.get("CLAUDE_CODE_SESSION_ID", "").encode(),
    ):
        if (
            0 < len(sid) <= 128
            and sid[:1] != b"-"
            and sid.replace(b"-", b"").replace(b"_", b"").isalnum()
        ):
            return sid.decode("ascii")
    return "unknown"


SHELLS = (b"sh", b"dash", b"bash", b"zsh")


def claude_pid() -> bytes:
    """``"pid":N,`` for the Claude Code process that runs this hook, so a session that
    died without SessionEnd can be told from one still going; else b"". $CLAUDE_PID
    (2.1.2xx on); before it, the parent, or the parent's parent when the parent is the
    shell Claude Code ran the hook command with (Linux /proc; nothing elsewhere)."""
    pid = os.environ.get("CLAUDE_PID", "")
    if not (pid.isdigit() and len(pid) < 12):
        pid = str(os.getppid())
        try:
            with open(f"/proc/{pid}/stat", "rb") as fh:
                stat = fh.read(4096)
            comm, rest = stat[stat.find(b"(") + 1 : stat.rfind(b")")], stat[stat.rfind(b")") + 2 :]
            if comm in SHELLS:
                pid = rest.split()[1].decode()
        except (OSError, IndexError, ValueError):
            return b""
    return b'"pid":%s,' % pid.encode()


def check(payload: bytes) -> bytes:
    """Reject what cannot be a hook payload; return it as one line."""
    payload = payload.strip()
    if not payload:
        raise ValueError("empty stdin")
    if payload[:1] != b"{" or payload[-1:] != b"}":
        raise ValueError(f"stdin is not a JSON object (starts {payload[:20]!r})")
    payload.decode("utf-8")  # raises on binary garbage
    # Claude Code sends one line; newlines can only be JSON whitespace in a valid
    # object, so turning them into spaces keeps the record on one line.
    return payload.replace(b"\r", b" ").replace(b"\n", b" ")


def append(path: str, record: bytes) -> None:
    import fcntl

    try:
        fd = open_private(path)
    except FileNotFoundError:
        spool = os.path.dirname(path)
        os.makedirs(os.path.dirname(spool), mode=0o700, exist_ok=True)
        os.makedirs(spool, mode=0o700, exist_ok=True)
        fd = open_private(path)
    try:
        deadline = time.monotonic() + LOCK_DEADLINE_S
        locked = False
        while not locked:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                locked = True
            except BlockingIOError:
                if time.monotonic() > deadline:
                    break  # an O_APPEND write still lands whole; record rather than drop
                time.sleep(0.002)
        start = os.lseek(fd, 0, os.SEEK_END)
        try:
            view = memoryview(record)
            while view:
                view = view[os.write(fd, view) :]
        except OSError:
            try:
                os.ftruncate(fd, start)  # never leave a torn line behind (disk full)
            except OSError:
                pass
            raise
    finally:
        os.close(fd)


def worker_importable() -> bool:
    """Whether ``python -I -m claude_bc.capture.worker`` will find claude-bc (the plugin's launcher
    may have fallen back to a ``python3`` without it). The hook runs with ``-S``, so this
    loads ``site`` first: only for the detached child, which Claude Code does not wait for."""
    try:
        import importlib.util
        import site

        site.main()
        # a dotted name imports its parent: no claude_bc at all raises, not None
        return importlib.util.find_spec("claude_bc.capture") is not None
    except ModuleNotFoundError:
        return False
    except Exception:  # noqa: BLE001 - let the worker itself try, and log
        return True


def spawn_worker(session: str, home: str = "") -> None:
    """Start ``python -I -m claude_bc.capture.worker SESSION`` fully detached (double fork); if this
    python cannot import it, say so in the error log instead."""
    pid = os.fork()
    if pid:
        os.waitpid(pid, 0)
        return
    try:
        os.setsid()
        if os.fork():
            os._exit(0)
        null = os.open(os.devnull, os.O_RDWR)
        for fd in (0, 1, 2):
            os.dup2(null, fd)  # never hold Claude Code's pipes open
        os.closerange(3, 1024)
        if not worker_importable():
            log_error(
                home or data_dir(),
                session,
                f"cannot assemble the session: {sys.executable} does not have claude-bc "
                "installed (set BC_PYTHON to claude-bc's .venv/bin/python); the hook "
                "payloads stay in the spool",
            )
            os._exit(0)
        # -I: no cwd on sys.path, so a project's own "capture" folder cannot shadow ours
        os.execv(sys.executable, [sys.executable, "-I", "-m", "claude_bc.capture.worker", session])
    finally:
        os._exit(0)


def main() -> None:
    received = time.time()
    home = data_dir()
    session = "unknown"
    try:
        payload = check(read_stdin())
        session = session_of(payload)
        record = b'{"v":1,"t":%.6f,%s"p":%s}\n' % (received, claude_pid(), payload)
        append(os.path.join(home, "spool", session + ".jsonl"), record)
        event = field(payload, b"hook_event_name")
        if (
            event in ASSEMBLE_EVENTS
            and session != "unknown"
            and os.environ.get("BC_NO_ASSEMBLE") != "1"
        ):
            spawn_worker(session, home)
    except BaseException as exc:  # noqa: BLE001 - the hook must never fail Claude Code
        log_error(home, session, f"{type(exc).__name__}: {exc}")
