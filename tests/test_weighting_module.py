"""Weighting module plumbing: save/load, scoring, the view, the CLI and bad input."""

from __future__ import annotations

import json
from html.parser import HTMLParser
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
datasets = pytest.importorskip("datasets")

from kpod.weighting.module import (  # noqa: E402
    CONFIG_FILE,
    WEIGHTS_FILE,
    KeypointWeighting,
    tokenizer_fingerprint,
)
from kpod.weighting.score import (  # noqa: E402
    attach_token_weights,
    score_dataset,
    validate_token_weights,
)
from kpod.weighting.synthetic import make_examples, make_tokenizer  # noqa: E402
from kpod.weighting.train import (  # noqa: E402
    WeightingCollator,
    WeightingConfig,
    build_module,
    train_weighting,
)
from kpod.weighting.view import render_html, render_png  # noqa: E402


def _tiny_llama(tok, seed: int = 0):  # type: ignore[no-untyped-def]
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    return LlamaForCausalLM(
        LlamaConfig(
            vocab_size=len(tok),
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=2,
            max_position_embeddings=256,
            pad_token_id=tok.pad_token_id,
            tie_word_embeddings=True,
        )
    )


@pytest.fixture(scope="module")
def trained(tmp_path_factory):  # type: ignore[no-untyped-def]
    torch.set_num_threads(1)
    tok = make_tokenizer()
    data = datasets.Dataset.from_list(make_examples(tok, 24, seed=3))
    out = tmp_path_factory.mktemp("module")
    cfg = WeightingConfig(
        output_dir=str(out),
        student="synthetic",
        hidden_size=16,
        num_heads=2,
        max_steps=3,
        per_device_train_batch_size=8,
        save_strategy="no",
        use_cpu=True,
        disable_tqdm=True,
        adapt_epochs=1,
        adapt_mask_epochs=1,
        max_prefixes=2,
    )
    model = _tiny_llama(tok)
    module = train_weighting(data, cfg, tok, student=model, predictor=model)
    return tok, data, module, out


def test_forward_returns_eq7_parts_and_gradients_reach_the_generator() -> None:
    tok = make_tokenizer()
    model = _tiny_llama(tok)
    cfg = WeightingConfig(
        output_dir="unused",
        student="synthetic",
        hidden_size=16,
        num_heads=2,
        alpha=0.7,
        freeze_predictor=True,
    )
    module = build_module(cfg, tok, student=model, predictor=model)
    module.train()
    batch = WeightingCollator(pad_token_id=tok.pad_token_id)(make_examples(tok, 4, seed=1))
    out = module(**batch)
    assert out["loss"].item() == pytest.approx(
        out["prefix_loss"].item() + 0.7 * out["mask_loss"].item(), rel=1e-5
    )
    out["loss"].backward()
    grads = [p.grad for n, p in module.generator.named_parameters() if p.requires_grad]
    assert all(g is not None for g in grads) and any(float(g.abs().sum()) > 0 for g in grads)
    assert module.generator.embed.weight.grad is None  # the student embeddings stay frozen
    assert all(p.grad is None for p in model.parameters())  # frozen predictor


def test_predictor_layers_keeps_first_l_layers() -> None:
    from transformers import LlamaConfig, LlamaForCausalLM

    tok = make_tokenizer()
    model = LlamaForCausalLM(
        LlamaConfig(
            vocab_size=len(tok),
            hidden_size=16,
            intermediate_size=32,
            num_hidden_layers=4,
            num_attention_heads=2,
            num_key_value_heads=2,
        )
    )
    first = model.model.layers[0]
    cfg = WeightingConfig(
        output_dir="unused", student="x", hidden_size=8, num_heads=2, predictor_layers=2
    )
    module = build_module(cfg, tok, student=model, predictor=model)
    assert len(module.predictor.model.layers) == 2
    assert module.predictor.model.layers[0] is first
    assert module.module_config.predictor_layers == 2
    with pytest.raises(ValueError, match="predictor_layers"):
        build_module(
            WeightingConfig(output_dir="u", student="x", predictor_layers=9),
            tok,
            student=model,
            predictor=model,
        )


def test_save_load_roundtrip_keeps_weights_and_fingerprint(trained) -> None:  # type: ignore[no-untyped-def]
    tok, data, module, out = trained
    assert (out / WEIGHTS_FILE).is_file()
    cfg = json.loads((out / CONFIG_FILE).read_text())
    assert cfg["tokenizer_fingerprint"] == tokenizer_fingerprint(tok)
    loaded = KeypointWeighting.load(out)
    batch = WeightingCollator(pad_token_id=tok.pad_token_id)([data[i] for i in range(4)])
    a = module.token_weights(batch["input_ids"], batch["step_ids"])
    b = loaded.token_weights(batch["input_ids"], batch["step_ids"])
    assert torch.allclose(a, b)
    assert torch.equal(loaded.mask_embedding.data, module.mask_embedding.data)


def test_score_writes_aligned_column_one_outside_rationale(trained) -> None:  # type: ignore[no-untyped-def]
    tok, data, _, out = trained
    scored = score_dataset(data, KeypointWeighting.load(out), tokenizer=tok, progress=False)
    for row in scored:
        w = row["token_weights"]
        assert len(w) == len(row["input_ids"])
        for x, s in zip(w, row["step_ids"], strict=True):
            assert (x == 1.0) if s < 0 else (0.0 < x < 1.0)
    validate_token_weights(scored)


def test_tokenizer_mismatch_is_refused(trained) -> None:  # type: ignore[no-untyped-def]
    from kpod.testing import tiny_tokenizer

    _, data, _, out = trained
    module = KeypointWeighting.load(out)
    other = tiny_tokenizer(vocab_size=300)
    with pytest.raises(ValueError, match="tokenizer mismatch"):
        score_dataset(data, module, tokenizer=other, progress=False)
    # a dataset tokenized with a bigger vocabulary is caught even without a tokenizer
    bad = data.map(lambda ex: {"input_ids": [*ex["input_ids"][:-1], 5000]})
    with pytest.raises(ValueError, match=r"example 'syn-3-0'.*outside"):
        score_dataset(bad, module, progress=False)


def test_rationale_without_steps_is_named(trained) -> None:  # type: ignore[no-untyped-def]
    tok, data, module, out = trained
    row = dict(data[0])
    row["id"] = "no-steps"
    row["step_ids"] = [-1 if s >= 0 else s for s in row["step_ids"]]
    with pytest.raises(ValueError, match=r"example 'no-steps'.*no steps"):
        WeightingCollator(pad_token_id=0)([row])
    bad = datasets.Dataset.from_list([row])
    with pytest.raises(ValueError, match=r"example 'no-steps'.*no steps"):
        score_dataset(bad, KeypointWeighting.load(out), progress=False)
    cfg = WeightingConfig(output_dir=str(out / "x"), student="s", use_cpu=True)
    with pytest.raises(ValueError, match="example 'no-steps'"):
        train_weighting(bad, cfg, tok, student=module.predictor, predictor=module.predictor)


def test_weights_of_wrong_length_are_named(trained) -> None:  # type: ignore[no-untyped-def]
    tok, data, _, _ = trained
    small = data.select(range(3))
    weights = [[1.0] * len(r["input_ids"]) for r in small]
    weights[2] = weights[2][:-1]
    with pytest.raises(ValueError, match=r"example 'syn-3-2': \d+ token weights for \d+ tokens"):
        attach_token_weights(small, weights)
    bad_rows = [dict(small[i], token_weights=weights[i]) for i in range(3)]
    with pytest.raises(ValueError, match="syn-3-2"):
        render_html(bad_rows, tok)


class _Spans(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.rows: list[dict] = []
        self._in_tok = False

    def handle_starttag(self, tag, attrs):  # type: ignore[no-untyped-def]
        a = dict(attrs)
        if tag == "div" and a.get("class") == "rationale":
            self.rows.append({"id": a["data-id"], "weights": [], "text": ""})
        if tag == "span" and a.get("class") == "tok":
            self.rows[-1]["weights"].append(float(a["data-weight"]))
            self._in_tok = True

    def handle_endtag(self, tag):  # type: ignore[no-untyped-def]
        if tag == "span":
            self._in_tok = False

    def handle_data(self, data):  # type: ignore[no-untyped-def]
        if self._in_tok:
            self.rows[-1]["text"] += data


def test_html_view_has_one_row_per_rationale_with_weights(trained, tmp_path) -> None:  # type: ignore[no-untyped-def]
    tok, data, _, out = trained
    scored = score_dataset(data.select(range(3)), KeypointWeighting.load(out), progress=False)
    rows = list(scored)
    rows[0]["token_weights"] = [
        w if s < 0 else 0.0
        for w, s in zip(rows[0]["token_weights"], rows[0]["step_ids"], strict=True)
    ]
    page = render_html(rows, tok)
    parser = _Spans()
    parser.feed(page)
    assert [r["id"] for r in parser.rows] == [r["id"] for r in rows]
    for parsed, row in zip(parser.rows, rows, strict=True):
        expected = [w for w, s in zip(row["token_weights"], row["step_ids"], strict=True) if s >= 0]
        assert parsed["weights"] == pytest.approx(expected, abs=1e-4)
        rationale_ids = [
            t for t, s in zip(row["input_ids"], row["step_ids"], strict=True) if s >= 0
        ]
        assert parsed["text"].split() == tok.decode(rationale_ids).split()
    assert parser.rows[0]["weights"] == [0.0] * len(parser.rows[0]["weights"])
    png = render_png(rows, tok, tmp_path / "w.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_cli_train_score_show_on_prepared_data(tmp_path: Path) -> None:
    """End to end through kpod.data.prepare_examples and the three subcommands."""
    from kpod.cli import main
    from kpod.data import prepare_examples
    from kpod.testing import synthetic_corpus, tiny_causal_lm, tiny_tokenizer

    torch.set_num_threads(1)
    tok = tiny_tokenizer()
    student = tmp_path / "student"
    tiny_causal_lm(tok, hidden=16).save_pretrained(student)
    tok.save_pretrained(student)
    records = []
    for i, text in enumerate(synthetic_corpus(24, seed=5)):
        q, rest = text.split("\nA: Let's think step by step.\n")
        rationale, answer = rest.split("\nTherefore, the answer is ")
        records.append(
            {"id": f"r{i}", "question": q[3:], "rationale": rationale, "answer": answer.rstrip(".")}
        )
    prepared = prepare_examples(records, tok)
    prepared.save_to_disk(str(tmp_path / "prepared"))
    cfg = tmp_path / "w.yaml"
    cfg.write_text(
        "hidden_size: 16\nnum_heads: 2\nmax_steps: 2\nper_device_train_batch_size: 4\n"
        "save_strategy: 'no'\nuse_cpu: true\ndisable_tqdm: true\nadapt_epochs: 0.25\n"
        "adapt_mask_epochs: 0.25\n"
    )
    mod = tmp_path / "module"
    assert (
        main(
            [
                "weights",
                "train",
                "--data",
                str(tmp_path / "prepared"),
                "--out",
                str(mod),
                "--student",
                str(student),
                "--config",
                str(cfg),
                "--alpha",
                "0.7",
            ]
        )
        == 0
    )
    assert json.loads((mod / CONFIG_FILE).read_text())["student"] == str(student)
    assert (
        main(
            [
                "weights",
                "score",
                "--module",
                str(mod),
                "--data",
                str(tmp_path / "prepared"),
                "--out",
                str(tmp_path / "scored"),
            ]
        )
        == 0
    )
    scored = datasets.load_from_disk(str(tmp_path / "scored"))
    validate_token_weights(scored)
    assert (
        main(
            [
                "weights",
                "show",
                "--data",
                str(tmp_path / "scored"),
                "--module",
                str(mod),
                "--out",
                str(tmp_path / "view.html"),
                "--png",
                str(tmp_path / "view.png"),
                "-n",
                "3",
            ]
        )
        == 0
    )
    parser = _Spans()
    parser.feed((tmp_path / "view.html").read_text())
    assert len(parser.rows) == 3
    assert (tmp_path / "view.png").is_file()
    # a bad field in the config file is a clear error, not a crash
    cfg.write_text("hidden_sise: 16\n")
    assert (
        main(
            [
                "weights",
                "train",
                "--data",
                str(tmp_path / "prepared"),
                "--out",
                str(mod),
                "--student",
                str(student),
                "--config",
                str(cfg),
            ]
        )
        == 1
    )
