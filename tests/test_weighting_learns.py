"""Mask learning really learns (issue 4 item 3).

Synthetic task (kpod.weighting.synthetic): three steps, each hiding one key
digit among four random filler words; the answer is the three digits in
order. A tiny 2-layer Llama answer predictor is first trained briefly (about
3 s) to read the answer off unmasked rationales -- the stand-in for the
paper's pretrained predictor -- and is then frozen (the default) while the
weight generator learns masks with Eq. 7 through the real Trainer path.
After training, held-out weights must rank key digits above filler (ROC-AUC
>= 0.9) and a larger alpha must keep fewer tokens.
"""

from __future__ import annotations

import copy

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("sklearn")

from kpod.weighting.synthetic import make_examples, make_tokenizer  # noqa: E402
from kpod.weighting.train import WeightingCollator, WeightingConfig, train_weighting  # noqa: E402


@pytest.fixture(scope="module")
def task():  # type: ignore[no-untyped-def]
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.set_num_threads(1)
    tok = make_tokenizer()
    train = make_examples(tok, 512, seed=0)
    collate = WeightingCollator(pad_token_id=tok.pad_token_id)
    torch.manual_seed(0)
    predictor = LlamaForCausalLM(
        LlamaConfig(
            vocab_size=len(tok),
            hidden_size=64,
            intermediate_size=128,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=4,
            max_position_embeddings=128,
            pad_token_id=tok.pad_token_id,
            tie_word_embeddings=True,
        )
    )
    opt = torch.optim.AdamW(predictor.parameters(), lr=3e-3)
    for step in range(200):  # brief pre-training on unmasked sequences
        lo = (step * 32) % len(train)
        batch = collate(train[lo : lo + 32])
        labels = torch.where(batch["answer_mask"].bool(), batch["input_ids"], -100)
        loss = predictor(
            input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], labels=labels
        ).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.5, "the answer predictor did not learn to copy the digits"
    return tok, train, predictor, collate


def _train(task, alpha: float, tmp_path):  # type: ignore[no-untyped-def]
    from datasets import Dataset

    tok, train, predictor, _ = task
    pred = copy.deepcopy(predictor)
    cfg = WeightingConfig(
        output_dir=str(tmp_path / f"alpha{alpha}"),
        student="synthetic",
        alpha=alpha,
        hidden_size=32,
        num_heads=2,
        init_keep=0.9,
        learning_rate=1e-3,
        lr_scheduler_type="constant",
        num_train_epochs=8,
        per_device_train_batch_size=16,
        save_strategy="no",
        logging_steps=1000,
        use_cpu=True,
        disable_tqdm=True,
        seed=0,
    )
    return train_weighting(Dataset.from_list(train), cfg, tok, student=pred, predictor=pred)


def _weights(module, task):  # type: ignore[no-untyped-def]
    tok, _, _, collate = task
    test = make_examples(tok, 100, seed=1)
    b = collate(test)
    w = module.token_weights(b["input_ids"], b["step_ids"])
    rationale = b["step_ids"] >= 0
    key = torch.zeros_like(rationale)
    for i, ex in enumerate(test):
        key[i, : len(ex["key_mask"])] = torch.tensor(ex["key_mask"]).bool()
    return w[rationale], key[rationale]


@pytest.mark.slow
def test_weights_rank_key_tokens_above_filler_and_alpha_controls_sparsity(task, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from sklearn.metrics import roc_auc_score

    low = _train(task, 0.5, tmp_path)
    w_low, key = _weights(low, task)
    auc = roc_auc_score(key.numpy(), w_low.numpy())
    assert auc >= 0.9, f"ROC-AUC of key vs filler tokens {auc:.3f}"
    print(
        f"alpha 0.5: ROC-AUC {auc:.3f}, mean w key {w_low[key].mean():.3g}, filler {w_low[~key].mean():.3g}"
    )
    assert w_low[key].mean() > 10 * w_low[~key].mean()

    high = _train(task, 3.0, tmp_path)
    w_high, _ = _weights(high, task)
    print(f"alpha 3.0: sum w {w_high.sum():.3g} vs {w_low.sum():.3g} at alpha 0.5")
    # expected number of kept tokens (sum of w) and hard keeps (w > 0.5) both shrink
    assert w_high.sum() < w_low.sum()
    assert (w_high > 0.5).sum() <= (w_low > 0.5).sum()
    assert (w_low > 0.5).sum() > 0, "alpha=0.5 should keep some key digits"
