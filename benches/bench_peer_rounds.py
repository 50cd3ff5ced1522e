"""Paired, interleaved speed ratios of kpod.select against submodlib-py.

``bench_select.py`` runs every case in its own process, one after another, so
a peer and kpod are timed minutes apart; on a shared or throttled machine the
ratio then moves with the machine (on 2026-11-29 the same code gave 34x-58x
at n = 1e5 in four runs). This script times both on the same instance in
rounds, in one process, back to back:

    round r:  submodlib set-up, submodlib solve, then kpod (median of --calls)

and reports per (n, K) the median over rounds of each time and of the
per-round ratios, with the smallest and largest ratio. Values are recomputed
in numpy (``kpod.bench.objective``) for both, as in ``bench_select.py``.

    .venv/bin/python benches/bench_peer_rounds.py --sizes 1e4,1e5 --rounds 7

Needs submodlib-py (``pip install 'kpod[bench]'``).
"""

from __future__ import annotations

import argparse
import gc
import statistics
import sys
import time
from typing import Any

import kpod
import peers  # benches/peers.py (this directory is on sys.path)
from kpod import bench


def _parse_sizes(text: str) -> list[int]:
    return [int(float(x)) for x in text.split(",") if x.strip()]


def _median_time(fn: Any, calls: int) -> tuple[float, Any]:
    times: list[float] = []
    out = None
    for _ in range(calls):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), out


def run(n: int, k: int, rounds: int, calls: int, algorithms: list[str]) -> dict[str, Any]:
    inst = bench.make_instance(n, k, budget_fraction=0.1, seed=0)
    setup: list[float] = []
    solve: list[float] = []
    ours: dict[str, list[float]] = {a: [] for a in algorithms}
    values: dict[str, float] = {}
    peer_value = 0.0
    for _ in range(rounds):
        gc.collect()
        t0 = time.perf_counter()
        fn = peers.submodlib_objective(inst)
        costs = inst.costs.tolist()
        setup.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        out = peers.submodlib_maximize(fn, inst.budget, costs)
        solve.append(time.perf_counter() - t0)
        peer_value = bench.objective(inst.costs, inst.clusters, peers.picked_indices(out))
        del fn, out
        for alg in algorithms:
            t, sel = _median_time(
                lambda alg=alg: kpod.select(
                    inst.costs, inst.clusters, budget=inst.budget, algorithm=alg
                ),
                calls,
            )
            ours[alg].append(t)
            values[alg] = bench.objective(inst.costs, inst.clusters, sel.indices)
    row: dict[str, Any] = {
        "n": n,
        "k": k,
        "rounds": rounds,
        "setup": statistics.median(setup),
        "solve": statistics.median(solve),
        "peer_value": peer_value,
    }
    for alg in algorithms:
        ratios = [s / t for s, t in zip(solve, ours[alg], strict=True)]
        totals = [(s + u) / t for s, u, t in zip(solve, setup, ours[alg], strict=True)]
        row[alg] = {
            "time": statistics.median(ours[alg]),
            "ratio": statistics.median(ratios),
            "ratio_min": min(ratios),
            "ratio_max": max(ratios),
            "ratio_total": statistics.median(totals),
            "value_vs_peer": values[alg] / peer_value if peer_value else float("nan"),
        }
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", default="1e4,1e5", help="comma-separated n (default 1e4,1e5)")
    ap.add_argument("--clusters", default="1000,5", help="comma-separated K (default 1000,5)")
    ap.add_argument("--rounds", type=int, default=7, help="paired rounds per case (default 7)")
    ap.add_argument("--calls", type=int, default=9, help="kpod calls per round (median)")
    ap.add_argument(
        "--algorithms", default="greedy_max,threshold", help="kpod algorithms (default both)"
    )
    args = ap.parse_args()
    try:
        import submodlib_cpp  # noqa: F401
    except ImportError:
        sys.exit("bench_peer_rounds: submodlib-py is not installed; pip install 'kpod[bench]'")
    algorithms = [a for a in args.algorithms.split(",") if a]
    bench.print_run_info(" ".join([".venv/bin/python", *sys.argv]))
    head = "|   n |    K | rounds | submodlib set-up | submodlib solve |"
    sep = "| --: | ---: | -----: | ---------------: | --------------: |"
    for alg in algorithms:
        head += f" {alg} | speed-up (solve), median [min, max] | speed-up (set-up + solve) | value / submodlib |"
        sep += " --: | :-- | --: | --: |"
    print(head)
    print(sep)
    for n in _parse_sizes(args.sizes):
        for k in _parse_sizes(args.clusters):
            print(f"bench_peer_rounds: n={n} K={k} ...", file=sys.stderr, flush=True)
            r = run(n, k, args.rounds, args.calls, algorithms)
            line = (
                f"| {bench._fmt_n(n)} | {k} | {r['rounds']} | {bench._fmt_seconds(r['setup'])}"
                f" | {bench._fmt_seconds(r['solve'])} |"
            )
            for alg in algorithms:
                a = r[alg]
                line += (
                    f" {bench._fmt_seconds(a['time'])} | {a['ratio']:.1f}x"
                    f" [{a['ratio_min']:.1f}, {a['ratio_max']:.1f}] | {a['ratio_total']:.1f}x"
                    f" | {a['value_vs_peer']:.4f} |"
                )
            print(line, flush=True)
    print(
        "\nTimes are medians over the rounds (kpod: median of the calls in each round);"
        " a speed-up is submodlib's time in a round over kpod's in the same round."
    )


if __name__ == "__main__":
    main()
