#!/bin/sh
# claude-bc plugin hook launcher. Claude Code runs it for every hook event with the payload JSON
# on stdin; it starts hooks/record.py with the first interpreter that exists:
#   $BC_PYTHON, else ${CLAUDE_PLUGIN_ROOT}/.venv/bin/python, else python3 on PATH.
# A capture hook must never disturb Claude Code: whatever is missing, this exits 0 silently.
root=${CLAUDE_PLUGIN_ROOT:-}
if [ -z "$root" ]; then
    root=$(CDPATH='' cd -- "$(dirname -- "$0")/.." 2>/dev/null && pwd) || root=.
fi
script=$root/hooks/record.py

# usable NAME-OR-PATH: a path must be an executable file (dash's `command -v` only checks that
# it exists, and a failed exec would end this script with a non-zero status); a bare name is
# looked up on PATH.
usable() {
    case $1 in
        */*) [ -f "$1" ] && [ -x "$1" ] ;;
        *) command -v "$1" >/dev/null 2>&1 ;;
    esac
}

py=
if [ -n "${BC_PYTHON:-}" ] && usable "$BC_PYTHON"; then
    py=$BC_PYTHON
elif usable "$root/.venv/bin/python"; then
    py=$root/.venv/bin/python
elif usable python3; then
    py=python3
fi

if [ -z "$py" ] || [ ! -f "$script" ]; then
    # Nothing to run: drain the payload so Claude Code's write never fails, then succeed.
    cat >/dev/null 2>&1
    exit 0
fi
exec "$py" -I -S "$script"
