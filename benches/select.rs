//! Criterion benchmarks of the scheduler core (no Python involved).
//!
//! `cargo bench --bench select` times one selection per algorithm on random
//! instances (costs uniform in [0.1, 5), cluster ids uniform, budget 20 % of
//! the total cost, KPOD objective: a = cost, v = 1, sqrt, beta = 12) and
//! one 50-stage curriculum. `KPOD_BENCH_N` overrides the item counts
//! (comma-separated, default "100000,1000000").
//!
//! The `floor` group times two lower bounds on the same inputs, for reading
//! the selections against: one streaming pass (cluster ids to u32 plus the
//! cost sum, the least any call does) and a two-pass LSD radix sort of
//! (16-bit cost key, index, cluster) records, the least an exact greedy that
//! orders its candidates by cost does on top. Neither selects anything.

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

/// One streaming pass over the inputs: cluster ids to u32 and the cost sum.
fn stream_pass(costs: &[f64], ids: &[i64]) -> (Vec<u32>, f64) {
    (ids.iter().map(|&x| x as u32).collect(), costs.iter().sum())
}

/// Candidates as (16-bit cost key, index, cluster) records, sorted by key
/// with two 8-bit LSD counting passes.
fn radix_sort_records(costs: &[f64], ids: &[i64]) -> Vec<(u64, u32, u32)> {
    let (lo, hi) = costs
        .iter()
        .fold((f64::MAX, 0.0f64), |(a, b), &x| (a.min(x), b.max(x)));
    let scale = if hi > lo { 65535.0 / (hi - lo) } else { 0.0 };
    let mut a: Vec<(u64, u32, u32)> = costs
        .iter()
        .zip(ids)
        .enumerate()
        .map(|(i, (&x, &k))| (((x - lo) * scale) as u64, i as u32, k as u32))
        .collect();
    let mut b = vec![(0u64, 0u32, 0u32); a.len()];
    for d in 0..2 {
        let mut start = [0u32; 257];
        for r in &a {
            start[((r.0 >> (8 * d)) & 255) as usize + 1] += 1;
        }
        for i in 1..257 {
            start[i] += start[i - 1];
        }
        for r in &a {
            let slot = &mut start[((r.0 >> (8 * d)) & 255) as usize];
            b[*slot as usize] = *r;
            *slot += 1;
        }
        std::mem::swap(&mut a, &mut b);
    }
    a
}

fn bench_floor(c: &mut Criterion) {
    let mut group = c.benchmark_group("floor");
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(3));
    for n in sizes() {
        let (costs, ids) = instance(n, 1000, 42);
        group.throughput(Throughput::Elements(n as u64));
        group.bench_function(BenchmarkId::new("stream_pass", n), |b| {
            b.iter(|| black_box(stream_pass(&costs, &ids)))
        });
        group.bench_function(BenchmarkId::new("radix_sort_16B", n), |b| {
            b.iter(|| black_box(radix_sort_records(&costs, &ids)))
        });
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

criterion_group!(benches, bench_select, bench_floor, bench_curriculum);
criterion_main!(benches);
