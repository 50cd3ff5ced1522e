"""The weighting losses (Eqs. 5-7) and the Gumbel keep mask, on hand-made tensors."""

from __future__ import annotations

import math

import pytest

torch = pytest.importorskip("torch")

from kpod.weighting.losses import (  # noqa: E402
    combined_loss,
    gumbel_keep_mask,
    mask_loss,
    prefix_answer_loss,
)
from kpod.weighting.module import prefix_boundaries  # noqa: E402


def test_prefix_loss_normalises_per_answer_token_then_prefix_then_example() -> None:
    # example 0: two prefixes; prefix a has 2 answer tokens (NLL 1 and 3 -> 2),
    # prefix b has 2 (NLL 4, 4 -> 4): example mean 3. Example 1: one prefix
    # with one answer token, NLL 1. Overall (3 + 1) / 2 = 2.
    lp = -torch.tensor([[0.0, 1.0, 3.0], [4.0, 4.0, 9.0], [9.0, 1.0, 0.0]])
    mask = torch.tensor([[0, 1, 1], [1, 1, 0], [0, 1, 0]])
    owner = torch.tensor([0, 0, 1])
    assert prefix_answer_loss(lp, mask, owner).item() == pytest.approx(2.0)


def test_prefix_loss_ignores_non_answer_positions_and_is_differentiable() -> None:
    lp = torch.tensor([[-100.0, -0.5]], requires_grad=True)
    loss = prefix_answer_loss(lp, torch.tensor([[0, 1]]), torch.tensor([0]))
    assert loss.item() == pytest.approx(0.5)
    loss.backward()
    assert lp.grad is not None
    assert lp.grad.tolist() == [[0.0, -1.0]]


def test_prefix_loss_scale_does_not_grow_with_prefix_count() -> None:
    one = prefix_answer_loss(torch.full((1, 2), -2.0), torch.ones(1, 2), torch.tensor([0]))
    many = prefix_answer_loss(
        torch.full((5, 2), -2.0), torch.ones(5, 2), torch.zeros(5, dtype=torch.long)
    )
    assert one.item() == pytest.approx(many.item()) == pytest.approx(2.0)


def test_prefix_loss_rejects_prefix_without_answer_tokens() -> None:
    with pytest.raises(ValueError, match="no answer tokens"):
        prefix_answer_loss(
            torch.zeros(2, 3), torch.tensor([[0, 1, 0], [0, 0, 0]]), torch.tensor([0, 0])
        )


def test_mask_loss_counts_kept_rationale_tokens_per_rationale_token() -> None:
    masks = torch.tensor([[1.0, 1.0, 0.0, 1.0], [0.0, 1.0, 1.0, 1.0]])
    rationale = torch.tensor([[0, 1, 1, 1], [0, 0, 1, 0]])
    # kept rationale tokens: (1 + 0 + 1) + 1 = 3 of 4
    assert mask_loss(masks, rationale).item() == pytest.approx(0.75)


def test_mask_loss_rejects_batch_without_rationale() -> None:
    with pytest.raises(ValueError, match="no rationale tokens"):
        mask_loss(torch.ones(1, 3), torch.zeros(1, 3))


def test_combined_loss_is_eq7() -> None:
    assert combined_loss(torch.tensor(2.0), torch.tensor(0.4), 0.5).item() == pytest.approx(2.2)
    assert combined_loss(torch.tensor(2.0), torch.tensor(0.4), 0.0).item() == pytest.approx(2.0)
    # A negative multiplier is target_keep's reward for keeping (kept below target).
    assert combined_loss(torch.tensor(1.0), torch.tensor(0.5), -1.0).item() == pytest.approx(0.5)


def test_a_fixed_negative_alpha_is_refused(tmp_path) -> None:  # type: ignore[no-untyped-def]
    datasets = pytest.importorskip("datasets")
    from kpod.weighting.synthetic import make_examples, make_tokenizer
    from kpod.weighting.train import WeightingConfig, train_weighting

    tok = make_tokenizer()
    cfg = WeightingConfig(output_dir=str(tmp_path), alpha=-1.0, target_keep=None, use_cpu=True)
    data = datasets.Dataset.from_list(make_examples(tok, 20))
    with pytest.raises(ValueError, match=r"alpha must be >= 0, got -1\.0"):
        train_weighting(data, cfg, tok, student=object(), predictor=object())


def test_gumbel_mask_is_hard_with_keep_rate_w_and_straight_through_gradient() -> None:
    torch.manual_seed(0)
    w = 0.8
    z = torch.full((20000,), math.log(w / (1 - w)), requires_grad=True)
    m = gumbel_keep_mask(z, tau=1.0)
    assert set(m.detach().unique().tolist()) <= {0.0, 1.0}
    assert m.mean().item() == pytest.approx(w, abs=0.02)
    m.sum().backward()
    assert z.grad is not None
    assert bool((z.grad > 0).all())  # more keep-mass as z grows


def test_prefix_boundaries_all_or_capped_always_with_full_rationale() -> None:
    assert prefix_boundaries(4, None) == [1, 2, 3, 4]
    assert prefix_boundaries(3, 5) == [1, 2, 3]
    capped = prefix_boundaries(10, 3)
    assert len(capped) == 3 and capped[-1] == 10 and capped == sorted(set(capped))
    assert prefix_boundaries(10, 1) == [10]
    with pytest.raises(ValueError):
        prefix_boundaries(0, None)
