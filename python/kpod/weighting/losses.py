"""The weighting module's losses (kpod-method section 2, Eqs. 5-7) as pure functions.

Nothing here touches a model: the functions take per-token log-probabilities
and masks and return scalars, so each is tested on hand-made tensors.
"""

from __future__ import annotations

import torch


def prefix_answer_loss(
    answer_logprobs: torch.Tensor,
    answer_mask: torch.Tensor,
    example_index: torch.Tensor,
) -> torch.Tensor:
    """L_p (Eq. 5): answer NLL over every rationale prefix, normalised.

    Args:
        answer_logprobs: ``[P, T]`` log P(token) at each position of each
            prefix sequence (only answer positions are read).
        answer_mask: ``[P, T]`` 1 where the position is an answer-value token.
        example_index: ``[P]`` which example each prefix sequence belongs to.

    Returns the mean over examples of the mean over that example's prefixes of
    the mean NLL per answer token ([kpod decision] normalise per answer token
    and per prefix, so the scale does not grow with answer length or with the
    number of steps).
    """
    if answer_logprobs.shape != answer_mask.shape:
        raise ValueError(
            f"answer_logprobs {tuple(answer_logprobs.shape)} and answer_mask "
            f"{tuple(answer_mask.shape)} must have the same shape"
        )
    if example_index.shape != answer_logprobs.shape[:1]:
        raise ValueError("example_index must have one entry per prefix sequence")
    mask = answer_mask.to(answer_logprobs.dtype)
    n_tokens = mask.sum(dim=1)
    if bool((n_tokens == 0).any()):
        bad = int(torch.nonzero(n_tokens == 0)[0, 0])
        raise ValueError(f"prefix sequence {bad} has no answer tokens; L_p needs at least one")
    per_prefix = -(answer_logprobs * mask).sum(dim=1) / n_tokens
    _, inverse = torch.unique(example_index, return_inverse=True)
    n_examples = int(inverse.max()) + 1
    sums = torch.zeros(n_examples, dtype=per_prefix.dtype, device=per_prefix.device)
    counts = torch.zeros_like(sums)
    sums = sums.index_add(0, inverse, per_prefix)
    counts = counts.index_add(0, inverse, torch.ones_like(per_prefix))
    return (sums / counts).mean()


def mask_loss(masks: torch.Tensor, rationale_mask: torch.Tensor) -> torch.Tensor:
    """L_m (Eq. 6): the number of kept rationale tokens, per rationale token.

    Args:
        masks: ``[B, T]`` keep masks m_j in [0, 1] (hard 0/1 straight-through
            samples during training, so gradients reach the weights).
        rationale_mask: ``[B, T]`` 1 for rationale tokens, 0 elsewhere.

    Returns ``sum(m * rationale) / sum(rationale)`` over the whole batch
    ([kpod decision] normalised per rationale token so alpha is scale-free).
    """
    if masks.shape != rationale_mask.shape:
        raise ValueError(
            f"masks {tuple(masks.shape)} and rationale_mask {tuple(rationale_mask.shape)} "
            "must have the same shape"
        )
    r = rationale_mask.to(masks.dtype)
    total = r.sum()
    if float(total) == 0.0:
        raise ValueError("the batch has no rationale tokens; L_m is undefined")
    return (masks * r).sum() / total


def combined_loss(l_p: torch.Tensor, l_m: torch.Tensor, alpha: float = 0.5) -> torch.Tensor:
    """L_k = L_p + alpha * L_m (Eq. 7). alpha = 0.5 is the paper's text value.

    A negative alpha only arises as the multiplier of ``target_keep``'s
    equality constraint (kept fraction below its target); a fixed alpha is
    checked to be >= 0 by the config.
    """
    return l_p + alpha * l_m


def gumbel_keep_mask(
    weights_logit: torch.Tensor, tau: float = 1.0, *, hard: bool = True
) -> torch.Tensor:
    """Eq. 4: m_j = GumbelSoftmax over the two-class logits [log w, log(1 - w)].

    ``weights_logit`` is the pre-sigmoid score z (w = sigmoid(z)); using
    logsigmoid(z) and logsigmoid(-z) keeps the logits finite. With ``hard``
    the sample is exactly 0/1 and the gradient is the straight-through one.
    Returns the probability-of-keep column (1 = keep).
    """
    if tau <= 0:
        raise ValueError(f"tau must be > 0, got {tau}")
    logits = torch.stack(
        [
            torch.nn.functional.logsigmoid(weights_logit),
            torch.nn.functional.logsigmoid(-weights_logit),
        ],
        dim=-1,
    )
    sample = torch.nn.functional.gumbel_softmax(logits.float(), tau=tau, hard=hard, dim=-1)
    return sample[..., 0].to(weights_logit.dtype)
