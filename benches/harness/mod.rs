//! What the end-to-end benchmarks (`overhead`, `reliability`) share beyond the process plumbing
//! of `switchyard-testkit` (which the integration tests use too): env tunables, percentiles and
//! the mock binary. Nothing here measures or prints; each benchmark owns its load and its tables.

use std::path::{Path, PathBuf};

/// A numeric tunable from the environment, or its default.
pub fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

pub use switchyard_testkit::{Proc, free_port, nats_binary, wait_port};

/// The `p` quantile of sorted nanosecond samples, in microseconds (NaN when empty).
pub fn pct(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i] as f64 / 1000.0
}

/// The `switchyard-mock` binary of the same profile as the gateway binary `gateway`, which
/// `scripts/bench` builds (`cargo build --release -p switchyard-mock`) before the benches.
pub fn mock_binary(gateway: &Path) -> PathBuf {
    let mock = gateway.with_file_name("switchyard-mock");
    assert!(
        mock.exists(),
        "{} missing: run scripts/bench, or `cargo build --release -p switchyard-mock` first",
        mock.display()
    );
    mock
}
