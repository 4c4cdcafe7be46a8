"""gitleaks-format secret rules, from a file the user provides.

claude-bc ships no third-party rule set. Its own rules (``capture.redact``) always run;
a gitleaks configuration (``config/gitleaks.toml`` of gitleaks, MIT, or any file in that
format, e.g. an organisation's own) adds its rules beside them, run the way gitleaks runs
them (``capture.secrets_rules``: keywords, secret group, entropy, allowlists). The file is
``$BC_SECRET_RULES``, else ``$BC_HOME/secret-rules.toml`` when it exists.
"""

from __future__ import annotations

import os
import tomllib
from functools import lru_cache
from pathlib import Path
from typing import Any

from capture import paths
from capture.errors import BCError

FILE_NAME = "secret-rules.toml"


def rules_file() -> Path | None:
    """The gitleaks-format rules file in use, if any."""
    given = os.environ.get("BC_SECRET_RULES")
    if given:
        return Path(given).expanduser()
    default = paths.data_dir() / FILE_NAME
    return default if default.is_file() else None


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
    """The rules of :func:`rules_file` (none without one)."""
    file = rules_file()
    return _load(str(file) if file else None)[0]


def global_allowlist() -> dict[str, Any]:
    """The file's global allowlist (``regexes``, ``stopwords``), applied to its rules."""
    file = rules_file()
    return _load(str(file) if file else None)[1]
