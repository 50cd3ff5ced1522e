"""``svamp``: ``SVAMP.json`` (question = Body + " " + Question, answer = Answer, no rationale)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from kpod.data.loaders.readers import Located, iter_json_array
from kpod.data.schema import InvalidRecordError

__all__ = ["read"]


def read(path: Path, stem: str, **_: Any) -> Iterator[Located | InvalidRecordError]:
    for item in iter_json_array(path):
        if isinstance(item, InvalidRecordError):
            yield item
            continue
        loc, obj = item
        body, q = obj.get("Body"), obj.get("Question")
        question = f"{(body or '').strip()} {(q or '').strip()}".strip() if (body or q) else None
        yield (
            loc,
            {
                "id": obj.get("ID"),
                "question": question,
                "rationale": obj.get("rationale", ""),
                "answer": obj.get("Answer"),
            },
        )
