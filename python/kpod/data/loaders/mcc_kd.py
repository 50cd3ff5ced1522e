"""``mcc-kd``: MCC-KD JSON arrays (``instruction``, ``output``, ``label``); CSQA choices split off."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from kpod.data.loaders.readers import Located, expand_rationales, iter_json_array
from kpod.data.schema import InvalidRecordError

__all__ = ["read"]


_CHOICES_BLOCK = re.compile(r"\s*Answer Choices:\s*\n?(.*)$", re.DOTALL | re.IGNORECASE)
_CHOICE_LINE = re.compile(r"^\s*\(?([A-Ja-j])[.)]\s*(.*?)\s*$")


def _split_choices(instruction: str) -> tuple[str, list[str]]:
    m = _CHOICES_BLOCK.search(instruction)
    if m is None:
        return instruction.strip(), []
    choices = []
    for line in m.group(1).splitlines():
        cm = _CHOICE_LINE.match(line)
        if cm:
            choices.append(cm.group(2))
    return instruction[: m.start()].strip(), choices


def read(
    path: Path, stem: str, multi: str = "all", **_: Any
) -> Iterator[Located | InvalidRecordError]:
    for i, item in enumerate(iter_json_array(path)):
        if isinstance(item, InvalidRecordError):
            yield item
            continue
        loc, obj = item
        instr = obj.get("instruction")
        question, choices = _split_choices(instr) if isinstance(instr, str) else (instr, [])
        outputs = expand_rationales(obj.get("output"), multi)
        for j, out in enumerate(outputs):
            suffix = f"-{j}" if len(outputs) > 1 or isinstance(obj.get("output"), list) else ""
            yield (
                (loc if len(outputs) == 1 else f"{loc}, output {j}"),
                {
                    "id": obj.get("id") or f"{stem}-{i}{suffix}",
                    "question": question,
                    "rationale": out,
                    "answer": obj.get("label"),
                    "choices": choices,
                },
            )
