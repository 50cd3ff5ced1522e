"""Adapters from every supported file format to the record schema.

Each adapter yields ``(location, raw_record)`` pairs; :func:`read_records`
validates them (:func:`kpod.data.schema.validate_record`), rejects duplicate
ids and either raises :class:`~kpod.data.schema.InvalidRecordError` (naming
the file, the line or record and the field) or, with ``skip_invalid=True``,
lists the record in a :class:`~kpod.data.schema.SkipReport`. Nothing is
dropped silently. :func:`load_records` wraps that in an Arrow-backed
``datasets.Dataset`` (written in batches, memory-mapped; fine for millions of
rows).

Formats (``format=``):

``gsm8k``
    GSM8K jsonl (``question``, ``answer`` = human solution ending in ``#### N``).
    Rationale = the solution without its ``<<...>>`` calculator annotations and
    without the ``#### N`` line; answer = N without thousands separators.
``mcc-kd``
    MCC-KD json arrays (``instruction``, ``output``, ``label``). ``output`` may
    be a list of rationales: ``multi="all"`` gives one example per rationale,
    ``multi="first"`` one per question. CSQA instructions ("Answer Choices:\\nA. ...")
    are split into question and choices.
``dss-palm``
    distilling-step-by-step PaLM completions (json arrays of strings, in batch
    order) aligned with a ``source`` file (the CQA file of ``commonsenseqa`` or
    DSS ``svamp_train.json``/``svamp_test.json``). Rationale = text before the next "Q:".
``svamp``
    ``SVAMP.json``: question = Body + " " + Question, answer = Answer, no rationale.
``asdiv``
    ``ASDiv.xml``: question = Body + " " + Question, answer = Answer without its
    "(unit)", no rationale.
``csqa``
    CommonsenseQA jsonl (``id``, ``question``, ``choices``, ``answer`` = choice
    text) -> answer letter (the first matching choice: the export lost the answer
    key, and 2 of 1,221 dev questions list the answer text twice); no rationale
    (the CoS-E explanations have an unknown
    license; name ``rationale_field`` to use one anyway).
``jsonl``, ``json``, ``csv``, ``parquet``
    Generic: ``columns`` maps schema fields to your column names, e.g.
    ``{"question": "input", "rationale": "output", "answer": "label"}``.

``format="auto"`` recognises all of these from the file name and first record.

Layout: :mod:`~kpod.data.loaders.readers` (file types),
one module per format (:mod:`~kpod.data.loaders.gsm8k`, ``mcc_kd``,
``dss_palm``, ``svamp``, ``asdiv``, ``csqa``, ``generic``),
:mod:`~kpod.data.loaders.detect` (``format="auto"``) and
:mod:`~kpod.data.loaders.records` (dispatch, validation, datasets).
"""

from __future__ import annotations

from kpod.data.loaders.detect import detect_format
from kpod.data.loaders.gsm8k import clean_gsm8k_solution
from kpod.data.loaders.records import (
    FORMATS,
    iter_raw,
    load_records,
    read_records,
    records_to_dataset,
)

__all__ = [
    "FORMATS",
    "clean_gsm8k_solution",
    "detect_format",
    "iter_raw",
    "load_records",
    "read_records",
    "records_to_dataset",
]
