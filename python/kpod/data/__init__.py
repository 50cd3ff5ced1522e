"""Rationale data: loading, the paper's splits, step segmentation, answers,
student-ready tokenization (the prepared-example contract: :mod:`kpod.data.prepared`),
question clusters and teacher filtering.

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
from kpod.data.clusters import add_clusters, cluster_questions, kmeans, question_embeddings
from kpod.data.filtering import FilterReport, filter_by_answer
from kpod.data.loaders import (
    FORMATS,
    clean_gsm8k_solution,
    detect_format,
    load_records,
    read_records,
    records_to_dataset,
)
from kpod.data.prepared import (
    ANSWER_PART,
    PAD,
    PREPARED_COLUMNS,
    PROMPT,
    check_example,
    load_prepared,
    save_prepared,
    split_position,
)
from kpod.data.schema import FIELDS, InvalidRecordError, Record, SkipReport, validate_record
from kpod.data.splits import PAPER_SIZES, paper_splits, write_splits
from kpod.data.steps import (
    Segmentation,
    is_answer_sentence,
    segment,
    split_steps,
    strip_answer_sentence,
)
from kpod.data.template import answer_part, format_example, prompt
from kpod.data.tokenize import AlignmentError, prepare_examples

__all__ = [
    "ANSWER_PART",
    "FIELDS",
    "FORMATS",
    "PAD",
    "PAPER_SIZES",
    "PREPARED_COLUMNS",
    "PROMPT",
    "AlignmentError",
    "FilterReport",
    "InvalidRecordError",
    "Record",
    "Segmentation",
    "SkipReport",
    "add_clusters",
    "answer_part",
    "answers_match",
    "check_example",
    "clean_gsm8k_solution",
    "cluster_questions",
    "detect_format",
    "extract_answer",
    "extract_choice",
    "extract_number",
    "filter_by_answer",
    "format_example",
    "format_number",
    "is_answer_sentence",
    "kmeans",
    "load_prepared",
    "load_records",
    "paper_splits",
    "parse_number",
    "prepare_examples",
    "prompt",
    "question_embeddings",
    "read_records",
    "records_to_dataset",
    "save_prepared",
    "segment",
    "split_position",
    "split_steps",
    "strip_answer_sentence",
    "validate_record",
    "write_splits",
]
