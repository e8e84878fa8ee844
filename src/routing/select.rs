//! Which deployment a request tries first: in order, by weight (smooth weighted round robin,
//! so a 70/30 split holds over any window, not just on average), or by live cost (power of two
//! choices). The others follow as fallbacks in configured order.

use std::sync::{Mutex, PoisonError};

/// Smooth weighted round robin (as in nginx): every pick adds each weight to its running score,
/// takes the highest, and subtracts the total from the winner. Deterministic, and the picks of
/// any window of `sum(weights)` requests match the weights exactly.
#[derive(Debug)]
pub struct Weighted {
    weights: Vec<i64>,
    total: i64,
    current: Mutex<Vec<i64>>,
}

impl Weighted {
    pub fn new(weights: &[u32]) -> Self {
        let weights: Vec<i64> = weights.iter().map(|&w| i64::from(w)).collect();
        Self {
            total: weights.iter().sum(),
            current: Mutex::new(vec![0; weights.len()]),
            weights,
        }
    }

    /// The next deployment, skipping those for which `skip` says so (an open breaker): their
    /// share goes to the others while they are skipped.
    pub fn pick(&self, skip: impl Fn(usize) -> bool) -> Option<usize> {
        let mut current = self.current.lock().unwrap_or_else(PoisonError::into_inner);
        let mut best: Option<usize> = None;
        let mut total = 0;
        for (i, w) in self.weights.iter().enumerate() {
            if *w == 0 || skip(i) {
                continue;
            }
            current[i] += w;
            total += w;
            if best.is_none_or(|b| current[i] > current[b]) {
                best = Some(i);
            }
        }
        if let Some(b) = best {
            current[b] -= total;
        }
        debug_assert!(total <= self.total);
        best
    }
}

/// The order in which to try `n` deployments, first pick at the front and the rest in
/// configured order.
pub fn with_first(first: Option<usize>, n: usize) -> Vec<usize> {
    let mut order = Vec::with_capacity(n);
    order.extend(first);
    order.extend((0..n).filter(|i| Some(*i) != first));
    order
}

/// Power of two choices: two distinct random candidates among those not skipped, the cheaper
/// wins. With two candidates this is simply the cheaper one.
pub fn p2c(
    n: usize,
    cost: impl Fn(usize) -> f64,
    skip: impl Fn(usize) -> bool,
    mut rand_below: impl FnMut(usize) -> usize,
) -> Option<usize> {
    let open: Vec<usize> = (0..n).filter(|i| !skip(*i)).collect();
    match open.len() {
        0 => None,
        1 => Some(open[0]),
        len => {
            let a = rand_below(len);
            let mut b = rand_below(len - 1);
            if b >= a {
                b += 1;
            }
            let (a, b) = (open[a], open[b]);
            Some(if cost(b) < cost(a) { b } else { a })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weighted_split_is_exact_over_each_cycle() {
        let w = Weighted::new(&[7, 3]);
        let mut counts = [0; 2];
        for _ in 0..10_000 {
            counts[w.pick(|_| false).unwrap_or(9)] += 1;
        }
        assert_eq!(counts, [7_000, 3_000]);
        // Smooth: never more than the ideal run of the heavy side in a row.
        let picks: Vec<usize> = (0..10).filter_map(|_| w.pick(|_| false)).collect();
        assert!(picks.windows(4).all(|p| p.contains(&0)));
        assert_eq!(picks.iter().filter(|p| **p == 1).count(), 3);
    }

    #[test]
    fn skipped_deployments_give_their_share_away() {
        let w = Weighted::new(&[1, 1, 0]);
        for _ in 0..10 {
            assert_eq!(w.pick(|i| i == 0), Some(1));
        }
        assert_eq!(w.pick(|_| true), None);
        assert_eq!(with_first(Some(2), 4), vec![2, 0, 1, 3]);
        assert_eq!(with_first(None, 2), vec![0, 1]);
    }

    #[test]
    fn p2c_prefers_the_cheaper_of_two() {
        let cost = |i: usize| [5.0, 1.0, 9.0][i];
        let mut seq = [0usize, 0].into_iter();
        // candidates 0 and 1 → 1 is cheaper
        assert_eq!(
            p2c(3, cost, |_| false, |_| seq.next().unwrap_or(0)),
            Some(1)
        );
        assert_eq!(p2c(2, cost, |i| i == 1, |_| 0), Some(0));
        assert_eq!(p2c(2, cost, |_| true, |_| 0), None);
    }
}
