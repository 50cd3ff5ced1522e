"""`kpod schedule`: tables in, the curriculum's given steps and stage summary out."""

from __future__ import annotations

import csv
import importlib.util
import json
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import kpod
from kpod.cli import main
from kpod.schedule_io import read_schedule_input

HAS_PYARROW = importlib.util.find_spec("pyarrow") is not None
STAGES = 4
OPTS = ["--stages", str(STAGES), "--no-progress"]


def _questions(n: int = 60, seed: int = 0) -> list[dict[str, Any]]:
    rng = np.random.default_rng(seed)
    return [
        {
            "question_id": f"q{i}",
            "cluster": int(rng.integers(0, 4)),
            "step_difficulty": rng.random(int(rng.integers(1, 6))).round(4).tolist(),
        }
        for i in range(n)
    ]


def _write_jsonl(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def _write_steps_csv(path: Path, rows: list[dict[str, Any]], *, shuffle: bool = False) -> Path:
    """One row per step; shuffled rows keep their order through the 'step' column."""
    recs = [
        (r["question_id"], k, r["cluster"], d)
        for r in rows
        for k, d in enumerate(r["step_difficulty"])
    ]
    if shuffle:
        order = np.random.default_rng(1).permutation(len(recs))
        # questions must keep their first-appearance order: put each question's
        # first row in place, shuffle the rest behind them
        firsts = [i for i, rec in enumerate(recs) if rec[1] == 0]
        rest = [int(i) for i in order if recs[i][1] != 0]
        recs = [recs[i] for i in firsts + rest]
    with path.open("w", encoding="utf-8", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["question_id", "step", "cluster", "step_difficulty"])
        w.writerows(recs)
    return path


def _direct(rows: list[dict[str, Any]], stages: int = STAGES) -> np.ndarray:
    """Given steps at stages 0..T from kpod.Curriculum itself, shape (n, T + 1)."""
    d = np.concatenate([r["step_difficulty"] for r in rows])
    off = np.concatenate([[0], np.cumsum([len(r["step_difficulty"]) for r in rows])])
    cur = kpod.Curriculum(d, off, [r["cluster"] for r in rows], stages=stages)
    out = [cur.given_steps]
    for _ in range(stages):
        out.append(cur.advance().given_steps)
    return np.stack(out, axis=1)


def _kpod(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    rc = main(["schedule", *argv])
    cap = capsys.readouterr()
    return rc, cap.out, cap.err


def _read_wide_npz(path: Path) -> tuple[list[Any], np.ndarray]:
    with np.load(path) as z:
        return z["question_id"].tolist(), z["given_steps"]


def test_per_question_jsonl_matches_the_curriculum_and_writes_the_summary(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rows = _questions()
    src = _write_jsonl(tmp_path / "q.jsonl", rows)
    rc, out, err = _kpod([str(src), "-o", str(tmp_path / "out.npz"), *OPTS], capsys)
    assert rc == 0, err
    ids, given = _read_wide_npz(tmp_path / "out.npz")
    assert ids == [r["question_id"] for r in rows]
    np.testing.assert_array_equal(given, _direct(rows))
    # the summary: printed and written beside the output, one row per stage
    with (tmp_path / "out.summary.csv").open() as fh:
        summary = list(csv.DictReader(fh))
    assert [int(r["stage"]) for r in summary] == list(range(1, STAGES + 1))
    moved = (given[:, :-1] > given[:, 1:]).sum(axis=0)
    assert [int(r["selected"]) for r in summary] == moved.tolist()
    assert [int(r["eligible"]) for r in summary] == (given[:, :-1] > 0).sum(axis=0).tolist()
    for r in summary:
        assert (r["bound"] == "True") == (int(r["selected"]) < int(r["eligible"]))
    header = out.splitlines()[0].split()
    assert header == [
        "stage",
        "D(t)",
        "H(t)",
        "selected",
        "eligible",
        "bound",
        "value",
        "evals",
        "seconds",
    ]
    assert len(out.splitlines()) == STAGES + 1
    # the run's state and per-stage parts are gone once the output is complete
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.npz", "out.summary.csv", "q.jsonl"]


def test_per_step_csv_gives_the_same_schedule_as_per_question_rows(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rows = _questions()
    src = _write_steps_csv(tmp_path / "s.csv", rows, shuffle=True)
    inp = read_schedule_input(src)
    assert inp.layout == "steps"
    np.testing.assert_array_equal(
        inp.step_difficulty, np.concatenate([r["step_difficulty"] for r in rows])
    )
    # without the step column the steps keep the file's (shuffled) order
    unordered = read_schedule_input(src, step_column="")
    np.testing.assert_array_equal(unordered.step_offsets, inp.step_offsets)
    assert not np.array_equal(unordered.step_difficulty, inp.step_difficulty)
    rc, _, err = _kpod([str(src), "-o", str(tmp_path / "out.npz"), *OPTS], capsys)
    assert rc == 0, err
    ids, given = _read_wide_npz(tmp_path / "out.npz")
    assert ids == [r["question_id"] for r in rows]
    np.testing.assert_array_equal(given, _direct(rows))


def test_csv_list_cells_and_npz_csr_are_read_as_one_row_per_question(tmp_path: Path) -> None:
    rows = _questions(20)
    with (tmp_path / "q.csv").open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["id", "cluster", "step_difficulty"])
        for r in rows:
            w.writerow([r["question_id"], r["cluster"], ";".join(map(str, r["step_difficulty"]))])
    d = np.concatenate([r["step_difficulty"] for r in rows])
    off = np.concatenate([[0], np.cumsum([len(r["step_difficulty"]) for r in rows])])
    np.savez(
        tmp_path / "q.npz",
        step_difficulty=d,
        step_offsets=off,
        cluster=[r["cluster"] for r in rows],
    )
    a = read_schedule_input(tmp_path / "q.csv")
    b = read_schedule_input(tmp_path / "q.npz")
    for inp in (a, b):
        assert inp.layout == "questions"
        np.testing.assert_array_equal(inp.step_difficulty, d)
        np.testing.assert_array_equal(inp.step_offsets, off)
    assert a.question_ids.tolist() == [r["question_id"] for r in rows]
    assert b.question_ids.tolist() == list(range(20))  # no id column: the row number


@pytest.mark.parametrize(
    "suffix",
    [
        "npz",
        "jsonl",
        pytest.param("parquet", marks=pytest.mark.skipif(not HAS_PYARROW, reason="pyarrow")),
    ],
)
def test_every_output_format_and_layout_holds_the_same_schedule(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], suffix: str
) -> None:
    rows = _questions(30)
    src = _write_jsonl(tmp_path / "q.jsonl", rows)
    expect = _direct(rows)
    ids = [r["question_id"] for r in rows]
    for layout in ("wide", "long"):
        out_path = tmp_path / f"{layout}.{suffix}"
        rc, _, err = _kpod(
            [str(src), "-o", str(out_path), "--output-layout", layout, *OPTS], capsys
        )
        assert rc == 0, err
        if suffix == "npz":
            with np.load(out_path) as z:
                cols = {k: z[k] for k in z.files}
            if layout == "wide":
                got = cols["given_steps"]
            else:
                got = cols["given_steps"].reshape(STAGES + 1, -1).T
                assert (
                    cols["stage"].tolist() == np.repeat(np.arange(STAGES + 1), len(rows)).tolist()
                )
            assert cols["question_id"].tolist()[: len(rows)] == ids
        elif suffix == "jsonl":
            recs = [json.loads(x) for x in out_path.read_text().splitlines()]
            if layout == "wide":
                assert [r["question_id"] for r in recs] == ids
                got = np.array([r["given_steps"] for r in recs])
            else:
                got = np.array([r["given_steps"] for r in recs]).reshape(STAGES + 1, -1).T
                assert [r["question_id"] for r in recs[: len(rows)]] == ids
        else:
            import pyarrow.parquet as pq

            t = pq.read_table(out_path).to_pydict()
            assert t["question_id"][: len(rows)] == ids
            if layout == "wide":
                got = np.stack([t[f"stage_{s}"] for s in range(STAGES + 1)], axis=1)
            else:
                got = np.array(t["given_steps"]).reshape(STAGES + 1, -1).T
        np.testing.assert_array_equal(got, expect)


@pytest.mark.skipif(not HAS_PYARROW, reason="pyarrow")
def test_parquet_and_a_datasets_folder_are_read(tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = _questions(25)
    table = pa.Table.from_pylist(rows)
    pq.write_table(table, tmp_path / "q.parquet")
    # a datasets save_to_disk folder: an Arrow stream file and state.json naming it
    folder = tmp_path / "ds"
    folder.mkdir()
    with pa.OSFile(str(folder / "data-00000-of-00001.arrow"), "wb") as sink:
        with pa.ipc.new_stream(sink, table.schema) as writer:
            writer.write_table(table)
    (folder / "state.json").write_text(
        json.dumps({"_data_files": [{"filename": "data-00000-of-00001.arrow"}]})
    )
    d = np.concatenate([r["step_difficulty"] for r in rows])
    for path in (tmp_path / "q.parquet", folder):
        inp = read_schedule_input(path)
        assert inp.layout == "questions"
        np.testing.assert_array_equal(inp.step_difficulty, d)
        assert inp.question_ids.tolist() == [r["question_id"] for r in rows]
        assert inp.clusters.tolist() == [r["cluster"] for r in rows]


def _bad_jsonl(tmp_path: Path, edit: dict[str, Any], at: int = 2) -> Path:
    rows = _questions(5)
    rows[at] = {**rows[at], **edit}
    for r in rows:
        for k in [k for k, v in r.items() if v is _DROP]:
            del r[k]
    text = "".join(json.dumps(r).replace('"NaN"', "NaN") + "\n" for r in rows)
    path = tmp_path / "bad.jsonl"
    path.write_text(text, encoding="utf-8")
    return path


_DROP = object()


@pytest.mark.parametrize(
    ("edit", "words"),
    [
        ({"step_difficulty": [0.5, "NaN"]}, ["line 3", "'step_difficulty'", "(step 1)", "nan"]),
        ({"step_difficulty": [-1.0]}, ["line 3", "'step_difficulty'", "(step 0)", "-1.0", ">= 0"]),
        ({"step_difficulty": []}, ["line 3", "'step_difficulty'", "no steps"]),
        ({"cluster": None}, ["line 3", "'cluster'", "missing cluster id"]),
        ({"cluster": -2}, ["line 3", "'cluster'", "cluster id -2"]),
        ({"cluster": _DROP}, ["line 3", "'cluster'", "missing"]),
        (
            {"question_id": "q0"},
            ["line 3", "'question_id'", "duplicate question id 'q0'", "line 1"],
        ),
        ({"step_difficulty": [0.5, "x"]}, ["line 3", "'step_difficulty'", "'x' is not a number"]),
    ],
)
def test_bad_input_names_file_row_and_column(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], edit: dict[str, Any], words: list[str]
) -> None:
    src = _bad_jsonl(tmp_path, edit)
    rc, _, err = _kpod([str(src), "--preview", *OPTS], capsys)
    assert rc == 1
    assert err.startswith(f"kpod schedule: error: {src}, "), err
    for w in words:
        assert w in err, (w, err)


def test_bad_columnar_and_per_step_input_is_located(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    np.savez(
        tmp_path / "bad.npz",
        question_id=np.array([7, 8, 7, 9]),
        step_difficulty=np.array([0.1, 0.2, np.nan, 0.4]),
        cluster=np.array([0, 1, 0, 1]),
    )
    rc, _, err = _kpod([str(tmp_path / "bad.npz"), "--preview", *OPTS], capsys)
    assert rc == 1 and "bad.npz, row 2 (0-based), column 'step_difficulty'" in err and "nan" in err
    # one row per step: a question whose steps disagree on the cluster
    (tmp_path / "s.csv").write_text(
        "question_id,cluster,step_difficulty\na,0,0.1\nb,1,0.2\na,3,0.3\n", encoding="utf-8"
    )
    rc, _, err = _kpod([str(tmp_path / "s.csv"), "--preview", *OPTS], capsys)
    assert rc == 1 and "s.csv, line 4, column 'cluster'" in err and "line 2" in err
    (tmp_path / "q.xlsx").write_text("")
    rc, _, err = _kpod([str(tmp_path / "q.xlsx"), "--preview", *OPTS], capsys)
    assert rc == 1 and "q.xlsx: unknown input format '.xlsx'" in err and "--format" in err
    (tmp_path / "n.csv").write_text("question_id,group,step_difficulty\na,0,0.1\n")
    rc, _, err = _kpod([str(tmp_path / "n.csv"), "--preview", *OPTS], capsys)
    assert rc == 1 and "no column 'cluster'" in err and "--cluster-column" in err
    rc, _, err = _kpod(
        [str(tmp_path / "n.csv"), "--cluster-column", "group", "--preview", *OPTS], capsys
    )
    assert rc == 0, err


def test_preview_prints_the_summary_and_writes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = _write_jsonl(tmp_path / "q.jsonl", _questions())
    rc, out, err = _kpod([str(src), "--preview", *OPTS], capsys)
    assert rc == 0, err
    assert len(out.splitlines()) == STAGES + 1
    assert [p.name for p in tmp_path.iterdir()] == ["q.jsonl"]


def test_an_interrupted_run_resumes_to_the_same_output(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    rows = _questions(80)
    src = _write_jsonl(tmp_path / "q.jsonl", rows)
    out = tmp_path / "out.npz"
    calls = {"n": 0}
    real = kpod.Curriculum.advance

    def flaky(self: Any) -> Any:
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return real(self)

    monkeypatch.setattr(kpod.Curriculum, "advance", flaky)
    rc, _, err = _kpod([str(src), "-o", str(out), *OPTS], capsys)
    assert rc == 130 and "interrupted after stage 2" in err and "--resume" in err
    assert not out.exists() and (tmp_path / "out.npz.state.json").is_file()
    # other options than the saved run's are refused
    rc, _, err = _kpod([str(src), "-o", str(out), "--resume", *OPTS, "--beta", "3"], capsys)
    assert rc == 1 and "saved with other options" in err and "beta" in err
    rc, _, err = _kpod([str(src), "-o", str(out), "--resume", *OPTS], capsys)
    assert rc == 0, err
    assert calls["n"] == 3 + STAGES - 2  # stages 3..T only
    _, given = _read_wide_npz(out)
    np.testing.assert_array_equal(given, _direct(rows))
    with (tmp_path / "out.summary.csv").open() as fh:
        assert [int(r["stage"]) for r in csv.DictReader(fh)] == list(range(1, STAGES + 1))
    rc, _, err = _kpod([str(src), "-o", str(out), "--resume", *OPTS], capsys)
    assert rc == 1 and "no saved state to resume" in err


def test_parquet_without_pyarrow_names_the_extra(tmp_path: Path) -> None:
    (tmp_path / "q.parquet").write_bytes(b"PAR1")
    code = textwrap.dedent(
        """
        import importlib.abc, sys
        class Block(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] == "pyarrow":
                    raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        sys.meta_path.insert(0, Block())
        from kpod.cli import main
        raise SystemExit(main(sys.argv[1:]))
        """
    )
    proc = subprocess.run(
        [sys.executable, "-c", code, "schedule", str(tmp_path / "q.parquet"), "--preview", *OPTS],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr
    assert 'pip install "kpod[parquet]"' in proc.stderr and "q.parquet" in proc.stderr
