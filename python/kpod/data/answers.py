"""Answer extraction from generated text and answer comparison.

Extraction (numeric tasks): the first number after the first "answer is"
(case-insensitive); when the text has no "answer is", or no number follows
it, the last number in the text. Multiple choice: the choice letter after
"answer is" ("(c)", "C", "c)"), or the letter of a choice whose text follows
it; else the last parenthesised letter "(x)" in the text.

Comparison: numbers are compared numerically after removing thousands
separators, currency signs and a trailing "%" (``"$1,000" == "1000"``,
``"51.0" == "51"``, ``"-3" == "−3"``, ``"3/4" == "0.75"``, ``"1 1/2" == "1.5"``)
with an absolute tolerance of 1e-6 scaled by the gold value's magnitude;
choice letters case-insensitively; anything else as normalised text.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from fractions import Fraction

__all__ = [
    "answers_match",
    "extract_answer",
    "extract_choice",
    "extract_number",
    "format_number",
    "parse_number",
]

_NUMBER = re.compile(
    r"(?<![\w.])(?P<sign>[-+\u2212]?)\s?(?P<cur>[$€£]?)\s?"
    r"(?P<num>(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?|\.\d+)"
    r"(?:(?P<frac>\s*/\s*\d+(?:\.\d+)?)|(?P<mixed>\s+\d+\s*/\s*\d+))?(?P<pct>\s?%)?"
)
_ANSWER_IS = re.compile(r"answer\s*(?:is|:|=)", re.IGNORECASE)
_LETTER_AFTER = re.compile(
    r"^\s*[:\-]?\s*(?:\(([A-Ea-e])\)|([A-Ea-e])\)|([A-E])\b(?![\w'])|([a-e])(?=[.\s]|$))"
)
_PAREN_LETTER = re.compile(r"\(([A-Ea-e])\)")


def _to_fraction(m: re.Match[str]) -> Fraction | None:
    num = m.group("num").replace(",", "")
    try:
        value = Fraction(num)
        if m.group("frac"):
            den = Fraction(m.group("frac").replace("/", "").strip())
            if den == 0:
                return None
            value /= den
        elif m.group("mixed"):
            a, b = m.group("mixed").split("/")
            den = Fraction(b.strip())
            if den == 0:
                return None
            value += Fraction(a.strip()) / den
    except (ValueError, ZeroDivisionError):
        return None
    if m.group("sign") in ("-", "\u2212"):
        value = -value
    return value


def format_number(value: float | Fraction | int) -> str:
    """Shortest plain decimal for ``value``: ``51.0 -> "51"``, ``0.5 -> "0.5"``."""
    if isinstance(value, Fraction):
        if value.denominator == 1:
            return str(value.numerator)
        value = float(value)
    if isinstance(value, float):
        if math.isfinite(value) and value == int(value) and abs(value) < 1e16:
            return str(int(value))
        return format(value, ".10g") if abs(value) < 1e16 else repr(value)
    return str(value)


def parse_number(text: str) -> Fraction | None:
    """The value of ``text`` when it is exactly one number (with ``$ , % −`` decorations)."""
    s = text.strip().rstrip(".").strip()
    m = _NUMBER.fullmatch(s)
    if m is None:
        return None
    return _to_fraction(m)


def _numbers(text: str) -> list[re.Match[str]]:
    return [m for m in _NUMBER.finditer(text) if _to_fraction(m) is not None]


def _canonical(m: re.Match[str]) -> str:
    value = _to_fraction(m)
    assert value is not None
    if value.denominator == 1:
        return str(value.numerator)
    if m.group("frac") or m.group("mixed"):
        return f"{value.numerator}/{value.denominator}"
    return format_number(float(value))


def extract_number(text: str) -> str | None:
    """The numeric answer in generated ``text`` as a canonical string, or None."""
    m = _ANSWER_IS.search(text)
    if m is not None:
        after = _numbers(text[m.end() :])
        if after:
            return _canonical(after[0])
    found = _numbers(text)
    return _canonical(found[-1]) if found else None


def extract_choice(text: str, choices: Sequence[str] | None = None) -> str | None:
    """The choice letter (``"A"``..``"E"``) in generated ``text``, or None."""
    m = _ANSWER_IS.search(text)
    if m is not None:
        tail = text[m.end() :]
        lm = _LETTER_AFTER.match(tail)
        if lm is not None:
            return next(g for g in lm.groups() if g).upper()
        if choices:
            low = " ".join(tail.lower().split())
            best = None
            for i, choice in enumerate(choices):
                c = " ".join(choice.lower().split())
                if c and low.startswith(c) and (best is None or len(c) > len(choices[best])):
                    best = i
            if best is not None:
                return "ABCDEFGHIJ"[best]
    found = _PAREN_LETTER.findall(text)
    return found[-1].upper() if found else None


def extract_answer(text: str, *, choices: Sequence[str] | None = None) -> str | None:
    """Extract the answer from generated text: a choice letter when ``choices`` is
    given (multiple choice), else a number. None when nothing is found."""
    if choices is not None:
        return extract_choice(text, choices)
    return extract_number(text)


def _norm_text(s: str) -> str:
    s = " ".join(s.casefold().split())
    return s.strip(" .()[]'\"")


def answers_match(pred: str | None, gold: str | float | int, *, tol: float = 1e-6) -> bool:
    """Whether a predicted answer equals the gold one (see the module docstring)."""
    if pred is None:
        return False
    g = format_number(gold) if isinstance(gold, (int, float)) else str(gold)
    pv, gv = parse_number(str(pred)), parse_number(g)
    if pv is not None and gv is not None:
        return abs(float(pv) - float(gv)) <= tol * max(1.0, abs(float(gv)))
    if pv is not None or gv is not None:
        return False
    return _norm_text(str(pred)) == _norm_text(g)
