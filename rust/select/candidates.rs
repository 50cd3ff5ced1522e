//! The candidate scan: which items a call works on (zero-cost items taken
//! free, affordable positive-cost items), and whether the problem has the
//! KPOD form that the cost-ordered paths need.

use crate::objective::Problem;

/// Zero-cost items (taken free) and affordable positive-cost items, both in index order.
pub(super) fn split(p: &Problem<'_>, budget: f64) -> (Vec<u32>, Vec<u32>) {
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
pub(super) fn for_each_candidate(
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
pub(super) fn kpod_form(p: &Problem<'_>) -> bool {
    p.modular_is_cost && p.values.is_none() && p.beta > 0.0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::objective::DenseClusters;
    use crate::select::xorshift;

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
}
