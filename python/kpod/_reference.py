"""Slow, readable numpy version of the scheduler: the test oracle of ``kpod._kpod``.

It follows ``rust/select/`` and ``rust/curriculum.rs`` step by step (same
pick rules, tie-breaking, float formulas and evaluation counting for
``threshold``), without any of the speed tricks, so that the two can be
compared on the same inputs. Not for production use: O(n) work per greedy
step. See ``docs/scheduler.md``.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

MAX_LEVELS = 1 << 20


@dataclass
class Objective:
    """F(S) = sum a_i + beta * sum_k g(W_k), W_k = sum of v_i over S in cluster k."""

    costs: np.ndarray
    clusters: np.ndarray  # dense ids 0..K-1 in the order of the original ids
    n_clusters: int
    beta: float = 12.0
    modular: np.ndarray | None = None
    values: np.ndarray | None = None
    concave: str = "sqrt"
    power: float = 1.0

    def __post_init__(self) -> None:
        self.a = self.costs if self.modular is None else self.modular
        self.v = np.ones_like(self.costs) if self.values is None else self.values

    def g(self, x: np.ndarray) -> np.ndarray:
        if self.concave == "sqrt":
            return np.sqrt(x)
        if self.concave == "log1p":
            return np.log1p(x)
        return np.power(x, self.power)

    def delta(self, w: npt.ArrayLike, v: npt.ArrayLike) -> np.ndarray:
        """g(w + v) - g(w), in the same cancellation-free form as the Rust core."""
        w = np.asarray(w, dtype=np.float64)
        v = np.asarray(v, dtype=np.float64)
        with np.errstate(divide="ignore", invalid="ignore"):
            if self.concave == "sqrt":
                d = v / (np.sqrt(w + v) + np.sqrt(w))
            elif self.concave == "log1p":
                d = np.log1p(v / (1.0 + w))
            else:
                d = np.power(w + v, self.power) - np.power(w, self.power)
        return np.where(v == 0.0, 0.0, d)

    def gains(self, items: np.ndarray, w: np.ndarray) -> np.ndarray:
        """Marginal gains of ``items`` given cluster weights ``w``."""
        k = self.clusters[items]
        return self.a[items] + self.beta * self.delta(w[k], self.v[items])

    def value(self, picks: list[int]) -> float:
        w = np.zeros(self.n_clusters)
        modular = 0.0
        for i in picks:
            modular += float(self.a[i])
            w[self.clusters[i]] += self.v[i]
        concave = 0.0
        for x in self.g(w):
            concave += float(x)
        return modular + self.beta * concave

    def cost(self, picks: list[int]) -> float:
        total = 0.0
        for i in picks:
            total += float(self.costs[i])
        return total


def dense_clusters(clusters: np.ndarray) -> tuple[np.ndarray, int]:
    """Same numbering as the Rust core: small ids as they are, else by rank."""
    clusters = np.asarray(clusters, dtype=np.int64)
    if clusters.size == 0:
        return clusters, 0
    top = int(clusters.max())
    if top < 2 * clusters.size + 1024:
        return clusters.copy(), top + 1
    uniq, inv = np.unique(clusters, return_inverse=True)
    return inv.astype(np.int64), len(uniq)


@dataclass
class Run:
    """Positive-cost picks with cumulative costs and residual values per prefix."""

    picks: list[int]
    cum: list[float]
    val: list[float]
    w_after: list[tuple[int, float]]

    @classmethod
    def empty(cls) -> Run:
        return cls([], [0.0], [0.0], [])

    @property
    def spent(self) -> float:
        return self.cum[-1]

    def take(self, f: Objective, i: int, gain: float, w: np.ndarray) -> None:
        w[f.clusters[i]] += f.v[i]
        self.picks.append(i)
        self.cum.append(self.cum[-1] + float(f.costs[i]))
        self.val.append(self.val[-1] + gain)
        self.w_after.append((int(f.clusters[i]), float(w[f.clusters[i]])))


def _split(f: Objective, budget: float) -> tuple[list[int], list[int]]:
    free = [i for i in range(len(f.costs)) if f.costs[i] == 0.0]
    cand = [i for i in range(len(f.costs)) if 0.0 < f.costs[i] <= budget]
    return free, cand


def _weights_after(f: Objective, items: list[int]) -> np.ndarray:
    w = np.zeros(f.n_clusters)
    for i in items:
        w[f.clusters[i]] += f.v[i]
    return w


def checkpoint_stride(picks: int, cand: int, clusters: int) -> int:
    """Picks between the checkpoints of Greedy + Max's candidate search."""
    parts = min(max(cand // max(clusters, 1), 1), 64)
    return max(-(-picks // parts), 1)


def _gain_after(f: Objective, w0: np.ndarray, run: Run, e: int, j: int) -> float:
    """Marginal gain of e given the free items and the first j picks of ``run``."""
    k = int(f.clusters[e])
    wk = float(w0[k])
    for kk, w in run.w_after[:j]:
        if kk == k:
            wk = w
    return float(f.a[e] + f.beta * f.delta(np.float64(wk), f.v[e]))


def _best_single_addition(
    f: Objective,
    budget: float,
    w0: np.ndarray,
    run: Run,
    cand: list[int],
    upper: dict[int, float],
    counter: list[int],
) -> tuple[float, int, int] | None:
    """max over items e not picked of F(prefix j(e) + e), j(e) the longest prefix e fits.

    Returns (residual value, j, e) when some candidate beats the full run.
    """
    best = run.val[-1]
    found = None
    chosen = set(run.picks)
    stride = checkpoint_stride(len(run.picks), len(cand), f.n_clusters)
    for e in cand:
        c = float(f.costs[e])
        # Unpicked items that still fit at the end have no positive gain left.
        if e in chosen or run.spent + c <= budget:
            continue
        j = max(jj for jj in range(len(run.cum)) if run.cum[jj] + c <= budget)
        if run.val[j] + upper[e] <= best:
            continue
        # The gain after the last checkpoint at or before j bounds the gain
        # after j from above; one evaluation, and a second only when needed.
        cp = j // stride * stride
        g = _gain_after(f, w0, run, e, cp)
        counter[0] += 1
        if cp != j:
            if run.val[j] + g <= best:
                continue
            g = _gain_after(f, w0, run, e, j)
            counter[0] += 1
        if run.val[j] + g > best:
            best = run.val[j] + g
            found = (best, j, e)
    return found


def greedy(f: Objective, budget: float, plus_max: bool) -> tuple[list[int], int]:
    """Exact density greedy (ties to the lower index), optionally + best single addition.

    Returns the picks and the evaluations of a NON-lazy greedy (not comparable
    with the lazy Rust count).
    """
    free, cand = _split(f, budget)
    w = _weights_after(f, free)
    w0 = w.copy()
    counter = [0]
    upper = {
        i: float(x) for i, x in zip(cand, f.gains(np.array(cand, dtype=np.int64), w0), strict=True)
    }
    run = Run.empty()
    live = list(cand)
    while True:
        live = [i for i in live if run.spent + float(f.costs[i]) <= budget and i not in run.picks]
        if not live:
            break
        items = np.array(live, dtype=np.int64)
        gains = f.gains(items, w)
        counter[0] += len(live)
        dens = gains / f.costs[items]
        best = int(np.argmax(dens))  # first maximum: the lowest index among ties
        if gains[best] <= 0.0:
            break
        run.take(f, live[best], float(gains[best]), w)
    if plus_max:
        aug = _best_single_addition(f, budget, w0, run, cand, upper, counter)
        if aug is not None:
            _, j, e = aug
            return [*free, *run.picks[:j], e], counter[0]
    return [*free, *run.picks], counter[0]


def _item_levels(
    f: Objective,
    budget: float,
    cand: list[int],
    upper: dict[int, float],
    taus: list[float],
    level: Callable[[float], int],
    w: np.ndarray,
    run: Run,
) -> int:
    """Phase 3 and the fill for any objective: FIFO lists of items per level."""
    fill = len(taus)
    evals = 0
    # Each level is a FIFO list: items enter in index order, then in the
    # order they are demoted from higher levels.
    buckets: list[list[int]] = [[] for _ in range(fill + 1)]
    for i in cand:
        buckets[level(upper[i] / float(f.costs[i]))].append(i)
    for r in range(fill + 1):
        for i in buckets[r]:
            c = float(f.costs[i])
            if run.spent + c > budget:
                continue  # no longer fits, and never will
            g = float(f.gains(np.array([i]), w)[0])
            evals += 1
            if r == fill:
                if g > 0.0:
                    run.take(f, i, g, w)
                continue
            d = g / c
            if d >= taus[r] and g > 0.0:
                run.take(f, i, g, w)
            else:
                buckets[max(level(d), r + 1)].append(i)
    return evals


def _kpod_levels(
    f: Objective,
    budget: float,
    cand: list[int],
    taus: list[float],
    level: Callable[[float], int],
    w0: np.ndarray,
    w: np.ndarray,
    run: Run,
) -> int:
    """Phase 3 and the fill for the KPOD objective (a = cost, v = 1, beta > 0).

    Inside a cluster the density 1 + y_k / c_i falls with the cost, so the
    FIFO level lists hold clusters: each cluster's items are taken cheapest
    first (ties: lower index) while they fit and pass the level; the first
    that fails moves the cluster to the level of its density, and a cheapest
    item that no longer fits retires the cluster.
    """
    fill = len(taus)
    evals = 0
    by_cluster: dict[int, list[int]] = {}
    for i in cand:
        by_cluster.setdefault(int(f.clusters[i]), []).append(i)
    queue = {
        k: sorted(items, key=lambda i: (float(f.costs[i]), i)) for k, items in by_cluster.items()
    }
    lists: list[list[int]] = [[] for _ in range(fill + 1)]
    for k in sorted(queue):
        head = queue[k][0]
        u = float(f.gains(np.array([head]), w0)[0])  # the phase-1 value, not re-counted
        lists[level(u / float(f.costs[head]))].append(k)
    for r in range(fill + 1):
        for k in lists[r]:
            items = queue[k]
            while items:
                i = items[0]
                c = float(f.costs[i])
                if run.spent + c > budget:
                    break  # retired: nothing in this cluster fits any more
                g = float(f.gains(np.array([i]), w)[0])
                evals += 1
                d = g / c
                if g > 0.0 and (r == fill or d >= taus[r]):
                    run.take(f, i, g, w)
                    items.pop(0)
                else:
                    if r < fill:
                        lists[max(level(d), r + 1)].append(k)
                    break
    return evals


def threshold(f: Objective, budget: float, eps: float) -> tuple[list[int], int]:
    """The 1/2 - eps thresholding algorithm, phase by phase as in ``rust/select/threshold.rs``."""
    free, cand = _split(f, budget)
    w0 = _weights_after(f, free)
    if not cand:
        return free, 0
    evals = 0
    # Phase 1: gains given the free items.
    upper = {i: float(f.gains(np.array([i]), w0)[0]) for i in cand}
    evals += len(cand)
    best_single = max(upper.values())
    # Phase 2: OPT estimate (budget ignored) and its longest fitting suffix.
    west = w0.copy()
    vest = 0.0
    est: list[int] = []
    for i in cand:
        g = float(f.gains(np.array([i]), west)[0])
        if g > 0.0 and g * budget >= float(f.costs[i]) * vest:
            vest += g
            west[f.clusters[i]] += f.v[i]
            est.append(i)
    evals += len(cand)
    if best_single <= 0.0:
        return free, evals
    tail_cost = 0.0
    first = len(est)
    while first > 0 and tail_cost + float(f.costs[est[first - 1]]) <= budget:
        tail_cost += float(f.costs[est[first - 1]])
        first -= 1
    tail = est[first:]
    wt = w0.copy()
    vtail = 0.0
    for i in tail:
        vtail += float(f.gains(np.array([i]), wt)[0])
        wt[f.clusters[i]] += f.v[i]
    evals += len(tail)
    gamma_up = 2.0 * vest
    gamma_low = max(best_single, vtail)
    if not (math.isfinite(gamma_up) and math.isfinite(gamma_low)):
        raise ValueError("costs: the objective overflows float64 on this input")
    # Phase 3: density levels tau_r = tau_0 (1 - eps)^r.
    with np.errstate(over="ignore"):
        tau0 = min(float(np.float64(gamma_up) / np.float64(eps * budget)), sys.float_info.max)
    tau_min = eps * gamma_low / budget
    taus = [tau0]
    while True:
        nxt = taus[-1] * (1.0 - eps)
        if nxt < tau_min or nxt <= 0.0 or len(taus) >= MAX_LEVELS:
            break
        taus.append(nxt)
    fill = len(taus)

    def level(d: float) -> int:
        return next((r for r, t in enumerate(taus) if t <= d), fill)

    run = Run.empty()
    w = w0.copy()
    kpod_form = f.modular is None and f.values is None and f.beta > 0.0
    if kpod_form:
        evals += _kpod_levels(f, budget, cand, taus, level, w0, w, run)
    else:
        evals += _item_levels(f, budget, cand, upper, taus, level, w, run)
    # Phase 5: Greedy + Max candidates and the suffix candidate.
    counter = [0]
    aug = _best_single_addition(f, budget, w0, run, cand, upper, counter)
    if kpod_form:
        # The KPOD objective evaluates every unpicked item that does not fit
        # after the run once, at its prefix (no bounds, no checkpoints).
        chosen = set(run.picks)
        counter[0] = sum(
            1 for e in cand if e not in chosen and run.spent + float(f.costs[e]) > budget
        )
    evals += counter[0]
    best = run.val[-1]
    out = [*free, *run.picks]
    if aug is not None:
        best, j, e = aug
        out = [*free, *run.picks[:j], e]
    if vtail > best:
        out = [*free, *tail]
    return out, evals


def select(
    costs: np.ndarray,
    clusters: np.ndarray,
    *,
    budget: float,
    beta: float = 12.0,
    modular: np.ndarray | None = None,
    values: np.ndarray | None = None,
    concave: str = "sqrt",
    power: float = 1.0,
    algorithm: str = "threshold",
    eps: float = 0.1,
) -> tuple[list[int], float, float, int]:
    """Reference of :func:`kpod.select`: (indices, value, cost, evaluations)."""
    dense, k = dense_clusters(np.asarray(clusters))
    f = Objective(
        np.asarray(costs, dtype=np.float64), dense, k, beta, modular, values, concave, power
    )
    if algorithm == "threshold":
        picks, evals = threshold(f, budget, eps)
    else:
        picks, evals = greedy(f, budget, plus_max=algorithm == "greedy_max")
    return picks, f.value(picks), f.cost(picks), evals


def brute_force(
    costs: np.ndarray,
    clusters: np.ndarray,
    *,
    budget: float,
    beta: float = 12.0,
    modular: np.ndarray | None = None,
    values: np.ndarray | None = None,
    concave: str = "sqrt",
    power: float = 1.0,
) -> float:
    """OPT by evaluating all 2^n subsets at once (n <= ~16)."""
    dense, k = dense_clusters(np.asarray(clusters))
    f = Objective(
        np.asarray(costs, dtype=np.float64), dense, k, beta, modular, values, concave, power
    )
    n = len(f.costs)
    masks = (np.arange(1 << n)[:, None] >> np.arange(n)[None, :]) & 1
    member = masks.astype(np.float64)
    onehot = np.zeros((n, max(k, 1)))
    onehot[np.arange(n), dense] = f.v
    value = member @ f.a + beta * f.g(member @ onehot).sum(axis=1)
    feasible = member @ f.costs <= budget
    return float(value[feasible].max())


def curriculum(
    step_difficulty: np.ndarray,
    step_offsets: np.ndarray,
    clusters: np.ndarray,
    *,
    stages: int,
    n_advance: int,
    p: float = 0.5,
    c0: float = 0.3,
    beta: float = 12.0,
    delta_steps: int = 1,
    eps: float = 0.1,
    algorithm: str = "threshold",
) -> list[dict[str, object]]:
    """Reference of ``n_advance`` calls of :meth:`kpod.Curriculum.advance`."""
    d = np.asarray(step_difficulty, dtype=np.float64)
    off = np.asarray(step_offsets, dtype=np.int64)
    n = len(off) - 1
    total = 0.0
    for x in d:
        total += float(x)
    given = [max(int(off[i + 1] - off[i]) - delta_steps, 0) for i in range(n)]
    written = 0.0
    for i in range(n):
        for x in d[off[i] + given[i] : off[i + 1]]:
            written += float(x)

    def budget(t: int) -> float:
        if t >= stages:
            return total
        c0_abs = c0 * total
        return c0_abs + (total - c0_abs) * math.pow(t / stages, p + 1.0)

    out: list[dict[str, object]] = []
    for t in range(1, n_advance + 1):
        d_t = budget(t)
        increase = d_t - written
        qs = [i for i in range(n) if given[i] > 0]
        costs = []
        for i in qs:
            c = 0.0
            moving = given[i] if t > stages else delta_steps
            for x in d[off[i] + max(given[i] - moving, 0) : off[i] + given[i]]:
                c += float(x)
            costs.append(c)
        cl = np.asarray(clusters, dtype=np.int64)[qs] if qs else np.zeros(0, dtype=np.int64)
        if t > stages:
            chosen = list(range(len(qs)))
            dense, k = dense_clusters(np.asarray(clusters))
            f = Objective(np.asarray(costs), dense[qs] if qs else cl, k, beta)
            value, added = f.value(chosen), f.cost(chosen)
        elif increase > 0.0:
            dense, k = dense_clusters(np.asarray(clusters))
            f = Objective(np.asarray(costs), dense[qs], k, beta)
            if algorithm == "threshold":
                chosen, _ = threshold(f, increase, eps)
            else:
                chosen, _ = greedy(f, increase, plus_max=algorithm == "greedy_max")
            value, added = f.value(chosen), f.cost(chosen)
        else:
            chosen, value, added = [], 0.0, 0.0
        selected = [qs[j] for j in chosen]
        for q in selected:
            given[q] = 0 if t > stages else max(given[q] - delta_steps, 0)
        written = total if t > stages else written + added
        out.append(
            {
                "stage": t,
                "selected": selected,
                "given_steps": list(given),
                "budget_increase": increase,
                "difficulty_added": added,
                "value": value,
                "budget": d_t,
                "written": written,
            }
        )
    return out
