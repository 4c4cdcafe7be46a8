"""capture/install.py: merging our hook into Claude Code settings, the plugin and its launcher."""

from __future__ import annotations

import copy
import importlib.metadata
import json
import os
import re
import shlex
import shutil
import stat
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from claude_bc import hooks
from claude_bc.capture import install as inst
from claude_bc.capture.errors import BCError
from claude_bc.capture.install import (
    EVENTS,
    MARKER,
    InstallResult,
    default_hook_script,
    hook_command,
    install,
    installed_scopes,
    missing_hook_paths,
    settings_path,
    uninstall,
)
from tests.claude_code import (
    BASIC_SCENARIO,
    CACHE_DIR,
    claude_bin,
    make_basic_project,
    run_claude,
)
from tests.conftest import run_bc
from tests.fake_anthropic import FakeAnthropic

REPO = Path(__file__).resolve().parents[2]
PLUGIN_COMMAND = 'sh "${CLAUDE_PLUGIN_ROOT}/hooks/run.sh"  # claude-bc'
PROJECT_COMMAND = (
    '"$CLAUDE_PROJECT_DIR/.venv/bin/python" -I -S'
    ' "$CLAUDE_PROJECT_DIR/hooks/record.py"  # claude-bc'
)
BACKUP_RE = re.compile(r"^settings\.json\.bak-\d{8}-\d{6}(-\d+)?$")

# A stub record.py: writes what it was started with to $BC_TEST_OUT (-I still lets it read
# os.environ; it only ignores PYTHON* variables).
STUB_RECORD = """\
import json, os, sys
payload = sys.stdin.read()
with open(os.environ["BC_TEST_OUT"], "w") as fh:
    json.dump({"argv": sys.argv, "stdin": payload, "isolated": sys.flags.isolated,
               "no_site": sys.flags.no_site, "bc_home": os.environ.get("BC_HOME")}, fh)
"""


# --------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------


def cmd_for(tmp: Path, name: str = "venv") -> str:
    return hook_command(tmp / name / "bin" / "python", tmp / "pkg" / "hooks" / "record.py", None)


def ours_entry(command: str) -> dict[str, Any]:
    return {"type": "command", "command": command, "timeout": 10}


def read(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def write(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=4) + "\n", encoding="utf-8")


def backups(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if ".bak-" in p.name)


def listing(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def ours_in(groups: list[Any]) -> list[dict[str, Any]]:
    return [h for g in groups for h in g["hooks"] if inst.is_ours(h)]


def realistic() -> dict[str, Any]:
    """A settings file as people have them: permissions, env, and hooks of their own."""
    return {
        "$schema": "https://json.schemastore.org/claude-code-settings.json",
        "permissions": {
            "allow": ["Bash(npm run lint)", "Bash(git diff:*)", "Read(~/.zshrc)"],
            "deny": ["Read(./.env)", "Read(./secrets/**)"],
            "defaultMode": "acceptEdits",
        },
        "env": {"CLAUDE_CODE_ENABLE_TELEMETRY": "0", "FOO": "bär"},
        "model": "opus",
        "statusLine": {"type": "command", "command": "~/.claude/statusline.sh"},
        "hooks": {
            "PreToolUse": [
                {
                    "matcher": "*",
                    "hooks": [
                        {"type": "command", "command": "~/bin/audit.sh", "timeout": 5},
                        {"type": "command", "command": "echo pre >> /tmp/log"},
                    ],
                },
                {
                    "matcher": "Bash",
                    "hooks": [{"type": "command", "command": "python3 ~/guard.py"}],
                },
            ],
            "Notification": [
                {"matcher": "", "hooks": [{"type": "command", "command": "notify-send hi"}]}
            ],
            "Stop": [
                {"hooks": [{"type": "http", "url": "http://localhost:9/stop"}]},
            ],
        },
        "includeCoAuthoredBy": False,
    }


# --------------------------------------------------------------------------------------------
# constants, commands, paths
# --------------------------------------------------------------------------------------------


def test_events_and_marker() -> None:
    assert EVENTS == (
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
    assert MARKER == "# claude-bc"


def test_hook_command_shape(tmp_path: Path) -> None:
    py = tmp_path / "venv" / "bin" / "python"
    script = tmp_path / "hooks" / "record.py"
    cmd = hook_command(py, script, None)
    assert cmd == f"{shlex.quote(str(py))} -I -S {shlex.quote(str(script))}  # claude-bc"
    assert cmd.endswith("  " + MARKER)
    assert shlex.split(cmd, comments=True) == [str(py), "-I", "-S", str(script)]
    assert inst.is_ours(ours_entry(cmd))


def test_hook_command_makes_paths_absolute_without_resolving_links(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = tmp_path / "real-python"
    real.write_text("")
    (tmp_path / "venv" / "bin").mkdir(parents=True)
    (tmp_path / "venv" / "bin" / "python").symlink_to(real)
    monkeypatch.chdir(tmp_path)
    cmd = hook_command(Path("venv/bin/python"), Path("record.py"), Path("home"))
    words = shlex.split(cmd, comments=True)
    assert words == [
        f"BC_HOME={tmp_path / 'home'}",
        str(tmp_path / "venv" / "bin" / "python"),  # the venv's path, not the link target
        "-I",
        "-S",
        str(tmp_path / "record.py"),
    ]


def test_hook_command_bc_home_quoting_and_it_runs(tmp_path: Path) -> None:
    """A BC_HOME (and interpreter, and script) with spaces and a quote survive the shell."""
    odd = tmp_path / "it's a dir"
    odd.mkdir()
    home = odd / "bc home"
    py = odd / "py thon"
    py.symlink_to(sys.executable)
    script = odd / "record it.py"
    script.write_text(STUB_RECORD)
    cmd = hook_command(py, script, home)

    assert cmd.startswith(f"BC_HOME={shlex.quote(str(home))} ")
    assert cmd.endswith("  # claude-bc")
    assert shlex.split(cmd, comments=True) == [f"BC_HOME={home}", str(py), "-I", "-S", str(script)]

    out = tmp_path / "out.json"
    for shell in ("/bin/sh", shutil.which("bash") or "/bin/sh"):
        proc = subprocess.run(
            [shell, "-c", cmd],
            input='{"hook_event_name": "Stop"}',
            capture_output=True,
            text=True,
            env={"PATH": os.environ.get("PATH", ""), "BC_TEST_OUT": str(out)},
            timeout=30,
            check=False,
        )
        assert (proc.returncode, proc.stdout, proc.stderr) == (0, "", "")
        got = read(out)
        assert got["bc_home"] == str(home)
        assert got["argv"] == [str(script)]
        assert got["stdin"] == '{"hook_event_name": "Stop"}'
        assert got["isolated"] == 1 and got["no_site"] == 1


def test_default_hook_script() -> None:
    assert hooks.__file__ is not None
    path = default_hook_script()
    assert path == Path(hooks.__file__).parent / "record.py"
    assert path.is_absolute()


@pytest.mark.parametrize(
    ("scope", "expected"),
    [
        ("project", "proj/.claude/settings.json"),
        ("local", "proj/.claude/settings.local.json"),
        ("user", "home/.claude/settings.json"),
    ],
)
def test_settings_path(tmp_path: Path, scope: inst.Scope, expected: str) -> None:
    assert settings_path(scope, tmp_path / "proj", tmp_path / "home") == tmp_path / expected


def test_install_rejects_a_command_without_marker(tmp_path: Path) -> None:
    path = tmp_path / "settings.json"
    with pytest.raises(BCError, match="marker"):
        install(path, "/usr/bin/python3 record.py")
    with pytest.raises(BCError, match="marker"):
        install(path, "/usr/bin/python3 record.py #claude-bc-not")
    assert not path.exists()


# --------------------------------------------------------------------------------------------
# install
# --------------------------------------------------------------------------------------------


def test_install_into_missing_file_creates_folders(tmp_path: Path) -> None:
    path = tmp_path / "a" / "b" / ".claude" / "settings.json"
    cmd = cmd_for(tmp_path)
    res = install(path, cmd)
    assert res == InstallResult(path=path, changed=True, backup=None, events=list(EVENTS))
    data = read(path)
    assert data == {"hooks": {e: [{"matcher": "*", "hooks": [ours_entry(cmd)]}] for e in EVENTS}}
    assert list(data["hooks"]) == list(EVENTS)
    text = path.read_text(encoding="utf-8")
    assert text == json.dumps(data, indent=2) + "\n"
    assert listing(path.parent) == ["settings.json"]  # no backup, no temp file left


def test_install_twice_is_byte_identical(tmp_path: Path) -> None:
    path = tmp_path / ".claude" / "settings.json"
    write(path, realistic())
    cmd = cmd_for(tmp_path)
    first = install(path, cmd)
    assert first.changed and first.backup is not None
    before = path.read_bytes()
    mtime = path.stat().st_mtime_ns
    names = listing(path.parent)

    second = install(path, cmd)
    assert second == InstallResult(path=path, changed=False, backup=None, events=[])
    assert path.read_bytes() == before
    assert path.stat().st_mtime_ns == mtime
    assert listing(path.parent) == names


def test_install_preserves_foreign_hooks_and_keys(tmp_path: Path) -> None:
    path = tmp_path / ".claude" / "settings.json"
    original = realistic()
    write(path, original)
    cmd = cmd_for(tmp_path)
    res = install(path, cmd)
    assert res.changed and res.events == list(EVENTS)
    data = read(path)

    # Every other key: same value, same order.
    assert list(data) == list(original)
    for key, value in original.items():
        if key != "hooks":
            assert data[key] == value
    # Foreign events untouched; ours are appended after the existing ones.
    assert data["hooks"]["Notification"] == original["hooks"]["Notification"]
    assert list(data["hooks"])[:3] == ["PreToolUse", "Notification", "Stop"]
    # Foreign groups of our events untouched and first, then exactly one group of ours.
    for event in EVENTS:
        old = original["hooks"].get(event, [])
        assert data["hooks"][event] == [*old, {"matcher": "*", "hooks": [ours_entry(cmd)]}]
    # Non-ASCII kept readable.
    assert "bär" in path.read_text(encoding="utf-8")


def test_install_replaces_an_old_command_of_ours_in_place(tmp_path: Path) -> None:
    path = tmp_path / ".claude" / "settings.json"
    old_cmd = cmd_for(tmp_path, "old venv")
    new_cmd = cmd_for(tmp_path, "new-venv")
    original = realistic()
    # Our old entry shares a matcher group with foreign hooks (hand-edited file).
    original["hooks"]["PreToolUse"][0]["hooks"].insert(1, ours_entry(old_cmd))
    for event in EVENTS:
        if event != "PreToolUse":
            original["hooks"].setdefault(event, []).append(
                {"matcher": "*", "hooks": [ours_entry(old_cmd)]}
            )
    write(path, original)
    raw = path.read_bytes()

    res = install(path, new_cmd)
    assert res.changed and res.events == list(EVENTS)
    assert res.backup is not None and res.backup.read_bytes() == raw
    data = read(path)
    pre = data["hooks"]["PreToolUse"]
    assert pre[0]["hooks"] == [
        original["hooks"]["PreToolUse"][0]["hooks"][0],
        ours_entry(new_cmd),  # same position as the old one
        original["hooks"]["PreToolUse"][0]["hooks"][2],
    ]
    assert pre[1] == original["hooks"]["PreToolUse"][1]
    assert len(pre) == 2
    for event in EVENTS:
        assert ours_in(data["hooks"][event]) == [ours_entry(new_cmd)], event
    assert old_cmd not in path.read_text(encoding="utf-8")
    # And that is now stable.
    assert not install(path, new_cmd).changed


def test_install_collapses_duplicates_and_drops_stale_events(tmp_path: Path) -> None:
    path = tmp_path / "settings.json"
    cmd = cmd_for(tmp_path)
    old = cmd_for(tmp_path, "old")
    foreign = {"type": "command", "command": "echo loaded"}
    write(
        path,
        {
            "hooks": {
                "Stop": [
                    {"matcher": "*", "hooks": [ours_entry(old)]},
                    {"matcher": "*", "hooks": [ours_entry(cmd)]},
                ],
                # An event an older claude-bc registered: ours goes, the foreign hook stays.
                "InstructionsLoaded": [
                    {"matcher": "*", "hooks": [ours_entry(old)]},
                    {"matcher": "*", "hooks": [foreign, ours_entry(old)]},
                ],
                # Ours under a narrower matcher is moved to a match-everything group.
                "PreToolUse": [{"matcher": "Bash", "hooks": [ours_entry(old)]}],
            }
        },
    )
    res = install(path, cmd)
    assert res.changed
    assert "InstructionsLoaded" in res.events
    data = read(path)
    assert data["hooks"]["Stop"] == [{"matcher": "*", "hooks": [ours_entry(cmd)]}]
    assert data["hooks"]["InstructionsLoaded"] == [{"matcher": "*", "hooks": [foreign]}]
    assert data["hooks"]["PreToolUse"] == [{"matcher": "*", "hooks": [ours_entry(cmd)]}]
    assert inst._count_ours(data) == len(EVENTS)


def test_install_empty_file_counts_as_empty_settings(tmp_path: Path) -> None:
    path = tmp_path / "settings.json"
    path.write_bytes(b"")
    res = install(path, cmd_for(tmp_path))
    assert res.changed and res.backup is not None
    assert res.backup.read_bytes() == b""
    assert set(read(path)["hooks"]) == set(EVENTS)


def test_install_unknown_event_shapes_left_alone(tmp_path: Path) -> None:
    """A foreign event we do not register is not ours to judge, whatever its shape."""
    path = tmp_path / "settings.json"
    write(path, {"hooks": {"SomeFutureEvent": {"whatever": 1}}})
    install(path, cmd_for(tmp_path))
    data = read(path)
    assert data["hooks"]["SomeFutureEvent"] == {"whatever": 1}
    uninstall(path)
    assert read(path) == {"hooks": {"SomeFutureEvent": {"whatever": 1}}}


# --------------------------------------------------------------------------------------------
# invalid files
# --------------------------------------------------------------------------------------------


def assert_untouched_error(path: Path, match: str) -> None:
    os.utime(path, ns=(1_000_000_000_000_000_000, 1_000_000_000_000_000_000))
    raw = path.read_bytes()
    names = listing(path.parent)
    calls: list[Callable[[], InstallResult]] = [
        lambda: install(path, cmd_for(path.parent)),
        lambda: uninstall(path),
    ]
    for call in calls:
        with pytest.raises(BCError) as info:
            call()
        message = str(info.value)
        assert str(path) in message
        assert "\n" not in message
        assert re.search(match, message), message
        assert path.read_bytes() == raw
        assert path.stat().st_mtime_ns == 1_000_000_000_000_000_000
        assert listing(path.parent) == names  # no backup, no temp file


def test_invalid_json_raises_and_leaves_file_untouched(tmp_path: Path) -> None:
    path = tmp_path / ".claude" / "settings.json"
    path.parent.mkdir()
    path.write_text('{"permissions": {"allow": ["Bash"],}\n', encoding="utf-8")
    assert_untouched_error(path, r"not valid JSON .*line 1 column")
    with pytest.raises(BCError, match="not valid JSON"):
        installed_scopes(tmp_path, tmp_path / "home")


def test_non_utf8_raises(tmp_path: Path) -> None:
    path = tmp_path / "settings.json"
    path.write_bytes(b'{"env": {"A": "\xff"}}')
    assert_untouched_error(path, "UTF-8")


@pytest.mark.parametrize(
    ("data", "match"),
    [
        ([], "top level is a JSON array"),
        ("hooks", "top level is a JSON string"),
        (None, "top level is a JSON null"),
        ({"hooks": []}, '"hooks" is a JSON array'),
        ({"hooks": "x"}, '"hooks" is a JSON string'),
        ({"hooks": {"PreToolUse": {"matcher": "*"}}}, '"hooks.PreToolUse" is a JSON object'),
        ({"hooks": {"Stop": "cmd"}}, '"hooks.Stop" is a JSON string'),
        ({"hooks": {"Stop": ["cmd"]}}, r'"hooks.Stop\[0\]" is a JSON string'),
        ({"hooks": {"Stop": [{"matcher": "*"}]}}, r'"hooks.Stop\[0\].hooks" is a JSON null'),
        (
            {"hooks": {"Stop": [{"matcher": "*", "hooks": {"type": "command"}}]}},
            r'"hooks.Stop\[0\].hooks" is a JSON object',
        ),
    ],
)
def test_wrong_shapes_raise_and_leave_file_untouched(tmp_path: Path, data: Any, match: str) -> None:
    path = tmp_path / "settings.json"
    write(path, data)
    assert_untouched_error(path, match)


def test_directory_instead_of_file(tmp_path: Path) -> None:
    path = tmp_path / "settings.json"
    path.mkdir()
    with pytest.raises(BCError, match="is a directory"):
        install(path, cmd_for(tmp_path))


def test_failed_write_leaves_file_and_no_temp(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "settings.json"
    write(path, realistic())
    raw = path.read_bytes()

    def boom(src: object, dst: object) -> None:
        raise OSError(28, "No space left on device", str(dst))

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(BCError, match="No space left on device"):
        install(path, cmd_for(tmp_path))
    assert path.read_bytes() == raw
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_file_changed_during_install_is_not_overwritten(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "settings.json"
    write(path, realistic())
    real_dump = inst._dump

    def dump_and_interfere(data: dict[str, Any]) -> bytes:
        path.write_text('{"written": "by Claude Code meanwhile"}\n', encoding="utf-8")
        return real_dump(data)

    monkeypatch.setattr(inst, "_dump", dump_and_interfere)
    with pytest.raises(BCError, match="changed by another program"):
        install(path, cmd_for(tmp_path))
    assert read(path) == {"written": "by Claude Code meanwhile"}


# --------------------------------------------------------------------------------------------
# uninstall
# --------------------------------------------------------------------------------------------


def test_uninstall_restores_the_original(tmp_path: Path) -> None:
    path = tmp_path / ".claude" / "settings.json"
    original = realistic()
    write(path, original)
    install(path, cmd_for(tmp_path))
    res = uninstall(path)
    assert res.changed and res.backup is not None
    assert res.events == list(EVENTS)
    assert read(path) == original
    assert list(read(path)) == list(original)

    again = uninstall(path)
    assert again == InstallResult(path=path, changed=False, backup=None, events=[])


def test_uninstall_removes_hooks_key_we_created(tmp_path: Path) -> None:
    path = tmp_path / "settings.json"
    original = {"permissions": {"allow": ["Read"]}, "env": {"A": "1"}}
    write(path, original)
    install(path, cmd_for(tmp_path))
    uninstall(path)
    assert read(path) == original


def test_uninstall_removes_exactly_ours(tmp_path: Path) -> None:
    path = tmp_path / "settings.json"
    cmd = cmd_for(tmp_path)
    lookalike = {"type": "command", "command": "echo '# claude-bc is great' # claude-bcx"}
    foreign = {"type": "command", "command": "echo hi", "timeout": 3}
    original = {
        "hooks": {
            "Stop": [
                {"matcher": "*", "hooks": [foreign, ours_entry(cmd), lookalike]},
                {"matcher": "*", "hooks": [ours_entry(cmd + "  ")]},
            ],
            "PreToolUse": [{"matcher": "*", "hooks": [ours_entry(cmd)]}],
            "Notification": [{"matcher": "", "hooks": [foreign]}],
        },
        "model": "sonnet",
    }
    write(path, original)
    res = uninstall(path)
    assert res.events == ["PreToolUse", "Stop"]  # in EVENTS order
    assert read(path) == {
        "hooks": {
            "Stop": [{"matcher": "*", "hooks": [foreign, lookalike]}],
            "Notification": [{"matcher": "", "hooks": [foreign]}],
        },
        "model": "sonnet",
    }


def test_uninstall_missing_file_or_nothing_of_ours(tmp_path: Path) -> None:
    missing = tmp_path / "nope" / "settings.json"
    assert uninstall(missing) == InstallResult(missing, changed=False, backup=None, events=[])
    assert not missing.parent.exists()

    path = tmp_path / "settings.json"
    write(path, realistic())
    raw = path.read_bytes()
    assert not uninstall(path).changed
    assert path.read_bytes() == raw
    assert backups(tmp_path) == []


# --------------------------------------------------------------------------------------------
# backups, modes, links
# --------------------------------------------------------------------------------------------


def test_backups_only_on_change(tmp_path: Path) -> None:
    path = tmp_path / "settings.json"
    cmd = cmd_for(tmp_path)
    write(path, realistic())
    states = [path.read_bytes()]

    steps: list[tuple[Callable[[], InstallResult], bool]] = [
        (lambda: install(path, cmd), True),
        (lambda: install(path, cmd), False),
        (lambda: install(path, cmd_for(tmp_path, "moved")), True),
        (lambda: uninstall(path), True),
        (lambda: uninstall(path), False),
    ]
    expected_backups = 0
    for step, changes in steps:
        before = path.read_bytes()
        res = step()
        assert res.changed is changes
        if changes:
            expected_backups += 1
            assert res.backup is not None
            assert res.backup.parent == tmp_path
            assert BACKUP_RE.match(res.backup.name), res.backup.name
            assert res.backup.read_bytes() == before
        else:
            assert res.backup is None
        assert len(backups(tmp_path)) == expected_backups
        states.append(path.read_bytes())
    assert expected_backups == 3
    assert len({b.name for b in backups(tmp_path)}) == 3  # same second: still distinct names


def test_file_mode_is_kept(tmp_path: Path) -> None:
    path = tmp_path / "settings.local.json"
    write(path, {"env": {"API_TOKEN": "secret"}})
    path.chmod(0o600)
    res = install(path, cmd_for(tmp_path))
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert res.backup is not None and stat.S_IMODE(res.backup.stat().st_mode) == 0o600
    path.chmod(0o640)
    uninstall(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o640


def test_new_file_gets_default_mode(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        path = tmp_path / ".claude" / "settings.json"
        install(path, cmd_for(tmp_path))
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o644


def test_symlinked_settings_written_through(tmp_path: Path) -> None:
    target = tmp_path / "dotfiles" / "claude-settings.json"
    write(target, {"model": "opus"})
    link = tmp_path / ".claude" / "settings.json"
    link.parent.mkdir()
    link.symlink_to(target)
    res = install(link, cmd_for(tmp_path))
    assert res.changed and res.path == link
    assert link.is_symlink()
    assert set(read(target)["hooks"]) == set(EVENTS)
    assert res.backup is not None and res.backup.parent == target.parent


# --------------------------------------------------------------------------------------------
# status
# --------------------------------------------------------------------------------------------


def test_installed_scopes(tmp_path: Path) -> None:
    project, home = tmp_path / "proj", tmp_path / "home"
    cmd = cmd_for(tmp_path)
    install(settings_path("project", project, home), cmd)
    user = settings_path("user", home=home, project_dir=project)
    twice = [ours_entry(cmd), ours_entry(cmd)]
    write(user, {"hooks": {"Stop": [{"matcher": "*", "hooks": twice}]}})
    assert installed_scopes(project, home) == [
        ("project", project / ".claude" / "settings.json", len(EVENTS)),
        ("local", project / ".claude" / "settings.local.json", 0),
        ("user", home / ".claude" / "settings.json", 2),
    ]
    uninstall(settings_path("project", project, home))
    assert [n for _, _, n in installed_scopes(project, home)] == [0, 0, 2]


def test_hooks_naming_a_path_that_is_gone_are_reported(tmp_path: Path) -> None:
    """After an upgrade moved the hook script (or the venv was deleted), every hook fails
    silently: status names the missing path so the user reinstalls."""
    project, home = tmp_path / "proj", tmp_path / "home"
    python, script = tmp_path / "venv" / "bin" / "python", tmp_path / "pkg" / "hooks" / "record.py"
    for path in (python, script):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("")
    settings = settings_path("project", project, home)
    install(settings, hook_command(python, script, tmp_path / "bc home"))
    assert missing_hook_paths(settings) == []
    script.unlink()
    assert missing_hook_paths(settings) == [str(script)]
    (tmp_path / "venv").rename(tmp_path / "old-venv")
    assert missing_hook_paths(settings) == sorted([str(python), str(script)])
    # the plugin's command names its files through a variable: nothing to check
    write(settings, {"hooks": {"Stop": [{"matcher": "*", "hooks": [ours_entry(PLUGIN_COMMAND)]}]}})
    assert missing_hook_paths(settings) == []


def test_status_names_a_broken_hook(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    project = tmp_path / "proj"
    settings = settings_path("project", project, tmp_path / "home")
    install(settings, cmd_for(tmp_path))  # neither the venv nor the script exists
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("BC_HOME", str(tmp_path / "bc"))
    code, out, _ = run_bc(capsys, "status", "--project-dir", str(project))
    assert code == 0
    assert f"broken: the hooks run {tmp_path / 'pkg' / 'hooks' / 'record.py'}, which is gone" in out
    assert "run `bc-capture install`" in out


# --------------------------------------------------------------------------------------------
# the files in this repository
# --------------------------------------------------------------------------------------------


def expected_hooks(command: str) -> dict[str, Any]:
    return {e: [{"matcher": "*", "hooks": [ours_entry(command)]}] for e in EVENTS}


def test_plugin_hooks_json_matches_events() -> None:
    manifest = read(REPO / "hooks" / "hooks.json")
    assert manifest["hooks"] == expected_hooks(PLUGIN_COMMAND)
    assert list(manifest["hooks"]) == list(EVENTS)
    assert inst._count_ours(manifest) == len(EVENTS)


def test_plugin_manifest() -> None:
    plugin = read(REPO / ".claude-plugin" / "plugin.json")
    # "claude-bc" is refused by `claude plugin validate` (names starting with "claude-" are
    # reserved for Anthropic), so the plugin is named after the capture CLI.
    assert plugin["name"] == "bc-capture"
    assert plugin["version"] == importlib.metadata.version("claude-bc")
    assert plugin["description"]


def test_repo_settings_match_events() -> None:
    path = REPO / ".claude" / "settings.json"
    data = read(path)
    assert data == {"hooks": expected_hooks(PROJECT_COMMAND)}
    # It is exactly what install() writes: installing the same command changes nothing.
    assert path.read_text(encoding="utf-8") == json.dumps(data, indent=2) + "\n"


def test_repo_settings_install_is_a_no_op(tmp_path: Path) -> None:
    copy_path = tmp_path / "settings.json"
    shutil.copyfile(REPO / ".claude" / "settings.json", copy_path)
    raw = copy_path.read_bytes()
    assert not install(copy_path, PROJECT_COMMAND).changed
    assert copy_path.read_bytes() == raw


def test_no_machine_paths_in_tracked_files() -> None:
    for rel in (".claude/settings.json", "hooks/hooks.json", ".claude-plugin/plugin.json"):
        text = (REPO / rel).read_text(encoding="utf-8")
        assert str(REPO) not in text, rel
        assert not re.search(r'"/(home|root|work|tmp|Users)/', text), rel
    text = (REPO / "hooks" / "run.sh").read_text(encoding="utf-8")
    assert str(REPO) not in text


def test_repo_settings_command_runs(tmp_path: Path) -> None:
    """The project command, run by a shell the way Claude Code does, starts record.py."""
    project = tmp_path / "my project's dir"
    (project / ".venv" / "bin").mkdir(parents=True)
    (project / ".venv" / "bin" / "python").symlink_to(sys.executable)
    (project / "hooks").mkdir()
    (project / "hooks" / "record.py").write_text(STUB_RECORD)
    out = tmp_path / "out.json"
    proc = subprocess.run(
        ["/bin/sh", "-c", PROJECT_COMMAND],
        input="{}",
        capture_output=True,
        text=True,
        cwd=project,
        env={"PATH": "/usr/bin:/bin", "CLAUDE_PROJECT_DIR": str(project), "BC_TEST_OUT": str(out)},
        timeout=30,
        check=False,
    )
    assert (proc.returncode, proc.stdout, proc.stderr) == (0, "", "")
    got = read(out)
    assert got["argv"] == [str(project / "hooks" / "record.py")]
    assert got["isolated"] == 1 and got["no_site"] == 1


# --------------------------------------------------------------------------------------------
# hooks/run.sh, the plugin launcher
# --------------------------------------------------------------------------------------------


def plugin_root(tmp_path: Path, *, record: bool = True, venv: bool = False) -> Path:
    root = tmp_path / "plugin root's"
    (root / "hooks").mkdir(parents=True)
    shutil.copy2(REPO / "hooks" / "run.sh", root / "hooks" / "run.sh")
    if record:
        (root / "hooks" / "record.py").write_text(STUB_RECORD)
    if venv:
        fake_interpreter(root / ".venv" / "bin" / "python", "venv")
    return root


def fake_interpreter(path: Path, label: str) -> Path:
    """An executable that records which interpreter was chosen, its argv and its stdin."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        f'#!/bin/sh\nprintf "%s\\n" {label} "$@" > "$BC_TEST_OUT"\ncat >> "$BC_TEST_OUT"\n'
    )
    path.chmod(0o755)
    return path


def run_launcher(
    root: Path, env: dict[str, str], stdin: str = '{"hook_event_name": "Stop"}'
) -> subprocess.CompletedProcess[str]:
    """Run the plugin's hook command exactly as hooks.json gives it, through a shell."""
    return subprocess.run(
        ["/bin/sh", "-c", PLUGIN_COMMAND],
        input=stdin,
        capture_output=True,
        text=True,
        cwd=root,
        env={"CLAUDE_PLUGIN_ROOT": str(root), **env},
        timeout=30,
        check=False,
    )


def test_run_sh_uses_bc_python_first(tmp_path: Path) -> None:
    root = plugin_root(tmp_path, venv=True)
    bc_python = fake_interpreter(tmp_path / "bin dir" / "my python", "bc_python")
    fake_interpreter(tmp_path / "path" / "python3", "path_python3")
    out = tmp_path / "out.txt"
    proc = run_launcher(
        root,
        {
            "BC_PYTHON": str(bc_python),
            "PATH": f"{tmp_path / 'path'}:/usr/bin:/bin",
            "BC_TEST_OUT": str(out),
        },
    )
    assert (proc.returncode, proc.stdout, proc.stderr) == (0, "", "")
    assert out.read_text().splitlines() == [
        "bc_python",
        "-I",
        "-S",
        str(root / "hooks" / "record.py"),
        '{"hook_event_name": "Stop"}',
    ]


def test_run_sh_execs_record_py_with_real_python(tmp_path: Path) -> None:
    root = plugin_root(tmp_path)
    out = tmp_path / "out.json"
    proc = run_launcher(
        root, {"BC_PYTHON": sys.executable, "PATH": "/usr/bin:/bin", "BC_TEST_OUT": str(out)}
    )
    assert (proc.returncode, proc.stdout, proc.stderr) == (0, "", "")
    got = read(out)
    assert got["argv"] == [str(root / "hooks" / "record.py")]
    assert got["stdin"] == '{"hook_event_name": "Stop"}'
    assert got["isolated"] == 1 and got["no_site"] == 1


@pytest.mark.parametrize(
    ("bc_python", "venv", "path_python3", "chosen"),
    [
        (None, True, True, "venv"),
        ("missing", True, True, "venv"),  # a BC_PYTHON that does not exist is skipped
        ("not-executable", True, True, "venv"),
        (None, False, True, "path_python3"),
        ("missing", False, True, "path_python3"),
    ],
)
def test_run_sh_fallback_order(
    tmp_path: Path, bc_python: str | None, venv: bool, path_python3: bool, chosen: str
) -> None:
    root = plugin_root(tmp_path, venv=venv)
    bin_dir = tmp_path / "path"
    bin_dir.mkdir()
    if path_python3:
        fake_interpreter(bin_dir / "python3", "path_python3")
    out = tmp_path / "out.txt"
    env = {"PATH": f"{bin_dir}:/usr/bin:/bin", "BC_TEST_OUT": str(out)}
    if bc_python == "missing":
        env["BC_PYTHON"] = str(tmp_path / "no" / "python")
    elif bc_python == "not-executable":
        plain = tmp_path / "plain-file"
        plain.write_text("")
        env["BC_PYTHON"] = str(plain)
    proc = run_launcher(root, env)
    assert (proc.returncode, proc.stdout, proc.stderr) == (0, "", "")
    assert out.read_text().splitlines()[0] == chosen


def test_run_sh_exits_0_without_any_interpreter(tmp_path: Path) -> None:
    root = plugin_root(tmp_path)
    empty = tmp_path / "empty-bin"  # only `sh`, which the hook command itself needs
    empty.mkdir()
    (empty / "sh").symlink_to("/bin/sh")
    proc = run_launcher(root, {"PATH": str(empty)}, stdin="x" * 1_000_000)
    assert (proc.returncode, proc.stdout, proc.stderr) == (0, "", "")
    # Same with `cat` available: the payload is drained, nothing is printed.
    cat = shutil.which("cat")
    assert cat is not None
    (empty / "cat").symlink_to(cat)
    proc = run_launcher(root, {"PATH": str(empty)}, stdin="x" * 1_000_000)
    assert (proc.returncode, proc.stdout, proc.stderr) == (0, "", "")


def test_run_sh_exits_0_without_record_py(tmp_path: Path) -> None:
    root = plugin_root(tmp_path, record=False)
    proc = run_launcher(root, {"BC_PYTHON": sys.executable, "PATH": "/usr/bin:/bin"})
    assert (proc.returncode, proc.stdout, proc.stderr) == (0, "", "")


def test_run_sh_without_plugin_root_uses_its_own_folder(tmp_path: Path) -> None:
    root = plugin_root(tmp_path)
    out = tmp_path / "out.json"
    proc = subprocess.run(
        ["/bin/sh", str(root / "hooks" / "run.sh")],
        input="{}",
        capture_output=True,
        text=True,
        env={"BC_PYTHON": sys.executable, "PATH": "/usr/bin:/bin", "BC_TEST_OUT": str(out)},
        timeout=30,
        check=False,
    )
    assert (proc.returncode, proc.stdout, proc.stderr) == (0, "", "")
    assert read(out)["argv"] == [str(root / "hooks" / "record.py")]


# --------------------------------------------------------------------------------------------
# the real Claude Code CLI
# --------------------------------------------------------------------------------------------


def _claude_bin() -> Path:
    """The pinned Claude Code CLI (the shared helper installs it with npm when missing)."""
    if (
        not os.environ.get("BC_CLAUDE_BIN")
        and not (CACHE_DIR / "node_modules" / ".bin" / "claude").exists()
        and shutil.which("npm") is None
    ):
        pytest.skip("npm is not available to install Claude Code")
    return claude_bin()


@pytest.mark.timeout(900)
def test_claude_plugin_validate(tmp_path: Path) -> None:
    claude = _claude_bin()
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(tmp_path),
        "DISABLE_AUTOUPDATER": "1",
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
    }
    proc = subprocess.run(
        [str(claude), "plugin", "validate", "--json", str(REPO)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    report = json.loads(proc.stdout)
    assert report["success"] is True
    assert report["manifest"]["errors"] == []
    provided = report["provides"]["hooks"]
    assert [(h["event"], h["matcher"], h["type"], h["command"]) for h in provided] == [
        (e, "*", "command", PLUGIN_COMMAND) for e in EVENTS
    ]


def test_realistic_fixture_is_not_mutated(tmp_path: Path) -> None:
    """install/uninstall never mutate the parsed input (they build new objects)."""
    data = realistic()
    frozen = copy.deepcopy(data)
    new, _ = inst._installed(data, cmd_for(tmp_path))
    assert data == frozen
    inst._uninstalled(new)
    assert data == frozen


# --------------------------------------------------------------------------------------------
# end to end: the real Claude Code runs what we registered
# --------------------------------------------------------------------------------------------

# Appends one line per call; a single O_APPEND write keeps concurrent hooks' lines whole.
STUB_LOG_RECORD = """\
import json, os, sys
p = json.loads(sys.stdin.read())
line = json.dumps({"event": p["hook_event_name"], "bc_home": os.environ.get("BC_HOME"),
                   "isolated": sys.flags.isolated, "no_site": sys.flags.no_site}) + "\\n"
fd = os.open(os.environ["BC_TEST_OUT"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
os.write(fd, line.encode())
os.close(fd)
"""

# What the basic scenario fires (fixtures/claude-code/basic, 2.1.332).
BASIC_EVENTS = {
    "SessionStart",
    "UserPromptSubmit",
    "MessageDisplay",
    "PreToolUse",
    "PostToolUse",
    "PostToolUseFailure",
    "PostToolBatch",
    "Stop",
    "SessionEnd",
}


def run_basic(tmp_path: Path, project: Path, extra_args: list[str], env: dict[str, str]) -> None:
    _claude_bin()
    with FakeAnthropic(BASIC_SCENARIO, cwd=project) as api:
        run = run_claude(
            BASIC_SCENARIO["prompt"],
            project_dir=project,
            home_dir=tmp_path / "home",
            base_url=api.base_url,
            extra_args=extra_args,
            extra_env=env,
        )
    assert run.returncode == 0, run.stderr[-2000:]


def logged(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.mark.e2e
@pytest.mark.timeout(900)
def test_e2e_installed_hook_runs_in_claude_code(tmp_path: Path) -> None:
    project = make_basic_project(tmp_path / "project")
    script = tmp_path / "it's a pkg" / "record.py"
    script.parent.mkdir()
    script.write_text(STUB_LOG_RECORD)
    bc_home = tmp_path / "bc 'home'"
    foreign_log = tmp_path / "foreign.log"
    settings = settings_path("project", project, tmp_path / "home")
    foreign = {"type": "command", "command": f"echo x >> {shlex.quote(str(foreign_log))}"}
    write(settings, {"hooks": {"PreToolUse": [{"matcher": "*", "hooks": [foreign]}]}})
    install(settings, hook_command(Path(sys.executable), script, bc_home))

    out = tmp_path / "events.jsonl"
    run_basic(tmp_path, project, [], {"BC_TEST_OUT": str(out)})

    lines = logged(out)
    assert {line["event"] for line in lines} >= BASIC_EVENTS
    assert all(line["bc_home"] == str(bc_home) for line in lines)
    assert all(line["isolated"] == 1 and line["no_site"] == 1 for line in lines)
    # The foreign hook in the same event kept running beside ours.
    pre = sum(1 for line in lines if line["event"] == "PreToolUse")
    assert pre >= 4 and len(foreign_log.read_text().splitlines()) == pre


@pytest.mark.e2e
@pytest.mark.timeout(900)
def test_e2e_plugin_hooks_run_in_claude_code(tmp_path: Path) -> None:
    plugin = tmp_path / "plugin"
    (plugin / "hooks").mkdir(parents=True)
    shutil.copytree(REPO / ".claude-plugin", plugin / ".claude-plugin")
    for name in ("hooks.json", "run.sh"):
        shutil.copy2(REPO / "hooks" / name, plugin / "hooks" / name)
    (plugin / "hooks" / "record.py").write_text(STUB_LOG_RECORD)
    project = make_basic_project(tmp_path / "project")

    out = tmp_path / "events.jsonl"
    env = {"BC_TEST_OUT": str(out), "BC_PYTHON": sys.executable}
    run_basic(tmp_path, project, ["--plugin-dir", str(plugin)], env)

    lines = logged(out)
    assert {line["event"] for line in lines} >= BASIC_EVENTS
    assert all(line["isolated"] == 1 and line["no_site"] == 1 for line in lines)
