"""The reproduction tables (docs/REPRODUCTION.md) are rebuilt from the archived
per-question records of scripts/reproduce_svamp.py, not from runs/, which does not
outlive the machine: pairing, pooling and the borrowed rows must be right."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _load(monkeypatch):
    """scripts/reproduce_svamp.py as a module, registered for this test only."""
    spec = importlib.util.spec_from_file_location(
        "reproduce_svamp", ROOT / "scripts" / "reproduce_svamp.py"
    )
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "reproduce_svamp", mod)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture()
def repro(tmp_path, monkeypatch):
    mod = _load(monkeypatch)
    monkeypatch.setattr(mod, "ARCHIVE", tmp_path)
    return mod


def _write(mod, delta: int, variant: str, seed: int, bits: dict[str, str], **extra) -> None:
    rec = {
        "variant": variant,
        "seed": seed,
        "delta_steps": delta,
        "ids": {ds: [f"{ds}-{i}" for i in range(len(b))] for ds, b in bits.items()},
        "correct": bits,
        **extra,
    }
    out = mod.archive_dir(delta) / f"{variant}-s{seed}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(rec))


def _row(text: str, variant: str, seed: str) -> list[str]:
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip("|").split("|")]
        if cells[:2] == [variant, seed]:
            return cells
    raise AssertionError(f"no row {variant} {seed} in\n{text}")


def test_table_pairs_with_kpod_of_the_same_seed_and_pools(repro):
    _write(repro, 2, "kpod", 0, {"svamp": "1100", "asdiv": "1000"}, train_seconds=800.0)
    _write(repro, 2, "kpod", 1, {"svamp": "0000", "asdiv": "0000"}, train_seconds=810.0)
    _write(repro, 2, "wo-div", 0, {"svamp": "1111", "asdiv": "1000"}, train_seconds=700.0)
    _write(repro, 2, "wo-div", 1, {"svamp": "0000", "asdiv": "0000"}, same_schedule_as="kpod-s1")
    text = repro.table(2)
    row = _row(text, "wo-div", "0")
    assert row[2].startswith("100.0")
    assert row[4].startswith("+50.0")  # 4/4 against KPOD seed 0's 2/4
    assert row[5].startswith("+0.0")
    assert row[6] == "700"
    assert _row(text, "wo-div", "1")[6] == "= KPOD: same schedule, not retrained"
    pooled = text.split("Pooled")[1]
    p = _row(pooled, "wo-div", "2")
    assert p[2].startswith("50.0")  # 4 of 8 question-seed pairs
    assert p[4].startswith("+25.0")  # paired per question and seed


def test_table_borrows_runs_without_progression_from_the_default_setting(repro):
    _write(repro, 2, "kpod", 0, {"svamp": "10", "asdiv": "10"})
    _write(repro, 1, "cot", 0, {"svamp": "11", "asdiv": "00"})
    _write(repro, 1, "wo-sig", 0, {"svamp": "11", "asdiv": "11"})  # has progression
    text = repro.table(2)
    assert _row(text, "cot", "0")[4].startswith("+50.0")
    assert "| wo-sig |" not in text


def test_table_does_not_pair_runs_on_different_questions(repro):
    _write(repro, 1, "kpod", 0, {"svamp": "10", "asdiv": "10"})
    _write(repro, 1, "cot", 0, {"svamp": "11", "asdiv": "11"})
    path = repro.archive_dir(1) / "cot-s0.json"
    rec = json.loads(path.read_text())
    rec["ids"]["svamp"] = ["other-0", "other-1"]
    path.write_text(json.dumps(rec))
    row = _row(repro.table(1), "cot", "0")
    assert row[4] == ""  # SVAMP: different questions, no paired difference
    assert row[5].startswith("+50.0")  # ASDiv: same questions


def test_published_setting2_tables_are_the_archive_rebuilt(monkeypatch) -> None:
    # Every figure in docs/REPRODUCTION.md's setting-2 tables (stages and accuracies)
    # must be what the committed archive gives, so anyone can rerun `--table-only`
    # and get the page.
    mod = _load(monkeypatch)
    if not any((ROOT / "docs" / "reproduction" / "delta2").glob("kpod-s*.json")):
        pytest.skip("no setting-2 archive in this checkout")
    page = (ROOT / "docs" / "REPRODUCTION.md").read_text(encoding="utf-8")
    assert mod.stage_table(2)
    assert mod.report(2).strip() in page


def test_published_fair_results_are_the_archive_rebuilt(monkeypatch) -> None:
    # docs/REPRODUCTION.md's fair-test results block is `--setting fair --table-only`'s
    # output on the committed archive (line breaks aside): no result without a record.
    mod = _load(monkeypatch)
    page = (ROOT / "docs" / "REPRODUCTION.md").read_text(encoding="utf-8")
    block = page.split("<!-- fair results: begin -->")[1].split("<!-- fair results: end -->")[0]
    assert " ".join(block.split()) == " ".join(mod.fair_report().split())
