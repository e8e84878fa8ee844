//! The semantic cache's vector index: prompt embeddings by entry id, searched for the nearest
//! ones to a new prompt's embedding.
//!
//! [`VectorIndex`] is the seam an approximate (ANN) index can later replace; [`BruteForce`] is the
//! exact implementation used today. The index owns vectors and ids only: it does not embed,
//! normalise, expire or know what an id refers to — the cache around it does. It is read on the
//! request path, so it never blocks, allocates per row or does I/O.

use std::collections::HashMap;

/// Nearest-neighbour search by cosine similarity over L2-normalised vectors of one dimension.
///
/// Vectors are normalised by the caller, so cosine similarity is the dot product.
pub trait VectorIndex: Send + Sync {
    /// The number of floats in every vector.
    fn dim(&self) -> usize;

    /// The number of vectors held.
    fn len(&self) -> usize;

    /// Whether the index holds no vector.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Stores `vector` under `id`, replacing the vector already stored under `id` if any.
    ///
    /// `vector` is L2-normalised and `vector.len() == self.dim()`.
    fn insert(&mut self, id: u64, vector: &[f32]);

    /// Forgets `id`; `false` if it was not there.
    fn remove(&mut self, id: u64) -> bool;

    /// Clears `out` and fills it with up to `k` hits `(id, score)` whose cosine similarity to
    /// `query` is at least `min_score`, best first; equal scores in ascending id order, so the
    /// answer does not depend on insertion history.
    ///
    /// `query` is L2-normalised and `query.len() == self.dim()`. `out` is the caller's so a
    /// lookup allocates nothing once it has been used.
    fn search(&self, query: &[f32], min_score: f32, k: usize, out: &mut Vec<(u64, f32)>);
}

/// Exact search: the query's dot product with every stored vector.
///
/// Why not an ANN index: a semantic cache holds thousands to tens of thousands of entries, and at
/// that size a linear scan over contiguous rows is exact (no recall to tune, no rebuilds on
/// removal), simple, and bound by memory bandwidth rather than arithmetic.
///
/// Cost of a full f32 scan, from `cargo bench --bench cache_index` (k = 8, medians on a shared
/// 2-core AMD EPYC VM, ±30%): dim 256 × 10,000 rows (10 MB) ≈ 0.5–0.65 ms; dim 256 × 50,000
/// (51 MB) ≈ 6 ms, and merely reading 51 MB takes 5 ms there (≈10 GB/s for one core). Hence the
/// sign shortlist past [`EXACT_UP_TO`] rows: a lookup through the cache's store
/// (`cargo bench --bench cache`) takes 72 µs at 10,000 answers and 0.29–0.52 ms at 50,000 (p50).
///
/// Layout: one contiguous row-major `Vec<f32>` (`dim` floats per row), the row's id in a parallel
/// `Vec<u64>`, and a map id → row. Removal moves the last row into the hole so rows stay
/// contiguous and the scan never skips holes.
///
/// Past [`EXACT_UP_TO`] rows the scan is two-staged so a lookup stays well under a millisecond:
/// each row also keeps its vector's signs (one bit per dimension, 32 bytes at 256 dimensions,
/// 1.6 MB for 50,000 rows), the rows whose signs differ least from the query's (Hamming
/// distance, which tracks the angle) are shortlisted, at least [`SHORTLIST`] of them, and only
/// those are scored exactly. A vector within the threshold of the query differs from it in far
/// fewer signs than an unrelated one (a cosine of 0.5 is 60°: a third of the signs; unrelated
/// vectors, 90°: half), so the shortlist holds the hits unless hundreds of rows are closer still.
#[derive(Debug, Clone)]
pub struct BruteForce {
    dim: usize,
    rows: Vec<f32>,
    /// The signs of each row, `words` u64s per row.
    signs: Vec<u64>,
    ids: Vec<u64>,
    row_of: HashMap<u64, usize>,
}

/// Up to this many rows every row is scored exactly.
pub const EXACT_UP_TO: usize = 4096;
/// Past [`EXACT_UP_TO`], at least this many rows closest by sign are scored exactly.
pub const SHORTLIST: usize = 256;

/// One bit per dimension: set where the component is positive.
fn signs_of(v: &[f32], out: &mut Vec<u64>) {
    for chunk in v.chunks(64) {
        let mut w = 0u64;
        for (i, x) in chunk.iter().enumerate() {
            w |= u64::from(*x > 0.0) << i;
        }
        out.push(w);
    }
}

impl BruteForce {
    /// An empty index of `dim`-float vectors.
    #[must_use]
    pub fn new(dim: usize) -> Self {
        Self::with_capacity(dim, 0)
    }

    /// An empty index of `dim`-float vectors with room for `n` of them before reallocating.
    #[must_use]
    pub fn with_capacity(dim: usize, n: usize) -> Self {
        debug_assert!(dim > 0, "a vector index needs a dimension");
        Self {
            dim,
            rows: Vec::with_capacity(dim.saturating_mul(n)),
            signs: Vec::with_capacity(dim.div_ceil(64).saturating_mul(n)),
            ids: Vec::with_capacity(n),
            row_of: HashMap::with_capacity(n),
        }
    }
}

impl BruteForce {
    fn words(&self) -> usize {
        self.dim.div_ceil(64)
    }

    /// Offer row `row` (id `id`) to the best-`k` list `out`; returns the new floor.
    fn offer(out: &mut Vec<(u64, f32)>, k: usize, id: u64, score: f32, floor: f32) -> f32 {
        // Written as `>=`: a NaN score (a NaN in the query) or a NaN `min_score` is no hit.
        if score >= floor {
            let at = out.partition_point(|&(oid, os)| os > score || (os == score && oid < id));
            if at < k {
                out.insert(at, (id, score));
                out.truncate(k);
                if out.len() == k {
                    return out[k - 1].1;
                }
            }
        }
        floor
    }
}

impl VectorIndex for BruteForce {
    fn dim(&self) -> usize {
        self.dim
    }

    fn len(&self) -> usize {
        self.ids.len()
    }

    /// A vector of the wrong length is a caller bug: debug builds panic, release builds ignore
    /// the insert (a cache miss later rather than rows shifted out of step).
    fn insert(&mut self, id: u64, vector: &[f32]) {
        debug_assert_eq!(
            vector.len(),
            self.dim,
            "vector length is not the index dimension"
        );
        if vector.len() != self.dim {
            return;
        }
        let mut signs = Vec::with_capacity(self.words());
        signs_of(vector, &mut signs);
        if let Some(&row) = self.row_of.get(&id) {
            self.rows[row * self.dim..(row + 1) * self.dim].copy_from_slice(vector);
            let w = self.words();
            self.signs[row * w..(row + 1) * w].copy_from_slice(&signs);
            return;
        }
        self.row_of.insert(id, self.ids.len());
        self.ids.push(id);
        self.rows.extend_from_slice(vector);
        self.signs.extend_from_slice(&signs);
    }

    fn remove(&mut self, id: u64) -> bool {
        let Some(row) = self.row_of.remove(&id) else {
            return false;
        };
        let last = self.ids.len() - 1;
        let w = self.words();
        if row != last {
            self.rows
                .copy_within(last * self.dim..(last + 1) * self.dim, row * self.dim);
            self.signs.copy_within(last * w..(last + 1) * w, row * w);
            let moved = self.ids[last];
            self.row_of.insert(moved, row);
        }
        self.ids.swap_remove(row);
        self.rows.truncate(last * self.dim);
        self.signs.truncate(last * w);
        true
    }

    /// A query of the wrong length is a caller bug: debug builds panic, release builds find
    /// nothing.
    fn search(&self, query: &[f32], min_score: f32, k: usize, out: &mut Vec<(u64, f32)>) {
        out.clear();
        debug_assert_eq!(
            query.len(),
            self.dim,
            "query length is not the index dimension"
        );
        if k == 0 || query.len() != self.dim {
            return;
        }
        out.reserve(k.min(self.ids.len()) + 1);
        // The score a row must reach to enter `out`: `min_score` until `out` holds `k` hits,
        // then the worst of them (equal scores still compete on id below).
        let mut floor = min_score;
        if self.ids.len() <= EXACT_UP_TO {
            // `max(1)`: `chunks_exact(0)` panics; a 0-dim index has no floats and yields no rows.
            for (&id, row) in self.ids.iter().zip(self.rows.chunks_exact(self.dim.max(1))) {
                floor = Self::offer(out, k, id, dot(query, row), floor);
            }
            return;
        }
        // Two stages: the distance (in signs) within which SHORTLIST rows lie, then the exact
        // score of the rows within it.
        let mut q = Vec::with_capacity(self.words());
        signs_of(query, &mut q);
        // One pass over the signs: every row's distance (kept for the second stage) and how
        // many rows lie at each distance.
        let mut histogram = vec![0u32; self.dim + 1];
        let distances: Vec<u16> = self
            .signs
            .chunks_exact(self.words().max(1))
            .map(|signs| {
                let d: u32 = signs
                    .iter()
                    .zip(&q)
                    .map(|(a, b)| (a ^ b).count_ones())
                    .sum();
                histogram[d as usize] += 1;
                d as u16
            })
            .collect();
        let mut within = 0usize;
        let mut cut = self.dim as u16;
        for (d, n) in histogram.iter().enumerate() {
            within += *n as usize;
            if within >= SHORTLIST.max(k) {
                cut = d as u16;
                break;
            }
        }
        for (row, d) in distances.iter().enumerate() {
            if *d <= cut {
                let v = &self.rows[row * self.dim..(row + 1) * self.dim];
                floor = Self::offer(out, k, self.ids[row], dot(query, v), floor);
            }
        }
    }
}

/// The number of independent partial sums in [`dot`]: eight f32 lanes are two SSE2 (x86-64
/// baseline) or one AVX register, and independent sums let the adds overlap instead of waiting
/// on one another.
const LANES: usize = 8;

/// The dot product of two equal-length slices, written so that LLVM vectorises it without
/// `unsafe` or target features: fixed-size array chunks (no bounds checks) into an array of
/// independent accumulators. (A `zip().map().sum()` is one serial chain of float adds, which the
/// compiler may not reorder; it measured about 5× slower.)
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let (a_chunks, a_tail) = a.as_chunks::<LANES>();
    let (b_chunks, b_tail) = b.as_chunks::<LANES>();
    let mut acc = [0.0f32; LANES];
    for (x, y) in a_chunks.iter().zip(b_chunks) {
        for ((acc, x), y) in acc.iter_mut().zip(x).zip(y) {
            *acc += x * y;
        }
    }
    let mut sum = acc.iter().sum::<f32>();
    for (x, y) in a_tail.iter().zip(b_tail) {
        sum += x * y;
    }
    sum
}

#[cfg(test)]
mod tests {
    use super::*;

    /// xorshift64*: deterministic and dependency-free.
    struct Rng(u64);

    impl Rng {
        fn next_f32(&mut self) -> f32 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            let bits = self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 40;
            // 24 random bits → [-1, 1).
            (bits as f32 / (1u64 << 23) as f32) - 1.0
        }

        fn unit(&mut self, dim: usize) -> Vec<f32> {
            let mut v: Vec<f32> = (0..dim).map(|_| self.next_f32()).collect();
            normalise(&mut v);
            v
        }
    }

    fn normalise(v: &mut [f32]) {
        let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        v.iter_mut().for_each(|x| *x /= norm);
    }

    /// The unit vector along axis `i`.
    fn axis(dim: usize, i: usize) -> Vec<f32> {
        let mut v = vec![0.0; dim];
        v[i] = 1.0;
        v
    }

    fn search(index: &BruteForce, query: &[f32], min_score: f32, k: usize) -> Vec<(u64, f32)> {
        let mut out = vec![(999, 9.0)];
        index.search(query, min_score, k, &mut out);
        out
    }

    fn ids(hits: &[(u64, f32)]) -> Vec<u64> {
        hits.iter().map(|&(id, _)| id).collect()
    }

    #[test]
    fn dot_matches_naive_for_every_tail_length() {
        let mut rng = Rng(7);
        for len in 0..40 {
            let a: Vec<f32> = (0..len).map(|_| rng.next_f32()).collect();
            let b: Vec<f32> = (0..len).map(|_| rng.next_f32()).collect();
            let naive: f32 = a.iter().zip(&b).map(|(x, y)| x * y).sum();
            assert!((dot(&a, &b) - naive).abs() < 1e-5, "len {len}");
        }
    }

    #[test]
    fn finds_the_exact_vector_with_score_one() {
        let mut rng = Rng(1);
        let mut index = BruteForce::new(64);
        let vectors: Vec<Vec<f32>> = (0..100).map(|_| rng.unit(64)).collect();
        for (id, v) in vectors.iter().enumerate() {
            index.insert(id as u64, v);
        }
        assert_eq!(index.len(), 100);
        assert!(!index.is_empty());
        let hits = search(&index, &vectors[42], 0.0, 1);
        assert_eq!(hits.len(), 1);
        assert_eq!(hits[0].0, 42);
        assert!((hits[0].1 - 1.0).abs() < 1e-5, "score {}", hits[0].1);
    }

    #[test]
    fn min_score_filters() {
        let mut index = BruteForce::new(4);
        index.insert(1, &[1.0, 0.0, 0.0, 0.0]);
        index.insert(2, &[0.6, 0.8, 0.0, 0.0]);
        index.insert(3, &[0.0, 1.0, 0.0, 0.0]);
        let q = [1.0, 0.0, 0.0, 0.0];
        assert_eq!(ids(&search(&index, &q, 0.5, 8)), vec![1, 2]);
        assert_eq!(ids(&search(&index, &q, 0.9, 8)), vec![1]);
        assert!(search(&index, &[0.0, 0.0, 0.0, 1.0], 0.1, 8).is_empty());
    }

    #[test]
    fn k_limits_and_orders_best_first_with_ties_by_id() {
        let mut index = BruteForce::new(3);
        let s = std::f32::consts::FRAC_1_SQRT_2;
        // Inserted in an order unrelated to score or id.
        index.insert(30, &[0.0, 0.0, 1.0]);
        index.insert(20, &[s, s, 0.0]);
        index.insert(11, &[1.0, 0.0, 0.0]);
        index.insert(10, &[1.0, 0.0, 0.0]);
        index.insert(21, &[s, 0.0, s]);
        let q = [1.0, 0.0, 0.0];
        let all = search(&index, &q, -1.0, 16);
        assert_eq!(ids(&all), vec![10, 11, 20, 21, 30]);
        assert!(all.windows(2).all(|w| w[0].1 >= w[1].1));
        assert_eq!(ids(&search(&index, &q, -1.0, 3)), vec![10, 11, 20]);
        assert_eq!(ids(&search(&index, &q, -1.0, 1)), vec![10]);
        assert!(search(&index, &q, -1.0, 0).is_empty());
    }

    #[test]
    fn remove_forgets_the_id_and_the_moved_row_keeps_its_id() {
        let dim = 8;
        let mut index = BruteForce::new(dim);
        for i in 0..5 {
            index.insert(100 + i as u64, &axis(dim, i));
        }
        // Row 1 is removed; the last row (id 104) moves into it.
        assert!(index.remove(101));
        assert!(!index.remove(101));
        assert_eq!(index.len(), 4);
        assert!(search(&index, &axis(dim, 1), 0.5, 8).is_empty());
        assert_eq!(search(&index, &axis(dim, 4), 0.5, 8), vec![(104, 1.0)]);
        for i in [0, 2, 3] {
            assert_eq!(
                ids(&search(&index, &axis(dim, i), 0.5, 8)),
                vec![100 + i as u64]
            );
        }
        // Removing the last row moves nothing.
        assert!(index.remove(104));
        assert!(search(&index, &axis(dim, 4), 0.5, 8).is_empty());
        for id in [100, 102, 103] {
            assert!(index.remove(id));
        }
        assert!(index.is_empty());
        assert!(search(&index, &axis(dim, 0), -1.0, 8).is_empty());
        // Reusable after being emptied.
        index.insert(7, &axis(dim, 7));
        assert_eq!(search(&index, &axis(dim, 7), 0.5, 8), vec![(7, 1.0)]);
    }

    #[test]
    fn insert_with_an_existing_id_replaces() {
        let mut index = BruteForce::new(4);
        index.insert(1, &[1.0, 0.0, 0.0, 0.0]);
        index.insert(2, &[0.0, 1.0, 0.0, 0.0]);
        index.insert(1, &[0.0, 0.0, 1.0, 0.0]);
        assert_eq!(index.len(), 2);
        assert!(search(&index, &[1.0, 0.0, 0.0, 0.0], 0.5, 8).is_empty());
        assert_eq!(
            search(&index, &[0.0, 0.0, 1.0, 0.0], 0.5, 8),
            vec![(1, 1.0)]
        );
        assert_eq!(
            search(&index, &[0.0, 1.0, 0.0, 0.0], 0.5, 8),
            vec![(2, 1.0)]
        );
    }

    #[test]
    fn a_nan_query_finds_nothing() {
        let mut index = BruteForce::new(2);
        index.insert(1, &[1.0, 0.0]);
        assert!(search(&index, &[f32::NAN, 0.0], -1.0, 8).is_empty());
    }

    /// Past EXACT_UP_TO rows the sign shortlist still finds what a threshold lookup wants: a
    /// reworded prompt's neighbour (cosine ~0.6–0.9) is the best hit, as the exact scan says.
    #[test]
    fn the_sign_shortlist_finds_the_near_neighbours_of_a_large_index() {
        let (dim, n) = (256, 3 * EXACT_UP_TO);
        let mut rng = Rng(0xC0FFEE);
        let mut index = BruteForce::with_capacity(dim, n);
        let vectors: Vec<Vec<f32>> = (0..n).map(|_| rng.unit(dim)).collect();
        for (id, v) in vectors.iter().enumerate() {
            index.insert(id as u64, v);
        }
        let mut out = Vec::new();
        for q in 0..60 {
            let target = q * 197 % n;
            // The stored vector plus noise of growing weight: cosines from ~0.95 down to ~0.6.
            let noise = rng.unit(dim);
            let w = 0.3 + 0.015 * q as f32;
            let mut query: Vec<f32> = vectors[target]
                .iter()
                .zip(&noise)
                .map(|(a, b)| a + w * b)
                .collect();
            normalise(&mut query);
            let exact = dot(&query, &vectors[target]);
            index.search(&query, 0.5, 8, &mut out);
            assert_eq!(
                out.first().map(|h| h.0),
                Some(target as u64),
                "query {q} (cosine {exact})"
            );
            assert!((out[0].1 - exact).abs() < 1e-5);
        }
    }

    #[test]
    fn agrees_with_a_naive_reference_on_random_vectors() {
        let (dim, n) = (256, 2_000);
        let mut rng = Rng(0x5EED);
        let mut index = BruteForce::with_capacity(dim, n);
        let vectors: Vec<Vec<f32>> = (0..n).map(|_| rng.unit(dim)).collect();
        for (id, v) in vectors.iter().enumerate() {
            index.insert(id as u64, v);
        }
        // Remove some and re-insert a few so the rows are not in id order.
        for id in (0..n as u64).step_by(7) {
            assert!(index.remove(id));
        }
        for id in (0..n as u64).step_by(21) {
            index.insert(id, &vectors[id as usize]);
        }
        let live: Vec<u64> = (0..n as u64)
            .filter(|id| id % 7 != 0 || id % 21 == 0)
            .collect();
        assert_eq!(index.len(), live.len());

        let mut out = Vec::new();
        for q in 0..50 {
            // Half the queries are stored vectors (a near-duplicate prompt), half fresh ones.
            let query = if q % 2 == 0 {
                vectors[q * 37 % n].clone()
            } else {
                rng.unit(dim)
            };
            let (min_score, k) = (if q % 3 == 0 { 0.0 } else { -1.0 }, 1 + q % 16);
            let mut reference: Vec<(u64, f32)> = live
                .iter()
                .map(|&id| {
                    let mut s = 0.0f32;
                    for (x, y) in query.iter().zip(&vectors[id as usize]) {
                        s += x * y;
                    }
                    (id, s)
                })
                .filter(|&(_, s)| s >= min_score)
                .collect();
            reference.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
            let score_of: HashMap<u64, f32> = reference.iter().copied().collect();
            reference.truncate(k);

            index.search(&query, min_score, k, &mut out);
            assert_eq!(out.len(), reference.len(), "query {q}");
            let mut seen = std::collections::HashSet::new();
            for (got, want) in out.iter().zip(&reference) {
                assert!(seen.insert(got.0), "query {q}: {} twice", got.0);
                // The summation order differs from the reference's, so scores may differ in the
                // last bits and two near-equal neighbours may swap places; nothing else may.
                assert!(
                    (got.1 - want.1).abs() < 1e-5,
                    "query {q}: {got:?} vs {want:?}"
                );
                if got.0 != want.0 {
                    let exact = score_of[&got.0];
                    assert!(
                        (exact - want.1).abs() < 1e-5,
                        "query {q}: {got:?} vs {want:?}"
                    );
                }
            }
        }
    }
}
