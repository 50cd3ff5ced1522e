"""Step difficulty (kpod-method section 3, Eq. 8).

``d_k = - sum_{j in step k} softmax_k(w)_j * log P(r_j | r_<j, x)`` under the
pretrained student before distillation, teacher-forced on the full rationale;
the softmax runs over the raw token weights of step ``k`` only. Causal students
read the whole templated sequence; seq2seq students read the prompt in the
encoder and the rationale plus answer in the decoder (the stage-0-given-steps
cut of :func:`kpod.training.stages.stage_example`). With ``uniform=True`` (the
"w.o.-sig-dif" ablation) the softmax is replaced by a plain mean.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from kpod.data.prepared import split_position, with_column
from kpod.models import resolve_kind
from kpod.training.collator import KpodCollator
from kpod.training.stages import stage_example

__all__ = ["add_step_difficulty", "step_difficulties", "token_nll"]


def token_nll(model: Any, batch: dict[str, torch.Tensor], kind: str) -> torch.Tensor:
    """Per-target-token NLL aligned with ``batch['labels']`` (0 where labels is -100)."""
    labels = batch["labels"]
    if kind == "causal":
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
        out = torch.zeros(labels.shape, dtype=torch.float32, device=logits.device)
        shifted = labels[:, 1:]
        nll = torch.nn.functional.cross_entropy(
            logits[:, :-1].reshape(-1, logits.size(-1)).float(),
            shifted.reshape(-1),
            ignore_index=-100,
            reduction="none",
        ).view(shifted.shape)
        out[:, 1:] = nll
        return out
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    dec = base.prepare_decoder_input_ids_from_labels(labels=labels)
    logits = model(
        input_ids=batch["input_ids"],
        attention_mask=batch["attention_mask"],
        decoder_input_ids=dec,
    ).logits
    return torch.nn.functional.cross_entropy(
        logits.reshape(-1, logits.size(-1)).float(),
        labels.reshape(-1),
        ignore_index=-100,
        reduction="none",
    ).view(labels.shape)


def _aggregate(
    nll: np.ndarray, steps: np.ndarray, weights: np.ndarray | None, n_steps: int
) -> np.ndarray:
    d = np.zeros(n_steps, dtype=np.float64)
    for k in range(n_steps):
        sel = steps == k
        if not sel.any():
            raise ValueError(f"step {k} has no tokens; prepared examples need >= 1 token per step")
        x = nll[sel].astype(np.float64)
        if weights is None:
            d[k] = float(x.mean())
        else:
            w = weights[sel].astype(np.float64)
            a = np.exp(w - w.max())
            d[k] = float((a / a.sum()) @ x)
    return d


def step_difficulties(
    model: Any,
    examples: Any,
    *,
    kind: str | None = "auto",
    eos_token_id: int | None = None,
    pad_token_id: int | None = None,
    batch_size: int = 16,
    uniform: bool = False,
    device: str | torch.device | None = None,
    autocast_dtype: torch.dtype | None = None,
    show_progress: bool = True,
) -> list[np.ndarray]:
    """Eq. 8 step difficulties of every example, batched and without gradients.

    Args:
        model: the student (pretrained, before distillation; or the current one
            when re-scoring).
        examples: prepared examples (``input_ids``, ``step_ids``, ``n_steps`` and
            ``token_weights`` unless ``uniform``) as a ``datasets.Dataset`` or a
            list of dicts.
        kind: ``"causal"``, ``"seq2seq"`` or ``"auto"``.
        eos_token_id, pad_token_id: default to ``model.config``'s.
        batch_size: examples per forward pass (sorted by length to limit padding).
        uniform: mean token NLL per step instead of the softmax-weighted one
            (the "w.o.-sig-dif" ablation).
        device: where to run; default the model's device.
        autocast_dtype: e.g. ``torch.bfloat16`` to score under autocast.

    Returns:
        One float64 array of length ``n_steps`` per example, in input order.
    """
    kind = resolve_kind(model, kind)
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    cfg = model.config
    eos = eos_token_id if eos_token_id is not None else cfg.eos_token_id
    pad = pad_token_id if pad_token_id is not None else cfg.pad_token_id
    if pad is None:
        pad = eos
    if pad is None or (kind == "seq2seq" and eos is None):
        raise ValueError("pass pad_token_id/eos_token_id: the model config does not define them")
    rows = (
        examples if isinstance(examples, Sequence) else [examples[i] for i in range(len(examples))]
    )
    if not rows:
        return []
    for i, row in enumerate(rows):
        for col in ("input_ids", "step_ids", "n_steps"):
            if col not in row:
                raise ValueError(f"example {i} lacks the prepared column {col!r}")
        if not uniform and row.get("token_weights") is None:
            raise ValueError(
                f"example {i} has no token_weights; score them with `kpod weights score` or "
                "pass uniform=True (the w.o.-sig-dif ablation)"
            )
    device = torch.device(device) if device is not None else next(model.parameters()).device
    collate = KpodCollator(pad_token_id=int(pad))
    order = np.argsort([len(r["input_ids"]) for r in rows], kind="stable")[::-1]
    out: list[np.ndarray | None] = [None] * len(rows)
    was_training = model.training
    model.eval()
    batches = [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
    progress: Any = batches
    if show_progress:
        from tqdm.auto import tqdm

        progress = tqdm(batches, desc="step difficulty", unit="batch", leave=False)
    amp: Any = (
        torch.autocast(device_type=device.type, dtype=autocast_dtype)
        if autocast_dtype is not None
        else contextlib.nullcontext()
    )
    try:
        with torch.inference_mode(), amp:
            for idx in progress:
                feats, cuts = [], []
                for i in idx:
                    row = rows[int(i)]
                    feats.append(
                        stage_example(row, 0, kind, eos_token_id=eos, equal_token_weights=True)
                    )
                    cuts.append(split_position(row["step_ids"], 0))
                batch = {k: v.to(device) for k, v in collate(feats).items() if k != "token_weights"}
                nll = token_nll(model, batch, kind).cpu().numpy()
                for b, i in enumerate(idx):
                    row = rows[int(i)]
                    p = cuts[b]
                    sid = np.asarray(row["step_ids"])
                    if kind == "causal":
                        tok_nll, steps = nll[b, p : len(sid)], sid[p:]
                        w = (
                            None
                            if uniform
                            else np.asarray(row["token_weights"], dtype=np.float64)[p:]
                        )
                    else:
                        m = len(sid) - p
                        tok_nll, steps = nll[b, :m], sid[p:]
                        w = (
                            None
                            if uniform
                            else np.asarray(row["token_weights"], dtype=np.float64)[p:]
                        )
                    out[int(i)] = _aggregate(tok_nll, steps, w, int(row["n_steps"]))
    finally:
        model.train(was_training)
    return [x for x in out if x is not None]


def add_step_difficulty(dataset: Any, model: Any, **kwargs: Any) -> Any:
    """``dataset`` with a ``step_difficulty`` column (replaced if present), see :func:`step_difficulties`."""
    diffs = step_difficulties(model, dataset, **kwargs)
    values = [d.tolist() for d in diffs]
    if hasattr(dataset, "add_column"):
        return with_column(dataset, "step_difficulty", values)
    return [{**row, "step_difficulty": v} for row, v in zip(dataset, values, strict=True)]
