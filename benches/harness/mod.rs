//! What the end-to-end benchmarks (`overhead`, `reliability`, `ttft`) share beyond the process
//! plumbing of `switchyard-testkit` (which the integration tests use too): env tunables,
//! percentiles, the mock binary, starting nats-server and the gateway. Nothing here measures or
//! prints; each benchmark owns its load and its tables.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

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

/// A nats-server with JetStream on a free port, its store under `dir`.
pub fn start_nats(dir: &std::path::Path) -> (Proc, u16) {
    let port = free_port();
    let nats = Proc(
        Command::new(nats_binary())
            .args(["-a", "127.0.0.1", "-p", &port.to_string(), "-js", "-sd"])
            .arg(dir.join("js"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("nats-server (run scripts/test or scripts/bench once to install it)"),
    );
    (nats, port)
}

/// `switchyard serve` from `bin` with `config`, logging at `log` (`RUST_LOG`).
pub fn start_gateway(bin: &std::path::Path, config: &std::path::Path, log: &str) -> Proc {
    Proc(
        Command::new(bin)
            .args(["serve", "--config"])
            .arg(config)
            .env("RUST_LOG", log)
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap(),
    )
}
