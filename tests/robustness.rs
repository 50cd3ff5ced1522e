//! Arbitrary-input robustness of the public Rust entry points: whatever the
//! input (NaN, inf, negative, huge, mismatched lengths, odd options), they
//! return `Ok` or `Err` and never panic, and every `Ok` selection respects
//! the budget. Also checks the approximation guarantees against brute force
//! on small instances.

use kpod::{
    select, Algorithm, Concave, Curriculum, CurriculumConfig, DenseClusters, Options, Problem,
};
use proptest::prelude::*;

fn any_f64() -> impl Strategy<Value = f64> {
    prop_oneof![
        4 => 0.0f64..10.0,
        1 => Just(0.0),
        1 => Just(f64::NAN),
        1 => Just(f64::INFINITY),
        1 => Just(-1.0),
        1 => Just(1e300),
        1 => Just(f64::MIN_POSITIVE / 4.0),
        1 => any::<f64>(),
    ]
}

fn algorithm() -> impl Strategy<Value = Algorithm> {
    prop_oneof![
        Just(Algorithm::Threshold),
        Just(Algorithm::GreedyMax),
        Just(Algorithm::Density)
    ]
}

fn concave() -> impl Strategy<Value = Concave> {
    prop_oneof![
        Just(Concave::Sqrt),
        Just(Concave::Log1p),
        any_f64().prop_map(Concave::Power),
    ]
}

fn run_select(
    costs: &[f64],
    ids: &[i64],
    modular: Option<&[f64]>,
    values: Option<&[f64]>,
    beta: f64,
    g: Concave,
    opts: Options,
) -> kpod::Result<kpod::Selection> {
    let cl = DenseClusters::from_ids("clusters", ids)?;
    let p = Problem::new(costs, modular, values, &cl, beta, g)?;
    select(&p, &opts)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    #[test]
    fn select_never_panics(
        costs in prop::collection::vec(any_f64(), 0..30),
        ids in prop::collection::vec(prop_oneof![0i64..5, Just(-1i64), Just(i64::MAX), any::<i64>()], 0..30),
        modular in prop::option::of(prop::collection::vec(any_f64(), 0..30)),
        values in prop::option::of(prop::collection::vec(any_f64(), 0..30)),
        beta in any_f64(),
        g in concave(),
        budget in any_f64(),
        eps in prop_oneof![0.0f64..1.0, any_f64()],
        alg in algorithm(),
    ) {
        let opts = Options { budget, algorithm: alg, eps };
        if let Ok(s) = run_select(&costs, &ids, modular.as_deref(), values.as_deref(), beta, g, opts) {
            prop_assert!(s.cost <= budget);
            prop_assert!(!s.value.is_nan());
            let mut seen = s.indices.clone();
            seen.sort_unstable();
            seen.dedup();
            prop_assert_eq!(seen.len(), s.indices.len());
        }
    }

    #[test]
    fn curriculum_never_panics(
        d in prop::collection::vec(any_f64(), 0..40),
        offsets in prop::collection::vec(prop_oneof![0i64..40, any::<i64>()], 0..12),
        ids in prop::collection::vec(prop_oneof![0i64..4, any::<i64>()], 0..12),
        stages in prop_oneof![0u32..6, any::<u32>()],
        p in any_f64(),
        c0 in any_f64(),
        beta in any_f64(),
        delta in prop_oneof![0u32..4, any::<u32>()],
        eps in any_f64(),
        alg in algorithm(),
    ) {
        let mut offsets = offsets;
        if !offsets.is_empty() && offsets.len() % 2 == 0 {
            // Half the time make the offsets well-formed, to reach advance().
            offsets.sort_unstable();
            offsets[0] = 0;
            let last = offsets.len() - 1;
            offsets[last] = d.len() as i64;
        }
        let cfg = CurriculumConfig { stages, p, c0, beta, delta_steps: delta, eps, algorithm: alg };
        if let Ok(mut cur) = Curriculum::new(d, &offsets, &ids, cfg) {
            for _ in 0..(stages.min(6) + 2) {
                let before = cur.written();
                match cur.advance() {
                    Ok(r) => {
                        if before <= r.budget && r.budget.is_finite() {
                            prop_assert!(r.written <= r.budget * (1.0 + 1e-12) + 1e-12);
                        }
                    }
                    Err(_) => break,
                }
            }
            let state = cur.state_dict();
            let mut again = cur.clone();
            prop_assert!(again.load_state_dict(state).is_ok());
        }
    }

    #[test]
    fn reported_value_and_cost_are_those_of_the_indices(
        items in prop::collection::vec((prop_oneof![4 => 0.01f64..3.0, 1 => Just(0.0), 1 => Just(0.5)], 0i64..6), 0..80),
        frac in 0.0f64..1.2,
        beta in prop_oneof![Just(12.0f64), 1e-6f64..50.0],
        g in prop_oneof![Just(Concave::Sqrt), Just(Concave::Log1p), (0.05f64..1.0).prop_map(Concave::Power)],
        alg in algorithm(),
        eps in prop_oneof![Just(0.1f64), Just(0.3)],
    ) {
        // The KPOD paths read F and the cost off their own running sums
        // instead of recomputing them: they must be the floats that
        // value_and_cost gives for the returned indices, bit for bit.
        let costs: Vec<f64> = items.iter().map(|t| t.0).collect();
        let ids: Vec<i64> = items.iter().map(|t| t.1).collect();
        let budget = frac * costs.iter().sum::<f64>();
        let cl = DenseClusters::from_ids("clusters", &ids).unwrap();
        let p = Problem::new(&costs, None, None, &cl, beta, g).unwrap();
        let s = select(&p, &Options { budget, algorithm: alg, eps }).unwrap();
        let set: Vec<u32> = s.indices.iter().map(|&i| i as u32).collect();
        let (value, cost) = p.value_and_cost(&set);
        prop_assert_eq!(s.value.to_bits(), value.to_bits());
        prop_assert_eq!(s.cost.to_bits(), cost.to_bits());
    }

    #[test]
    fn guarantees_against_brute_force(
        items in prop::collection::vec((0.05f64..5.0, 0.0f64..5.0, 0i64..3), 1..11),
        budget in 0.0f64..10.0,
        beta in 0.0f64..4.0,
        eps in prop_oneof![Just(0.05f64), Just(0.2)],
    ) {
        let costs: Vec<f64> = items.iter().map(|t| t.0).collect();
        let modular: Vec<f64> = items.iter().map(|t| t.1).collect();
        let ids: Vec<i64> = items.iter().map(|t| t.2).collect();
        let cl = DenseClusters::from_ids("clusters", &ids).unwrap();
        let p = Problem::new(&costs, Some(&modular), None, &cl, beta, Concave::Sqrt).unwrap();
        let n = costs.len();
        let mut opt = 0.0f64;
        for mask in 0u32..(1 << n) {
            let set: Vec<u32> = (0..n as u32).filter(|i| mask >> i & 1 == 1).collect();
            if p.cost_of(&set) <= budget {
                opt = opt.max(p.value_of(&set));
            }
        }
        let tol = 1e-9 * opt.max(1.0);
        let thr = select(&p, &Options { budget, algorithm: Algorithm::Threshold, eps }).unwrap();
        let gm = select(&p, &Options { budget, algorithm: Algorithm::GreedyMax, eps }).unwrap();
        prop_assert!(thr.value >= (0.5 - eps) * opt - tol, "threshold {} opt {}", thr.value, opt);
        prop_assert!(gm.value >= 0.5 * opt - tol, "greedy_max {} opt {}", gm.value, opt);
    }
}
