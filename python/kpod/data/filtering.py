"""Teacher filtering: keep only rationales whose own final answer matches the gold one.

The teacher's answer is extracted from the raw rationale with
:func:`kpod.data.answers.extract_answer` ("the answer is ..." then the first
number, else the last number; choice letters when the record has choices) and
compared with :func:`kpod.data.answers.answers_match`. Run it on the loaded
records (before :func:`kpod.data.prepare_examples` removes the answer sentence).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from kpod.data.answers import answers_match, extract_answer

__all__ = ["FilterReport", "filter_by_answer", "teacher_answer"]


@dataclass
class FilterReport:
    """Counts of a teacher-filtering pass; ``dropped_ids`` lists every removed example."""

    total: int = 0
    agree: int = 0
    disagree: int = 0
    no_answer: int = 0
    kept: int = 0
    dropped: int = 0
    policy: str = "drop"
    dropped_ids: list[str] = field(default_factory=list)

    def summary(self) -> str:
        pct = 100.0 * self.agree / self.total if self.total else 0.0
        return (
            f"teacher answers: {self.agree}/{self.total} agree with gold ({pct:.1f}%), "
            f"{self.disagree} disagree, {self.no_answer} without an answer; "
            f"policy {self.policy!r}: kept {self.kept}, dropped {self.dropped}"
        )


def teacher_answer(rationale: str, choices: list[str] | None = None) -> str | None:
    """The answer a teacher rationale states (None when it states none)."""
    return extract_answer(rationale or "", choices=choices or None)


def _annotate(batch: dict[str, list[Any]]) -> dict[str, list[Any]]:
    n = len(batch["rationale"])
    choices_col = batch.get("choices") or [None] * n
    answers, agrees = [], []
    for rationale, gold, choices in zip(
        batch["rationale"], batch["answer"], choices_col, strict=True
    ):
        pred = teacher_answer(rationale, choices)
        answers.append(pred)
        agrees.append(answers_match(pred, gold))
    return {"teacher_answer": answers, "teacher_agrees": agrees}


def filter_by_answer(
    records_or_dataset: Any, *, keep_disagreeing: bool = False, num_proc: int | None = None
) -> tuple[Any, FilterReport]:
    """``(filtered, report)``.

    Adds ``teacher_answer`` (str or None) and ``teacher_agrees`` (bool)
    columns/keys. With ``keep_disagreeing=False`` (default) only agreeing
    examples remain; with True nothing is removed and the columns let you
    decide later. Accepts a ``datasets.Dataset`` (batched map with a progress
    bar) or a list of record dicts (returns a list).
    """
    report = FilterReport(policy="keep" if keep_disagreeing else "drop")
    if isinstance(records_or_dataset, list):
        rows = []
        for rec in records_or_dataset:
            ann = _annotate({k: [v] for k, v in rec.items()})
            rows.append(
                {
                    **rec,
                    "teacher_answer": ann["teacher_answer"][0],
                    "teacher_agrees": ann["teacher_agrees"][0],
                }
            )
        agrees = [r["teacher_agrees"] for r in rows]
        answers = [r["teacher_answer"] for r in rows]
        ids = [str(r.get("id", i)) for i, r in enumerate(rows)]
        out: Any = rows if keep_disagreeing else [r for r in rows if r["teacher_agrees"]]
    else:
        ds = records_or_dataset
        ds = ds.map(_annotate, batched=True, num_proc=num_proc, desc="Checking teacher answers")
        agrees = list(ds["teacher_agrees"])
        answers = list(ds["teacher_answer"])
        ids = list(ds["id"]) if "id" in ds.column_names else [str(i) for i in range(len(ds))]
        out = (
            ds
            if keep_disagreeing
            else ds.filter(lambda a: a, input_columns="teacher_agrees", desc="Dropping")
        )
    report.total = len(agrees)
    report.agree = sum(agrees)
    report.no_answer = sum(a is None for a in answers)
    report.disagree = report.total - report.agree - report.no_answer
    report.kept = len(out)
    report.dropped = report.total - report.kept
    if not keep_disagreeing:
        report.dropped_ids = [i for i, a in zip(ids, agrees, strict=True) if not a]
    return out, report
