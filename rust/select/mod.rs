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
//!
//! Layout, by what a reader looks for:
//!
//! * `mod.rs`: the public API ([`select`], [`Algorithm`], [`Options`],
//!   [`Selection`], [`check_options`]) and the dispatch to the algorithms.
//! * `candidates.rs`: the candidate scan (free items, affordable items, the
//!   branch-free scan over blocks of a sparse ground set) and the KPOD-form
//!   test.
//! * `cost_order.rs`: the (cost, index) order of the KPOD paths (counting
//!   pass, LSD radix sort on the cost bits, insertion fix) and its bucket
//!   helpers.
//! * `unit_greedy.rs`: the exact KPOD greedy: the O(n) walk over the cost
//!   order and the per-cluster cost-run scan with its flat runs, plus the
//!   unit gain tables.
//! * `lazy_greedy.rs`: the entry of `greedy_max` / `density` and the generic
//!   lazy greedy with its 4-ary per-cluster heaps.
//! * `greedy_max.rs`: Greedy + Max: the recorded prefixes, the best single
//!   addition (checkpoints, history search, the cost-order pass) and the
//!   final set.
//! * `threshold.rs`: the threshold algorithm: levels, estimate sweeps,
//!   cluster queues (KPOD form) and pooled per-item level lists.
//!
//! Each file carries the unit tests of what it defines.

mod candidates;
mod cost_order;
mod greedy_max;
mod lazy_greedy;
mod threshold;
mod unit_greedy;

use std::str::FromStr;

use crate::error::{Error, Result};
use crate::objective::Problem;

use lazy_greedy::greedy;
use threshold::threshold;

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

/// An algorithm's picks in order, with F and the cost of the set when the
/// algorithm has them at hand (else [`select`] computes them).
type Picks = (Vec<u32>, Option<(f64, f64)>);

/// A xorshift64 stream for the randomised tests.
#[cfg(test)]
fn xorshift(mut s: u64) -> impl FnMut() -> u64 {
    move || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        s
    }
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
