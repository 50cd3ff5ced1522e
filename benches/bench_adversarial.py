"""kpod.select on inputs far from the benchmark's uniform costs.

``bench_select.py`` times one instance family (uniform costs, uniform
cluster ids). A demanding user also feeds equal costs, one cluster per item,
huge cluster ids, costs spread over hundreds of decades, costs so large (or
beta so small) that the diversity increment vanishes in rounding, free items
and extreme budgets. This script times the three algorithms on each such
family at one size, with the evaluations per item and the value relative to
``greedy_max``, so that a regression to superlinear work shows as a number.

    .venv/bin/python benches/bench_adversarial.py --n 1e5 --repeats 3

Every case uses seed 1, K = 1000 unless named, beta = 12 unless named, and a
budget of 10 % of the total cost unless named. The time is the median of
``--repeats`` calls in this process after one untimed call, Python call
included.
"""

from __future__ import annotations

import argparse
import functools
from collections.abc import Callable

import numpy as np

import harness  # benches/harness.py (this directory is on sys.path)
import kpod
from kpod import bench

Case = Callable[[int, np.random.Generator], tuple[np.ndarray, np.ndarray, float, float]]


def _uniform(n: int, rng: np.random.Generator) -> np.ndarray:
    return 0.05 + 0.95 * rng.random(n)


CASES: dict[str, Case] = {
    "uniform (reference)": lambda n, r: (_uniform(n, r), r.integers(0, 1000, n), 0.1, 12.0),
    "all costs equal": lambda n, r: (np.ones(n), r.integers(0, 1000, n), 0.1, 12.0),
    "two cost values": lambda n, r: (
        np.where(r.random(n) < 0.5, 1.0, 2.0),
        r.integers(0, 1000, n),
        0.1,
        12.0,
    ),
    "K = n (one item per cluster)": lambda n, r: (_uniform(n, r), np.arange(n), 0.1, 12.0),
    "K = 1": lambda n, r: (_uniform(n, r), np.zeros(n, dtype=np.int64), 0.1, 12.0),
    "cluster ids up to 1e15": lambda n, r: (
        _uniform(n, r),
        r.integers(0, 1000, n) * 10**12,
        0.1,
        12.0,
    ),
    "costs 1e-6..1e6 (log-uniform)": lambda n, r: (
        10.0 ** r.uniform(-6, 6, n),
        r.integers(0, 1000, n),
        0.1,
        12.0,
    ),
    "costs 1e-300..1e300, budget 0.1 max": lambda n, r: (
        10.0 ** r.uniform(-300, 300, n),
        r.integers(0, 1000, n),
        -0.1,
        12.0,
    ),
    "costs 1 + 1e-12 u (bunched)": lambda n, r: (
        1.0 + 1e-12 * r.random(n),
        r.integers(0, 1000, n),
        0.1,
        12.0,
    ),
    "half the items free": lambda n, r: (
        np.where(r.random(n) < 0.5, 0.0, r.random(n)),
        r.integers(0, 1000, n),
        0.1,
        12.0,
    ),
    "budget = total": lambda n, r: (_uniform(n, r), r.integers(0, 1000, n), 1.0, 12.0),
    "budget 1e-6 of total": lambda n, r: (_uniform(n, r), r.integers(0, 1000, n), 1e-6, 12.0),
    "beta 1e-20, K = 5 (densities exactly 1)": lambda n, r: (
        _uniform(n, r),
        r.integers(0, 5, n),
        0.1,
        1e-20,
    ),
    "costs 1e14 (1 + u), K = 5 (densities ulps above 1)": lambda n, r: (
        1e14 * (1.0 + r.random(n)),
        r.integers(0, 5, n),
        0.1,
        12.0,
    ),
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=float, default=1e5, help="items per case (default: 1e5)")
    ap.add_argument("--repeats", type=int, default=3, help="calls per case and algorithm")
    ap.add_argument("--only", default="", help="run only the cases whose name contains this text")
    args = ap.parse_args()
    n = int(args.n)
    only = f" --only '{args.only}'" if args.only else ""
    bench.print_run_info(
        f".venv/bin/python benches/bench_adversarial.py --n {args.n:g} "
        f"--repeats {args.repeats}{only}"
    )
    print(harness.algorithm_table_head([f"case (n = {n:.0e})"]))
    for name, make in CASES.items():
        if args.only not in name:
            continue
        costs, clusters, frac, beta = make(n, np.random.default_rng(1))
        # A negative fraction means a fraction of the dearest cost (the total
        # overflows nothing there but would admit every item).
        budget = float(-frac * costs.max()) if frac < 0 else float(frac * costs.sum())
        select = functools.partial(kpod.select, costs, clusters, budget=budget, beta=beta)
        cells = harness.algorithm_cells(select, n, args.repeats)
        print(f"| {name} | {cells} |", flush=True)


if __name__ == "__main__":
    main()
