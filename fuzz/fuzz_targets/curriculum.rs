//! `kpod::Curriculum` on arbitrary input: construction and every stage return
//! Ok or Err and never panic; given-step counts never increase or go negative.
#![no_main]

use arbitrary::Arbitrary;
use kpod::{Algorithm, Curriculum, CurriculumConfig};
use libfuzzer_sys::fuzz_target;

#[derive(Arbitrary, Debug)]
struct Input {
    difficulty: Vec<f64>,
    offsets: Vec<i64>,
    clusters: Vec<i64>,
    stages: u8,
    p: f64,
    c0: f64,
    beta: f64,
    delta_steps: u8,
    eps: f64,
    algorithm: u8,
    advances: u8,
}

fuzz_target!(|inp: Input| {
    let algorithm = match inp.algorithm % 3 {
        0 => Algorithm::Threshold,
        1 => Algorithm::GreedyMax,
        _ => Algorithm::Density,
    };
    let cfg = CurriculumConfig {
        stages: u32::from(inp.stages),
        p: inp.p,
        c0: inp.c0,
        beta: inp.beta,
        delta_steps: u32::from(inp.delta_steps),
        eps: inp.eps,
        algorithm,
    };
    let Ok(mut cur) = Curriculum::new(inp.difficulty, &inp.offsets, &inp.clusters, cfg) else {
        return;
    };
    let mut prev = cur.given_steps();
    for _ in 0..(inp.advances % 8) {
        if cur.advance().is_err() {
            return;
        }
        let now = cur.given_steps();
        assert!(now.iter().zip(&prev).all(|(a, b)| *a >= 0 && a <= b));
        prev = now;
    }
});
