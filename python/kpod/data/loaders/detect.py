"""``format="auto"``: the format of a file from its name and first record."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

__all__ = ["detect_format"]


def _first_object(path: Path) -> dict[str, Any] | None:
    with path.open("rb") as fh:
        head = fh.read(1 << 16).decode("utf-8", errors="replace").lstrip("\ufeff \t\r\n")
    if head.startswith("["):
        m = re.match(r"\[\s*(\{.*?\})\s*[,\]]", head, re.DOTALL)
        if m:
            try:
                obj = json.loads(m.group(1))
                return obj if isinstance(obj, dict) else None
            except json.JSONDecodeError:
                return None
        return None
    first = head.split("\n", 1)[0]
    try:
        obj = json.loads(first)
    except json.JSONDecodeError:
        return None
    return obj if isinstance(obj, dict) else None


def detect_format(path: str | Path) -> str:
    """Guess the format of ``path`` from its name and first record (see the module docstring)."""
    p = Path(path)
    suffix = p.suffix.lower()
    if p.is_dir() or "_CoT_" in p.name:
        return "dss-palm"
    if suffix == ".xml":
        return "asdiv"
    if suffix == ".csv":
        return "csv"
    if suffix in (".parquet", ".pq"):
        return "parquet"
    obj = _first_object(p)
    if obj is not None:
        keys = set(obj)
        if {"instruction", "output", "label"} <= keys:
            return "mcc-kd"
        if {"Body", "Question", "Answer"} <= keys:
            return "svamp"
        if (
            {"question", "answer"} <= keys
            and "rationale" not in keys
            and isinstance(obj.get("answer"), str)
        ):
            if "####" in obj["answer"]:
                return "gsm8k"
            if isinstance(obj.get("choices"), list):
                return "csqa"
    return "jsonl" if suffix in (".jsonl", ".ndjson") else "json"
