"""The peer libraries on kpod's benchmark instances, and the audit of their cost handling.

Used by ``bench_select.py`` (``--peers``, ``--audit``) and ``bench_peer_rounds.py``;
not part of the kpod package (``kpod bench`` times kpod alone). Needs
``pip install 'kpod[bench]'`` (apricot-select, submodlib-py, psutil).

* *submodlib-py*: the KPOD objective encoded exactly as a native
  ``FeatureBased`` function (:func:`submodlib_objective`), solved with its
  cost-benefit ``LazyGreedy``.
* *apricot-select*: ``FeatureBasedSelection(concave_func="sqrt")`` on the
  cluster one-hot (:func:`apricot_features`), the same picks as the exact
  encoding (the audit checks it).

Each case runs isolated (``kpod.bench.run_isolated``) in a child that imports
this module from ``benches/``; values are recomputed with ``kpod.bench.objective``
like kpod's own.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from kpod.bench import (
    DEFAULT_BETA,
    Column,
    Instance,
    Isolated,
    JsonLines,
    _feasible,
    _fmt_bool,
    _fmt_bytes,
    _fmt_n,
    _fmt_ratio,
    _fmt_seconds,
    _fmt_speedup,
    _parse_choice,
    _progress,
    format_table,
    make_instance,
    objective,
    peak_rss_bytes,
    report_phase,
    run_isolated,
    selection_cost,
)

PEERS = ("submodlib", "apricot")
HERE = str(Path(__file__).resolve().parent)
"""This directory: the isolated children import ``peers`` from it."""


# --------------------------------------------------------------------------- adapters


def submodlib_objective(inst: Instance) -> Any:
    """The KPOD objective, exactly, as a submodlib-py ``FeatureBased`` function.

    Features: one per cluster (value 1, weight beta) and one per item (value 1,
    weight a_i = c_i); with the square-root mode each term is ``w_f * sqrt(m_f(S))``,
    so ``f(S) = beta * sum_k sqrt(|S ∩ C_k|) + sum_{i in S} c_i``. Built on the
    native class: the Python wrapper of 0.0.3 min-max rescales every feature
    column (sklearn MinMaxScaler) and rejects sparse input ("Found array with
    dim 3"), so it cannot carry this objective.
    """
    import submodlib_cpp

    k = inst.k
    features = [[(c, 1.0), (k + i, 1.0)] for i, c in enumerate(inst.clusters.tolist())]
    weights = [inst.beta] * k + inst.costs.tolist()
    return submodlib_cpp.FeatureBased(
        inst.n, submodlib_cpp.FeatureBased.squareRoot, features, inst.n + k, weights
    )


def submodlib_maximize(
    fn: Any, budget: float, costs: list[float] | None, optimizer: str = "LazyGreedy"
) -> list[tuple[int, float]]:
    """submodlib's ``maximize`` on ``fn`` (from ``submodlib_objective``), as
    timed by the benchmarks: cost-benefit greedy when ``costs`` are given,
    otherwise the plain cardinality form. Returns its (item, gain) pairs."""
    if costs is not None:
        return fn.maximize(optimizer, budget, False, False, 0.1, False, False, costs, True)
    return fn.maximize(optimizer, budget, False, False, 0.1, False, False, [], False)


def picked_indices(out: list[tuple[int, float]]) -> np.ndarray:
    """The item indices of a submodlib result, in pick order."""
    return np.array([i for i, _ in out], dtype=np.int64)


def apricot_features(inst: Instance, encoding: str) -> Any:
    """Feature matrix for apricot's ``FeatureBasedSelection(concave_func="sqrt")``.

    ``exact``: columns = clusters (value beta^2) + one per item (value c_i^2), so
    ``sum_d sqrt(sum_{i in S} X_id) = F(S)``. ``clusters``: the cluster columns
    only, i.e. ``F(S) - sum_{i in S} c_i``. With modular term = cost the
    cost-benefit greedy ranks by ``(c_i + dG)/c_i = 1 + dG/c_i`` on ``F`` and by
    ``dG/c_i`` on the cluster part, a monotone map, so both encodings make the
    same picks; the exact one needs ``n + K`` columns and apricot keeps every
    picked row dense (``|S| x (n + K)`` floats), so only ``clusters`` scales.
    """
    import scipy.sparse as sp

    n, k = inst.n, inst.k
    if encoding == "exact":
        rows = np.repeat(np.arange(n), 2)
        cols = np.stack([inst.clusters, k + np.arange(n)], axis=1).ravel()
        vals = np.stack([np.full(n, inst.beta**2), inst.costs**2], axis=1).ravel()
        return sp.csr_matrix((vals, (rows, cols)), shape=(n, n + k))
    if encoding == "clusters":
        return sp.csr_matrix(
            (np.full(n, inst.beta**2), (np.arange(n), inst.clusters)), shape=(n, k)
        )
    raise ValueError(f"unknown apricot encoding {encoding!r}; use 'exact' or 'clusters'")


def case_peer(
    peer: str,
    n: int,
    k: int,
    budget_fraction: float = 0.1,
    seed: int = 0,
    beta: float = DEFAULT_BETA,
    optimizer: str | None = None,
    encoding: str = "clusters",
    use_costs: bool = True,
    cost_scale: float = 1.0,
) -> dict[str, Any]:
    """One peer's cost-benefit greedy on the instance; set-up and solve timed apart."""
    inst = make_instance(
        n, k, budget_fraction=budget_fraction, seed=seed, beta=beta, cost_scale=cost_scale
    )
    own_value: float | None
    if peer == "submodlib":
        optimizer = optimizer or "LazyGreedy"
        t0 = time.perf_counter()
        fn = submodlib_objective(inst)
        costs = inst.costs.tolist()
        setup_s = time.perf_counter() - t0
        report_phase("setup", setup_s)
        t0 = time.perf_counter()
        out = submodlib_maximize(fn, inst.budget, costs if use_costs else None, optimizer)
        solve_s = time.perf_counter() - t0
        indices = picked_indices(out)
        own_value = float(fn.evaluate(set(indices.tolist()))) if indices.size else 0.0
        encoding = "exact"
    elif peer == "apricot":
        from apricot import FeatureBasedSelection

        optimizer = optimizer or "lazy"
        t0 = time.perf_counter()
        X = apricot_features(inst, encoding)
        setup_s = time.perf_counter() - t0
        report_phase("setup", setup_s)
        t0 = time.perf_counter()
        sel = FeatureBasedSelection(
            inst.budget, concave_func="sqrt", optimizer=optimizer, random_state=seed
        ).fit(X, sample_cost=inst.costs if use_costs else None)
        solve_s = time.perf_counter() - t0
        indices = np.asarray(sel.ranking, dtype=np.int64)
        gains = float(np.sum(sel.gains)) if indices.size else 0.0
        own_value = gains + (float(inst.costs[indices].sum()) if encoding == "clusters" else 0.0)
    else:
        raise ValueError(f"unknown peer {peer!r}; use one of {', '.join(PEERS)}")
    value = objective(inst.costs, inst.clusters, indices, beta=beta)
    cost = selection_cost(inst.costs, indices)
    return {
        "kind": "peer",
        "peer": peer,
        "optimizer": optimizer,
        "encoding": encoding,
        "use_costs": use_costs,
        "n": n,
        "k": k,
        "seed": seed,
        "budget_fraction": budget_fraction,
        "setup_seconds": setup_s,
        "solve_seconds": solve_s,
        "value": value,
        "own_value": own_value,
        "cost": cost,
        "budget": inst.budget,
        "feasible": _feasible(cost, inst.budget),
        "selected": int(indices.size),
        "indices_head": indices[:20].tolist(),
        "peak_rss": peak_rss_bytes(),
    }


# --------------------------------------------------------------------------- runs


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The peers' options of ``bench_select.py``."""
    parser.add_argument(
        "--peers",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="also run apricot-select and submodlib-py on the same instances (default: %(default)s)",
    )
    parser.add_argument(
        "--peer-names",
        default=",".join(PEERS),
        help="which peers --peers runs (default: %(default)s)",
    )
    parser.add_argument(
        "--peer-cap",
        type=float,
        default=120.0,
        help="seconds before a peer run is killed and reported as '> cap' (default: %(default)s)",
    )
    parser.add_argument(
        "--peer-max-n",
        type=float,
        default=1e6,
        help="largest n given to the peers (default: %(default)g)",
    )
    parser.add_argument(
        "--audit",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="check each peer optimizer's cost handling and value accounting on a small instance",
    )


def run_case(kwargs: dict[str, Any], *, time_cap: float, mem_cap: int | None = None) -> Isolated:
    """:func:`case_peer` in its own process."""
    return run_isolated("peers:case_peer", kwargs, time_cap=time_cap, mem_cap=mem_cap, paths=[HERE])


def run_peers(
    args: argparse.Namespace, select_rows: list[dict[str, Any]], sink: JsonLines
) -> list[dict[str, Any]]:
    """Every peer on every (n, K) of ``select_rows`` up to ``--peer-max-n``; the table rows."""
    peers = _parse_choice(args.peer_names, PEERS, "--peer-names")
    mem_cap = int(args.mem_cap_gib * (1 << 30))
    cases = list(dict.fromkeys((r["n"], r["k"]) for r in select_rows))  # the order kpod ran
    rows = []
    for n, k in cases:
        if n > args.peer_max_n:
            continue
        for peer in peers:
            _progress(
                f"bench_select: peer {peer} n={_fmt_n(n)} K={k} (cap {args.peer_cap:g} s) ..."
            )
            iso = run_case(
                {
                    "peer": peer,
                    "n": n,
                    "k": k,
                    "budget_fraction": args.budget_fraction,
                    "seed": args.seed,
                },
                time_cap=args.peer_cap,
                mem_cap=mem_cap,
            )
            sink.write(
                {
                    "kind": "peer",
                    "n": n,
                    "k": k,
                    "peer": peer,
                    "status": iso.status,
                    "message": iso.message,
                    "phases": iso.phases,
                    "wall": iso.wall_seconds,
                    "peak_rss": iso.peak_rss,
                    "raw": iso.result,
                }
            )
            if iso.status != "ok":
                _progress(f"  {iso.status}: {iso.message}")
            rows.append(
                _peer_row({"n": n, "k": k, "peer": peer, "iso": iso}, select_rows, args.peer_cap)
            )
    return rows


def _kpod_row(select_rows: list[dict[str, Any]], n: int, k: int, algorithm: str) -> dict[str, Any]:
    for r in select_rows:
        if r["n"] == n and r["k"] == k and r["algorithm"] == algorithm and "value" in r:
            return r
    return {}


def _peer_row(p: dict[str, Any], select_rows: list[dict[str, Any]], cap: float) -> dict[str, Any]:
    iso: Isolated = p["iso"]
    n, k = p["n"], p["k"]
    thr = _kpod_row(select_rows, n, k, "threshold")
    ref = _kpod_row(select_rows, n, k, "greedy_max")
    row: dict[str, Any] = {"n": n, "k": k, "peer": p["peer"], "peak_rss": iso.peak_rss}
    setup = iso.phases.get("setup")
    row["setup"] = setup
    if iso.result is not None:
        r = iso.result
        row.update(
            optimizer=r["optimizer"],
            solve=r["solve_seconds"],
            setup=r["setup_seconds"],
            value=r["value"],
            selected=r["selected"],
            feasible=r["feasible"],
            cost_over_budget=r["cost"] / r["budget"] if r["budget"] > 0 else None,
        )
        if ref.get("value"):
            row["vs_greedy_max"] = r["value"] / ref["value"]
        if thr.get("time"):
            row["speedup"] = r["solve_seconds"] / thr["time"]
            row["speedup_total"] = (r["solve_seconds"] + r["setup_seconds"]) / thr["time"]
        if ref.get("time"):
            row["speedup_gm"] = r["solve_seconds"] / ref["time"]
            row["speedup_gm_total"] = (r["solve_seconds"] + r["setup_seconds"]) / ref["time"]
        if thr.get("value"):
            row["kpod_value_ratio"] = thr["value"] / r["value"] if r["value"] else None
    else:
        row["optimizer"] = "LazyGreedy" if p["peer"] == "submodlib" else "lazy"
        spent = cap - (setup or 0.0)
        if iso.status == "timeout":
            row["solve"] = f"> {_fmt_seconds(spent)}" if setup is not None else "—"
            if setup is None:
                row["setup"] = f"> {_fmt_seconds(cap)}"
            if thr.get("time") and setup is not None:
                row["speedup"] = f"> {_fmt_speedup(spent / thr['time'])}"
            if thr.get("time"):
                row["speedup_total"] = f"> {_fmt_speedup(cap / thr['time'])}"
            if ref.get("time") and setup is not None:
                row["speedup_gm"] = f"> {_fmt_speedup(spent / ref['time'])}"
            if ref.get("time"):
                row["speedup_gm_total"] = f"> {_fmt_speedup(cap / ref['time'])}"
        else:
            row["solve"] = iso.status
        row["message"] = iso.message
    return row


PEER_COLUMNS = (
    Column("n", "n", _fmt_n),
    Column("k", "K", str),
    Column("peer", "peer", str, "left"),
    Column("optimizer", "optimizer", str, "left"),
    Column("setup", "set-up", _fmt_seconds),
    Column("solve", "solve", _fmt_seconds),
    Column("peak_rss", "peak RSS", _fmt_bytes),
    Column("vs_greedy_max", "value / greedy_max", _fmt_ratio),
    Column("kpod_value_ratio", "kpod threshold value / peer", _fmt_ratio),
    Column("speedup", "kpod speed-up (solve)", _fmt_speedup),
    Column("speedup_total", "kpod speed-up (set-up + solve)", _fmt_speedup),
    Column("speedup_gm", "greedy_max speed-up (solve)", _fmt_speedup),
    Column("speedup_gm_total", "greedy_max speed-up (set-up + solve)", _fmt_speedup),
    Column("cost_over_budget", "cost / budget", lambda v: f"{v:.6f}"),
    Column("feasible", "within budget", _fmt_bool),
)


# --------------------------------------------------------------------------- audit


def case_audit_reference(
    n: int, k: int, budget_fraction: float, seed: int, beta: float, cost_scale: float
) -> dict[str, Any]:
    """kpod's greedy_max and density values on the audit instance (for the audit table)."""
    import kpod

    inst = make_instance(
        n, k, budget_fraction=budget_fraction, seed=seed, beta=beta, cost_scale=cost_scale
    )
    out = {}
    for algorithm in ("greedy_max", "density"):
        sel = kpod.select(
            inst.costs, inst.clusters, budget=inst.budget, beta=beta, algorithm=algorithm
        )
        out[algorithm] = objective(inst.costs, inst.clusters, np.asarray(sel.indices), beta=beta)
    return out


AUDIT_COST_SCALE = 3.0
AUDIT_RUNS: tuple[tuple[str, str, str], ...] = (
    ("submodlib", "NaiveGreedy", "exact"),
    ("submodlib", "LazyGreedy", "exact"),
    ("submodlib", "StochasticGreedy", "exact"),
    ("submodlib", "LazierThanLazyGreedy", "exact"),
    ("apricot", "naive", "exact"),
    ("apricot", "lazy", "exact"),
    ("apricot", "lazy", "clusters"),
    ("apricot", "two-stage", "exact"),
    ("apricot", "approximate-lazy", "exact"),
    ("apricot", "stochastic", "exact"),
    ("apricot", "sample", "exact"),
)


def run_audit(
    n: int = 2000,
    k: int = 5,
    budget_fraction: float = 0.1,
    seed: int = 0,
    beta: float = DEFAULT_BETA,
    cost_scale: float = AUDIT_COST_SCALE,
    mem_cap: int | None = None,
    runs: Sequence[tuple[str, str, str]] = AUDIT_RUNS,
) -> list[dict[str, Any]]:
    """Each peer optimizer with costs on one small instance: does it respect the budget,
    does its own value match F, and how good is it against kpod's greedy_max.

    Costs are scaled (``cost_scale``, default 3) so that a budget misread as an
    item count admits far more cost than the budget: an optimizer that ignores
    costs then shows up as ``within budget: NO``.
    """
    common = {
        "n": n,
        "k": k,
        "budget_fraction": budget_fraction,
        "seed": seed,
        "beta": beta,
        "cost_scale": cost_scale,
    }
    ref = run_isolated("peers:case_audit_reference", common, time_cap=120, paths=[HERE])
    gm = ref.result.get("greedy_max") if ref.result else None
    rows = []
    for peer, optimizer, encoding in runs:
        iso = run_isolated(
            "peers:case_peer",
            {**common, "peer": peer, "optimizer": optimizer, "encoding": encoding},
            time_cap=120,
            mem_cap=mem_cap,
            paths=[HERE],
        )
        row: dict[str, Any] = {"peer": peer, "optimizer": optimizer, "encoding": encoding}
        if iso.result is None:
            row["status"] = iso.status
            row["selected"] = iso.status
            row["message"] = iso.message
        else:
            r = iso.result
            row.update(
                status="ok",
                selected=r["selected"],
                cost_over_budget=r["cost"] / r["budget"],
                feasible=r["feasible"],
                value=r["value"],
                own_value=r["own_value"],
                agrees=(
                    r["own_value"] is not None
                    and abs(r["own_value"] - r["value"]) <= 1e-6 * max(1.0, abs(r["value"]))
                ),
                vs_greedy_max=(r["value"] / gm) if gm else None,
            )
        rows.append(row)
    if ref.result:
        rows.append(
            {
                "peer": "kpod",
                "optimizer": "density",
                "encoding": "native",
                "status": "ok",
                "value": ref.result["density"],
                "vs_greedy_max": ref.result["density"] / gm if gm else None,
            }
        )
    return rows


AUDIT_COLUMNS = (
    Column("peer", "library", str, "left"),
    Column("optimizer", "optimizer", str, "left"),
    Column("encoding", "encoding", str, "left"),
    Column("selected", "selected", str),
    Column("cost_over_budget", "cost / budget", _fmt_ratio),
    Column("feasible", "within budget", _fmt_bool),
    Column("value", "F(S) (ours)", lambda v: f"{v:.4f}"),
    Column("own_value", "library's own value", lambda v: f"{v:.4f}"),
    Column("agrees", "agrees", lambda v: "yes" if v else "**NO**"),
    Column("vs_greedy_max", "F / kpod greedy_max", _fmt_ratio),
)


def peer_section(rows: Sequence[dict[str, Any]]) -> list[str]:
    """The markdown of the peers' table (nothing without rows)."""
    if not rows:
        return []
    notes = [
        f"- {r['peer']} n={_fmt_n(r['n'])} K={r['k']}: {r['message']}"
        for r in rows
        if r.get("message")
    ]
    return [
        "### Peers on the same instances",
        "",
        format_table(rows, PEER_COLUMNS),
        *(["", *notes] if notes else []),
        "",
        "Speed-up = peer time / kpod `threshold` (or `greedy_max`) median time on the "
        "same instance; `greedy_max` is the kpod algorithm whose value is at least the "
        "peers' cost-benefit greedy by construction. `> x` means the peer was killed at the "
        "cap, so the true figure is larger.",
        "",
    ]


def audit_section(rows: Sequence[dict[str, Any]]) -> list[str]:
    """The markdown of the audit table (nothing without rows)."""
    if not rows:
        return []
    notes = [f"- {r['peer']} {r['optimizer']}: {r['message']}" for r in rows if r.get("message")]
    return [
        "### Peer optimizers: cost handling and value accounting",
        "",
        f"One instance: n = 2000, K = 5, costs {AUDIT_COST_SCALE:g} x U[0.05, 1), budget 10 % "
        "of the total cost, so a budget read as an item count admits about three times the "
        "budget. `library's own value` is the library's `evaluate()` (submodlib) or the sum "
        "of its reported gains (apricot; plus the cost sum for the `clusters` encoding).",
        "",
        format_table(rows, AUDIT_COLUMNS),
        *(["", *notes] if notes else []),
        "",
    ]
