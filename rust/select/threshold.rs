//! The threshold algorithm: density levels, the estimate sweeps, the KPOD
//! cluster queues and the generic per-item level lists (pooled chunks).

use crate::error::{Error, Result};
use crate::objective::{Problem, Weights};

use super::candidates::{for_each_candidate, kpod_form, split};
use super::cost_order::{cost_order, CostItem};
use super::greedy_max::{
    assemble, best_single_addition, best_single_addition_sorted, kpod_result, Bits, Prefixes,
};
use super::unit_greedy::{unit_weights, UnitTables};
use super::{Picks, MAX_LEVELS};

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
pub(super) fn threshold(p: &Problem<'_>, budget: f64, eps: f64, evals: &mut u64) -> Result<Picks> {
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
    use crate::select::xorshift;

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
}
