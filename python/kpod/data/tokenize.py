"""Student-ready examples: the templated sequence tokenized once, with a step id
and an answer mask per token (docs/architecture.md, "Prepared examples").

Alignment uses the tokenizer's character offsets, so it is exact for any Hugging
Face fast tokenizer. A token belongs to the part (prompt, step k, answer part)
that holds its first non-whitespace character; a whitespace-only token (the
"\\n" or "Ġ" some tokenizers emit alone) belongs to the part its first character
lies in, where the whitespace between two steps counts as part of the later
step (as a word's leading space does in byte-level BPE) and the newline that
ends the prompt as part of the prompt. So a step boundary never falls inside
the tokens a generator would emit for one step.
"""

from __future__ import annotations

import bisect
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from kpod.data.prepared import ANSWER_PART, PREPARED_COLUMNS, PROMPT, check_example
from kpod.data.steps import segment
from kpod.data.template import format_example

__all__ = ["AlignmentError", "align_example", "prepare_examples"]

_NONWS = re.compile(r"\S")


class AlignmentError(ValueError):
    """A tokenizer merged text across a step boundary (a step got no token of its own)."""


def _eos_id(tokenizer: Any) -> int:
    eos = getattr(tokenizer, "eos_token_id", None)
    if eos is None:
        raise ValueError(
            f"tokenizer {getattr(tokenizer, 'name_or_path', type(tokenizer).__name__)!r} has no EOS token; "
            "set tokenizer.eos_token before preparing examples"
        )
    return int(eos)


def align_example(
    text: str,
    prompt_end: int,
    step_starts: Sequence[int],
    rationale_end: int,
    answer_span: tuple[int, int],
    input_ids: Sequence[int],
    offsets: Sequence[Sequence[int]],
    special_mask: Sequence[int],
    eos_id: int,
) -> tuple[list[int], list[int], list[int]]:
    """``(input_ids, step_ids, answer_mask)`` for one tokenized templated text.

    ``step_starts`` are absolute character offsets of the steps' first
    characters. Leading special tokens (BOS) are prompt tokens, trailing ones
    (EOS) answer-part tokens; EOS is appended when the tokenizer did not add it.
    """
    ids = list(input_ids)
    step_ids: list[int] = []
    mask: list[int] = []
    v0, v1 = answer_span
    seen_text = False
    for (start, end), special in zip(offsets, special_mask, strict=True):
        if special:
            step_ids.append(ANSWER_PART if seen_text else PROMPT)
            mask.append(0)
            continue
        seen_text = True
        m = _NONWS.search(text, start, end) if end > start else None
        q = m.start() if m is not None else start
        if q < prompt_end:
            label = PROMPT
        elif q >= rationale_end:
            label = ANSWER_PART
        else:
            label = max(0, bisect.bisect_right(step_starts, q) - 1)
        step_ids.append(label)
        mask.append(1 if label == ANSWER_PART and end > start and start < v1 and end > v0 else 0)
    if not ids or ids[-1] != eos_id:
        ids.append(eos_id)
        step_ids.append(ANSWER_PART)
        mask.append(0)
    return ids, step_ids, mask


def _batch_fn(tokenizer: Any, eos_id: int) -> Any:
    def fn(batch: Mapping[str, list[Any]], indices: list[int]) -> dict[str, list[Any]]:
        n = len(batch["question"])
        ids_col = batch.get("id") or [""] * n
        out: dict[str, list[Any]] = {k: [] for k in PREPARED_COLUMNS}
        texts, metas = [], []
        for i in range(n):
            rid = ids_col[i] if ids_col[i] not in (None, "") else str(indices[i])
            question, answer = batch["question"][i], batch["answer"][i]
            rationale = batch["rationale"][i]
            for name, value in (
                ("question", question),
                ("rationale", rationale),
                ("answer", answer),
            ):
                if not isinstance(value, str) or (name != "rationale" and not value.strip()):
                    raise ValueError(
                        f"example {rid!r} (row {indices[i]}): field {name!r} is missing or empty"
                    )
            seg = segment(rationale)
            if not seg.steps:
                raise ValueError(
                    f"example {rid!r} (row {indices[i]}): field 'rationale' has zero steps "
                    f"(was {rationale.strip()[:60]!r}); load files with kpod.data.read_records to "
                    "validate or skip such records"
                )
            t = format_example(question, seg.rationale, answer)
            r0 = t.rationale[0]
            texts.append(t.text)
            metas.append((rid, seg, t, [r0 + a for a, _ in seg.spans]))
            out["id"].append(rid)
            out["question"].append(question.strip())
            out["rationale"].append(seg.rationale)
            out["answer"].append(answer.strip())
            out["steps"].append(seg.steps)
            out["n_steps"].append(len(seg.steps))
        enc = tokenizer(
            texts,
            add_special_tokens=True,
            return_offsets_mapping=True,
            return_special_tokens_mask=True,
            return_attention_mask=False,
            verbose=False,
        )
        for j, (rid, seg, t, starts) in enumerate(metas):
            ids, sids, amask = align_example(
                t.text,
                t.prompt[1],
                starts,
                t.rationale[1],
                t.answer_value,
                enc["input_ids"][j],
                enc["offset_mapping"][j],
                enc["special_tokens_mask"][j],
                eos_id,
            )
            problem = check_example(sids, len(seg.steps))
            if problem is not None:
                raise AlignmentError(
                    f"example {rid!r}: tokens do not align with the steps: {problem}. The tokenizer "
                    "merges characters across a step boundary; please report this with the example"
                )
            out["input_ids"].append(ids)
            out["step_ids"].append(sids)
            out["answer_mask"].append(amask)
        return out

    return fn


def prepare_examples(
    records_or_dataset: Any,
    tokenizer: Any,
    *,
    kind: str = "causal",
    num_proc: int | None = None,
    batch_size: int = 256,
    desc: str = "Preparing examples",
    keep_columns: Iterable[str] = (),
) -> Any:
    """Student-ready examples (columns :data:`PREPARED_COLUMNS`) from raw records.

    ``records_or_dataset``: a ``datasets.Dataset`` or an iterable of record
    dicts with ``question``, ``rationale``, ``answer`` and optional ``id`` (the
    row index when absent). Rationales are cleaned and segmented
    (:func:`kpod.data.steps.segment`), the template is applied and the whole
    text is tokenized once with ``tokenizer`` (a fast tokenizer: offsets are
    needed). Runs as a batched ``Dataset.map`` with ``num_proc`` workers and a
    progress bar. ``kind`` ("causal" or "seq2seq") is the student type; the
    columns are identical for both (the stage example builder splits them), and
    it is recorded in ``dataset.info.description`` together with the tokenizer
    name so that a trainer can check it was prepared for its model.
    ``keep_columns`` names extra input columns to carry over (e.g. ``choices``).
    """
    import datasets

    from kpod.models import check_kind

    kind = check_kind(kind)
    if not getattr(tokenizer, "is_fast", False):
        raise ValueError(
            "prepare_examples needs a fast (Rust-backed) tokenizer for character offsets; "
            "load it with AutoTokenizer.from_pretrained(..., use_fast=True)"
        )
    eos_id = _eos_id(tokenizer)
    ds = records_or_dataset
    if not isinstance(ds, datasets.Dataset):
        rows = [dict(r) for r in ds]
        if not rows:
            raise ValueError("prepare_examples: no records given")
        cols = {k: [r.get(k) for r in rows] for k in {k for r in rows for k in r}}
        ds = datasets.Dataset.from_dict(cols)
    missing = [c for c in ("question", "rationale", "answer") if c not in ds.column_names]
    if missing:
        raise ValueError(
            f"prepare_examples: input lacks column(s) {missing}; have {ds.column_names}"
        )
    keep = list(keep_columns)
    absent = [c for c in keep if c not in ds.column_names]
    if absent:
        raise ValueError(f"keep_columns: no column(s) {absent} in the input")
    if len(ds) == 0:
        raise ValueError("prepare_examples: the input dataset is empty")
    features = datasets.Features(
        {
            "id": datasets.Value("string"),
            "question": datasets.Value("string"),
            "rationale": datasets.Value("string"),
            "answer": datasets.Value("string"),
            "steps": datasets.List(datasets.Value("string")),
            "n_steps": datasets.Value("int32"),
            "input_ids": datasets.List(datasets.Value("int32")),
            "step_ids": datasets.List(datasets.Value("int32")),
            "answer_mask": datasets.List(datasets.Value("int8")),
            **{c: ds.features[c] for c in keep if c not in PREPARED_COLUMNS},
        }
    )
    remove = [c for c in ds.column_names if c not in keep or c in PREPARED_COLUMNS]
    out = ds.map(
        _batch_fn(tokenizer, eos_id),
        batched=True,
        batch_size=batch_size,
        with_indices=True,
        num_proc=num_proc if num_proc and num_proc > 1 else None,
        remove_columns=remove,
        features=features,
        desc=desc,
    )
    out = out.select_columns([*PREPARED_COLUMNS, *[c for c in keep if c not in PREPARED_COLUMNS]])
    seen: set[str] = set()
    for rid in out["id"]:
        if rid in seen:
            raise ValueError(f"prepare_examples: duplicate id {rid!r}; ids must be unique")
        seen.add(rid)
    out.info.description = json.dumps(
        {
            "kpod_prepared": {
                "kind": kind,
                "tokenizer": str(getattr(tokenizer, "name_or_path", "")),
                "vocab_size": len(tokenizer),
                "eos_token_id": eos_id,
            }
        }
    )
    return out
