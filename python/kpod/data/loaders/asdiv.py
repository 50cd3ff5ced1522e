"""``asdiv``: ``ASDiv.xml`` (question = Body + " " + Question, answer without its "(unit)")."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from kpod.data.loaders.readers import Located, read_text
from kpod.data.schema import InvalidRecordError

__all__ = ["read"]


_ASDIV_UNIT = re.compile(r"\s*\([^()]*\)\s*$")


def read(path: Path, stem: str, **_: Any) -> Iterator[Located | InvalidRecordError]:
    text = read_text(path)
    try:
        root = ET.fromstring(text.encode("utf-8"))
    except ET.ParseError as err:
        raise InvalidRecordError(
            str(path), f"line {err.position[0]}", None, f"invalid XML ({err})"
        ) from None
    for i, prob in enumerate(root.iter("Problem")):
        pid = prob.get("ID")
        loc = f"Problem {pid}" if pid else f"Problem index {i}"
        body = (prob.findtext("Body") or "").strip()
        q = (prob.findtext("Question") or "").strip()
        ans = prob.findtext("Answer")
        yield (
            loc,
            {
                "id": pid,
                "question": f"{body} {q}".strip() or None,
                "rationale": "",
                "answer": _ASDIV_UNIT.sub("", ans).strip() if ans is not None else None,
            },
        )
