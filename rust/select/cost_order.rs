//! The cost order of the KPOD paths: the candidates sorted by (cost, index)
//! with a counting pass or an LSD radix sort on the cost bits, plus the
//! bucket helpers the density order reuses.

use std::cmp::Ordering;

use crate::objective::Problem;

use super::candidates::for_each_candidate;

/// A positive-cost candidate in (cost, index) order: its cost's bit pattern
/// (positive finite floats order like their bits), index and cluster.
#[derive(Clone, Copy, Default)]
pub(super) struct CostItem {
    pub(super) bits: u64,
    pub(super) idx: u32,
    pub(super) k: u32,
}

/// Buckets for keys in `[lo, hi]`: at most about `n` of them (power of two,
/// 16 to 2^20), and the shift that maps `key - lo` onto them. Returns
/// (bucket count, shift); `(key - lo) >> shift < count` for every key.
pub(super) fn key_buckets(lo: u64, hi: u64, n: usize) -> (usize, u32) {
    let cap = n.next_power_of_two().clamp(16, 1 << 20);
    let range = hi - lo;
    let need = 64 - range.leading_zeros();
    let shift = need.saturating_sub(cap.trailing_zeros());
    (((range >> shift) as usize) + 1, shift)
}

/// Turns bucket counts (`start[b + 1]` = size of bucket b) into start offsets.
pub(super) fn offsets<T: Copy + std::ops::AddAssign>(start: &mut [T]) {
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
pub(super) fn sort_small<T: Copy>(v: &mut [T], less: impl Fn(&T, &T) -> bool) {
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
pub(super) fn cost_order(
    p: &Problem<'_>,
    budget: f64,
    per_cluster: &mut [u32],
) -> (Vec<CostItem>, Vec<u32>) {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::objective::{Concave, DenseClusters};
    use crate::select::xorshift;

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
}
