"""Stage examples, the collator and the weighted loss on hand-built cases."""

from __future__ import annotations

import pytest
import torch

from kpod.training.collator import KpodCollator
from kpod.training.loss import weighted_token_loss
from kpod.training.stages import StageDataset, stage_example

EOS = 1
# positions:   0   1   2   3   4   5   6   7   8   9
IDS = [50, 51, 60, 61, 70, 71, 72, 80, 81, EOS]
STEPS = [-1, -1, 0, 0, 1, 1, 1, -2, -2, -2]
W = [1.0, 1.0, 0.2, 0.9, 0.3, 0.4, 0.5, 1.0, 1.0, 1.0]
EX = {"id": "x", "input_ids": IDS, "step_ids": STEPS, "token_weights": W, "n_steps": 2}


def test_causal_zero_given_steps_targets_whole_rationale() -> None:
    out = stage_example(EX, 0, "causal")
    assert out["input_ids"] == IDS
    assert out["labels"] == [-100, -100, 60, 61, 70, 71, 72, 80, 81, EOS]
    assert out["token_weights"] == [0.0, 0.0, 0.2, 0.9, 0.3, 0.4, 0.5, 1.0, 1.0, 1.0]


def test_causal_given_step_is_input_without_loss() -> None:
    out = stage_example(EX, 1, "causal")
    assert out["input_ids"] == IDS  # the model reads everything
    assert out["labels"] == [-100] * 4 + [70, 71, 72, 80, 81, EOS]
    assert out["token_weights"] == [0.0] * 4 + [0.3, 0.4, 0.5, 1.0, 1.0, 1.0]


def test_causal_all_steps_given_leaves_only_the_answer_part() -> None:
    out = stage_example(EX, 2, "causal")
    assert out["labels"] == [-100] * 7 + [80, 81, EOS]
    assert out["token_weights"] == [0.0] * 7 + [1.0, 1.0, 1.0]


def test_seq2seq_given_steps_move_into_the_encoder() -> None:
    out = stage_example(EX, 1, "seq2seq", eos_token_id=EOS)
    assert out["input_ids"] == [50, 51, 60, 61, EOS]
    assert out["labels"] == [70, 71, 72, 80, 81, EOS]
    assert out["token_weights"] == [0.3, 0.4, 0.5, 1.0, 1.0, 1.0]
    out0 = stage_example(EX, 0, "seq2seq", eos_token_id=EOS)
    assert out0["input_ids"] == [50, 51, EOS]
    assert out0["labels"] == IDS[2:]
    assert out0["token_weights"] == W[2:]


def test_equal_token_weights_changes_only_weights() -> None:
    a = stage_example(EX, 1, "causal")
    b = stage_example(EX, 1, "causal", equal_token_weights=True)
    assert a["input_ids"] == b["input_ids"] and a["labels"] == b["labels"]
    assert b["token_weights"] == [0.0] * 4 + [1.0] * 6


def test_bad_input_is_named() -> None:
    with pytest.raises(ValueError, match="given_steps=3"):
        stage_example(EX, 3, "causal")
    with pytest.raises(ValueError, match="kind must be"):
        stage_example(EX, 0, "encoder")
    with pytest.raises(ValueError, match="token_weights"):
        stage_example({k: v for k, v in EX.items() if k != "token_weights"}, 0, "causal")
    with pytest.raises(ValueError, match="eos_token_id"):
        stage_example(EX, 0, "seq2seq")
    with pytest.raises(ValueError, match="aligned"):
        stage_example({**EX, "step_ids": STEPS[:-1]}, 0, "causal")


def test_prepared_examples_decode_to_the_right_parts() -> None:
    from _training_toy import toy_dataset
    from kpod.testing import tiny_tokenizer

    tok = tiny_tokenizer()
    ex = toy_dataset(tok, n=3)[1]
    assert ex["n_steps"] == 3
    for c in range(ex["n_steps"] + 1):
        s2s = stage_example(ex, c, "seq2seq", eos_token_id=tok.eos_token_id)
        enc = tok.decode(s2s["input_ids"][:-1])
        dec = tok.decode(s2s["labels"])
        for k, step in enumerate(ex["steps"]):
            assert (step in enc) == (k < c), (c, k)
            assert (step in dec) == (k >= c), (c, k)
        assert "Therefore, the answer is" in dec and "Therefore" not in enc
        causal = stage_example(ex, c, "causal")
        targets = [t for t in causal["labels"] if t != -100]
        assert targets == s2s["labels"]  # both kinds write the same tokens
        w_targets = [
            w for w, t in zip(causal["token_weights"], causal["labels"], strict=True) if t != -100
        ]
        assert w_targets == s2s["token_weights"]


def test_stage_dataset_switches_stage_without_changing_length() -> None:
    ds = StageDataset([EX, {**EX, "id": "y"}], "causal")
    assert len(ds) == 2
    ds.set_given_steps([1, 2])
    assert ds[0]["labels"] == stage_example(EX, 1, "causal")["labels"]
    assert ds[1]["labels"] == stage_example(EX, 2, "causal")["labels"]
    with pytest.raises(ValueError, match="outside"):
        ds.set_given_steps([0, 3])
    with pytest.raises(ValueError, match="one count per question"):
        ds.set_given_steps([0])


def test_mean_norm_gives_rationale_mean_one_and_keeps_ratios() -> None:
    # W's rationale weights 0.2, 0.9, 0.3, 0.4, 0.5 have mean 0.46
    ds = StageDataset([EX], "causal", token_weight_norm="mean")
    w = ds[0]["token_weights"]
    rationale = w[2:7]
    assert sum(rationale) / 5 == pytest.approx(1.0, rel=1e-6)
    assert rationale[1] / rationale[0] == pytest.approx(0.9 / 0.2, rel=1e-5)
    assert w[7:] == [1.0, 1.0, 1.0]  # the answer part stays unweighted
    assert w[:2] == [0.0, 0.0]  # prompt: no loss
    # a given step moves into the prompt; the rest keep their normalised weights
    ds.set_given_steps([1])
    assert ds[0]["token_weights"][4:7] == pytest.approx(rationale[2:], rel=1e-6)
    # a collapsed module (all weights 0) falls back to weight 1, not to 0/0
    zero = {**EX, "token_weights": [1.0, 1.0, 0, 0, 0, 0, 0, 1.0, 1.0, 1.0]}
    assert (
        StageDataset([zero], "causal", token_weight_norm="mean")[0]["token_weights"][2:]
        == [1.0] * 8
    )
    # the raw mean is kept for the collapse warning (0.2 + 0.9 + 0.3 + 0.4 + 0.5) / 5
    assert ds.mean_rationale_weight == pytest.approx(0.46)
    # the default leaves the paper's raw weights
    assert StageDataset([EX], "causal")[0]["token_weights"][2:7] == pytest.approx(W[2:7])
    with pytest.raises(ValueError, match="token_weight_norm"):
        StageDataset([EX], "causal", token_weight_norm="max")


def test_collator_pads_weights_with_labels() -> None:
    col = KpodCollator(pad_token_id=0)
    a = stage_example(EX, 1, "seq2seq", eos_token_id=EOS)
    b = {"input_ids": [5, 6], "labels": [7], "token_weights": [0.5]}
    batch = col([a, b])
    assert batch["input_ids"].tolist() == [[50, 51, 60, 61, EOS], [5, 6, 0, 0, 0]]
    assert batch["attention_mask"].tolist() == [[1] * 5, [1, 1, 0, 0, 0]]
    assert batch["labels"][1].tolist() == [7] + [-100] * 5
    assert batch["token_weights"][1].tolist() == [0.5] + [0.0] * 5
    left = KpodCollator(pad_token_id=0, padding_side="left", pad_to_multiple_of=4)([b])
    assert left["input_ids"].tolist() == [[0, 0, 5, 6]]
    assert left["token_weights"].tolist() == [[0.0, 0.0, 0.0, 0.5]]


def _logits(seed: int, b: int, t: int, v: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(b, t, v, generator=g)


def test_loss_is_weighted_nll_over_target_count() -> None:
    logits = _logits(0, 1, 4, 7)
    labels = torch.tensor([[-100, 3, 5, 2]])
    w = torch.tensor([[0.0, 0.5, 1.0, 0.25]])
    logp = torch.log_softmax(logits, -1)
    # causal: position j predicts label j+1
    nll = [-logp[0, 0, 3], -logp[0, 1, 5], -logp[0, 2, 2]]
    want = (0.5 * nll[0] + 1.0 * nll[1] + 0.25 * nll[2]) / 3
    got = weighted_token_loss(logits, labels, w, shift=True)
    assert torch.allclose(got, want)
    # seq2seq: aligned
    nll2 = [-logp[0, 1, 3], -logp[0, 2, 5], -logp[0, 3, 2]]
    want2 = (0.5 * nll2[0] + 1.0 * nll2[1] + 0.25 * nll2[2]) / 3
    assert torch.allclose(weighted_token_loss(logits, labels, w, shift=False), want2)
    # an explicit normaliser (gradient accumulation over several micro-batches)
    assert torch.allclose(
        weighted_token_loss(logits, labels, w, shift=False, num_items_in_batch=6), want2 / 2
    )


def test_loss_with_unit_weights_equals_plain_cross_entropy() -> None:
    logits = _logits(1, 3, 6, 11)
    labels = torch.randint(0, 11, (3, 6), generator=torch.Generator().manual_seed(2))
    labels[0, :2] = -100
    labels[2, 4:] = -100
    ref = torch.nn.functional.cross_entropy(
        logits[:, :-1].reshape(-1, 11), labels[:, 1:].reshape(-1), ignore_index=-100
    )
    ones = torch.ones(3, 6)
    assert torch.allclose(weighted_token_loss(logits, labels, ones, shift=True), ref)
    assert torch.allclose(weighted_token_loss(logits, labels, None, shift=True), ref)


def test_loss_ignores_weights_under_ignored_labels_and_flows_gradients() -> None:
    logits = _logits(3, 2, 5, 9).requires_grad_(True)
    labels = torch.tensor([[-100, -100, 1, 2, 3], [-100, 4, 5, -100, -100]])
    w = torch.rand(2, 5)
    w_noisy = w.clone()
    w_noisy[labels == -100] = 123.0
    a = weighted_token_loss(logits, labels, w, shift=False)
    b = weighted_token_loss(logits, labels, w_noisy, shift=False)
    assert torch.allclose(a, b)
    a.backward()
    assert logits.grad is not None and logits.grad[0, :2].abs().sum() == 0
    with pytest.raises(ValueError, match="pad them together"):
        weighted_token_loss(logits, labels, w[:, :3], shift=False)
