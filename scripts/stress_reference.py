"""Randomised comparison of kpod.select with the numpy reference, beyond the test sizes.

The property tests (``tests/test_select.py``) compare the native core with
``kpod._reference`` on instances of up to 25 items. This script draws larger
and harder ones for as long as asked: n up to 1500, K from 1 to 1000, costs
uniform, in a few exact values (ties), an ulp or a few apart (twins),
log-normal, spread over 40 decades or around 1e14-1e16 (densities of exactly
1, or a few ulps above), or with 20 % free items, some costs over the budget,
budgets from 0 to above the total, beta from 1e-20 to 1e6, eps 0.01-0.3, all three
algorithms; a third of the instances also take a custom ``modular`` part
and/or per-item ``values`` (with sqrt or log1p), which run the generic
lazy heaps and level lists. Picks and costs must be identical, and for ``threshold`` the
evaluation counts too. Exits with status 1 on any mismatch.

    .venv/bin/python scripts/stress_reference.py --seed 1 --seconds 120
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

import numpy as np

import kpod
from kpod import _reference as ref


def objective(rng: np.random.Generator, c: np.ndarray) -> dict[str, Any]:
    """KPOD's objective (no keywords) for two thirds of the instances, else a
    custom modular part and/or item values, with sqrt or log1p."""
    if rng.random() < 2 / 3:
        return {}
    n = len(c)
    out: dict[str, Any] = {"concave": str(rng.choice(["sqrt", "log1p"]))}
    kind = int(rng.integers(0, 3))
    if kind != 1:
        out["modular"] = c * rng.uniform(0.5, 1.5, n)
    if kind != 0:
        out["values"] = rng.uniform(0.5, 1.5, n)
    return out


def instance(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, float, float]:
    n = int(rng.choice([5, 30, 200, 1500]))
    k = int(rng.choice([1, 3, 50, 1000]))
    kind = int(rng.integers(0, 7))
    c: np.ndarray
    if kind == 0:
        c = rng.uniform(0.05, 1, n)
    elif kind == 1:
        c = rng.integers(1, 5, n) * 0.25
    elif kind == 2:
        c = 1.0 + rng.integers(0, 64, n) * np.finfo(float).eps
    elif kind == 3:
        c = np.exp(rng.normal(0, 3, n))
    elif kind == 4:  # dear costs absorb the diversity increment: densities of exactly 1
        c = 10.0 ** rng.uniform(-20, 20, n)
    elif kind == 5:  # densities a few ulps above 1, or turning exactly 1 mid-run
        c = float(rng.choice([1e14, 1e16])) * (1.0 + rng.integers(0, 64, n) / 64.0)
    else:
        c = rng.uniform(0, 1, n)
        c[rng.random(n) < 0.2] = 0.0
    clusters = rng.integers(0, k, n)
    budget = float(c.sum() * rng.choice([0.0, 0.01, 0.1, 0.5, 1.1]))
    if rng.random() < 0.2:
        c[rng.integers(0, n)] = budget * 2 + 1
    beta = float(rng.choice([12.0, 0.5, 1e-9, 1e-20, 1e6]))
    return c, clusters, budget, beta


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--seconds", type=float, default=60.0)
    args = ap.parse_args()
    rng = np.random.default_rng(args.seed)
    start = time.monotonic()
    checked = bad = 0
    while time.monotonic() - start < args.seconds:
        c, clusters, budget, beta = instance(rng)
        kw = objective(rng, c)
        for alg in ("threshold", "greedy_max", "density"):
            eps = float(rng.choice([0.1, 0.3, 0.01]))
            s = kpod.select(c, clusters, budget=budget, beta=beta, algorithm=alg, eps=eps, **kw)
            idx, _, cost, evals = ref.select(
                c, clusters, budget=budget, beta=beta, algorithm=alg, eps=eps, **kw
            )
            checked += 1
            same = s.indices.tolist() == idx and s.cost == cost
            if alg == "threshold":
                same = same and s.evaluations == evals
            if not same:
                bad += 1
                extra = sorted(kw) or ["kpod"]
                print(
                    f"MISMATCH {alg} n={len(c)} budget={budget} beta={beta} eps={eps} "
                    f"objective={extra}"
                )
    print(f"checked {checked} selections, {bad} mismatches")
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
