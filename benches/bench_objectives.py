"""kpod.select on objectives other than KPOD's own.

``bench_select.py`` times KPOD's objective (modular part = the costs, item
weights v = 1, g = sqrt), which has dedicated cost-ordered paths. The API also
takes a custom ``modular`` part, per-item ``values`` and other concave
functions; those with ``modular`` or ``values`` run the generic paths (lazy
per-cluster heaps for ``greedy_max`` / ``density``, per-item level lists for
``threshold``). This script times the three algorithms on each objective at
one size, K = 5 (the paper's) and K = 1000, with the evaluations per item and
the value relative to ``greedy_max``.

    .venv/bin/python benches/bench_objectives.py --n 1e6 --repeats 3

Instances: costs uniform in [0.05, 1), cluster ids uniform in [0, K), budget
10 % of the total cost, beta = 12, seed 1 (``kpod.bench.make_instance``); a
custom modular part is ``cost x U[0.5, 1.5)``, custom values are
``U[0.5, 1.5)``. The time is the median of ``--repeats`` calls in this
process after one untimed call, Python call included.
"""

from __future__ import annotations

import argparse
import functools
from typing import Any

import numpy as np

import harness  # benches/harness.py (this directory is on sys.path)
import kpod
from kpod import bench


def objectives(n: int, rng: np.random.Generator, costs: np.ndarray) -> dict[str, dict[str, Any]]:
    """Keyword arguments of ``kpod.select`` per objective."""
    return {
        "KPOD (a = c, v = 1, sqrt)": {},
        "log1p": {"concave": "log1p"},
        "power 0.5": {"concave": ("power", 0.5)},
        "modular a = c U[0.5, 1.5)": {"modular": costs * (0.5 + rng.random(n))},
        "values v = U[0.5, 1.5)": {"values": 0.5 + rng.random(n)},
        "both, log1p": {
            "modular": costs * (0.5 + rng.random(n)),
            "values": 0.5 + rng.random(n),
            "concave": "log1p",
        },
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=float, default=1e5, help="items (default: 1e5)")
    ap.add_argument("--clusters", default="5,1000", help="comma-separated K (default 5,1000)")
    ap.add_argument("--repeats", type=int, default=3, help="calls per case and algorithm")
    args = ap.parse_args()
    n = int(args.n)
    bench.print_run_info(
        f".venv/bin/python benches/bench_objectives.py --n {args.n:g} "
        f"--clusters {args.clusters} --repeats {args.repeats}"
    )
    print(harness.algorithm_table_head([f"objective (n = {n:.0e})", "K"]))
    for k in (int(x) for x in args.clusters.split(",")):
        inst = bench.make_instance(n, k, seed=1)
        for name, kwargs in objectives(n, np.random.default_rng(1), inst.costs).items():
            select = functools.partial(
                kpod.select,
                inst.costs,
                inst.clusters,
                budget=inst.budget,
                beta=inst.beta,
                **kwargs,
            )
            cells = harness.algorithm_cells(select, n, args.repeats)
            print(f"| {name} | {k} | {cells} |", flush=True)


if __name__ == "__main__":
    main()
