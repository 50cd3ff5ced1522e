"""``gsm8k``: GSM8K JSON Lines (``question``, ``answer`` = human solution ending in ``#### N``)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from kpod.data.loaders.readers import Located, iter_jsonl
from kpod.data.schema import InvalidRecordError

__all__ = ["clean_gsm8k_solution", "read"]


_CALC = re.compile(r"<<[^<>]*>>")
_GSM_FINAL = re.compile(r"\n?\s*####\s*(.*?)\s*$", re.DOTALL)


def clean_gsm8k_solution(solution: str) -> tuple[str, str | None]:
    """``(rationale, answer)`` from a GSM8K solution: ``<<...>>`` removed, ``#### N`` split off."""
    m = _GSM_FINAL.search(solution)
    answer = None
    if m is not None:
        answer = m.group(1).replace(",", "").strip()
        solution = solution[: m.start()]
    return _CALC.sub("", solution).strip(), answer


def read(path: Path, stem: str, **_: Any) -> Iterator[Located | InvalidRecordError]:
    for item in iter_jsonl(path):
        if isinstance(item, InvalidRecordError):
            yield item
            continue
        loc, obj = item
        sol = obj.get("answer")
        if not isinstance(sol, str):
            yield InvalidRecordError(
                str(path), loc, "answer", "missing or not a string (GSM8K solution)"
            )
            continue
        rationale, answer = clean_gsm8k_solution(sol)
        if answer is None:
            yield InvalidRecordError(
                str(path), loc, "answer", "no '#### <answer>' line in the GSM8K solution"
            )
            continue
        yield (
            loc,
            {
                "id": obj.get("id") or f"gsm8k-{stem}-{int(loc.split()[1]) - 1}",
                "question": obj.get("question"),
                "rationale": rationale,
                "answer": answer,
            },
        )
