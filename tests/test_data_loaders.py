"""Loading every supported format into the record schema, and bad input."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from kpod.data import InvalidRecordError, SkipReport, detect_format, load_records, read_records

HERE = Path(__file__).resolve().parent
FMT = HERE / "data" / "formats"
EXAMPLES = HERE.parent / "examples" / "data"


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


GOOD = {
    "question": "Tom has 3 apples and buys 4. How many?",
    "rationale": "3 + 4 = 7 apples.",
    "answer": "7",
}


# ----------------------------------------------------------------------------- formats


def test_detect_format():
    assert detect_format(EXAMPLES / "gsm8k_train.jsonl") == "gsm8k"
    assert detect_format(EXAMPLES / "svamp_test.json") == "svamp"
    assert detect_format(FMT / "cqa_test.json") == "csqa"
    assert detect_format(FMT / "mcc_kd_synthetic.json") == "mcc-kd"
    assert detect_format(FMT / "asdiv_synthetic.xml") == "asdiv"
    assert detect_format(FMT / "palm_cqa") == "dss-palm"


def test_svamp():
    recs = list(read_records(EXAMPLES / "svamp_test.json"))
    assert len(recs) == 50
    raw = json.loads((EXAMPLES / "svamp_test.json").read_text(encoding="utf-8"))[0]
    assert recs[0]["id"] == raw["ID"]
    assert recs[0]["question"] == f"{raw['Body'].strip()} {raw['Question'].strip()}"
    assert (
        recs[0]["answer"] == str(int(raw["Answer"]))
        if raw["Answer"] == int(raw["Answer"])
        else True
    )
    assert all(r["rationale"] == "" for r in recs)


def test_csqa_answer_becomes_letter():
    recs = list(read_records(FMT / "cqa_test.json"))
    assert [r["answer"] for r in recs] == ["C", "A", "C"]
    assert recs[0]["choices"][2] == "wooded area"
    assert recs[0]["id"] == "080ef6941410139d6869e78122bc741e"


def test_dss_palm_cqa_folder_in_batch_order():
    recs = list(read_records(FMT / "palm_cqa", split="test", source=FMT / "cqa_test.json"))
    assert len(recs) == 3
    assert recs[0]["rationale"] == (
        "The answer must be the place where beavers get their supplies. Of the above choices, "
        "only wooded areas have the supplies that beavers need. So the answer is (c) wooded area."
    )
    assert recs[1]["rationale"].startswith("The answer must be the place where the opera house is.")
    assert "Q:" not in "".join(r["rationale"] for r in recs)
    assert [r["answer"] for r in recs] == ["C", "A", "C"]


def test_dss_palm_svamp_evaluates_equation_labels():
    recs = list(
        read_records(
            FMT / "palm_svamp" / "test_CoT_0.json",
            format="dss-palm",
            source=FMT / "dss_svamp_test.jsonl",
        )
    )
    assert [r["answer"] for r in recs] == ["450", "1", "22"]
    assert recs[0]["rationale"].endswith("The answer is (10 * 45).")


def test_dss_palm_needs_source_and_matching_counts(tmp_path):
    with pytest.raises(ValueError, match="source"):
        list(read_records(FMT / "palm_svamp" / "test_CoT_0.json", format="dss-palm"))
    short = write_jsonl(tmp_path / "s.jsonl", [{"input": "q?", "label": "1"}])
    with pytest.raises(ValueError, match="3 completions but 1 records"):
        list(read_records(FMT / "palm_svamp" / "test_CoT_0.json", format="dss-palm", source=short))


def test_mcc_kd_multi_rationales_and_choices():
    recs = list(read_records(FMT / "mcc_kd_synthetic.json", require_rationale=False))
    assert [r["id"] for r in recs] == [
        "mcc_kd_synthetic-0-0",
        "mcc_kd_synthetic-0-1",
        "mcc_kd_synthetic-1",
        "mcc_kd_synthetic-2",
    ]
    assert recs[0]["question"] == "Tom has 3 apples and buys 4 more. How many apples does he have?"
    assert recs[3]["question"] == "Where do you keep milk cold?"
    assert recs[3]["choices"] == ["oven", "fridge", "shelf", "car", "desk"]
    assert recs[3]["answer"] == "B"
    first = list(
        read_records(FMT / "mcc_kd_synthetic.json", require_rationale=False, multi="first")
    )
    assert [r["id"] for r in first] == [
        "mcc_kd_synthetic-0-0",
        "mcc_kd_synthetic-1",
        "mcc_kd_synthetic-2",
    ]


def test_mcc_kd_empty_rationale_is_an_error_for_training():
    with pytest.raises(InvalidRecordError, match=r"record index 2, field 'rationale': empty"):
        list(read_records(FMT / "mcc_kd_synthetic.json"))


def test_asdiv_strips_units():
    recs = list(read_records(FMT / "asdiv_synthetic.xml"))
    assert [(r["id"], r["answer"]) for r in recs] == [("nluds-9001", "8"), ("nluds-9002", "7")]
    assert recs[1]["question"] == "A box holds 12 eggs. Ben uses 5 eggs. How many eggs are left?"


@pytest.mark.parametrize("kind", ["jsonl", "json", "csv", "parquet"])
def test_generic_formats_with_column_mapping(tmp_path, kind):
    rows = [
        {"uid": "a", "input": "Q one?", "output": "Step one. Step two.", "label": "5"},
        {"uid": "b", "input": "Q two?", "output": "Only step.", "label": "6"},
    ]
    path = tmp_path / f"data.{kind}"
    if kind == "jsonl":
        write_jsonl(path, rows)
    elif kind == "json":
        path.write_text(json.dumps(rows), encoding="utf-8")
    elif kind == "csv":
        with path.open("w", newline="", encoding="utf-8") as fh:
            w = csv.DictWriter(fh, fieldnames=list(rows[0]))
            w.writeheader()
            w.writerows(rows)
    else:
        import pyarrow as pa
        import pyarrow.parquet as pq

        pq.write_table(pa.Table.from_pylist(rows), path)
    cols = {"id": "uid", "question": "input", "rationale": "output", "answer": "label"}
    recs = list(read_records(path, columns=cols))
    assert [(r["id"], r["question"], r["rationale"], r["answer"]) for r in recs] == [
        ("a", "Q one?", "Step one. Step two.", "5"),
        ("b", "Q two?", "Only step.", "6"),
    ]


def test_generic_unknown_column_names_the_columns_present(tmp_path):
    path = write_jsonl(tmp_path / "d.jsonl", [{"q": "x?", "r": "y.", "a": "1"}])
    with pytest.raises(
        InvalidRecordError, match=r"line 1, field 'inp': column not found .*\['a', 'q', 'r'\]"
    ):
        list(read_records(path, columns={"question": "inp"}))


def test_generic_list_of_rationales_expands(tmp_path):
    path = write_jsonl(
        tmp_path / "d.jsonl",
        [{"id": "q1", "question": "x?", "rationale": ["a.", "b."], "answer": "1"}],
    )
    assert [r["id"] for r in read_records(path)] == ["q1-0", "q1-1"]
    assert [r["id"] for r in read_records(path, multi="first")] == ["q1-0"]


def test_load_records_dataset_and_arrow_cache(tmp_path):
    ds = load_records(EXAMPLES / "gsm8k_train.jsonl")
    assert len(ds) == 200 and ds.column_names == [
        "id",
        "question",
        "rationale",
        "answer",
        "choices",
    ]
    cached = load_records(EXAMPLES / "gsm8k_train.jsonl", cache_dir=tmp_path / "cache")
    assert cached["id"] == ds["id"] and cached.cache_files  # memory-mapped Arrow on disk


def test_load_records_error_passes_through_arrow_writer(tmp_path):
    path = write_jsonl(tmp_path / "d.jsonl", [GOOD, {**GOOD, "answer": None}])
    with pytest.raises(InvalidRecordError, match="line 2, field 'answer'"):
        load_records(path, cache_dir=tmp_path / "cache")


# ----------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    ("bad", "match"),
    [
        ({**GOOD, "rationale": "   "}, r"line 2, field 'rationale': empty"),
        (
            {**GOOD, "rationale": "Therefore, the answer is 7."},
            r"line 2, field 'rationale': has zero steps",
        ),
        ({**GOOD, "rationale": "--- ..."}, r"line 2, field 'rationale': has zero steps"),
        ({k: v for k, v in GOOD.items() if k != "answer"}, r"line 2, field 'answer': missing"),
        ({**GOOD, "answer": " "}, r"line 2, field 'answer': missing"),
        ({**GOOD, "question": ""}, r"line 2, field 'question': empty"),
        ({**GOOD, "question": 12}, r"line 2, field 'question': expected a string, got int"),
        (
            {**GOOD, "choices": ["a", "b"], "answer": "C"},
            r"line 2, field 'answer': 'C' is not a choice letter A-B",
        ),
    ],
)
def test_bad_record_names_file_line_and_field(tmp_path, bad, match):
    path = write_jsonl(tmp_path / "bad.jsonl", [{**GOOD, "id": "1"}, {**bad, "id": "2"}])
    with pytest.raises(InvalidRecordError, match=match) as info:
        list(read_records(path, format="jsonl"))
    assert str(path) in str(info.value)


def test_non_utf8_bytes(tmp_path):
    path = tmp_path / "latin1.jsonl"
    good = json.dumps({**GOOD, "id": "1"}).encode()
    bad = json.dumps(
        {**GOOD, "id": "2", "question": "Caf\u00e9 costs?"}, ensure_ascii=False
    ).encode("latin-1")
    path.write_bytes(good + b"\n" + bad + b"\n")
    with pytest.raises(
        InvalidRecordError, match=r"latin1.jsonl, line 2: not valid UTF-8 \(byte 0xe9 .*iconv"
    ):
        list(read_records(path))
    report = SkipReport()
    recs = list(read_records(path, skip_invalid=True, report=report))
    assert [r["id"] for r in recs] == ["1"]
    assert report.skipped[0].location == "line 2" and "UTF-8" in report.skipped[0].reason
    whole = tmp_path / "latin1.json"
    whole.write_bytes(b"[\n" + good + b",\n" + bad + b"\n]")
    with pytest.raises(InvalidRecordError, match=r"latin1.json, line 3: not valid UTF-8"):
        list(read_records(whole))


def test_duplicate_ids(tmp_path):
    path = write_jsonl(
        tmp_path / "dup.jsonl", [{**GOOD, "id": "x"}, {**GOOD, "id": "y"}, {**GOOD, "id": "x"}]
    )
    with pytest.raises(
        InvalidRecordError, match=r"line 3, field 'id': duplicate id 'x' \(first at line 1\)"
    ):
        list(read_records(path))
    report = SkipReport()
    assert [r["id"] for r in read_records(path, skip_invalid=True, report=report)] == ["x", "y"]
    assert report.counts() == {"id: duplicate id 'x' (first at line 1)": 1}


def test_invalid_json_line_and_non_object(tmp_path):
    path = tmp_path / "broken.jsonl"
    path.write_text(json.dumps(GOOD) + "\n{oops\n[1, 2]\n", encoding="utf-8")
    with pytest.raises(InvalidRecordError, match=r"line 2: invalid JSON"):
        list(read_records(path))
    report = SkipReport()
    assert len(list(read_records(path, skip_invalid=True, report=report))) == 1
    assert [s.location for s in report.skipped] == ["line 2", "line 3"]


def test_skip_invalid_reports_every_dropped_record(tmp_path):
    rows = [
        {**GOOD, "id": "ok1"},
        {**GOOD, "id": "empty", "rationale": ""},
        {**GOOD, "id": "nosteps", "rationale": "So the answer is 7."},
        {**GOOD, "id": "noanswer", "answer": None},
        {**GOOD, "id": "ok1"},
        {**GOOD, "id": "ok2"},
    ]
    path = write_jsonl(tmp_path / "mixed.jsonl", rows)
    report = SkipReport()
    recs = list(read_records(path, skip_invalid=True, report=report))
    assert [r["id"] for r in recs] == ["ok1", "ok2"]
    assert len(recs) + len(report) == len(rows)
    assert [(s.location, s.field) for s in report.skipped] == [
        ("line 2", "rationale"),
        ("line 3", "rationale"),
        ("line 4", "answer"),
        ("line 5", "id"),
    ]
    out = report.write(tmp_path / "skipped.jsonl")
    lines = [json.loads(x) for x in out.read_text(encoding="utf-8").splitlines()]
    assert lines[0] == {
        "source": str(path),
        "location": "line 2",
        "field": "rationale",
        "reason": "empty",
    }
    assert "skipped 4 invalid record(s)" in report.summary()


def test_missing_file_and_unknown_format(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"nope\.jsonl"):
        list(read_records(tmp_path / "nope.jsonl"))
    path = write_jsonl(tmp_path / "d.jsonl", [GOOD])
    with pytest.raises(ValueError, match="unknown format 'yaml'"):
        list(read_records(path, format="yaml"))
