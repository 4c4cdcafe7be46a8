"""Six task families over small generated repositories, each with one consistent workflow.

Every instance is a repository (``files``), a prompt, and the teacher's turns in the fake
Messages API's scenario format (``{{CWD}}`` stands for the repository root). The teacher
works the way captured Claude Code sessions do, always the same way per family:

* a short plan in the first turn's text;
* search (Grep/Glob) before reading, read before editing;
* the tests (or a check) run after every edit;
* one fixed recovery after a failed command: the log named in a ``diagnose`` prompt may
  have been rotated, so ``tail`` fails; the teacher then lists the folder with Glob and
  tails the file it found;
* parallel calls where they fit (both files of a rename are read, and edited, together);
* a final answer that says what changed (or that nothing did).

Names, file paths and values of training instances come from pools disjoint from the
held-out pools (``split="train"`` vs ``"heldout"``), and each family has one extra
wording of its request that only held-out instances use (``reworded=True``).
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

FAMILIES = ("locate", "fix_test", "rename", "explain", "config", "diagnose")
TEST_COMMAND = "python3 -m unittest discover"

# Disjoint pools: a held-out instance never shares a name, path or value with training.
POOLS: dict[str, dict[str, list[str]]] = {
    "train": {
        "verb": [
            "parse",
            "load",
            "build",
            "render",
            "merge",
            "split",
            "scale",
            "clean",
            "count",
            "fetch",
            "store",
            "sort",
            "format",
            "check",
            "apply",
            "encode",
            "decode",
            "resolve",
            "compute",
            "filter",
            "update",
            "select",
            "convert",
            "collect",
        ],
        "noun": [
            "order",
            "invoice",
            "user",
            "token",
            "report",
            "record",
            "price",
            "stock",
            "route",
            "queue",
            "event",
            "cache",
            "batch",
            "frame",
            "packet",
            "ticket",
            "budget",
            "layer",
            "sample",
            "vector",
            "signal",
            "session",
            "account",
            "profile",
        ],
        "pkg": [
            "core",
            "utils",
            "services",
            "engine",
            "common",
            "helpers",
            "domain",
            "models",
            "billing",
            "shipping",
            "catalog",
            "storage",
        ],
        "service": [
            "gateway",
            "indexer",
            "mailer",
            "scheduler",
            "tracker",
            "uploader",
            "notifier",
            "crawler",
        ],
        "key": [
            "timeout",
            "retries",
            "port",
            "workers",
            "max_items",
            "batch_size",
            "pool_size",
            "cache_ttl",
        ],
    },
    "heldout": {
        "verb": ["normalize", "validate", "export", "rank", "score", "pack", "trim", "wrap"],
        "noun": ["ledger", "badge", "voucher", "coupon", "parcel", "shelf"],
        "pkg": ["inventory", "payroll", "ledgerkit"],
        "service": ["billing_api", "renderer"],
        "key": ["max_depth", "rate_limit"],
    },
}

OPS = [  # (expression, what it does, a buggy version)
    ("a + b", "adds the two values", "a - b"),
    ("a * b", "multiplies the two values", "a + b"),
    ("a - b", "subtracts the second value from the first", "b - a"),
    ("max(a, b)", "returns the larger value", "min(a, b)"),
    ("min(a, b)", "returns the smaller value", "max(a, b)"),
]
ERRORS = [  # (exception, the line that raises it, cause)
    ("ZeroDivisionError", "return total / count", "`count` is 0 when the input is empty"),
    ("KeyError", "return data[key]", "the key is missing from the input mapping"),
    ("IndexError", "return items[0]", "the list of items is empty"),
]

PROMPTS: dict[str, tuple[list[str], str]] = {  # family: (training wordings, held-out wording)
    "locate": (
        ["Where is the function `{fn}` defined?", "Which file defines `{fn}`?"],
        "I can't find {fn} anywhere in this codebase - point me to its definition.",
    ),
    "fix_test": (
        ["`test_{fn}` fails. Fix the bug.", "The test `test_{fn}` is failing; fix the code."],
        "Something makes test_{fn} go red. Please repair it.",
    ),
    "rename": (
        [
            "Rename the function `{old}` to `{new}` across the project.",
            "Rename `{old}` to `{new}`.",
        ],
        "Please change every use of {old} so that it is called {new} instead.",
    ),
    "explain": (
        ["Explain what the module `{mod}` does.", "What does `{mod}` do?"],
        "Give me a short overview of the {mod} module.",
    ),
    "config": (
        ["Set `{key}` to {new} in the config and check it.", "Change `{key}` to {new}."],
        "The {key} setting should be {new} from now on; update it and confirm.",
    ),
    "diagnose": (
        [
            "The {service} service crashed on {day}. Find out why from its log.",
            "Why did {service} crash on {day}?",
        ],
        "Something broke in {service} on {day}; look at the logs and tell me the cause.",
    ),
}


@dataclass
class Instance:
    """One task: the repository, the prompt, the teacher's turns, what it should end as."""

    family: str
    split: str  # train | heldout
    reworded: bool
    prompt: str
    files: dict[str, str]
    turns: list[dict[str, Any]]
    final_files: dict[str, str] = field(default_factory=dict)  # the repo after the teacher
    name: str = ""
    key: str = ""  # split:family:index, stable for a seed

    def scenario(self) -> dict[str, Any]:
        return {
            "prompt": self.prompt,
            "turns": self.turns,
            "fallback_text": "Nothing more to do.",
            "side_text": self.family,
        }


# --- turn builders -------------------------------------------------------------------------------

_ids = iter(range(1, 10**9))


def _call(name: str, **args: Any) -> dict[str, Any]:
    return {
        "type": "tool_use",
        "id": f"toolu_01teacher{next(_ids):014d}",
        "name": name,
        "input": args,
    }


def _turn(text: str, *calls: dict[str, Any]) -> dict[str, Any]:
    blocks: list[dict[str, Any]] = [{"type": "text", "text": text}] if text else []
    return {"content": [*blocks, *calls]}


def _path(rel: str) -> str:
    return "{{CWD}}/" + rel


def _grep_def(fn: str) -> dict[str, Any]:
    return _call("Grep", pattern=f"def {fn}", output_mode="content", **{"-n": True})


def _run_tests() -> dict[str, Any]:
    return _call("Bash", command=TEST_COMMAND)


# --- repository pieces ---------------------------------------------------------------------------


def _function(name: str, expr: str, doc: str) -> str:
    return f'def {name}(a, b):\n    """{doc[0].upper()}{doc[1:]}."""\n    return {expr}\n'


def _module(functions: list[str]) -> str:
    return "\n\n".join(functions)


def _line_of(text: str, needle: str) -> int:
    return next(i for i, line in enumerate(text.splitlines(), 1) if needle in line)


class _Names:
    """Draws distinct names from one split's pools."""

    def __init__(self, rng: random.Random, split: str) -> None:
        self.rng, self.pool, self.used = rng, POOLS[split], set[str]()

    def pick(self, kind: str) -> str:
        for _ in range(1000):
            value = self.rng.choice(self.pool[kind])
            if value not in self.used:
                self.used.add(value)
                return value
        raise ValueError(f"pool {kind!r} exhausted")

    def fn(self) -> str:
        for _ in range(1000):
            name = f"{self.rng.choice(self.pool['verb'])}_{self.rng.choice(self.pool['noun'])}"
            if name not in self.used:
                self.used.add(name)
                return name
        raise ValueError("function names exhausted")

    def mod(self) -> str:
        for _ in range(1000):
            suffix = self.rng.choice(["ops", "math", "calc", "rules", "tools"])
            name = f"{self.rng.choice(self.pool['noun'])}_{suffix}"
            if name not in self.used:
                self.used.add(name)
                return name
        raise ValueError("module names exhausted")


def _prompt(family: str, rng: random.Random, reworded: bool, **values: str) -> str:
    train, held = PROMPTS[family]
    text = held if reworded else rng.choice(train)
    return text.format(**values)


def _test_file(pkg: str, mod: str, fns: list[tuple[str, str]]) -> str:
    lines = ["import unittest", "", f"from {pkg}.{mod} import {', '.join(f for f, _ in fns)}", ""]
    lines += ["", f"class Test{mod.title().replace('_', '')}(unittest.TestCase):"]
    for fn, expected in fns:
        lines += [
            f"    def test_{fn}(self):",
            f"        self.assertEqual({fn}(6, 3), {expected})",
            "",
        ]
    return "\n".join(lines).rstrip() + "\n"


def _value(expr: str) -> int:
    a, b = 6, 3
    return int(eval(expr, {"max": max, "min": min}, {"a": a, "b": b}))  # our own constant text


# --- the families --------------------------------------------------------------------------------


def locate(rng: random.Random, split: str, reworded: bool) -> Instance:
    n = _Names(rng, split)
    pkg = n.pick("pkg")
    mods = {n.mod(): [(n.fn(), *rng.choice(OPS)) for _ in range(2)] for _ in range(2)}
    files = {f"{pkg}/__init__.py": ""}
    for mod, fns in mods.items():
        files[f"{pkg}/{mod}.py"] = _module([_function(f, e, d) for f, e, d, _ in fns])
    mod = rng.choice(list(mods))
    fn, _, doc, _ = rng.choice(mods[mod])
    path = f"{pkg}/{mod}.py"
    line = _line_of(files[path], f"def {fn}(")
    turns = [
        _turn(f"I'll search for the definition of `{fn}`, then read it.", _grep_def(fn)),
        _turn(f"Found it in `{path}`. Reading the file.", _call("Read", file_path=_path(path))),
        _turn(f"`{fn}` is defined in `{path}` at line {line}: it {doc}. No files were changed."),
    ]
    prompt = _prompt("locate", rng, reworded, fn=fn)
    return Instance("locate", split, reworded, prompt, files, turns, dict(files), name=fn)


def fix_test(rng: random.Random, split: str, reworded: bool) -> Instance:
    n = _Names(rng, split)
    pkg, mod = n.pick("pkg"), n.mod()
    first = rng.choice(OPS)
    # the other function must not hold the buggy expression: the fix's Edit must be unique
    ops = [first, rng.choice([o for o in OPS if o[0] not in (first[0], first[2])])]
    fns = [(n.fn(), *op) for op in ops]
    bad_fn, good, doc, bad = fns[0]
    path, test = f"{pkg}/{mod}.py", f"{pkg}/test_{mod}.py"
    source = [_function(bad_fn, bad, doc)] + [_function(f, e, d) for f, e, d, _ in fns[1:]]
    files = {
        f"{pkg}/__init__.py": "",
        path: _module(source),
        test: _test_file(pkg, mod, [(f, str(_value(e))) for f, e, _, _ in fns]),
    }
    final = dict(files)
    final[path] = files[path].replace(f"return {bad}\n", f"return {good}\n", 1)
    turns = [
        _turn("I'll run the tests first to see what fails.", _run_tests()),
        _turn(f"`test_{bad_fn}` fails. Searching for `{bad_fn}`.", _grep_def(bad_fn)),
        _turn(f"Reading `{path}` before editing it.", _call("Read", file_path=_path(path))),
        _turn(
            f"`{bad_fn}` returns `{bad}` but it {doc}. Fixing it.",
            _call(
                "Edit",
                file_path=_path(path),
                old_string=f"return {bad}",
                new_string=f"return {good}",
            ),
        ),
        _turn("Running the tests again.", _run_tests()),
        _turn(
            f"Fixed `{bad_fn}` in `{path}`: it returned `{bad}` instead of `{good}`. "
            "All tests pass now."
        ),
    ]
    prompt = _prompt("fix_test", rng, reworded, fn=bad_fn)
    return Instance("fix_test", split, reworded, prompt, files, turns, final, name=bad_fn)


def rename(rng: random.Random, split: str, reworded: bool) -> Instance:
    n = _Names(rng, split)
    pkg, mod_a, mod_b = n.pick("pkg"), n.mod(), n.mod()
    old, new, user = n.fn(), n.fn(), n.fn()
    expr, doc, _ = rng.choice(OPS)
    a, b = f"{pkg}/{mod_a}.py", f"{pkg}/{mod_b}.py"
    files = {
        f"{pkg}/__init__.py": "",
        a: _function(old, expr, doc),
        b: f"from {pkg}.{mod_a} import {old}\n\n\n"
        + f'def {user}(a, b):\n    """Twice the result of {old}."""\n    return 2 * {old}(a, b)\n',
        f"{pkg}/test_{mod_b}.py": _test_file(pkg, mod_b, [(user, str(2 * _value(expr)))]),
    }
    final = {k: v.replace(old, new) if k in (a, b) else v for k, v in files.items()}
    turns = [
        _turn(f"I'll find every file that mentions `{old}`.", _call("Grep", pattern=old)),
        _turn(
            "Reading both files before editing.",
            _call("Read", file_path=_path(a)),
            _call("Read", file_path=_path(b)),
        ),
        _turn(
            "Renaming in both files.",
            _call("Edit", file_path=_path(a), old_string=old, new_string=new, replace_all=True),
            _call("Edit", file_path=_path(b), old_string=old, new_string=new, replace_all=True),
        ),
        _turn("Running the tests to check nothing broke.", _run_tests()),
        _turn(
            f"Renamed `{old}` to `{new}` in `{a}` (the definition) and `{b}` (its import and "
            "call). The tests pass."
        ),
    ]
    prompt = _prompt("rename", rng, reworded, old=old, new=new)
    return Instance("rename", split, reworded, prompt, files, turns, final, name=old)


def explain(rng: random.Random, split: str, reworded: bool) -> Instance:
    n = _Names(rng, split)
    pkg, mod = n.pick("pkg"), n.mod()
    fns = [(n.fn(), *op) for op in rng.sample(OPS, rng.choice([2, 3]))]
    path = f"{pkg}/{mod}.py"
    files = {f"{pkg}/__init__.py": "", path: _module([_function(f, e, d) for f, e, d, _ in fns])}
    listed = "; ".join(f"`{f}` {d}" for f, _, d, _ in fns)
    turns = [
        _turn(f"I'll locate the `{mod}` module first.", _call("Glob", pattern=f"**/{mod}.py")),
        _turn("Reading it.", _call("Read", file_path=_path(path))),
        _turn(
            f"`{path}` holds {len(fns)} small arithmetic helpers: {listed}. No files were changed."
        ),
    ]
    prompt = _prompt("explain", rng, reworded, mod=mod)
    return Instance("explain", split, reworded, prompt, files, turns, dict(files), name=mod)


def config(rng: random.Random, split: str, reworded: bool) -> Instance:
    n = _Names(rng, split)
    service, key = n.pick("service"), n.pick("key")
    old = rng.choice([3, 5, 8, 10, 30, 60])
    new = rng.choice([v for v in (2, 4, 12, 20, 45, 90) if v != old])
    path = f"config/{service}.json"
    files = {path: f'{{\n  "name": "{service}",\n  "{key}": {old},\n  "debug": false\n}}\n'}
    final = {path: files[path].replace(f'"{key}": {old}', f'"{key}": {new}')}
    line = _line_of(files[path], f'"{key}"')
    turns = [
        _turn(
            f"I'll find where `{key}` is set.",
            _call("Grep", pattern=key, output_mode="content", **{"-n": True}),
        ),
        _turn(f"Reading `{path}` before editing it.", _call("Read", file_path=_path(path))),
        _turn(
            f"Changing `{key}` from {old} to {new}.",
            _call(
                "Edit",
                file_path=_path(path),
                old_string=f'"{key}": {old}',
                new_string=f'"{key}": {new}',
            ),
        ),
        _turn("Checking the new value.", _call("Bash", command=f"grep -n {key} {path}")),
        _turn(
            f"Set `{key}` from {old} to {new} in `{path}`; checked with grep: line {line} now "
            f'reads `"{key}": {new}`.'
        ),
    ]
    prompt = _prompt("config", rng, reworded, key=key, new=str(new))
    return Instance("config", split, reworded, prompt, files, turns, final, name=f"{service}.{key}")


def diagnose(rng: random.Random, split: str, reworded: bool) -> Instance:
    n = _Names(rng, split)
    service, pkg, mod, fn = n.pick("service"), n.pick("pkg"), n.mod(), n.fn()
    error, raising, cause = rng.choice(ERRORS)
    path = f"{pkg}/{mod}.py"
    args = {"ZeroDivisionError": "total, count", "KeyError": "data, key", "IndexError": "items"}
    source = f'def {fn}({args[error]}):\n    """Used by the {service} service."""\n    {raising}\n'
    rotated = rng.random() < 0.5
    log = f"logs/{service}.log" + (".1" if rotated else "")
    stamp = f"2026-0{rng.randint(1, 9)}-1{rng.randint(0, 9)}"
    lines = [f"{stamp} 0{h}:00:00 INFO {service}: tick {h}" for h in range(1, 4)]
    lines += [
        f"{stamp} 04:00:00 ERROR {service}: unhandled exception",
        "Traceback (most recent call last):",
        f'  File "{path}", line 3, in {fn}',
        f"    {raising}",
        f"{error}: {'division by zero' if error == 'ZeroDivisionError' else 'boom'}",
    ]
    files = {f"{pkg}/__init__.py": "", path: source, log: "\n".join(lines) + "\n"}
    tail = f"tail -n 20 logs/{service}.log"
    turns = [_turn("I'll look at the end of the service's log first.", _call("Bash", command=tail))]
    if rotated:
        turns += [
            _turn(
                "That log does not exist; listing the log folder.", _call("Glob", pattern="logs/*")
            ),
            _turn(
                "The log was rotated. Reading the rotated file.",
                _call("Bash", command=f"tail -n 20 {log}"),
            ),
        ]
    turns += [
        _turn(
            f"The traceback points to `{path}`; reading it.", _call("Read", file_path=_path(path))
        ),
        _turn(
            f"The crash is {error} in `{fn}` (`{path}`, line 3, `{raising}`): {cause}. "
            "No files were changed."
        ),
    ]
    prompt = _prompt("diagnose", rng, reworded, service=service, day=stamp)
    return Instance("diagnose", split, reworded, prompt, files, turns, dict(files), name=service)


GENERATORS: dict[str, Callable[[random.Random, str, bool], Instance]] = {
    "locate": locate,
    "fix_test": fix_test,
    "rename": rename,
    "explain": explain,
    "config": config,
    "diagnose": diagnose,
}


def instances(family: str, split: str, count: int, seed: int = 0) -> list[Instance]:
    """The first ``count`` instances of one family and split, each from its own seeded
    generator, so a smaller corpus is a prefix of a bigger one (captures can be reused).
    Instances whose prompt repeats an earlier one are skipped."""
    out: list[Instance] = []
    prompts: set[str] = set()
    for i in range(100 * count + 100):
        if len(out) >= count:
            break
        inst = GENERATORS[family](random.Random(f"{seed}:{split}:{family}:{i}"), split, False)
        if inst.prompt not in prompts:
            prompts.add(inst.prompt)
            inst.key = f"{split}:{family}:{i}"
            out.append(inst)
    return out


def corpus(
    train_per_family: int, heldout_per_family: int, seed: int = 0
) -> tuple[list[Instance], list[Instance]]:
    """Training instances and held-out ones (plus one reworded per family), no repeats.

    Held-out instances draw from the held-out pools only; each family gets one more
    held-out instance that words the request the held-out way.
    """
    train: list[Instance] = []
    held: list[Instance] = []
    for family in FAMILIES:
        train += instances(family, "train", train_per_family, seed)
        held += instances(family, "heldout", heldout_per_family, seed)
        inst = GENERATORS[family](random.Random(f"{seed}:reworded:{family}"), "heldout", True)
        inst.key = f"heldout:{family}:reworded"
        held.append(inst)
    random.Random(seed).shuffle(train)
    return train, held


def leaks(train: list[Instance], held: list[Instance]) -> list[str]:
    """Every held-out prompt, repository file path or repository that also occurs in training."""
    problems = []
    train_prompts = {i.prompt for i in train}
    train_paths = {p for i in train for p in i.files}
    train_repos = {tuple(sorted(i.files.items())) for i in train}
    for inst in held:
        if inst.prompt in train_prompts:
            problems.append(f"prompt: {inst.prompt}")
        shared = sorted(set(inst.files) & train_paths)
        problems += [f"path: {p} ({inst.family})" for p in shared]
        if tuple(sorted(inst.files.items())) in train_repos:
            problems.append(f"repository of {inst.family}:{inst.name}")
    return problems
