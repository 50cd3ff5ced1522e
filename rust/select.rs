//! Knapsack-constrained maximisation of the objective (`docs/scheduler.md`).
//!
//! * [`Algorithm::Threshold`]: density thresholds from an O(OPT / (eps B))
//!   ceiling down by factors (1 - eps) to eps OPT / B, with "Greedy + Max"
//!   best-single-addition candidates; 1/2 - eps guarantee with at most
//!   `n (7 + ln(8 / eps^2) / -ln(1 - eps))` marginal-gain evaluations.
//! * [`Algorithm::GreedyMax`]: exact cost-benefit greedy (lazy, exploiting that
//!   a pick only changes its own cluster's gains) plus the best single
//!   addition to every greedy prefix; 1/2 guarantee.
//! * [`Algorithm::Density`]: plain cost-benefit greedy; no guarantee.
//!
//! Items costing more than the budget are dropped; zero-cost items are taken
//! first, for free, in index order. An item is only ever added with a
//! positive marginal gain. Ties go to the lower index.

use std::cmp::{Ordering, Reverse};
use std::collections::binary_heap::PeekMut;
use std::collections::BinaryHeap;
use std::str::FromStr;

use crate::error::{Error, Result};
use crate::objective::{Concave, Problem, Weights};

/// Which optimiser [`select`] runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    /// Thresholding with Greedy + Max candidates, 1/2 - eps, linear evaluations.
    Threshold,
    /// Exact density greedy plus the best single addition, 1/2.
    GreedyMax,
    /// Plain density greedy (no guarantee); for comparison.
    Density,
}

impl FromStr for Algorithm {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "threshold" => Ok(Algorithm::Threshold),
            "greedy_max" => Ok(Algorithm::GreedyMax),
            "density" => Ok(Algorithm::Density),
            other => Err(Error::InvalidOption {
                arg: "algorithm",
                message: format!(
                    "unknown algorithm {other:?}; use \"threshold\", \"greedy_max\" or \"density\""
                ),
            }),
        }
    }
}

/// The chosen set and what it took.
#[derive(Debug, Clone, PartialEq)]
pub struct Selection {
    /// Item indices in pick order (zero-cost items first).
    pub indices: Vec<i64>,
    /// F of the chosen set.
    pub value: f64,
    /// Total cost of the chosen set (added in pick order).
    pub cost: f64,
    /// Marginal-gain evaluations made.
    pub evaluations: u64,
}

/// Budget, algorithm and accuracy of one call.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Options {
    /// Knapsack budget B (finite, >= 0).
    pub budget: f64,
    /// Optimiser.
    pub algorithm: Algorithm,
    /// Accuracy parameter of `threshold`, in (0, 1); checked for every algorithm.
    pub eps: f64,
}

/// Most density levels the threshold algorithm keeps (eps below ~1e-5 hits it;
/// the levels below become the final fill pass).
pub const MAX_LEVELS: usize = 1 << 20;

/// Validates `budget` and `eps`.
pub fn check_options(opts: &Options) -> Result<()> {
    if !(opts.budget.is_finite() && opts.budget >= 0.0) {
        return Err(Error::InvalidScalar {
            arg: "budget",
            value: opts.budget,
            expected: "finite and >= 0",
        });
    }
    if !(opts.eps > 0.0 && opts.eps < 1.0) {
        return Err(Error::InvalidScalar {
            arg: "eps",
            value: opts.eps,
            expected: "in (0, 1)",
        });
    }
    Ok(())
}

/// Maximises F over sets of total cost <= `opts.budget`.
pub fn select(p: &Problem<'_>, opts: &Options) -> Result<Selection> {
    check_options(opts)?;
    let mut evals = 0u64;
    let (picks, known) = match opts.algorithm {
        Algorithm::Threshold => threshold(p, opts.budget, opts.eps, &mut evals)?,
        Algorithm::GreedyMax => greedy(p, opts.budget, true, &mut evals),
        Algorithm::Density => greedy(p, opts.budget, false, &mut evals),
    };
    let (value, cost) = known.unwrap_or_else(|| p.value_and_cost(&picks));
    Ok(Selection {
        value,
        cost,
        indices: picks.iter().map(|&i| i64::from(i)).collect(),
        evaluations: evals,
    })
}

/// Zero-cost items (taken free) and affordable positive-cost items, both in index order.
fn split(p: &Problem<'_>, budget: f64) -> (Vec<u32>, Vec<u32>) {
    let mut free = Vec::new();
    let mut cand = Vec::with_capacity(p.len());
    for_each_candidate(
        p,
        budget,
        |i, _| cand.push(i as u32),
        |i| free.push(i as u32),
    );
    (free, cand)
}

/// Calls `f(i, c)` for every item of `p` with cost c in (0, budget] and
/// `zero(i)` for every zero-cost item, each in index order. Where items that
/// never fit are interleaved with candidates ([`Problem::sparse`]: the
/// curriculum marks finished questions with cost +inf), a per-item branch
/// would mispredict on them, so the test runs branch-free over blocks of 64
/// items and only the hits are visited; elsewhere (nearly every item a
/// candidate) the plain loop is faster.
#[inline]
fn for_each_candidate(
    p: &Problem<'_>,
    budget: f64,
    mut f: impl FnMut(usize, f64),
    mut zero: impl FnMut(usize),
) {
    if !p.sparse {
        for (i, &c) in p.costs.iter().enumerate() {
            if c == 0.0 {
                zero(i);
            } else if c <= budget {
                f(i, c);
            }
        }
        return;
    }
    // Costs are >= 0 (or -0.0, which the sign mask folds into +0.0), so on
    // the bit patterns "0 < c <= budget" is one unsigned comparison:
    // bits - 1 < budget's bits (0 wraps around; +inf's bits exceed every
    // finite budget's).
    let limit = if budget > 0.0 { budget.to_bits() } else { 0 };
    for (b, block) in p.costs.chunks(64).enumerate() {
        let (mut hit, mut free) = (0u64, 0u64);
        for (j, &c) in block.iter().enumerate() {
            let x = c.to_bits() & !(1u64 << 63);
            hit |= u64::from(x.wrapping_sub(1) < limit) << j;
            free |= u64::from(x == 0) << j;
        }
        while free != 0 {
            zero(b * 64 + free.trailing_zeros() as usize);
            free &= free - 1;
        }
        while hit != 0 {
            let j = hit.trailing_zeros() as usize;
            f(b * 64 + j, block[j]);
            hit &= hit - 1;
        }
    }
}

/// Whether `p` is in the KPOD form (modular = costs, v = 1, beta > 0), for
/// which the cost-ordered paths below hold.
fn kpod_form(p: &Problem<'_>) -> bool {
    p.modular_is_cost && p.values.is_none() && p.beta > 0.0
}

/// The gain increments of a KPOD cluster by weight w (free items plus picks),
/// for every weight up to `longest`: `u[w] = g(w + 1) - g(w)`, the state a
/// cluster of weight w is in, and `y[w] = beta u[w]`, the diversity part of
/// its items' gains (the same floats as the unit cache of [`Weights`]).
struct UnitTables {
    u: Vec<f64>,
    y: Vec<f64>,
}

impl UnitTables {
    /// Tables reaching the largest weight any cluster can get: its free
    /// items (`ws0`) plus all its `per_cluster` candidates.
    fn new(p: &Problem<'_>, ws0: &Weights, per_cluster: &[u32]) -> Self {
        let longest = per_cluster
            .iter()
            .zip(&ws0.w)
            .filter(|(&n, _)| n > 0)
            .map(|(&n, &w)| w as usize + n as usize)
            .max()
            .unwrap_or(0);
        let u: Vec<f64> = if p.concave == Concave::Sqrt {
            // delta(w, 1) = 1 / (sqrt(w + 1) + sqrt(w)): each square root
            // serves two entries (the same floats, w + 1 being exact).
            let roots: Vec<f64> = (0..=longest + 1).map(|w| (w as f64).sqrt()).collect();
            roots.windows(2).map(|r| 1.0 / (r[1] + r[0])).collect()
        } else {
            (0..=longest)
                .map(|w| p.concave.delta(w as f64, 1.0))
                .collect()
        };
        let y = u.iter().map(|&x| p.beta * x).collect();
        UnitTables { u, y }
    }
}

/// The positive-cost picks of a run with everything Greedy + Max needs to
/// evaluate "prefix j plus one item" afterwards.
struct Prefixes {
    picks: Vec<u32>,
    /// `cum[j]`: cost of the first j picks (`cum[0] = 0`), summed in pick order.
    cum: Vec<f64>,
    /// `val[j]`: F(free + first j picks) - F(free), summed gains.
    val: Vec<f64>,
    /// The cluster of pick j (1-based).
    after_k: Vec<u32>,
    /// Its state after that pick: the unit increment g(W_k + 1) - g(W_k)
    /// when v = 1, else the weight W_k. Empty in the KPOD form, whose
    /// candidate search ([`best_single_addition_sorted`]) only needs the
    /// clusters (12 bytes a pick less).
    after_x: Vec<f64>,
    /// The KPOD run's cluster weights (free items plus picks) at its end;
    /// empty elsewhere.
    counts: Vec<u32>,
    keep_states: bool,
    spent: f64,
    /// The last `val` (kept apart so that the next pick need not load it).
    total: f64,
}

impl Prefixes {
    fn new() -> Self {
        Prefixes {
            picks: Vec::new(),
            cum: vec![0.0],
            val: vec![0.0],
            after_k: Vec::new(),
            after_x: Vec::new(),
            counts: Vec::new(),
            keep_states: true,
            spent: 0.0,
            total: 0.0,
        }
    }

    /// Prefixes that record each pick's cluster but not its state.
    fn clusters_only() -> Self {
        Prefixes {
            keep_states: false,
            ..Prefixes::new()
        }
    }

    #[inline]
    fn take(&mut self, p: &Problem<'_>, i: usize, g: f64, ws: &mut Weights) {
        self.take_kc(p, i, p.cluster[i], p.costs[i], g, ws);
    }

    /// `take` with the item's cluster and cost already at hand.
    #[inline]
    fn take_kc(&mut self, p: &Problem<'_>, i: usize, k: u32, c: f64, g: f64, ws: &mut Weights) {
        p.add_kw(i, k as usize, ws);
        self.push(i as u32, k, c, g, state(ws, k as usize));
    }

    /// Room for `m` more picks.
    fn reserve(&mut self, m: usize) {
        self.picks.reserve(m);
        self.cum.reserve(m);
        self.val.reserve(m);
        self.after_k.reserve(m);
        if self.keep_states {
            self.after_x.reserve(m);
        }
    }

    /// Appends pick i of cluster k with cost c and gain g, after which the
    /// cluster's [`state`] is `after`.
    #[inline]
    fn push(&mut self, i: u32, k: u32, c: f64, g: f64, after: f64) {
        self.spent += c;
        self.total += g;
        self.picks.push(i);
        self.cum.push(self.spent);
        self.val.push(self.total);
        self.after_k.push(k);
        if self.keep_states {
            self.after_x.push(after);
        }
    }

    fn len(&self) -> usize {
        self.picks.len()
    }
}

/// A cluster's state in `ws`: its unit increment when the cache exists (v = 1),
/// else its weight. [`gain_from_state`] turns it into a marginal gain.
#[inline]
fn state(ws: &Weights, k: usize) -> f64 {
    ws.unit_cache().map_or(ws.w[k], |u| u[k])
}

/// The gain of item e given its cluster's [`state`] (bit-identical to
/// `Problem::gain` with the weights the state came from).
#[inline]
fn gain_from_state(p: &Problem<'_>, e: usize, x: f64, unit: bool) -> f64 {
    if unit {
        p.modular[e] + p.beta * x
    } else {
        p.modular[e] + p.beta * p.concave.delta(x, p.value(e))
    }
}

/// Greedy + Max: the best "prefix G_j plus one item e" over all prefixes and
/// all affordable items, where by monotonicity e is best added to the longest
/// prefix it still fits: j(e) = max { j : cum[j] + c_e <= B }. Returns
/// `(residual value, j, e)` when some candidate beats `val[m]`, the full run.
/// `upper[t]` (the gain of `cand[t]` given only the free items) prunes candidates
/// that cannot win without evaluating them.
#[allow(clippy::too_many_arguments)]
fn best_single_addition(
    p: &Problem<'_>,
    budget: f64,
    ws0: &Weights,
    pre: &Prefixes,
    cand: &[u32],
    upper: &[f64],
    selected: &Bits,
    evals: &mut u64,
) -> Option<(f64, usize, u32)> {
    let m = pre.len();
    let k = p.n_clusters;
    let unit = ws0.unit_cache().is_some();
    let state0: Vec<f64> = (0..k).map(|c| state(ws0, c)).collect();
    // Per-cluster history of states after each pick, as CSR over clusters:
    // the 1-based pick index and the state after it, in separate arrays so the
    // binary search reads only the indices.
    let mut start = vec![0u32; k + 1];
    for &c in &pre.after_k {
        start[c as usize + 1] += 1;
    }
    for c in 0..k {
        start[c + 1] += start[c];
    }
    let mut fill = start.clone();
    let mut hist_j = vec![0u32; m];
    let mut hist_x = vec![0.0f64; m];
    for (j, (&c, &x)) in pre.after_k.iter().zip(&pre.after_x).enumerate() {
        let slot = &mut fill[c as usize];
        hist_j[*slot as usize] = j as u32 + 1;
        hist_x[*slot as usize] = x;
        *slot += 1;
    }
    drop(fill);
    // Checkpoints: every cluster's state after 0, s, 2s, ... picks
    // (`checkpoint_stride`). The gain at the checkpoint at or before j(e)
    // bounds the gain at j(e) from above (g is concave), so most candidates
    // are ruled out by one lookup instead of a history search.
    let stride = checkpoint_stride(m, cand.len(), k);
    let mut snap = Vec::with_capacity((m / stride + 1) * k);
    let mut cur = state0.clone();
    snap.extend_from_slice(&cur);
    for (j, (&c, &x)) in pre.after_k.iter().zip(&pre.after_x).enumerate() {
        cur[c as usize] = x;
        if (j + 1) % stride == 0 {
            snap.extend_from_slice(&cur);
        }
    }
    drop(cur);
    // j(e) lookup. slot(x) = floor(x grid / B); last_ge[b] = the last prefix
    // whose remaining budget B - cum[j] has slot >= b. An item of slot b
    // then has j(e) in [last_ge[b + 1], last_ge[b]], searched with the exact
    // predicate `cum[j] + c <= B`; when rounding breaks the bracket, the
    // whole range is searched instead.
    // About two slots per prefix, so small instances do not pay for a large grid.
    let grid = (2 * (m + 1)).next_power_of_two().clamp(16, 1 << 14);
    let scale = grid as f64 / budget;
    let slot = |x: f64| ((x.max(0.0) * scale) as usize).min(grid - 1);
    let mut last_ge = vec![-1i64; grid + 1];
    for (j, &s) in pre.cum.iter().enumerate() {
        last_ge[slot(budget - s)] = j as i64;
    }
    for b in (0..grid).rev() {
        last_ge[b] = last_ge[b].max(last_ge[b + 1]);
    }
    let fits = |j: usize, c: f64| pre.cum[j] + c <= budget;
    let mut best = pre.val[m];
    let mut found = None;
    for (&e, &up) in cand.iter().zip(upper) {
        let e_us = e as usize;
        let c = p.costs[e_us];
        // Unpicked items that still fit at the end have no positive gain
        // left (both runs end only when none does): never a better candidate.
        if pre.spent + c <= budget || selected.get(e_us) {
            continue;
        }
        let b = slot(c);
        let lo = last_ge[b + 1].max(0) as usize;
        let hi = (last_ge[b].max(0) as usize + 1).min(m + 1);
        let bracket_ok = lo < hi && fits(lo, c) && (hi > m || !fits(hi, c));
        let (lo, hi) = if bracket_ok { (lo, hi) } else { (0, m + 1) };
        let j = lo + pre.cum[lo..hi].partition_point(|&s| s + c <= budget) - 1;
        if pre.val[j] + up <= best {
            continue;
        }
        let kc = p.cluster[e_us] as usize;
        let q = j / stride;
        let g_cp = gain_from_state(p, e_us, snap[q * k + kc], unit);
        *evals += 1;
        let g = if q * stride == j {
            g_cp
        } else {
            if pre.val[j] + g_cp <= best {
                continue;
            }
            let (s, t) = (start[kc] as usize, start[kc + 1] as usize);
            let at = hist_j[s..t].partition_point(|&jj| jj as usize <= j);
            let x = if at == 0 {
                state0[kc]
            } else {
                hist_x[s + at - 1]
            };
            *evals += 1;
            gain_from_state(p, e_us, x, unit)
        };
        let v = pre.val[j] + g;
        if v > best {
            best = v;
            found = Some((v, j, e));
        }
    }
    found
}

/// Picks between the checkpoints of [`best_single_addition`]: about
/// `min(64, |cand| / K)` checkpoints over the run, so they hold at most
/// about |cand| + 2K states.
fn checkpoint_stride(picks: usize, cand: usize, clusters: usize) -> usize {
    let parts = (cand / clusters.max(1)).clamp(1, 64);
    picks.div_ceil(parts).max(1)
}

/// A set of item indices as bits.
struct Bits(Vec<u64>);

impl Bits {
    fn of(n: usize, items: &[u32]) -> Self {
        let mut words = vec![0u64; n.div_ceil(64)];
        for &i in items {
            words[i as usize / 64] |= 1 << (i % 64);
        }
        Bits(words)
    }

    #[inline]
    fn get(&self, i: usize) -> bool {
        self.0[i / 64] >> (i % 64) & 1 == 1
    }
}

/// The KPOD run's result, free items + picks[..j] + e (`extra` = the
/// Greedy + Max candidate (value, j, e); all picks when `None`), with its F
/// and cost read off the run's own sums: the free items cost 0, picks[..j]
/// cost `cum[j]` (summed in pick order, as
/// [`Problem::value_and_cost`] does, so the same floats) and every
/// cluster's weight is its count.
fn kpod_result(
    p: &Problem<'_>,
    free: &[u32],
    pre: Prefixes,
    extra: Option<(f64, usize, u32)>,
) -> (Vec<u32>, (f64, f64)) {
    let (j, e) = extra.map_or((pre.len(), None), |(_, j, e)| (j, Some(e)));
    let mut counts = pre.counts;
    for &c in &pre.after_k[j..] {
        counts[c as usize] -= 1;
    }
    let mut cost = pre.cum[j];
    if let Some(e) = e {
        counts[p.cluster[e as usize] as usize] += 1;
        cost += p.costs[e as usize];
    }
    let value = p.value_of_counts(cost, &counts);
    (assemble(free, &pre.picks[..j], e), (value, cost))
}

/// Assembles free items + picks[..j] + e.
fn assemble(free: &[u32], picks: &[u32], extra: Option<u32>) -> Vec<u32> {
    let mut out = Vec::with_capacity(free.len() + picks.len() + 1);
    out.extend_from_slice(free);
    out.extend_from_slice(picks);
    out.extend(extra);
    out
}

/// Heap entry of the lazy greedy: max density first, then lower index.
#[derive(Clone, Copy, Default)]
struct Entry {
    density: f64,
    gain: f64,
    item: u32,
    /// Number of picks in the item's cluster when `gain` was computed.
    version: u32,
}

impl PartialEq for Entry {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for Entry {}
impl PartialOrd for Entry {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Entry {
    fn cmp(&self, other: &Self) -> Ordering {
        self.density
            .total_cmp(&other.density)
            .then_with(|| other.item.cmp(&self.item))
    }
}

/// One max-heap of [`Entry`] per cluster, all in one array (cluster c owns
/// `v[start[c]..start[c] + len[c]]`), each with four children per node:
/// half the levels of a binary heap, so a sift through a cluster's heap of
/// 1e5+ entries (the generic greedy's main cost) touches half as many cache
/// lines, and one allocation replaces a growing vector per cluster.
struct ClusterHeaps {
    v: Vec<Entry>,
    start: Vec<usize>,
    len: Vec<usize>,
}

impl ClusterHeaps {
    /// Heaps of `entry(j)`, the entry of `items[j]`, for every j, by the
    /// items' clusters `cluster[item]` (< `k`).
    fn new(k: usize, cluster: &[u32], items: &[u32], entry: impl Fn(usize) -> Entry) -> Self {
        let mut start = vec![0usize; k + 1];
        for &i in items {
            start[cluster[i as usize] as usize + 1] += 1;
        }
        offsets(&mut start);
        let mut fill = start.clone();
        let mut v = vec![Entry::default(); start[k]];
        for (j, &i) in items.iter().enumerate() {
            let slot = &mut fill[cluster[i as usize] as usize];
            v[*slot] = entry(j);
            *slot += 1;
        }
        let len: Vec<usize> = start.windows(2).map(|w| w[1] - w[0]).collect();
        let mut heaps = ClusterHeaps { v, start, len };
        for c in 0..k {
            let h = heaps.heap(c);
            if h.len() > 1 {
                for i in (0..=(h.len() - 2) / 4).rev() {
                    sift_down4(h, i);
                }
            }
        }
        heaps
    }

    #[inline]
    fn heap(&mut self, c: usize) -> &mut [Entry] {
        &mut self.v[self.start[c]..self.start[c] + self.len[c]]
    }

    #[inline]
    fn peek(&self, c: usize) -> Option<&Entry> {
        (self.len[c] > 0).then(|| &self.v[self.start[c]])
    }

    /// Removes the top of cluster c's heap (which must not be empty).
    fn pop(&mut self, c: usize) {
        self.len[c] -= 1;
        if self.len[c] > 0 {
            let last = self.start[c] + self.len[c];
            self.v[self.start[c]] = self.v[last];
            sift_down4(self.heap(c), 0);
        }
    }

    /// Replaces the top of cluster c's heap (which must not be empty) and
    /// restores the order.
    fn replace_top(&mut self, c: usize, e: Entry) {
        let h = self.heap(c);
        h[0] = e;
        sift_down4(h, 0);
    }
}

/// Moves `h[i]` down a 4-ary max-heap (children of i: 4i + 1..4i + 5) to
/// where it belongs.
fn sift_down4(h: &mut [Entry], mut i: usize) {
    let n = h.len();
    let x = h[i];
    loop {
        let first = 4 * i + 1;
        if first >= n {
            break;
        }
        let mut best = first;
        for j in first + 1..(first + 4).min(n) {
            if h[j] > h[best] {
                best = j;
            }
        }
        if h[best] <= x {
            break;
        }
        h[i] = h[best];
        i = best;
    }
    h[i] = x;
}

/// An algorithm's picks in order, with F and the cost of the set when the
/// algorithm has them at hand (else [`select`] computes them).
type Picks = (Vec<u32>, Option<(f64, f64)>);

/// Exact cost-benefit greedy: repeatedly add the affordable item of largest
/// marginal density (gain / cost), ties to the lower index, while that gain
/// is positive. Lazy and cluster-aware: gains only fall (submodularity) and
/// only in the cluster of the last pick, so each cluster keeps its own heap
/// of possibly stale densities, and a small heap over clusters holds each
/// cluster's current best. After a pick only that cluster is refreshed:
/// stale entries are re-evaluated until a fresh, affordable one is on top.
/// With `plus_max`, also returns the best "greedy prefix + one item" when
/// that is better. The KPOD path also returns F and the cost of the set (the
/// same floats as [`Problem::value_and_cost`]).
fn greedy(p: &Problem<'_>, budget: f64, plus_max: bool, evals: &mut u64) -> Picks {
    if kpod_form(p) {
        // The candidates go straight into the cost order, no index list.
        let mut per_cluster = vec![0u32; p.n_clusters];
        let (by_cost, free) = cost_order(p, budget, &mut per_cluster);
        let mut ws0 = p.weights();
        for &i in &free {
            p.add_w(i as usize, &mut ws0);
        }
        let tables = UnitTables::new(p, &ws0, &per_cluster);
        if let Some(pre) = greedy_unit_sorted(p, budget, &by_cost, &tables, &ws0, evals) {
            let extra = if plus_max {
                best_single_addition_sorted(p, budget, &pre, &by_cost, &tables.y, evals)
            } else {
                None
            };
            let (picks, known) = kpod_result(p, &free, pre, extra);
            return (picks, Some(known));
        }
    }
    let (free, cand) = split(p, budget);
    let mut ws = p.weights();
    for &i in &free {
        p.add_w(i as usize, &mut ws);
    }
    let ws0 = ws.clone();
    let mut upper = Vec::with_capacity(if plus_max { cand.len() } else { 0 });
    if plus_max {
        // Greedy + Max bounds every later gain of an item by its first one.
        upper.extend(cand.iter().map(|&i| p.gain_w(i as usize, &ws)));
        *evals += cand.len() as u64;
    }
    if kpod_form(p) {
        if let Some(pre) = greedy_unit_run(p, budget, &cand, &mut ws, evals) {
            let picks = finish_greedy(p, budget, plus_max, &free, &cand, &ws0, &upper, &pre, evals);
            return (picks, None);
        }
        // Densities packed within a few ulps: the lazy per-item heaps below
        // re-evaluate only what rises to the top.
        ws = ws0.clone();
    }
    let k = p.n_clusters;
    let mut heaps = ClusterHeaps::new(k, p.cluster, &cand, |j| {
        let iu = cand[j] as usize;
        let g = if plus_max {
            upper[j]
        } else {
            p.gain_w(iu, &ws)
        };
        Entry {
            density: g / p.costs[iu],
            gain: g,
            item: cand[j],
            version: 0,
        }
    });
    if !plus_max {
        *evals += cand.len() as u64;
    }
    let mut version = vec![0u32; k];
    // Global heap: one entry per non-empty cluster, its fresh affordable top
    // (`version` of the entry = the cluster's id).
    let mut global: BinaryHeap<Entry> = BinaryHeap::with_capacity(k);
    let mut pre = Prefixes::new();
    // Brings cluster c's heap to a fresh, affordable top and publishes it.
    let refresh = |c: usize,
                   heaps: &mut ClusterHeaps,
                   global: &mut BinaryHeap<Entry>,
                   ws: &Weights,
                   version: &[u32],
                   spent: f64,
                   evals: &mut u64| {
        while let Some(&top) = heaps.peek(c) {
            let i = top.item as usize;
            let cost = p.costs[i];
            if spent + cost > budget {
                heaps.pop(c);
                continue;
            }
            if top.version != version[c] {
                // Re-evaluated in place: the new, lower density sinks only
                // as far as it must, where a pop and a push would take the
                // path to the bottom and back.
                let g = p.gain_w(i, ws);
                *evals += 1;
                heaps.replace_top(
                    c,
                    Entry {
                        density: g / cost,
                        gain: g,
                        item: top.item,
                        version: version[c],
                    },
                );
                continue;
            }
            global.push(Entry {
                version: c as u32,
                ..top
            });
            return;
        }
    };
    for c in 0..k {
        refresh(c, &mut heaps, &mut global, &ws, &version, 0.0, evals);
    }
    while let Some(top) = global.pop() {
        let c = top.version as usize;
        let i = top.item as usize;
        if pre.spent + p.costs[i] > budget {
            // The budget shrank since this top was published.
            refresh(c, &mut heaps, &mut global, &ws, &version, pre.spent, evals);
            continue;
        }
        if top.gain <= 0.0 {
            break;
        }
        heaps.pop(c);
        pre.take(p, i, top.gain, &mut ws);
        version[c] = version[c].wrapping_add(1);
        refresh(c, &mut heaps, &mut global, &ws, &version, pre.spent, evals);
    }
    let picks = finish_greedy(p, budget, plus_max, &free, &cand, &ws0, &upper, &pre, evals);
    (picks, None)
}

/// Greedy + Max candidates (when asked) and the final pick order.
#[allow(clippy::too_many_arguments)]
fn finish_greedy(
    p: &Problem<'_>,
    budget: f64,
    plus_max: bool,
    free: &[u32],
    cand: &[u32],
    ws0: &Weights,
    upper: &[f64],
    pre: &Prefixes,
    evals: &mut u64,
) -> Vec<u32> {
    if plus_max {
        let selected = Bits::of(p.len(), &pre.picks);
        if let Some((_, j, e)) =
            best_single_addition(p, budget, ws0, pre, cand, upper, &selected, evals)
        {
            return assemble(free, &pre.picks[..j], Some(e));
        }
    }
    assemble(free, &pre.picks, None)
}

/// The *flat* runs of every cluster in [`greedy_unit_run`]: those whose cost
/// c absorbs twice the cluster's diversity increment y (`c + 2y == c` in
/// float). Then `c + y` rounds to c for c and for every dearer cost (whose
/// ulp is no smaller), so all of them have gain c and float density exactly
/// 1: a tie that the generic greedy breaks by the lowest index. (With a tiny
/// beta or costs around 1e16 and more most runs are flat, and scanning them
/// for the lowest index made each pick cost a pass over the cluster.) The
/// first flat run only moves to cheaper runs (y only falls as the cluster
/// grows), and a run out of budget stays out, so a min-heap of (item, run)
/// over the live items of the runs from `lo[c]` on serves every query: runs
/// enter as `lo[c]` falls, unaffordable tops are dropped for good, and the
/// top is removed when it is picked. Allocated the first time a cluster
/// turns flat.
#[derive(Default)]
struct FlatRuns {
    heaps: Vec<BinaryHeap<Reverse<(u32, u32)>>>,
    lo: Vec<usize>,
}

/// Items of one cost inside one cluster, in index order; `next` is the first
/// one not yet picked (ties are picked in index order, so picks form a prefix).
struct Run {
    cost: f64,
    end: u32,
    next: u32,
}

/// The exact greedy for the KPOD objective (modular = costs, v = 1,
/// beta > 0): inside a cluster every item's gain is `c_i + y_k` with the same
/// `y_k = beta (g(W_k + 1) - g(W_k)) > 0`, so in exact arithmetic the
/// cheapest item has the largest density `1 + y_k / c_i`. Floating-point
/// rounding can reorder items whose densities agree to ~2^-51, so each
/// cluster is scanned from its cheapest live cost upwards, computing the
/// densities exactly as the generic greedy does, until the rounding bound
/// `(1 + y / c)(1 + 2^-50)` of every remaining item is below the best found.
/// That bound never falls below a density of exactly 1, which every run
/// whose cost absorbs `y` has (see [`FlatRuns`]); those runs are kept in a
/// heap by index instead of scanned. The picks equal the generic lazy
/// greedy's (same ties, same floats). Densities a few ulps above 1 (costs
/// just short of absorbing y) defeat the bound without being flat, and then
/// every pick rescans them: past [`UNIT_RUN_EVALS_PER_ITEM`] evaluations per
/// candidate the run gives up (`None`; `ws` is then spent) and the caller
/// runs the generic lazy greedy, whose stale upper bounds need no window.
fn greedy_unit_run(
    p: &Problem<'_>,
    budget: f64,
    cand: &[u32],
    ws: &mut Weights,
    evals: &mut u64,
) -> Option<Prefixes> {
    let cap = *evals + UNIT_RUN_EVALS_PER_ITEM * cand.len() as u64 + 1024;
    let k = p.n_clusters;
    // Candidates by cluster (a stable counting sort), then by (cost, index)
    // inside each cluster. Costs here are positive and finite, so their IEEE
    // bit patterns sort like the numbers.
    let mut first = vec![0usize; k + 1];
    for &i in cand {
        first[p.cluster[i as usize] as usize + 1] += 1;
    }
    for c in 0..k {
        first[c + 1] += first[c];
    }
    let mut fill = first.clone();
    let mut keyed: Vec<(u64, u32)> = vec![(0, 0); cand.len()];
    for &i in cand {
        let c = p.cluster[i as usize] as usize;
        keyed[fill[c]] = (p.costs[i as usize].to_bits(), i);
        fill[c] += 1;
    }
    drop(fill);
    for c in 0..k {
        keyed[first[c]..first[c + 1]].sort_unstable();
    }
    let items: Vec<u32> = keyed.iter().map(|t| t.1).collect();
    let mut runs: Vec<Run> = Vec::new();
    let mut first_run = vec![0usize; k + 1];
    for c in 0..k {
        first_run[c] = runs.len();
        let mut pos = first[c];
        while pos < first[c + 1] {
            let bits = keyed[pos].0;
            let start = pos;
            while pos < first[c + 1] && keyed[pos].0 == bits {
                pos += 1;
            }
            runs.push(Run {
                cost: f64::from_bits(bits),
                end: pos as u32,
                next: start as u32,
            });
        }
    }
    first_run[k] = runs.len();
    drop(keyed);
    let mut head = first_run.clone();
    let mut flat = FlatRuns::default();
    // Best live affordable item of cluster c: (density, gain, item, run).
    let scan = |c: usize,
                runs: &[Run],
                head: &mut [usize],
                flat: &mut FlatRuns,
                ws: &Weights,
                spent: f64,
                evals: &mut u64|
     -> Option<(f64, f64, u32, usize)> {
        while head[c] < first_run[c + 1] && runs[head[c]].next == runs[head[c]].end {
            head[c] += 1;
        }
        let mut best: Option<(f64, f64, u32, usize)> = None;
        let y = p.beta * ws.unit_increment(c);
        let mut flat_from = None;
        for (r, run) in runs.iter().enumerate().take(first_run[c + 1]).skip(head[c]) {
            if run.next == run.end {
                continue;
            }
            if spent + run.cost > budget {
                break;
            }
            if run.cost + 2.0 * y == run.cost {
                flat_from = Some(r);
                break;
            }
            if let Some((bd, _, _, _)) = best {
                // A float density of this or any dearer run is at most this
                // bound (two roundings above 1 + y / c, generously covered).
                if (1.0 + y / run.cost) * (1.0 + 4.0 * f64::EPSILON) < bd {
                    break;
                }
            }
            let i = items[run.next as usize];
            // = p.gain_w(i, ws) bit for bit (modular[i] is this run's cost),
            // without reading the item's own entries at a random address.
            let g = run.cost + y;
            *evals += 1;
            let d = g / run.cost;
            if beats(d, i, best) {
                best = Some((d, g, i, r));
            }
        }
        if let Some(r0) = flat_from {
            if flat.heaps.is_empty() {
                flat.heaps = (0..k).map(|_| BinaryHeap::new()).collect();
                flat.lo = first_run[1..].to_vec();
            }
            let heap = &mut flat.heaps[c];
            while flat.lo[c] > r0 {
                flat.lo[c] -= 1;
                let run = &runs[flat.lo[c]];
                for &i in &items[run.next as usize..run.end as usize] {
                    heap.push(Reverse((i, flat.lo[c] as u32)));
                }
            }
            while heap
                .peek()
                .is_some_and(|&Reverse((_, r))| spent + runs[r as usize].cost > budget)
            {
                heap.pop();
            }
            if let Some(&Reverse((i, r))) = heap.peek() {
                let cost = runs[r as usize].cost;
                let g = cost + y; // == cost: the run is flat
                *evals += 1;
                let d = g / cost;
                if beats(d, i, best) {
                    best = Some((d, g, i, r as usize));
                }
            }
        }
        best
    };
    let mut global: BinaryHeap<Entry> = BinaryHeap::with_capacity(k);
    let mut at_run = vec![0usize; k];
    let publish = |c: usize,
                   found: Option<(f64, f64, u32, usize)>,
                   global: &mut BinaryHeap<Entry>,
                   at_run: &mut [usize]| {
        if let Some((d, g, i, r)) = found {
            at_run[c] = r;
            global.push(Entry {
                density: d,
                gain: g,
                item: i,
                version: c as u32,
            });
        }
    };
    for c in 0..k {
        let found = scan(c, &runs, &mut head, &mut flat, ws, 0.0, evals);
        publish(c, found, &mut global, &mut at_run);
    }
    let mut pre = Prefixes::new();
    // The cluster of the top entry is re-published after every step, so the
    // top is replaced in place (one sift-down) instead of popped and pushed.
    while let Some(mut top_ref) = global.peek_mut() {
        let top = *top_ref;
        let c = top.version as usize;
        let i = top.item as usize;
        let cost = runs[at_run[c]].cost;
        let fits = pre.spent + cost <= budget;
        if fits {
            if top.gain <= 0.0 {
                break;
            }
            runs[at_run[c]].next += 1;
            // A pick from the flat runs is their heap's top.
            if let Some(heap) = flat.heaps.get_mut(c) {
                if heap.peek().is_some_and(|&Reverse((t, _))| t as usize == i) {
                    heap.pop();
                }
            }
            pre.take_kc(p, i, c as u32, cost, top.gain, ws);
        }
        if *evals > cap {
            return None;
        }
        match scan(c, &runs, &mut head, &mut flat, ws, pre.spent, evals) {
            Some((d, g, item, r)) => {
                at_run[c] = r;
                *top_ref = Entry {
                    density: d,
                    gain: g,
                    item,
                    version: c as u32,
                };
            }
            None => {
                PeekMut::pop(top_ref);
            }
        }
    }
    Some(pre)
}

/// Whether density `d` of item `i` beats `best` (density, gain, item, run)
/// in [`greedy_unit_run`]'s scan: larger density, ties to the lower index.
#[inline]
fn beats(d: f64, i: u32, best: Option<(f64, f64, u32, usize)>) -> bool {
    best.is_none_or(|(bd, _, bi, _)| d > bd || (d == bd && i < bi))
}

/// Evaluations per candidate after which [`greedy_unit_run`] hands over to
/// the generic lazy greedy. Its scans cost one or two per candidate unless
/// densities crowd within the rounding window (then hundreds, growing with
/// n). A scan evaluation (the next run in memory, a division) took about
/// 30 ns at 1e5 items, one of the generic greedy's (a heap update) about
/// 140 ns, and 400 ns at 1M: an instance needing a few times more scan
/// evaluations than the generic greedy's ~15 per item is still cheaper here,
/// while a pathological one wastes this many per item before the switch.
const UNIT_RUN_EVALS_PER_ITEM: u64 = 16;

/// A positive-cost candidate in (cost, index) order: its cost's bit pattern
/// (positive finite floats order like their bits), index and cluster.
#[derive(Clone, Copy, Default)]
struct CostItem {
    bits: u64,
    idx: u32,
    k: u32,
}

/// One step of the KPOD greedy: the item of rank r in its cluster, with its
/// density `d` (as bits) when its cluster holds r picks.
#[derive(Clone, Copy, Default)]
struct Step {
    d: u64,
    c: f64,
    idx: u32,
    k: u32,
}

/// Buckets for keys in `[lo, hi]`: at most about `n` of them (power of two,
/// 16 to 2^20), and the shift that maps `key - lo` onto them. Returns
/// (bucket count, shift); `(key - lo) >> shift < count` for every key.
fn key_buckets(lo: u64, hi: u64, n: usize) -> (usize, u32) {
    let cap = n.next_power_of_two().clamp(16, 1 << 20);
    let range = hi - lo;
    let need = 64 - range.leading_zeros();
    let shift = need.saturating_sub(cap.trailing_zeros());
    (((range >> shift) as usize) + 1, shift)
}

/// Turns bucket counts (`start[b + 1]` = size of bucket b) into start offsets.
fn offsets<T: Copy + std::ops::AddAssign>(start: &mut [T]) {
    let Some(&first) = start.first() else {
        return;
    };
    let mut run = first;
    for x in &mut start[1..] {
        run += *x;
        *x = run;
    }
}

/// Sorts a short slice in place by `less` (insertion sort; buckets of the
/// bucket passes hold a few items on average, for which a library sort's
/// call and set-up cost more than the sorting), a long one with the library.
#[inline]
fn sort_small<T: Copy>(v: &mut [T], less: impl Fn(&T, &T) -> bool) {
    if v.len() > 24 {
        v.sort_unstable_by(|a, b| {
            if less(a, b) {
                Ordering::Less
            } else if less(b, a) {
                Ordering::Greater
            } else {
                Ordering::Equal
            }
        });
        return;
    }
    for i in 1..v.len() {
        let x = v[i];
        let mut j = i;
        while j > 0 && less(&x, &v[j - 1]) {
            v[j] = v[j - 1];
            j -= 1;
        }
        v[j] = x;
    }
}

/// Above this many candidates [`cost_order`] sorts with three 8-bit digits
/// (measured on 2 cores: two 11-bit passes win up to ~1M items, tie at 3M,
/// lose by 5-25 % at 10M).
const RADIX_THREE_PASSES: usize = 1 << 22;

/// Up to this many candidates [`cost_order`] sorts with one counting pass
/// (whose counts and offsets then fit 16-bit counters).
const SINGLE_PASS_MAX: usize = u16::MAX as usize;

/// The candidates (costs in (0, budget]) in ascending (cost, index) order,
/// and the free (zero-cost) items in index order. A counting sort on the
/// cost bits (positive floats order like their bits): one pass on about
/// log2(n) bits below 2^16 candidates, else an LSD radix sort on the top
/// 22 (24) significant bits (two 11-bit passes; three 8-bit ones above ~4M
/// items), leaves them sorted up to items whose costs share those bits,
/// and an insertion pass settles those; when costs are so bunched that it
/// would move items far, a library sort does it instead. Also counts the
/// candidates of every cluster into `per_cluster`.
fn cost_order(p: &Problem<'_>, budget: f64, per_cluster: &mut [u32]) -> (Vec<CostItem>, Vec<u32>) {
    cost_order_with(p, budget, per_cluster, SINGLE_PASS_MAX, RADIX_THREE_PASSES)
}

/// [`cost_order`] with one counting pass up to `single_pass_max` (at most
/// [`SINGLE_PASS_MAX`]) candidates and three 8-bit passes above
/// `three_passes_above`.
fn cost_order_with(
    p: &Problem<'_>,
    budget: f64,
    per_cluster: &mut [u32],
    single_pass_max: usize,
    three_passes_above: usize,
) -> (Vec<CostItem>, Vec<u32>) {
    // One pass gathers the candidates (cost bits, index, cluster), their
    // bit range and the per-cluster counts; the radix passes then read this
    // compact array instead of going back to the inputs.
    let (mut lo, mut hi) = (u64::MAX, 0u64);
    let mut items: Vec<CostItem> = Vec::with_capacity(p.len());
    let mut free = Vec::new();
    for_each_candidate(
        p,
        budget,
        |i, c| {
            let bits = c.to_bits();
            let k = p.cluster[i];
            lo = lo.min(bits);
            hi = hi.max(bits);
            per_cluster[k as usize] += 1;
            items.push(CostItem {
                bits,
                idx: i as u32,
                k,
            });
        },
        |i| free.push(i as u32),
    );
    let len = items.len();
    if len == 0 {
        return (items, free);
    }
    // Below 2^16 candidates one counting pass on about log2(len) key bits
    // leaves a few items per bucket, with 16-bit counters (the histogram
    // stays in cache; half the bytes to clear and sum). Larger inputs take
    // two 11-bit passes, and above `three_passes_above` three 8-bit ones
    // (256 write streams stay within the TLB where 2048 start to thrash it).
    let range_bits = 64 - (hi - lo).leading_zeros();
    if len <= single_pass_max.min(SINGLE_PASS_MAX) {
        let digit = len.next_power_of_two().trailing_zeros().max(4);
        let shift = range_bits.saturating_sub(digit);
        let key = |bits: u64| ((bits - lo) >> shift) as usize;
        let mut start = vec![0u16; (1 << digit) + 1];
        for t in &items {
            start[key(t.bits) + 1] += 1;
        }
        offsets(&mut start);
        let mut out = vec![CostItem::default(); len];
        for t in &items {
            let slot = &mut start[key(t.bits)];
            out[*slot as usize] = *t;
            *slot += 1;
        }
        return (insertion_fix(out), free);
    }
    let (digit, passes) = if len > three_passes_above {
        (8u32, 3u32)
    } else {
        (11, 2)
    };
    let radix = 1usize << digit;
    let mask = radix - 1;
    let shift = range_bits.saturating_sub(digit * passes);
    let key = |bits: u64| ((bits - lo) >> shift) as usize;
    let mut start = vec![0u32; passes as usize * (radix + 1)];
    for t in &items {
        let kk = key(t.bits);
        for d in 0..passes as usize {
            start[d * (radix + 1) + ((kk >> (d as u32 * digit)) & mask) + 1] += 1;
        }
    }
    for d in 0..passes as usize {
        offsets(&mut start[d * (radix + 1)..(d + 1) * (radix + 1)]);
    }
    let mut out = vec![CostItem::default(); len];
    for d in 0..passes as usize {
        let slots = &mut start[d * (radix + 1)..(d + 1) * (radix + 1)];
        for t in &items {
            let slot = &mut slots[(key(t.bits) >> (d as u32 * digit)) & mask];
            out[*slot as usize] = *t;
            *slot += 1;
        }
        std::mem::swap(&mut out, &mut items);
    }
    (insertion_fix(items), free)
}

/// Settles the items that the counting passes left unordered (those
/// sharing a key) with an insertion pass, or, when costs are so bunched
/// that it would move items far, a library sort.
fn insertion_fix(mut out: Vec<CostItem>) -> Vec<CostItem> {
    let order = |t: &CostItem| (t.bits, t.idx);
    let mut moves = 0usize;
    let limit = 4 * out.len() + 64;
    for i in 1..out.len() {
        if order(&out[i - 1]) <= order(&out[i]) {
            continue;
        }
        let x = out[i];
        let mut j = i;
        while j > 0 && order(&x) < order(&out[j - 1]) {
            out[j] = out[j - 1];
            j -= 1;
        }
        out[j] = x;
        moves += i - j;
        if moves > limit {
            out.sort_unstable_by_key(order);
            break;
        }
    }
    out
}

/// The KPOD greedy (modular = costs, v = 1, beta > 0) in O(n) expected
/// time. Inside a cluster the gain of every item is `c + y(W_k)` with
/// `y(w) = beta (g(w + 1) - g(w))`, so the r-th pick of a cluster is its
/// r-th cheapest item (ties to the lower index) and its density
/// `d = (c + y(W0_k + r)) / c` is known before the run. A cluster's
/// densities never rise, so the greedy order is the order of all (item,
/// rank) steps by (density desc, index asc), found with one bucket pass on
/// the density bits. The run walks that order: a step that does not fit
/// ends its cluster (every later step of it costs at least as much and the
/// budget only shrinks); the others are taken.
///
/// Only steps that can matter are ordered. Phase 1 takes the density
/// buckets up to the first one where their summed cost passes the budget
/// (about where the run first skips a step). Any later step that is taken
/// fits in what phase 1 left, so phase 2 orders only the later steps of the
/// cost order's prefix that fits then. A step left out would not fit when
/// reached, and neither would any later step of its cluster, so leaving it
/// out ends the same clusters; any split point is exact.
///
/// This is the generic greedy's run step for step, with the same floats,
/// provided the cheapest live item of a cluster really has the largest float
/// density: rounding can reorder items whose costs agree to a few ulps. Each
/// step is checked against the dearer costs that follow it in the cost
/// order (`y (c_t - c) > 4 eps (c + y) c_t` puts an item's float density
/// below `d`, and then every dearer item's too); the few items of the same
/// cluster closer than that are compared exactly. A cluster where one of
/// them would win is *odd*: its pick order is simulated exactly. `None`
/// (the caller then runs [`greedy_unit_run`], which handles such ties
/// exactly) only when more than 8 clusters are odd, more than 32 costs are
/// that close, or the budget ends between an odd cluster's twins. `ws`
/// (the weights after the free items) is only read.
///
/// `by_cost`: the candidates in (cost, index) order ([`cost_order`]);
/// `tables`: [`UnitTables`] for their clusters. Returns the run, with the
/// final cluster weights in `counts`.
fn greedy_unit_sorted(
    p: &Problem<'_>,
    budget: f64,
    by_cost: &[CostItem],
    tables: &UnitTables,
    ws: &Weights,
    evals: &mut u64,
) -> Option<Prefixes> {
    let k = p.n_clusters;
    let mut pre = Prefixes::clusters_only();
    if by_cost.is_empty() {
        pre.counts = unit_weights(ws);
        return Some(pre);
    }
    let (utab, ytab) = (&tables.u, &tables.y);
    // at[c]: the weight of cluster c as the run goes (its free items first).
    let mut at = unit_weights(ws);
    // Densities in (cost, index) order, the rounding check, and per density
    // bucket the number and summed cost of its steps. Every density lies in
    // [1, (1 + y(0) / c_min)(1 + 4 eps)] (a gain is at least its cost);
    // buckets are counted from the top.
    let c_min = f64::from_bits(by_cost[0].bits);
    let d_lo = 1.0f64.to_bits();
    let d_hi = ((1.0 + p.beta * p.concave.delta(0.0, 1.0) / c_min) * (1.0 + 8.0 * f64::EPSILON))
        .to_bits()
        .max(d_lo);
    let (nb, shift) = key_buckets(d_lo, d_hi, by_cost.len() / 4);
    let bucket = |d: u64| ((d_hi.saturating_sub(d) >> shift) as usize).min(nb - 1);
    let mut count = vec![0u32; nb + 1];
    let mut mass = vec![0.0f64; nb];
    let mut dens: Vec<u64> = Vec::with_capacity(by_cost.len());
    let mut rank = at.clone();
    let tol = 4.0 * f64::EPSILON;
    let mut odd = vec![false; k];
    let mut odd_list: Vec<u32> = Vec::new();
    let len = by_cost.len();
    // First the diversity part y of every step's gain (by rank), then the
    // densities in a loop of their own: the divisions do not hold up the
    // rounding check below, which only needs the gain c + y.
    dens.extend(by_cost.iter().map(|t| {
        let kc = t.k as usize;
        rank[kc] += 1;
        ytab[rank[kc] as usize - 1].to_bits()
    }));
    // A dearer item of cost c_t has a float density below d if
    // (1 + y / c_r) / (1 + y / c_t) > 1 + 2 eps, i.e. if
    // y (c_t - c_r) > 2 eps (c_t + y) c_r, which holds with margin when
    // y (c_t - c_r) > 4 eps (c_r + y) c_t (as (c_t + y) c_r <= (c_r + y) c_t);
    // once true for one c_t it is true for every dearer one. Usually the
    // next item settles it for every item: one branch-free pass checks that.
    let mut close = false;
    for (pair, y) in by_cost.windows(2).zip(&dens) {
        let (c, ct) = (f64::from_bits(pair[0].bits), f64::from_bits(pair[1].bits));
        let y = f64::from_bits(*y);
        close |= !(pair[1].bits != pair[0].bits && y * (ct - c) > tol * (c + y) * ct);
    }
    // Otherwise the few candidates closer than that are compared exactly,
    // and only those of the item's own cluster matter.
    let mut next = 0usize; // first position with a dearer cost than the current one
    for pos in 0..if close { len } else { 0 } {
        let t = by_cost[pos];
        let c = f64::from_bits(t.bits);
        let y = f64::from_bits(dens[pos]);
        let tol_g = tol * (c + y);
        if let Some(u) = by_cost.get(pos + 1) {
            let ct = f64::from_bits(u.bits);
            if u.bits != t.bits && y * (ct - c) > tol_g * ct {
                continue;
            }
        }
        if next <= pos {
            next = pos + 1;
            while next < len && by_cost[next].bits == t.bits {
                next += 1;
            }
        }
        let kc = t.k as usize;
        let d = (c + y) / c;
        for (seen, u) in by_cost[next.min(len)..].iter().enumerate() {
            let ct = f64::from_bits(u.bits);
            if y * (ct - c) > tol_g * ct {
                break;
            }
            if seen >= 32 {
                // Costs packed this tightly: the exact path is cheaper.
                return None;
            }
            if u.k == t.k && !odd[kc] {
                let dt = (ct + y) / ct;
                *evals += 1;
                if dt > d || (dt == d && u.idx < t.idx) {
                    odd[kc] = true;
                    odd_list.push(t.k);
                }
            }
        }
    }
    for (d, t) in dens.iter_mut().zip(by_cost) {
        let c = f64::from_bits(t.bits);
        *d = ((c + f64::from_bits(*d)) / c).to_bits();
    }
    *evals += by_cost.len() as u64;
    // Per density bucket the number and summed cost of its steps, in a
    // separate pass (and two lanes for the sums) so that steps landing in
    // the same bucket do not wait on each other.
    let mut mass2 = vec![0.0f64; nb];
    let mut pairs = by_cost.chunks_exact(2).zip(dens.chunks_exact(2));
    for (t, d) in &mut pairs {
        let (b0, b1) = (bucket(d[0]), bucket(d[1]));
        count[b0 + 1] += 1;
        mass[b0] += f64::from_bits(t[0].bits);
        count[b1 + 1] += 1;
        mass2[b1] += f64::from_bits(t[1].bits);
    }
    if let (Some(t), Some(&d)) = (by_cost.chunks_exact(2).remainder().first(), dens.last()) {
        let b = bucket(d);
        count[b + 1] += 1;
        mass[b] += f64::from_bits(t.bits);
    }
    for (m, m2) in mass.iter_mut().zip(&mass2) {
        *m += m2;
    }
    drop(mass2);
    // Clusters where rounding reorders near-equal costs ("odd"): their
    // pick order is simulated exactly, and `later` keeps the few steps that
    // a cheaper step of the same cluster follows: (item, the cheapest later
    // cost, its cost, its density bits).
    let mut later: Vec<(u32, f64, f64, u64)> = Vec::new();
    if odd_list.len() > 8 {
        return None;
    }
    for &kc in &odd_list {
        let items: Vec<usize> = (0..by_cost.len()).filter(|&q| by_cost[q].k == kc).collect();
        let cost = |q: usize| f64::from_bits(by_cost[q].bits);
        for &q in &items {
            let b = bucket(dens[q]);
            count[b + 1] -= 1;
            mass[b] -= cost(q);
        }
        let mut taken = vec![false; items.len()];
        let mut seq = Vec::with_capacity(items.len());
        let (mut head, mut w) = (0usize, at[kc as usize] as usize);
        loop {
            while head < items.len() && taken[head] {
                head += 1;
            }
            if head == items.len() {
                break;
            }
            // The cheapest live item r, then every live item close enough
            // to r's density to beat it, compared exactly.
            let y = ytab[w];
            let c0 = cost(items[head]);
            let d0 = (c0 + y) / c0;
            let (mut bi, mut bd) = (head, d0);
            for (seen, i) in (head + 1..items.len()).enumerate() {
                let ci = cost(items[i]);
                if y * (ci - c0) > tol * d0 * c0 * ci {
                    break;
                }
                if seen >= 32 {
                    return None;
                }
                if !taken[i] {
                    let di = (ci + y) / ci;
                    *evals += 1;
                    let better =
                        di > bd || (di == bd && by_cost[items[i]].idx < by_cost[items[bi]].idx);
                    if better {
                        (bi, bd) = (i, di);
                    }
                }
            }
            taken[bi] = true;
            let q = items[bi];
            dens[q] = bd.to_bits();
            let b = bucket(dens[q]);
            count[b + 1] += 1;
            mass[b] += cost(q);
            seq.push(q);
            w += 1;
        }
        let mut cheapest_later = f64::INFINITY;
        for &q in seq.iter().rev() {
            if cheapest_later < cost(q) {
                later.push((by_cost[q].idx, cheapest_later, cost(q), dens[q]));
            }
            cheapest_later = cheapest_later.min(cost(q));
        }
    }
    later.sort_unstable_by_key(|x| x.0);
    // Whether a later step of item i's (odd) cluster would still fit.
    let later_fits = |i: u32, spent: f64| {
        later
            .binary_search_by_key(&i, |x| x.0)
            .is_ok_and(|at| spent + later[at].1 <= budget)
    };
    // Phase 1 walks the buckets up to the first one where the summed cost
    // passes the budget (where the run first skips a step, up to rounding).
    // Any later step that is taken fits in what is left after phase 1, so
    // phase 2 only orders the later steps that fit then: a prefix of the
    // cost order. (Any split point is exact; this one keeps both phases small.)
    let mut b_last = nb - 1;
    let mut sum = 0.0f64;
    for (b, &m) in mass.iter().enumerate() {
        sum += m;
        if sum > budget {
            b_last = b;
            break;
        }
    }
    drop(mass);
    offsets(&mut count[..b_last + 2]);
    let mut order = vec![Step::default(); count[b_last + 1] as usize];
    pre.reserve(order.len());
    for (t, &d) in by_cost.iter().zip(&dens) {
        let b = bucket(d);
        if b <= b_last {
            let slot = &mut count[b];
            order[*slot as usize] = Step {
                d,
                c: f64::from_bits(t.bits),
                idx: t.idx,
                k: t.k,
            };
            *slot += 1;
        }
    }
    let mut dead = vec![false; k];
    // A step that does not fit ends its cluster: every later step of it
    // costs at least as much, except in odd clusters, where a cheaper later
    // step that would still fit sends the call to the exact path.
    let mut exact_needed = false;
    let mut walk = |seg: &[Step], pre: &mut Prefixes| {
        let mut need_exact = false;
        for t in seg {
            let c = t.k as usize;
            if dead[c] {
                continue;
            }
            if pre.spent + t.c > budget {
                dead[c] = true;
                need_exact |= odd[c] && later_fits(t.idx, pre.spent);
                continue;
            }
            let w = at[c] as usize;
            at[c] += 1;
            pre.push(t.idx, t.k, t.c, t.c + ytab[w], utab[w + 1]);
        }
        need_exact
    };
    // Sorting every bucket in place sorts the whole phase: one walk.
    let mut begin = 0usize;
    for &end in &count[..=b_last] {
        let end = end as usize;
        if end > begin + 1 {
            sort_small(&mut order[begin..end], |a, b| {
                a.d > b.d || (a.d == b.d && a.idx < b.idx)
            });
        }
        begin = end;
    }
    exact_needed |= walk(&order, &mut pre);
    // Phase 2.
    let fits = by_cost.partition_point(|t| pre.spent + f64::from_bits(t.bits) <= budget);
    // A later step left out for not fitting ends its cluster the same way,
    // unless a cheaper step of its cluster follows it and would fit.
    for &(_, cheapest, c, d) in &later {
        if bucket(d) > b_last && pre.spent + c > budget && pre.spent + cheapest <= budget {
            exact_needed = true;
        }
    }
    order.clear();
    for (t, &d) in by_cost[..fits].iter().zip(&dens) {
        if bucket(d) > b_last {
            order.push(Step {
                d,
                c: f64::from_bits(t.bits),
                idx: t.idx,
                k: t.k,
            });
        }
    }
    order.sort_unstable_by(|a, b| b.d.cmp(&a.d).then(a.idx.cmp(&b.idx)));
    exact_needed |= walk(&order, &mut pre);
    pre.counts = at;
    (!exact_needed).then_some(pre)
}

/// [`best_single_addition`] for the KPOD objective with the candidates in
/// ascending (cost, index) order. `j(e)` only falls as the cost grows, so one
/// pointer walks the prefixes down while `at[k]` (the weight of cluster k in
/// prefix j) drops by one for each pick it passes; every candidate's gain at
/// its prefix, `c + y(at[k])`, is then one lookup: O(n + m) in all, no
/// history search. The items that still fit after the run are a prefix of the
/// order, skipped at once. Same gains, bit for bit, and the same winner as
/// [`best_single_addition`] (ties in value to the lower index). `ytab`:
/// [`UnitTables::y`] for the candidates' clusters; `pre.counts`: the cluster
/// weights at the end of the run.
fn best_single_addition_sorted(
    p: &Problem<'_>,
    budget: f64,
    pre: &Prefixes,
    by_cost: &[CostItem],
    ytab: &[f64],
    evals: &mut u64,
) -> Option<(f64, usize, u32)> {
    let m = pre.len();
    let rest = by_cost.partition_point(|t| pre.spent + f64::from_bits(t.bits) <= budget);
    let by_cost = &by_cost[rest..];
    if by_cost.is_empty() || m == 0 {
        // m == 0: nothing fits after the run that did not fit before it.
        return None;
    }
    let selected = Bits::of(p.len(), &pre.picks);
    let mut at = pre.counts.clone();
    let mut best = pre.val[m];
    let mut found: Option<(f64, usize, u32)> = None;
    let mut j = m;
    for t in by_cost {
        let c = f64::from_bits(t.bits);
        while pre.cum[j] + c > budget {
            j -= 1;
            at[pre.after_k[j] as usize] -= 1;
        }
        let e = t.idx;
        if selected.get(e as usize) {
            continue;
        }
        *evals += 1;
        let v = pre.val[j] + (c + ytab[at[t.k as usize] as usize]);
        if v > best || (v == best && found.is_some_and(|(_, _, fe)| e < fe)) {
            best = v;
            found = Some((v, j, e));
        }
    }
    found
}

/// A live item of the threshold algorithm's level lists, with what its gain
/// needs (modular part `a`, weight `v`), so that a level pass reads its list
/// front to back and nothing per item at random.
#[derive(Clone, Copy)]
struct Slot {
    cost: f64,
    a: f64,
    v: f64,
    item: u32,
    cluster: u32,
}

/// log2(x) within 0.09 for positive normal x (exponent plus linear mantissa);
/// only a starting guess, so accuracy does not matter for correctness.
#[inline]
fn approx_log2(x: f64) -> f64 {
    if !(x > f64::MIN_POSITIVE && x < f64::INFINITY) {
        return if x > 1.0 {
            f64::INFINITY
        } else {
            f64::NEG_INFINITY
        };
    }
    let bits = x.to_bits();
    let exponent = ((bits >> 52) & 0x7ff) as i64 - 1023;
    let mantissa = f64::from_bits((bits & ((1u64 << 52) - 1)) | (1023u64 << 52));
    exponent as f64 + (mantissa - 1.0)
}

/// The density levels tau_r = tau_0 (1 - eps)^r of the threshold algorithm.
struct Levels {
    taus: Vec<f64>,
    /// 1 / -log2(1 - eps).
    inv_lambda: f64,
}

impl Levels {
    /// First level r with `taus[r] <= d` (`taus.len()` = the fill level):
    /// a logarithm gives the level up to rounding, exact comparisons with
    /// the stored thresholds settle it.
    #[inline]
    fn of(&self, d: f64) -> usize {
        let taus = &self.taus;
        let fill = taus.len();
        let guess = approx_log2(taus[0] / d) * self.inv_lambda;
        let mut r = if guess >= fill as f64 {
            fill
        } else if guess > 0.0 {
            guess as usize
        } else {
            0
        };
        while r > 0 && taus[r - 1] <= d {
            r -= 1;
        }
        while r < fill && taus[r] > d {
            r += 1;
        }
        r
    }
}

/// Phase 3 and the fill for any objective: every item sits in the FIFO list
/// of the level of its last known density (index order first, then the
/// order of demotion) and is re-evaluated when its level is processed.
#[allow(clippy::too_many_arguments)]
fn item_levels(
    p: &Problem<'_>,
    budget: f64,
    cand: &[u32],
    upper: &[f64],
    levels: &Levels,
    pre: &mut Prefixes,
    wv: &mut Weights,
    evals: &mut u64,
) {
    let taus = &levels.taus;
    let fill = taus.len();
    // Entries carry cost, modular part, weight and cluster so a pass reads
    // its list sequentially.
    let mut lists = LevelLists::new(fill + 1);
    for (&i, &u) in cand.iter().zip(upper) {
        let iu = i as usize;
        let c = p.costs[iu];
        let slot = Slot {
            cost: c,
            a: p.modular[iu],
            v: p.value(iu),
            item: i,
            cluster: p.cluster[iu],
        };
        lists.push(levels.of(u / c), slot);
    }
    for r in 0..=fill {
        // The fill level (r == fill) takes every positive gain.
        let tau = taus.get(r).copied().unwrap_or(0.0);
        lists.drain(r, |lists, slot| {
            let iu = slot.item as usize;
            let c = slot.cost;
            if pre.spent + c > budget {
                return;
            }
            let g = p.gain_akv(slot.cluster as usize, slot.a, slot.v, wv);
            *evals += 1;
            if r == fill {
                if g > 0.0 {
                    pre.take_kc(p, iu, slot.cluster, c, g, wv);
                }
                return;
            }
            let d = g / c;
            if d >= tau && g > 0.0 {
                pre.take_kc(p, iu, slot.cluster, c, g, wv);
            } else {
                lists.push(levels.of(d).max(r + 1), slot);
            }
        });
    }
}

/// Slots per chunk of [`LevelLists`] (128 KiB).
const LEVEL_CHUNK: usize = 4096;

/// The FIFO lists of [`item_levels`], one per level, in fixed-size chunks
/// from a shared pool: a level's chunks go back to the pool as the level is
/// processed and serve the later levels' pushes, so the lists keep reusing
/// the same memory. (A growing vector per level was reallocated and faulted
/// in fresh pages on every demotion wave: about 40 % of a 1M-item call.)
struct LevelLists {
    /// Chunk storage by id (capacity [`LEVEL_CHUNK`] each).
    chunks: Vec<Vec<Slot>>,
    /// Ids of the chunks not in any list.
    free: Vec<u32>,
    /// Per level, the ids of its chunks in order.
    levels: Vec<Vec<u32>>,
}

impl LevelLists {
    fn new(levels: usize) -> Self {
        LevelLists {
            chunks: Vec::new(),
            free: Vec::new(),
            levels: vec![Vec::new(); levels],
        }
    }

    /// Appends `slot` to the list of `level`.
    #[inline]
    fn push(&mut self, level: usize, slot: Slot) {
        let list = &mut self.levels[level];
        let id = match list.last() {
            Some(&id) if self.chunks[id as usize].len() < LEVEL_CHUNK => id,
            _ => {
                let id = self.free.pop().unwrap_or_else(|| {
                    self.chunks.push(Vec::with_capacity(LEVEL_CHUNK));
                    (self.chunks.len() - 1) as u32
                });
                list.push(id);
                id
            }
        };
        self.chunks[id as usize].push(slot);
    }

    /// Hands every slot of `level`'s list, in order, to `f`, which may push
    /// onto later levels; each chunk goes back to the pool once read.
    fn drain(&mut self, level: usize, mut f: impl FnMut(&mut Self, Slot)) {
        for id in std::mem::take(&mut self.levels[level]) {
            let mut chunk = std::mem::take(&mut self.chunks[id as usize]);
            for &slot in &chunk {
                f(self, slot);
            }
            chunk.clear();
            self.chunks[id as usize] = chunk;
            self.free.push(id);
        }
    }
}

/// The affordable items of every cluster in (cost, index) order: the global
/// cost order ([`cost_order`]) grouped by cluster with one stable counting
/// pass. The threshold pass of the KPOD objective consumes each cluster
/// from its cheap end.
struct ClusterQueues {
    /// Cost bits (low, high word) and item of every candidate, cluster by
    /// cluster, each cluster in cost order: popping walks memory forward
    /// instead of jumping into the global cost order. One 12-byte entry per
    /// candidate, so the grouping pass writes one stream per cluster.
    entries: Vec<[u32; 3]>,
    /// Per cluster: the next position not yet consumed, and the end.
    pos: Vec<u32>,
    end: Vec<u32>,
}

impl ClusterQueues {
    fn new(by_cost: &[CostItem], per_cluster: &[u32]) -> Self {
        let k = per_cluster.len();
        let mut pos = vec![0u32; k];
        let mut end = vec![0u32; k];
        let mut sum = 0u32;
        for c in 0..k {
            pos[c] = sum;
            sum += per_cluster[c];
            end[c] = sum;
        }
        let mut fill = pos.clone();
        let mut entries = vec![[0u32; 3]; by_cost.len()];
        for t in by_cost {
            let slot = &mut fill[t.k as usize];
            entries[*slot as usize] = [t.bits as u32, (t.bits >> 32) as u32, t.idx];
            *slot += 1;
        }
        ClusterQueues { entries, pos, end }
    }

    /// The cheapest remaining (cost, item) of cluster c (ties: lower index).
    #[inline]
    fn head(&self, c: usize) -> Option<(f64, u32)> {
        let q = self.pos[c] as usize;
        (self.pos[c] < self.end[c]).then(|| {
            let [lo, hi, item] = self.entries[q];
            (f64::from_bits(u64::from(lo) | (u64::from(hi) << 32)), item)
        })
    }

    /// Consumes the head of cluster c.
    #[inline]
    fn pop(&mut self, c: usize) {
        self.pos[c] += 1;
    }
}

/// Phase 3 and the fill for the KPOD objective (modular = costs, v = 1,
/// beta > 0). Inside a cluster every gain is `c_i + y_k` with one shared
/// `y_k > 0`, so the density `1 + y_k / c_i` falls with the cost: the
/// cheapest remaining item of a cluster is its densest, and nothing dearer
/// can pass a threshold it fails. The FIFO level lists therefore hold
/// clusters, not items: a cluster starts at the level of its cheapest
/// item's phase-1 density, and when its level is processed its cheapest
/// remaining items are evaluated and added while they fit and pass; the
/// first that fails sends the cluster to the level of that item's density,
/// and a cheapest item that no longer fits retires the cluster (nothing in
/// it can fit again). The fill adds a cluster's items cheapest first while
/// they fit. Each item is still evaluated at most once per level. Leaves
/// the final cluster weights in `pre.counts`.
#[allow(clippy::too_many_arguments)]
fn kpod_levels(
    p: &Problem<'_>,
    budget: f64,
    order: &mut ClusterQueues,
    levels: &Levels,
    ws0: &Weights,
    tables: &UnitTables,
    pre: &mut Prefixes,
    evals: &mut u64,
) {
    let (utab, ytab) = (&tables.u, &tables.y);
    // at[c]: the weight (count) of cluster c; a gain is c + y[at].
    let mut at = unit_weights(ws0);
    let taus = &levels.taus;
    let fill = taus.len();
    let mut lists: Vec<Vec<u32>> = vec![Vec::new(); fill + 1];
    for c in 0..p.n_clusters {
        if let Some((cost, _)) = order.head(c) {
            // The phase-1 value u_e of this item, recomputed (same floats).
            let u = cost + ytab[at[c] as usize];
            lists[levels.of(u / cost)].push(c as u32);
        }
    }
    for r in 0..=fill {
        let list = std::mem::take(&mut lists[r]);
        let tau = if r < fill { taus[r] } else { 0.0 };
        for &k in &list {
            let c = k as usize;
            while let Some((cost, i)) = order.head(c) {
                if pre.spent + cost > budget {
                    break;
                }
                let w = at[c] as usize;
                let g = cost + ytab[w];
                *evals += 1;
                let d = g / cost;
                if r == fill || d >= tau {
                    at[c] += 1;
                    pre.push(i, k, cost, g, utab[w + 1]);
                    order.pop(c);
                } else {
                    if r < fill {
                        lists[levels.of(d).max(r + 1)].push(k);
                    }
                    break;
                }
            }
        }
    }
    pre.counts = at;
}

/// Phases 1 and 2 of [`threshold`] in one sweep over the candidates `cand`
/// (index order): the best single gain, and the density-threshold estimate
/// (an item joins when `g B >= c v`, v the estimate's value so far). Keeps
/// every item's phase-1 gain in `upper`. Returns (best single gain, the
/// estimate's value, its items, items swept).
fn estimate_sweep(
    p: &Problem<'_>,
    budget: f64,
    ws0: &Weights,
    cand: &[u32],
    upper: &mut Vec<f64>,
) -> (f64, f64, Vec<u32>, u64) {
    let mut best_single = 0.0f64;
    let mut west = ws0.clone();
    let mut vest = 0.0;
    let mut est: Vec<u32> = Vec::new();
    for &i in cand {
        let iu = i as usize;
        let u = p.gain_w(iu, ws0);
        upper.push(u);
        best_single = best_single.max(u);
        let g = p.gain_w(iu, &west);
        if g > 0.0 && g * budget >= p.costs[iu] * vest {
            vest += g;
            p.add_w(iu, &mut west);
            est.push(i);
        }
    }
    (best_single, vest, est, cand.len() as u64)
}

/// The cluster weights of `ws` as counts (v = 1: every weight is an integer).
fn unit_weights(ws: &Weights) -> Vec<u32> {
    ws.w.iter().map(|&w| w as u32).collect()
}

/// [`estimate_sweep`] for the KPOD form over the affordable positive-cost
/// items: with v = 1 a cluster's weight is a count and an item's gain is
/// `c + y[count]` ([`UnitTables::y`]), the same floats as the generic gain.
/// `by_cost`: the candidates in cost order ([`cost_order`]). Without free
/// items every cluster starts at weight 0, so the best single gain is the
/// dearest candidate's cost plus `y[0]` (adding a constant keeps the order,
/// rounding included) and the sweep need not carry a running maximum.
fn kpod_estimate_sweep(
    p: &Problem<'_>,
    budget: f64,
    ws0: &Weights,
    ytab: &[f64],
    by_cost: &[CostItem],
) -> (f64, f64, Vec<u32>, u64) {
    // The sweep covers exactly the candidates of the cost order.
    let swept = by_cost.len() as u64;
    let base = unit_weights(ws0);
    if base.iter().all(|&w| w == 0) {
        let best_single = by_cost
            .last()
            .map_or(0.0, |t| f64::from_bits(t.bits) + ytab[0]);
        let (_, vest, est) = kpod_sweep::<false>(p, budget, base, ytab);
        return (best_single, vest, est, swept);
    }
    let (best_single, vest, est) = kpod_sweep::<true>(p, budget, base, ytab);
    (best_single, vest, est, swept)
}

/// The sweep of [`kpod_estimate_sweep`]: (best single gain, only tracked
/// with `BEST`; the estimate's value; its items).
fn kpod_sweep<const BEST: bool>(
    p: &Problem<'_>,
    budget: f64,
    base: Vec<u32>,
    ytab: &[f64],
) -> (f64, f64, Vec<u32>) {
    let mut at = base.clone();
    let mut best_single = 0.0f64;
    let mut vest = 0.0;
    let mut est: Vec<u32> = Vec::new();
    for_each_candidate(
        p,
        budget,
        |i, c| {
            let k = p.cluster[i] as usize;
            if BEST {
                best_single = best_single.max(c + ytab[base[k] as usize]);
            }
            let g = c + ytab[at[k] as usize];
            if g * budget >= c * vest {
                vest += g;
                at[k] += 1;
                est.push(i as u32);
            }
        },
        |_| {},
    );
    (best_single, vest, est)
}

/// The 1/2 - eps thresholding algorithm; see `docs/scheduler.md` for the
/// argument. Phases, each evaluation counted:
/// 1. gains u_e of every affordable item given the free items (n);
/// 2. OPT estimate: one pass adding e whenever u > 0 and gain * B >= c_e * value,
///    ignoring the budget; OPT <= 2 value (n), and the longest suffix that fits,
///    T, re-evaluated (<= n), gives OPT >= max(max u, F(T)) >= value / 4;
/// 3. thresholds tau_r = tau_0 (1 - eps)^r from tau_0 = 2 value / (eps B) down
///    to eps max(max u, F(T)) / B; at level r every live affordable item whose
///    last known density is >= tau_r is re-evaluated, in index order, and
///    added if its density is still >= tau_r, else moved to the level of its
///    new density (each item visits each level at most once); for the KPOD
///    objective the lists hold clusters whose items are taken cheapest first
///    (`kpod_levels`), otherwise items (`item_levels`);
/// 4. a fill pass over the items below the last level (gain > 0 suffices);
/// 5. Greedy + Max candidates (<= n) and the candidate T; the best is returned.
fn threshold(p: &Problem<'_>, budget: f64, eps: f64, evals: &mut u64) -> Result<Picks> {
    // The KPOD form keeps no candidate list: it takes its cost order (and
    // free items) and gain tables first, and every gain after that is a cost
    // plus a table entry (no square roots per pick).
    let unit = kpod_form(p);
    let mut per_cluster = vec![0u32; if unit { p.n_clusters } else { 0 }];
    let (by_cost, free, cand) = if unit {
        let (by_cost, free) = cost_order(p, budget, &mut per_cluster);
        (by_cost, free, Vec::new())
    } else {
        let (free, cand) = split(p, budget);
        (Vec::new(), free, cand)
    };
    let mut ws0 = p.weights();
    for &i in &free {
        p.add_w(i as usize, &mut ws0);
    }
    let tables = unit.then(|| UnitTables::new(p, &ws0, &per_cluster));
    // Phases 1 and 2 share one sweep (two evaluations per item). Only the
    // general form keeps the phase-1 gains (its level lists and candidate
    // search start from them).
    let mut upper = Vec::with_capacity(cand.len());
    let (best_single, vest, mut est, swept) = match &tables {
        Some(t) => kpod_estimate_sweep(p, budget, &ws0, &t.y, &by_cost),
        None => estimate_sweep(p, budget, &ws0, &cand, &mut upper),
    };
    *evals += 2 * swept;
    if swept == 0 || best_single <= 0.0 {
        return Ok((free, None));
    }
    let mut tail_cost = 0.0;
    let mut first = est.len();
    while first > 0 {
        let c = p.costs[est[first - 1] as usize];
        if tail_cost + c <= budget {
            tail_cost += c;
            first -= 1;
        } else {
            break;
        }
    }
    let tail: Vec<u32> = est.split_off(first);
    drop(est);
    let vtail = match &tables {
        Some(t) => {
            let mut at = unit_weights(&ws0);
            let mut v = 0.0;
            for &i in &tail {
                let k = p.cluster[i as usize] as usize;
                v += p.costs[i as usize] + t.y[at[k] as usize];
                at[k] += 1;
            }
            v
        }
        None => {
            let mut wt = ws0.clone();
            let mut v = 0.0;
            for &i in &tail {
                v += p.gain_w(i as usize, &wt);
                p.add_w(i as usize, &mut wt);
            }
            v
        }
    };
    *evals += tail.len() as u64;
    let gamma_up = 2.0 * vest;
    let gamma_low = best_single.max(vtail);
    if !(gamma_up.is_finite() && gamma_low.is_finite()) {
        return Err(Error::InvalidOption {
            arg: "costs",
            message:
                "the objective overflows float64 on this input; rescale costs, modular or values"
                    .to_string(),
        });
    }
    // Phase 3: levels, each a FIFO list (items enter in index order, then in
    // the order they were demoted).
    let tau0 = (gamma_up / (eps * budget)).min(f64::MAX);
    let tau_min = eps * gamma_low / budget;
    let mut taus = vec![tau0];
    loop {
        let next = taus[taus.len() - 1] * (1.0 - eps);
        if next < tau_min || next <= 0.0 || taus.len() >= MAX_LEVELS {
            break;
        }
        taus.push(next);
    }
    let levels = Levels {
        taus,
        inv_lambda: std::f64::consts::LN_2 / -(-eps).ln_1p(),
    };
    let mut pre = if unit {
        Prefixes::clusters_only()
    } else {
        Prefixes::new()
    };
    // Phase 5 follows each: the Greedy + Max candidates (for the KPOD
    // objective in cost order, O(n + m)).
    let aug = if let Some(tables) = &tables {
        let mut queues = ClusterQueues::new(&by_cost, &per_cluster);
        kpod_levels(
            p,
            budget,
            &mut queues,
            &levels,
            &ws0,
            tables,
            &mut pre,
            evals,
        );
        drop(queues);
        best_single_addition_sorted(p, budget, &pre, &by_cost, &tables.y, evals)
    } else {
        let mut wv = ws0.clone();
        item_levels(p, budget, &cand, &upper, &levels, &mut pre, &mut wv, evals);
        let selected = Bits::of(p.len(), &pre.picks);
        best_single_addition(p, budget, &ws0, &pre, &cand, &upper, &selected, evals)
    };
    let best = aug.map_or(pre.val[pre.len()], |(v, _, _)| v);
    if vtail > best {
        return Ok((assemble(&free, &tail, None), None));
    }
    if tables.is_some() {
        let (picks, known) = kpod_result(p, &free, pre, aug);
        return Ok((picks, Some(known)));
    }
    let (j, e) = aug.map_or((pre.len(), None), |(_, j, e)| (j, Some(e)));
    Ok((assemble(&free, &pre.picks[..j], e), None))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::objective::{Concave, DenseClusters};

    fn run(
        costs: &[f64],
        clusters: &[i64],
        modular: Option<&[f64]>,
        budget: f64,
        alg: Algorithm,
    ) -> Selection {
        let cl = DenseClusters::from_ids("clusters", clusters).unwrap();
        let p = Problem::new(costs, modular, None, &cl, 1.0, Concave::Sqrt).unwrap();
        select(
            &p,
            &Options {
                budget,
                algorithm: alg,
                eps: 0.1,
            },
        )
        .unwrap()
    }

    #[test]
    fn density_greedy_is_blocked_by_a_cheap_item_but_max_is_not() {
        // Item 0: cheap, high density; item 1: the whole budget, far more value.
        let costs = [1.0, 10.0];
        let modular = [2.0, 10.0];
        let beta0 = |alg| {
            let cl = DenseClusters::from_ids("clusters", &[0, 1]).unwrap();
            let p = Problem::new(&costs, Some(&modular), None, &cl, 0.0, Concave::Sqrt).unwrap();
            select(
                &p,
                &Options {
                    budget: 10.0,
                    algorithm: alg,
                    eps: 0.1,
                },
            )
            .unwrap()
        };
        assert_eq!(beta0(Algorithm::Density).indices, vec![0]);
        assert_eq!(beta0(Algorithm::GreedyMax).indices, vec![1]);
        assert_eq!(beta0(Algorithm::Threshold).indices, vec![1]);
    }

    #[test]
    fn zero_cost_first_and_too_expensive_dropped() {
        for alg in [
            Algorithm::Threshold,
            Algorithm::GreedyMax,
            Algorithm::Density,
        ] {
            let s = run(&[5.0, 0.0, 100.0, 1.0], &[0, 1, 2, 3], None, 6.0, alg);
            assert_eq!(s.indices[0], 1, "{alg:?}");
            assert!(!s.indices.contains(&2));
            assert!(s.cost <= 6.0);
        }
    }

    #[test]
    fn empty_and_zero_budget() {
        for alg in [
            Algorithm::Threshold,
            Algorithm::GreedyMax,
            Algorithm::Density,
        ] {
            let s = run(&[], &[], None, 1.0, alg);
            assert!(s.indices.is_empty());
            assert_eq!(s.value, 0.0);
            let s = run(&[1.0, 2.0], &[0, 0], None, 0.0, alg);
            assert!(s.indices.is_empty());
        }
    }

    /// A xorshift64 stream for the randomised tests.
    fn xorshift(mut s: u64) -> impl FnMut() -> u64 {
        move || {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            s
        }
    }

    #[test]
    fn cluster_heaps_serve_the_tops_binary_heaps_do() {
        // Heapify, pops, and re-evaluations that lower (or keep) the top's
        // density, as the lazy greedy makes them, on clusters of every size
        // from empty to 1000 entries; densities drawn from a few values so
        // that ties are broken by the item.
        let mut rnd = xorshift(0x9E3779B97F4A7C15);
        let sizes = [0usize, 1, 2, 3, 4, 5, 6, 17, 64, 1000];
        let mut entries = Vec::new();
        let mut cluster = Vec::new();
        for (c, &n) in sizes.iter().enumerate() {
            for _ in 0..n {
                let item = entries.len() as u32;
                entries.push(Entry {
                    density: (rnd() % 7) as f64,
                    gain: 0.0,
                    item,
                    version: 0,
                });
                cluster.push(c);
            }
        }
        // Interleave the clusters in the input order.
        let mut order: Vec<usize> = (0..entries.len()).collect();
        for i in (1..order.len()).rev() {
            order.swap(i, (rnd() % (i as u64 + 1)) as usize);
        }
        let k = sizes.len();
        let items: Vec<u32> = order.iter().map(|&j| j as u32).collect();
        let cluster_ids: Vec<u32> = cluster.iter().map(|&c| c as u32).collect();
        let mut heaps = ClusterHeaps::new(k, &cluster_ids, &items, |j| entries[order[j]]);
        let mut std_heaps: Vec<BinaryHeap<Entry>> = vec![BinaryHeap::new(); k];
        for (e, &c) in entries.iter().zip(&cluster) {
            std_heaps[c].push(*e);
        }
        for step in 0..3 * entries.len() {
            let c = (rnd() % k as u64) as usize;
            let (q, b) = (heaps.peek(c).copied(), std_heaps[c].peek().copied());
            assert_eq!(
                q.map(|e| e.item),
                b.map(|e| e.item),
                "cluster {c} step {step}"
            );
            let Some(top) = q else { continue };
            if rnd() % 3 == 0 {
                heaps.pop(c);
                std_heaps[c].pop();
            } else {
                let lowered = Entry {
                    density: top.density - (rnd() % 3) as f64,
                    version: top.version + 1,
                    ..top
                };
                heaps.replace_top(c, lowered);
                std_heaps[c].pop();
                std_heaps[c].push(lowered);
            }
        }
        for (c, h) in std_heaps.iter().enumerate() {
            assert_eq!(heaps.len[c], h.len(), "cluster {c}");
        }
    }

    #[test]
    fn level_lists_are_fifo_across_chunks_and_recycling() {
        // The level pass of item_levels against plain per-level vectors:
        // several chunks per level, demotions to later levels while a level
        // is read, chunks recycled in between.
        let mut rnd = xorshift(0xD1B54A32D192ED03);
        let (levels, items) = (10usize, 4 * LEVEL_CHUNK + 17);
        let slot = |item: u32| Slot {
            cost: 1.0,
            a: 0.0,
            v: 1.0,
            item,
            cluster: 0,
        };
        let mut lists = LevelLists::new(levels);
        let mut model: Vec<Vec<u32>> = vec![Vec::new(); levels];
        for item in 0..items as u32 {
            let l = (rnd() % 2) as usize;
            lists.push(l, slot(item));
            model[l].push(item);
        }
        let (mut seen, mut expected) = (Vec::new(), Vec::new());
        for r in 0..levels {
            // Six items in seven move on, to one of the next two levels.
            let demote = |item: u32| {
                (item % 7 != 0 && r + 1 < levels)
                    .then(|| (r + 1 + item as usize % 2).min(levels - 1))
            };
            for item in std::mem::take(&mut model[r]) {
                expected.push(item);
                if let Some(l) = demote(item) {
                    model[l].push(item);
                }
            }
            lists.drain(r, |lists, s| {
                seen.push(s.item);
                if let Some(l) = demote(s.item) {
                    lists.push(l, s);
                }
            });
        }
        assert_eq!(seen, expected);
        // Recycling kept the pool at the live items (at most all of them,
        // plus a part-filled chunk per level and the one being read), not
        // at the pushes made (several times as many).
        assert!(seen.len() > 4 * items);
        assert!(lists.chunks.len() <= items / LEVEL_CHUNK + 1 + levels + 1);
    }

    #[test]
    fn cost_order_sorts_by_cost_then_index_with_every_radix() {
        let mut rnd = xorshift(0x2545F4914F6CDD1D);
        let n = 5000;
        for case in 0..4 {
            let mut costs: Vec<f64> = (0..n)
                .map(|i| match case {
                    0 => 0.05 + (rnd() % 1_000_000) as f64 / 1e6,
                    1 => ((rnd() % 7) + 1) as f64 * 0.25, // many exact ties
                    2 => 1.0 + (rnd() % 5000) as f64 * 1e-13 + if i == 9 { 500.0 } else { 0.0 },
                    _ => f64::from_bits(1.0f64.to_bits() + rnd() % 64), // ulps apart
                })
                .collect();
            // Free items and items over the budget are not candidates.
            let budget = 100.0;
            for i in (0..n).step_by(5) {
                costs[i] = 0.0;
            }
            for i in (3..n).step_by(11) {
                costs[i] = budget * 1.5;
            }
            let clusters: Vec<i64> = (0..n).map(|_| (rnd() % 13) as i64).collect();
            let cl = DenseClusters::from_ids("clusters", &clusters).unwrap();
            let p = Problem::new(&costs, None, None, &cl, 12.0, Concave::Sqrt).unwrap();
            let mut want: Vec<(u64, u32)> = (0..n as u32)
                .filter(|&i| costs[i as usize] > 0.0 && costs[i as usize] <= budget)
                .map(|i| (costs[i as usize].to_bits(), i))
                .collect();
            want.sort_unstable();
            let mut want_per = vec![0u32; cl.count];
            for &(_, i) in &want {
                want_per[cl.ids[i as usize] as usize] += 1;
            }
            // one counting pass, two 11-bit passes, three 8-bit passes
            for (single, three) in [(usize::MAX, usize::MAX), (0, usize::MAX), (0, 0)] {
                let mut per = vec![0u32; cl.count];
                let (got, free) = cost_order_with(&p, budget, &mut per, single, three);
                let want_free: Vec<u32> = (0..n as u32)
                    .filter(|&i| costs[i as usize] == 0.0)
                    .collect();
                assert_eq!(free, want_free);
                let got: Vec<(u64, u32)> = got.iter().map(|t| (t.bits, t.idx)).collect();
                assert_eq!(got, want, "case {case}, passes ({single}, {three})");
                assert_eq!(per, want_per);
            }
        }
    }

    #[test]
    fn sparse_candidate_scan_visits_what_the_plain_one_does() {
        // Free items (+0.0 and -0.0), +inf (finished questions), costs
        // above, at and below the budget, in blocks full, partial and
        // empty; budgets 0, -0 and positive.
        let mut rnd = xorshift(7);
        for case in 0..200 {
            let n = [0, 1, 63, 64, 65, 130, 300][case % 7];
            let costs: Vec<f64> = (0..n)
                .map(|_| match rnd() % 7 {
                    0 => 0.0,
                    1 => f64::INFINITY,
                    2 => 0.5,
                    3 => -0.0,
                    _ => (rnd() % 1000) as f64 / 1000.0,
                })
                .collect();
            let ids = vec![0i64; n];
            let cl = DenseClusters::from_ids("clusters", &ids).unwrap();
            let sparse = Problem::trusted_kpod(&costs, &cl, 1.0);
            let plain = Problem {
                sparse: false,
                ..sparse.clone()
            };
            for budget in [0.0, -0.0, 0.5, 2.0] {
                let visit = |p: &Problem<'_>| {
                    let (mut hits, mut zeros) = (Vec::new(), Vec::new());
                    for_each_candidate(p, budget, |i, c| hits.push((i, c)), |i| zeros.push(i));
                    (hits, zeros)
                };
                assert_eq!(
                    visit(&sparse),
                    visit(&plain),
                    "case {case}, budget {budget}"
                );
            }
        }
    }

    #[test]
    fn sqrt_unit_table_equals_delta_bit_for_bit() {
        let costs = vec![1.0; 3000];
        let ids = vec![0i64; 3000];
        let cl = DenseClusters::from_ids("clusters", &ids).unwrap();
        for concave in [Concave::Sqrt, Concave::Log1p, Concave::Power(0.5)] {
            let p = Problem::new(&costs, None, None, &cl, 3.0, concave).unwrap();
            let t = UnitTables::new(&p, &p.weights(), &[3000]);
            assert_eq!(t.u.len(), 3001);
            for (w, (&u, &y)) in t.u.iter().zip(&t.y).enumerate() {
                let want = concave.delta(w as f64, 1.0);
                assert_eq!(u.to_bits(), want.to_bits(), "{concave:?} w = {w}");
                assert_eq!(y.to_bits(), (3.0 * want).to_bits());
            }
        }
    }

    #[test]
    fn estimate_sweep_reads_the_best_single_gain_off_the_cost_order() {
        // Without free items the sweep takes the best single gain from the
        // dearest candidate instead of a running maximum: the same floats,
        // the same candidate count and the same estimate.
        let mut bits = xorshift(7);
        let mut rnd = move || (bits() >> 11) as f64 / (1u64 << 53) as f64;
        for trial in 0..300 {
            let n = 1 + trial % 97;
            let k = 1 + trial % 7;
            let costs: Vec<f64> = (0..n)
                .map(|_| match (rnd() * 4.0) as u32 {
                    0 => 0.5,
                    _ => 0.01 + 3.0 * rnd(),
                })
                .collect();
            let ids: Vec<i64> = (0..n).map(|_| (rnd() * k as f64) as i64).collect();
            let budget = rnd() * costs.iter().sum::<f64>() * 0.6;
            let cl = DenseClusters::from_ids("clusters", &ids).unwrap();
            let concave = [Concave::Sqrt, Concave::Log1p, Concave::Power(0.3)][trial % 3];
            let beta = [12.0, 1e-3, 40.0][trial % 3];
            let p = Problem::new(&costs, None, None, &cl, beta, concave).unwrap();
            let mut per = vec![0u32; p.n_clusters];
            let (by_cost, free) = cost_order(&p, budget, &mut per);
            assert!(free.is_empty());
            let ws0 = p.weights();
            let t = UnitTables::new(&p, &ws0, &per);
            let fast = kpod_estimate_sweep(&p, budget, &ws0, &t.y, &by_cost);
            let full = kpod_sweep::<true>(&p, budget, unit_weights(&ws0), &t.y);
            assert_eq!(fast.0.to_bits(), full.0.to_bits(), "trial {trial}");
            assert_eq!(fast.1.to_bits(), full.1.to_bits());
            assert_eq!(fast.2, full.2);
            let candidates = costs.iter().filter(|&&c| c > 0.0 && c <= budget).count();
            assert_eq!(fast.3, candidates as u64);
        }
    }

    #[test]
    fn bad_options_are_errors() {
        let cl = DenseClusters::from_ids("clusters", &[0]).unwrap();
        let p = Problem::new(&[1.0], None, None, &cl, 1.0, Concave::Sqrt).unwrap();
        for (budget, eps, arg) in [
            (-1.0, 0.1, "budget"),
            (f64::NAN, 0.1, "budget"),
            (1.0, 0.0, "eps"),
            (1.0, 1.0, "eps"),
        ] {
            let e = select(
                &p,
                &Options {
                    budget,
                    algorithm: Algorithm::Threshold,
                    eps,
                },
            )
            .unwrap_err();
            assert!(e.to_string().starts_with(arg), "{e}");
        }
        assert!("nope".parse::<Algorithm>().is_err());
    }
}
