"""The weighted stage-wise distillation loss (kpod-method section 6, Eqs. 14-15).

``L_o(t) = - sum_j w_j log P(y_j | y_<j, input)`` over the tokens the student
writes at stage ``t``: raw sigmoid weights on rationale targets and weight 1.0
on the answer part (so the answer NLL is unweighted, as the paper adds it), all
divided by the number of target tokens. The weights come aligned with the
labels (see :func:`kpod.training.stages.stage_example`), so this function needs
no knowledge of steps or answers and is tested on its own.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from kpod.training.stages import IGNORE_INDEX

__all__ = ["weighted_token_loss"]


def weighted_token_loss(
    logits: torch.Tensor,
    labels: torch.Tensor,
    token_weights: torch.Tensor | None,
    *,
    shift: bool,
    num_items_in_batch: torch.Tensor | int | None = None,
) -> torch.Tensor:
    """Token-weighted negative log-likelihood, normalised by the target-token count.

    Args:
        logits: ``(batch, length, vocab)``.
        labels: ``(batch, length)``, ``-100`` where no loss is taken.
        token_weights: ``(batch, length)`` aligned with ``labels``; ``None`` means 1.0.
        shift: causal LM (position ``j`` predicts label ``j + 1``); ``False`` for
            seq2seq decoders whose labels are aligned with the logits.
        num_items_in_batch: the normaliser; default the number of targets in this
            batch. The Trainer passes the count over all gradient-accumulation
            micro-batches (and devices), which keeps the normalisation per batch.

    Returns:
        A scalar in float32. With all weights 1.0 it equals the plain
        cross-entropy SFT loss.
    """
    if logits.dim() != 3 or labels.shape != logits.shape[:2]:
        raise ValueError(
            f"logits must be (batch, length, vocab) and labels (batch, length); got "
            f"{tuple(logits.shape)} and {tuple(labels.shape)}"
        )
    if token_weights is not None and token_weights.shape != labels.shape:
        raise ValueError(
            f"token_weights has shape {tuple(token_weights.shape)} but labels has "
            f"{tuple(labels.shape)}; pad them together (kpod.training.KpodCollator)"
        )
    if shift:
        # Shift the labels, not the logits: slicing the logits would copy the
        # (batch, length, vocab) tensor, the largest one in the step.
        labels = F.pad(labels, (0, 1), value=IGNORE_INDEX)[..., 1:]
        if token_weights is not None:
            token_weights = F.pad(token_weights, (0, 1), value=0.0)[..., 1:]
    labels = labels.to(logits.device)
    flat = logits.reshape(-1, logits.size(-1))
    nll = F.cross_entropy(
        flat if flat.dtype == torch.float32 else flat.float(),
        labels.reshape(-1),
        ignore_index=IGNORE_INDEX,
        reduction="none",
    )
    if token_weights is not None:
        # nll is already 0 under ignored labels; the mask keeps any padding value
        # (even inf or nan) in the weights from leaking into the loss.
        w = token_weights.reshape(-1).to(device=nll.device, dtype=nll.dtype)
        nll = nll * w.masked_fill(labels.reshape(-1) == IGNORE_INDEX, 0.0)
    total = nll.sum()
    denom: Any = num_items_in_batch
    if denom is None:
        denom = labels.ne(IGNORE_INDEX).sum()
    if torch.is_tensor(denom):
        denom = denom.to(total.device)
        return total / denom.clamp(min=1)
    return total / max(int(denom), 1)
