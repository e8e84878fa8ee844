#![allow(clippy::unwrap_used, clippy::expect_used, clippy::disallowed_methods)]
//! The semantic cache's lookup cost: `BruteForce::search` (k = 8, min_score 0.0, the query a
//! fresh random unit vector) over random unit rows — dim 256 (the local embedder's) at 10,000
//! and 50,000 rows, and dim 384 at 10,000. Target: well under a millisecond at 50,000 rows.
//! Throughput is the bytes of rows scanned, to compare with the machine's memory bandwidth.
//!
//! Run: `cargo bench --bench cache_index`.

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use std::hint::black_box;
use switchyard::cache::index::{BruteForce, VectorIndex};

/// xorshift64*: deterministic and dependency-free, so every run scans the same rows.
struct Rng(u64);

impl Rng {
    fn next_f32(&mut self) -> f32 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        let bits = self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 40;
        (bits as f32 / (1u64 << 23) as f32) - 1.0
    }

    fn unit(&mut self, dim: usize) -> Vec<f32> {
        let mut v: Vec<f32> = (0..dim).map(|_| self.next_f32()).collect();
        let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        v.iter_mut().for_each(|x| *x /= norm);
        v
    }
}

fn search(c: &mut Criterion) {
    let mut group = c.benchmark_group("cache_index_search");
    for (dim, n) in [(256, 10_000), (256, 50_000), (384, 10_000)] {
        let mut rng = Rng(0x5EED ^ (dim * n) as u64);
        let mut index = BruteForce::with_capacity(dim, n);
        for id in 0..n as u64 {
            index.insert(id, &rng.unit(dim));
        }
        let query = rng.unit(dim);
        let mut out = Vec::with_capacity(9);
        group.throughput(Throughput::Bytes((dim * n * size_of::<f32>()) as u64));
        group.bench_function(BenchmarkId::new(format!("dim{dim}"), n), |b| {
            b.iter(|| {
                index.search(black_box(&query), 0.0, 8, &mut out);
                black_box(out.len())
            })
        });
    }
    group.finish();
}

criterion_group!(benches, search);
criterion_main!(benches);
