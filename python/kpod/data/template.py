"""The text template of kpod-method section 1; the only place that writes it.

A templated example reads::

    Q: <question>\\nA: Let's think step by step.\\n<rationale>\\nTherefore, the answer is <answer>.

followed by the tokenizer's EOS token. The *prompt* is everything up to and
including the newline after "step by step."; the *answer part* starts with the
newline before "Therefore".
"""

from __future__ import annotations

from typing import NamedTuple

PROMPT_PREFIX = "Q: "
PROMPT_SUFFIX = "\nA: Let's think step by step.\n"
ANSWER_PREFIX = "\nTherefore, the answer is "
ANSWER_SUFFIX = "."

__all__ = [
    "ANSWER_PREFIX",
    "ANSWER_SUFFIX",
    "PROMPT_PREFIX",
    "PROMPT_SUFFIX",
    "TemplateSpans",
    "answer_part",
    "format_example",
    "prompt",
]


def prompt(question: str) -> str:
    """``Q: <question>\\nA: Let's think step by step.\\n`` (the question is stripped)."""
    return f"{PROMPT_PREFIX}{question.strip()}{PROMPT_SUFFIX}"


def answer_part(answer: str) -> str:
    """``\\nTherefore, the answer is <answer>.`` (without EOS)."""
    return f"{ANSWER_PREFIX}{answer.strip()}{ANSWER_SUFFIX}"


class TemplateSpans(NamedTuple):
    """Character spans ``[start, end)`` of the parts of a templated text."""

    text: str
    prompt: tuple[int, int]
    rationale: tuple[int, int]
    answer_part: tuple[int, int]
    answer_value: tuple[int, int]


def format_example(question: str, rationale: str, answer: str) -> TemplateSpans:
    """The full templated text with the character spans of its parts.

    ``rationale`` is inserted verbatim: pass the cleaned rationale (no final
    "the answer is" sentence, see :func:`kpod.data.steps.strip_answer_sentence`).
    """
    p = prompt(question)
    a = answer_part(answer)
    text = p + rationale + a
    r0, r1 = len(p), len(p) + len(rationale)
    v0 = r1 + len(ANSWER_PREFIX)
    v1 = v0 + len(answer.strip())
    return TemplateSpans(text, (0, r0), (r0, r1), (r1, len(text)), (v0, v1))
