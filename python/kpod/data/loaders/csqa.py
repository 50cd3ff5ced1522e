"""``csqa``: CommonsenseQA JSON Lines (``choices``, ``answer`` = choice text -> letter)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from kpod.data.loaders.readers import Located, iter_json_array
from kpod.data.schema import LETTERS, InvalidRecordError, choice_letter

__all__ = ["read"]


def read(
    path: Path, stem: str, rationale_field: str | None = None, **_: Any
) -> Iterator[Located | InvalidRecordError]:
    for item in iter_json_array(path):
        if isinstance(item, InvalidRecordError):
            yield item
            continue
        loc, obj = item
        choices = obj.get("choices")
        answer = obj.get("answer")
        letter = choice_letter(answer, choices)
        if letter is not None:
            answer = letter
        elif isinstance(choices, list) and isinstance(answer, str) and answer not in LETTERS:
            yield InvalidRecordError(
                str(path), loc, "answer", f"{answer!r} is not one of the choices"
            )
            continue
        yield (
            loc,
            {
                "id": obj.get("id"),
                "question": obj.get("question"),
                "rationale": obj.get(rationale_field, "") if rationale_field else "",
                "answer": answer,
                "choices": choices,
            },
        )
