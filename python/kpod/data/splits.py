"""The paper's splits (KPOD Table 4 = MCC-KD's), rebuilt offline.

``split_ids.json`` (from the ``mcc-kd-splits`` folder of the shared data) maps
every split to record ids of the original, licensed datasets:

========  =================================  =================================
dataset   train                              dev / test
========  =================================  =================================
gsm8k     all 7,473 lines of train.jsonl     660 / 659 lines of test.jsonl
svamp     700 SVAMP ``ID`` s                 150 / 150 SVAMP ``ID`` s
csqa      8,520 ids of cqa_train.json        1,221 of cqa_train / 1,221 of cqa_test
asdiv     1,533 ``train_candidates`` [1]_    313 / 314 Problem IDs
========  =================================  =================================

.. [1] The paper's exact 1,462-question ASDiv train set is not recoverable;
   ``train_candidates`` are the numeric-answer problems in neither dev nor test.

The MCC-KD files declare no license, so kpod never ships them: pass the folder
(``data_root``; default ``$KPOD_DATA_ROOT``, else ``../shared/data`` or
``shared/data`` under the working directory when present).

Rationales: GSM8K uses the human solutions. ``rationales="auto"`` adds the
teacher rationales that exist offline: GPT-3.5 for the SVAMP train split
(MCC-KD ``SVAMP/train.json``, 10 per question: one example each, or
``multi="first"``) and PaLM for CSQA (distilling-step-by-step ``cqa/llm``).
ASDiv has none; its records carry an empty rationale.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from kpod.data.loaders import read_records
from kpod.data.schema import Record

__all__ = ["DATASETS", "PAPER_SIZES", "default_data_root", "paper_splits", "write_splits"]

DATASETS = ("gsm8k", "svamp", "csqa", "asdiv")
#: Questions per split as reported by the paper (ASDiv: the train candidates instead of train).
PAPER_SIZES: Mapping[str, Mapping[str, int]] = {
    "gsm8k": {"train": 7473, "dev": 660, "test": 659},
    "svamp": {"train": 700, "dev": 150, "test": 150},
    "csqa": {"train": 8520, "dev": 1221, "test": 1221},
    "asdiv": {"train_candidates": 1533, "dev": 313, "test": 314},
}


def default_data_root() -> Path | None:
    """``$KPOD_DATA_ROOT``, else ``../shared/data`` or ``shared/data`` if present, else None."""
    env = os.environ.get("KPOD_DATA_ROOT")
    if env:
        return Path(env)
    for cand in (Path("../shared/data"), Path("shared/data")):
        if (cand / "mcc-kd-splits" / "split_ids.json").is_file():
            return cand
    return None


def _need(path: Path, what: str) -> Path:
    if not path.exists():
        raise FileNotFoundError(
            f"{path}: not found ({what}); pass data_root= / --data-root pointing at the data folder"
        )
    return path


def _select(records: list[Record], ids: list[Any], key: str, source: str) -> list[Record]:
    by: dict[Any, Record] = {}
    for r in records:
        by.setdefault(r[key], r)
    missing = [i for i in ids if i not in by]
    if missing:
        raise ValueError(f"{source}: {len(missing)} split id(s) not found, e.g. {missing[:3]}")
    return [dict(by[i]) for i in ids]


def paper_splits(
    dataset: str,
    *,
    data_root: str | Path | None = None,
    split_ids: str | Path | None = None,
    rationales: str = "auto",
    multi: str = "all",
) -> dict[str, list[Record]]:
    """``{split: records}`` for one of :data:`DATASETS`, in the order of ``split_ids.json``.

    ``rationales``: ``"auto"`` (teacher rationales where available offline, see
    the module docstring) or ``"none"`` (GSM8K keeps its human solutions either way).
    """
    dataset = dataset.lower()
    if dataset not in DATASETS:
        raise ValueError(f"unknown dataset {dataset!r}; choose one of {', '.join(DATASETS)}")
    if rationales not in ("auto", "none"):
        raise ValueError(f"rationales must be 'auto' or 'none', got {rationales!r}")
    root = Path(data_root) if data_root is not None else default_data_root()
    if root is None:
        raise FileNotFoundError(
            "no data folder found: pass data_root= (or --data-root, or set KPOD_DATA_ROOT) "
            "to the folder holding gsm8k/, svamp/, commonsenseqa/, asdiv/ and mcc-kd-splits/"
        )
    ids_path = (
        Path(split_ids) if split_ids is not None else root / "mcc-kd-splits" / "split_ids.json"
    )
    table = json.loads(_need(ids_path, "the MCC-KD split ids").read_text(encoding="utf-8"))[dataset]
    out: dict[str, list[Record]] = {}
    if dataset == "gsm8k":
        test = list(
            read_records(_need(root / "gsm8k" / "test.jsonl", "GSM8K test"), format="gsm8k")
        )
        out["train"] = list(
            read_records(_need(root / "gsm8k" / "train.jsonl", "GSM8K train"), format="gsm8k")
        )
        for split in ("dev", "test"):
            out[split] = [dict(test[i]) for i in table[split]]
    elif dataset == "svamp":
        src = _need(root / "svamp" / "SVAMP.json", "SVAMP")
        all_recs = list(read_records(src, format="svamp"))
        for split in ("train", "dev", "test"):
            out[split] = _select(all_recs, table[split], "id", str(src))
        teacher = root / "mcc-kd-splits" / "SVAMP" / "train.json"
        if rationales == "auto" and teacher.is_file():
            out["train"] = _attach_mcc_svamp(out["train"], teacher, multi)
    elif dataset == "csqa":
        tr_path = _need(root / "commonsenseqa" / "cqa_train.json", "CommonsenseQA train")
        te_path = _need(
            root / "commonsenseqa" / "cqa_test.json", "CommonsenseQA dev (the paper's test)"
        )
        palm = root / "dss-palm-rationales" / "cqa" / "llm"
        if rationales == "auto" and palm.is_dir():
            train_all = list(read_records(palm, format="dss-palm", split="train", source=tr_path))
            test_all = list(read_records(palm, format="dss-palm", split="test", source=te_path))
        else:
            train_all = list(read_records(tr_path, format="csqa"))
            test_all = list(read_records(te_path, format="csqa"))
        out["train"] = _select(train_all, table["train"], "id", str(tr_path))
        out["dev"] = _select(train_all, table["dev"], "id", str(tr_path))
        out["test"] = _select(test_all, table["test"], "id", str(te_path))
    else:  # asdiv
        src = _need(root / "asdiv" / "ASDiv.xml", "ASDiv")
        all_recs = list(read_records(src, format="asdiv"))
        for split in ("train_candidates", "dev", "test"):
            out[split] = _select(all_recs, table[split], "id", str(src))
    return out


def _attach_mcc_svamp(train: list[Record], teacher: Path, multi: str) -> list[Record]:
    """MCC-KD SVAMP train records follow split_ids order: attach their rationales."""
    rows = json.loads(teacher.read_text(encoding="utf-8"))
    if len(rows) != len(train):
        raise ValueError(
            f"{teacher}: {len(rows)} records, expected {len(train)} (the SVAMP train split)"
        )
    out: list[Record] = []
    for i, (rec, row) in enumerate(zip(train, rows, strict=True)):
        q1 = " ".join(rec["question"].split()).lower()
        q2 = " ".join(str(row.get("instruction", "")).split()).lower()
        if q1 != q2:
            raise ValueError(
                f"{teacher}, record index {i}: question does not match SVAMP {rec['id']}"
            )
        outputs = row.get("output")
        outputs = outputs if isinstance(outputs, list) else [outputs]
        if multi == "first":
            outputs = outputs[:1]
        for j, text in enumerate(outputs):
            if not isinstance(text, str) or not text.strip():
                continue
            out.append({**rec, "id": f"{rec['id']}-{j}", "rationale": text})
    return out


def write_splits(
    splits: Mapping[str, list[Record]], out_dir: str | Path, *, prefix: str = ""
) -> dict[str, Path]:
    """Write each split as ``<out_dir>/<prefix><split>.jsonl`` (schema records); returns the paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {}
    for split, recs in splits.items():
        path = out / f"{prefix}{split}.jsonl"
        tmp = path.with_suffix(".jsonl.tmp")
        with tmp.open("w", encoding="utf-8") as fh:
            for r in recs:
                fh.write(json.dumps(r, ensure_ascii=False) + "\n")
        tmp.replace(path)
        paths[split] = path
    return paths
