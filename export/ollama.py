"""Register the exported model with Ollama as ``cc-claude-agent:latest``.

Ollama does not run the Jinja template embedded in the GGUF: a Modelfile's ``TEMPLATE`` is
a Go template over Ollama's own message structure (``.Messages`` with ``.Role``,
``.Content``, ``.Thinking``, ``.ToolCalls``; ``.Tools``). :data:`GO_TEMPLATE` writes the
same text as the training template (``training/template.py``) — same headers, roles,
``<thinking>``, ``<|python_tag|>`` calls one a line, ``ipython`` results — except that
JSON inside it (tool schemas, call arguments) comes from Go's encoder: compact, with keys
of maps sorted. The Modelfile also sets the training system prompt, the end-of-turn stop
tokens and the sampling parameters.

``ollama create`` runs when ``ollama`` is on PATH; otherwise the command to run is printed.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from claude_bc.capture.errors import BCError
from claude_bc.training.config import DEFAULT_SYSTEM
from claude_bc.training.template import BOS, EOM, EOT, TOOLS_PREAMBLE

OLLAMA_NAME = "cc-claude-agent:latest"
STOPS = (EOT, EOM, "<|end_of_text|>")
PARAMETERS = {"temperature": "0.7", "top_p": "0.95", "num_ctx": "8192"}

HEADER = "<|start_header_id|>{role}<|end_header_id|>\n\n"
# The first message is the system turn when it is a system message (Ollama puts the
# Modelfile's SYSTEM there when a request has none); later system messages are ordinary
# turns, as in the Jinja template.
GO_TEMPLATE = (
    '{{- $sys := "" }}'
    '{{- with .Messages }}{{ with index . 0 }}{{ if eq .Role "system" }}'
    "{{ $sys = .Content }}{{ end }}{{ end }}{{ end }}"
    + HEADER.format(role="system")
    + "{{ if .Tools }}Environment: ipython\n{{ end }}{{ $sys }}"
    + "{{ if .Tools }}\n\n"
    + TOOLS_PREAMBLE
    + "\n\n{{ range .Tools }}{{ json .Function }}\n{{ end }}{{ end }}"
    + EOT
    + "{{ range $i, $m := .Messages }}"
    + '{{ if and (eq $i 0) (eq .Role "system") }}'
    + '{{ else if eq .Role "assistant" }}'
    + HEADER.format(role="assistant")
    + "{{ if .Thinking }}<thinking>{{ .Thinking }}</thinking>\n{{ end }}{{ .Content }}"
    + "{{ if .ToolCalls }}<|python_tag|>{{ range $j, $c := .ToolCalls }}"
    + '{{ if $j }}\n{{ end }}{"name": {{ json .Function.Name }}, "parameters": '
    + "{{ json .Function.Arguments }}}{{ end }}{{ end }}"
    + EOT
    + '{{ else if eq .Role "tool" }}'
    + HEADER.format(role="ipython")
    + "{{ .Content }}"
    + EOT
    + "{{ else }}<|start_header_id|>{{ .Role }}<|end_header_id|>\n\n{{ .Content }}"
    + EOT
    + "{{ end }}{{ end }}"
    + HEADER.format(role="assistant")
)


def _quoted(text: str) -> str:
    if '"""' in text:
        raise BCError('a Modelfile value cannot contain """')
    return f'"""{text}"""'


def modelfile(gguf: Path, add_bos: bool, system: str = DEFAULT_SYSTEM) -> str:
    """The Modelfile text. ``add_bos``: whether llama.cpp adds BOS itself for this GGUF
    (then the template must not write it again)."""
    template = GO_TEMPLATE if add_bos else BOS + GO_TEMPLATE
    lines = [
        "# Written by bc-train export: the claude-bc training template in Ollama's syntax.",
        f"FROM {gguf.resolve()}",
        f"TEMPLATE {_quoted(template)}",
        f"SYSTEM {_quoted(system)}",
        *(f'PARAMETER stop "{s}"' for s in STOPS),
        *(f"PARAMETER {k} {v}" for k, v in PARAMETERS.items()),
    ]
    return "\n".join(lines) + "\n"


def adds_bos(gguf: Path) -> bool:
    """Whether llama.cpp adds a BOS token itself when it tokenizes for this model."""
    import llama_cpp

    llm = llama_cpp.Llama(model_path=str(gguf), vocab_only=True, verbose=False)
    try:
        return bool(llama_cpp.llama_vocab_get_add_bos(llm._model.vocab))
    finally:
        llm.close()


def write_modelfile(gguf: Path, out: Path | None = None) -> Path:
    """Write ``Modelfile`` next to the model (or to ``out``)."""
    path = out or gguf.with_name("Modelfile")
    path.write_text(modelfile(gguf, adds_bos(gguf)), encoding="utf-8")
    return path


def register(modelfile_path: Path, name: str = OLLAMA_NAME) -> str:
    """``ollama create NAME -f Modelfile`` if Ollama is installed; returns what to tell the
    user either way. A failing ``ollama create`` raises with its message."""
    command = ["ollama", "create", name, "-f", str(modelfile_path)]
    shown = " ".join(command)
    binary = shutil.which("ollama")
    if binary is None:
        return f"ollama is not installed here; to register the model run:\n  {shown}"
    proc = subprocess.run([binary, *command[1:]], capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        detail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]
        raise BCError(f"`{shown}` failed: {detail[0]}")
    return f"registered with Ollama as {name} (ollama run {name})"
