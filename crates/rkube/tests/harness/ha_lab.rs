//! The HA lab (ha_e2e.rs, ha_bench.rs): a switch namespace with a bridge `lab0`, and three
//! network namespaces on it (10.99.0.1-3), one per `rkube server` (`--disable-agent`:
//! control plane only), each with its data dir; servers and namespaces go on drop.

use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use super::{holder, kill_leftovers, server_binary, wait_until};

/// The servers' addresses on the bridge (its ports 0-2).
pub const IPS: [&str; 3] = ["10.99.0.1", "10.99.0.2", "10.99.0.3"];
/// The first server's API, where the others join.
pub const FIRST: &str = "https://10.99.0.1:6443";

/// One server: its network namespace (held by a sleeping process), data dir and process.
pub struct Server {
    pub ip: &'static str,
    pub dir: tempfile::TempDir,
    pub holder: Child,
    pub process: Option<Child>,
}

impl Server {
    pub fn netns(&self) -> String {
        format!("--net=/proc/{}/ns/net", self.holder.id())
    }

    pub fn cmd(&self, program: &str) -> Command {
        let mut c = Command::new("nsenter");
        c.arg(self.netns()).arg("--").arg(program);
        c
    }

    /// `rkube server` in this namespace, control plane only, with `extra` flags; its output
    /// goes to files in the data dir.
    pub fn rkube_server(&self, data_dir: &Path, extra: &[&str]) -> Command {
        let mut c = self.cmd(&server_binary());
        c.args([
            "server",
            "--disable-agent",
            "--disable",
            "metrics-server,servicelb,local-storage,ingress",
            "--node-ip",
            self.ip,
            "--data-dir",
        ])
        .arg(data_dir)
        .args(extra)
        .env("RUST_LOG", "warn,rkube=info")
        .env_remove("RKUBE_URL")
        .env_remove("RKUBE_TOKEN");
        c
    }

    pub fn start(&mut self, extra: &[&str]) {
        let out = std::fs::File::create(self.dir.path().join("server.out")).unwrap();
        let err = std::fs::File::create(self.dir.path().join("server.err")).unwrap();
        let child = self
            .rkube_server(self.dir.path(), extra)
            .stdout(out)
            .stderr(err)
            .spawn()
            .unwrap();
        self.process = Some(child);
        let ok = wait_until(Duration::from_secs(180), || {
            if let Some(Ok(Some(status))) = self.process.as_mut().map(Child::try_wait) {
                panic!("server {} exited ({status}):\n{}", self.ip, self.log_tail());
            }
            self.kubectl(&["get", "ns", "default"])
                .status
                .success()
                .then_some(())
        });
        assert!(
            ok.is_some(),
            "server {} not serving:\n{}",
            self.ip,
            self.log_tail()
        );
    }

    pub fn log_tail(&self) -> String {
        let err = std::fs::read_to_string(self.dir.path().join("server.err")).unwrap_or_default();
        let lines: Vec<&str> = err.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }

    pub fn pid(&self) -> u32 {
        self.process.as_ref().unwrap().id()
    }

    pub fn kubectl(&self, args: &[&str]) -> Output {
        self.cmd("kubectl")
            .arg("--kubeconfig")
            .arg(self.dir.path().join("kubeconfig.yaml"))
            .args(["--request-timeout", "10s"])
            .args(args)
            .output()
            .unwrap()
    }

    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.kubectl(args);
        assert!(
            out.status.success(),
            "kubectl {args:?} on {}: {}",
            self.ip,
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    pub fn get(&self, args: &[&str]) -> String {
        String::from_utf8_lossy(&self.kubectl(args).stdout)
            .trim()
            .to_string()
    }

    /// A join that must fail: its error output.
    pub fn refused_join(&self, token: &str) -> String {
        let dir = tempfile::Builder::new()
            .prefix("rkube-ha-refused")
            .tempdir_in("/tmp")
            .unwrap();
        let mut child = self
            .rkube_server(dir.path(), &["--server", FIRST, "--token", token])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let exited = wait_until(Duration::from_secs(60), || child.try_wait().unwrap());
        if exited.is_none() {
            let _ = child.kill();
        }
        let out = child.wait_with_output().unwrap();
        assert!(!out.status.success(), "a bad join was not refused");
        assert!(
            !dir.path().join("db/etcd/member").exists(),
            "a refused join started an etcd member"
        );
        String::from_utf8_lossy(&out.stderr).into_owned()
    }

    pub fn kill(&mut self) {
        if let Some(mut p) = self.process.take() {
            let _ = p.kill();
            let _ = p.wait();
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut p) = self.process.take() {
            let _ = Command::new("kill")
                .args(["-INT", &p.id().to_string()])
                .status();
            let stopped = wait_until(Duration::from_secs(20), || p.try_wait().ok().flatten());
            if stopped.is_none() {
                let _ = p.kill();
                let _ = p.wait();
            }
        }
        kill_leftovers(self.dir.path());
        let _ = self.holder.kill();
        let _ = self.holder.wait();
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
        .map(|(n, ip)| Server {
            ip,
            dir: tempfile::Builder::new()
                .prefix("rkube-ha")
                .tempdir_in("/tmp")
                .unwrap(),
            holder: attach(&switch, n, ip),
            process: None,
        })
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
