"""The raw record schema and its validation errors.

A record is a dict with ``question: str``, ``rationale: str``, ``answer: str``,
optional ``id: str`` and optional ``choices: list[str]`` (multiple choice; the
answer is then the letter ``A``.. of the right choice). Every loader in
:mod:`kpod.data.loaders` produces exactly these keys (``id`` and ``choices``
always present; ``choices`` is ``[]`` for open questions).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from kpod.data.steps import segment

__all__ = [
    "FIELDS",
    "LETTERS",
    "InvalidRecordError",
    "Record",
    "SkipReport",
    "Skipped",
    "check_unique_ids",
    "choice_letter",
    "validate_record",
]

FIELDS = ("id", "question", "rationale", "answer", "choices")
LETTERS = "ABCDEFGHIJ"
Record = dict[str, Any]


def choice_letter(answer: Any, choices: Any) -> str | None:
    """The letter of a multiple-choice ``answer`` given as a choice's text, else None.

    The first matching choice wins (CommonsenseQA exports lost the answer key,
    and a few questions list the answer text twice). An answer that already is
    a letter, or that matches no choice, gives None; the caller keeps or rejects it.
    """
    if not isinstance(choices, list) or not isinstance(answer, str) or answer in LETTERS:
        return None
    if answer not in choices:
        return None
    return LETTERS[choices.index(answer)]


class InvalidRecordError(ValueError):
    """A malformed input record: says which file, which record and which field."""

    def __init__(
        self, source: str, location: str, field_name: str | None, reason: str, hint: str = ""
    ):
        self.source = source
        self.location = location
        self.field = field_name
        self.reason = reason
        self.hint = hint
        where = f"{source}, {location}"
        if field_name:
            where += f", field {field_name!r}"
        msg = f"{where}: {reason}"
        if hint:
            msg += f" ({hint})"
        super().__init__(msg)


@dataclass
class Skipped:
    """One record left out under ``skip_invalid``, with the reason."""

    source: str
    location: str
    field: str | None
    reason: str


@dataclass
class SkipReport:
    """What ``skip_invalid`` left out. Nothing is dropped without an entry here."""

    skipped: list[Skipped] = field(default_factory=list)

    def add(self, err: InvalidRecordError) -> None:
        self.skipped.append(Skipped(err.source, err.location, err.field, err.reason))

    def __len__(self) -> int:
        return len(self.skipped)

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for s in self.skipped:
            key = f"{s.field}: {s.reason}" if s.field else s.reason
            out[key] = out.get(key, 0) + 1
        return out

    def write(self, path: str | Path) -> Path:
        """Write one JSON object per skipped record (``.jsonl``)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("w", encoding="utf-8") as fh:
            for s in self.skipped:
                fh.write(json.dumps(asdict(s), ensure_ascii=False) + "\n")
        return path

    def summary(self) -> str:
        if not self.skipped:
            return "no records skipped"
        lines = [f"skipped {len(self.skipped)} invalid record(s):"]
        lines += [f"  {n:6d}  {reason}" for reason, n in sorted(self.counts().items())]
        return "\n".join(lines)


def _text(rec: Record, key: str, source: str, loc: str, *, required: bool) -> str:
    value = rec.get(key)
    if value is None:
        if required:
            raise InvalidRecordError(source, loc, key, "missing", f"every record needs a {key!r}")
        return ""
    if isinstance(value, (int, float)) and not isinstance(value, bool) and key in ("answer", "id"):
        from kpod.data.answers import format_number

        return format_number(value)
    if not isinstance(value, str):
        raise InvalidRecordError(source, loc, key, f"expected a string, got {type(value).__name__}")
    return value


def validate_record(
    rec: Record, source: str, location: str, *, require_rationale: bool = True
) -> Record:
    """Check one record and return it in canonical form (all of :data:`FIELDS`).

    Raises :class:`InvalidRecordError` naming ``source``, ``location`` and the
    field for: a missing or empty question or answer, a non-string field, an
    empty rationale or one with zero steps (when ``require_rationale``), bad
    ``choices`` or an answer that is not one of their letters.
    """
    question = _text(rec, "question", source, location, required=True).strip()
    if not question:
        raise InvalidRecordError(source, location, "question", "empty")
    answer = _text(rec, "answer", source, location, required=True).strip()
    if not answer:
        raise InvalidRecordError(
            source, location, "answer", "missing (empty)", "every record needs a gold answer"
        )
    rationale = _text(rec, "rationale", source, location, required=require_rationale)
    if require_rationale:
        if not rationale.strip():
            raise InvalidRecordError(source, location, "rationale", "empty")
        if not segment(rationale).steps:
            raise InvalidRecordError(
                source,
                location,
                "rationale",
                "has zero steps once the final answer sentence is removed",
                f"rationale was {rationale.strip()[:60]!r}",
            )
    rid = rec.get("id")
    if rid is None or rid == "":
        rid = ""
    elif not isinstance(rid, str):
        rid = _text(rec, "id", source, location, required=False)
    choices = rec.get("choices") or []
    if not isinstance(choices, (list, tuple)) or not all(isinstance(c, str) for c in choices):
        raise InvalidRecordError(source, location, "choices", "expected a list of strings")
    choices = [c.strip() for c in choices]
    if choices:
        if len(choices) > len(LETTERS):
            raise InvalidRecordError(
                source, location, "choices", f"more than {len(LETTERS)} choices"
            )
        letter = answer.strip("()").upper()
        if len(letter) != 1 or letter not in LETTERS[: len(choices)]:
            raise InvalidRecordError(
                source,
                location,
                "answer",
                f"{answer!r} is not a choice letter A-{LETTERS[len(choices) - 1]}",
            )
        answer = letter
    return {
        "id": rid,
        "question": question,
        "rationale": rationale,
        "answer": answer,
        "choices": choices,
    }


def check_unique_ids(
    records: Iterable[tuple[str, str, Record]], report: SkipReport | None = None
) -> Iterator[tuple[str, str, Record]]:
    """Pass ``(source, location, record)`` through, rejecting a repeated ``id``.

    Raises :class:`InvalidRecordError` on the second occurrence (naming the
    first), or records it in ``report`` and drops it when ``report`` is given.
    """
    seen: dict[str, str] = {}
    for source, loc, rec in records:
        rid = rec["id"]
        if rid in seen:
            err = InvalidRecordError(
                source, loc, "id", f"duplicate id {rid!r} (first at {seen[rid]})"
            )
            if report is None:
                raise err
            report.add(err)
            continue
        seen[rid] = loc
        yield source, loc, rec
