"""Scheduler benchmark: instances, isolated timed runs and the results tables.

What ``kpod bench`` runs, and the base of ``benches/bench_select.py`` (the full
run recorded in ``benches/RESULTS.md``, which adds the peer libraries and
their audit from ``benches/peers.py``; those are not part of the package).
Everything here needs numpy only; the native scheduler and psutil are
imported where they are used.

How a number is made:

* **Instances** (:func:`make_instance`): ``n`` items, costs uniform in
  ``[0.05, 1.0)``, cluster ids uniform in ``[0, K)``, the KPOD objective
  ``F(S) = sum_{i in S} c_i + beta * sum_k sqrt(|S ∩ C_k|)`` (modular term
  equal to the cost, ``beta = 12``) and a budget that is a stated fraction of
  the total cost (default 10 %). A seed makes every instance reproducible, so a
  parent process and its workers build identical instances without copying.
* **Isolation** (:func:`run_isolated`): every case runs in a fresh Python
  process, so its peak RSS is its own; the parent kills it when it passes a
  wall-clock cap or a memory cap and reports that honestly (``> cap``).
* **Values** are always recomputed here by :func:`objective` from the selected
  indices, for kpod and for every peer (``benches/peers.py``) alike; no
  library's own gain accounting is trusted. Feasibility (cost <= budget) is
  checked the same way.
* **Memory-pass floor**: the time a loop needs just to stream its input from
  memory, ``bytes / bandwidth``, with the bandwidth measured here by a numpy
  copy (:func:`measure_bandwidth`). Two floors are reported: one pass over the
  inputs (``n x bytes per item``), and one item read per marginal-gain
  evaluation (``evaluations x bytes per item``).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as _dt
import importlib
import json
import math
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from kpod.schedule import ALGORITHMS

__all__ = [
    "ALGORITHMS",
    "Column",
    "Instance",
    "Isolated",
    "JsonLines",
    "Report",
    "add_arguments",
    "format_table",
    "make_instance",
    "measure_bandwidth",
    "objective",
    "render",
    "run_benchmarks",
    "run_from_args",
    "run_isolated",
]

DEFAULT_BETA = 12.0
COST_RANGE = (0.05, 1.0)
BYTES_PER_ITEM = 16  # float64 cost + int64 cluster id read per item (modular term = cost)


# --------------------------------------------------------------------------- instances


@dataclass(frozen=True)
class Instance:
    """One knapsack instance of the KPOD objective (modular term = cost)."""

    costs: np.ndarray  # float64, > 0
    clusters: np.ndarray  # int64 in [0, k)
    budget: float
    k: int
    beta: float
    budget_fraction: float
    seed: int

    @property
    def n(self) -> int:
        return int(self.costs.shape[0])


def make_instance(
    n: int,
    k: int,
    *,
    budget_fraction: float = 0.1,
    seed: int = 0,
    beta: float = DEFAULT_BETA,
    cost_scale: float = 1.0,
) -> Instance:
    """Costs ``cost_scale x U[0.05, 1.0)``, ``k`` uniform clusters, budget ``fraction x total cost``."""
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    if k < 1:
        raise ValueError(f"k (number of clusters) must be >= 1, got {k}")
    if not 0.0 < budget_fraction <= 1.0:
        raise ValueError(f"budget_fraction must be in (0, 1], got {budget_fraction}")
    if not cost_scale > 0.0:
        raise ValueError(f"cost_scale must be > 0, got {cost_scale}")
    rng = np.random.default_rng(seed)
    costs = cost_scale * rng.uniform(COST_RANGE[0], COST_RANGE[1], size=n)
    clusters = rng.integers(0, k, size=n, dtype=np.int64)
    budget = float(budget_fraction * costs.sum())
    return Instance(costs, clusters, budget, k, beta, budget_fraction, seed)


def objective(
    costs: np.ndarray,
    clusters: np.ndarray,
    indices: Iterable[int] | np.ndarray,
    *,
    beta: float = DEFAULT_BETA,
    modular: np.ndarray | None = None,
) -> float:
    """``F(S) = sum_{i in S} a_i + beta * sum_k sqrt(|S ∩ C_k|)``, computed from scratch.

    ``a = costs`` when ``modular`` is None (KPOD). Raises ValueError on repeated
    or out-of-range indices, which would mean a solver returned a non-set.
    """
    idx = np.asarray(list(indices) if not isinstance(indices, np.ndarray) else indices)
    idx = idx.astype(np.int64, copy=False).ravel()
    n = costs.shape[0]
    if idx.size == 0:
        return 0.0
    if idx.min() < 0 or idx.max() >= n:
        raise ValueError(f"selected indices out of range [0, {n})")
    if np.unique(idx).size != idx.size:
        raise ValueError("selected indices contain duplicates")
    a = costs if modular is None else modular
    counts = np.bincount(clusters[idx])
    return float(a[idx].sum() + beta * np.sqrt(counts).sum())


def selection_cost(costs: np.ndarray, indices: np.ndarray) -> float:
    return float(costs[np.asarray(indices, dtype=np.int64)].sum()) if len(indices) else 0.0


def _feasible(cost: float, budget: float) -> bool:
    return cost <= budget * (1.0 + 1e-12) + 1e-12


# --------------------------------------------------------------------------- measurement


def peak_rss_bytes() -> int:
    """Peak resident set size of this process so far (Linux reports KiB, macOS bytes)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak if sys.platform == "darwin" else peak * 1024)


def measure_bandwidth(nbytes: int = 1 << 27, repeats: int = 10) -> float:
    """Memory bandwidth in bytes/s from a single-threaded numpy copy (STREAM "copy").

    Counts read + write (``2 x nbytes`` per copy), best of ``repeats``.
    """
    src = np.ones(nbytes // 8, dtype=np.float64)
    dst = np.empty_like(src)
    np.copyto(dst, src)  # fault the pages in
    best = math.inf
    for _ in range(repeats):
        t0 = time.perf_counter()
        np.copyto(dst, src)
        best = min(best, time.perf_counter() - t0)
    return 2.0 * src.nbytes / best


def time_calls(
    fn: Callable[[], Any], repeats: int, max_seconds: float = math.inf
) -> tuple[list[float], Any]:
    """Wall-clock seconds of up to ``repeats`` calls of ``fn`` and the last result.

    Stops repeating once the calls so far took ``max_seconds`` (at least one call),
    so slow reference algorithms at large n do not dominate a run.
    """
    times: list[float] = []
    result: Any = None
    for _ in range(max(1, repeats)):
        t0 = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t0)
        if sum(times) >= max_seconds:
            break
    return times, result


def machine_info() -> dict[str, Any]:
    """CPU model, core count, load average and date, for the record."""
    model = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    load = os.getloadavg() if hasattr(os, "getloadavg") else (float("nan"),) * 3
    return {
        "cpu": model,
        "cores": os.cpu_count(),
        "load_avg": [round(x, 2) for x in load],
        "date_utc": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "python": platform.python_version(),
        "numpy": np.__version__,
    }


# --------------------------------------------------------------------------- isolation


_PHASE_FILE: Any = None


def print_run_info(command: str) -> None:
    """The Command / Machine / Date lines that head a results table in RESULTS.md."""
    print(f"Command: `{command}`  ")
    m = machine_info()
    print(f"Machine: {m['cpu']}, {m['cores']} cores; Python {m['python']}, numpy {m['numpy']}  ")
    print(f"Date: {m['date_utc']}; load average at start {m['load_avg']}\n")


def report_phase(name: str, seconds: float) -> None:
    """From inside an isolated case: record that ``name`` finished after ``seconds``.

    The parent keeps these even when it has to kill the case at its cap, so a
    peer that is killed mid-solve still reports how long its set-up took.
    """
    if _PHASE_FILE is not None:
        _PHASE_FILE.write(json.dumps({"event": "phase", "name": name, "seconds": seconds}) + "\n")
        _PHASE_FILE.flush()


@dataclass
class Isolated:
    """Outcome of :func:`run_isolated`."""

    status: str  # "ok" | "timeout" | "memory" | "error"
    result: dict[str, Any] | None
    wall_seconds: float
    peak_rss: int | None  # bytes; the child's own figure when it finished, else the polled max
    phases: dict[str, float] = field(default_factory=dict)
    message: str = ""


def _package_root() -> str:
    return str(Path(__file__).resolve().parents[1])


def run_isolated(
    target: str,
    kwargs: dict[str, Any] | None = None,
    *,
    args: Sequence[Any] = (),
    time_cap: float | None = None,
    mem_cap: int | None = None,
    poll_seconds: float = 0.02,
    paths: Sequence[str] = (),
) -> Isolated:
    """Run ``module:function(*args, **kwargs)`` in a fresh Python process.

    The function must return a JSON-serialisable value. The child is killed
    when it runs longer than ``time_cap`` seconds or its RSS passes
    ``mem_cap`` bytes (needs psutil). Arguments go through JSON as well.
    ``paths`` go first on the child's ``PYTHONPATH`` (for a ``module`` outside
    the package, such as ``benches/peers.py``).
    """
    try:
        import psutil
    except ImportError:  # pragma: no cover - psutil is in the bench extra
        psutil = None
    with tempfile.TemporaryDirectory(prefix="kpod-bench-") as tmp:
        spec = Path(tmp) / "spec.json"
        out = Path(tmp) / "out.jsonl"
        err = Path(tmp) / "stderr.txt"
        spec.write_text(json.dumps({"target": target, "args": list(args), "kwargs": kwargs or {}}))
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(
            p for p in (*paths, _package_root(), env.get("PYTHONPATH", "")) if p
        )
        cmd = [
            sys.executable,
            "-c",
            "from kpod.bench import _worker; _worker()",
            str(spec),
            str(out),
        ]
        t0 = time.perf_counter()
        with open(err, "wb") as err_fh:
            proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=err_fh)
            watched = None
            if psutil is not None:
                with contextlib.suppress(Exception):
                    watched = psutil.Process(proc.pid)
            polled_peak = 0
            status = ""
            try:
                while proc.poll() is None:
                    elapsed = time.perf_counter() - t0
                    if watched is not None:
                        with contextlib.suppress(Exception):
                            polled_peak = max(polled_peak, watched.memory_info().rss)
                    if time_cap is not None and elapsed > time_cap:
                        status = "timeout"
                    elif mem_cap is not None and polled_peak > mem_cap:
                        status = "memory"
                    if status:
                        proc.kill()
                        proc.wait()
                        break
                    time.sleep(poll_seconds)
            except BaseException:
                proc.kill()
                proc.wait()
                raise
        wall = time.perf_counter() - t0
        phases: dict[str, float] = {}
        result: dict[str, Any] | None = None
        message = ""
        if out.exists():
            for line in out.read_text().splitlines():
                try:
                    ev = json.loads(line)
                except json.JSONDecodeError:
                    continue  # a line cut short by a kill
                if ev.get("event") == "phase":
                    phases[ev["name"]] = float(ev["seconds"])
                elif ev.get("event") == "result":
                    result = ev["data"]
                elif ev.get("event") == "error":
                    message = f"{ev['type']}: {ev['message']}"
        if status == "timeout":
            message = f"killed at the {time_cap:g} s cap"
        elif status == "memory":
            message = f"killed at the {_fmt_bytes(mem_cap)} memory cap"
        elif result is not None:
            status = "ok"
        else:
            status = "error"
            if not message:
                tail = err.read_text(errors="replace").strip().splitlines()[-5:]
                message = f"exit code {proc.returncode}: " + " | ".join(tail)
        peak = None
        if result is not None and isinstance(result.get("peak_rss"), int):
            peak = int(result["peak_rss"])
        elif polled_peak:
            peak = polled_peak
        return Isolated(status, result, wall, peak, phases, message)


def _worker() -> None:
    """Entry point of an isolated child: ``spec.json out.jsonl`` on the command line."""
    global _PHASE_FILE
    spec = json.loads(Path(sys.argv[1]).read_text())
    with open(sys.argv[2], "a", encoding="utf-8") as fh:
        _PHASE_FILE = fh
        try:
            module, _, name = spec["target"].partition(":")
            fn = getattr(importlib.import_module(module), name)
            data = fn(*spec["args"], **spec["kwargs"])
            if isinstance(data, dict):
                data.setdefault("peak_rss", peak_rss_bytes())
            fh.write(json.dumps({"event": "result", "data": data}) + "\n")
        except Exception as exc:  # reported to the parent, which prints it
            fh.write(
                json.dumps(
                    {
                        "event": "error",
                        "type": type(exc).__name__,
                        "message": str(exc)[:500],
                        "traceback": traceback.format_exc()[-2000:],
                    }
                )
                + "\n"
            )
        fh.flush()


# --------------------------------------------------------------------------- cases (run isolated)


def case_select(
    n: int,
    k: int,
    algorithm: str,
    eps: float = 0.1,
    repeats: int = 3,
    budget_fraction: float = 0.1,
    seed: int = 0,
    beta: float = DEFAULT_BETA,
    max_seconds: float = 30.0,
) -> dict[str, Any]:
    """Time ``kpod.select`` on one instance; value and cost recomputed here.

    Up to ``repeats`` calls, fewer once they took ``max_seconds`` together.
    """
    import kpod

    t0 = time.perf_counter()
    inst = make_instance(n, k, budget_fraction=budget_fraction, seed=seed, beta=beta)
    gen_s = time.perf_counter() - t0
    rss_before = peak_rss_bytes()

    def call() -> Any:
        return kpod.select(
            inst.costs, inst.clusters, budget=inst.budget, beta=beta, algorithm=algorithm, eps=eps
        )

    times, sel = time_calls(call, repeats, max_seconds)
    indices = np.asarray(sel.indices)
    value = objective(inst.costs, inst.clusters, indices, beta=beta)
    cost = selection_cost(inst.costs, indices)
    return {
        "kind": "select",
        "n": n,
        "k": k,
        "algorithm": algorithm,
        "eps": eps,
        "budget_fraction": budget_fraction,
        "seed": seed,
        "times": times,
        "generate_seconds": gen_s,
        "value": value,
        "reported_value": float(sel.value),
        "cost": cost,
        "budget": inst.budget,
        "feasible": _feasible(cost, inst.budget),
        "selected": int(indices.size),
        "evaluations": int(sel.evaluations),
        "rss_after_instance": rss_before,
        "peak_rss": peak_rss_bytes(),
    }


def case_curriculum(
    n_questions: int,
    stages: int = 50,
    k: int = 5,
    min_steps: int = 1,
    max_steps: int = 8,
    eps: float = 0.1,
    algorithm: str = "threshold",
    seed: int = 0,
    beta: float = DEFAULT_BETA,
) -> dict[str, Any]:
    """Build a ``kpod.Curriculum`` and run ``stages`` calls of ``advance()``, all timed."""
    import kpod

    rng = np.random.default_rng(seed)
    n_steps = rng.integers(min_steps, max_steps + 1, size=n_questions, dtype=np.int64)
    offsets = np.zeros(n_questions + 1, dtype=np.int64)
    np.cumsum(n_steps, out=offsets[1:])
    difficulty = rng.uniform(COST_RANGE[0], COST_RANGE[1], size=int(offsets[-1]))
    clusters = rng.integers(0, k, size=n_questions, dtype=np.int64)
    rss_before = peak_rss_bytes()

    t0 = time.perf_counter()
    cur = kpod.Curriculum(
        difficulty, offsets, clusters, stages=stages, beta=beta, eps=eps, algorithm=algorithm
    )
    build_s = time.perf_counter() - t0
    stage_times: list[float] = []
    selected = 0
    evaluations = 0
    for _ in range(stages):
        ts = time.perf_counter()
        res = cur.advance()
        stage_times.append(time.perf_counter() - ts)
        selected += len(res.selected)
        evaluations += res.evaluations
    total = time.perf_counter() - t0
    return {
        "kind": "curriculum",
        "n_questions": n_questions,
        "n_steps_total": int(offsets[-1]),
        "stages": stages,
        "k": k,
        "eps": eps,
        "algorithm": algorithm,
        "build_seconds": build_s,
        "stage_times": stage_times,
        "total_seconds": total,
        "selected_total": selected,
        "evaluations": evaluations,
        "rss_after_instance": rss_before,
        "peak_rss": peak_rss_bytes(),
    }


def case_bandwidth(nbytes: int = 1 << 27, repeats: int = 10) -> dict[str, Any]:
    return {"kind": "bandwidth", "bytes_per_second": measure_bandwidth(nbytes, repeats)}


# --------------------------------------------------------------------------- tables


@dataclass(frozen=True)
class Column:
    """A table column: ``key`` into the row dict, its header, and a formatter."""

    key: str
    header: str
    fmt: Callable[[Any], str] = str
    align: str = "right"  # "left" | "right"


def format_table(rows: Sequence[dict[str, Any]], columns: Sequence[Column]) -> str:
    """A GitHub-markdown table; missing values (absent or None) print as an em dash."""
    cells = [
        [("—" if row.get(c.key) is None else c.fmt(row[c.key])) for c in columns] for row in rows
    ]
    # at least 3 wide so the delimiter row always holds a dash next to its colon
    widths = [max([3, len(c.header)] + [len(r[j]) for r in cells]) for j, c in enumerate(columns)]

    def line(values: Sequence[str]) -> str:
        parts = []
        for v, w, c in zip(values, widths, columns, strict=True):
            parts.append(v.ljust(w) if c.align == "left" else v.rjust(w))
        return "| " + " | ".join(parts) + " |"

    rule = (
        "| "
        + " | ".join(
            ("-" * (w - 1) + ":") if c.align == "right" else "-" * w
            for w, c in zip(widths, columns, strict=True)
        )
        + " |"
    )
    return "\n".join([line([c.header for c in columns]), rule, *(line(r) for r in cells)])


def _fmt_seconds(s: Any) -> str:
    if isinstance(s, str):
        return s
    s = float(s)
    if s < 1e-3:
        return f"{s * 1e6:.0f} µs"
    if s < 1.0:
        return f"{s * 1e3:.1f} ms" if s < 0.1 else f"{s * 1e3:.0f} ms"
    return f"{s:.2f} s" if s < 100 else f"{s:.0f} s"


def _fmt_bytes(b: Any) -> str:
    if b is None:
        return "—"
    b = float(b)
    if b >= 1 << 30:
        return f"{b / (1 << 30):.2f} GiB"
    return f"{b / (1 << 20):.0f} MiB"


def _fmt_count(x: Any) -> str:
    x = float(x)
    for div, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(x) >= div:
            return f"{x / div:.3g}{suffix}"
    return f"{x:.0f}"


def _fmt_n(x: Any) -> str:
    x = int(x)
    exp = round(math.log10(x)) if x > 0 else 0
    return f"1e{exp}" if x == 10**exp else f"{x:,}"


def _fmt_ratio(x: Any) -> str:
    return x if isinstance(x, str) else f"{float(x):.4f}"


def _fmt_speedup(x: Any) -> str:
    if isinstance(x, str):
        return x
    x = float(x)
    return f"{x:,.0f}×" if x >= 100 else f"{x:.1f}×"


def _fmt_bool(x: Any) -> str:
    return "yes" if x else "**NO**"


# --------------------------------------------------------------------------- orchestration


def _parse_sizes(text: str) -> list[int]:
    out = []
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        try:
            out.append(int(float(part)))
        except ValueError:
            raise ValueError(f"--sizes: {part!r} is not a number (use e.g. 1e4,1e5)") from None
    if not out or min(out) < 1:
        raise ValueError(f"--sizes must list positive sizes, got {text!r}")
    return out


def _parse_choice(text: str, allowed: Sequence[str], what: str) -> list[str]:
    items = [x.strip() for x in text.split(",") if x.strip()]
    bad = [x for x in items if x not in allowed]
    if bad or not items:
        raise ValueError(f"{what}: unknown {bad or text!r}; choose from {', '.join(allowed)}")
    return items


def add_arguments(parser: argparse.ArgumentParser, *, full: bool = False) -> None:
    """Options of ``kpod bench`` (quick defaults) and ``benches/bench_select.py`` (full; it
    adds the peers' options)."""
    parser.add_argument(
        "--sizes",
        default="1e4,1e5,1e6,1e7" if full else "1e4,1e5,1e6",
        help="comma-separated item counts n (default: %(default)s)",
    )
    parser.add_argument(
        "--clusters",
        default="1000,5" if full else "1000",
        help="comma-separated cluster counts K (default: %(default)s)",
    )
    parser.add_argument(
        "--algorithms",
        default=",".join(ALGORITHMS),
        help="kpod algorithms to time (default: %(default)s); greedy_max is the value reference",
    )
    parser.add_argument(
        "--eps", type=float, default=0.1, help="threshold eps (default: %(default)s)"
    )
    parser.add_argument(
        "--repeats", type=int, default=3, help="timed calls per case; the median is reported"
    )
    parser.add_argument(
        "--max-seconds",
        type=float,
        default=30.0 if full else 5.0,
        help="stop repeating a case once its calls took this long together (default: %(default)s)",
    )
    parser.add_argument(
        "--budget-fraction",
        type=float,
        default=0.1,
        help="budget as a fraction of the total cost (default: %(default)s)",
    )
    parser.add_argument("--seed", type=int, default=0, help="instance seed (default: %(default)s)")
    parser.add_argument(
        "--mem-cap-gib",
        type=float,
        default=8.0,
        help="RSS at which any case is killed, GiB (default: %(default)s)",
    )
    parser.add_argument(
        "--case-cap",
        type=float,
        default=600.0,
        help="seconds before a kpod case is killed (default: %(default)s)",
    )
    parser.add_argument(
        "--curriculum",
        default="1e6,1e7" if full else "1e6",
        help="comma-separated question counts for the curriculum benchmark, 0 to skip "
        "(default: %(default)s)",
    )
    parser.add_argument(
        "--stages", type=int, default=50, help="curriculum stages (default: %(default)s)"
    )
    parser.add_argument(
        "--json", type=Path, default=None, help="also append every result as a JSON line here"
    )


@dataclass
class Report:
    """The rows of one run, for :func:`render`."""

    machine: dict[str, Any]
    bandwidth: float | None
    select_rows: list[dict[str, Any]]
    curriculum_rows: list[dict[str, Any]]
    end: dict[str, Any] = field(default_factory=dict)


def _progress(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


class JsonLines:
    """Appends every finished case to a JSON-lines file, so an interrupted run keeps its rows."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)

    def write(self, record: dict[str, Any]) -> None:
        if self.path is not None:
            with open(self.path, "a", encoding="utf-8") as fh:
                fh.write(json.dumps(record) + "\n")


def _select_row(iso: Isolated, n: int, k: int, algorithm: str, eps: float) -> dict[str, Any]:
    row: dict[str, Any] = {"n": n, "k": k, "algorithm": algorithm, "eps": eps, "status": iso.status}
    if iso.result is None:
        row["time"] = (
            f"> {_fmt_seconds(iso.wall_seconds)}" if iso.status == "timeout" else iso.status
        )
        row["peak_rss"] = iso.peak_rss
        row["message"] = iso.message
        return row
    r = iso.result
    times = r["times"]
    med = statistics.median(times)
    row.update(
        time=med,
        time_min=min(times),
        calls=len(times),
        evaluations=r["evaluations"],
        evals_per_s=r["evaluations"] / med if med > 0 else None,
        peak_rss=r["peak_rss"],
        value=r["value"],
        reported_value=r["reported_value"],
        selected=r["selected"],
        cost_over_budget=r["cost"] / r["budget"] if r["budget"] > 0 else None,
        feasible=r["feasible"],
        times=times,
    )
    return row


def run_benchmarks(args: argparse.Namespace) -> Report:
    """Run every case the options ask for, each isolated; returns the rows for the tables."""
    sizes = _parse_sizes(args.sizes)
    ks = [int(x) for x in _parse_sizes(args.clusters)]
    algorithms = _parse_choice(args.algorithms, ALGORITHMS, "--algorithms")
    if not 0.0 < args.eps < 1.0:
        raise ValueError(f"--eps must be in (0, 1), got {args.eps}")
    if args.repeats < 1:
        raise ValueError(f"--repeats must be >= 1, got {args.repeats}")
    mem_cap = int(args.mem_cap_gib * (1 << 30))
    sink = JsonLines(args.json)
    machine = machine_info()
    sink.write({"kind": "machine", **machine})

    bw = run_isolated("kpod.bench:case_bandwidth", time_cap=120)
    bandwidth = bw.result["bytes_per_second"] if bw.result else None
    sink.write({"kind": "bandwidth", "bytes_per_second": bandwidth})

    select_rows: list[dict[str, Any]] = []
    # greedy_max first: it is the value reference of the other rows.
    ordered = sorted(algorithms, key=lambda a: (a != "greedy_max", ALGORITHMS.index(a)))
    for n in sizes:
        for k in ks:
            for algorithm in ordered:
                _progress(f"kpod bench: select {algorithm} n={_fmt_n(n)} K={k} ...")
                iso = run_isolated(
                    "kpod.bench:case_select",
                    {
                        "n": n,
                        "k": k,
                        "algorithm": algorithm,
                        "eps": args.eps,
                        "repeats": args.repeats,
                        "budget_fraction": args.budget_fraction,
                        "seed": args.seed,
                        "max_seconds": args.max_seconds,
                    },
                    time_cap=args.case_cap,
                    mem_cap=mem_cap,
                )
                row = _select_row(iso, n, k, algorithm, args.eps)
                if iso.status != "ok":
                    _progress(f"  {iso.status}: {iso.message}")
                select_rows.append(row)
                sink.write({"kind": "select", **row, "raw": iso.result})
    _attach_reference(select_rows)

    curriculum_rows: list[dict[str, Any]] = []
    for nq in (
        _parse_sizes(args.curriculum) if str(args.curriculum).strip() not in ("", "0") else []
    ):
        _progress(f"kpod bench: curriculum {args.stages} stages over {_fmt_n(nq)} questions ...")
        iso = run_isolated(
            "kpod.bench:case_curriculum",
            {"n_questions": nq, "stages": args.stages, "eps": args.eps, "seed": args.seed},
            time_cap=args.case_cap,
            mem_cap=mem_cap,
        )
        curriculum_rows.append(_curriculum_row(iso, nq, args.stages))
        sink.write({"kind": "curriculum", "status": iso.status, "raw": iso.result})
        if iso.status != "ok":
            _progress(f"  {iso.status}: {iso.message}")

    end = machine_info()
    sink.write({"kind": "end", **end})
    return Report(machine, bandwidth, select_rows, curriculum_rows, end)


def _attach_reference(rows: list[dict[str, Any]]) -> None:
    ref = {
        (r["n"], r["k"]): r["value"]
        for r in rows
        if r["algorithm"] == "greedy_max" and r.get("value") is not None
    }
    for r in rows:
        v = ref.get((r["n"], r["k"]))
        if v and r.get("value") is not None:
            r["vs_greedy_max"] = r["value"] / v


def _curriculum_row(iso: Isolated, nq: int, stages: int) -> dict[str, Any]:
    row: dict[str, Any] = {"n_questions": nq, "stages": stages, "peak_rss": iso.peak_rss}
    if iso.result is None:
        row["total"] = iso.status
        row["message"] = iso.message
        return row
    r = iso.result
    st = r["stage_times"]
    row.update(
        n_steps=r["n_steps_total"],
        k=r["k"],
        total=r["total_seconds"],
        build=r["build_seconds"],
        stage_median=statistics.median(st) if st else None,
        stage_max=max(st) if st else None,
        selected=r["selected_total"],
        evaluations=r["evaluations"],
    )
    return row


# --------------------------------------------------------------------------- rendering

SELECT_COLUMNS = (
    Column("n", "n", _fmt_n),
    Column("k", "K", str),
    Column("algorithm", "algorithm", str, "left"),
    Column("time", "time/call (median)", _fmt_seconds),
    Column("time_min", "min", _fmt_seconds),
    Column("calls", "calls", str),
    Column("evaluations", "evaluations", _fmt_count),
    Column("evals_per_s", "evals/s", _fmt_count),
    Column("floor_pass", "1-pass floor", _fmt_seconds),
    Column("floor_evals", "eval floor", _fmt_seconds),
    Column("peak_rss", "peak RSS", _fmt_bytes),
    Column("vs_greedy_max", "value / greedy_max", _fmt_ratio),
    Column("selected", "selected", _fmt_count),
    Column("cost_over_budget", "cost / budget", _fmt_ratio),
)

CURRICULUM_COLUMNS = (
    Column("n_questions", "questions", _fmt_n),
    Column("n_steps", "steps", _fmt_count),
    Column("k", "K", str),
    Column("stages", "stages", str),
    Column("total", "total (build + all stages)", _fmt_seconds),
    Column("build", "build", _fmt_seconds),
    Column("stage_median", "stage median", _fmt_seconds),
    Column("stage_max", "stage max", _fmt_seconds),
    Column("selected", "selections", _fmt_count),
    Column("peak_rss", "peak RSS", _fmt_bytes),
)


def _add_floors(rows: list[dict[str, Any]], bandwidth: float | None) -> None:
    if not bandwidth:
        return
    for r in rows:
        r["floor_pass"] = r["n"] * BYTES_PER_ITEM / bandwidth
        if r.get("evaluations") is not None:
            r["floor_evals"] = r["evaluations"] * BYTES_PER_ITEM / bandwidth


def _notes(rows: Sequence[dict[str, Any]], describe: Callable[[dict[str, Any]], str]) -> list[str]:
    """One line per row that did not finish, saying why (the table cell holds the status)."""
    lines = [f"- {describe(r)}: {r['message']}" for r in rows if r.get("message")]
    return ["", *lines] if lines else []


def render(
    report: Report,
    command: str,
    *,
    after_select: Sequence[str] = (),
    after_curriculum: Sequence[str] = (),
) -> str:
    """The markdown recorded in benches/RESULTS.md and printed by ``kpod bench``.

    ``after_select`` and ``after_curriculum`` are extra markdown lines placed
    after those tables (``benches/bench_select.py``: the peers and their audit).
    """
    m = report.machine
    out = [
        f"Command: `{command}`  ",
        f"Machine: {m['cpu']}, {m['cores']} cores; Python {m['python']}, numpy {m['numpy']}  ",
        f"Date: {m['date_utc']}; load average at start {m['load_avg'][0]} / {m['load_avg'][1]} / "
        f"{m['load_avg'][2]} (1 / 5 / 15 min)"
        + (
            f"; at the end ({report.end['date_utc']}) {report.end['load_avg'][0]} / "
            f"{report.end['load_avg'][1]} / {report.end['load_avg'][2]}  "
            if report.end
            else "  "
        ),
        "Memory bandwidth (numpy copy, read + write): "
        + (f"{report.bandwidth / 1e9:.1f} GB/s" if report.bandwidth else "not measured"),
        "",
    ]
    if report.select_rows:
        _add_floors(report.select_rows, report.bandwidth)
        out += [
            "### kpod.select",
            "",
            format_table(report.select_rows, SELECT_COLUMNS),
            *_notes(
                report.select_rows, lambda r: f"{r['algorithm']} n={_fmt_n(r['n'])} K={r['k']}"
            ),
            "",
            f"Floors: bytes / bandwidth with {BYTES_PER_ITEM} bytes per item (float64 cost + int64 "
            "cluster); `1-pass` reads every item once, `eval` reads one item per marginal-gain "
            "evaluation. Values are F(S) recomputed in numpy from the returned indices.",
            "",
        ]
    out += after_select
    if report.curriculum_rows:
        out += [
            "### kpod.Curriculum",
            "",
            format_table(report.curriculum_rows, CURRICULUM_COLUMNS),
            *_notes(report.curriculum_rows, lambda r: f"curriculum {_fmt_n(r['n_questions'])}"),
            "",
        ]
    out += after_curriculum
    return "\n".join(out)


def run_from_args(args: argparse.Namespace, command: str) -> str:
    report = run_benchmarks(args)
    return render(report, command)
