"""Register (and remove) the claude-bc capture hook in Claude Code settings files.

Claude Code reads hooks from three settings files (user, project, local) and merges them. We add
one command hook per event, identified by the trailing shell comment :data:`MARKER`, and touch
nothing else: foreign hooks, other matcher groups and every other key stay exactly as they were.

Guarantees of :func:`install` / :func:`uninstall`:

* idempotent: when the file already holds what we would write, it is not rewritten at all
  (same bytes, same mtime, no backup);
* a copy ``<name>.bak-<timestamp>`` of an existing file is written before it is changed;
* the write is atomic (temp file in the same folder + ``os.replace``) and keeps the file mode;
  a symlinked settings file is written through to its target;
* a file that is not valid JSON, or whose shape is not what Claude Code expects, raises
  :class:`~capture.errors.BCError` naming the file, and is left untouched.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import json
import os
import shlex
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from claude_bc.capture.errors import BCError

__all__ = [
    "EVENTS",
    "MARKER",
    "SCOPES",
    "TIMEOUT_S",
    "InstallResult",
    "Scope",
    "default_hook_script",
    "hook_command",
    "install",
    "installed_scopes",
    "missing_hook_paths",
    "is_ours",
    "settings_path",
    "uninstall",
]

#: The hook events we register, in the order they are written.
EVENTS: tuple[str, ...] = (
    "SessionStart",
    "UserPromptSubmit",
    "MessageDisplay",
    "PreToolUse",
    "PostToolUse",
    "PostToolUseFailure",
    "PostToolBatch",
    "Stop",
    "SubagentStart",
    "SubagentStop",
    "PreCompact",
    "PostCompact",
    "SessionEnd",
)

#: Trailing shell comment that marks a hook command as ours.
MARKER = "# claude-bc"

#: Seconds Claude Code gives our hook (SessionEnd hooks otherwise share a 1.5 s budget).
TIMEOUT_S = 10

Scope = Literal["project", "local", "user"]
SCOPES: tuple[Scope, ...] = ("project", "local", "user")

# Matchers under which Claude Code runs a hook for everything.
_MATCH_ALL = ("*", "")


@dataclass(frozen=True)
class InstallResult:
    """What :func:`install` or :func:`uninstall` did to one settings file.

    ``events`` lists the events whose entries this call added, replaced or removed (empty when
    nothing changed); ``backup`` is the copy written before the change, if the file existed.
    """

    path: Path
    changed: bool
    backup: Path | None
    events: list[str]


# --------------------------------------------------------------------------------------------
# Commands and paths
# --------------------------------------------------------------------------------------------


def _abs(p: Path) -> Path:
    # abspath, not resolve(): a venv's bin/python is a symlink and must stay the venv's path.
    return Path(os.path.abspath(p.expanduser()))


def hook_command(python: Path, script: Path, bc_home: Path | None) -> str:
    """The shell command Claude Code runs for each event.

    ``[BC_HOME=<home> ]<python> -I -S <script>  # claude-bc``, every path absolute and quoted
    with :func:`shlex.quote`. ``-I -S`` keep the interpreter start at ~10 ms (no site, no
    ``PYTHON*`` variables, no user site).
    """
    cmd = f"{shlex.quote(str(_abs(python)))} -I -S {shlex.quote(str(_abs(script)))}  {MARKER}"
    if bc_home is not None:
        cmd = f"BC_HOME={shlex.quote(str(_abs(bc_home)))} {cmd}"
    return cmd


def default_hook_script() -> Path:
    """``record.py`` next to the installed ``hooks`` package."""
    from claude_bc import hooks

    if hooks.__file__ is None:  # pragma: no cover - a namespace package, not an install
        raise BCError("cannot locate the claude-bc hook script: package 'hooks' has no __file__")
    return Path(hooks.__file__).parent / "record.py"


def settings_path(scope: Scope, project_dir: Path, home: Path) -> Path:
    """The settings file Claude Code reads for ``scope``."""
    if scope == "project":
        return project_dir / ".claude" / "settings.json"
    if scope == "local":
        return project_dir / ".claude" / "settings.local.json"
    if scope == "user":
        return home / ".claude" / "settings.json"
    raise BCError(f"unknown settings scope {scope!r}; use one of: {', '.join(SCOPES)}")


def is_ours(hook: object) -> bool:
    """Whether one hook entry (an item of a matcher group's ``hooks`` list) is ours."""
    if not isinstance(hook, dict):
        return False
    command = hook.get("command")
    if not isinstance(command, str):
        return False
    text = command.rstrip()
    if not text.endswith(MARKER):
        return False
    before = text[: -len(MARKER)]
    # The marker must be a shell comment of its own, not the tail of another word.
    return before == "" or before[-1].isspace()


def _entry(command: str) -> dict[str, Any]:
    return {"type": "command", "command": command, "timeout": TIMEOUT_S}


# --------------------------------------------------------------------------------------------
# Reading and validating
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Loaded:
    data: dict[str, Any]
    raw: bytes | None  # None: the file does not exist
    st: os.stat_result | None


def _target(path: Path) -> Path:
    """The file to read and replace: a symlinked settings file is written through."""
    if path.is_symlink():
        return path.resolve()
    return path


def _load(path: Path) -> _Loaded:
    try:
        with open(path, "rb") as fh:
            st = os.fstat(fh.fileno())
            raw = fh.read()
    except FileNotFoundError:
        return _Loaded({}, None, None)
    except IsADirectoryError:
        raise BCError(f"{path}: is a directory, expected a Claude Code settings file") from None
    except OSError as e:
        raise BCError(f"{path}: cannot read: {e.strerror or e}") from None
    if not raw.strip():
        # An empty file is an empty settings object (it is what `touch` leaves behind).
        return _Loaded({}, raw, st)
    try:
        data = json.loads(raw.decode("utf-8-sig"))
    except UnicodeDecodeError:
        raise BCError(f"{path}: not valid UTF-8 text; fix or remove it (left unchanged)") from None
    except json.JSONDecodeError as e:
        raise BCError(
            f"{path}: not valid JSON ({e.msg} at line {e.lineno} column {e.colno});"
            " fix or remove it (left unchanged)"
        ) from None
    if not isinstance(data, dict):
        raise BCError(
            f"{path}: top level is a JSON {_kind(data)}, expected an object;"
            " fix or remove it (left unchanged)"
        )
    _check_shape(path, data)
    return _Loaded(data, raw, st)


def _kind(value: object) -> str:
    if isinstance(value, dict):
        return "object"
    if isinstance(value, list):
        return "array"
    if isinstance(value, str):
        return "string"
    if isinstance(value, bool):
        return "boolean"
    if value is None:
        return "null"
    return "number"


def _check_shape(path: Path, data: dict[str, Any]) -> None:
    """Raise if the parts we would read or edit do not have the shape Claude Code uses."""
    if "hooks" not in data:
        return
    hooks = data["hooks"]
    if not isinstance(hooks, dict):
        raise BCError(
            f'{path}: "hooks" is a JSON {_kind(hooks)}, expected an object of event name to'
            " list of matcher groups; fix it (left unchanged)"
        )
    for event, groups in hooks.items():
        if event not in EVENTS and not _contains_ours(groups):
            continue  # a foreign event: not ours to judge
        if not isinstance(groups, list):
            raise BCError(
                f'{path}: "hooks.{event}" is a JSON {_kind(groups)}, expected a list of matcher'
                " groups; fix it (left unchanged)"
            )
        for i, group in enumerate(groups):
            if not isinstance(group, dict):
                raise BCError(
                    f'{path}: "hooks.{event}[{i}]" is a JSON {_kind(group)}, expected a matcher'
                    ' group object like {"matcher": "*", "hooks": [...]}; fix it (left unchanged)'
                )
            inner = group.get("hooks")
            if not isinstance(inner, list):
                raise BCError(
                    f'{path}: "hooks.{event}[{i}].hooks" is a JSON {_kind(inner)}, expected a'
                    " list of hook entries; fix it (left unchanged)"
                )


def _contains_ours(value: object) -> bool:
    if isinstance(value, dict):
        return is_ours(value) or any(_contains_ours(v) for v in value.values())
    if isinstance(value, list):
        return any(_contains_ours(v) for v in value)
    return False


def _our_commands(data: dict[str, Any]) -> list[str]:
    """The command of each of our hook entries in parsed settings."""
    hooks = data.get("hooks")
    if not isinstance(hooks, dict):
        return []
    return [
        h["command"]
        for groups in hooks.values()
        if isinstance(groups, list)
        for group in groups
        if isinstance(group, dict) and isinstance(group.get("hooks"), list)
        for h in group["hooks"]
        if is_ours(h)
    ]


def _count_ours(data: dict[str, Any]) -> int:
    return len(_our_commands(data))


def missing_hook_paths(settings: Path) -> list[str]:
    """Absolute paths our hook commands in ``settings`` run that no longer exist.

    A removed virtualenv, or an upgrade that moved the hook script (releases before the
    ``claude_bc`` package put it at ``site-packages/hooks/record.py``), leaves hooks that
    fail on every event, silently: only ``bc-capture install`` again mends them.
    """
    gone: set[str] = set()
    for command in _our_commands(_load(_target(settings)).data):
        try:
            words = shlex.split(command, comments=True)
        except ValueError:  # not ours to judge: a hand-edited command
            continue
        while words and "=" in words[0] and not words[0].startswith(("/", "-")):
            words.pop(0)  # VAR=value before the command
        gone.update(w for w in words if w.startswith("/") and not Path(w).exists())
    return sorted(gone)


# --------------------------------------------------------------------------------------------
# Editing (pure functions on parsed JSON; the input is never mutated)
# --------------------------------------------------------------------------------------------


def _strip_ours(groups: list[Any]) -> list[Any]:
    """``groups`` without our entries; groups left with no hooks by that are dropped."""
    out: list[Any] = []
    for group in groups:
        inner = group.get("hooks") if isinstance(group, dict) else None
        if not isinstance(inner, list) or not any(is_ours(h) for h in inner):
            out.append(group)
            continue
        kept = [h for h in inner if not is_ours(h)]
        if kept:
            out.append({**group, "hooks": kept})
    return out


def _with_ours(groups: list[Any], command: str) -> list[Any]:
    """``groups`` holding exactly one entry of ours, with ``command``.

    An entry of ours already sitting in a match-everything group is updated in place (so its
    position among foreign hooks is kept); every other entry of ours is removed; if none could
    be updated, a new group ``{"matcher": "*", "hooks": [entry]}`` is appended.
    """
    entry = _entry(command)
    out: list[Any] = []
    placed = False
    for group in groups:
        inner = group.get("hooks") if isinstance(group, dict) else None
        if not isinstance(inner, list) or not any(is_ours(h) for h in inner):
            out.append(group)
            continue
        matches_all = group.get("matcher", "") in _MATCH_ALL
        kept: list[Any] = []
        for h in inner:
            if not is_ours(h):
                kept.append(h)
            elif matches_all and not placed:
                kept.append(entry)
                placed = True
        if kept:
            out.append({**group, "hooks": kept})
    if not placed:
        out.append({"matcher": "*", "hooks": [entry]})
    return out


def _installed(data: dict[str, Any], command: str) -> tuple[dict[str, Any], list[str]]:
    old_hooks: dict[str, Any] = data.get("hooks", {})
    hooks: dict[str, Any] = {}
    touched: list[str] = []
    for event, groups in old_hooks.items():
        if event in EVENTS:
            new = _with_ours(groups, command)
        elif _contains_ours(groups):
            new = _strip_ours(groups)  # an event an older claude-bc registered
        else:
            hooks[event] = groups
            continue
        if new != groups:
            touched.append(event)
        if new:
            hooks[event] = new
    for event in EVENTS:
        if event not in hooks:
            hooks[event] = [{"matcher": "*", "hooks": [_entry(command)]}]
            touched.append(event)
    out = dict(data)
    out["hooks"] = hooks
    return out, [e for e in EVENTS if e in touched] + [e for e in touched if e not in EVENTS]


def _uninstalled(data: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    old_hooks = data.get("hooks")
    if not isinstance(old_hooks, dict):
        return data, []
    hooks: dict[str, Any] = {}
    touched: list[str] = []
    for event, groups in old_hooks.items():
        if not _contains_ours(groups):
            hooks[event] = groups
            continue
        new = _strip_ours(groups)
        touched.append(event)
        if new:
            hooks[event] = new
    if not touched:
        return data, []
    touched = [e for e in EVENTS if e in touched] + [e for e in touched if e not in EVENTS]
    out = dict(data)
    if hooks:
        out["hooks"] = hooks
    else:
        del out["hooks"]
    return out, touched


# --------------------------------------------------------------------------------------------
# Writing
# --------------------------------------------------------------------------------------------


def _dump(data: dict[str, Any]) -> bytes:
    return (json.dumps(data, indent=2, ensure_ascii=False) + "\n").encode("utf-8")


def _backup(path: Path, raw: bytes) -> Path:
    """Write ``raw`` to a new ``<name>.bak-<timestamp>[-N]`` next to ``path``; keep its mode."""
    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    for n in range(1, 1000):
        suffix = f".bak-{stamp}" if n == 1 else f".bak-{stamp}-{n}"
        candidate = path.with_name(path.name + suffix)
        try:
            fd = os.open(candidate, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            continue
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(raw)
                fh.flush()
                os.fsync(fh.fileno())
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(candidate)
            raise
        with contextlib.suppress(OSError):
            st = os.stat(path)
            os.chmod(candidate, stat.S_IMODE(st.st_mode))
            os.utime(candidate, ns=(st.st_atime_ns, st.st_mtime_ns))
        return candidate
    raise BCError(f"{path}: too many backups named {path.name}.bak-{stamp}*; remove some")


def _write_atomic(path: Path, content: bytes, before: os.stat_result | None) -> None:
    """Replace ``path`` with ``content`` atomically, keeping the mode of the file it replaces.

    A new file gets the default mode (0666 less the umask). If the file changed since it was
    read (``before``), nothing is written and BCError is raised.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp: Path | None = None
    for _ in range(100):
        candidate = path.with_name(f".{path.name}.{os.getpid()}.{os.urandom(4).hex()}.tmp")
        try:
            fd = os.open(candidate, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        except FileExistsError:
            continue
        tmp = candidate
        break
    if tmp is None:  # pragma: no cover - 100 random collisions
        raise BCError(f"{path}: cannot create a temporary file next to it")
    try:
        with os.fdopen(fd, "wb") as fh:
            if before is not None:
                os.fchmod(fh.fileno(), stat.S_IMODE(before.st_mode))
            fh.write(content)
            fh.flush()
            os.fsync(fh.fileno())
        if before is not None:
            now = _stat_or_none(path)
            if now is None or _fingerprint(now) != _fingerprint(before):
                raise BCError(
                    f"{path}: changed by another program while claude-bc was editing it;"
                    " run the command again (left unchanged)"
                )
        elif path.exists():
            raise BCError(
                f"{path}: created by another program while claude-bc was editing it;"
                " run the command again (left unchanged)"
            )
        os.replace(tmp, path)
        tmp = None
    finally:
        if tmp is not None:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
    with contextlib.suppress(OSError):  # make the rename durable
        dfd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)


def _stat_or_none(path: Path) -> os.stat_result | None:
    try:
        return os.stat(path)
    except FileNotFoundError:
        return None


def _fingerprint(st: os.stat_result) -> tuple[int, int, int, int]:
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)


def _apply(path: Path, loaded: _Loaded, new: dict[str, Any], events: list[str]) -> InstallResult:
    if loaded.raw is not None and new == loaded.data:
        return InstallResult(path=path, changed=False, backup=None, events=[])
    target = _target(path)
    try:
        backup = _backup(target, loaded.raw) if loaded.raw is not None else None
        _write_atomic(target, _dump(new), loaded.st)
    except BCError:
        raise
    except OSError as e:
        where = e.filename if isinstance(e.filename, str) else str(target)
        raise BCError(f"{where}: cannot write: {e.strerror or e}") from None
    return InstallResult(path=path, changed=True, backup=backup, events=events)


# --------------------------------------------------------------------------------------------
# Public API
# --------------------------------------------------------------------------------------------


def install(path: Path, command: str) -> InstallResult:
    """Register ``command`` for every event in :data:`EVENTS` in the settings file ``path``.

    ``command`` must end with :data:`MARKER` (use :func:`hook_command`). An entry of ours with a
    different command (an older install, a moved venv) is replaced, never duplicated; entries of
    ours on events no longer in :data:`EVENTS` are removed. Everything else is kept as it was.
    """
    if not is_ours(_entry(command)):
        raise BCError(f"hook command must end with the marker {MARKER!r}: {command!r}")
    loaded = _load(_target(path))
    new, events = _installed(loaded.data, command)
    return _apply(path, loaded, new, events)


def uninstall(path: Path) -> InstallResult:
    """Remove exactly our hook entries from the settings file ``path``.

    Matcher groups and events left empty by that are removed, and so is ``hooks`` if nothing
    else is left in it. A missing file, or one without entries of ours, is left alone.
    """
    loaded = _load(_target(path))
    if loaded.raw is None:
        return InstallResult(path=path, changed=False, backup=None, events=[])
    new, events = _uninstalled(loaded.data)
    return _apply(path, loaded, new, events)


def installed_scopes(project_dir: Path, home: Path) -> list[tuple[str, Path, int]]:
    """``(scope, settings file, number of our hook entries in it)`` for each scope.

    A missing file counts 0; an unreadable or invalid one raises BCError naming it.
    """
    out: list[tuple[str, Path, int]] = []
    for scope in SCOPES:
        path = settings_path(scope, project_dir, home)
        out.append((scope, path, _count_ours(_load(_target(path)).data)))
    return out
