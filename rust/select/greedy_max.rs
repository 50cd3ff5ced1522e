//! Greedy + Max: the prefixes a greedy run records, the best single
//! addition to them (checkpoint bounds, history search; the KPOD form's
//! one-pass version over the cost order) and the final set.

use crate::objective::{Problem, Weights};

use super::cost_order::CostItem;

/// The positive-cost picks of a run with everything Greedy + Max needs to
/// evaluate "prefix j plus one item" afterwards.
pub(super) struct Prefixes {
    pub(super) picks: Vec<u32>,
    /// `cum[j]`: cost of the first j picks (`cum[0] = 0`), summed in pick order.
    pub(super) cum: Vec<f64>,
    /// `val[j]`: F(free + first j picks) - F(free), summed gains.
    pub(super) val: Vec<f64>,
    /// The cluster of pick j (1-based).
    pub(super) after_k: Vec<u32>,
    /// Its state after that pick: the unit increment g(W_k + 1) - g(W_k)
    /// when v = 1, else the weight W_k. Empty in the KPOD form, whose
    /// candidate search ([`best_single_addition_sorted`]) only needs the
    /// clusters (12 bytes a pick less).
    pub(super) after_x: Vec<f64>,
    /// The KPOD run's cluster weights (free items plus picks) at its end;
    /// empty elsewhere.
    pub(super) counts: Vec<u32>,
    pub(super) keep_states: bool,
    pub(super) spent: f64,
    /// The last `val` (kept apart so that the next pick need not load it).
    pub(super) total: f64,
}

impl Prefixes {
    pub(super) fn new() -> Self {
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
    pub(super) fn clusters_only() -> Self {
        Prefixes {
            keep_states: false,
            ..Prefixes::new()
        }
    }

    #[inline]
    pub(super) fn take(&mut self, p: &Problem<'_>, i: usize, g: f64, ws: &mut Weights) {
        self.take_kc(p, i, p.cluster[i], p.costs[i], g, ws);
    }

    /// `take` with the item's cluster and cost already at hand.
    #[inline]
    pub(super) fn take_kc(
        &mut self,
        p: &Problem<'_>,
        i: usize,
        k: u32,
        c: f64,
        g: f64,
        ws: &mut Weights,
    ) {
        p.add_kw(i, k as usize, ws);
        self.push(i as u32, k, c, g, state(ws, k as usize));
    }

    /// Room for `m` more picks.
    pub(super) fn reserve(&mut self, m: usize) {
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
    pub(super) fn push(&mut self, i: u32, k: u32, c: f64, g: f64, after: f64) {
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

    pub(super) fn len(&self) -> usize {
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
pub(super) fn best_single_addition(
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
pub(super) struct Bits(Vec<u64>);

impl Bits {
    pub(super) fn of(n: usize, items: &[u32]) -> Self {
        let mut words = vec![0u64; n.div_ceil(64)];
        for &i in items {
            words[i as usize / 64] |= 1 << (i % 64);
        }
        Bits(words)
    }

    #[inline]
    pub(super) fn get(&self, i: usize) -> bool {
        self.0[i / 64] >> (i % 64) & 1 == 1
    }
}

/// The KPOD run's result, free items + picks[..j] + e (`extra` = the
/// Greedy + Max candidate (value, j, e); all picks when `None`), with its F
/// and cost read off the run's own sums: the free items cost 0, picks[..j]
/// cost `cum[j]` (summed in pick order, as
/// [`Problem::value_and_cost`] does, so the same floats) and every
/// cluster's weight is its count.
pub(super) fn kpod_result(
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
pub(super) fn assemble(free: &[u32], picks: &[u32], extra: Option<u32>) -> Vec<u32> {
    let mut out = Vec::with_capacity(free.len() + picks.len() + 1);
    out.extend_from_slice(free);
    out.extend_from_slice(picks);
    out.extend(extra);
    out
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
pub(super) fn best_single_addition_sorted(
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

#[cfg(test)]
mod tests {
    use crate::objective::{Concave, DenseClusters, Problem};
    use crate::select::{select, xorshift, Algorithm, Options};

    #[test]
    fn the_best_single_addition_is_the_best_prefix_plus_one_item() {
        // Against brute force over every greedy prefix and every unpicked
        // item that fits it, on the KPOD form (the cost-order pass) and with
        // a custom modular part (checkpoints and the history search).
        let mut rnd = xorshift(0x5DEECE66D);
        let mut improved = [0usize; 2];
        for trial in 0..300 {
            let n = 2 + trial % 40;
            let costs: Vec<f64> = (0..n)
                .map(|_| 0.05 + (rnd() % 1000) as f64 / 250.0)
                .collect();
            let ids: Vec<i64> = (0..n).map(|_| (rnd() % 4) as i64).collect();
            let modular: Vec<f64> = costs
                .iter()
                .map(|&c| c * (0.2 + (rnd() % 200) as f64 / 50.0))
                .collect();
            let cl = DenseClusters::from_ids("clusters", &ids).unwrap();
            let budget = costs.iter().sum::<f64>() * [0.1, 0.3, 0.6][trial % 3];
            for (form, m) in [None, Some(&modular[..])].into_iter().enumerate() {
                let p = Problem::new(&costs, m, None, &cl, 2.0, Concave::Sqrt).unwrap();
                let opts = |algorithm| Options {
                    budget,
                    algorithm,
                    eps: 0.1,
                };
                let run = select(&p, &opts(Algorithm::Density)).unwrap();
                let got = select(&p, &opts(Algorithm::GreedyMax)).unwrap();
                let picks: Vec<u32> = run.indices.iter().map(|&i| i as u32).collect();
                let mut best = run.value;
                for j in 0..=picks.len() {
                    let spent = p.value_and_cost(&picks[..j]).1;
                    for e in (0..n as u32).filter(|e| !picks.contains(e)) {
                        if spent + costs[e as usize] <= budget {
                            let mut set = picks[..j].to_vec();
                            set.push(e);
                            best = best.max(p.value_and_cost(&set).0);
                        }
                    }
                }
                let tol = 1e-12 * best;
                assert!(
                    (got.value - best).abs() <= tol,
                    "trial {trial}: {} vs {best}",
                    got.value
                );
                assert!(got.cost <= budget);
                improved[form] += usize::from(got.value > run.value + tol);
            }
        }
        // Both paths found better sets than the plain greedy run.
        assert!(improved[0] > 0 && improved[1] > 0, "{improved:?}");
    }
}
