//! Criterion benchmarks of the scheduler core (no Python involved).
//!
//! `cargo bench --bench select` times one selection per algorithm on random
//! instances (costs uniform in [0.1, 5), cluster ids uniform, budget 20 % of
//! the total cost, KPOD objective: a = cost, v = 1, sqrt, beta = 12) and
//! one 50-stage curriculum. `KPOD_BENCH_N` overrides the item counts
//! (comma-separated, default "100000,1000000").

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use kpod::{
    select, Algorithm, Concave, Curriculum, CurriculumConfig, DenseClusters, Options, Problem,
};

/// SplitMix64: a tiny deterministic generator, so the bench needs no rand crate.
struct Rng(u64);
impl Rng {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn uniform(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

fn sizes() -> Vec<usize> {
    std::env::var("KPOD_BENCH_N")
        .ok()
        .map(|s| s.split(',').filter_map(|x| x.trim().parse().ok()).collect())
        .unwrap_or_else(|| vec![100_000, 1_000_000])
}

fn instance(n: usize, k: u64, seed: u64) -> (Vec<f64>, Vec<i64>) {
    let mut rng = Rng(seed);
    let costs = (0..n).map(|_| 0.1 + 4.9 * rng.uniform()).collect();
    let clusters = (0..n).map(|_| (rng.next_u64() % k) as i64).collect();
    (costs, clusters)
}

fn bench_select(c: &mut Criterion) {
    let mut group = c.benchmark_group("select");
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(5));
    for n in sizes() {
        for k in [5u64, 1000] {
            let (costs, ids) = instance(n, k, 42);
            let clusters = DenseClusters::from_ids("clusters", &ids).expect("valid ids");
            let problem = Problem::new(&costs, None, None, &clusters, 12.0, Concave::Sqrt)
                .expect("valid instance");
            let budget = 0.2 * costs.iter().sum::<f64>();
            group.throughput(Throughput::Elements(n as u64));
            for (name, algorithm) in [
                ("threshold", Algorithm::Threshold),
                ("greedy_max", Algorithm::GreedyMax),
                ("density", Algorithm::Density),
            ] {
                let opts = Options {
                    budget,
                    algorithm,
                    eps: 0.1,
                };
                group.bench_with_input(
                    BenchmarkId::new(format!("{name}/K={k}"), n),
                    &opts,
                    |b, o| b.iter(|| black_box(select(&problem, o).expect("select"))),
                );
            }
        }
    }
    group.finish();
}

fn bench_curriculum(c: &mut Criterion) {
    let mut group = c.benchmark_group("curriculum");
    group.sample_size(10);
    let n = *sizes().last().unwrap_or(&1_000_000);
    let mut rng = Rng(7);
    let mut difficulty = Vec::new();
    let mut offsets = vec![0i64];
    let mut clusters = Vec::with_capacity(n);
    for _ in 0..n {
        let steps = 2 + rng.next_u64() % 6;
        for _ in 0..steps {
            difficulty.push(0.1 + 2.0 * rng.uniform());
        }
        offsets.push(difficulty.len() as i64);
        clusters.push((rng.next_u64() % 5) as i64);
    }
    let cfg = CurriculumConfig {
        stages: 50,
        p: 0.5,
        c0: 0.3,
        beta: 12.0,
        delta_steps: 1,
        eps: 0.1,
        algorithm: Algorithm::Threshold,
    };
    group.bench_function(BenchmarkId::new("50_stages", n), |b| {
        b.iter(|| {
            let mut cur = Curriculum::new(difficulty.clone(), &offsets, &clusters, cfg)
                .expect("valid curriculum");
            for _ in 0..50 {
                black_box(cur.advance().expect("stage"));
            }
        })
    });
    group.finish();
}

criterion_group!(benches, bench_select, bench_curriculum);
criterion_main!(benches);
