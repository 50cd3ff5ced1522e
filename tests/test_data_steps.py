"""Step segmentation (kpod-method section 1) against hand-written expectations."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kpod.data import is_answer_sentence, segment, split_steps

TABLE = json.loads(
    (Path(__file__).parent / "data" / "step_table.json").read_text(encoding="utf-8")
)["rows"]


def test_table_has_forty_real_rationales():
    assert len(TABLE) >= 40
    assert len({r["id"] for r in TABLE}) == len(TABLE)


@pytest.mark.parametrize("row", TABLE, ids=[r["id"][:24] for r in TABLE])
def test_real_rationales(row):
    assert split_steps(row["rationale"]) == row["steps"]


@pytest.mark.parametrize(
    ("text", "steps"),
    [
        ("A costs $1.50. B costs .75 more.", ["A costs $1.50.", "B costs .75 more."]),
        ("It grew 3.5%. Then it fell.", ["It grew 3.5%.", "Then it fell."]),
        (
            "Mr. Li and Dr. Wu met St. Paul. They left!",
            ["Mr. Li and Dr. Wu met St. Paul.", "They left!"],
        ),
        ("Buy fruit, e.g. apples. Then eat.", ["Buy fruit, e.g. apples.", "Then eat."]),
        ("It is approx. 5 km. Walk it.", ["It is approx. 5 km.", "Walk it."]),
        ("He paid 12 / 2. = 6 dollars.", ["He paid 12 / 2. = 6 dollars."]),
        ("Is it 5? Yes. It is!", ["Is it 5?", "Yes.", "It is!"]),
        ('She said "stop." Then he stopped.', ['She said "stop."', "Then he stopped."]),
        ("(He left.) She stayed.", ["(He left.)", "She stayed."]),
        ("1. Add 2 and 3.\n2. Double it.", ["1. Add 2 and 3.", "2. Double it."]),
        ("Line one\r\nLine two\n\n\nLine three", ["Line one", "Line two", "Line three"]),
        ("Count 1, 2, 3... and so on. Done.", ["Count 1, 2, 3... and so on.", "Done."]),
        (
            "It is 5 p.m. Tom comes at 6 p.m. on time.",
            ["It is 5 p.m.", "Tom comes at 6 p.m. on time."],
        ),
        ("First step.\n---\nSecond step.", ["First step.\n---", "Second step."]),
        ("...\nOnly step.", ["...\nOnly step."]),
        ("Step one. Therefore, the answer is 5.", ["Step one."]),
        ("Step one.\nSo the answer is (b) dog.\n#### 5", ["Step one."]),
        ("Step one.\nThe final answer is: 12", ["Step one."]),
        ("The answer must be a dog. Dogs bark.", ["The answer must be a dog.", "Dogs bark."]),
        (
            "Therefore, the answer is 7. But wait, 3 + 5 = 8.",
            ["Therefore, the answer is 7.", "But wait, 3 + 5 = 8."],
        ),
        ("Bad\x04 control chars\x00 removed.", ["Bad control chars removed."]),
        ("", []),
        ("   \n  ", []),
        ("The answer is 5.", []),
    ],
)
def test_rules(text, steps):
    assert split_steps(text) == steps


def test_segmentation_offsets_cover_every_character():
    for row in TABLE:
        seg = segment(row["rationale"] + "\nTherefore, the answer is 1.")
        assert seg.answer_sentence.endswith("Therefore, the answer is 1.")
        covered = set()
        for (a, b), step in zip(seg.spans, seg.steps, strict=True):
            assert seg.rationale[a:b] == step
            covered.update(range(a, b))
        assert all(c in covered or seg.rationale[c].isspace() for c in range(len(seg.rationale)))
        assert seg.spans == sorted(seg.spans)


@pytest.mark.parametrize(
    ("sentence", "yes"),
    [
        ("Therefore, the answer is 72.", True),
        ("So the answer is (d) math problem.", True),
        ("The answer is (84 / 2).", True),
        ("#### 72", True),
        ("Answer: 5", True),
        ("The answer must be a place.", False),
        ("Therefore, Danny has 32 more wrappers.", False),
    ],
)
def test_is_answer_sentence(sentence, yes):
    assert is_answer_sentence(sentence) is yes
