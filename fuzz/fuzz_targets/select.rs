//! `kpod::select` on arbitrary input: it returns Ok or Err and never panics,
//! and every Ok selection respects the budget and lists each item once.
#![no_main]

use arbitrary::Arbitrary;
use kpod::{select, Algorithm, Concave, DenseClusters, Options, Problem};
use libfuzzer_sys::fuzz_target;

#[derive(Arbitrary, Debug)]
struct Input {
    costs: Vec<f64>,
    clusters: Vec<i64>,
    modular: Option<Vec<f64>>,
    values: Option<Vec<f64>>,
    beta: f64,
    concave: u8,
    q: f64,
    budget: f64,
    eps: f64,
    algorithm: u8,
}

fuzz_target!(|inp: Input| {
    let g = match inp.concave % 3 {
        0 => Concave::Sqrt,
        1 => Concave::Log1p,
        _ => Concave::Power(inp.q),
    };
    let algorithm = match inp.algorithm % 3 {
        0 => Algorithm::Threshold,
        1 => Algorithm::GreedyMax,
        _ => Algorithm::Density,
    };
    let Ok(cl) = DenseClusters::from_ids("clusters", &inp.clusters) else {
        return;
    };
    let Ok(p) = Problem::new(
        &inp.costs,
        inp.modular.as_deref(),
        inp.values.as_deref(),
        &cl,
        inp.beta,
        g,
    ) else {
        return;
    };
    let opts = Options {
        budget: inp.budget,
        algorithm,
        eps: inp.eps,
    };
    if let Ok(s) = select(&p, &opts) {
        assert!(s.cost <= inp.budget);
        let mut seen = s.indices.clone();
        seen.sort_unstable();
        seen.dedup();
        assert_eq!(seen.len(), s.indices.len());
    }
});
