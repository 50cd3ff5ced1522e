"""kpod.bench and `kpod bench`: instances, objective, isolation, tables; no timing assertions.

The peers (``benches/peers.py``, not in the package) are tested here too, where installed.
"""

from __future__ import annotations

import importlib.util
import math
import re
import sys
from pathlib import Path

import numpy as np
import pytest

from kpod import bench


def test_instance_is_reproducible_and_budget_is_the_stated_fraction() -> None:
    a = bench.make_instance(5000, 7, budget_fraction=0.25, seed=3)
    b = bench.make_instance(5000, 7, budget_fraction=0.25, seed=3)
    c = bench.make_instance(5000, 7, budget_fraction=0.25, seed=4)
    np.testing.assert_array_equal(a.costs, b.costs)
    np.testing.assert_array_equal(a.clusters, b.clusters)
    assert not np.array_equal(a.costs, c.costs)
    assert a.costs.dtype == np.float64 and a.clusters.dtype == np.int64
    assert a.costs.min() >= bench.COST_RANGE[0] and a.costs.max() < bench.COST_RANGE[1]
    assert a.clusters.min() >= 0 and a.clusters.max() < 7
    assert len(np.unique(a.clusters)) == 7
    assert math.isclose(a.budget, 0.25 * a.costs.sum())
    scaled = bench.make_instance(5000, 7, budget_fraction=0.25, seed=3, cost_scale=3.0)
    np.testing.assert_allclose(scaled.costs, 3.0 * a.costs)


@pytest.mark.parametrize(
    ("kwargs", "word"),
    [
        ({"n": 0, "k": 3}, "n must be"),
        ({"n": 10, "k": 0}, "k (number of clusters)"),
        ({"n": 10, "k": 3, "budget_fraction": 0.0}, "budget_fraction"),
        ({"n": 10, "k": 3, "budget_fraction": 1.5}, "budget_fraction"),
    ],
)
def test_instance_rejects_bad_arguments(kwargs: dict[str, float], word: str) -> None:
    with pytest.raises(ValueError, match=re.escape(word)):
        bench.make_instance(**kwargs)  # type: ignore[arg-type]


def test_objective_matches_hand_computation() -> None:
    costs = np.array([1.0, 2.0, 0.5, 4.0, 3.0])
    clusters = np.array([0, 0, 1, 1, 2])
    # S = {0, 1, 2}: modular 3.5, clusters 0 (2 items) and 1 (1 item)
    want = 3.5 + 12.0 * (math.sqrt(2) + 1.0)
    assert math.isclose(bench.objective(costs, clusters, [0, 1, 2]), want)
    assert math.isclose(bench.objective(costs, clusters, np.array([2, 1, 0])), want)
    modular = np.array([10.0, 0.0, 0.0, 0.0, 0.0])
    assert math.isclose(
        bench.objective(costs, clusters, [0, 4], beta=2.0, modular=modular), 10.0 + 2.0 * 2
    )
    assert bench.objective(costs, clusters, []) == 0.0
    with pytest.raises(ValueError, match="duplicates"):
        bench.objective(costs, clusters, [1, 1])
    with pytest.raises(ValueError, match="out of range"):
        bench.objective(costs, clusters, [5])


def test_format_table_aligns_and_marks_missing() -> None:
    cols = [
        bench.Column("name", "name", str, "left"),
        bench.Column("t", "time", bench._fmt_seconds),
        bench.Column("n", "n", bench._fmt_n),
    ]
    text = bench.format_table(
        [{"name": "threshold", "t": 0.0123, "n": 1_000_000}, {"name": "x", "n": 1500}], cols
    )
    lines = text.splitlines()
    assert lines[0] == "| name      |    time |     n |"
    assert lines[1] == "| --------- | ------: | ----: |"
    assert lines[2] == "| threshold | 12.3 ms |   1e6 |"
    assert lines[3] == "| x         |       — | 1,500 |"
    assert len({len(line) for line in lines}) == 1


def test_formatters() -> None:
    assert bench._fmt_seconds(2.5e-5) == "25 µs"
    assert bench._fmt_seconds(0.25) == "250 ms"
    assert bench._fmt_seconds(3.14159) == "3.14 s"
    assert bench._fmt_seconds("> 120 s") == "> 120 s"
    assert bench._fmt_bytes(3 * (1 << 30)) == "3.00 GiB"
    assert bench._fmt_bytes(5 << 20) == "5 MiB"
    assert bench._fmt_count(2_500_000) == "2.5M"
    assert bench._fmt_speedup(1234.0) == "1,234×"
    assert bench._parse_sizes("1e4, 100000") == [10_000, 100_000]
    with pytest.raises(ValueError, match="--sizes"):
        bench._parse_sizes("1e4,lots")
    with pytest.raises(ValueError, match="--algorithms"):
        bench._parse_choice("threshold,fast", bench.ALGORITHMS, "--algorithms")


def test_run_isolated_kills_at_the_time_cap_and_reports_errors() -> None:
    iso = bench.run_isolated("time:sleep", args=[30], time_cap=1.0)
    assert iso.status == "timeout"
    assert iso.wall_seconds < 15
    assert "cap" in iso.message
    bad = bench.run_isolated("kpod.bench:make_instance", {"n": 0, "k": 1}, time_cap=60)
    assert bad.status == "error"
    assert "n must be >= 1" in bad.message


def test_run_isolated_returns_the_result_and_its_own_peak_rss() -> None:
    iso = bench.run_isolated(
        "kpod.bench:case_bandwidth", {"nbytes": 1 << 24, "repeats": 2}, time_cap=60
    )
    assert iso.status == "ok", iso.message
    assert iso.result is not None and iso.result["bytes_per_second"] > 1e8
    # two 16 MiB arrays live in the child, so its own peak includes them
    assert iso.peak_rss is not None and iso.peak_rss > 32 << 20


_HAVE_NATIVE = importlib.util.find_spec("kpod._kpod") is not None


@pytest.mark.skipif(not _HAVE_NATIVE, reason="native module not built (maturin develop)")
def test_kpod_bench_command_prints_the_tables(capsys: pytest.CaptureFixture[str]) -> None:
    from kpod.cli import main

    rc = main(
        [
            "bench",
            "--sizes",
            "2000",
            "--clusters",
            "5",
            "--repeats",
            "1",
            "--curriculum",
            "300",
            "--stages",
            "4",
        ]
    )
    assert rc == 0
    out = capsys.readouterr().out
    assert "### kpod.select" in out and "### kpod.Curriculum" in out
    header = next(line for line in out.splitlines() if "| algorithm" in line)
    for col in ("algorithm", "time/call (median)", "evaluations", "peak RSS", "value / greedy_max"):
        assert col in header
    rows = {}
    for line in out.splitlines():
        cells = [c.strip() for c in line.strip("|").split("|")]
        if len(cells) > 10 and cells[2] in bench.ALGORITHMS:
            rows[cells[2]] = cells
    assert set(rows) == set(bench.ALGORITHMS)
    cols = [c.strip() for c in header.strip("|").split("|")]
    ratio = cols.index("value / greedy_max")
    budget = cols.index("cost / budget")
    assert float(rows["greedy_max"][ratio]) == 1.0
    for cells in rows.values():
        assert 0.45 <= float(cells[ratio]) <= 1.5  # threshold's guarantee is (1/2 - eps) x OPT
        assert 0.0 < float(cells[budget]) <= 1.0
    assert "### Peers" not in out  # kpod bench times kpod alone
    lines = out.splitlines()
    head = next(i for i, line in enumerate(lines) if line.startswith("| questions"))
    names = [c.strip() for c in lines[head].strip("|").split("|")]
    cells = dict(
        zip(names, (c.strip() for c in lines[head + 2].strip("|").split("|")), strict=True)
    )
    assert cells["questions"] == "300" and cells["stages"] == "4"
    for name in ("total (build + all stages)", "stage median", "peak RSS"):
        assert cells[name][0].isdigit(), (name, cells[name])  # a figure, not error or timeout


@pytest.mark.skipif(
    importlib.util.find_spec("submodlib_cpp") is None
    or importlib.util.find_spec("apricot") is None,
    reason="peers not installed (pip install 'kpod[bench]')",
)
def test_peer_encodings_compute_exactly_our_objective() -> None:
    """Each peer's own value for its selected set equals F; both apricot encodings agree."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benches"))
    import peers

    results = {}
    for peer, encoding in (("submodlib", "exact"), ("apricot", "exact"), ("apricot", "clusters")):
        iso = peers.run_case({"peer": peer, "n": 300, "k": 4, "encoding": encoding}, time_cap=120)
        assert iso.status == "ok", iso.message
        r = iso.result
        assert r is not None
        assert r["feasible"] and r["selected"] > 0
        assert math.isclose(r["own_value"], r["value"], rel_tol=1e-9)
        results[(peer, encoding)] = r
    # same cost-benefit greedy on the same objective: the same set
    values = {round(r["value"], 6) for r in results.values()}
    assert len(values) == 1
