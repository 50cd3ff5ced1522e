"""Token classes and the per-class table used to compare with the paper's Figure 2."""

from __future__ import annotations

import pytest

from kpod.weighting.analysis import _percentile_ranks, class_table, markdown_table, token_class


@pytest.mark.parametrize(
    ("text", "cls"),
    [
        (" 48", "digit"),
        ("$12", "digit"),
        (" +", "operator"),
        ("=", "operator"),
        (" twice", "quantity word"),
        (" Total", "quantity word"),
        (" Natalia", "entity"),
        (" She", "filler"),
        (" can", "filler"),
        (" got", "filler"),
        (".", "punctuation"),
        ("\n", "punctuation"),
        (" clips", "other"),
    ],
)
def test_token_class(text: str, cls: str) -> None:
    assert token_class(text, "Natalia sold clips to 48 of her friends.") == cls


def test_capitalised_word_absent_from_question_is_not_an_entity() -> None:
    assert token_class(" Paris", "How many apples?") == "other"


def test_percentile_ranks_with_ties() -> None:
    assert _percentile_ranks([0.1, 0.5, 0.5, 0.9]) == [0.0, 0.5, 0.5, 1.0]
    assert _percentile_ranks([0.3]) == [0.5]


class _WordTok:
    def __init__(self, words: list[str]) -> None:
        self.words = words

    def decode(self, ids: list[int]) -> str:
        return " ".join(self.words[i] for i in ids)


def test_class_table_means_ranks_and_prompt_tokens_ignored() -> None:
    tok = _WordTok(["Q", "Tom", "has", "5", "so", "."])
    rows = [
        {
            "question": "Tom has 5 apples",
            "input_ids": [0, 1, 2, 3, 4, 5],
            "step_ids": [-1, 0, 0, 0, 0, 0],
            "token_weights": [1.0, 0.8, 0.2, 0.9, 0.1, 0.3],
        }
    ]
    table = class_table(rows, tok, min_count=1)
    c = table["classes"]
    assert c["digit"] == {"n": 1, "mean_weight": 0.9, "kept_share": 1.0, "mean_rank": 1.0}
    assert c["entity"]["mean_weight"] == 0.8 and c["entity"]["mean_rank"] == 0.75
    assert c["filler"]["n"] == 2  # "has" and "so"
    assert c["filler"]["mean_rank"] == pytest.approx((0.25 + 0.0) / 2)
    assert table["overall"]["n"] == 5  # the prompt token is not counted
    assert table["top"][0]["token"] == "5"
    assert "| digit | 1 |" in markdown_table(table)
