"""kpod.data core: template, answers, GSM8K loading and student-ready examples."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kpod.data import (
    ANSWER_PART,
    PREPARED_COLUMNS,
    PROMPT,
    answers_match,
    check_example,
    extract_answer,
    format_example,
    prepare_examples,
    prompt,
    read_records,
    split_position,
    split_steps,
)
from kpod.data.template import ANSWER_PREFIX, PROMPT_SUFFIX

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "data"
FIXTURES = Path(__file__).resolve().parent / "data"


def gsm8k_train_path() -> Path:
    p = EXAMPLES / "gsm8k_train.jsonl"
    return p if p.is_file() else SHARED / "gsm8k" / "train.jsonl"


@pytest.fixture(scope="module")
def tok():
    from kpod.testing import tiny_tokenizer

    return tiny_tokenizer()


def test_template_strings_and_spans():
    t = format_example("  How many?\n", "He has 2.\nHe buys 3.", "5")
    assert (
        t.text
        == "Q: How many?\nA: Let's think step by step.\nHe has 2.\nHe buys 3.\nTherefore, the answer is 5."
    )
    assert t.text[: t.prompt[1]] == prompt("How many?")
    assert t.text[slice(*t.rationale)] == "He has 2.\nHe buys 3."
    assert t.text[slice(*t.answer_part)] == "\nTherefore, the answer is 5."
    assert t.text[slice(*t.answer_value)] == "5"
    assert prompt("x").endswith(PROMPT_SUFFIX) and ANSWER_PREFIX.startswith("\n")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Therefore, the answer is $1,234.50.", "1234.5"),
        ("The answer is -3 apples.", "-3"),
        ("So the answer is 18. Next question: 5 + 7 = 12", "18"),
        ("She has 5 apples and 7 pears, 12 in all", "12"),
        ("The answer is: 3/4 of a cup", "3/4"),
        ("answer is 1 1/2 cups", "3/2"),
        ("we keep .75 of it", "0.75"),
        ("The answer is 2,000 dollars.", "2000"),
        ("Therefore, the answer is 51.0.", "51"),
        ("no number here", None),
        ("The answer is unknown but 7 - 2 = 5", "7"),  # first number after "answer is"
    ],
)
def test_extract_number(text, expected):
    assert extract_answer(text) == expected


def test_extract_choice():
    ch = ["annoy", "eat meat", "open doors", "need food", "jog"]
    assert extract_answer("So the answer is (c) open doors.", choices=ch) == "C"
    assert extract_answer("Therefore, the answer is D.", choices=ch) == "D"
    assert extract_answer("Therefore, the answer is e.", choices=ch) == "E"
    assert extract_answer("Therefore, the answer is open doors.", choices=ch) == "C"
    assert extract_answer("I think (b) fits best, not (a).", choices=ch) == "A"
    assert extract_answer("no idea", choices=ch) is None


@pytest.mark.parametrize(
    ("pred", "gold", "same"),
    [
        ("51.0", "51", True),
        ("51", 51.0, True),
        ("$1,000", "1000", True),
        ("1,000.00", "1000", True),
        ("-3", "\u22123", True),
        ("-3", "3", False),
        ("50%", "50", True),
        ("3/4", "0.75", True),
        ("0.33", "1/3", False),
        ("0.3333333", "1/3", True),
        ("2.5", "2.50", True),
        ("12", "13", False),
        ("c", "C", True),
        ("(c)", "C", True),
        ("B", "C", False),
        (None, "5", False),
        ("five", "5", False),
    ],
)
def test_answers_match(pred, gold, same):
    assert answers_match(pred, gold) is same


def test_gsm8k_loader_cleans_solution():
    recs = list(itertools.islice(read_records(gsm8k_train_path(), format="gsm8k"), 3))
    first = recs[0]
    assert first["id"] == "gsm8k-train-0"
    assert first["question"].startswith("Natalia sold clips to 48")
    assert first["rationale"] == (
        "Natalia sold 48/2 = 24 clips in May.\nNatalia sold 48+24 = 72 clips altogether in April and May."
    )
    assert first["answer"] == "72"
    assert all("<<" not in r["rationale"] and "####" not in r["rationale"] for r in recs)
    assert recs[1]["rationale"].startswith("Weng earns 12/60 = $0.2 per minute.")


def test_gsm8k_answer_thousands_separator(tmp_path):
    p = tmp_path / "g.jsonl"
    p.write_text(
        json.dumps(
            {
                "question": "How much?",
                "answer": "It is 1,000 + 200 = <<1000+200=1200>>1,200.\n#### 1,200",
            }
        )
        + "\n"
    )
    (rec,) = read_records(p)
    assert rec["answer"] == "1200" and rec["rationale"] == "It is 1,000 + 200 = 1,200."


def _decode_span(tok, ids, sids, k):
    return tok.decode([i for i, s in zip(ids, sids, strict=True) if s == k]).strip()


def assert_contract(ds, tok, *, eos_id):
    assert ds.column_names[: len(PREPARED_COLUMNS)] == list(PREPARED_COLUMNS)
    for row in ds:
        ids, sids, am = row["input_ids"], row["step_ids"], row["answer_mask"]
        assert len(ids) == len(sids) == len(am)
        assert row["n_steps"] == len(row["steps"]) >= 1
        assert check_example(sids, row["n_steps"]) is None
        assert sids[0] == PROMPT and sids[-1] == ANSWER_PART and ids[-1] == eos_id
        for k, step in enumerate(row["steps"]):
            assert _decode_span(tok, ids, sids, k) == step.strip()
        # prompt tokens decode to the prompt, answer part to the answer sentence
        assert tok.decode(
            [i for i, s in zip(ids, sids, strict=True) if s == PROMPT], skip_special_tokens=True
        ) == prompt(row["question"])
        answer_tokens = [i for i, m in zip(ids, am, strict=True) if m]
        assert tok.decode(answer_tokens).strip() == row["answer"]
        assert all(s == ANSWER_PART for s, m in zip(sids, am, strict=True) if m)
        # the tokens are exactly the tokenization of the templated text (+ EOS)
        text = format_example(row["question"], row["rationale"], row["answer"]).text
        assert ids[:-1] == tok(text, add_special_tokens=False)["input_ids"]


def test_prepare_examples_contract_tiny_tokenizer(tok):
    recs = list(itertools.islice(read_records(gsm8k_train_path()), 40))
    ds = prepare_examples(recs, tok)
    assert len(ds) == 40
    assert_contract(ds, tok, eos_id=tok.eos_token_id)
    row = ds[0]
    assert row["steps"] == split_steps(recs[0]["rationale"])
    assert json.loads(ds.info.description)["kpod_prepared"]["kind"] == "causal"


def test_prepare_examples_strips_answer_sentence_and_handles_odd_text(tok):
    recs = [
        {
            "id": "a",
            "question": "Q1?",
            "rationale": "It costs $1.50 each.  Mr. Li buys 2.\n\nSo 2 x 1.50 = 3.\nTherefore, the answer is 3.",
            "answer": "3",
        },
        {
            "id": "b",
            "question": "Q2?",
            "rationale": "Temp is −5 °C. Then it rises 3.5% — ok… 7",
            "answer": "7",
        },
        {"id": "c", "question": "Q3?", "rationale": "One step only", "answer": "1"},
    ]
    ds = prepare_examples(recs, tok)
    assert ds[0]["steps"] == ["It costs $1.50 each.", "Mr. Li buys 2.", "So 2 x 1.50 = 3."]
    assert ds[0]["rationale"] == "It costs $1.50 each.  Mr. Li buys 2.\n\nSo 2 x 1.50 = 3."
    assert ds[1]["n_steps"] == 2 and ds[2]["n_steps"] == 1
    assert_contract(ds, tok, eos_id=tok.eos_token_id)


def test_prepare_examples_seq2seq_and_num_proc(tok):
    recs = list(itertools.islice(read_records(gsm8k_train_path()), 16))
    a = prepare_examples(recs, tok, kind="seq2seq", num_proc=2, batch_size=4)
    b = prepare_examples(recs, tok, kind="causal")
    assert a["input_ids"] == b["input_ids"] and a["step_ids"] == b["step_ids"]
    assert json.loads(a.info.description)["kpod_prepared"]["kind"] == "seq2seq"


def test_prepare_examples_rejects_bad_input(tok):
    with pytest.raises(ValueError, match="kind"):
        prepare_examples([{"question": "q", "rationale": "r.", "answer": "1"}], tok, kind="encoder")
    with pytest.raises(ValueError, match="zero steps"):
        prepare_examples(
            [{"id": "z", "question": "q", "rationale": "The answer is 4.", "answer": "4"}], tok
        )
    with pytest.raises(ValueError, match="'answer' is missing"):
        prepare_examples([{"id": "m", "question": "q", "rationale": "r.", "answer": ""}], tok)
    with pytest.raises(ValueError, match="duplicate id 'd'"):
        prepare_examples([{"id": "d", "question": "q", "rationale": "r.", "answer": "1"}] * 2, tok)


def test_split_position():
    sids = [-1, -1, 0, 0, 1, 1, 1, 2, -2, -2]
    assert split_position(sids, 0) == 2
    assert split_position(sids, 1) == 4
    assert split_position(sids, 2) == 7
    assert split_position(sids, 3) == 8  # all steps given: the student writes the answer part
    assert split_position(sids, 9) == 8
    with pytest.raises(ValueError):
        split_position(sids, -1)


def test_check_example_detects_broken_alignment():
    assert check_example([-1, 0, 1, -2], 2) is None
    assert "without a token" in check_example([-1, 0, -2], 2)
    # step 1 before step 0: the first rationale token must belong to step 0
    assert check_example([-1, 1, 0, -2], 2) == "step id 1 where -1 or 0 was expected"
    assert check_example([-1, 0, -2, 0], 1) == "step id 0 after the answer part began"
    assert check_example([-1, 0, 1], 2) == "no answer-part token"


_FRAGMENTS = [
    "Tom has 5 apples.",
    "Mr. Li pays $1.50 each.",
    "That is 3.5% more",
    "e.g. 12 pens",
    "2 x .75 = 1.5",
    "It is 48/2 = 24!",
    "Why?",
    "at 8:20 a.m. - 8:00 a.m. = 20 min.",
    "1. First",
    "---",
    "Caf\u00e9 \u2212 5 \u00b0C\u2026",
    '"quoted."',
    "(in brackets.)",
    "sq. ft. of sod.",
]


@settings(
    max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    st.lists(
        st.lists(
            st.tuples(
                st.sampled_from(_FRAGMENTS), st.sampled_from([" ", "  ", "\n", "\n\n", " \n", "\t"])
            ),
            min_size=1,
            max_size=8,
        ),
        min_size=1,
        max_size=6,
    )
)
def test_alignment_property_random_rationales(tok, batch):
    """Whatever the rationale, the prepared columns satisfy the contract."""
    recs = []
    for i, parts in enumerate(batch):
        rationale = "".join(f + sep for f, sep in parts)
        if not split_steps(rationale):
            continue
        recs.append({"id": str(i), "question": "How many?", "rationale": rationale, "answer": "7"})
    if recs:
        assert_contract(prepare_examples(recs, tok), tok, eos_id=tok.eos_token_id)
