"""Loading and saving what the training commands read and write."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

__all__ = ["load_prepared", "load_student", "save_prepared", "student_kind"]


def load_prepared(path: str | os.PathLike[str]) -> Any:
    """A prepared-example ``datasets.Dataset`` from a ``save_to_disk`` folder or a JSONL/Parquet file."""
    import datasets

    p = Path(path)
    if p.is_dir():
        if (p / "state.json").is_file() or (p / "dataset_info.json").is_file():
            return datasets.load_from_disk(str(p))
        raise FileNotFoundError(
            f"{p} is a folder but not a saved datasets.Dataset (no state.json); pass the folder "
            "written by `kpod data prepare` / Dataset.save_to_disk"
        )
    if not p.is_file():
        raise FileNotFoundError(f"prepared data {p} does not exist")
    suffix = p.suffix.lower()
    if suffix in (".jsonl", ".json"):
        return datasets.Dataset.from_json(str(p))
    if suffix == ".parquet":
        return datasets.Dataset.from_parquet(str(p))
    raise ValueError(
        f"{p}: unsupported file type {suffix!r}; use a saved Dataset folder, .jsonl or .parquet"
    )


def save_prepared(dataset: Any, path: str | os.PathLike[str]) -> Path:
    """Save with ``save_to_disk`` through a temporary folder, so an interrupted save loses nothing."""
    import shutil

    p = Path(path)
    tmp = p.with_name(p.name + ".tmp")
    if tmp.exists():
        shutil.rmtree(tmp)
    dataset.save_to_disk(str(tmp))
    if p.exists():
        shutil.rmtree(p)
    tmp.rename(p)
    return p


def student_kind(name_or_path: str | os.PathLike[str]) -> str:
    """``"seq2seq"`` or ``"causal"`` from a checkpoint's config (adapters: their base model's)."""
    from transformers import AutoConfig

    from kpod.models import resolve

    path = Path(resolve(str(name_or_path)))
    adapter = path / "adapter_config.json"
    if adapter.is_file():
        task = json.loads(adapter.read_text()).get("task_type", "")
        return "seq2seq" if str(task).upper().startswith("SEQ_2_SEQ") else "causal"
    cfg = AutoConfig.from_pretrained(str(path))
    return "seq2seq" if getattr(cfg, "is_encoder_decoder", False) else "causal"


def load_student(
    name_or_path: str | os.PathLike[str], kind: str = "auto", dtype: Any = None
) -> Any:
    """A student model; a LoRA output folder is loaded onto its base model and merged."""
    from kpod.models import load_model, resolve

    if kind == "auto":
        kind = student_kind(name_or_path)
    path = Path(resolve(str(name_or_path)))
    if (path / "adapter_config.json").is_file():
        from peft import AutoPeftModelForCausalLM, AutoPeftModelForSeq2SeqLM

        cls = AutoPeftModelForCausalLM if kind == "causal" else AutoPeftModelForSeq2SeqLM
        return cls.from_pretrained(str(path)).merge_and_unload()
    return load_model(name_or_path, kind=kind, dtype=dtype)
