"""HF checkpoint → GGUF f16 with llama.cpp's own converter, at the runtime's revision.

The llama-cpp-python source distribution carries ``vendor/llama.cpp/convert_hf_to_gguf.py``
(with its ``conversion/`` package and ``gguf-py``) at exactly the llama.cpp revision that the
installed runtime was built from. ``scripts/setup`` extracts those files once into
``.cache/llama.cpp/`` (``python -m claude_bc.export.gguf fetch``; the sdist comes from pip's cache
after the first time), so the converter and the runtime always agree.

The converter names a BPE vocabulary's pre-tokenizer by hashing the token ids of a test
string, so any vocabulary it has not seen, such as one trained locally, stops it with "BPE
pre-tokenizer was not recognized". llama.cpp's documented remedy is to register the new
tokenizer's hash with the pre-tokenizer it uses (``convert_hf_to_gguf_update.py``). We do
that for this one conversion, and only after checking ``tokenizer.json`` itself: when its
pre-tokenizer is exactly Llama 3's split (the real Llama 3.1 tokenizer's, which the tiny
test tokenizer copies) the vocabulary is registered as ``llama-bpe``; anything else still
fails. The export's tokenization check then proves llama.cpp splits text the same way.

Run by hand: ``python -m claude_bc.export.gguf convert HF_DIR OUT.gguf [f16]``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from importlib import metadata
from pathlib import Path
from typing import Any

from claude_bc.capture.errors import BCError
from claude_bc.training.tiny import LLAMA3_SPLIT

REPO = Path(__file__).resolve().parents[1]
FILES = ("convert_hf_to_gguf.py", "conversion", "gguf-py")
MARKER = ".llama-cpp-python-version"


def converter_dir() -> Path:
    """``$BC_LLAMA_CPP_DIR``, else ``<repo>/.cache/llama.cpp``."""
    env = os.environ.get("BC_LLAMA_CPP_DIR")
    return Path(env) if env else REPO / ".cache" / "llama.cpp"


def runtime_version() -> str:
    try:
        return metadata.version("llama-cpp-python")
    except metadata.PackageNotFoundError as exc:
        raise BCError("llama-cpp-python is not installed: run scripts/setup") from exc


def fetch_converter(dest: Path | None = None) -> Path:
    """Extract the converter of the installed llama-cpp-python version into ``dest`` (the
    sdist is fetched with pip, which serves it from its cache after the first time)."""
    dest = dest or converter_dir()
    version = runtime_version()
    if (dest / MARKER).is_file() and (dest / MARKER).read_text().strip() == version:
        return dest
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--quiet",
            "--no-deps",
            "--no-binary",
            ":all:",
            f"llama-cpp-python=={version}",
            "-d",
            tmp,
        ]
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
        sdists = list(Path(tmp).glob("llama_cpp_python-*.tar.gz"))
        if proc.returncode != 0 or not sdists:
            raise BCError(
                f"cannot fetch the llama-cpp-python {version} sdist: {proc.stderr[-300:]}"
            )
        _extract(sdists[0], dest)
    (dest / MARKER).write_text(version + "\n")
    return dest


def _extract(sdist: Path, dest: Path) -> None:
    with tarfile.open(sdist) as tar:
        root = tar.getnames()[0].split("/")[0] + "/vendor/llama.cpp/"
        members = [
            m
            for m in tar.getmembers()
            if m.name.startswith(root) and m.name[len(root) :].split("/")[0] in FILES
        ]
        for m in members:
            m.name = m.name[len(root) :]
        shutil.rmtree(dest, ignore_errors=True)
        dest.mkdir(parents=True)
        tar.extractall(dest, members=members, filter="data")


def known_pre_tokenizer(tokenizer_json: Path) -> str | None:
    """The llama.cpp pre-tokenizer a ``tokenizer.json`` uses, read from its configuration
    (not from a hash of its vocabulary): ``llama-bpe`` for Llama 3's split, else ``None``.

    >>> cfg = {"pre_tokenizer": {"type": "Sequence", "pretokenizers": [
    ...     {"type": "Split", "pattern": {"Regex": LLAMA3_SPLIT}, "behavior": "Isolated",
    ...      "invert": False},
    ...     {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True,
    ...      "use_regex": False}]}}
    >>> import tempfile, pathlib; p = pathlib.Path(tempfile.mkdtemp()) / "t.json"
    >>> _ = p.write_text(json.dumps(cfg)); known_pre_tokenizer(p)
    'llama-bpe'
    """
    try:
        pre = json.loads(tokenizer_json.read_text(encoding="utf-8")).get("pre_tokenizer") or {}
    except (OSError, ValueError):
        return None
    steps = pre.get("pretokenizers", []) if pre.get("type") == "Sequence" else []
    if len(steps) != 2:
        return None
    split, byte_level = steps
    if (
        split.get("type") == "Split"
        and split.get("pattern") == {"Regex": LLAMA3_SPLIT}
        and split.get("behavior") == "Isolated"
        and not split.get("invert")
        and byte_level.get("type") == "ByteLevel"
        and not byte_level.get("add_prefix_space")
        and not byte_level.get("use_regex")
    ):
        return "llama-bpe"
    return None


def convert(hf_dir: Path, out: Path, outtype: str = "f16") -> Path:
    """Run the converter (in its own process: it puts its own ``gguf`` package first on
    ``sys.path``); a failure raises with the end of its log."""
    conv = converter_dir()
    if not (conv / "convert_hf_to_gguf.py").is_file():
        raise BCError(f"llama.cpp's converter is not in {conv}: run scripts/setup")
    out.parent.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "claude_bc.export.gguf", "convert", str(hf_dir), str(out), outtype]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0 or not out.is_file():
        lines = (proc.stderr or proc.stdout or "no output").strip().splitlines()
        # the converter's last line is its exception (or the reason it exited)
        raise BCError(f"GGUF conversion of {hf_dir} failed: {lines[-1].strip()}")
    return out


def _run_converter(hf_dir: str, out: str, outtype: str) -> None:
    """Inside the converter's process: register a recognised pre-tokenizer, then convert."""
    conv = converter_dir()
    sys.path[:0] = [str(conv), str(conv / "gguf-py")]
    from conversion import base  # type: ignore[import-not-found]  # the vendored converter

    original = base.TextModel.get_vocab_base_pre

    def get_vocab_base_pre(self: Any, tokenizer: Any) -> str:
        try:
            return str(original(self, tokenizer))
        except NotImplementedError:
            name = known_pre_tokenizer(Path(self.dir_model) / "tokenizer.json")
            if name is None:
                raise
            print(f"registered this vocabulary's pre-tokenizer as {name}", file=sys.stderr)
            return name

    base.TextModel.get_vocab_base_pre = get_vocab_base_pre
    sys.argv = ["convert_hf_to_gguf.py", hf_dir, "--outfile", out, "--outtype", outtype]
    import runpy

    runpy.run_path(str(conv / "convert_hf_to_gguf.py"), run_name="__main__")


def read_metadata(path: Path) -> dict[str, str]:
    """A GGUF file's metadata as llama.cpp reads it (vocabulary only: fast)."""
    from llama_cpp import Llama

    llm = Llama(model_path=str(path), vocab_only=True, verbose=False)
    try:
        return dict(llm.metadata)
    finally:
        llm.close()


if __name__ == "__main__":
    if sys.argv[1:2] == ["fetch"]:
        print(fetch_converter())
    elif sys.argv[1:2] == ["convert"] and len(sys.argv) in (4, 5):
        _run_converter(sys.argv[2], sys.argv[3], sys.argv[4] if len(sys.argv) == 5 else "f16")
    else:
        sys.exit(
            "usage: python -m claude_bc.export.gguf fetch | convert HF_DIR OUT.gguf [f16|f32|bf16]"
        )
