//! A network lab on this machine for the proxy's tests and bench: a "node" network namespace
//! with a Linux bridge (10.42.0.1/24), "pod" namespaces attached to it by veth pairs, each
//! able to run busybox httpd serving a page naming itself, and a client inside them. Every
//! namespace is held by a process of ours (`unshare --net`), so dropping the lab (killing
//! the processes) removes namespaces, links and addresses with it. Traffic never leaves
//! these namespaces.
// Each target that includes this module uses only part of it.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{Context, Result, bail, ensure};

pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// Root, nft, unshare and busybox: everything the lab needs.
pub fn can_run() -> bool {
    if !is_root() {
        common::ci::skip("needs root (network namespaces, nftables)");
        return false;
    }
    for tool in ["nft", "unshare", "nsenter", "ip", "/bin/busybox"] {
        let found = Command::new(tool)
            .arg("--help")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok();
        if !found {
            common::ci::skip(&format!("{tool} is missing"));
            return false;
        }
    }
    true
}

/// A network namespace held open by a sleeping process of ours.
pub struct Netns {
    holder: Child,
}

impl Netns {
    pub fn new() -> Result<Self> {
        let mut holder = Command::new("unshare")
            .args(["--net", "--", "/bin/busybox", "sh", "-c"])
            .arg("/bin/busybox ip link set lo up && echo ready && exec /bin/busybox sleep 1000000")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .context("unshare --net")?;
        let mut line = String::new();
        if let Some(out) = holder.stdout.take() {
            BufReader::new(out).read_line(&mut line)?;
        }
        let ns = Netns { holder };
        ensure!(line.trim() == "ready", "netns holder said {line:?}");
        Ok(ns)
    }

    pub fn pid(&self) -> u32 {
        self.holder.id()
    }

    pub fn path(&self) -> PathBuf {
        PathBuf::from(format!("/proc/{}/ns/net", self.holder.id()))
    }

    /// Runs a command in this namespace; fails with its stderr.
    pub fn sh(&self, cmd: &str) -> Result<String> {
        let out = Command::new("nsenter")
            .arg(format!("--net={}", self.path().display()))
            .args(["--", "/bin/sh", "-c", cmd])
            .output()
            .with_context(|| format!("nsenter {cmd}"))?;
        if !out.status.success() {
            bail!(
                "{cmd}: {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Runs `f` on a thread inside this namespace (sockets opened there live there).
    pub fn within<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> std::io::Result<T> + Send + 'static,
    ) -> std::io::Result<T> {
        let path = self.path();
        std::thread::spawn(move || {
            let ns = std::fs::File::open(&path)?;
            // SAFETY: setns on a valid fd; it only moves this throwaway thread.
            if unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
                return Err(std::io::Error::last_os_error());
            }
            f()
        })
        .join()
        .map_err(|_| std::io::Error::other("thread panicked"))?
    }

    /// `GET /` from inside this namespace: the body, or the connect/read error.
    pub fn http_get(&self, addr: SocketAddr) -> std::io::Result<String> {
        self.http_get_path(addr, "/")
    }

    /// `GET <path>` from inside this namespace.
    pub fn http_get_path(&self, addr: SocketAddr, path: &str) -> std::io::Result<String> {
        let request = format!("GET {path} HTTP/1.0\r\nHost: x\r\n\r\n");
        self.within(move || {
            let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
            s.set_read_timeout(Some(Duration::from_secs(2)))?;
            s.write_all(request.as_bytes())?;
            let mut resp = String::new();
            s.read_to_string(&mut resp)?;
            let body = resp.split("\r\n\r\n").nth(1).unwrap_or_default();
            Ok(body.trim().to_string())
        })
    }

    /// One UDP datagram to `addr` from local port `sport`; the reply, if any within 1 s.
    pub fn udp_ask(&self, sport: u16, addr: SocketAddr) -> std::io::Result<String> {
        self.within(move || {
            // Seen once in CI: EADDRINUSE right after the previous ask's socket closed; a
            // short retry keeps the fixed source port the test depends on.
            let mut tries = 0;
            let s = loop {
                match UdpSocket::bind(("0.0.0.0", sport)) {
                    Err(e) if e.kind() == std::io::ErrorKind::AddrInUse && tries < 40 => {
                        tries += 1;
                        std::thread::sleep(Duration::from_millis(50));
                    }
                    r => break r?,
                }
            };
            s.set_read_timeout(Some(Duration::from_secs(1)))?;
            s.send_to(b"who\n", addr)?;
            let mut buf = [0u8; 256];
            let n = s.recv(&mut buf)?;
            Ok(String::from_utf8_lossy(&buf[..n]).trim().to_string())
        })
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = self.holder.kill();
        let _ = self.holder.wait();
    }
}

/// A pod: its namespace, address and the servers it runs.
pub struct Pod {
    pub name: String,
    pub ip: String,
    pub ns: Netns,
    servers: Vec<Child>,
    threads: Vec<std::thread::JoinHandle<()>>,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    dir: PathBuf,
}

impl Pod {
    /// Serves `GET /` answering its own name (busybox httpd on `port`).
    pub fn serve_http(&mut self, port: u16) -> Result<()> {
        std::fs::create_dir_all(&self.dir)?;
        std::fs::write(self.dir.join("index.html"), format!("{}\n", self.name))?;
        // GET /cgi-bin/ip answers the client address the pod sees (was it masqueraded?).
        let cgi = self.dir.join("cgi-bin");
        std::fs::create_dir_all(&cgi)?;
        std::fs::write(
            cgi.join("ip"),
            "#!/bin/sh\nprintf 'Content-Type: text/plain\\r\\n\\r\\n%s\\n' \"$REMOTE_ADDR\"\n",
        )?;
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(cgi.join("ip"), std::fs::Permissions::from_mode(0o755))?;
        let child = Command::new("nsenter")
            .arg(format!("--net={}", self.ns.path().display()))
            .args(["--", "/bin/busybox", "httpd", "-f", "-p"])
            .arg(port.to_string())
            .arg("-h")
            .arg(&self.dir)
            .stdin(Stdio::null())
            .spawn()
            .context("busybox httpd")?;
        self.servers.push(child);
        Ok(())
    }

    /// Answers every UDP datagram on `port` with its own name (a thread of ours inside the
    /// pod's namespace, stopped when the pod is dropped).
    pub fn serve_udp(&mut self, port: u16) -> Result<()> {
        let path = self.ns.path();
        let name = self.name.clone();
        let stop = self.stop.clone();
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let t = std::thread::spawn(move || {
            let bound = (|| -> std::io::Result<UdpSocket> {
                let ns = std::fs::File::open(&path)?;
                // SAFETY: setns on a valid fd; it only moves this thread.
                if unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                let s = UdpSocket::bind(("0.0.0.0", port))?;
                s.set_read_timeout(Some(Duration::from_millis(100)))?;
                Ok(s)
            })();
            let s = match bound {
                Ok(s) => {
                    let _ = ready_tx.send(Ok(()));
                    s
                }
                Err(e) => {
                    let _ = ready_tx.send(Err(e));
                    return;
                }
            };
            let mut buf = [0u8; 256];
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                if let Ok((_, from)) = s.recv_from(&mut buf) {
                    let _ = s.send_to(name.as_bytes(), from);
                }
            }
        });
        ready_rx.recv().context("udp server thread")??;
        self.threads.push(t);
        Ok(())
    }
}

impl Drop for Pod {
    fn drop(&mut self) {
        for s in &mut self.servers {
            let _ = s.kill();
            let _ = s.wait();
        }
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The node namespace with its bridge, and the pods on it.
pub struct Lab {
    pub node: Netns,
    pub pods: Vec<Pod>,
    dir: tempfile_dir::Dir,
}

/// A small temp dir (no extra dependency): removed on drop.
mod tempfile_dir {
    use std::path::{Path, PathBuf};
    pub struct Dir(pub PathBuf);
    impl Dir {
        pub fn new() -> std::io::Result<Self> {
            static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
            let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let p = std::env::temp_dir().join(format!("rkp-lab-{}-{n}", std::process::id()));
            std::fs::create_dir_all(&p)?;
            Ok(Dir(p))
        }
        pub fn path(&self) -> &Path {
            &self.0
        }
    }
    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

pub const BRIDGE_IP: &str = "10.42.0.1";
/// The node's address on the link to the "outside" namespace.
pub const OUTSIDE_NODE_IP: &str = "192.0.2.1";

impl Lab {
    pub fn new() -> Result<Self> {
        let node = Netns::new()?;
        node.sh(&format!(
            "ip link add rkp-br0 type bridge && ip addr add {BRIDGE_IP}/24 dev rkp-br0 && ip link set rkp-br0 up"
        ))?;
        Ok(Lab {
            node,
            pods: Vec::new(),
            dir: tempfile_dir::Dir::new()?,
        })
    }

    /// A pod namespace on the bridge at 10.42.0.<n>, default route via the bridge.
    pub fn add_pod(&mut self, name: &str, n: u8) -> Result<&mut Pod> {
        let ns = Netns::new()?;
        let ip = format!("10.42.0.{n}");
        let host_if = format!("rkp-v{n}");
        self.node.sh(&format!(
            // hairpin: a pod's packet DNATed back to itself leaves by the port it came in
            // on (the CNI bridge plugin's hairpinMode, which kube-proxy needs).
            "ip link add {host_if} type veth peer name eth0 netns {pid} && ip link set {host_if} master rkp-br0 && ip link set {host_if} type bridge_slave hairpin on && ip link set {host_if} up",
            pid = ns.pid()
        ))?;
        ns.sh(&format!(
            "ip addr add {ip}/24 dev eth0 && ip link set eth0 up && ip route add default via {BRIDGE_IP}"
        ))?;
        self.pods.push(Pod {
            name: name.to_string(),
            ip,
            ns,
            servers: Vec::new(),
            threads: Vec::new(),
            stop: Default::default(),
            dir: self.dir.path().join(name),
        });
        let last = self.pods.len() - 1;
        Ok(&mut self.pods[last])
    }

    /// A machine outside the cluster network: a namespace linked to the node by its own
    /// veth pair, the node at 192.0.2.1/24 (TEST-NET-1), this one at 192.0.2.<n>, with
    /// routes to the pod and Service networks through the node.
    pub fn add_outside(&mut self, name: &str, n: u8) -> Result<&mut Pod> {
        let ns = Netns::new()?;
        let ip = format!("192.0.2.{n}");
        let host_if = format!("rkp-x{n}");
        self.node.sh(&format!(
            "ip link add {host_if} type veth peer name eth0 netns {pid} && ip addr add {OUTSIDE_NODE_IP}/24 dev {host_if} && ip link set {host_if} up",
            pid = ns.pid()
        ))?;
        ns.sh(&format!(
            "ip addr add {ip}/24 dev eth0 && ip link set eth0 up && ip route add 10.42.0.0/16 via {OUTSIDE_NODE_IP} && ip route add 10.43.0.0/16 via {OUTSIDE_NODE_IP}"
        ))?;
        self.pods.push(Pod {
            name: name.to_string(),
            ip,
            ns,
            servers: Vec::new(),
            threads: Vec::new(),
            stop: Default::default(),
            dir: self.dir.path().join(name),
        });
        let last = self.pods.len() - 1;
        Ok(&mut self.pods[last])
    }

    pub fn pod(&self, name: &str) -> &Pod {
        match self.pods.iter().find(|p| p.name == name) {
            Some(p) => p,
            None => panic!("no pod {name}"),
        }
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        // Pods (their servers, then namespaces) before the node they are plugged into.
        self.pods.clear();
    }
}
