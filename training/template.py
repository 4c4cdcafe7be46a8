"""The one chat template of claude-bc (Llama 3.1 format) and its tool-call parser.

Training (``bc-train sft``) and serving (the exported GGUF) use this same string, so the
model sees the same text in both. It differs from the stock Llama 3.1 template where the
stock one cannot express how Claude Code works:

* an assistant turn keeps its text (the reasoning said before the calls) *and* its calls,
  and may hold several calls (parallel tool use); the stock template drops the text and
  raises on a second call;
* the calls follow ``<|python_tag|>``, one JSON object a line,
  ``{"name": ..., "parameters": ...}``, so :func:`parse_tool_calls` can split text from
  calls without guessing;
* an optional ``thinking`` field of an assistant message is rendered first, inside
  ``<thinking>…</thinking>``;
* every assistant turn, up to and including its ``<|eot_id|>``, sits inside
  ``{% generation %}`` so TRL's ``assistant_only_loss`` trains exactly those tokens;
* tool results are ``ipython`` turns, as in Llama 3.1; tool schemas go in the system turn.

Rendered shape (one call turn, then a result, then the answer)::

    <|begin_of_text|><|start_header_id|>system<|end_header_id|>⏎⏎Environment: ipython⏎…<|eot_id|>
    <|start_header_id|>user<|end_header_id|>⏎⏎Fix the bug<|eot_id|>
    <|start_header_id|>assistant<|end_header_id|>⏎⏎Let me look.<|python_tag|>{"name": …}<|eot_id|>
    <|start_header_id|>ipython<|end_header_id|>⏎⏎1  def f(): …<|eot_id|>
    <|start_header_id|>assistant<|end_header_id|>⏎⏎Fixed.<|eot_id|>
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

BOS = "<|begin_of_text|>"
EOT = "<|eot_id|>"
EOM = "<|eom_id|>"
PYTHON_TAG = "<|python_tag|>"
PAD = "<|finetune_right_pad_id|>"
THINK_OPEN = "<thinking>"
THINK_CLOSE = "</thinking>"
# The named special tokens of Llama 3.1 (the real tokenizer has them all; a tiny or a
# non-Llama tokenizer gets the missing ones added so the template renders the same way).
SPECIAL_TOKENS = [
    BOS,
    "<|end_of_text|>",
    "<|start_header_id|>",
    "<|end_header_id|>",
    EOT,
    EOM,
    PYTHON_TAG,
    PAD,
]

TOOLS_PREAMBLE = (
    "You can call these tools. To call tools, write <|python_tag|> after your text, then one "
    'JSON object a line: {"name": tool name, "parameters": its arguments}.'
)

CHAT_TEMPLATE = (
    """{{- bos_token }}
{%- if messages and messages[0].role == 'system' %}
    {%- set system_message = messages[0].content %}
    {%- set messages = messages[1:] %}
{%- else %}
    {%- set system_message = '' %}
{%- endif %}
{{- '<|start_header_id|>system<|end_header_id|>\\n\\n' }}
{%- if tools %}
    {{- 'Environment: ipython\\n' }}
{%- endif %}
{{- system_message }}
{%- if tools %}
    {{- '\\n\\n"""
    + TOOLS_PREAMBLE
    + """\\n\\n' }}
    {%- for tool in tools %}
        {{- (tool.function if tool.function is defined else tool) | tojson }}
        {{- '\\n' }}
    {%- endfor %}
{%- endif %}
{{- '<|eot_id|>' }}
{%- for message in messages %}
    {%- if message.role == 'assistant' %}
        {{- '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}
        {%- generation %}
        {%- if message.thinking %}
            {{- '<thinking>' + message.thinking + '</thinking>\\n' }}
        {%- endif %}
        {%- if message.content %}
            {{- message.content }}
        {%- endif %}
        {%- if message.tool_calls %}
            {{- '<|python_tag|>' }}
            {%- for call in message.tool_calls %}
                {%- set f = call.function if call.function is defined else call %}
                {%- if not loop.first %}{{- '\\n' }}{%- endif %}
                {{- '{"name": ' + (f.name | tojson) + ', "parameters": ' }}
                {%- if f.arguments is string %}
                    {{- f.arguments }}
                {%- else %}
                    {{- f.arguments | tojson }}
                {%- endif %}
                {{- '}' }}
            {%- endfor %}
        {%- endif %}
        {{- '<|eot_id|>' }}
        {%- endgeneration %}
    {%- elif message.role == 'tool' or message.role == 'ipython' %}
        {{- '<|start_header_id|>ipython<|end_header_id|>\\n\\n' }}
        {%- if message.content is string %}
            {{- message.content }}
        {%- else %}
            {{- message.content | tojson }}
        {%- endif %}
        {{- '<|eot_id|>' }}
    {%- else %}
        {{- '<|start_header_id|>' + message.role + '<|end_header_id|>\\n\\n' }}
        {{- message.content + '<|eot_id|>' }}
    {%- endif %}
{%- endfor %}
{%- if add_generation_prompt %}
    {{- '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}
{%- endif %}
"""
)


@dataclass
class ParsedTurn:
    """An assistant turn read back from model output."""

    content: str
    thinking: str = ""
    tool_calls: list[dict[str, Any]] = field(default_factory=list)  # {"name", "arguments"}
    errors: list[str] = field(default_factory=list)  # what after the tag was not a call, and why
    rejected: list[str] = field(default_factory=list)  # that text, as written


ASSISTANT_HEADER = "<|start_header_id|>assistant<|end_header_id|>\n\n"


def turn_pieces(text: str) -> list[tuple[str, bool]]:
    """A rendered chat cut where the model starts and stops writing: each assistant
    turn's body, up to and including its ``<|eot_id|>`` (or ``<|eom_id|>``), is a piece of
    its own (``True``); the text between them is the rest (``False``).

    >>> turn_pieces("<u>" + ASSISTANT_HEADER + "Hi" + EOT + "<t>" + ASSISTANT_HEADER)
    ... # doctest: +NORMALIZE_WHITESPACE
    [('<u><|start_header_id|>assistant<|end_header_id|>\\n\\n', False), ('Hi<|eot_id|>', True),
     ('<t><|start_header_id|>assistant<|end_header_id|>\\n\\n', False)]
    """
    out: list[tuple[str, bool]] = []
    pos = 0
    while (head := text.find(ASSISTANT_HEADER, pos)) >= 0:
        start = head + len(ASSISTANT_HEADER)
        out.append((text[pos:start], False))
        ends = [i for i in (text.find(EOT, start), text.find(EOM, start)) if i >= 0]
        # none: the generation prompt (nothing after it), or a turn cut off short
        pos = min(ends) + len(EOT) if ends else len(text)  # EOT and EOM: the same length
        out.append((text[start:pos], True))
    out.append((text[pos:], False))
    return [(piece, ours) for piece, ours in out if piece]


def piece_ids(encode: Callable[[str], list[int]], text: str) -> tuple[list[int], list[int]]:
    """A rendered chat's token ids, and a mask of the assistant turns' tokens, each piece of
    :func:`turn_pieces` tokenized on its own.

    Why not the whole text at once: a byte-level BPE such as SmolLM2's splits the header's
    ``\\n\\n`` in two when a word follows it (``Ċ`` ``Ċ`` ``I``) but keeps it one token at
    the end of a prompt (``ĊĊ``), which is where every generation starts: a model trained
    on whole texts is then asked to write after a token it never saw there. Cut this way,
    training sees exactly the ids that generation (``training.policy``, ``bc-train serve``)
    feeds the model: the prompt up to the header, the model's own tokens, the tool results
    and the next header. ``encode``: text → ids, special tokens parsed, none added."""
    ids: list[int] = []
    mask: list[int] = []
    for piece, ours in turn_pieces(text):
        got = encode(piece)
        ids += got
        mask += [int(ours)] * len(got)
    return ids, mask


def chat_ids(
    tokenizer: Any,
    messages: list[dict[str, Any]],
    tools: list[dict[str, Any]] | None = None,
    add_generation_prompt: bool = False,
) -> tuple[list[int], list[int]]:
    """A chat's ids and assistant mask as training and generation both use them
    (:func:`piece_ids`), with a Hugging Face tokenizer and its chat template."""
    text = tokenizer.apply_chat_template(
        messages, tools=tools or None, tokenize=False, add_generation_prompt=add_generation_prompt
    )
    return piece_ids(lambda t: list(tokenizer.encode(t, add_special_tokens=False)), str(text))


def render_call(name: str, arguments: dict[str, Any]) -> str:
    """One call exactly as the template writes it (``tojson`` keeps key order).

    >>> render_call("Read", {"file_path": "a.py"})
    '{"name": "Read", "parameters": {"file_path": "a.py"}}'
    """
    return json.dumps({"name": name, "parameters": arguments}, ensure_ascii=False)


def _strip_end(text: str) -> str:
    for stop in (EOT, EOM, "<|end_of_text|>"):
        if text.endswith(stop):
            return text[: -len(stop)]
    return text


def _split_thinking(text: str) -> tuple[str, str]:
    if not text.startswith(THINK_OPEN):
        return "", text
    end = text.find(THINK_CLOSE)
    if end < 0:  # cut off while thinking: all of it is thinking
        return text[len(THINK_OPEN) :], ""
    rest = text[end + len(THINK_CLOSE) :]
    return text[len(THINK_OPEN) : end], rest.removeprefix("\n")


def as_call(obj: Any) -> dict[str, Any]:
    """One decoded JSON value as a call ``{"name", "arguments"}``, or ``ValueError``.

    Accepts Meta's Llama 3.1 shape ``{"name", "parameters"}``, its ``"arguments"``
    variant (also as a JSON string), and the OpenAI/Ollama wrapper ``{"function": …}``.

    >>> as_call({"name": "Read", "arguments": '{"file_path": "a"}'})
    {'name': 'Read', 'arguments': {'file_path': 'a'}}
    """
    if isinstance(obj, dict) and isinstance(obj.get("function"), dict) and "name" not in obj:
        obj = obj["function"]
    if not isinstance(obj, dict) or not isinstance(obj.get("name"), str) or not obj["name"]:
        raise ValueError("not an object with a string 'name'")
    args = obj.get("parameters", obj.get("arguments", {}))
    if isinstance(args, str):  # some models quote the arguments object
        args = json.loads(args)
    if args is None:
        args = {}
    if not isinstance(args, dict):
        raise ValueError("'parameters' is not an object")
    return {"name": obj["name"], "arguments": args}


_DECODER = json.JSONDecoder()
_SEPARATORS = " \t\r\n;,"


def scan_calls(text: str) -> tuple[list[dict[str, Any]], list[tuple[str, str]]]:
    """Every call in ``text``: JSON objects one a line, pretty-printed over several lines,
    separated by ``;`` or ``,``, or a JSON array of them. What is not a call is returned
    as ``(text, why)``, one entry per offending line, and scanning goes on after it.

    >>> calls, bad = scan_calls('{"name": "A", "parameters": {}}; [{"name": "B", "arguments": {}}]')
    >>> [c["name"] for c in calls], bad
    (['A', 'B'], [])
    >>> scan_calls('{"name": "A", "parameters": {}}\\n{oops')[1]
    [('{oops', 'Expecting property name enclosed in double quotes')]
    """
    calls: list[dict[str, Any]] = []
    bad: list[tuple[str, str]] = []
    i, n = 0, len(text)
    while True:
        while i < n and text[i] in _SEPARATORS:
            i += 1
        if i >= n:
            return calls, bad
        try:
            value, end = _DECODER.raw_decode(text, i)
            items = value if isinstance(value, list) and value else [value]
            found = [as_call(v) for v in items]
        except ValueError as exc:  # json.JSONDecodeError is a ValueError
            line_end = text.find("\n", i)
            line_end = n if line_end < 0 else line_end
            bad.append((text[i:line_end].strip(), str(getattr(exc, "msg", exc))))
            i = line_end
            continue
        calls += found
        i = end


def _bare_starts(body: str) -> list[int]:
    """Where a bare JSON call could start: ``{`` or ``[`` opening the body or a line."""
    starts = []
    at_line_start = True
    for i, ch in enumerate(body):
        if at_line_start and ch in "{[":
            starts.append(i)
        if ch == "\n":
            at_line_start = True
        elif ch not in " \t":
            at_line_start = False
    return starts


def parse_tool_calls(text: str) -> ParsedTurn:
    """Split one generated assistant turn into thinking, text and tool calls.

    The one parser of claude-bc (eval, RL, ``bc-train serve``, the export's checks), fair
    to models that were never trained on our template. It reads what Meta documents for
    Llama 3.1 and what Ollama's parser takes from a model with our Modelfile:

    * calls after ``<|python_tag|>`` (our template; Meta's form for tool calls) as
      ``{"name": …, "parameters": …}`` or with ``"arguments"``;
    * the same JSON *without* the tag (Meta's JSON-based tool calling): a ``{`` or ``[``
      that opens the turn or a line starts calls when it decodes as calls, else it is text;
    * pretty-printed JSON, several calls separated by newlines, ``;`` or ``,``, and a JSON
      array of calls.

    After the tag, whatever is not a call goes to ``errors`` (and, as written, to
    ``rejected``) rather than raising, so a reward or an agent loop can score or report a
    malformed call.

    >>> t = parse_tool_calls('Look.<|python_tag|>{"name": "Read", "parameters": {"n": 1}}')
    >>> t.content, t.tool_calls
    ('Look.', [{'name': 'Read', 'arguments': {'n': 1}}])
    >>> parse_tool_calls('{\\n  "name": "Read",\\n  "arguments": {"n": 1}\\n}').tool_calls
    [{'name': 'Read', 'arguments': {'n': 1}}]
    >>> parse_tool_calls('Use {"name": "x"} like this.').tool_calls
    []
    """
    thinking, body = _split_thinking(_strip_end(text.removeprefix(BOS)))
    content, tag, calls_text = body.partition(PYTHON_TAG)
    if tag:
        calls, bad = scan_calls(calls_text)
        errors = [f"{raw[:200]}: {why}" for raw, why in bad]
        return ParsedTurn(content, thinking, calls, errors, [raw for raw, _ in bad])
    for start in _bare_starts(body):
        calls, bad = scan_calls(body[start:])
        if calls:  # a bare JSON call; what follows it that is not a call is malformed
            errors = [f"{raw[:200]}: {why}" for raw, why in bad]
            return ParsedTurn(body[:start], thinking, calls, errors, [raw for raw, _ in bad])
    return ParsedTurn(body, thinking)


# --- tool schemas in the chat format --------------------------------------------------


def _first_paragraph(text: str, limit: int) -> str:
    para = text.strip().split("\n\n", 1)[0].strip()
    return para if len(para) <= limit else para[: limit - 1].rstrip() + "…"


def _compact_schema(node: Any) -> Any:
    """Drop nested descriptions to their first sentence so all tools fit in the context."""
    if isinstance(node, dict):
        out = {k: _compact_schema(v) for k, v in node.items() if k != "$schema"}
        if isinstance(node.get("description"), str):
            out["description"] = _first_paragraph(node["description"].split(". ")[0], 160)
        return out
    if isinstance(node, list):
        return [_compact_schema(v) for v in node]
    return node


def to_hf_tool(tool: dict[str, Any], detail: str) -> dict[str, Any]:
    """An Anthropic tool (name, description, input_schema) in the chat-template format."""
    params = tool.get("input_schema") or {"type": "object", "properties": {}}
    desc = str(tool.get("description", ""))
    if detail == "compact":
        desc, params = _first_paragraph(desc, 400), _compact_schema(params)
    return {
        "type": "function",
        "function": {"name": tool["name"], "description": desc, "parameters": params},
    }
