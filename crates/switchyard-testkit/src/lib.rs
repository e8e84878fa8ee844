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

/// `SWITCHYARD_MOTO_PYTHON`, else the venv `scripts/test` installs under `tools/moto-venv`: a
/// Python with moto's server and boto3.
pub fn moto_python() -> PathBuf {
    let python = std::env::var_os("SWITCHYARD_MOTO_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("tools/moto-venv/bin/python"));
    let ok = Command::new(&python)
        .args(["-c", "import moto.server, boto3"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        ok,
        "moto's server not found with {}: run the README's test command (scripts/test), which installs moto[server] into tools/moto-venv",
        python.display()
    );
    python
}

/// moto's server (a real implementation of AWS APIs, Secrets Manager among them) that this
/// process started on a free loopback port; stopped on drop. Its log goes to a temporary file.
pub struct Moto {
    _proc: Proc,
    pub port: u16,
    python: PathBuf,
    _dir: tempfile::TempDir,
}

impl Moto {
    pub fn start() -> Self {
        let python = moto_python();
        let port = free_port();
        let dir = tempfile::tempdir().expect("tempdir");
        let log = std::fs::File::create(dir.path().join("moto.log")).expect("log file");
        let child = Command::new(&python)
            .args([
                "-m",
                "moto.server",
                "-H",
                "127.0.0.1",
                "-p",
                &port.to_string(),
            ])
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log file"))
            .stderr(log)
            .spawn()
            .expect("spawn moto server");
        let proc = Proc(child);
        wait_port(port);
        Moto {
            _proc: proc,
            port,
            python,
            _dir: dir,
        }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Run `script` with boto3's Secrets Manager client as `sm` (region `us-east-1`, moto's dummy
    /// credentials) and `args` as `sys.argv[1:]`; panics with its stderr if it fails. Returns
    /// what it printed.
    pub fn secretsmanager(&self, script: &str, args: &[&str]) -> String {
        let prelude = format!(
            "import sys, boto3\nsm = boto3.client('secretsmanager', region_name='us-east-1', \
             endpoint_url='{}', aws_access_key_id='testing', aws_secret_access_key='testing')\n",
            self.endpoint()
        );
        let out = Command::new(&self.python)
            .arg("-c")
            .arg(prelude + script)
            .args(args)
            .output()
            .expect("run python");
        assert!(
            out.status.success(),
            "boto3 call failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}
