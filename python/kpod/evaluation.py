"""Evaluation: batched greedy decoding, answer extraction, accuracy with a bootstrap interval.

The student reads the template's prompt (``Q: <question>\\nA: Let's think step by
step.\\n``), writes its rationale and ``Therefore, the answer is <y>.``; the answer
is extracted with :func:`kpod.data.answers.extract_answer` (the number after "the
answer is", or the choice letter for multiple choice) and compared with
:func:`kpod.data.answers.answers_match` (numeric with tolerance). Causal students
are decoded with left padding, seq2seq students read the prompt plus EOS in the
encoder, exactly as in training (docs/architecture.md, "Stage examples").

``evaluate(model, tokenizer, records)`` returns a metrics dict and optionally
writes one JSON line per example; ``evaluate_many`` runs several datasets (the
paper's out-of-distribution setting: train on GSM8K, test on SVAMP and ASDiv).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from kpod.stats import bootstrap_interval

__all__ = [
    "Generation",
    "bootstrap_interval",
    "evaluate",
    "evaluate_many",
    "generate_answers",
    "generate_batched",
    "prompt_ids",
    "text_ids",
]


def text_ids(tokenizer: Any, text: str, kind: str) -> list[int]:
    """Token ids of a prompt ``text`` as the model reads it before generating.

    A trailing EOS that the tokenizer adds by itself is dropped for causal
    models (it would end the text) and ensured for seq2seq models (it closes
    the encoder input).
    """
    enc = tokenizer(text, add_special_tokens=True)
    ids = list(enc["input_ids"])
    eos = tokenizer.eos_token_id
    while ids and eos is not None and ids[-1] == eos:
        ids.pop()
    if kind == "seq2seq":
        if eos is None:
            raise ValueError("seq2seq evaluation needs a tokenizer with an EOS token")
        ids.append(int(eos))
    return ids


def prompt_ids(tokenizer: Any, question: str, kind: str) -> list[int]:
    """Token ids of the template's prompt, as the prepared examples begin (see :func:`text_ids`)."""
    from kpod.data.template import prompt

    return text_ids(tokenizer, prompt(question), kind)


class Generation(NamedTuple):
    """One generated continuation with its token counts."""

    text: str
    prompt_tokens: int
    completion_tokens: int  # up to and including the first EOS
    finished: bool  # ended with EOS (False: cut at max_new_tokens)


def generate_batched(
    model: Any,
    tokenizer: Any,
    prompts: Sequence[Sequence[int]],
    *,
    kind: str | None = "auto",
    batch_size: int = 16,
    max_new_tokens: int = 256,
    device: Any = None,
    show_progress: bool = True,
    on_batch: Callable[[list[int], list[Generation]], None] | None = None,
    sampling: Mapping[str, Any] | None = None,
    desc: str = "greedy decoding",
) -> list[Generation]:
    """Batched generation from token-id prompts, in input order (greedy unless ``sampling``).

    Prompts are sorted by length and padded on the left (causal) or right
    (seq2seq). ``on_batch(indices, generations)`` is called after every batch.
    ``sampling`` (e.g. ``{"do_sample": True, "temperature": 0.7}``) is passed to
    ``model.generate`` in place of greedy decoding. Shared by ``kpod eval``
    (:func:`generate_answers`) and ``kpod teacher`` (the local backend).
    """
    import torch

    from kpod.models import resolve_kind
    from kpod.training.collator import KpodCollator

    kind = resolve_kind(model, kind)
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    if pad is None:
        raise ValueError("the tokenizer defines neither a pad nor an EOS token")
    eos = tokenizer.eos_token_id
    order = np.argsort([-len(p) for p in prompts], kind="stable")
    collate = KpodCollator(
        pad_token_id=int(pad), padding_side="left" if kind == "causal" else "right"
    )
    device = torch.device(device) if device is not None else next(model.parameters()).device
    decode: dict[str, Any] = {"do_sample": False, "num_beams": 1}
    decode.update(sampling or {})
    out: list[Generation] = [Generation("", 0, 0, False)] * len(prompts)
    batches = [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
    progress: Any = batches
    if show_progress:
        from tqdm.auto import tqdm

        progress = tqdm(batches, desc=desc, unit="batch", leave=False)
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            for idx in progress:
                batch = collate([{"input_ids": list(prompts[int(i)])} for i in idx])
                gen = model.generate(
                    input_ids=batch["input_ids"].to(device),
                    attention_mask=batch["attention_mask"].to(device),
                    max_new_tokens=max_new_tokens,
                    pad_token_id=int(pad),
                    eos_token_id=eos,
                    **decode,
                )
                if kind == "causal":
                    gen = gen[:, batch["input_ids"].shape[1] :]
                texts = tokenizer.batch_decode(gen, skip_special_tokens=True)
                rows = gen[:, 1:] if kind == "seq2seq" else gen  # seq2seq: decoder start token
                gens: list[Generation] = []
                for i, text, row in zip(idx, texts, rows.tolist(), strict=True):
                    ended = eos is not None and eos in row
                    n = row.index(eos) + 1 if ended else len(row)
                    gens.append(Generation(text, len(prompts[int(i)]), n, ended))
                    out[int(i)] = gens[-1]
                if on_batch is not None:
                    on_batch([int(i) for i in idx], gens)
    finally:
        model.train(was_training)
    return out


def generate_answers(
    model: Any,
    tokenizer: Any,
    questions: Sequence[str],
    *,
    kind: str | None = "auto",
    batch_size: int = 16,
    max_new_tokens: int = 256,
    device: Any = None,
    show_progress: bool = True,
    on_batch: Callable[[list[int], list[str]], None] | None = None,
) -> list[str]:
    """Greedy generations (the text after the prompt) for each question, in input order.

    ``on_batch(indices, texts)`` is called after every batch (evaluate uses it to
    keep finished generations on disk).
    """
    from kpod.models import resolve_kind

    kind = resolve_kind(model, kind)
    prompts = [prompt_ids(tokenizer, q, kind) for q in questions]

    def texts_only(indices: list[int], gens: list[Generation]) -> None:
        if on_batch is not None:
            on_batch(indices, [g.text for g in gens])

    gens = generate_batched(
        model,
        tokenizer,
        prompts,
        kind=kind,
        batch_size=batch_size,
        max_new_tokens=max_new_tokens,
        device=device,
        show_progress=show_progress,
        on_batch=texts_only,
    )
    return [g.text for g in gens]


def _records(records: Any) -> list[Mapping[str, Any]]:
    if hasattr(records, "column_names"):
        return [records[i] for i in range(len(records))]
    return list(records)


def evaluate(
    model: Any,
    tokenizer: Any,
    records: Iterable[Mapping[str, Any]] | Any,
    *,
    kind: str | None = "auto",
    batch_size: int = 16,
    max_new_tokens: int = 256,
    n_resamples: int = 1000,
    seed: int = 0,
    tol: float = 1e-6,
    predictions_path: str | Path | None = None,
    name: str | None = None,
    device: Any = None,
    show_progress: bool = True,
    resume: bool = True,
) -> dict[str, Any]:
    """Greedy-decode every question and score the extracted answers.

    Args:
        records: raw records (``question``, ``answer``, optional ``id``,
            ``choices``) as dicts or a ``datasets.Dataset`` (prepared examples
            work too).
        predictions_path: write one JSON line per example (``id``, ``question``,
            ``gold``, ``prediction``, ``correct``, ``generation``).
        n_resamples, seed: the percentile bootstrap of the 95% interval.
        resume: with ``predictions_path``, finished generations are appended to
            ``<predictions_path>.partial`` batch by batch; an interrupted
            evaluation started again with the same records decodes only what is
            missing. The partial file is removed when the evaluation completes.

    Returns:
        ``{"name", "n", "correct", "accuracy", "ci_low", "ci_high",
        "extracted"}`` (accuracy and interval as fractions; ``extracted`` is the
        share of generations with an answer at all).
    """
    from kpod.data.answers import answers_match, extract_answer

    rows = _records(records)
    for i, r in enumerate(rows):
        if not r.get("question") or r.get("answer") in (None, ""):
            raise ValueError(f"record {i} ({r.get('id', '?')!r}) needs 'question' and 'answer'")
    partial = None if predictions_path is None else Path(str(predictions_path) + ".partial")
    done: dict[int, str] = {}
    if partial is not None and resume and partial.is_file():
        for line in partial.read_text(encoding="utf-8").splitlines():
            try:
                item = json.loads(line)
            except json.JSONDecodeError:  # a line cut by the interruption
                continue
            i = item.get("index")
            if (
                isinstance(i, int)
                and 0 <= i < len(rows)
                and item.get("question") == rows[i]["question"]
            ):
                done[i] = item["generation"]
    todo = [i for i in range(len(rows)) if i not in done]
    fh = None
    if partial is not None:
        partial.parent.mkdir(parents=True, exist_ok=True)
        fh = partial.open("a" if done else "w", encoding="utf-8")

    def keep(indices: list[int], texts: list[str]) -> None:
        if fh is None:
            return
        for j, text in zip(indices, texts, strict=True):
            i = todo[j]
            fh.write(
                json.dumps({"index": i, "question": rows[i]["question"], "generation": text}) + "\n"
            )
        fh.flush()

    try:
        new = generate_answers(
            model,
            tokenizer,
            [str(rows[i]["question"]) for i in todo],
            kind=kind,
            batch_size=batch_size,
            max_new_tokens=max_new_tokens,
            device=device,
            show_progress=show_progress,
            on_batch=keep,
        )
    finally:
        if fh is not None:
            fh.close()
    done.update(zip(todo, new, strict=True))
    gens = [done[i] for i in range(len(rows))]
    correct: list[bool] = []
    preds: list[str | None] = []
    for r, g in zip(rows, gens, strict=True):
        choices = r.get("choices") or None
        pred = extract_answer(g, choices=choices)
        preds.append(pred)
        correct.append(answers_match(pred, r["answer"], tol=tol))
    if predictions_path is not None:
        path = Path(predictions_path)
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("w", encoding="utf-8") as out:
            for i, (r, g, p, c) in enumerate(zip(rows, gens, preds, correct, strict=True)):
                record = {
                    "id": r.get("id") or str(i),
                    "question": r["question"],
                    "gold": str(r["answer"]),
                    "prediction": p,
                    "correct": c,
                    "generation": g,
                }
                out.write(json.dumps(record, ensure_ascii=False) + "\n")
        if partial is not None:
            partial.unlink(missing_ok=True)
    lo, hi = bootstrap_interval(correct, n_resamples=n_resamples, seed=seed)
    n = len(rows)
    return {
        "name": name,
        "n": n,
        "correct": int(sum(correct)),
        "accuracy": float(np.mean(correct)) if n else math.nan,
        "ci_low": lo,
        "ci_high": hi,
        "extracted": float(np.mean([p is not None for p in preds])) if n else math.nan,
    }


def evaluate_many(
    model: Any,
    tokenizer: Any,
    datasets: Mapping[str, Any],
    *,
    output_dir: str | Path | None = None,
    **kwargs: Any,
) -> dict[str, dict[str, Any]]:
    """:func:`evaluate` on each named dataset (in-distribution and out-of-distribution).

    With ``output_dir``, predictions go to ``<output_dir>/predictions-<name>.jsonl``
    and all metrics to ``<output_dir>/metrics.json``.
    """
    results: dict[str, dict[str, Any]] = {}
    for name, records in datasets.items():
        path = None if output_dir is None else Path(output_dir) / f"predictions-{name}.jsonl"
        results[name] = evaluate(
            model, tokenizer, records, name=name, predictions_path=path, **kwargs
        )
    if output_dir is not None:
        out = Path(output_dir)
        out.mkdir(parents=True, exist_ok=True)
        (out / "metrics.json").write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    return results
