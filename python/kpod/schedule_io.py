"""Tables in and out of ``kpod schedule``: step difficulties and clusters in, given steps out.

Input, one of two layouts:

* one row per question: a question id (optional), a cluster id and a *list*
  of step difficulties, in step order;
* one row per step: a question id, a cluster id (the same on every step of a
  question) and one step difficulty; steps keep the file's order within their
  question unless a step-index column orders them. Questions keep the order
  of their first row.

Formats: Parquet, an Arrow file or a ``datasets`` folder (``save_to_disk``;
both need pyarrow, the ``parquet`` extra), JSONL, CSV and NPZ (numpy only).
In NPZ the list layout is CSR: ``step_difficulty`` flat plus ``step_offsets``
(length n + 1), as :class:`kpod.Curriculum` takes it. In CSV a list cell is
``[0.5, 1.2]``, ``0.5;1.2`` or ``0.5 1.2``.

Every input error is an :class:`InputError` that names the file, the row
(``line N`` for text files, counting the header; ``row i``, 0-based, for
columnar ones) and the column, and says how to fix it.

Output: the given-step count c_i(t) of every question at stages 0..T, wide
(one column per stage; JSONL: a ``given_steps`` list per question; NPZ: a
``given_steps`` array of shape (n, T + 1)) or long (question_id, stage,
given_steps), as Parquet, JSONL or NPZ. It is assembled from one ``.npy``
part per stage, so it streams stage by stage and never holds all stages.
"""

from __future__ import annotations

import csv
import json
import math
import zipfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "INPUT_FORMATS",
    "OUTPUT_FORMATS",
    "InputError",
    "ScheduleInput",
    "detect_input_format",
    "output_format",
    "read_schedule_input",
    "write_given_steps",
]

INPUT_FORMATS: tuple[str, ...] = ("parquet", "arrow", "jsonl", "csv", "npz")
OUTPUT_FORMATS: tuple[str, ...] = ("parquet", "jsonl", "npz")
_SUFFIXES = {
    ".parquet": "parquet",
    ".pq": "parquet",
    ".arrow": "arrow",
    ".feather": "arrow",
    ".ipc": "arrow",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".csv": "csv",
    ".npz": "npz",
}
_PYARROW_HINT = 'install pyarrow with: pip install "kpod[parquet]"'


class InputError(ValueError):
    """A schedule input that cannot be used; the message names file, row and column."""


@dataclass(frozen=True)
class ScheduleInput:
    """Questions ready for :class:`kpod.Curriculum` (CSR step difficulties)."""

    step_difficulty: np.ndarray
    """Flat float64 difficulties of all steps, question by question."""
    step_offsets: np.ndarray
    """int64 CSR offsets, length n_questions + 1."""
    clusters: np.ndarray
    """int64 cluster id per question."""
    question_ids: np.ndarray
    """Question id per question (the input's, or the row number when it has none)."""
    layout: str
    """``"questions"`` or ``"steps"``: the input layout that was read."""

    @property
    def n_questions(self) -> int:
        return int(self.clusters.shape[0])


# ----------------------------------------------------------------------------- formats


def detect_input_format(path: str | Path) -> str:
    """The input format of ``path`` from its suffix (a folder is a ``datasets`` folder)."""
    p = Path(path)
    if p.is_dir():
        return "arrow"
    fmt = _SUFFIXES.get(p.suffix.lower())
    if fmt is None:
        raise InputError(
            f"{p}: unknown input format {p.suffix or '(no suffix)'!r}; name the file "
            f"*.parquet, *.arrow, *.jsonl, *.csv or *.npz, or pass --format "
            f"({', '.join(INPUT_FORMATS)})"
        )
    return fmt


def output_format(path: str | Path) -> str:
    """The output format of ``path`` from its suffix."""
    p = Path(path)
    fmt = _SUFFIXES.get(p.suffix.lower())
    if fmt not in OUTPUT_FORMATS:
        raise ValueError(
            f"{p}: unknown output format {p.suffix or '(no suffix)'!r}; name the output "
            "*.parquet, *.jsonl or *.npz"
        )
    assert fmt is not None
    return fmt


def _pyarrow(path: Path) -> Any:
    try:
        import pyarrow
    except ModuleNotFoundError as exc:
        if exc.name != "pyarrow":
            raise
        raise InputError(
            f"{path}: reading Parquet and Arrow needs pyarrow, which is not installed; "
            f"{_PYARROW_HINT}, or convert the table to JSONL, CSV or NPZ"
        ) from None
    return pyarrow


# ----------------------------------------------------------------------------- raw tables


@dataclass
class _Table:
    """One input table, before validation; every array has one entry per row."""

    path: Path
    columns: list[str]
    n_rows: int
    row_name: Callable[[int], str]
    ids: np.ndarray | None
    id_missing: np.ndarray | None
    cluster: np.ndarray  # float64 or int64
    cluster_missing: np.ndarray | None
    values: np.ndarray  # float64 difficulties (flat for lists)
    offsets: np.ndarray | None  # int64 CSR over rows for a list column, else None
    diff_missing: np.ndarray | None  # per row: no value / null list
    step: np.ndarray | None  # per-row step index (steps layout)


@dataclass(frozen=True)
class _Names:
    id: str | None
    cluster: str
    difficulty: str
    step: str | None
    layout: str  # auto | questions | steps


def _resolve_names(path: Path, columns: Sequence[str], names: _Names) -> _Names:
    def need(col: str, what: str, option: str) -> None:
        if col not in columns:
            raise InputError(
                f"{path}: no column {col!r} ({what}); the columns are "
                f"{', '.join(map(repr, columns)) or '(none)'}; pass {option} NAME"
            )

    need(names.cluster, "the cluster id of each question", "--cluster-column")
    need(names.difficulty, "the step difficulties", "--difficulty-column")
    ident = names.id
    if ident is None:
        ident = next((c for c in ("question_id", "id") if c in columns), None)
    else:
        need(ident, "the question id", "--id-column")
    step = names.step
    if step is None:
        step = "step" if "step" in columns else None
    elif not step:  # "" turns the step column off: the file order
        step = None
    else:
        need(step, "the step index within a question", "--step-column")
    return _Names(ident, names.cluster, names.difficulty, step, names.layout)


def _text_row(i: int, lines: list[int]) -> str:
    return f"line {lines[i]}"


def _col_row(i: int) -> str:
    return f"row {i} (0-based)"


def _float_cell(path: Path, where: str, col: str, cell: Any) -> float:
    if cell is None or (isinstance(cell, str) and not cell.strip()):
        return math.nan
    if isinstance(cell, bool) or not isinstance(cell, (int, float, str)):
        raise InputError(
            f"{path}, {where}, column {col!r}: {cell!r} is not a number; write the "
            "difficulty as a number >= 0"
        )
    try:
        return float(cell)
    except ValueError:
        raise InputError(
            f"{path}, {where}, column {col!r}: {cell!r} is not a number; write the "
            "difficulty as a number >= 0 (a list of them, one row per question: [0.5, 1.2])"
        ) from None


def _list_cell(path: Path, where: str, col: str, cell: Any) -> list[float] | None:
    """A list of step difficulties from a JSON value or a CSV cell; None when missing."""
    if cell is None:
        return None
    if isinstance(cell, str):
        text = cell.strip()
        if not text:
            return None
        if text.startswith("["):
            try:
                cell = json.loads(text.replace("nan", "NaN"))
            except json.JSONDecodeError:
                raise InputError(
                    f"{path}, {where}, column {col!r}: {text!r} is not a list of numbers; "
                    "write it as [0.5, 1.2] or 0.5;1.2"
                ) from None
        else:
            cell = [p for p in text.replace(";", " ").replace(",", " ").split()]
    if not isinstance(cell, list):
        cell = [cell]
    return [_float_cell(path, f"{where} (step {k})", col, v) for k, v in enumerate(cell)]


def _looks_like_list(cell: str) -> bool:
    t = cell.strip()
    return t.startswith("[") or ";" in t or len(t.split()) > 1


def _int_cell(path: Path, where: str, col: str, cell: Any) -> tuple[int, bool]:
    """(value, missing) of a cluster or step cell."""
    if cell is None or (isinstance(cell, str) and not cell.strip()):
        return 0, True
    try:
        v = float(cell) if not isinstance(cell, (int, bool)) else cell
        if isinstance(v, bool) or not float(v).is_integer():
            raise ValueError
        return int(v), False
    except (ValueError, TypeError, OverflowError):
        raise InputError(
            f"{path}, {where}, column {col!r}: {cell!r} is not an integer; write an integer >= 0"
        ) from None


def _from_text_rows(
    path: Path,
    columns: list[str],
    rows: Iterator[tuple[int, dict[str, Any]]],
    names: _Names,
    *,
    is_csv: bool,
) -> _Table:
    """Reads JSONL/CSV records (line number, record) into a _Table."""
    lines: list[int] = []
    ids: list[Any] = []
    id_missing: list[bool] = []
    cluster: list[int] = []
    cluster_missing: list[bool] = []
    raw_diff: list[Any] = []
    steps: list[int] = []
    for line, rec in rows:
        lines.append(line)
        where = f"line {line}"
        if names.id is not None:
            v = rec.get(names.id)
            missing = v is None or (isinstance(v, str) and not v.strip())
            id_missing.append(missing)
            ids.append("" if missing else v)
        c, miss = _int_cell(path, where, names.cluster, rec.get(names.cluster))
        cluster.append(c)
        cluster_missing.append(miss)
        raw_diff.append(rec.get(names.difficulty))
        if names.step is not None:
            s, miss = _int_cell(path, where, names.step, rec.get(names.step))
            if miss:
                raise InputError(
                    f"{path}, {where}, column {names.step!r}: missing step index; give every "
                    "step its index, or pass --step-column '' to keep the file order"
                )
            steps.append(s)
    layout = names.layout
    if layout == "auto":
        if is_csv:
            is_list = any(isinstance(c, str) and _looks_like_list(c) for c in raw_diff)
        else:
            is_list = any(isinstance(c, list) for c in raw_diff)
        layout = "questions" if is_list else "steps"
    offsets = None
    diff_missing = np.zeros(len(lines), dtype=bool)
    if layout == "questions":
        flat: list[float] = []
        counts = np.zeros(len(lines), dtype=np.int64)
        for i, cell in enumerate(raw_diff):
            vals = _list_cell(path, f"line {lines[i]}", names.difficulty, cell)
            if vals is None:
                diff_missing[i] = True
                continue
            flat.extend(vals)
            counts[i] = len(vals)
        values = np.asarray(flat, dtype=np.float64)
        offsets = np.zeros(len(lines) + 1, dtype=np.int64)
        np.cumsum(counts, out=offsets[1:])
    else:
        values = np.array(
            [
                _float_cell(path, f"line {lines[i]}", names.difficulty, c)
                for i, c in enumerate(raw_diff)
            ],
            dtype=np.float64,
        )
        diff_missing = np.array([c is None or c == "" for c in raw_diff], dtype=bool)
    id_arr: np.ndarray | None = None
    if names.id is not None:
        id_arr = _id_array(ids)
    return _Table(
        path=path,
        columns=columns,
        n_rows=len(lines),
        row_name=lambda i: _text_row(i, lines),
        ids=id_arr,
        id_missing=np.asarray(id_missing, dtype=bool) if names.id is not None else None,
        cluster=np.asarray(cluster, dtype=np.int64),
        cluster_missing=np.asarray(cluster_missing, dtype=bool),
        values=values,
        offsets=offsets,
        diff_missing=diff_missing,
        step=np.asarray(steps, dtype=np.int64) if names.step is not None else None,
    )


def _id_array(ids: list[Any]) -> np.ndarray:
    """Integer ids as int64, anything else as str."""
    if all(isinstance(v, int) and not isinstance(v, bool) for v in ids):
        try:
            return np.asarray(ids, dtype=np.int64)
        except OverflowError:
            pass
    return np.asarray([str(v) for v in ids], dtype=object)


def _read_jsonl(path: Path, names: _Names) -> _Table:
    def records() -> Iterator[tuple[int, dict[str, Any]]]:
        with path.open(encoding="utf-8") as fh:
            for line_no, line in enumerate(fh, 1):
                if not line.strip():
                    continue
                try:
                    rec = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise InputError(
                        f"{path}, line {line_no}: not valid JSON ({exc.msg}); each line must be "
                        "one JSON object"
                    ) from None
                if not isinstance(rec, dict):
                    raise InputError(
                        f"{path}, line {line_no}: a JSON {type(rec).__name__}, not an object; "
                        "each line must be one JSON object"
                    )
                yield line_no, rec

    first = next(records(), None)
    columns = list(first[1]) if first else []
    resolved = _resolve_names(path, columns, names)
    it = records()

    def checked() -> Iterator[tuple[int, dict[str, Any]]]:
        for line_no, rec in it:
            for col in (resolved.cluster, resolved.difficulty):
                if col not in rec:
                    raise InputError(
                        f"{path}, line {line_no}, column {col!r}: missing; every record needs it"
                    )
            yield line_no, rec

    return _from_text_rows(path, columns, checked(), resolved, is_csv=False)


def _read_csv(path: Path, names: _Names) -> _Table:
    with path.open(encoding="utf-8", newline="") as fh:
        reader = csv.reader(fh)
        header = next(reader, None)
        columns = [c.strip() for c in header] if header else []
        resolved = _resolve_names(path, columns, names)
        index = {c: j for j, c in enumerate(columns)}

        def records() -> Iterator[tuple[int, dict[str, Any]]]:
            for row in reader:
                line = reader.line_num
                if not row or (len(row) == 1 and not row[0].strip()):
                    continue
                if len(row) != len(columns):
                    raise InputError(
                        f"{path}, line {line}: {len(row)} fields but the header has "
                        f'{len(columns)}; quote a list cell that contains commas: "[0.5, 1.2]"'
                    )
                yield line, {c: row[j] for c, j in index.items()}

        return _from_text_rows(path, columns, records(), resolved, is_csv=True)


def _read_npz(path: Path, names: _Names) -> _Table:
    try:
        npz = np.load(path, allow_pickle=False)
    except (OSError, ValueError, zipfile.BadZipFile) as exc:
        raise InputError(f"{path}: not a readable .npz file ({exc})") from None
    with npz:
        columns = list(npz.files)
        resolved = _resolve_names(path, columns, names)
        data = {c: npz[c] for c in columns}
    csr = "step_offsets" in data
    layout = resolved.layout
    if layout == "auto":
        layout = "questions" if csr else "steps"
    values = _numeric(path, data[resolved.difficulty], resolved.difficulty, "difficulty")
    offsets = None
    if layout == "questions":
        if not csr:
            raise InputError(
                f"{path}: one row per question in NPZ needs CSR offsets: a 'step_offsets' "
                "array of length n_questions + 1 beside the flat step difficulties"
            )
        offsets = np.asarray(data["step_offsets"])
        if offsets.ndim != 1 or offsets.dtype.kind not in "iu":
            raise InputError(f"{path}, column 'step_offsets': must be a 1-D integer array")
        offsets = offsets.astype(np.int64)
        bad = _first(np.diff(offsets) < 0)
        if offsets.size == 0 or offsets[0] != 0 or offsets[-1] != values.shape[0] or bad >= 0:
            raise InputError(
                f"{path}, column 'step_offsets'"
                + (f", row {bad + 1}" if bad >= 0 else "")
                + f": must rise from 0 to len({resolved.difficulty}) = {values.shape[0]} "
                "(CSR: question i owns steps offsets[i]:offsets[i + 1])"
            )
    n_rows = values.shape[0] if offsets is None else offsets.shape[0] - 1
    for col in (resolved.cluster, resolved.id, resolved.step):
        if col is not None and data[col].shape != (n_rows,):
            raise InputError(
                f"{path}, column {col!r}: shape {data[col].shape}, expected ({n_rows},): one "
                f"entry per {'question' if offsets is not None else 'step'}"
            )
    cluster = data[resolved.cluster]
    cluster_missing = None
    if cluster.dtype.kind == "f":
        cluster_missing = np.isnan(cluster)
    elif cluster.dtype.kind not in "iu":
        raise InputError(
            f"{path}, column {resolved.cluster!r}: dtype {cluster.dtype}; cluster ids must "
            "be integers >= 0"
        )
    ids = data[resolved.id] if resolved.id is not None else None
    step = None
    if resolved.step is not None and layout == "steps":
        step = _numeric(path, data[resolved.step], resolved.step, "step index").astype(np.int64)
    return _Table(
        path=path,
        columns=columns,
        n_rows=n_rows,
        row_name=_col_row,
        ids=ids,
        id_missing=None,
        cluster=cluster,
        cluster_missing=cluster_missing,
        values=values,
        offsets=offsets,
        diff_missing=None,
        step=step,
    )


def _numeric(path: Path, a: np.ndarray, col: str, what: str) -> np.ndarray:
    if a.ndim != 1 or a.dtype.kind not in "iuf":
        raise InputError(
            f"{path}, column {col!r}: a {a.ndim}-D {a.dtype} array; the {what} must be a "
            "1-D array of numbers"
        )
    return np.ascontiguousarray(a, dtype=np.float64)


def _arrow_table(path: Path) -> Any:
    pa = _pyarrow(path)
    import pyarrow.ipc

    def one(file: Path) -> Any:
        try:
            with pa.memory_map(str(file)) as src:
                return pyarrow.ipc.open_stream(src).read_all()
        except pa.ArrowInvalid:
            try:
                with pa.memory_map(str(file)) as src:
                    return pyarrow.ipc.open_file(src).read_all()
            except pa.ArrowInvalid as exc:
                raise InputError(f"{file}: not an Arrow IPC file or stream ({exc})") from None

    if not path.is_dir():
        return one(path)
    if (path / "dataset_dict.json").is_file():
        splits = sorted(p.name for p in path.iterdir() if p.is_dir())
        raise InputError(
            f"{path}: a datasets DatasetDict; pass one split's folder, e.g. "
            f"{path / (splits[0] if splits else 'train')}"
        )
    files: list[Path] = []
    state = path / "state.json"
    if state.is_file():
        files = [path / f["filename"] for f in json.loads(state.read_text())["_data_files"]]
    if not files:
        files = sorted(path.glob("*.arrow"))
    if not files:
        raise InputError(
            f"{path}: a folder without .arrow files; pass a datasets folder (save_to_disk), "
            "a Parquet, JSONL, CSV or NPZ file"
        )
    return pa.concat_tables([one(f) for f in files])


def _read_arrow_like(path: Path, fmt: str, names: _Names) -> _Table:
    pa = _pyarrow(path)
    import pyarrow.compute as pc

    if fmt == "parquet":
        import pyarrow.parquet as pq

        try:
            table = pq.read_table(path)
        except (pa.ArrowInvalid, OSError) as exc:
            raise InputError(f"{path}: not a readable Parquet file ({exc})") from None
    else:
        table = _arrow_table(path)
    columns = list(table.column_names)
    resolved = _resolve_names(path, columns, names)
    n = table.num_rows

    def col(name: str) -> Any:
        return table.column(name).combine_chunks()

    diff = col(resolved.difficulty)
    is_list = pa.types.is_list(diff.type) or pa.types.is_large_list(diff.type)
    is_list = is_list or pa.types.is_fixed_size_list(diff.type)
    layout = resolved.layout
    if layout == "auto":
        layout = "questions" if is_list else "steps"
    if (layout == "questions") != is_list:
        raise InputError(
            f"{path}, column {resolved.difficulty!r}: type {diff.type}; "
            + (
                "one row per question needs a list of step difficulties"
                if layout == "questions"
                else "one row per step needs one number per row"
            )
        )

    def floats(arr: Any, what: str) -> np.ndarray:
        if not (pa.types.is_integer(arr.type) or pa.types.is_floating(arr.type)):
            raise InputError(
                f"{path}, column {what!r}: type {arr.type}; the step difficulties must be numbers"
            )
        if arr.type != pa.float64():
            arr = arr.cast(pa.float64())
        if arr.null_count:
            arr = pc.fill_null(arr, math.nan)
        # float64 without nulls: a view of Arrow's buffer, no copy
        return np.asarray(arr.to_numpy(zero_copy_only=False), dtype=np.float64)

    offsets = None
    diff_missing = np.asarray(diff.is_null().to_numpy(zero_copy_only=False), dtype=bool)
    if is_list:
        lengths = pc.fill_null(pc.list_value_length(diff), 0).to_numpy(zero_copy_only=False)
        offsets = np.zeros(n + 1, dtype=np.int64)
        np.cumsum(lengths, out=offsets[1:])
        values = floats(diff.flatten(), resolved.difficulty)
    else:
        values = floats(diff, resolved.difficulty)
    cl = col(resolved.cluster)
    if not (pa.types.is_integer(cl.type) or pa.types.is_floating(cl.type)):
        raise InputError(
            f"{path}, column {resolved.cluster!r}: type {cl.type}; cluster ids must be "
            "integers >= 0"
        )
    cluster_missing = np.asarray(cl.is_null().to_numpy(zero_copy_only=False), dtype=bool)
    if pa.types.is_integer(cl.type):
        cluster = np.asarray(
            pc.fill_null(cl.cast(pa.int64()), 0).to_numpy(zero_copy_only=False), dtype=np.int64
        )
    else:
        cluster = floats(cl, resolved.cluster)
    ids = id_missing = None
    if resolved.id is not None:
        ic = col(resolved.id)
        id_missing = np.asarray(ic.is_null().to_numpy(zero_copy_only=False), dtype=bool)
        ids = np.asarray(ic.to_numpy(zero_copy_only=False))
        if ids.dtype.kind not in "iu":
            ids = ids.astype(object)
    step = None
    if resolved.step is not None and layout == "steps":
        sc = col(resolved.step)
        if sc.null_count:
            i = _first(np.asarray(sc.is_null().to_numpy(zero_copy_only=False)))
            raise InputError(
                f"{path}, {_col_row(i)}, column {resolved.step!r}: missing step index; give every "
                "step its index"
            )
        step = np.asarray(sc.to_numpy(zero_copy_only=False)).astype(np.int64)
    # Arrow's allocator keeps the freed chunks (the file's row groups, combined
    # above); hand them back so they do not count against the schedule.
    table = diff = None
    pa.default_memory_pool().release_unused()
    return _Table(
        path=path,
        columns=columns,
        n_rows=n,
        row_name=_col_row,
        ids=ids,
        id_missing=id_missing,
        cluster=cluster,
        cluster_missing=cluster_missing,
        values=values,
        offsets=offsets,
        diff_missing=diff_missing,
        step=step,
    )


# ----------------------------------------------------------------------------- validation


def _first(mask: np.ndarray) -> int:
    """Index of the first True in ``mask``, or -1."""
    if mask.size == 0:
        return -1
    i = int(np.argmax(mask))
    return i if mask[i] else -1


def _check_clusters(t: _Table, name: str) -> np.ndarray:
    where = f"{t.path}, {{row}}, column {name!r}"
    if t.cluster_missing is not None:
        i = _first(t.cluster_missing)
        if i >= 0:
            raise InputError(
                where.format(row=t.row_name(i)) + ": missing cluster id; every question needs "
                "one (an integer >= 0; e.g. 0 for all if you do not cluster)"
            )
    c = t.cluster
    if c.dtype.kind == "f":
        missing = t.cluster_missing if t.cluster_missing is not None else np.isnan(c)
        bad = ~missing & ((c != np.floor(c)) | ~np.isfinite(c))
        i = _first(bad)
        if i >= 0:
            raise InputError(
                where.format(row=t.row_name(i))
                + f": {float(c[i])!r} is not an integer cluster id; "
                "cluster ids must be integers >= 0"
            )
        c = np.where(missing, 0, c)
        if c.size and c.max() >= 2.0**63:
            i = int(np.argmax(c))
            raise InputError(where.format(row=t.row_name(i)) + ": cluster id out of range")
        c = c.astype(np.int64)
    elif c.dtype.kind == "u" and c.size and c.max() > np.iinfo(np.int64).max:
        i = int(np.argmax(c))
        raise InputError(
            where.format(row=t.row_name(i)) + ": cluster id above the int64 range; renumber"
        )
    c = np.ascontiguousarray(c, dtype=np.int64)
    i = _first(c < 0)
    if i >= 0:
        raise InputError(
            where.format(row=t.row_name(i)) + f": cluster id {int(c[i])}; cluster ids must be "
            "integers >= 0"
        )
    return c


def _check_difficulties(t: _Table, name: str) -> None:
    v = t.values
    bad = ~(np.isfinite(v) & (v >= 0))
    j = _first(bad)
    if j < 0:
        return
    if t.offsets is None:
        row, step = j, ""
    else:
        row = int(np.searchsorted(t.offsets, j, side="right")) - 1
        step = f" (step {j - int(t.offsets[row])})"
    missing = t.diff_missing is not None and t.offsets is None and t.diff_missing[row]
    what = "missing" if missing else repr(float(v[j]))
    raise InputError(
        f"{t.path}, {t.row_name(row)}, column {name!r}{step}: difficulty is {what}; step "
        "difficulties must be finite numbers >= 0 (fix or drop the row)"
    )


def _duplicate(ids: np.ndarray) -> tuple[int, int]:
    """(first, repeat): the earliest row that repeats an id, and that id's first row; or -1s."""
    if ids.size < 2:
        return -1, -1
    order = np.argsort(ids, kind="stable")  # equal ids keep their row order
    s = ids[order]
    same = s[1:] == s[:-1]
    if not same.any():
        return -1, -1
    pos = np.flatnonzero(same) + 1  # sorted positions of rows that repeat an earlier row
    k = int(np.argmin(order[pos]))
    start = int(np.searchsorted(s, s[pos[k]], side="left"))
    return int(order[start]), int(order[pos[k]])


def _ids(t: _Table, name: str | None, unique: bool) -> np.ndarray:
    if t.ids is None:
        return np.arange(t.n_rows, dtype=np.int64)
    assert name is not None
    if t.id_missing is not None:
        i = _first(t.id_missing)
        if i >= 0:
            raise InputError(
                f"{t.path}, {t.row_name(i)}, column {name!r}: missing question id; give every "
                "row its id"
            )
    ids = t.ids
    if ids.dtype.kind == "f":
        raise InputError(
            f"{t.path}, column {name!r}: float question ids; use integer or string ids"
        )
    if unique:
        a, b = _duplicate(ids)
        if b >= 0:
            raise InputError(
                f"{t.path}, {t.row_name(b)}, column {name!r}: duplicate question id "
                f"{ids[b]!r} (also at {t.row_name(a)}); one row per question needs unique ids "
                "(for one row per step, pass --layout steps)"
            )
    return ids


def _assemble(t: _Table, names: _Names, layout: str) -> ScheduleInput:
    clusters = _check_clusters(t, names.cluster)
    _check_difficulties(t, names.difficulty)
    if t.offsets is not None:  # one row per question
        lengths = np.diff(t.offsets)
        i = _first(lengths == 0)
        if i >= 0:
            raise InputError(
                f"{t.path}, {t.row_name(i)}, column {names.difficulty!r}: the question has no "
                "steps; give it its step difficulties or drop the row"
            )
        ids = _ids(t, names.id, unique=True)
        return ScheduleInput(t.values, t.offsets, clusters, ids, "questions")
    # one row per step: group by question id, questions in order of first appearance
    if t.ids is None:
        raise InputError(
            f"{t.path}: one row per step needs a question id column ('question_id' or 'id'; "
            f"the columns are {', '.join(map(repr, t.columns))}); pass --id-column NAME, "
            "or give one row per question with a list of difficulties"
        )
    ids = _ids(t, names.id, unique=False)
    uniq, first, inverse = np.unique(ids, return_index=True, return_inverse=True)
    inverse = inverse.reshape(-1)
    rank = np.empty(uniq.shape[0], dtype=np.int64)
    rank[np.argsort(first, kind="stable")] = np.arange(uniq.shape[0])
    q = rank[inverse]  # question number (first-appearance order) of every row
    order = np.lexsort((t.step, q)) if t.step is not None else np.argsort(q, kind="stable")
    qs = q[order]
    if t.step is not None:
        st = t.step[order]
        dup = (qs[1:] == qs[:-1]) & (st[1:] == st[:-1])
        k = _first(dup)
        if k >= 0:
            a, b = sorted((int(order[k]), int(order[k + 1])))
            raise InputError(
                f"{t.path}, {t.row_name(b)}, column {names.step!r}: question {ids[b]!r} has "
                f"step {int(st[k])} twice (also at {t.row_name(a)}); give each step its own index"
            )
    n = uniq.shape[0]
    counts = np.bincount(q, minlength=n)
    offsets = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(counts, out=offsets[1:])
    head = order[offsets[:-1]]  # the first row of each question (in step order)
    qc = clusters[head]
    diff_c = clusters[order] != qc[qs]
    k = _first(diff_c)
    if k >= 0:
        r = int(order[k])
        raise InputError(
            f"{t.path}, {t.row_name(r)}, column {names.cluster!r}: cluster {int(clusters[r])} "
            f"but question {ids[r]!r} has cluster {int(qc[qs[k]])} at "
            f"{t.row_name(int(head[qs[k]]))}; a question has one cluster"
        )
    qids = ids[np.sort(first)]
    return ScheduleInput(
        np.ascontiguousarray(t.values[order]), offsets, np.ascontiguousarray(qc), qids, "steps"
    )


def read_schedule_input(
    path: str | Path,
    *,
    format: str = "auto",
    layout: str = "auto",
    id_column: str | None = None,
    cluster_column: str = "cluster",
    difficulty_column: str = "step_difficulty",
    step_column: str | None = None,
) -> ScheduleInput:
    """Reads and validates a table of questions, step difficulties and cluster ids.

    Raises:
        InputError: the file, row and column of the first problem, and how to fix it.
        FileNotFoundError: ``path`` does not exist.
    """
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"{p}: no such file or folder")
    fmt = detect_input_format(p) if format == "auto" else format
    if fmt not in INPUT_FORMATS:
        raise InputError(f"{p}: unknown format {fmt!r}; use one of {', '.join(INPUT_FORMATS)}")
    if layout not in ("auto", "questions", "steps"):
        raise InputError(f"layout must be auto, questions or steps, got {layout!r}")
    names = _Names(id_column or None, cluster_column, difficulty_column, step_column, layout)
    if fmt == "jsonl":
        table = _read_jsonl(p, names)
    elif fmt == "csv":
        table = _read_csv(p, names)
    elif fmt == "npz":
        table = _read_npz(p, names)
    else:
        table = _read_arrow_like(p, fmt, names)
    resolved = _resolve_names(p, table.columns, names)
    if table.n_rows == 0:
        raise InputError(f"{p}: no rows; the table needs at least one question")
    return _assemble(table, resolved, "questions" if table.offsets is not None else "steps")


# ----------------------------------------------------------------------------- output


def given_dtype(max_steps: int) -> np.dtype:
    """The smallest unsigned dtype that holds every given-step count."""
    return np.dtype(np.min_scalar_type(max(int(max_steps), 1)))


def _npy_header(fh: Any, dtype: np.dtype, shape: tuple[int, ...], fortran: bool) -> None:
    np.lib.format.write_array_header_2_0(
        fh, {"descr": np.lib.format.dtype_to_descr(dtype), "fortran_order": fortran, "shape": shape}
    )


def _load_part(part: Path) -> np.ndarray:
    return np.load(part, mmap_mode="r")


def _write_npz(
    path: Path, ids: np.ndarray, parts: Sequence[Path], dtype: np.dtype, long: bool
) -> None:
    n, s = ids.shape[0], len(parts)
    id_arr = ids if ids.dtype != object else ids.astype(str)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED, allowZip64=True) as zf:
        if not long:
            with zf.open("question_id.npy", "w", force_zip64=True) as fh:
                np.lib.format.write_array(fh, id_arr)
            with zf.open("stage.npy", "w", force_zip64=True) as fh:
                np.lib.format.write_array(fh, np.arange(s, dtype=np.int64))
            with zf.open("given_steps.npy", "w", force_zip64=True) as fh:
                _npy_header(fh, dtype, (n, s), fortran=True)  # column t = stage t
                for part in parts:
                    fh.write(np.ascontiguousarray(_load_part(part)).tobytes())
            return
        with zf.open("question_id.npy", "w", force_zip64=True) as fh:
            _npy_header(fh, id_arr.dtype, (n * s,), fortran=False)
            block = id_arr.tobytes()
            for _ in range(s):
                fh.write(block)
        with zf.open("stage.npy", "w", force_zip64=True) as fh:
            _npy_header(fh, np.dtype(np.int64), (n * s,), fortran=False)
            for t in range(s):
                fh.write(np.full(n, t, dtype=np.int64).tobytes())
        with zf.open("given_steps.npy", "w", force_zip64=True) as fh:
            _npy_header(fh, dtype, (n * s,), fortran=False)
            for part in parts:
                fh.write(np.ascontiguousarray(_load_part(part)).tobytes())


def _write_parquet(
    path: Path, ids: np.ndarray, parts: Sequence[Path], long: bool, chunk: int
) -> None:
    pa = _pyarrow(path)
    import pyarrow.parquet as pq

    n = ids.shape[0]
    id_col = pa.array(ids if ids.dtype != object else ids.astype(str))
    tmp = path.with_name(path.name + ".tmp")
    writer = None
    try:
        if long:
            for t, part in enumerate(parts):
                table = pa.table(
                    {
                        "question_id": id_col,
                        "stage": pa.array(np.full(n, t, dtype=np.int32)),
                        "given_steps": pa.array(np.asarray(_load_part(part))),
                    }
                )
                if writer is None:
                    writer = pq.ParquetWriter(tmp, table.schema)
                writer.write_table(table)
        else:
            maps = [_load_part(p) for p in parts]
            for lo in range(0, n, chunk):
                hi = min(n, lo + chunk)
                cols = {"question_id": id_col.slice(lo, hi - lo)}
                for t, m in enumerate(maps):
                    cols[f"stage_{t}"] = pa.array(np.asarray(m[lo:hi]))
                table = pa.table(cols)
                if writer is None:
                    writer = pq.ParquetWriter(tmp, table.schema)
                writer.write_table(table)
    finally:
        if writer is not None:
            writer.close()
    tmp.replace(path)


def _write_jsonl(
    path: Path, ids: np.ndarray, parts: Sequence[Path], long: bool, chunk: int
) -> None:
    n = ids.shape[0]
    maps = [_load_part(p) for p in parts]
    with path.open("w", encoding="utf-8") as fh:
        if long:
            for t, m in enumerate(maps):
                for lo in range(0, n, chunk):
                    hi = min(n, lo + chunk)
                    fh.writelines(
                        json.dumps({"question_id": q, "stage": t, "given_steps": c}) + "\n"
                        for q, c in zip(ids[lo:hi].tolist(), m[lo:hi].tolist(), strict=True)
                    )
            return
        for lo in range(0, n, chunk):
            hi = min(n, lo + chunk)
            block = np.stack([np.asarray(m[lo:hi]) for m in maps], axis=1).tolist()
            fh.writelines(
                json.dumps({"question_id": q, "given_steps": c}) + "\n"
                for q, c in zip(ids[lo:hi].tolist(), block, strict=True)
            )


def write_given_steps(
    path: str | Path,
    question_ids: np.ndarray,
    parts: Sequence[Path],
    *,
    dtype: np.dtype,
    long: bool = False,
    chunk: int = 1 << 20,
) -> None:
    """Writes stages 0..len(parts)-1 (one ``.npy`` part each) to ``path`` (format by suffix)."""
    p = Path(path)
    fmt = output_format(p)
    if fmt == "npz":
        tmp = p.with_name(p.name + ".tmp")
        _write_npz(tmp, question_ids, parts, dtype, long)
        tmp.replace(p)
    elif fmt == "parquet":
        _write_parquet(p, question_ids, parts, long, chunk)
    else:
        tmp = p.with_name(p.name + ".tmp")
        _write_jsonl(tmp, question_ids, parts, long, min(chunk, 1 << 16))
        tmp.replace(p)
