//! What rkube's integration tests share: `rkube server` on loopback (server_cli.rs,
//! agent_cli.rs), and a real node, `rkube server` with its agent and containerd in a network
//! namespace of the test's own (services_e2e.rs, crictl.rs), stopped and cleaned up on drop;
//! for more than two nodes, its namespace is the switch the others link to
//! (`Node::new_switched`, `Node::add_port`: node_failure_e2e.rs); three control-plane
//! servers on one bridge (`ha_lab`: ha_e2e.rs, ha_bench.rs), each an `ns_server`, as is the
//! one control-plane server of etcd_snapshot.rs and etcd_convert.rs.
//! (Not `common`: that name is the rkube-common crate's, whose `ci::skip` the tests call.)
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)] // each test uses its own part

pub mod ha_lab;
pub mod ns_server;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, ChildStdout, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// The node's address, on the veth in its network namespace.
pub const NODE_IP: &str = "10.99.0.1";

/// The `rkube` a node runs: this build's, or `RKUBE_BIN` (benches measure the release build
/// users run).
pub fn server_binary() -> String {
    std::env::var("RKUBE_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_rkube").to_string())
}

/// What a real node of these tests needs besides root: containerd, runc, nft and the CNI
/// bridge plugin.
const NODE_TOOLS: [&str; 4] = [
    "/usr/bin/containerd",
    "/usr/sbin/runc",
    "/usr/sbin/nft",
    "/usr/lib/cni/bridge",
];

/// Whether a real node can run here (root and [`NODE_TOOLS`]), with the `extra` tools a test
/// also uses (curl).
pub fn can_run_node(extra: &[&str]) -> bool {
    root_with(&NODE_TOOLS) && root_with(extra)
}

/// Whether the test runs as root and every one of `paths` (the tools a node needs) exists.
pub fn root_with(paths: &[&str]) -> bool {
    let root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0");
    root && paths.iter().all(|p| Path::new(p).exists())
}

/// `rkube server` on loopback and a free port, with this data directory: the tests run side
/// by side.
pub fn loopback_server(data_dir: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_rkube"));
    c.args([
        "server",
        "--bind-address",
        "127.0.0.1",
        "--https-listen-port",
        "0",
        "--data-dir",
    ])
    .arg(data_dir);
    c
}

/// The path a starting server prints as `admin kubeconfig: PATH` on its stdout; the rest is
/// read in the background, so the server never writes into a closed pipe.
pub fn admin_kubeconfig(stdout: ChildStdout) -> String {
    let mut lines = BufReader::new(stdout).lines();
    while let Some(line) = lines.next() {
        let line = line.unwrap();
        if let Some(path) = line.strip_prefix("admin kubeconfig: ") {
            std::thread::spawn(move || lines.for_each(drop));
            return path.to_string();
        }
    }
    panic!("rkube server exited without printing its kubeconfig");
}

/// Polls `check` every 200 ms until it gives Some, or `timeout` has passed (None).
pub fn wait_until<T>(timeout: Duration, mut check: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = check() {
            return Some(v);
        }
        if Instant::now() > deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// An image built by `rkube image build TAG --busybox EXTRA` into the air-gap directory of a
/// node's data dir, as `file`.
pub fn air_gap_image(data: &Path, tag: &str, file: &str, extra: &[&str]) {
    let images = data.join("agent/images");
    std::fs::create_dir_all(&images).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_rkube"))
        .args(["image", "build", tag, "--busybox"])
        .args(extra)
        .arg("-o")
        .arg(images.join(file))
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
}

/// Kills whatever still runs from `dir`: shims of pods that did not stop (their command line
/// names it) and the containers under them (their mount namespace's root is a snapshot in it).
pub fn kill_leftovers(dir: &Path) {
    let needle = dir.to_string_lossy().into_owned();
    let own_ns = std::fs::read_link("/proc/self/ns/mnt").ok();
    if let Ok(rd) = std::fs::read_dir("/proc") {
        for e in rd.flatten() {
            let Some(pid) = e.file_name().to_str().and_then(|p| p.parse::<i32>().ok()) else {
                continue;
            };
            let cmd = std::fs::read(e.path().join("cmdline")).unwrap_or_default();
            let container = std::fs::read_link(e.path().join("ns/mnt")).ok() != own_ns
                && std::fs::read_to_string(e.path().join("mountinfo")).is_ok_and(|m| {
                    m.lines()
                        .any(|l| l.split(' ').nth(4) == Some("/") && l.contains(&needle))
                });
            if String::from_utf8_lossy(&cmd).contains(&needle) || container {
                let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
            }
        }
    }
}

/// `rkube ARGS --data-dir DIR` in the network namespace of `holder`, as a user of that
/// machine runs it (without the test's own `RKUBE_URL`, `RKUBE_TOKEN` or `KUBECONFIG`), with
/// `RUST_LOG` `rust_log`; its stderr appended to `DIR/<log>`, its stdout dropped.
pub fn spawn_rkube_in(
    holder: &Child,
    dir: &Path,
    args: &[&str],
    rust_log: &str,
    log: &str,
) -> Child {
    let err = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join(log))
        .unwrap();
    Command::new("nsenter")
        .arg(format!("--net=/proc/{}/ns/net", holder.id()))
        .args(["--", &server_binary()])
        .args(args)
        .arg("--data-dir")
        .arg(dir)
        .env("RUST_LOG", rust_log)
        .env_remove("RKUBE_URL")
        .env_remove("RKUBE_TOKEN")
        .env_remove("KUBECONFIG")
        .stdout(Stdio::null())
        .stderr(err)
        .spawn()
        .unwrap()
}

/// A process holding a new network namespace, once `script` has set it up (and said
/// `ready`).
pub fn holder(script: &str) -> Child {
    let mut holder = Command::new("unshare")
        .args(["--net", "--", "sh", "-c", script])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(holder.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert_eq!(line.trim(), "ready");
    holder
}

/// SIGINT, as Ctrl-C (an agent stops containerd, pods keep running; a server stops its etcd
/// member), then SIGKILL once `timeout` has passed.
pub fn interrupt(process: &mut Child, timeout: Duration) {
    let _ = Command::new("kill")
        .args(["-INT", &process.id().to_string()])
        .status();
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if let Ok(Some(_)) = process.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = process.kill();
    let _ = process.wait();
}

/// The node: a network namespace (held by a sleeping process) running `rkube server`.
pub struct Node {
    pub dir: tempfile::TempDir,
    holder: Child,
    server: Option<Child>,
    /// The node's name and the server's RUST_LOG.
    name: &'static str,
    rust_log: &'static str,
    /// A second node (`rkube agent`), when the test added one.
    pub agent: Option<Agent>,
}

/// A second node: its own network namespace, linked to the first's by the veth pair, running
/// `rkube agent` against the first node's server.
pub struct Agent {
    pub dir: tempfile::TempDir,
    pub holder: Child,
    pub process: Child,
}

impl Drop for Agent {
    fn drop(&mut self) {
        interrupt(&mut self.process, Duration::from_secs(20));
        kill_leftovers(self.dir.path());
        // What a killed kubelet and containerd left mounted (volumes, shm, netns), so the
        // temp dir can go.
        let _ = kubelet::volumes::unmount_under(self.dir.path());
        let _ = self.holder.kill();
        let _ = self.holder.wait();
    }
}

impl Node {
    /// The node's network namespace, with [`NODE_IP`] on its `eth0` (whose veth peer
    /// `eth0-peer` a second node can take), and its data dir, `/tmp/<prefix>…`. The server is
    /// not started yet: the test puts its images in the data dir, then calls `start_server`.
    pub fn new(prefix: &str, name: &'static str, rust_log: &'static str) -> Node {
        Node::with_net(
            prefix,
            name,
            rust_log,
            &format!(
                "ip link set lo up && ip link add eth0 type veth peer name eth0-peer && \
                 ip addr add {NODE_IP}/24 dev eth0 && ip link set eth0 up && ip link set eth0-peer up && \
                 echo ready && exec sleep 1000000"
            ),
        )
    }

    /// Like [`Node::new`], for a lab of more than two nodes: the namespace is also the
    /// lab's switch, [`NODE_IP`] on a bridge `lab0` that [`Node::add_port`] links other
    /// nodes' namespaces to (host-gw needs every node on one link).
    pub fn new_switched(prefix: &str, name: &'static str, rust_log: &'static str) -> Node {
        Node::with_net(
            prefix,
            name,
            rust_log,
            &format!(
                "ip link set lo up && ip link add lab0 type bridge && \
                 ip addr add {NODE_IP}/24 dev lab0 && ip link set lab0 up && \
                 echo ready && exec sleep 1000000"
            ),
        )
    }

    /// Links the network namespace of process `pid` to `lab0` (see [`Node::new_switched`]):
    /// a veth `port<n>` in the bridge here, its peer `eth0` there with `ip`/24.
    pub fn add_port(&self, n: u8, pid: u32, ip: &str) {
        let port = format!("port{n}");
        let script = format!(
            "ip link add {port} type veth peer name {port}-peer && \
             ip link set {port} master lab0 && ip link set {port} up && \
             ip link set {port}-peer netns {pid}"
        );
        let out = self.cmd("sh").args(["-c", &script]).output().unwrap();
        assert!(out.status.success(), "{out:?}");
        let out = Command::new("nsenter")
            .arg(format!("--net=/proc/{pid}/ns/net"))
            .args(["--", "sh", "-c"])
            .arg(format!(
                "ip link set {port}-peer name eth0 && ip addr add {ip}/24 dev eth0 && ip link set eth0 up"
            ))
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
    }

    /// Takes port `n` down or up: down, its node neither reaches nor is reached by the others
    /// (a pulled cable).
    pub fn set_port(&self, n: u8, up: bool) {
        let state = if up { "up" } else { "down" };
        let out = self
            .cmd("ip")
            .args(["link", "set", &format!("port{n}"), state])
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
    }

    fn with_net(prefix: &str, name: &'static str, rust_log: &'static str, script: &str) -> Node {
        let dir = tempfile::Builder::new()
            .prefix(prefix)
            .tempdir_in("/tmp")
            .unwrap();
        let holder = holder(script);
        Node {
            dir,
            holder,
            server: None,
            name,
            rust_log,
            agent: None,
        }
    }

    pub fn netns(&self) -> String {
        format!("--net=/proc/{}/ns/net", self.holder.id())
    }

    /// A command run inside the node's network namespace.
    pub fn cmd(&self, program: &str) -> Command {
        let mut c = Command::new("nsenter");
        c.arg(self.netns()).arg("--").arg(program);
        c
    }

    /// Starts `rkube server` in the namespace and waits for its node to be Ready.
    pub fn start_server(&mut self) {
        self.start_server_with(&[]);
    }

    /// [`Node::start_server`] with more flags.
    pub fn start_server_with(&mut self, extra: &[&str]) {
        let child = self
            .cmd(&server_binary())
            .args([
                "server",
                "--node-name",
                self.name,
                "--node-ip",
                NODE_IP,
                "--data-dir",
            ])
            .arg(self.dir.path())
            .args(extra)
            .env("RUST_LOG", self.rust_log)
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        self.server = Some(child);
        self.wait_node_ready(self.name);
    }

    /// Stops the server (SIGINT: the agent stops containerd; pods keep running).
    pub fn stop_server(&mut self) {
        if let Some(mut s) = self.server.take() {
            interrupt(&mut s, Duration::from_secs(20));
        }
    }

    pub fn wait_node_ready(&self, name: &str) {
        self.eventually(90, &format!("node {name} Ready"), || {
            let out = self.kubectl(&[
                "get",
                "node",
                name,
                "-o",
                r#"jsonpath={.status.conditions[?(@.type=="Ready")].status}"#,
            ]);
            (String::from_utf8_lossy(&out.stdout) == "True").then_some(())
        });
        // And its kubelet serves the certificate the cluster CA issued (the API server
        // verifies it for logs, exec and proxies; until the CSR is signed the kubelet has only
        // a self-signed one), as a user of the node would wait for.
        self.eventually(90, &format!("node {name}'s kubelet reachable"), || {
            let path = format!("/api/v1/nodes/{name}/proxy/healthz");
            self.kubectl(&["get", "--raw", &path])
                .status
                .success()
                .then_some(())
        });
    }

    pub fn kubectl(&self, args: &[&str]) -> Output {
        self.cmd("kubectl")
            .arg("--kubeconfig")
            .arg(self.dir.path().join("kubeconfig.yaml"))
            .args(args)
            .output()
            .unwrap()
    }

    /// kubectl that must succeed; its stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.kubectl(args);
        assert!(
            out.status.success(),
            "kubectl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// kubectl's stdout, trimmed, whether or not it succeeded.
    pub fn get(&self, args: &[&str]) -> String {
        String::from_utf8_lossy(&self.kubectl(args).stdout)
            .trim()
            .to_string()
    }

    /// The messages of `object`'s events of `reason`, once there are some (up to `secs`).
    pub fn event_messages(&self, secs: u64, object: &str, reason: &str) -> String {
        let selector = format!("involvedObject.name={object},reason={reason}");
        self.eventually(secs, &format!("a {reason} event of {object}"), || {
            let out = self.get(&[
                "get",
                "events",
                "--field-selector",
                &selector,
                "-o",
                "jsonpath={.items[*].message}",
            ]);
            (!out.is_empty()).then_some(out)
        })
    }

    pub fn apply(&self, yaml: &str) {
        let f = self.dir.path().join("manifest.yaml");
        std::fs::write(&f, yaml).unwrap();
        self.ok(&["apply", "-f", f.to_str().unwrap()]);
    }

    /// Polls `check` for up to `secs` seconds; on timeout panics with the cluster's pods.
    pub fn eventually<T>(&self, secs: u64, what: &str, check: impl FnMut() -> Option<T>) -> T {
        wait_until(Duration::from_secs(secs), check).unwrap_or_else(|| {
            let pods = self.kubectl(&["get", "pods", "-A", "-o", "wide"]);
            panic!(
                "timed out waiting for {what}\n{}",
                String::from_utf8_lossy(&pods.stdout)
            )
        })
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        // Pods stop through their kubelet (containers and sandboxes removed), then the server.
        if self.server.is_some() {
            let _ = self.kubectl(&[
                "delete",
                "deploy,ds,sts,svc,pod",
                "--all",
                "--grace-period=0",
                "--wait=false",
            ]);
            let deadline = Instant::now() + Duration::from_secs(30);
            while Instant::now() < deadline {
                let out = self.kubectl(&["get", "pods", "-o", "name"]);
                if out.status.success() && out.stdout.is_empty() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(300));
            }
        }
        self.agent = None;
        self.stop_server();
        kill_leftovers(self.dir.path());
        // What a killed kubelet and containerd left mounted (volumes, shm, netns), so the
        // temp dir can go.
        let _ = kubelet::volumes::unmount_under(self.dir.path());
        let _ = self.holder.kill();
        let _ = self.holder.wait();
    }
}
