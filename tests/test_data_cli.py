"""`kpod data inspect | prepare | splits`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kpod.cli import main

EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "data"
GOOD = {
    "question": "Tom has 3 apples and buys 4. How many?",
    "rationale": "He has 3.\n3 + 4 = 7.\nTherefore, the answer is 7.",
    "answer": "7",
}


@pytest.fixture(scope="module")
def tok_dir(tmp_path_factory):
    from kpod.testing import tiny_causal_lm, tiny_tokenizer

    path = tmp_path_factory.mktemp("tok")
    tok = tiny_tokenizer()
    tok.save_pretrained(path)
    tiny_causal_lm(tok).save_pretrained(path)  # for --clusters (input embeddings)
    return path


def test_inspect_records(capsys):
    assert main(["data", "inspect", str(EXAMPLES / "gsm8k_train.jsonl"), "--limit", "50"]) == 0
    out = capsys.readouterr().out
    assert "format                   gsm8k" in out
    assert "records                  50" in out
    assert "steps per rationale" in out and "answer agreement" in out
    assert "[0] Natalia sold 48/2 = 24 clips in May." in out


def test_inspect_json_with_tokenizer(capsys, tok_dir):
    assert (
        main(
            [
                "data",
                "inspect",
                str(EXAMPLES / "gsm8k_train.jsonl"),
                "--limit",
                "20",
                "--tokenizer",
                str(tok_dir),
                "--json",
            ]
        )
        == 0
    )
    summary = json.loads(capsys.readouterr().out)
    assert summary["records"] == 20 and summary["tokens_per_step"]["min"] >= 1
    assert summary["answer_agreement"]["total"] == 20


def test_prepare_and_inspect_prepared(tmp_path, capsys, tok_dir):
    import datasets

    out = tmp_path / "prepared"
    argv = [
        "data",
        "prepare",
        str(EXAMPLES / "gsm8k_train.jsonl"),
        "--tokenizer",
        str(tok_dir),
        "--out",
        str(out),
        "--limit",
        "30",
    ]
    assert main(argv) == 0
    ds = datasets.load_from_disk(str(out))
    assert len(ds) == 30
    assert ds.column_names[:9] == [
        "id",
        "question",
        "rationale",
        "answer",
        "steps",
        "n_steps",
        "input_ids",
        "step_ids",
        "answer_mask",
    ]
    meta = json.loads((out / "kpod_prepare.json").read_text())
    assert (
        meta["filter_policy"] == "off" and meta["examples"] == 30
    )  # human GSM8K solutions are gold
    assert main(argv) == 1  # refuses to overwrite
    assert "exists" in capsys.readouterr().err
    assert main([*argv, "--overwrite", "--clusters", "3", "--filter", "drop"]) == 0
    ds = datasets.load_from_disk(str(out))
    assert set(ds["cluster"]) == {0, 1, 2}
    meta = json.loads((out / "kpod_prepare.json").read_text())
    assert meta["filter"]["kept"] == len(ds) and meta["filter"]["dropped"] == 30 - len(ds)
    capsys.readouterr()
    assert main(["data", "inspect", str(out)]) == 0
    text = capsys.readouterr().out
    assert "kind                     prepared" in text and "tokens per step" in text


def test_prepare_skip_invalid_writes_report(tmp_path, capsys, tok_dir):
    src = tmp_path / "mixed.jsonl"
    rows = [
        {**GOOD, "id": "a"},
        {**GOOD, "id": "b", "rationale": ""},
        {**GOOD, "id": "c", "answer": ""},
        {**GOOD, "id": "a"},
    ]
    src.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    out = tmp_path / "p"
    assert main(["data", "prepare", str(src), "--tokenizer", str(tok_dir), "--out", str(out)]) == 1
    err = capsys.readouterr().err
    assert "mixed.jsonl, line 2, field 'rationale': empty" in err
    report = tmp_path / "skipped.jsonl"
    assert (
        main(
            [
                "data",
                "prepare",
                str(src),
                "--tokenizer",
                str(tok_dir),
                "--out",
                str(out),
                "--skip-invalid",
                "--report",
                str(report),
            ]
        )
        == 0
    )
    skipped = [json.loads(x) for x in report.read_text().splitlines()]
    assert [(s["location"], s["field"]) for s in skipped] == [
        ("line 2", "rationale"),
        ("line 3", "answer"),
        ("line 4", "id"),
    ]
    assert "skipped 3 invalid record(s)" in capsys.readouterr().err


def test_splits_command(tmp_path, capsys):
    root = tmp_path / "data"
    (root / "gsm8k").mkdir(parents=True)
    (root / "mcc-kd-splits").mkdir()
    line = json.dumps({"question": "q?", "answer": "1 + 1 = 2.\n#### 2"}) + "\n"
    (root / "gsm8k" / "train.jsonl").write_text(line)
    (root / "gsm8k" / "test.jsonl").write_text(line.replace("q?", "r?") + line.replace("q?", "s?"))
    (root / "mcc-kd-splits" / "split_ids.json").write_text(
        json.dumps({"gsm8k": {"dev": [1], "test": [0]}})
    )
    assert (
        main(["data", "splits", "gsm8k", "--data-root", str(root), "--out", str(tmp_path / "out")])
        == 0
    )
    out = capsys.readouterr().out
    assert "gsm8k  dev" in out and (tmp_path / "out" / "gsm8k_dev.jsonl").is_file()
    assert json.loads((tmp_path / "out" / "gsm8k_dev.jsonl").read_text())["question"] == "s?"
    assert main(["data", "splits", "gsm8k", "--data-root", str(tmp_path / "none")]) == 1
