//! Process plumbing shared by the end-to-end benchmarks (`overhead`, `reliability`): free ports,
//! waiting for a listener, child processes stopped on drop, the nats-server binary, env tunables
//! and percentiles. Nothing here measures or prints; each benchmark owns its load and its tables.

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

/// A numeric tunable from the environment, or its default.
pub fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub fn wait_port(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "nothing listening on {port}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A child process, sent SIGTERM (then SIGKILL after 10 s) when dropped.
pub struct Proc(pub Child);
impl Drop for Proc {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.0.id().to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.0.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The `p` quantile of sorted nanosecond samples, in microseconds (NaN when empty).
pub fn pct(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i] as f64 / 1000.0
}

/// `SWITCHYARD_NATS_SERVER`, else the copy `scripts/bench` installs under tools/.
pub fn nats_binary(root: &Path) -> PathBuf {
    std::env::var_os("SWITCHYARD_NATS_SERVER")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("tools/nats/bin/nats-server"))
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
