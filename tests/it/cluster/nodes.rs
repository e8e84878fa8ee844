//! A nats-server cluster on loopback for tests: each node with its own client, route and
//! monitoring ports, store and config file; single nodes can be killed (SIGKILL) and restarted on
//! the same ports and store. Every node is killed on drop.

use crate::harness::{client, free_port, nats_binary};
use std::collections::HashSet;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const CLUSTER: &str = "switchyard-test";

/// One nats-server of the cluster. Its ports and store stay the same across kill and restart.
struct Node {
    name: String,
    client_port: u16,
    cluster_port: u16,
    http_port: u16,
    conf: PathBuf,
    log: PathBuf,
    child: Option<Child>,
}

/// A cluster of nats-servers on loopback, each with its own store; every node is killed on drop.
pub struct NatsCluster {
    nodes: Vec<Node>,
    bin: PathBuf,
    _dir: tempfile::TempDir,
}

impl NatsCluster {
    /// Start `size` nodes. A free port can be taken by another process before the node binds it
    /// (tests run in parallel), so a node that exits at start sends the whole cluster round
    /// again on fresh ports.
    pub fn start(size: usize) -> Self {
        let mut last_error = String::new();
        for _ in 0..3 {
            let mut c = Self::configure(size);
            match (0..size).try_for_each(|i| c.spawn(i)) {
                Ok(()) => {
                    // a node that lost its route or monitoring port exits just after binding
                    std::thread::sleep(Duration::from_millis(200));
                    let exited = c
                        .nodes
                        .iter_mut()
                        .filter_map(|n| Some((n.name.clone(), n.child.as_mut()?.try_wait())))
                        .find(|(_, s)| !matches!(s, Ok(None)));
                    match exited {
                        None => return c,
                        Some((name, status)) => last_error = format!("{name} exited: {status:?}"),
                    }
                }
                Err(e) => last_error = e,
            }
        }
        panic!("the cluster did not start: {last_error}");
    }

    /// Pick ports and write each node's config file.
    fn configure(size: usize) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let nodes: Vec<Node> = (0..size)
            .map(|i| Node {
                name: format!("n{}", i + 1),
                client_port: free_port(),
                cluster_port: free_port(),
                http_port: free_port(),
                conf: dir.path().join(format!("n{}.conf", i + 1)),
                log: dir.path().join(format!("n{}.log", i + 1)),
                child: None,
            })
            .collect();
        for (i, n) in nodes.iter().enumerate() {
            let routes: Vec<String> = nodes
                .iter()
                .enumerate()
                .filter(|(j, _)| *j != i)
                .map(|(_, n)| format!("\"nats-route://127.0.0.1:{}\"", n.cluster_port))
                .collect();
            let store = dir.path().join(&n.name);
            let conf = format!(
                "server_name: {name}\nlisten: \"127.0.0.1:{client}\"\nhttp: \"127.0.0.1:{http}\"\n\
                 jetstream {{ store_dir: {store:?} }}\n\
                 cluster {{\n  name: {CLUSTER}\n  listen: \"127.0.0.1:{cluster}\"\n  routes: [{routes}]\n}}\n",
                name = n.name,
                client = n.client_port,
                http = n.http_port,
                cluster = n.cluster_port,
                store = store.display().to_string(),
                routes = routes.join(", "),
            );
            std::fs::write(&n.conf, conf).expect("node config");
        }
        NatsCluster {
            nodes,
            bin: nats_binary(),
            _dir: dir,
        }
    }

    pub fn url(&self, i: usize) -> String {
        format!("nats://127.0.0.1:{}", self.nodes[i].client_port)
    }

    /// Seed list of every node (what the gateway is given).
    pub fn seeds(&self) -> String {
        (0..self.nodes.len())
            .map(|i| self.url(i))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Seed list of the nodes that are running.
    pub fn live_seeds(&self) -> Vec<String> {
        (0..self.nodes.len())
            .filter(|i| self.nodes[*i].child.is_some())
            .map(|i| self.url(i))
            .collect()
    }

    pub fn index_of(&self, name: &str) -> usize {
        self.nodes
            .iter()
            .position(|n| n.name == name)
            .unwrap_or_else(|| panic!("no node named {name}"))
    }

    pub fn name(&self, i: usize) -> &str {
        &self.nodes[i].name
    }

    /// SIGKILL one node: no goodbye to its peers or clients, nothing flushed.
    pub fn kill(&mut self, i: usize) {
        if let Some(mut c) = self.nodes[i].child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Start (again) a node on its ports with its store.
    pub fn restart(&mut self, i: usize) {
        self.spawn(i).unwrap_or_else(|e| panic!("{e}"));
    }

    fn spawn(&mut self, i: usize) -> Result<(), String> {
        let n = &mut self.nodes[i];
        assert!(n.child.is_none(), "{} is running", n.name);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&n.log)
            .expect("log file");
        let child = Command::new(&self.bin)
            .arg("-c")
            .arg(&n.conf)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn nats-server");
        let child = n.child.insert(child);
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                n.child = None;
                let log = std::fs::read_to_string(&n.log).unwrap_or_default();
                let tail: Vec<&str> = log.lines().rev().take(3).collect();
                return Err(format!("{} exited at start ({status}): {tail:?}", n.name));
            }
            if std::net::TcpStream::connect(("127.0.0.1", n.client_port)).is_ok() {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(format!("{} did not start on {}", n.name, n.client_port));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    async fn monitor(&self, i: usize, path: &str) -> Option<serde_json::Value> {
        let url = format!("http://127.0.0.1:{}{path}", self.nodes[i].http_port);
        let r = client()
            .get(url)
            .timeout(Duration::from_secs(2))
            .send()
            .await
            .ok()?;
        if !r.status().is_success() {
            return None;
        }
        r.json().await.ok()
    }

    /// Wait until every running node sees the same JetStream meta leader and reports healthy.
    pub async fn wait_formed(&self, timeout: Duration) {
        let live: Vec<usize> = (0..self.nodes.len())
            .filter(|i| self.nodes[*i].child.is_some())
            .collect();
        let deadline = Instant::now() + timeout;
        loop {
            let mut leaders = HashSet::new();
            let mut all_healthy = true;
            let mut state = Vec::new();
            for &i in &live {
                let jsz = self.monitor(i, "/jsz").await;
                let leader = jsz
                    .as_ref()
                    .and_then(|j| j["meta_cluster"]["leader"].as_str())
                    .unwrap_or("")
                    .to_owned();
                let healthy = self.monitor(i, "/healthz").await.is_some();
                state.push(format!(
                    "{}: leader {leader:?}, healthy {healthy}",
                    self.name(i)
                ));
                all_healthy &= healthy && !leader.is_empty();
                leaders.insert(leader);
            }
            if all_healthy && leaders.len() == 1 {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "no JetStream meta leader seen by every healthy node: {state:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The node holding the client connection named `name`, if any.
    pub async fn holder_of(&self, name: &str) -> Option<usize> {
        for i in 0..self.nodes.len() {
            if self.nodes[i].child.is_none() {
                continue;
            }
            let Some(connz) = self.monitor(i, "/connz?subs=0&limit=1024").await else {
                continue;
            };
            let found = connz["connections"]
                .as_array()
                .is_some_and(|cs| cs.iter().any(|c| c["name"] == name));
            if found {
                return Some(i);
            }
        }
        None
    }
}

impl Drop for NatsCluster {
    fn drop(&mut self) {
        for i in 0..self.nodes.len() {
            self.kill(i);
        }
    }
}
