"""The prepared-example contract (docs/architecture.md, "Prepared examples").

One home for what every part that reads or writes student-ready examples
agrees on: the ``step_ids`` values, the prepared columns and the invariants
over them, the position where a stage example splits input from target,
column access over a ``datasets.Dataset``, a dict of columns or a list of
rows, and saving and loading prepared datasets. :mod:`kpod.data.tokenize`
writes examples by this contract; the training code, the clusters, the
weighting module's step ids, the CLI commands and the pipeline read them
through it.

Importing this module is cheap: ``datasets`` is imported inside the functions
that need it.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "ANSWER_PART",
    "PAD",
    "PREPARED_COLUMNS",
    "PROMPT",
    "check_example",
    "column",
    "column_names",
    "has_column",
    "load_prepared",
    "optional_column",
    "save_prepared",
    "split_position",
    "with_column",
]

#: ``step_ids`` of a prompt token (the question and "A: Let's think step by step.").
PROMPT = -1
#: ``step_ids`` of an answer-part token ("Therefore, the answer is ..." and EOS).
ANSWER_PART = -2
#: ``step_ids`` of padding in a batch (never stored in a prepared dataset).
PAD = -3

#: The columns :func:`kpod.data.prepare_examples` writes, in order.
PREPARED_COLUMNS = (
    "id",
    "question",
    "rationale",
    "answer",
    "steps",
    "n_steps",
    "input_ids",
    "step_ids",
    "answer_mask",
)


def check_example(step_ids: Sequence[int], n_steps: int) -> str | None:
    """Why ``step_ids`` breaks the contract (-1.., 0.., 1.., ..., n-1.., -2..), or None."""
    expected = 0
    phase = "prompt"
    for s in step_ids:
        if phase == "prompt":
            if s == PROMPT:
                continue
            phase = "steps"
        if phase == "steps":
            if s == expected:
                expected += 1
                continue
            if s == expected - 1 and s >= 0:
                continue
            if s == ANSWER_PART:
                phase = "answer"
                continue
            return f"step id {s} where {expected - 1} or {expected} was expected"
        if phase == "answer" and s != ANSWER_PART:
            return f"step id {s} after the answer part began"
    if expected != n_steps:
        return f"{n_steps - expected} step(s) without a token of their own (steps seen: {expected}/{n_steps})"
    if phase != "answer":
        return "no answer-part token"
    return None


def split_position(step_ids: Sequence[int] | np.ndarray, given_steps: int) -> int:
    """First position ``p`` whose step id is ``>= given_steps`` or the answer part.

    With ``given_steps = c_i`` leading steps as input, ``input_ids[:p]`` is the
    input and ``input_ids[p:]`` what the student writes (docs/architecture.md,
    "Stage examples"). ``step_ids`` is any sequence of ints (a list or a numpy
    array). A prepared example always ends with answer-part tokens, so ``p``
    exists; a sequence without one is not a prepared example and is an error.
    """
    if given_steps < 0:
        raise ValueError(f"given_steps must be >= 0, got {given_steps}")
    ids = np.asarray(step_ids, dtype=np.int64)
    hits = np.flatnonzero((ids >= given_steps) | (ids == ANSWER_PART))
    if hits.size:
        return int(hits[0])
    raise ValueError(
        "step_ids has no rationale step >= the given-step count and no answer-part token "
        "(-2); the example is not a prepared example (see docs/architecture.md)"
    )


# ----------------------------------------------------------------------------- columns


def column_names(examples: Any) -> list[str]:
    """The columns of a ``datasets.Dataset``, a dict of columns or a list of row dicts."""
    names = getattr(examples, "column_names", None)
    if names is not None:
        return list(names)
    if isinstance(examples, Mapping):
        return list(examples.keys())
    if isinstance(examples, Sequence) and not isinstance(examples, str):
        if not examples:
            return []
        if isinstance(examples[0], Mapping):
            return list(examples[0].keys())
    raise ValueError(
        "examples must be a datasets.Dataset, a dict of columns or a list of dicts, got "
        f"{type(examples).__name__}"
    )


def has_column(examples: Any, name: str) -> bool:
    """Whether ``examples`` is a table (see :func:`column_names`) with column ``name``.

    Anything else (a list of question strings, an array, a torch dataset of
    stage examples) has no columns, so False.
    """
    try:
        return name in column_names(examples)
    except ValueError:
        return False


def optional_column(examples: Any, name: str) -> list[Any] | None:
    """Column ``name`` as a list, or None when :func:`has_column` says it is not there."""
    if not has_column(examples, name):
        return None
    if isinstance(examples, Sequence) and not hasattr(examples, "column_names"):
        return [row[name] for row in examples]
    return list(examples[name])


def column(examples: Any, name: str) -> list[Any]:
    """Column ``name`` as a list; a ValueError naming the column when it is absent."""
    values = optional_column(examples, name)
    if values is None:
        raise ValueError(
            f"the examples lack the column {name!r}; have {column_names(examples)} "
            "(docs/architecture.md, prepared examples)"
        )
    return values


def with_column(dataset: Any, name: str, values: Sequence[Any], feature: Any = None) -> Any:
    """``dataset`` with column ``name`` set to ``values`` (replaced when it exists)."""
    if name in dataset.column_names:
        dataset = dataset.remove_columns(name)
    if feature is None:
        return dataset.add_column(name, list(values))
    return dataset.add_column(name, list(values), feature=feature)


# ----------------------------------------------------------------------------- on disk


def load_prepared(path: str | os.PathLike[str]) -> Any:
    """A prepared-example ``datasets.Dataset`` from a ``save_to_disk`` folder or a JSONL/Parquet file."""
    import datasets

    p = Path(path)
    if p.is_dir():
        if (p / "state.json").is_file() or (p / "dataset_info.json").is_file():
            return datasets.load_from_disk(str(p))
        raise FileNotFoundError(
            f"{p} is a folder but not a saved datasets.Dataset (no state.json); pass the folder "
            "written by `kpod data prepare` / Dataset.save_to_disk"
        )
    if not p.is_file():
        raise FileNotFoundError(f"prepared data {p} does not exist")
    suffix = p.suffix.lower()
    if suffix in (".jsonl", ".json"):
        return datasets.Dataset.from_json(str(p))
    if suffix == ".parquet":
        return datasets.Dataset.from_parquet(str(p))
    raise ValueError(
        f"{p}: unsupported file type {suffix!r}; use a saved Dataset folder, .jsonl or .parquet"
    )


def save_prepared(
    dataset: Any, path: str | os.PathLike[str], *, extra: Mapping[str, str] | None = None
) -> Path:
    """Save with ``save_to_disk`` through a temporary folder, so an interrupted save loses nothing.

    ``extra`` maps file names to text written into the folder with the dataset
    (before it takes its place), e.g. ``kpod data prepare``'s ``kpod_prepare.json``.
    """
    p = Path(path)
    tmp = p.with_name(p.name + ".tmp")
    if tmp.exists():
        shutil.rmtree(tmp)
    dataset.save_to_disk(str(tmp))
    for name, text in (extra or {}).items():
        (tmp / name).write_text(text, encoding="utf-8")
    if p.exists():
        shutil.rmtree(p)
    tmp.rename(p)
    return p
