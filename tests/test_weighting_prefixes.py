"""L_p over every prefix from one packed forward equals one forward per prefix."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from kpod.weighting.synthetic import make_examples, make_tokenizer  # noqa: E402
from kpod.weighting.train import WeightingCollator, WeightingConfig, build_module  # noqa: E402


def _module(tok, attn: str, max_prefixes: int | None):  # type: ignore[no-untyped-def]
    from kpod.testing import tiny_causal_lm

    model = tiny_causal_lm(tok)
    model.set_attn_implementation(attn)
    cfg = WeightingConfig(
        output_dir="unused", hidden_size=16, num_heads=2, max_prefixes=max_prefixes, use_cpu=True
    )
    return build_module(cfg, tok, student=model, predictor=model)


@pytest.mark.parametrize("attn", ["sdpa", "eager"])
@pytest.mark.parametrize("max_prefixes", [None, 2])
def test_packed_prefix_loss_matches_one_forward_per_prefix(
    attn: str, max_prefixes: int | None
) -> None:
    tok = make_tokenizer()
    module = _module(tok, attn, max_prefixes)
    # Varying step counts and lengths so rows pad differently.
    rows = make_examples(tok, 3, n_steps=4, seed=1) + make_examples(
        tok, 3, n_steps=2, filler_per_step=6, seed=2
    )
    batch = WeightingCollator(pad_token_id=tok.pad_token_id)(rows)
    emb = module.predictor.get_input_embeddings()(batch["input_ids"])
    keep = (torch.rand(emb.shape[:2], generator=torch.Generator().manual_seed(0)) < 0.6).float()
    masked = keep[..., None] * emb + (1 - keep[..., None]) * module.mask_embedding
    args = (masked, batch["input_ids"], batch["step_ids"], batch["answer_mask"])
    module.pack_prefixes = False
    ref = module.prefix_loss(*args)
    module.pack_prefixes = True
    packed = module.prefix_loss(*args)
    assert torch.allclose(packed, ref, atol=1e-5), (float(packed), float(ref))

    # Gradients to the mask vector agree as well.
    def grad(pack: bool) -> torch.Tensor:
        module.pack_prefixes = pack
        module.zero_grad()
        m = keep[..., None] * emb.detach() + (1 - keep[..., None]) * module.mask_embedding
        module.prefix_loss(m, *args[1:]).backward()
        return module.mask_embedding.grad.clone()

    assert torch.allclose(grad(True), grad(False), atol=1e-5)


def test_packed_forward_changes_when_an_earlier_prefix_token_changes() -> None:
    # The copy for prefix k must see steps < k and nothing after: masking a token
    # of the last step leaves the first prefix's answer log-probs unchanged.
    tok = make_tokenizer()
    module = _module(tok, "sdpa", None)
    rows = make_examples(tok, 1, n_steps=3, seed=4)
    batch = WeightingCollator(pad_token_id=tok.pad_token_id)(rows)
    emb = module.predictor.get_input_embeddings()(batch["input_ids"]).detach()
    args = (batch["input_ids"], batch["step_ids"], batch["answer_mask"])
    lp, _, _ = module._packed_answer_logprobs(emb, *args)
    last_step = int((batch["step_ids"][0] == 2).nonzero()[0, 0])
    changed = emb.clone()
    changed[0, last_step] = module.mask_embedding.detach()
    lp2, _, _ = module._packed_answer_logprobs(changed, *args)
    assert torch.equal(lp[0], lp2[0]) and torch.equal(lp[1], lp2[1])  # prefixes k = 1, 2
    assert not torch.equal(lp[2], lp2[2])  # the full rationale sees it
