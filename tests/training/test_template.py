"""The chat template: Llama 3.1 text, assistant-only masks token by token, parser round trip."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from claude_bc.training.model import load_tokenizer
from claude_bc.training.template import EOT, PYTHON_TAG, chat_ids, parse_tool_calls, turn_pieces

TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "Read",
            "description": "Read a file.",
            "parameters": {"type": "object"},
        },
    }
]


def tool_call(name: str, args: dict[str, Any]) -> dict[str, Any]:
    return {"type": "function", "function": {"name": name, "arguments": args}}


CHAT: list[dict[str, Any]] = [
    {"role": "system", "content": "You are a coding agent."},
    {"role": "user", "content": "Fix the greeting."},
    {
        "role": "assistant",
        "content": "Reading first.",
        "thinking": "Start at the entry point.",
        "tool_calls": [tool_call("Read", {"file_path": "src/app.py"})],
    },
    {"role": "tool", "content": "1\tprint('hi')"},
    {
        "role": "assistant",
        "content": "Searching and testing in parallel.",
        "tool_calls": [
            tool_call("Grep", {"pattern": "^def ", "-n": True}),
            tool_call("Bash", {"command": "pytest -q", "timeout": 60}),
        ],
    },
    {"role": "tool", "content": "src/app.py:1:def main():"},
    {"role": "tool", "content": "Exit code 1\n1 failed"},
    {"role": "assistant", "content": "Fixed: the greeting now names Claude."},
]


@pytest.fixture(scope="module")
def tok(tiny_model: Path) -> Any:
    return load_tokenizer(str(tiny_model))


def spans(ids: list[int], mask: list[int]) -> list[list[int]]:
    out: list[list[int]] = []
    for i, (token, m) in enumerate(zip(ids, mask, strict=True)):
        if m and (i == 0 or not mask[i - 1]):
            out.append([])
        if m:
            out[-1].append(token)
    return out


def test_text_is_llama31_with_reasoning_and_several_calls(tok: Any) -> None:
    text = tok.apply_chat_template(CHAT, tools=TOOLS, tokenize=False)
    assert text.startswith("<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\n")
    assert "Environment: ipython\nYou are a coding agent." in text
    assert (
        '{"name": "Read", "description": "Read a file.", "parameters": {"type": "object"}}' in text
    )
    # the reasoning text stays before its calls; two calls in one turn, one per line
    assert (
        "<|start_header_id|>assistant<|end_header_id|>\n\nSearching and testing in parallel."
        f'{PYTHON_TAG}{{"name": "Grep", "parameters": {{"pattern": "^def ", "-n": true}}}}\n'
        '{"name": "Bash", "parameters": {"command": "pytest -q", "timeout": 60}}<|eot_id|>'
    ) in text
    assert "<|start_header_id|>ipython<|end_header_id|>\n\nExit code 1\n1 failed<|eot_id|>" in text
    assert text.endswith("Fixed: the greeting now names Claude.<|eot_id|>")


def test_mask_covers_exactly_the_assistant_turns_token_by_token(tok: Any) -> None:
    out = tok.apply_chat_template(
        CHAT, tools=TOOLS, tokenize=True, return_dict=True, return_assistant_tokens_mask=True
    )
    ids, mask = out["input_ids"], out["assistant_masks"]
    eot = tok.convert_tokens_to_ids(EOT)
    header = "<|start_header_id|>assistant<|end_header_id|>\n\n"
    got = spans(ids, mask)
    assistants = [m for m in CHAT if m["role"] == "assistant"]
    assert len(got) == len(assistants) == 3
    for span, message in zip(got, assistants, strict=True):
        assert span[-1] == eot  # each span ends with <|eot_id|>: the model learns to stop
        assert span.count(eot) == 1
        turn = parse_tool_calls(tok.decode(span))
        assert turn.content == message["content"]
        assert [c["name"] for c in turn.tool_calls] == [
            c["function"]["name"] for c in message.get("tool_calls", [])
        ]
    # every masked token is inside a span that starts right after an assistant header,
    # and no token of the system, user or tool turns is masked
    for i, m in enumerate(mask):
        if m and not mask[i - 1]:
            assert tok.decode(ids[:i]).endswith(header)
    unmasked = tok.decode([t for t, m in zip(ids, mask, strict=True) if not m])
    for message in CHAT:
        if message["role"] != "assistant":
            assert message["content"] in unmasked
    assert "Reading first." not in unmasked and "pytest -q" not in unmasked


@pytest.fixture(scope="module")
def gpt2_tok(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """A tokenizer that splits as SmolLM2's does (GPT-2's pre-tokenizer)."""
    from claude_bc.training.tiny import build_tokenizer

    out = tmp_path_factory.mktemp("gpt2-split")
    build_tokenizer(out, gpt2_split=True)
    return load_tokenizer(str(out))


def generated_ids(tokenizer: Any, chat: list[dict[str, Any]]) -> list[int]:
    """The ids generation feeds the model, turn by turn, if it wrote exactly ``chat``'s
    assistant turns: the prompt up to the header, its own tokens, then the tool results
    and the next header (``training.policy``)."""
    from claude_bc.training.policy import Task, _prompt_ids, _tool_ids

    first = next(i for i, m in enumerate(chat) if m["role"] == "assistant")
    task: Any = Task("t", chat[:first], TOOLS, None)  # type: ignore[arg-type]
    ids = _prompt_ids(tokenizer, task)
    text = tokenizer.apply_chat_template(chat, tools=TOOLS, tokenize=False)
    bodies = iter(piece for piece, ours in turn_pieces(text) if ours)
    outputs: list[str] = []
    for message in chat[first:]:
        if message["role"] == "assistant":
            if outputs:
                ids += _tool_ids(tokenizer, outputs)
                outputs = []
            ids += tokenizer.encode(next(bodies), add_special_tokens=False)
        else:
            outputs.append(message["content"])
    return ids


@pytest.mark.parametrize("which", ["llama3 split", "gpt2 split"])
def test_training_ids_are_the_ids_generation_feeds(which: str, tok: Any, gpt2_tok: Any) -> None:
    tokenizer = tok if which == "llama3 split" else gpt2_tok
    ids, mask = chat_ids(tokenizer, CHAT, TOOLS)
    assert ids == generated_ids(tokenizer, CHAT)
    whole = tokenizer.apply_chat_template(
        CHAT, tools=TOOLS, tokenize=True, return_dict=True, return_assistant_tokens_mask=True
    )
    if which == "gpt2 split":
        # why chat_ids exists: tokenized whole, the header's "\n\n" is two tokens before a
        # word, while a generation prompt ends with it as one
        assert whole["input_ids"] != ids
        prompt = tokenizer.apply_chat_template(CHAT[:2], tools=TOOLS, add_generation_prompt=True)
        assert whole["input_ids"][: len(prompt)] != prompt
    else:  # Llama 3's split keeps "\n\n" whole: the same ids either way
        assert whole["input_ids"] == ids and whole["assistant_masks"] == mask
    # the mask: exactly the assistant turns, each ending with <|eot_id|>
    eot = tokenizer.convert_tokens_to_ids(EOT)
    got = spans(ids, mask)
    assert [tokenizer.decode(s) for s in got] == [
        p
        for p, ours in turn_pieces(tokenizer.apply_chat_template(CHAT, tools=TOOLS, tokenize=False))
        if ours
    ]
    assert len(got) == 3 and all(s[-1] == eot for s in got)


def test_turn_pieces_keep_every_character_in_order() -> None:
    header = "<|start_header_id|>assistant<|end_header_id|>\n\n"
    text = f"sys{header}a<|eom_id|>tool{header}b{EOT}user{header}cut off"
    pieces = turn_pieces(text)
    assert "".join(p for p, _ in pieces) == text
    assert [p for p, ours in pieces if ours] == ["a<|eom_id|>", f"b{EOT}", "cut off"]
    assert turn_pieces(f"sys{header}") == [(f"sys{header}", False)]
    assert turn_pieces("") == []


def test_trl_accepts_the_template_for_assistant_only_loss(tok: Any) -> None:
    from trl.chat_template_utils import (
        has_generation_markers,
        is_chat_template_stop_token_trained,
    )

    assert has_generation_markers(tok.chat_template)
    assert is_chat_template_stop_token_trained(tok)


def test_generation_prompt_then_parse_round_trip(tok: Any) -> None:
    prompt = tok.apply_chat_template(
        CHAT[:2], tools=TOOLS, tokenize=False, add_generation_prompt=True
    )
    full = tok.apply_chat_template(CHAT[:3], tools=TOOLS, tokenize=False)
    assert full.startswith(prompt)
    turn = parse_tool_calls(full[len(prompt) :])
    assert turn.thinking == "Start at the entry point."
    assert turn.content == "Reading first."
    assert turn.tool_calls == [{"name": "Read", "arguments": {"file_path": "src/app.py"}}]


def test_malformed_calls_are_reported_not_raised() -> None:
    turn = parse_tool_calls(f'ok{PYTHON_TAG}{{"name": "Read", "parameters": {{}}}}\n{{oops\n[1]')
    assert turn.tool_calls == [{"name": "Read", "arguments": {}}]
    assert len(turn.errors) == 2
    assert parse_tool_calls("<thinking>cut off mid-thou").thinking == "cut off mid-thou"


JSONISH = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=8,
)


@settings(max_examples=40, deadline=None)
@given(
    content=st.text(max_size=60).filter(lambda s: "<|" not in s and not s.startswith("<thinking>")),
    calls=st.lists(
        st.tuples(
            st.text(min_size=1, max_size=12),
            st.dictionaries(st.text(max_size=10), JSONISH, max_size=4),
        ),
        max_size=3,
    ),
)
def test_render_then_parse_round_trips(
    tok: Any, content: str, calls: list[tuple[str, dict[str, Any]]]
) -> None:
    message = {
        "role": "assistant",
        "content": content,
        "tool_calls": [tool_call(n, a) for n, a in calls],
    }
    prompt = tok.apply_chat_template(
        [{"role": "user", "content": "x"}], tokenize=False, add_generation_prompt=True
    )
    text = tok.apply_chat_template([{"role": "user", "content": "x"}, message], tokenize=False)
    turn = parse_tool_calls(text[len(prompt) :])
    assert turn.content == content
    assert turn.tool_calls == [{"name": n, "arguments": a} for n, a in calls]
    assert not turn.errors
