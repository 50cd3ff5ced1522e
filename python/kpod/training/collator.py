"""Padding for stage examples: input ids, labels and token weights together."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from kpod.training.stages import IGNORE_INDEX

__all__ = ["KpodCollator"]


@dataclass
class KpodCollator:
    """Pads a list of stage examples into a batch.

    ``input_ids`` are padded with ``pad_token_id`` (``attention_mask`` marks the
    real tokens), ``labels`` with ``-100`` and ``token_weights`` with ``0.0``, all
    on the same side, so weights stay aligned with their labels. For causal
    students labels share the input's length; for seq2seq students they are the
    decoder targets and are padded to their own length.

    Attributes:
        pad_token_id: the tokenizer's pad id.
        padding_side: ``"right"`` (training default) or ``"left"``.
        pad_to_multiple_of: round padded lengths up (tensor-core friendly sizes).
    """

    pad_token_id: int
    padding_side: str = "right"
    pad_to_multiple_of: int | None = None

    def __post_init__(self) -> None:
        if self.padding_side not in ("left", "right"):
            raise ValueError(f"padding_side must be 'left' or 'right', got {self.padding_side!r}")

    def __call__(self, features: Sequence[Mapping[str, Any]]) -> dict[str, torch.Tensor]:
        if not features:
            raise ValueError("KpodCollator got an empty list of examples")
        ids = [list(f["input_ids"]) for f in features]
        batch: dict[str, torch.Tensor] = {
            "input_ids": self._pad(ids, self.pad_token_id, torch.long),
            "attention_mask": self._pad([[1] * len(x) for x in ids], 0, torch.long),
        }
        if "labels" in features[0]:
            batch["labels"] = self._pad(
                [list(f["labels"]) for f in features], IGNORE_INDEX, torch.long
            )
        if "token_weights" in features[0]:
            batch["token_weights"] = self._pad(
                [list(f["token_weights"]) for f in features], 0.0, torch.float32
            )
            if batch["token_weights"].shape != batch["labels"].shape:
                raise ValueError("token_weights and labels of an example differ in length")
        return batch

    def _pad(self, rows: list[list[Any]], value: Any, dtype: torch.dtype) -> torch.Tensor:
        length = max(len(r) for r in rows)
        if self.pad_to_multiple_of:
            m = self.pad_to_multiple_of
            length = (length + m - 1) // m * m
        out = torch.full((len(rows), length), value, dtype=dtype)
        for i, r in enumerate(rows):
            if not r:
                continue
            t = torch.tensor(r, dtype=dtype)
            if self.padding_side == "right":
                out[i, : len(r)] = t
            else:
                out[i, length - len(r) :] = t
        return out
