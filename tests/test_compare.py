"""`kpod compare`: runs side by side, pooled over seeds, paired against a baseline,
with their schedules; the reproduction tables are its output on the archive."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from kpod.cli import main
from kpod.compare import compare, html_page, load_runs, markdown

ROOT = Path(__file__).resolve().parents[1]
ARCHIVE = ROOT / "docs" / "reproduction"


def _cells(text: str, label: str, second: str | None = None) -> list[str]:
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if cells[0] == label and (second is None or cells[1] == second):
            return cells
    raise AssertionError(f"no row {label} {second} in\n{text}")


def _section(text: str, start: str, end: str | None = None) -> str:
    part = text[text.index(start) :]
    return part[: part.index(end)] if end else part


def test_compare_of_the_archive_gives_the_published_setting2_tables(capsys) -> None:
    if not any((ARCHIVE / "delta2").glob("kpod-s*.json")):
        pytest.skip("no setting-2 archive in this checkout")
    args = [
        "compare",
        str(ARCHIVE / "delta2"),
        *map(str, sorted((ARCHIVE / "delta1").glob("cot-s*.json"))),
    ]
    assert main([*args, "--baseline", "kpod", "--sets", "svamp", "asdiv"]) == 0
    out = capsys.readouterr().out
    page = (ROOT / "docs" / "REPRODUCTION.md").read_text(encoding="utf-8")
    setting2 = _section(page, "#### Setting 2", "#### Reading")
    pooled_page = _section(setting2, "Pooled over seeds")
    pooled_out = _section(out, "Pooled over seeds")
    for label in ("zero-shot", "cot", "kpod", "kpod-mean", "wo-sig", "wo-sig-dif", "wo-div"):
        assert _cells(pooled_out, label)[1:] == _cells(pooled_page, label)[1:], label
        for seed in ("0", "1"):
            if label == "zero-shot" and seed == "1":
                continue
            per_run_page = _section(setting2, "Per run", "Pooled")
            per_run_out = _section(out, "Per run", "Pooled")
            assert _cells(per_run_out, label, seed)[1:] == _cells(per_run_page, label, seed)[1:]
            if label not in ("zero-shot", "cot"):
                stages_out = _cells(_section(out, "Questions advanced"), label, seed)
                assert stages_out == _cells(_section(setting2, "Questions advanced"), label, seed)


def _run_dir(
    root: Path,
    name: str,
    *,
    seed: int,
    training: dict,
    after: str,
    before: str | None = None,
    given: list[list[int]] | None = None,
    ids: list[str] | None = None,
) -> Path:
    run = root / name
    cfg = {"run_dir": str(run), "seed": seed, "student": "tiny", "training": training}
    run.mkdir(parents=True)
    (run / "metrics.json").write_text(json.dumps({"run_config": cfg}))
    ids = ids or [f"q{i}" for i in range(len(after))]
    before = before if before is not None else "0" * len(after)
    for step, bits in (("eval_after", after), ("eval_before", before)):
        (run / step).mkdir()
        rows = [json.dumps({"id": q, "correct": b == "1"}) for q, b in zip(ids, bits, strict=True)]
        (run / step / "predictions-gsm8k.jsonl").write_text("\n".join(rows) + "\n")
    (run / "train").mkdir()
    (run / "train" / ".kpod-step.json").write_text(json.dumps({"seconds": 12.3, "resumed": False}))
    stages = []
    for t, g in enumerate(given or [], start=1):
        prev = given[t - 2] if t > 1 and given else [1] * len(g)
        sel = [i for i, (a, b) in enumerate(zip(prev, g, strict=True)) if b < a]
        eligible = sum(1 for x in prev if x > 0)
        stages.append(
            {
                "stage": t,
                "selected": sel,
                "given_steps": g,
                "budget": 1.0,
                "written": 1.0,
                "eligible": eligible,
                "bound": len(sel) < eligible,
            }
        )
    (run / "train" / "kpod_stages.jsonl").write_text("".join(json.dumps(s) + "\n" for s in stages))
    return run


def test_run_directories_pool_over_seeds_and_pair_with_the_baseline_seed(tmp_path: Path) -> None:
    kp = {"stages": 2, "num_train_epochs": 4}
    ab = {"stages": 2, "num_train_epochs": 4, "no_diversity": True}
    g_kpod = [[1, 0, 1, 0], [0, 0, 0, 0], [0, 0, 0, 0]]
    g_abl = [[0, 0, 1, 1], [0, 0, 0, 0], [0, 0, 0, 0]]
    runs = [
        _run_dir(tmp_path, "kpod-s0", seed=0, training=kp, after="1100", given=g_kpod),
        _run_dir(tmp_path, "kpod-s1", seed=1, training=kp, after="0000", given=g_kpod),
        _run_dir(tmp_path, "wo-div-s0", seed=0, training=ab, after="1111", given=g_abl),
        _run_dir(tmp_path, "wo-div-s1", seed=1, training=ab, after="0000", given=g_abl),
    ]
    cmp = compare(load_runs(runs, before=True), baseline="kpod")
    # The pretrained student once per seed, whichever run evaluated it.
    assert [(g.group, g.runs) for g in cmp.pooled] == [
        ("kpod", 2),
        ("before training", 2),
        ("wo-div", 2),
    ]
    wo = next(r for r in cmp.rows if r.run.label == "wo-div-s0")
    assert wo.difference["gsm8k"][0] == pytest.approx(0.5)  # 4/4 against kpod seed 0's 2/4
    pooled = next(g for g in cmp.pooled if g.group == "wo-div")
    assert pooled.runs == 2 and pooled.accuracy["gsm8k"][0] == pytest.approx(0.5)
    assert pooled.difference["gsm8k"][0] == pytest.approx(0.25)  # paired per question and seed
    before = next(g for g in cmp.pooled if g.group == "before training")
    assert before.difference["gsm8k"][0] == pytest.approx(-0.25)
    # Stages 1..T only (T = 2); wo-div's given steps differ from kpod's in 2 questions at stage 1.
    assert [s for g, seed, s in cmp.schedules if g == "kpod" and seed == 0] == [
        [(2, 4, True), (2, 2, False)]
    ]
    assert ("wo-div", 0, [2, 0]) in cmp.schedule_differences
    text = markdown(cmp)
    assert "| wo-div | 0 |" in text and "+50.0" in text and "| 12 |" in text
    assert "differs from kpod's" in text
    page = html_page(cmp, sources=[str(r) for r in runs])
    for tid in ("pooled", "runs", "schedules", "schedule-differences"):
        assert f"id='{tid}'" in page
    assert page.count("<img") == 1


def test_runs_that_differ_beyond_the_seed_are_not_pooled(tmp_path: Path) -> None:
    a = _run_dir(tmp_path, "a", seed=0, training={"learning_rate": 1e-3}, after="10")
    b = _run_dir(tmp_path, "b", seed=1, training={"learning_rate": 1e-4}, after="11")
    c = _run_dir(tmp_path, "c", seed=1, training={"learning_rate": 1e-3}, after="01")
    cmp = compare(load_runs([a, b, c]))
    assert [(g.group, g.runs) for g in cmp.pooled] == [("a+c", 2), ("b", 1)]
    # --ignore makes a config key irrelevant to the grouping.
    cmp = compare(load_runs([a, b, c]), ignore=["training.learning_rate"])
    assert [(g.group, g.runs) for g in cmp.pooled] == [("a+b+c", 3)]


def test_runs_on_other_questions_are_not_paired(tmp_path: Path, capsys) -> None:
    a = _run_dir(tmp_path, "a", seed=0, training={}, after="10")
    b = _run_dir(tmp_path, "b", seed=0, training={"beta": 0}, after="11", ids=["x", "y"])
    html_out = tmp_path / "cmp.html"
    assert main(["compare", str(a), str(b), "--html", str(html_out)]) == 0
    captured = capsys.readouterr()
    assert _cells(captured.out, "b", "0")[3] == ""
    assert "not on the same questions" in captured.err
    assert "not on the same questions" in html_out.read_text()


def test_unknown_baseline_and_missing_runs_are_errors(tmp_path: Path, capsys) -> None:
    a = _run_dir(tmp_path, "a", seed=0, training={}, after="10")
    assert main(["compare", str(a), "--baseline", "nope"]) == 1
    assert main(["compare", str(tmp_path / "absent")]) == 1
    err = capsys.readouterr().err
    assert "nope" in err and "absent" in err


def test_accuracy_interval_matches_evaluation() -> None:
    from kpod.evaluation import bootstrap_interval
    from kpod.stats import paired_difference

    rng = np.random.default_rng(0)
    a, b = rng.random(50) < 0.5, rng.random(50) < 0.4
    m, lo, hi = paired_difference(a, b)
    assert m == pytest.approx(a.mean() - b.mean())
    assert (lo, hi) == bootstrap_interval(a.astype(float) - b, n_resamples=2000)
