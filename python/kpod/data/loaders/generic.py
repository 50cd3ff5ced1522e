"""``jsonl``, ``json``, ``csv``, ``parquet``: any table, with ``columns`` naming the schema fields."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from kpod.data.loaders.readers import (
    Located,
    expand_rationales,
    iter_csv,
    iter_json_array,
    iter_jsonl,
    iter_parquet,
)
from kpod.data.schema import InvalidRecordError

__all__ = ["read"]


def read(
    path: Path,
    stem: str,
    fmt: str = "jsonl",
    columns: Mapping[str, str] | None = None,
    multi: str = "all",
    **_: Any,
) -> Iterator[Located | InvalidRecordError]:
    mapping = {k: k for k in ("id", "question", "rationale", "answer", "choices")}
    if columns:
        unknown = set(columns) - set(mapping)
        if unknown:
            raise ValueError(
                f"columns: unknown schema field(s) {sorted(unknown)}; use {sorted(mapping)}"
            )
        mapping.update(columns)
    readers = {
        "jsonl": iter_jsonl,
        "json": iter_json_array,
        "csv": iter_csv,
        "parquet": iter_parquet,
    }
    for i, item in enumerate(readers[fmt](path)):
        if isinstance(item, InvalidRecordError):
            yield item
            continue
        loc, obj = item
        if i == 0 and columns:
            missing = [c for f, c in columns.items() if c not in obj]
            if missing:
                raise InvalidRecordError(
                    str(path),
                    loc,
                    missing[0],
                    "column not found",
                    f"columns present: {sorted(obj)}",
                )
        choices = obj.get(mapping["choices"])
        if isinstance(choices, str) and fmt == "csv":
            choices = (
                json.loads(choices)
                if choices.strip().startswith("[")
                else [c for c in choices.split("|") if c]
            )
        rationales = expand_rationales(obj.get(mapping["rationale"]), multi)
        for j, r in enumerate(rationales):
            rid = obj.get(mapping["id"])
            if rid is None or rid == "":
                rid = f"{stem}-{i}"
            elif not isinstance(rid, str):
                rid = str(rid)
            if isinstance(obj.get(mapping["rationale"]), list):
                rid = f"{rid}-{j}"
            yield (
                (loc if len(rationales) == 1 else f"{loc}, rationale {j}"),
                {
                    "id": rid,
                    "question": obj.get(mapping["question"]),
                    "rationale": r,
                    "answer": obj.get(mapping["answer"]),
                    "choices": choices,
                },
            )
