"""Mask learning learns keypoints with a task-adapted predictor (docs/weighting.md).

Synthetic task (kpod.weighting.synthetic, ``restate=True``): three steps each
hide one key digit among four random filler words, and a fourth step restates
the three digits in order; the answer is the digits. The full rationale alone
could be answered from the restatement, so only the every-prefix loss (Eq. 5)
makes the original digits count. The answer predictor is a 2-layer Llama
that ``train_weighting`` adapts itself
(``predictor_adapt="cot"``: CoT fine-tuning, then random masks) after a brief
pre-training that stands in for a pretrained LM (it reads the answer off whole
rationales, as SmolLM2 copies the final number), then freezes
while the weight generator learns masks at ``target_keep`` with early stopping
on held-out rationales, through the real Trainer path.
"""

from __future__ import annotations

import json

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("sklearn")

from kpod.weighting.gates import compute_gates, warnings_for  # noqa: E402
from kpod.weighting.module import KeypointWeighting  # noqa: E402
from kpod.weighting.synthetic import make_examples, make_tokenizer  # noqa: E402
from kpod.weighting.train import (  # noqa: E402
    WeightingCollator,
    WeightingConfig,
    build_module,
    train_weighting,
)


def _llama(tok):  # type: ignore[no-untyped-def]
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    return LlamaForCausalLM(
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


def _pretrained_llama(tok, data):  # type: ignore[no-untyped-def]
    """The stand-in for a pretrained LM: briefly taught to read answers off whole rationales."""
    model = _llama(tok)
    collate = WeightingCollator(pad_token_id=tok.pad_token_id)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    rows = list(data)
    for step in range(200):
        lo = (step * 32) % len(rows)
        batch = collate(rows[lo : lo + 32])
        labels = torch.where(batch["answer_mask"].bool(), batch["input_ids"], -100)
        loss = model(
            input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], labels=labels
        ).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.5, "the stand-in predictor did not learn to read the answer"
    return model


def _config(out, **kw):  # type: ignore[no-untyped-def]
    base = dict(
        output_dir=str(out),
        student="synthetic",
        hidden_size=32,
        num_heads=2,
        learning_rate=1e-3,
        lr_scheduler_type="constant",
        num_train_epochs=12,
        per_device_train_batch_size=16,
        adapt_epochs=6,
        adapt_mask_epochs=4,
        adapt_learning_rate=3e-3,
        target_keep=0.5,
        save_strategy="no",
        logging_steps=1000,
        use_cpu=True,
        disable_tqdm=True,
        seed=0,
    )
    base.update(kw)
    return WeightingConfig(**base)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):  # type: ignore[no-untyped-def]
    from datasets import Dataset

    torch.set_num_threads(1)
    tok = make_tokenizer()
    data = Dataset.from_list(make_examples(tok, 512, seed=0, restate=True))
    out = tmp_path_factory.mktemp("weighting")
    model = _pretrained_llama(tok, data)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    module = train_weighting(data, _config(out), tok, student=model, predictor=model)
    unchanged = all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    return tok, module, out, model, unchanged


def _held_out(tok):  # type: ignore[no-untyped-def]
    test = make_examples(tok, 100, seed=1, restate=True)
    b = WeightingCollator(pad_token_id=tok.pad_token_id)(test)
    rationale = b["step_ids"] >= 0

    def mask(col: str) -> torch.Tensor:
        m = torch.zeros_like(rationale)
        for i, ex in enumerate(test):
            m[i, : len(ex[col])] = torch.tensor(ex[col]).bool()
        return m[rationale]

    return b, rationale, mask("key_mask"), mask("restated_mask")


def _auc(module, tok) -> tuple[float, torch.Tensor]:  # type: ignore[no-untyped-def]
    from sklearn.metrics import roc_auc_score

    b, rationale, key, restated = _held_out(tok)
    w = module.token_weights(b["input_ids"], b["step_ids"])[rationale]
    filler = ~(key | restated)
    # the original digits against filler: only the every-prefix loss makes them count
    pick = key | filler
    return float(roc_auc_score(key[pick].numpy(), w[pick].numpy())), w


@pytest.mark.slow
def test_adapted_predictor_weights_rank_determining_tokens_first(trained) -> None:  # type: ignore[no-untyped-def]
    tok, module, out, _, unchanged = trained
    auc, _ = _auc(module, tok)
    controls = []
    for seed in range(3):
        torch.manual_seed(seed)
        control = KeypointWeighting(
            module.module_config, module.generator.embed.weight.detach(), None
        ).eval()
        controls.append(_auc(control, tok)[0])
    print(f"AUC key digits vs filler: trained {auc:.3f}, untrained controls {controls}")
    assert auc >= 0.9
    assert all(c < 0.9 for c in controls)
    assert unchanged, "the caller's model must not be fine-tuned in place"
    assert (out / "adapt" / "adapt_done.json").is_file()


@pytest.mark.slow
def test_target_keep_holds_the_kept_fraction(trained) -> None:  # type: ignore[no-untyped-def]
    tok, module, out, *_ = trained
    b, rationale, *_ = _held_out(tok)
    # The expected kept fraction under the Gumbel masks is the mean weight.
    kept = float(module.token_weights(b["input_ids"], b["step_ids"])[rationale].mean())
    print(f"expected kept fraction on held-out rationales: {kept:.3f} (target 0.5)")
    assert abs(kept - 0.5) <= 0.05
    metrics = json.loads((out / "metrics.json").read_text())
    gates = metrics["gates"]
    assert abs(gates["mean_weight"] - 0.5) <= 0.05
    assert gates["informativeness_gap"] > 0 and gates["gap_ratio"] >= 0.5
    assert metrics["early_stopping"]["best_step"] is not None
    assert not any("collapsed" in w or "no signal" in w for w in metrics["warnings"])


def test_gates_fire_on_a_collapsed_module(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from datasets import Dataset

    tok = make_tokenizer()
    model = _llama(tok)
    cfg = _config(tmp_path, per_device_eval_batch_size=16)
    module = build_module(cfg, tok, student=model, predictor=model)
    with torch.no_grad():
        module.generator.mlp[-1].bias.fill_(-30.0)  # every weight ~0: a collapsed module
    data = Dataset.from_list(make_examples(tok, 16, seed=2, restate=True))
    record = compute_gates(module, data, tok, cfg)
    gates = record["gates"]
    assert gates["mean_weight"] < 0.05 and gates["keep_ratio"] == 0.0
    assert gates["informativeness_gap"] == pytest.approx(0.0, abs=1e-6)
    text = " ".join(record["warnings"])
    assert "collapsed" in text and "target_keep" in text
    assert "no signal" in text
    assert (
        warnings_for({"mean_weight": 0.99})
        and "keeps everything" in warnings_for({"mean_weight": 0.99})[0]
    )
    assert warnings_for({"mean_weight": 0.5, "informativeness_gap": 0.3}) == []
