//! The exact greedy for the KPOD objective (modular = costs, v = 1,
//! beta > 0): the O(n) rank-and-density walk over the cost order
//! (`greedy_unit_sorted`), and the scan over each cluster's cost runs with
//! its flat runs (`greedy_unit_run`), which handles rounding ties exactly.

use std::cmp::Reverse;
use std::collections::binary_heap::PeekMut;
use std::collections::BinaryHeap;

use crate::objective::{Concave, Problem, Weights};

use super::cost_order::{key_buckets, offsets, sort_small, CostItem};
use super::greedy_max::Prefixes;
use super::lazy_greedy::Entry;

/// The gain increments of a KPOD cluster by weight w (free items plus picks),
/// for every weight up to `longest`: `u[w] = g(w + 1) - g(w)`, the state a
/// cluster of weight w is in, and `y[w] = beta u[w]`, the diversity part of
/// its items' gains (the same floats as the unit cache of [`Weights`]).
pub(super) struct UnitTables {
    pub(super) u: Vec<f64>,
    pub(super) y: Vec<f64>,
}

impl UnitTables {
    /// Tables reaching the largest weight any cluster can get: its free
    /// items (`ws0`) plus all its `per_cluster` candidates.
    pub(super) fn new(p: &Problem<'_>, ws0: &Weights, per_cluster: &[u32]) -> Self {
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

/// The cluster weights of `ws` as counts (v = 1: every weight is an integer).
pub(super) fn unit_weights(ws: &Weights) -> Vec<u32> {
    ws.w.iter().map(|&w| w as u32).collect()
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
pub(super) fn greedy_unit_run(
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

/// One step of the KPOD greedy: the item of rank r in its cluster, with its
/// density `d` (as bits) when its cluster holds r picks.
#[derive(Clone, Copy, Default)]
struct Step {
    d: u64,
    c: f64,
    idx: u32,
    k: u32,
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
pub(super) fn greedy_unit_sorted(
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::objective::DenseClusters;

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
}
