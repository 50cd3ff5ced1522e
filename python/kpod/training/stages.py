"""Stage examples: a prepared example cut at its curriculum stage.

The contract (docs/architecture.md, "Stage examples"): at stage ``t`` question
``i`` has ``c_i`` given steps. Let ``p`` be the first position whose
``step_ids`` is ``>= c_i`` or ``-2`` (the answer part;
:func:`kpod.data.prepared.split_position`). Causal students read
``input_ids`` whole with labels ``-100`` before ``p``; seq2seq students read
``input_ids[:p] + [EOS]`` in the encoder and write ``input_ids[p:]``. Token
weights follow the labels. Nothing here re-tokenizes.

This module is pure Python (no torch), so the data path stays cheap and easy to
test; :class:`StageDataset` keeps one integer per question and cuts examples
on access, so a new stage costs one array assignment.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from kpod.data.prepared import column, column_names, split_position
from kpod.models import Kind, check_kind

IGNORE_INDEX = -100

__all__ = [
    "IGNORE_INDEX",
    "TOKEN_WEIGHT_NORMS",
    "StageDataset",
    "normalize_token_weights",
    "stage_example",
]


def stage_example(
    example: Mapping[str, Any],
    given_steps: int,
    kind: str,
    *,
    eos_token_id: int | None = None,
    equal_token_weights: bool = False,
) -> dict[str, list[int] | list[float]]:
    """Cut one prepared example at ``given_steps`` given rationale steps.

    Args:
        example: a prepared example with ``input_ids`` and ``step_ids`` (and
            ``token_weights`` unless ``equal_token_weights``); ``n_steps`` is
            used for validation when present.
        given_steps: ``c_i``, the number of leading steps moved into the input
            (``0 <= given_steps <= n_steps``).
        kind: ``"causal"`` or ``"seq2seq"``.
        eos_token_id: appended to the seq2seq encoder input (required there).
        equal_token_weights: every target weight is 1.0 (the "w.o.-sig" ablation).

    Returns:
        ``{"input_ids", "labels", "token_weights"}``; ``labels`` and
        ``token_weights`` have the same length and ``token_weights`` is 0.0 where
        ``labels`` is ``-100``.
    """
    kind = check_kind(kind)
    try:
        input_ids = list(example["input_ids"])
        step_ids = example["step_ids"]
    except KeyError as exc:
        raise ValueError(
            f"stage_example needs the prepared column {exc.args[0]!r}; build examples with "
            "kpod.data.prepare_examples"
        ) from None
    if len(step_ids) != len(input_ids):
        raise ValueError(
            f"step_ids has {len(step_ids)} entries but input_ids has {len(input_ids)}; they "
            "must be aligned (docs/architecture.md, prepared examples)"
        )
    n_steps = example.get("n_steps")
    if given_steps < 0 or (n_steps is not None and given_steps > int(n_steps)):
        raise ValueError(
            f"given_steps={given_steps} is outside [0, n_steps={n_steps}] for example "
            f"{example.get('id', '?')!r}"
        )
    if equal_token_weights:
        weights = [1.0] * len(input_ids)
    else:
        if "token_weights" not in example or example["token_weights"] is None:
            raise ValueError(
                "the example has no 'token_weights' column; score it with `kpod weights score` "
                "or train with equal_token_weights=True (the w.o.-sig ablation)"
            )
        weights = [float(w) for w in example["token_weights"]]
        if len(weights) != len(input_ids):
            raise ValueError(
                f"token_weights has {len(weights)} entries but input_ids has {len(input_ids)}"
            )
    p = split_position(step_ids, given_steps)
    if kind == "causal":
        labels = [IGNORE_INDEX] * p + input_ids[p:]
        tw = [0.0] * p + weights[p:]
        return {"input_ids": input_ids, "labels": labels, "token_weights": tw}
    if eos_token_id is None:
        raise ValueError("seq2seq stage examples need eos_token_id to close the encoder input")
    return {
        "input_ids": [*input_ids[:p], int(eos_token_id)],
        "labels": input_ids[p:],
        "token_weights": weights[p:],
    }


TOKEN_WEIGHT_NORMS = ("none", "mean")


def normalize_token_weights(weights: np.ndarray, step_ids: np.ndarray) -> np.ndarray:
    """Divide an example's rationale-token weights by their mean (``token_weight_norm="mean"``).

    Rationale tokens are those with ``step_ids >= 0``; prompt and answer-part
    weights are returned unchanged. After this the mean rationale weight is 1,
    the weight every token has in plain CoT distillation, so the loss keeps its
    scale even when the weighting module's sigmoid outputs are all small, and
    the ratios between tokens (the keypoint emphasis) are kept exactly. A
    rationale whose weights are all 0 (or that has no rationale tokens) gets
    weight 1 everywhere, since nothing ranks its tokens.
    """
    out = np.asarray(weights, dtype=np.float32).copy()
    mask = np.asarray(step_ids) >= 0
    if mask.any():
        mean = float(out[mask].mean(dtype=np.float64))
        out[mask] = out[mask] / mean if mean > 0 else 1.0
    return out


class StageDataset:
    """Map-style dataset of stage examples whose given-step counts change per stage.

    Holds the prepared columns once (as numpy arrays) plus one ``given_steps``
    integer per question; :meth:`set_given_steps` switches the stage. The
    length never changes, so the Trainer's sampler, steps per epoch and resume
    arithmetic stay valid across stages.
    """

    def __init__(
        self,
        examples: Any,
        kind: str,
        *,
        eos_token_id: int | None = None,
        equal_token_weights: bool = False,
        token_weight_norm: str = "none",
    ) -> None:
        self.kind: Kind = check_kind(kind)
        if token_weight_norm not in TOKEN_WEIGHT_NORMS:
            raise ValueError(
                f"token_weight_norm must be 'none' or 'mean', got {token_weight_norm!r}"
            )
        self.eos_token_id = eos_token_id
        self.equal_token_weights = equal_token_weights
        cols = column_names(examples)
        for needed in ("input_ids", "step_ids", "n_steps"):
            if needed not in cols:
                raise ValueError(
                    f"training data lacks the prepared column {needed!r}; prepare it with "
                    "kpod.data.prepare_examples (columns: input_ids, step_ids, n_steps, ...)"
                )
        if not equal_token_weights and "token_weights" not in cols:
            raise ValueError(
                "training data has no 'token_weights' column; run `kpod weights score` first or "
                "set equal_token_weights=True (the w.o.-sig ablation)"
            )
        self.input_ids = [np.asarray(x, dtype=np.int64) for x in column(examples, "input_ids")]
        self.step_ids = [np.asarray(x, dtype=np.int64) for x in column(examples, "step_ids")]
        self.n_steps = np.asarray(column(examples, "n_steps"), dtype=np.int64)
        self.token_weights = (
            None
            if equal_token_weights
            else [np.asarray(x, dtype=np.float32) for x in column(examples, "token_weights")]
        )
        self.mean_rationale_weight: float | None = None
        if self.token_weights is not None:
            total = sum(
                float(w[s >= 0].sum())
                for w, s in zip(self.token_weights, self.step_ids, strict=True)
            )
            count = sum(int((s >= 0).sum()) for s in self.step_ids)
            self.mean_rationale_weight = total / count if count else None
        if self.token_weights is not None and token_weight_norm == "mean":
            self.token_weights = [
                normalize_token_weights(w, s)
                for w, s in zip(self.token_weights, self.step_ids, strict=True)
            ]
        self.given_steps = np.zeros(len(self.input_ids), dtype=np.int64)

    def __len__(self) -> int:
        return len(self.input_ids)

    def set_given_steps(self, given_steps: Sequence[int] | np.ndarray) -> None:
        given = np.asarray(given_steps, dtype=np.int64)
        if given.shape != self.given_steps.shape:
            raise ValueError(
                f"given_steps has shape {given.shape}, expected ({len(self)},): one count per question"
            )
        if (given < 0).any() or (given > self.n_steps).any():
            bad = int(np.flatnonzero((given < 0) | (given > self.n_steps))[0])
            raise ValueError(
                f"given_steps[{bad}]={int(given[bad])} is outside [0, n_steps={int(self.n_steps[bad])}]"
            )
        self.given_steps = given.copy()

    def __getitem__(self, i: int) -> dict[str, list[int] | list[float]]:
        ex: dict[str, Any] = {
            "input_ids": self.input_ids[i].tolist(),
            "step_ids": self.step_ids[i],
            "n_steps": int(self.n_steps[i]),
        }
        if self.token_weights is not None:
            ex["token_weights"] = self.token_weights[i].tolist()
        return stage_example(
            ex,
            int(self.given_steps[i]),
            self.kind,
            eos_token_id=self.eos_token_id,
            equal_token_weights=self.equal_token_weights,
        )
