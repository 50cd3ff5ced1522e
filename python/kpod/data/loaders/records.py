"""Validation and the public entry points: adapters dispatched by format, records
validated (:func:`kpod.data.schema.validate_record`), ids checked unique, and
Arrow-backed datasets.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

from kpod.data.loaders import asdiv, csqa, dss_palm, generic, gsm8k, mcc_kd, svamp
from kpod.data.loaders.detect import detect_format
from kpod.data.loaders.readers import Located
from kpod.data.schema import (
    InvalidRecordError,
    Record,
    SkipReport,
    check_unique_ids,
    validate_record,
)

__all__ = ["FORMATS", "iter_raw", "load_records", "read_records", "records_to_dataset"]


FORMATS = (
    "gsm8k",
    "mcc-kd",
    "dss-palm",
    "svamp",
    "asdiv",
    "csqa",
    "jsonl",
    "json",
    "csv",
    "parquet",
)
_NEEDS_NO_RATIONALE = {"svamp", "asdiv"}
_ADAPTERS: dict[str, Callable[..., Iterator[Located | InvalidRecordError]]] = {
    "gsm8k": gsm8k.read,
    "mcc-kd": mcc_kd.read,
    "dss-palm": dss_palm.read,
    "svamp": svamp.read,
    "asdiv": asdiv.read,
    "csqa": csqa.read,
}


def iter_raw(
    path: str | Path, *, format: str = "auto", **options: Any
) -> Iterator[Located | InvalidRecordError]:
    """The adapter's raw ``(location, record)`` pairs (or errors) for ``path``."""
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"{p}: no such file or directory")
    fmt = detect_format(p) if format == "auto" else format
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)} or 'auto'")
    stem = p.stem if p.is_file() else p.name
    if fmt in _ADAPTERS:
        return _ADAPTERS[fmt](p, stem, **options)
    return generic.read(p, stem, fmt=fmt, **options)


def read_records(
    path: str | Path,
    *,
    format: str = "auto",
    require_rationale: bool | None = None,
    skip_invalid: bool = False,
    report: SkipReport | None = None,
    **options: Any,
) -> Iterator[Record]:
    """Validated records of ``path`` (lazily; see the module docstring for formats and options).

    ``require_rationale`` defaults to True except for formats that carry no
    rationale (``svamp``, ``asdiv``, ``csqa``) — evaluation sets. With
    ``skip_invalid`` invalid records go to ``report`` (created if None, so pass
    one to read it) instead of raising.
    """
    fmt = detect_format(path) if format == "auto" else format
    if require_rationale is None:
        require_rationale = not (
            fmt in _NEEDS_NO_RATIONALE or (fmt == "csqa" and not options.get("rationale_field"))
        )
    source = str(path)
    if skip_invalid and report is None:
        report = SkipReport()

    def validated() -> Iterator[tuple[str, str, Record]]:
        for item in iter_raw(path, format=fmt, **options):
            if isinstance(item, InvalidRecordError):
                if not skip_invalid:
                    raise item
                assert report is not None
                report.add(item)
                continue
            loc, raw = item
            try:
                rec = validate_record(raw, source, loc, require_rationale=bool(require_rationale))
            except InvalidRecordError as err:
                if not skip_invalid:
                    raise
                assert report is not None
                report.add(err)
                continue
            if not rec["id"]:
                rec["id"] = f"{Path(source).stem}-{loc.split()[-1]}"
            yield source, loc, rec

    for _, _, rec in check_unique_ids(validated(), report if skip_invalid else None):
        yield rec


def records_to_dataset(records: Iterable[Record], *, cache_dir: str | Path | None = None) -> Any:
    """A ``datasets.Dataset`` with the schema columns from validated records.

    With ``cache_dir`` the rows are streamed into an Arrow file there (batches of
    10,000) and memory-mapped, so they never all sit in Python memory (the
    choice for millions of rows); otherwise the dataset is built in memory.
    """
    import datasets

    features = datasets.Features(
        {
            "id": datasets.Value("string"),
            "question": datasets.Value("string"),
            "rationale": datasets.Value("string"),
            "answer": datasets.Value("string"),
            "choices": datasets.List(datasets.Value("string")),
        }
    )
    if cache_dir is None:
        rows = list(records)
        return datasets.Dataset.from_list(rows, features=features)
    import uuid

    from datasets.arrow_writer import ArrowWriter

    folder = Path(cache_dir)
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / f"records-{uuid.uuid4().hex}.arrow"
    tmp = target.with_suffix(".partial")
    try:
        with ArrowWriter(features=features, path=str(tmp), writer_batch_size=10_000) as writer:
            for rec in records:
                writer.write(rec)
            writer.finalize()
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    tmp.replace(target)
    return datasets.Dataset.from_file(str(target))


def load_records(
    path: str | Path,
    *,
    format: str = "auto",
    require_rationale: bool | None = None,
    skip_invalid: bool = False,
    report: SkipReport | None = None,
    cache_dir: str | Path | None = None,
    **options: Any,
) -> Any:
    """Load ``path`` into a ``datasets.Dataset`` with the record schema (see :func:`read_records`)."""
    return records_to_dataset(
        read_records(
            path,
            format=format,
            require_rationale=require_rationale,
            skip_invalid=skip_invalid,
            report=report,
            **options,
        ),
        cache_dir=cache_dir,
    )
