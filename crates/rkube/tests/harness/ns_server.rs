//! One control-plane `rkube server` (`--disable-agent`) in a network namespace, with its
//! data dir: started and waited for until it serves, stopped with SIGINT or killed, its log
//! and kubectl at hand; the process and the namespace go on drop. etcd_snapshot.rs and
//! etcd_convert.rs run one in a namespace of its own ([`NsServer::alone`]), the HA lab
//! (`ha_lab`) three on one bridge.

use std::path::Path;
use std::process::{Child, Command, Output};
use std::time::Duration;

use super::{NODE_IP, holder, interrupt, kill_leftovers, server_binary, wait_until};

/// The server: its address, data dir, network namespace (held by a sleeping process) and
/// process, and the flags its test starts it with.
pub struct NsServer {
    pub ip: &'static str,
    pub dir: tempfile::TempDir,
    pub holder: Child,
    pub process: Option<Child>,
    flags: Vec<String>,
}

impl NsServer {
    /// A server with `ip` in the namespace `holder` holds, its data dir `/tmp/<prefix>…`,
    /// started with `flags` (besides the control-plane-only ones and the data dir). Not
    /// started yet.
    pub fn new(ip: &'static str, prefix: &str, holder: Child, flags: &[&str]) -> NsServer {
        let dir = tempfile::Builder::new()
            .prefix(prefix)
            .tempdir_in("/tmp")
            .unwrap();
        NsServer {
            ip,
            dir,
            holder,
            process: None,
            flags: flags.iter().map(|f| f.to_string()).collect(),
        }
    }

    /// [`NsServer::new`] in a network namespace of its own, [`NODE_IP`] on its `eth0`.
    pub fn alone(prefix: &str, flags: &[&str]) -> NsServer {
        let holder = holder(&format!(
            "ip link set lo up && ip link add eth0 type veth peer name eth0-peer && \
             ip addr add {NODE_IP}/24 dev eth0 && ip link set eth0-peer up && \
             ip link set eth0 up && echo ready && exec sleep 1000000"
        ));
        NsServer::new(NODE_IP, prefix, holder, flags)
    }

    pub fn data(&self) -> &Path {
        self.dir.path()
    }

    pub fn netns(&self) -> String {
        format!("--net=/proc/{}/ns/net", self.holder.id())
    }

    /// A command run inside the server's network namespace.
    pub fn cmd(&self, program: &str) -> Command {
        let mut c = Command::new("nsenter");
        c.arg(self.netns()).arg("--").arg(program);
        c
    }

    /// `rkube server` in the namespace, control plane only, with the test's flags, on
    /// `data_dir`, with `extra`.
    pub fn rkube_server_in(&self, data_dir: &Path, extra: &[&str]) -> Command {
        let mut c = self.cmd(&server_binary());
        c.args([
            "server",
            "--disable-agent",
            "--disable",
            "metrics-server,servicelb,local-storage,ingress",
            "--node-ip",
            self.ip,
        ])
        .args(&self.flags)
        .arg("--data-dir")
        .arg(data_dir)
        .args(extra)
        .env("RUST_LOG", "warn,rkube=info")
        .env_remove("RKUBE_URL")
        .env_remove("RKUBE_TOKEN");
        c
    }

    /// [`NsServer::rkube_server_in`] the server's data dir.
    pub fn rkube_server(&self, extra: &[&str]) -> Command {
        self.rkube_server_in(self.data(), extra)
    }

    /// Starts the server with `extra` (its output in `server.out` and `server.err` in the
    /// data dir) and waits until it serves; panics with its log if it exits first.
    pub fn start(&mut self, extra: &[&str]) {
        let out = std::fs::File::create(self.data().join("server.out")).unwrap();
        let err = std::fs::File::create(self.data().join("server.err")).unwrap();
        let child = self
            .rkube_server(extra)
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

    /// SIGINT, as Ctrl-C: the server stops (its etcd member too) and exits; SIGKILL after
    /// 30 s.
    pub fn stop(&mut self) {
        if let Some(mut p) = self.process.take() {
            interrupt(&mut p, Duration::from_secs(30));
        }
    }

    /// SIGKILL, as a crash.
    pub fn kill(&mut self) {
        if let Some(mut p) = self.process.take() {
            let _ = p.kill();
            let _ = p.wait();
        }
    }

    pub fn pid(&self) -> u32 {
        self.process.as_ref().unwrap().id()
    }

    /// What the server wrote to its stderr.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.data().join("server.err")).unwrap_or_default()
    }

    /// The last 40 lines of [`NsServer::log`].
    pub fn log_tail(&self) -> String {
        let err = self.log();
        let lines: Vec<&str> = err.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }

    /// kubectl in the namespace, with the server's admin kubeconfig.
    pub fn kubectl(&self, args: &[&str]) -> Output {
        self.cmd("kubectl")
            .arg("--kubeconfig")
            .arg(self.data().join("kubeconfig.yaml"))
            .args(["--request-timeout", "10s"])
            .args(args)
            .output()
            .unwrap()
    }

    /// kubectl that must succeed; its stdout, trimmed.
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

    /// kubectl's stdout, trimmed, whether or not it succeeded.
    pub fn get(&self, args: &[&str]) -> String {
        String::from_utf8_lossy(&self.kubectl(args).stdout)
            .trim()
            .to_string()
    }
}

impl Drop for NsServer {
    fn drop(&mut self) {
        self.stop();
        kill_leftovers(self.dir.path());
        let _ = self.holder.kill();
        let _ = self.holder.wait();
    }
}

/// Runs `command` (a server that should exit by itself: a refused start, a reset) until it
/// exits, or kills it after `timeout`: its output, and whether it exited by itself.
pub fn run_to_exit(command: &mut Command, timeout: Duration) -> (Output, bool) {
    let mut child = command.spawn().unwrap();
    let exited = wait_until(timeout, || child.try_wait().unwrap()).is_some();
    if !exited {
        let _ = child.kill();
    }
    (child.wait_with_output().unwrap(), exited)
}

/// Whether a server with a managed etcd can run here: root, etcd (Debian's etcd-server),
/// etcdctl (etcd-client), unshare, nsenter and kubectl.
pub fn can_run_etcd() -> bool {
    let tools = [
        "/usr/bin/etcd",
        "/usr/bin/etcdctl",
        "/usr/bin/unshare",
        "/usr/bin/nsenter",
    ];
    super::root_with(&tools)
        && Command::new("kubectl")
            .args(["version", "--client"])
            .output()
            .is_ok()
}
