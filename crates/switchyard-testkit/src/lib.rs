//! Process plumbing shared by the gateway's integration tests (`tests/it`) and its
//! process-driven benchmarks (`benches/overhead.rs`, `benches/reliability.rs`): free local
//! ports, waiting for a listener, child processes stopped on drop, and a nats-server with
//! JetStream on a free port and a temporary store. Test support only: it panics with a message
//! naming the fix instead of returning errors, and it never touches a server it did not start.

// Synchronous by design (process start-up, called outside or before the runtime work): blocking
// sleeps are what it needs.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::disallowed_methods)]

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The workspace root (where `tools/` is installed by `scripts/test`).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .map(Path::to_path_buf)
        .expect("crates/switchyard-testkit sits two levels below the workspace root")
}

/// A port nothing listens on right now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// Wait until something accepts connections on `port` (30 s at most).
pub fn wait_port(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "nothing listening on {port}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `SWITCHYARD_NATS_SERVER`, else the pinned copy `scripts/test` installs under `tools/`;
/// refused when missing or older than 2.10 (which silently drops settings we rely on).
pub fn nats_binary() -> PathBuf {
    let candidate = std::env::var_os("SWITCHYARD_NATS_SERVER")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("tools/nats/bin/nats-server"));
    match Command::new(&candidate).arg("--version").output() {
        Ok(out) if out.status.success() => {
            let v = String::from_utf8_lossy(&out.stdout).to_string();
            assert!(
                !v.contains("v2.9.") && !v.contains("v2.8."),
                "{} is {v}: the tests need nats-server 2.10 or later; run scripts/test, which installs a pinned one",
                candidate.display()
            );
            candidate
        }
        _ => panic!(
            "nats-server not found at {}: run the README's test command (scripts/test), which installs it into tools/",
            candidate.display()
        ),
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

/// A nats-server with JetStream that this process started on a free loopback port, with its
/// store in a temporary directory; killed on drop. The store survives `stop` and `resume`.
pub struct Nats {
    child: Option<Child>,
    pub port: u16,
    dir: tempfile::TempDir,
    bin: PathBuf,
}

impl Nats {
    pub fn start() -> Self {
        let mut n = Nats {
            child: None,
            port: free_port(),
            dir: tempfile::tempdir().expect("tempdir"),
            bin: nats_binary(),
        };
        n.resume();
        n
    }

    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// Start (again) on the same port with the same store; the log goes beside the store.
    pub fn resume(&mut self) {
        assert!(self.child.is_none(), "already running");
        let store = self.dir.path().join("js");
        let log = std::fs::File::create(
            self.dir
                .path()
                .join(format!("nats-{}.log", Instant::now().elapsed().as_nanos())),
        )
        .expect("log file");
        let child = Command::new(&self.bin)
            .args([
                "-a",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-js",
                "-sd",
            ])
            .arg(&store)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn nats-server");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(15);
        while TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "nats-server did not start on {}",
                self.port
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Kill it (SIGKILL: what a crash looks like to clients).
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Nats {
    fn drop(&mut self) {
        self.stop();
    }
}
