"""Readers of the file types the formats are stored in (JSON Lines, JSON, CSV, Parquet).

Each yields ``(location, raw object)`` pairs, or the
:class:`~kpod.data.schema.InvalidRecordError` of a line or record it cannot read, so a
format adapter reports bad input with the file and the line or record.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from kpod.data.schema import InvalidRecordError, Record

Located = tuple[str, Record]  # (location, raw record)
_UTF8_HINT = "re-encode the file as UTF-8, e.g. `iconv -f latin1 -t utf-8 IN > OUT`"

__all__ = [
    "Located",
    "decode_error",
    "expand_rationales",
    "iter_csv",
    "iter_json_array",
    "iter_jsonl",
    "iter_parquet",
    "load_json_any",
    "read_text",
]


def decode_error(
    source: str, data: bytes, err: UnicodeDecodeError, line: int | None = None
) -> InvalidRecordError:
    if line is None:
        line = data[: err.start].count(b"\n") + 1
    col = err.start - (data.rfind(b"\n", 0, err.start) + 1)
    bad = data[err.start : err.start + 1].hex()
    return InvalidRecordError(
        source,
        f"line {line}",
        None,
        f"not valid UTF-8 (byte 0x{bad} at column {col + 1})",
        _UTF8_HINT,
    )


def read_text(path: Path) -> str:
    data = path.read_bytes()
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise decode_error(str(path), data, err) from None


def iter_jsonl(path: Path) -> Iterator[Located | InvalidRecordError]:
    """Yield ``(\"line N\", obj)`` per non-blank line, or the error for a bad line."""
    source = str(path)
    with path.open("rb") as fh:
        for n, raw in enumerate(fh, start=1):
            loc = f"line {n}"
            try:
                line = raw.decode("utf-8-sig" if n == 1 else "utf-8")
            except UnicodeDecodeError as err:
                yield decode_error(source, raw, err, line=n)
                continue
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as err:
                yield InvalidRecordError(
                    source, loc, None, f"invalid JSON ({err.msg} at column {err.colno})"
                )
                continue
            if not isinstance(obj, dict):
                yield InvalidRecordError(
                    source, loc, None, f"expected a JSON object, got {type(obj).__name__}"
                )
                continue
            yield loc, obj


def load_json_any(path: Path) -> tuple[str, Any]:
    """(\"json\" | \"jsonl\", parsed) for a .json file that may really be JSON Lines."""
    text = read_text(path)
    stripped = text.lstrip()
    try:
        return "json", json.loads(text)
    except json.JSONDecodeError as err:
        if stripped.startswith("{") and err.msg == "Extra data":
            return "jsonl", None
        line = text.count("\n", 0, err.pos) + 1
        raise InvalidRecordError(
            str(path), f"line {line}", None, f"invalid JSON ({err.msg})"
        ) from None


def iter_json_array(path: Path, key: str | None = None) -> Iterator[Located | InvalidRecordError]:
    kind, data = load_json_any(path)
    if kind == "jsonl":
        yield from iter_jsonl(path)
        return
    if isinstance(data, dict) and key and isinstance(data.get(key), list):
        data = data[key]
    elif isinstance(data, dict):  # one object: a single-line JSON Lines file
        yield from iter_jsonl(path)
        return
    if not isinstance(data, list):
        raise InvalidRecordError(str(path), "top level", None, "expected a JSON array of records")
    for i, obj in enumerate(data):
        loc = f"record index {i}"
        if not isinstance(obj, dict):
            yield InvalidRecordError(
                str(path), loc, None, f"expected a JSON object, got {type(obj).__name__}"
            )
            continue
        yield loc, obj


def iter_csv(path: Path) -> Iterator[Located | InvalidRecordError]:
    text = read_text(path)
    reader = csv.DictReader(io.StringIO(text, newline=""))
    for row in reader:
        yield f"line {reader.line_num}", dict(row)


def iter_parquet(path: Path) -> Iterator[Located | InvalidRecordError]:
    import pyarrow.parquet as pq

    pf = pq.ParquetFile(str(path))
    i = 0
    for batch in pf.iter_batches(batch_size=4096):
        for obj in batch.to_pylist():
            yield f"row {i}", obj
            i += 1


def expand_rationales(rationale: Any, multi: str) -> list[Any]:
    if isinstance(rationale, list):
        if multi == "first":
            return rationale[:1] if rationale else [""]
        return rationale if rationale else [""]
    return [rationale]
