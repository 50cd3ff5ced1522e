"""Rationale step segmentation (kpod-method section 1, [kpod decision]).

The paper splits rationales on ".". kpod splits on line breaks, then on
sentence ends (".", "!" or "?", optionally followed by closing quotes or
brackets, then whitespace or the end of the line). It never splits

* inside a number ("1.50", "3.5%", ".75": the period is not followed by space),
* after a title ("Mr.", "Dr.", "St.", ...) whatever follows,
* after an abbreviation ("e.g.", "i.e.", "approx.", "etc.", "lbs.", "a.m.", ...)
  a dotted short word ("sq.ft.", "U.S.") or an ellipsis ("...") unless the next
  word starts with a capital letter,
* inside an equation: when the next character is an operator (``= + * / x``
  at a continuation such as "48 / 2. = 24"),
* after a list marker ("1.", "a)", "iv.") at the start of a line.

Control characters other than tab and line breaks are removed first (teacher
output sometimes carries them; tokenizers drop them). Segments without any letter or digit (a lone "." or "---") are merged into the
previous step (the next one when they come first), so every non-space
character of the rationale belongs to exactly one step. Trailing "Therefore,
the answer is ..." / "So the answer is ..." / "Answer: ..." / "#### N"
sentences form the answer part of the template, not steps: they are removed.
"""

from __future__ import annotations

import re
from typing import NamedTuple

__all__ = [
    "ABBREVIATIONS",
    "TITLES",
    "Segmentation",
    "is_answer_sentence",
    "segment",
    "split_steps",
    "step_spans",
    "strip_answer_sentence",
]

#: Titles before a name: never a sentence end.
TITLES = frozenset(
    "mr mrs ms dr prof sr jr st mt capt col gen lt sgt rev gov sen rep hon messrs mme mlle".split()
)
#: Abbreviations: a sentence end only when the next word starts with a capital letter.
ABBREVIATIONS = frozenset(
    """e.g i.e eg ie approx appr etc vs no nos fig figs eq eqs al cf ca est avg
    oz lb lbs hr hrs min mins sec secs ft yd yds mi km cm mm kg mg ml pt pts qt gal
    tbsp tsp doz pkg dept inc ltd co corp a.m p.m am pm u.s u.k jan feb mar apr
    jun jul aug sep sept oct nov dec mon tue tues wed thu thur thurs fri sat sun
    vol pp ch sq cu""".split()
)

_TERMINATOR = re.compile(r"(?:\.{1,3}|[!?]+)[\"')\]}\u2019\u201d]*(?=\s|$)")
_WORD_BEFORE = re.compile(r"([A-Za-z](?:[A-Za-z.]*[A-Za-z])?)\.*$")
_LIST_MARKER = re.compile(r"^\s*(?:[-*\u2022]\s*)?\(?(?:\d{1,3}|[A-Za-z]|[ivxlcIVXLC]{1,4})[.)]$")
_OPERATORS = frozenset("=+*/×÷^<>")
_ALNUM = re.compile(r"[^\W_]")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_ANSWER_SENTENCE = re.compile(
    r"""^\s*(?:
        \#{2,}\s*\S.*                                         # GSM8K "#### 72"
      | (?:(?:so|thus|therefore|hence|then)\s*,?\s*)?
        (?:the\s+)?(?:final\s+|correct\s+)?answer\s*(?:is\b|:|=|would\s+be\b|will\s+be\b).*
    )$""",
    re.IGNORECASE | re.VERBOSE | re.DOTALL,
)


class Segmentation(NamedTuple):
    """A cleaned rationale and its steps.

    ``rationale`` is the input without control characters (other than tab and
    line breaks), without leading/trailing whitespace and without
    the trailing answer sentence(s); ``spans[k]`` is the ``[start, end)``
    character span of step k in ``rationale`` (stripped of surrounding
    whitespace) and ``steps[k] == rationale[start:end]``. ``answer_sentence``
    is the removed tail ("" when there was none).
    """

    rationale: str
    spans: list[tuple[int, int]]
    steps: list[str]
    answer_sentence: str


def is_answer_sentence(sentence: str) -> bool:
    """Whether ``sentence`` states the final answer ("Therefore, the answer is 5.")."""
    return bool(_ANSWER_SENTENCE.match(sentence))


def _strip_span(text: str, start: int, end: int) -> tuple[int, int]:
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return start, end


def _splits_here(line: str, seg_start: int, match: re.Match[str]) -> bool:
    term = match.group(0)
    after = line[match.end() :].lstrip()
    if not after:
        return True
    if after[0] in _OPERATORS:
        return False
    if term[0] != ".":
        return True
    if term.startswith(".."):  # an ellipsis ends a sentence only before a capital
        return after[0].isupper()
    before = line[seg_start : match.start()]
    if _LIST_MARKER.match(line[seg_start : match.end()]):
        return False
    word = _WORD_BEFORE.search(before)
    if word is not None:
        # the abbreviation must be a whole word ("Dr." but not "Hydr.")
        start = word.start()
        if start == 0 or not before[start - 1].isalnum():
            w = word.group(1).lower()
            if w in TITLES:
                return False
            dotted = "." in w and all(0 < len(part) <= 4 for part in w.split("."))
            if (w in ABBREVIATIONS or dotted) and not after[0].isupper():
                return False
    return True


def _sentences(text: str, lo: int, hi: int) -> list[tuple[int, int]]:
    line = text[lo:hi]
    out = []
    seg_start = 0
    for m in _TERMINATOR.finditer(line):
        if _splits_here(line, seg_start, m):
            out.append((lo + seg_start, lo + m.end()))
            seg_start = m.end()
    out.append((lo + seg_start, hi))
    return [s for s in (_strip_span(text, a, b) for a, b in out) if s[1] > s[0]]


def _raw_segments(text: str) -> list[tuple[int, int]]:
    segs: list[tuple[int, int]] = []
    pos = 0
    for m in re.finditer(r"\r\n|\r|\n|\u2028|\u2029", text):
        segs.extend(_sentences(text, pos, m.start()))
        pos = m.end()
    segs.extend(_sentences(text, pos, len(text)))
    return segs


def segment(rationale: str) -> Segmentation:
    """Clean ``rationale`` and split it into steps (see the module docstring)."""
    rationale = _CONTROL.sub("", rationale)
    segs = _raw_segments(rationale)
    tail_start = None
    while segs and is_answer_sentence(rationale[segs[-1][0] : segs[-1][1]]):
        tail_start = segs.pop()[0]
    answer_sentence = rationale[tail_start:].strip() if tail_start is not None else ""
    merged: list[tuple[int, int]] = []
    pending_start: int | None = None
    for a, b in segs:
        if not _ALNUM.search(rationale[a:b]):
            if merged:
                merged[-1] = (merged[-1][0], b)
            elif pending_start is None:
                pending_start = a
            continue
        if pending_start is not None:
            a, pending_start = pending_start, None
        merged.append((a, b))
    if not merged:
        cleaned = rationale[:tail_start].strip() if tail_start is not None else rationale.strip()
        return Segmentation(cleaned, [], [], answer_sentence)
    base = merged[0][0]
    cleaned = rationale[base : merged[-1][1]]
    spans = [(a - base, b - base) for a, b in merged]
    return Segmentation(cleaned, spans, [cleaned[a:b] for a, b in spans], answer_sentence)


def step_spans(rationale: str) -> list[tuple[int, int]]:
    """Character spans of the steps, relative to ``segment(rationale).rationale``."""
    return segment(rationale).spans


def split_steps(rationale: str) -> list[str]:
    """The steps of ``rationale`` in order; the final answer sentence is not a step.

    >>> split_steps("Natalia sold 48/2 = 24 clips in May.\\nShe sold 48+24 = 72 in all.\\n"
    ...             "Therefore, the answer is 72.")
    ['Natalia sold 48/2 = 24 clips in May.', 'She sold 48+24 = 72 in all.']
    """
    return segment(rationale).steps


def strip_answer_sentence(rationale: str) -> tuple[str, str]:
    """``(cleaned rationale, removed answer sentence)``; see :func:`segment`."""
    seg = segment(rationale)
    return seg.rationale, seg.answer_sentence
