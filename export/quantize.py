"""GGUF f16 → q4_k_m through llama.cpp's own quantizer, called in process.

``llama_cpp.llama_model_quantize`` is the same code as the ``llama-quantize`` binary, so
no separate build is needed. Q4_K works on rows whose width is a multiple of 256; llama.cpp
falls back to another type for any other tensor, which the export reports.
"""

from __future__ import annotations

import ctypes
import os
from pathlib import Path

from claude_bc.capture.errors import BCError

Q4_K_M = 15  # llama_cpp.LLAMA_FTYPE_MOSTLY_Q4_K_M


def quantize(src: Path, dst: Path, ftype: int = Q4_K_M, threads: int | None = None) -> Path:
    """Write ``dst``, ``src`` quantized to ``ftype`` (default q4_k_m)."""
    import llama_cpp
    from llama_cpp._logger import set_verbose

    set_verbose(False)  # llama.cpp logs every tensor otherwise
    if not src.is_file():
        raise BCError(f"{src}: no such GGUF file")
    dst.parent.mkdir(parents=True, exist_ok=True)
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = ftype
    params.nthread = threads or os.cpu_count() or 1
    status = llama_cpp.llama_model_quantize(
        str(src).encode(), str(dst).encode(), ctypes.byref(params)
    )
    if status != 0 or not dst.is_file():
        raise BCError(f"quantizing {src} to {dst} failed (llama.cpp status {status})")
    return dst
