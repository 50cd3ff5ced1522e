"""Teacher rationales from questions (``kpod teacher generate``).

KPOD starts from teacher rationales (the paper: GPT-3.5-Turbo, zero-shot CoT).
This package asks a teacher for them at corpus scale: any OpenAI-compatible
HTTP server (:class:`OpenAIBackend`, the ``teacher`` extra) or a local
transformers model (:class:`TransformersBackend`, the ``train`` extra), with
bounded concurrency, retries, rate limits, N samples per question, answer
checks against the gold answer and an append-only, resumable output that
``kpod data prepare`` and ``kpod run`` read as it is. See docs/teacher.md.

``import kpod.teacher`` needs numpy only; openai, torch and transformers are
imported when a backend is created.
"""

from __future__ import annotations

from kpod.teacher.backends import (
    Completion,
    OpenAIBackend,
    RequestFailed,
    RetryableError,
    TeacherError,
    TransformersBackend,
)
from kpod.teacher.prompt import PromptTemplate
from kpod.teacher.run import (
    RetryPolicy,
    Summary,
    TeacherSettings,
    generate_rationales,
    read_questions,
)
from kpod.teacher.store import RecordStore, read_jsonl

__all__ = [
    "Completion",
    "OpenAIBackend",
    "PromptTemplate",
    "RecordStore",
    "RequestFailed",
    "RetryPolicy",
    "RetryableError",
    "Summary",
    "TeacherError",
    "TeacherSettings",
    "TransformersBackend",
    "generate_rationales",
    "read_jsonl",
    "read_questions",
]
