"""Rationale data: loading, the paper's splits, step segmentation, answers,
student-ready tokenization, question clusters and teacher filtering.

Importing this package is cheap: ``datasets``, ``transformers`` and
``scikit-learn`` are imported inside the functions that need them.
See docs/data.md.
"""

from __future__ import annotations

from kpod.data.answers import (
    answers_match,
    extract_answer,
    extract_choice,
    extract_number,
    format_number,
    parse_number,
)
from kpod.data.loaders import (
    FORMATS,
    clean_gsm8k_solution,
    detect_format,
    load_records,
    read_records,
    records_to_dataset,
)
from kpod.data.schema import FIELDS, InvalidRecordError, Record, SkipReport, validate_record
from kpod.data.steps import (
    Segmentation,
    is_answer_sentence,
    segment,
    split_steps,
    strip_answer_sentence,
)
from kpod.data.template import answer_part, format_example, prompt
from kpod.data.tokenize import (
    ANSWER_PART,
    PREPARED_COLUMNS,
    PROMPT,
    AlignmentError,
    check_example,
    prepare_examples,
    split_position,
)

__all__ = [
    "ANSWER_PART",
    "FIELDS",
    "FORMATS",
    "PREPARED_COLUMNS",
    "PROMPT",
    "AlignmentError",
    "InvalidRecordError",
    "Record",
    "Segmentation",
    "SkipReport",
    "answer_part",
    "answers_match",
    "check_example",
    "clean_gsm8k_solution",
    "detect_format",
    "extract_answer",
    "extract_choice",
    "extract_number",
    "format_example",
    "format_number",
    "is_answer_sentence",
    "load_records",
    "parse_number",
    "prepare_examples",
    "prompt",
    "read_records",
    "records_to_dataset",
    "segment",
    "split_position",
    "split_steps",
    "strip_answer_sentence",
    "validate_record",
]
