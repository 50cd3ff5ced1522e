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
"""

from __future__ import annotations

import ast
import csv
import io
import json
import operator
import re
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from kpod.data.answers import format_number
from kpod.data.schema import (
    LETTERS,
    InvalidRecordError,
    Record,
    SkipReport,
    check_unique_ids,
    validate_record,
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
_UTF8_HINT = "re-encode the file as UTF-8, e.g. `iconv -f latin1 -t utf-8 IN > OUT`"

Located = tuple[str, Record]  # (location, raw record)


# ----------------------------------------------------------------------------- readers


def _decode_error(
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


def _read_text(path: Path) -> str:
    data = path.read_bytes()
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise _decode_error(str(path), data, err) from None


def _iter_jsonl(path: Path) -> Iterator[Located | InvalidRecordError]:
    """Yield ``(\"line N\", obj)`` per non-blank line, or the error for a bad line."""
    source = str(path)
    with path.open("rb") as fh:
        for n, raw in enumerate(fh, start=1):
            loc = f"line {n}"
            try:
                line = raw.decode("utf-8-sig" if n == 1 else "utf-8")
            except UnicodeDecodeError as err:
                yield _decode_error(source, raw, err, line=n)
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


def _load_json_any(path: Path) -> tuple[str, Any]:
    """(\"json\" | \"jsonl\", parsed) for a .json file that may really be JSON Lines."""
    text = _read_text(path)
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


def _iter_json_array(path: Path, key: str | None = None) -> Iterator[Located | InvalidRecordError]:
    kind, data = _load_json_any(path)
    if kind == "jsonl":
        yield from _iter_jsonl(path)
        return
    if isinstance(data, dict) and key and isinstance(data.get(key), list):
        data = data[key]
    elif isinstance(data, dict):  # one object: a single-line JSON Lines file
        yield from _iter_jsonl(path)
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


def _iter_csv(path: Path) -> Iterator[Located | InvalidRecordError]:
    text = _read_text(path)
    reader = csv.DictReader(io.StringIO(text, newline=""))
    for row in reader:
        yield f"line {reader.line_num}", dict(row)


def _iter_parquet(path: Path) -> Iterator[Located | InvalidRecordError]:
    import pyarrow.parquet as pq

    pf = pq.ParquetFile(str(path))
    i = 0
    for batch in pf.iter_batches(batch_size=4096):
        for obj in batch.to_pylist():
            yield f"row {i}", obj
            i += 1


# ----------------------------------------------------------------------------- adapters

_CALC = re.compile(r"<<[^<>]*>>")
_GSM_FINAL = re.compile(r"\n?\s*####\s*(.*?)\s*$", re.DOTALL)


def clean_gsm8k_solution(solution: str) -> tuple[str, str | None]:
    """``(rationale, answer)`` from a GSM8K solution: ``<<...>>`` removed, ``#### N`` split off."""
    m = _GSM_FINAL.search(solution)
    answer = None
    if m is not None:
        answer = m.group(1).replace(",", "").strip()
        solution = solution[: m.start()]
    return _CALC.sub("", solution).strip(), answer


def _gsm8k(path: Path, stem: str, **_: Any) -> Iterator[Located | InvalidRecordError]:
    for item in _iter_jsonl(path):
        if isinstance(item, InvalidRecordError):
            yield item
            continue
        loc, obj = item
        sol = obj.get("answer")
        if not isinstance(sol, str):
            yield InvalidRecordError(
                str(path), loc, "answer", "missing or not a string (GSM8K solution)"
            )
            continue
        rationale, answer = clean_gsm8k_solution(sol)
        if answer is None:
            yield InvalidRecordError(
                str(path), loc, "answer", "no '#### <answer>' line in the GSM8K solution"
            )
            continue
        yield (
            loc,
            {
                "id": obj.get("id") or f"gsm8k-{stem}-{int(loc.split()[1]) - 1}",
                "question": obj.get("question"),
                "rationale": rationale,
                "answer": answer,
            },
        )


_CHOICES_BLOCK = re.compile(r"\s*Answer Choices:\s*\n?(.*)$", re.DOTALL | re.IGNORECASE)
_CHOICE_LINE = re.compile(r"^\s*\(?([A-Ja-j])[.)]\s*(.*?)\s*$")


def _split_choices(instruction: str) -> tuple[str, list[str]]:
    m = _CHOICES_BLOCK.search(instruction)
    if m is None:
        return instruction.strip(), []
    choices = []
    for line in m.group(1).splitlines():
        cm = _CHOICE_LINE.match(line)
        if cm:
            choices.append(cm.group(2))
    return instruction[: m.start()].strip(), choices


def _expand(rationale: Any, multi: str) -> list[Any]:
    if isinstance(rationale, list):
        if multi == "first":
            return rationale[:1] if rationale else [""]
        return rationale if rationale else [""]
    return [rationale]


def _mcc_kd(
    path: Path, stem: str, multi: str = "all", **_: Any
) -> Iterator[Located | InvalidRecordError]:
    for i, item in enumerate(_iter_json_array(path)):
        if isinstance(item, InvalidRecordError):
            yield item
            continue
        loc, obj = item
        instr = obj.get("instruction")
        question, choices = _split_choices(instr) if isinstance(instr, str) else (instr, [])
        outputs = _expand(obj.get("output"), multi)
        for j, out in enumerate(outputs):
            suffix = f"-{j}" if len(outputs) > 1 or isinstance(obj.get("output"), list) else ""
            yield (
                (loc if len(outputs) == 1 else f"{loc}, output {j}"),
                {
                    "id": obj.get("id") or f"{stem}-{i}{suffix}",
                    "question": question,
                    "rationale": out,
                    "answer": obj.get("label"),
                    "choices": choices,
                },
            )


def _svamp(path: Path, stem: str, **_: Any) -> Iterator[Located | InvalidRecordError]:
    for item in _iter_json_array(path):
        if isinstance(item, InvalidRecordError):
            yield item
            continue
        loc, obj = item
        body, q = obj.get("Body"), obj.get("Question")
        question = f"{(body or '').strip()} {(q or '').strip()}".strip() if (body or q) else None
        yield (
            loc,
            {
                "id": obj.get("ID"),
                "question": question,
                "rationale": obj.get("rationale", ""),
                "answer": obj.get("Answer"),
            },
        )


_ASDIV_UNIT = re.compile(r"\s*\([^()]*\)\s*$")


def _asdiv(path: Path, stem: str, **_: Any) -> Iterator[Located | InvalidRecordError]:
    text = _read_text(path)
    try:
        root = ET.fromstring(text.encode("utf-8"))
    except ET.ParseError as err:
        raise InvalidRecordError(
            str(path), f"line {err.position[0]}", None, f"invalid XML ({err})"
        ) from None
    for i, prob in enumerate(root.iter("Problem")):
        pid = prob.get("ID")
        loc = f"Problem {pid}" if pid else f"Problem index {i}"
        body = (prob.findtext("Body") or "").strip()
        q = (prob.findtext("Question") or "").strip()
        ans = prob.findtext("Answer")
        yield (
            loc,
            {
                "id": pid,
                "question": f"{body} {q}".strip() or None,
                "rationale": "",
                "answer": _ASDIV_UNIT.sub("", ans).strip() if ans is not None else None,
            },
        )


def _csqa(
    path: Path, stem: str, rationale_field: str | None = None, **_: Any
) -> Iterator[Located | InvalidRecordError]:
    for item in _iter_json_array(path):
        if isinstance(item, InvalidRecordError):
            yield item
            continue
        loc, obj = item
        choices = obj.get("choices")
        answer = obj.get("answer")
        if isinstance(choices, list) and isinstance(answer, str) and answer not in LETTERS:
            if answer not in choices:
                yield InvalidRecordError(
                    str(path), loc, "answer", f"{answer!r} is not one of the choices"
                )
                continue
            answer = LETTERS[choices.index(answer)]
        yield (
            loc,
            {
                "id": obj.get("id"),
                "question": obj.get("question"),
                "rationale": obj.get(rationale_field, "") if rationale_field else "",
                "answer": answer,
                "choices": choices,
            },
        )


_OPS: dict[type, Callable[..., Any]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.USub: operator.neg,
    ast.UAdd: operator.pos,
}


def _eval_arith(expr: str) -> float:
    """Evaluate +-*/ arithmetic safely (SVAMP equations such as ``( 84.0 / 2.0 )``)."""

    def ev(node: ast.AST) -> float:
        if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)):
            return float(node.value)
        if isinstance(node, ast.BinOp) and type(node.op) in _OPS:
            return float(_OPS[type(node.op)](ev(node.left), ev(node.right)))
        if isinstance(node, ast.UnaryOp) and type(node.op) in _OPS:
            return float(_OPS[type(node.op)](ev(node.operand)))
        raise ValueError(f"unsupported expression {expr!r}")

    return ev(ast.parse(expr.strip(), mode="eval").body)


def _palm_files(path: Path) -> list[Path]:
    if path.is_dir():
        files = list(path.glob("*_CoT_*.json"))
    else:
        files = [path]
    return sorted(
        files,
        key=lambda p: (
            p.name.split("_CoT_")[0],
            int(re.sub(r"\D", "", p.stem.split("_CoT_")[-1]) or 0),
        ),
    )


def _dss_palm(
    path: Path, stem: str, source: str | Path | None = None, split: str | None = None, **_: Any
) -> Iterator[Located | InvalidRecordError]:
    """``path``: one ``*_CoT_*.json`` file, or the ``llm`` folder with ``split`` (``train``/``test``)."""
    if source is None:
        raise ValueError(
            f"{path}: format 'dss-palm' needs source=... (the question file the completions align with)"
        )
    files = _palm_files(path)
    if path.is_dir():
        if split is None:
            raise ValueError(f"{path}: a dss-palm folder needs split='train' or 'test'")
        files = [f for f in files if f.name.startswith(f"{split}_CoT_")]
    if not files:
        raise FileNotFoundError(f"{path}: no *_CoT_*.json completion files found")
    completions: list[tuple[str, str]] = []
    for f in files:
        kind, data = _load_json_any(f)
        if kind != "json" or not isinstance(data, list):
            raise InvalidRecordError(
                str(f), "top level", None, "expected a JSON array of completion strings"
            )
        completions += [(f"{f.name} index {k}", c) for k, c in enumerate(data)]
    src = Path(source)
    src_items = list(_iter_json_array(src))
    if len(src_items) != len(completions):
        raise ValueError(
            f"{path}: {len(completions)} completions but {len(src_items)} records in {src}; "
            "pass all batch files of one split, in order"
        )
    for idx, ((cloc, comp), item) in enumerate(zip(completions, src_items, strict=True)):
        if isinstance(item, InvalidRecordError):
            yield item
            continue
        loc, obj = item
        location = f"{cloc} ({src.name} {loc})"
        if not isinstance(comp, str):
            yield InvalidRecordError(str(path), location, "rationale", "completion is not a string")
            continue
        rationale = re.split(r"\n\s*Q:", comp, maxsplit=1)[0].strip()
        if "choices" in obj:  # CommonsenseQA
            choices, answer = obj.get("choices"), obj.get("answer")
            if isinstance(choices, list) and answer in choices:
                answer = LETTERS[choices.index(answer)]
            yield (
                location,
                {
                    "id": obj.get("id"),
                    "question": obj.get("question"),
                    "rationale": rationale,
                    "answer": answer,
                    "choices": choices,
                },
            )
        else:  # DSS SVAMP {"input", "label": equation}
            label = obj.get("label")
            try:
                answer = format_number(_eval_arith(label)) if isinstance(label, str) else label
            except (ValueError, SyntaxError, ZeroDivisionError):
                yield InvalidRecordError(
                    str(src), loc, "label", f"cannot evaluate equation {label!r}"
                )
                continue
            yield (
                location,
                {
                    "id": obj.get("id") or f"{src.stem}-{idx}",
                    "question": obj.get("input"),
                    "rationale": rationale,
                    "answer": answer,
                },
            )


def _generic(
    path: Path,
    stem: str,
    fmt: str = "jsonl",
    columns: Mapping[str, str] | None = None,
    multi: str = "all",
    **_: Any,
) -> Iterator[Located | InvalidRecordError]:
    mapping = {k: k for k in ("id", "question", "rationale", "answer", "choices")}
    if columns:
        unknown = set(columns) - set(mapping)
        if unknown:
            raise ValueError(
                f"columns: unknown schema field(s) {sorted(unknown)}; use {sorted(mapping)}"
            )
        mapping.update(columns)
    readers = {
        "jsonl": _iter_jsonl,
        "json": _iter_json_array,
        "csv": _iter_csv,
        "parquet": _iter_parquet,
    }
    for i, item in enumerate(readers[fmt](path)):
        if isinstance(item, InvalidRecordError):
            yield item
            continue
        loc, obj = item
        if i == 0 and columns:
            missing = [c for f, c in columns.items() if c not in obj]
            if missing:
                raise InvalidRecordError(
                    str(path),
                    loc,
                    missing[0],
                    "column not found",
                    f"columns present: {sorted(obj)}",
                )
        choices = obj.get(mapping["choices"])
        if isinstance(choices, str) and fmt == "csv":
            choices = (
                json.loads(choices)
                if choices.strip().startswith("[")
                else [c for c in choices.split("|") if c]
            )
        rationales = _expand(obj.get(mapping["rationale"]), multi)
        for j, r in enumerate(rationales):
            rid = obj.get(mapping["id"])
            if rid is None or rid == "":
                rid = f"{stem}-{i}"
            elif not isinstance(rid, str):
                rid = str(rid)
            if isinstance(obj.get(mapping["rationale"]), list):
                rid = f"{rid}-{j}"
            yield (
                (loc if len(rationales) == 1 else f"{loc}, rationale {j}"),
                {
                    "id": rid,
                    "question": obj.get(mapping["question"]),
                    "rationale": r,
                    "answer": obj.get(mapping["answer"]),
                    "choices": choices,
                },
            )


_ADAPTERS: dict[str, Callable[..., Iterator[Located | InvalidRecordError]]] = {
    "gsm8k": _gsm8k,
    "mcc-kd": _mcc_kd,
    "dss-palm": _dss_palm,
    "svamp": _svamp,
    "asdiv": _asdiv,
    "csqa": _csqa,
}


def _first_object(path: Path) -> dict[str, Any] | None:
    with path.open("rb") as fh:
        head = fh.read(1 << 16).decode("utf-8", errors="replace").lstrip("\ufeff \t\r\n")
    if head.startswith("["):
        m = re.match(r"\[\s*(\{.*?\})\s*[,\]]", head, re.DOTALL)
        if m:
            try:
                obj = json.loads(m.group(1))
                return obj if isinstance(obj, dict) else None
            except json.JSONDecodeError:
                return None
        return None
    first = head.split("\n", 1)[0]
    try:
        obj = json.loads(first)
    except json.JSONDecodeError:
        return None
    return obj if isinstance(obj, dict) else None


def detect_format(path: str | Path) -> str:
    """Guess the format of ``path`` from its name and first record (see the module docstring)."""
    p = Path(path)
    suffix = p.suffix.lower()
    if p.is_dir() or "_CoT_" in p.name:
        return "dss-palm"
    if suffix == ".xml":
        return "asdiv"
    if suffix == ".csv":
        return "csv"
    if suffix in (".parquet", ".pq"):
        return "parquet"
    obj = _first_object(p)
    if obj is not None:
        keys = set(obj)
        if {"instruction", "output", "label"} <= keys:
            return "mcc-kd"
        if {"Body", "Question", "Answer"} <= keys:
            return "svamp"
        if (
            {"question", "answer"} <= keys
            and "rationale" not in keys
            and isinstance(obj.get("answer"), str)
        ):
            if "####" in obj["answer"]:
                return "gsm8k"
            if isinstance(obj.get("choices"), list):
                return "csqa"
    return "jsonl" if suffix in (".jsonl", ".ndjson") else "json"


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
    return _generic(p, stem, fmt=fmt, **options)


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
