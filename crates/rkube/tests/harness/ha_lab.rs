//! The HA lab (ha_e2e.rs, ha_bench.rs): a switch namespace with a bridge `lab0`, and three
//! network namespaces on it (10.99.0.1-3), one per `rkube server` (`--disable-agent`:
//! control plane only), each with its data dir; servers and namespaces go on drop.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::holder;
use super::ns_server::run_to_exit;

/// The servers' addresses on the bridge (its ports 0-2).
pub const IPS: [&str; 3] = ["10.99.0.1", "10.99.0.2", "10.99.0.3"];
/// The first server's API, where the others join.
pub const FIRST: &str = "https://10.99.0.1:6443";

/// One server of the lab: an `ns_server::NsServer` in a namespace linked to the bridge.
pub use super::ns_server::NsServer as Server;

/// What only the lab does with its servers.
impl Server {
    /// A join that must fail: its error output.
    pub fn refused_join(&self, token: &str) -> String {
        let dir = tempfile::Builder::new()
            .prefix("rkube-ha-refused")
            .tempdir_in("/tmp")
            .unwrap();
        let (out, _) = run_to_exit(
            self.rkube_server_in(dir.path(), &["--server", FIRST, "--token", token])
                .stdout(Stdio::null())
                .stderr(Stdio::piped()),
            Duration::from_secs(60),
        );
        assert!(!out.status.success(), "a bad join was not refused");
        assert!(
            !dir.path().join("db/etcd/member").exists(),
            "a refused join started an etcd member"
        );
        String::from_utf8_lossy(&out.stderr).into_owned()
    }
}

/// The switch namespace's holder, ended with the test.
pub struct Switch(pub Child);

impl Drop for Switch {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Whether any process still runs etcd from `dir`.
pub fn etcd_running(dir: &Path) -> bool {
    let needle = format!("--data-dir={}", dir.join("db/etcd").display());
    std::fs::read_dir("/proc").unwrap().flatten().any(|e| {
        let cmd = std::fs::read(e.path().join("cmdline")).unwrap_or_default();
        String::from_utf8_lossy(&cmd).contains(&needle)
    })
}

/// A new network namespace (its holder) linked to the switch's bridge by port `n`, with
/// `ip`/24 on its `eth0`.
pub fn attach(switch: &Child, n: usize, ip: &str) -> Child {
    let holder = holder("ip link set lo up && echo ready && exec sleep 1000000");
    let script = format!(
        "ip link add port{n} type veth peer name port{n}-peer && \
         ip link set port{n} master lab0 && ip link set port{n} up && \
         ip link set port{n}-peer netns {}",
        holder.id()
    );
    let out = Command::new("nsenter")
        .arg(format!("--net=/proc/{}/ns/net", switch.id()))
        .args(["--", "sh", "-c", &script])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let out = Command::new("nsenter")
        .arg(format!("--net=/proc/{}/ns/net", holder.id()))
        .args(["--", "sh", "-c"])
        .arg(format!(
            "ip link set port{n}-peer name eth0 && ip addr add {ip}/24 dev eth0 && ip link set eth0 up"
        ))
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    holder
}

/// The lab: a switch namespace with bridge `lab0`, and three server namespaces on it.
pub fn lab() -> (Switch, Vec<Server>) {
    let switch = holder(
        "ip link add lab0 type bridge && ip link set lab0 up && echo ready && exec sleep 1000000",
    );
    let servers = IPS
        .iter()
        .enumerate()
        .map(|(n, ip)| Server::new(ip, "rkube-ha", attach(&switch, n, ip), &[]))
        .collect();
    (Switch(switch), servers)
}

/// A copy of the kubeconfig at `from` whose clusters point at `url`.
pub fn kubeconfig_for(from: &Path, to: &Path, url: &str) {
    let text = std::fs::read_to_string(from).unwrap();
    let mut replaced = 0;
    let lines: Vec<String> = text
        .lines()
        .map(|l| match l.split_once("server: ") {
            Some((indent, _)) if indent.trim().is_empty() => {
                replaced += 1;
                format!("{indent}server: {url}")
            }
            _ => l.to_string(),
        })
        .collect();
    assert!(replaced > 0, "no server in {}", from.display());
    std::fs::write(to, lines.join("\n") + "\n").unwrap();
}
