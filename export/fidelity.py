"""Does the GGUF behave like the model it came from? The export's checks.

1. The chat template embedded in the GGUF is the training template.
2. llama.cpp splits the fixed prompts into exactly the tokens the HF tokenizer gives.
3. f16: next-token logits on the fixed prompts, every position, against the HF model in
   float32: NMSE = Σ(gguf − hf)² / Σ hf² must stay below 1e-4 (llama.cpp's own conversion
   check calls that typical).
4. q4_k_m: how often its top token agrees with the HF model's (reported; for scale, Llama-3
   8B Q4_K_M keeps the same top token 92% of the time).
5. Tool-call round trip through llama_cpp on the shipped (q4_k_m) model: render a chat with
   tools, generate a call (decoding constrained to the template's call syntax, so even an
   untrained model produces one), parse it back, render the parsed turn again: the text
   must be exactly what was generated.

:func:`check` raises ``BCError`` naming every failed check; the figures go to
``fidelity.json`` beside the model.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from claude_bc.capture.errors import BCError
from claude_bc.training.template import EOT, PYTHON_TAG

NMSE_LIMIT = 1e-4

TOOLS: list[dict[str, Any]] = [
    {
        "type": "function",
        "function": {
            "name": "Read",
            "description": "Read a file.",
            "parameters": {
                "type": "object",
                "properties": {"file_path": {"type": "string"}},
                "required": ["file_path"],
            },
        },
    },
    {
        "type": "function",
        "function": {
            "name": "Bash",
            "description": "Run a shell command.",
            "parameters": {
                "type": "object",
                "properties": {"command": {"type": "string"}},
                "required": ["command"],
            },
        },
    },
]

SYSTEM = "You are a coding agent working in the user's project."

PROMPTS: list[list[dict[str, Any]]] = [
    [
        {"role": "system", "content": SYSTEM},
        {"role": "user", "content": "What does src/app.py print? Answer in one line."},
    ],
    [
        {"role": "system", "content": SYSTEM},
        {"role": "user", "content": "Change the greeting target to Claude, then run the tests."},
        {
            "role": "assistant",
            "content": "I'll read the entry point first.",
            "tool_calls": [
                {
                    "type": "function",
                    "function": {"name": "Read", "arguments": {"file_path": "/repo/src/app.py"}},
                }
            ],
        },
        {"role": "tool", "name": "Read", "content": 'def main():\n    print(greet("world"))\n'},
    ],
]

# The template's call syntax, for the round trip: <|python_tag|>{"name": …, "parameters": {…}}
CALL_GRAMMAR = r"""
root ::= TAG call
call ::= "{\"name\": " name ", \"parameters\": {" pair (", " pair){0,2} "}}"
name ::= "\"Read\"" | "\"Bash\""
pair ::= "\"" [a-z_]{1,12} "\": \"" [a-zA-Z0-9_./ -]{1,24} "\""
"""


@dataclass
class Report:
    """The figures of the checks, and what failed."""

    template_embedded: bool = False
    tokenization_matches: bool = False
    positions: int = 0
    f16_nmse: float = float("nan")
    q4_nmse: float = float("nan")
    q4_top1_agreement: float = float("nan")
    roundtrip: dict[str, Any] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def nmse(ours: Any, reference: Any) -> float:
    """Normalised mean squared error Σ(a − b)² / Σ b².

    >>> import numpy as np
    >>> nmse(np.array([1.0, 2.0]), np.array([1.0, 2.0]))
    0.0
    >>> round(nmse(np.array([1.1, 2.0]), np.array([1.0, 2.0])), 4)
    0.002
    """
    import numpy as np

    diff = np.asarray(ours, dtype=np.float64) - np.asarray(reference, dtype=np.float64)
    return float((diff**2).sum() / (np.asarray(reference, dtype=np.float64) ** 2).sum())


def top1_agreement(ours: Any, reference: Any) -> float:
    """Share of positions whose highest-scoring token is the same."""
    import numpy as np

    return float((np.argmax(ours, axis=-1) == np.argmax(reference, axis=-1)).mean())


def hf_side(hf_dir: Path) -> tuple[list[str], list[list[int]], Any, str]:
    """Rendered prompts, their HF token ids, the logits per prompt and the template."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok: Any = AutoTokenizer.from_pretrained(hf_dir)
    texts = [str(tok.apply_chat_template(p, tools=TOOLS, tokenize=False)) for p in PROMPTS]
    ids = [list(tok(t, add_special_tokens=False)["input_ids"]) for t in texts]
    model: Any = AutoModelForCausalLM.from_pretrained(hf_dir, dtype=torch.float32)
    model.eval()
    with torch.no_grad():
        logits = [model(torch.tensor([i])).logits[0].numpy() for i in ids]
    return texts, ids, logits, str(tok.chat_template)


def gguf_logits(path: Path, ids: list[list[int]]) -> list[Any]:
    """Logits at every position of each token list, from llama.cpp."""
    import numpy as np
    from llama_cpp import Llama

    n_ctx = max(len(i) for i in ids) + 8
    llm = Llama(model_path=str(path), n_ctx=n_ctx, logits_all=True, verbose=False, seed=0)
    out = []
    try:
        for tokens in ids:
            llm.reset()  # type: ignore[no-untyped-call]
            llm.eval(tokens)
            out.append(np.array(llm.scores[: len(tokens)], dtype=np.float32))
    finally:
        llm.close()
    return out


def tokenization_matches(path: Path, texts: list[str], ids: list[list[int]]) -> bool:
    from llama_cpp import Llama

    llm = Llama(model_path=str(path), vocab_only=True, verbose=False)
    try:
        return all(
            list(llm.tokenize(t.encode(), add_bos=False, special=True)) == i
            for t, i in zip(texts, ids, strict=True)
        )
    finally:
        llm.close()


def call_grammar(llm: Any) -> str:
    """The call grammar for this vocabulary: ``<|python_tag|>`` as its special token, or as
    plain text where there is none (a base model exported as it is, not trained by us)."""
    tag = llm.tokenize(PYTHON_TAG.encode(), add_bos=False, special=True)
    return CALL_GRAMMAR.replace("TAG", PYTHON_TAG if len(tag) == 1 else json.dumps(PYTHON_TAG))


def roundtrip(path: Path) -> dict[str, Any]:
    """Render → generate (constrained to the call syntax) → parse → render again."""
    from llama_cpp.llama_grammar import LlamaGrammar

    from claude_bc.export import messages as chat
    from claude_bc.export.serve import LocalModel, render_chat

    model = LocalModel(path, n_ctx=2048)
    try:
        prompt = PROMPTS[0]
        tokens = model.tokens(chat.Prompt(prompt, TOOLS))
        grammar = LlamaGrammar.from_string(call_grammar(model.llm), verbose=False)
        result = model.complete(tokens, max_tokens=160, temperature=0.8, grammar=grammar)
        blocks = chat.parse_output(result.text)
        calls = [b for b in blocks if b["type"] == "tool_use"]
        turn = {
            "role": "assistant",
            "content": "".join(b["text"] for b in blocks if b["type"] == "text"),
            "tool_calls": [
                {"type": "function", "function": {"name": c["name"], "arguments": c["input"]}}
                for c in calls
            ],
        }
        again = render_chat(model.template, [*prompt, turn], TOOLS, add_generation_prompt=False)
        expected = render_chat(model.template, prompt, TOOLS) + result.text + EOT
        return {
            "generated": result.text,
            "calls": [{"name": c["name"], "input": c["input"]} for c in calls],
            "ok": bool(calls) and again == expected and result.finish == "end_turn",
        }
    finally:
        model.llm.close()


def check(hf_dir: Path, f16: Path, q4: Path) -> Report:
    """Run every check; raise ``BCError`` listing the failures (the report is attached)."""
    from claude_bc.export.gguf import read_metadata

    report = Report()
    texts, ids, hf_logits, template = hf_side(hf_dir)
    report.template_embedded = read_metadata(f16).get("tokenizer.chat_template") == template
    report.tokenization_matches = tokenization_matches(f16, texts, ids)
    report.positions = sum(len(i) for i in ids)
    import numpy as np

    reference = np.concatenate(hf_logits)
    f16_logits = np.concatenate(gguf_logits(f16, ids))
    q4_logits = np.concatenate(gguf_logits(q4, ids))
    report.f16_nmse = nmse(f16_logits, reference)
    report.q4_nmse = nmse(q4_logits, reference)
    report.q4_top1_agreement = top1_agreement(q4_logits, reference)
    report.roundtrip = roundtrip(q4)
    _judge(report)
    return report


def _judge(report: Report) -> None:
    if not report.template_embedded:
        report.failures.append("the GGUF's chat template is not the training template")
    if not report.tokenization_matches:
        report.failures.append("llama.cpp tokenizes the fixed prompts differently from HF")
    if not report.f16_nmse < NMSE_LIMIT:
        report.failures.append(f"f16 logits NMSE {report.f16_nmse:.3g} ≥ {NMSE_LIMIT:g}")
    if not report.roundtrip.get("ok"):
        report.failures.append(
            f"tool-call round trip failed (generated {report.roundtrip.get('generated')!r})"
        )


class FidelityError(BCError):
    """A failed export check; ``report`` has the figures."""

    def __init__(self, report: Report) -> None:
        super().__init__("export checks failed: " + "; ".join(report.failures))
        self.report = report


def require(report: Report) -> Report:
    if report.failures:
        raise FidelityError(report)
    return report
