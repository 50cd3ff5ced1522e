//! The greedy entry point (`greedy_max`, `density`) and the generic lazy
//! greedy: per-cluster 4-ary heaps of possibly stale densities in one
//! array and a heap over the clusters' fresh tops.

use std::cmp::Ordering;
use std::collections::BinaryHeap;

use crate::objective::{Problem, Weights};

use super::candidates::{kpod_form, split};
use super::cost_order::{cost_order, offsets};
use super::greedy_max::{
    assemble, best_single_addition, best_single_addition_sorted, kpod_result, Bits, Prefixes,
};
use super::unit_greedy::{greedy_unit_run, greedy_unit_sorted, UnitTables};
use super::Picks;

/// Heap entry of the lazy greedy: max density first, then lower index.
#[derive(Clone, Copy, Default)]
pub(super) struct Entry {
    pub(super) density: f64,
    pub(super) gain: f64,
    pub(super) item: u32,
    /// Number of picks in the item's cluster when `gain` was computed.
    pub(super) version: u32,
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
pub(super) fn greedy(p: &Problem<'_>, budget: f64, plus_max: bool, evals: &mut u64) -> Picks {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::select::xorshift;

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
}
