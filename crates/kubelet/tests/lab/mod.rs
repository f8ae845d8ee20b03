//! The test lab shared by the kubelet's tests and benches: a temp data dir, a network
//! namespace for the node, pod cgroups under a root of our own, and a `Drop` that removes every
//! process, mount and file the lab made even when the test fails.
// Each target that includes this module uses only part of it.
#![allow(dead_code)]

pub mod node;

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail, ensure};
use kubelet::cri::api;

pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

pub fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "kubelet=info".into()),
        )
        .with_test_writer()
        .try_init();
}

pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Everything the test creates on the machine, removed on drop whatever happened.
pub struct Lab {
    dir: Option<tempfile::TempDir>,
    /// Holds the node's network namespace open (`unshare --net … sleep`).
    netns_holder: Child,
    cgroup_root: String,
    /// The CNI network name (unique per test process).
    pub network: String,
}

impl Lab {
    pub fn new() -> Result<Self> {
        let id = std::process::id();
        // Short path: containerd's socket path must fit a sockaddr_un.
        let dir = tempfile::Builder::new()
            .prefix("rkube-kt")
            .tempdir_in("/tmp")
            .context("temp dir")?;
        let mut holder = Command::new("unshare")
            .args(["--net", "--", "/bin/busybox", "sh", "-c"])
            .arg("/bin/busybox ip link set lo up && echo ready && exec /bin/busybox sleep 1000000")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .context("unshare --net (util-linux) with /bin/busybox (busybox-static)")?;
        let mut line = String::new();
        if let Some(out) = holder.stdout.take() {
            BufReader::new(out).read_line(&mut line)?;
        }
        let lab = Lab {
            dir: Some(dir),
            netns_holder: holder,
            cgroup_root: format!("rkube-kt-{id}"),
            network: format!("rkube-kt-{id}"),
        };
        ensure!(
            line.trim() == "ready",
            "network namespace holder said {line:?}"
        );
        Ok(lab)
    }

    pub fn data_dir(&self) -> &Path {
        self.dir
            .as_ref()
            .map_or(Path::new("/nonexistent"), |d| d.path())
    }

    pub fn netns(&self) -> PathBuf {
        PathBuf::from(format!("/proc/{}/ns/net", self.netns_holder.id()))
    }

    /// The root of the lab's pod cgroups (a kubelet's `cgroup_root`).
    pub fn cgroup_root(&self) -> String {
        format!("/{}", self.cgroup_root)
    }

    pub fn cgroup_parent(&self, uid: &str) -> String {
        format!("/{}/pod{uid}", self.cgroup_root)
    }

    /// Our cgroup directories in every hierarchy (cgroup v1 controllers, or the v2 root).
    fn cgroup_dirs(&self) -> Vec<PathBuf> {
        let mut bases = vec![PathBuf::from("/sys/fs/cgroup")];
        if let Ok(rd) = std::fs::read_dir("/sys/fs/cgroup") {
            bases.extend(rd.flatten().map(|e| e.path()));
        }
        bases
            .into_iter()
            .map(|b| b.join(&self.cgroup_root))
            .filter(|p| p.is_dir())
            .collect()
    }

    /// PIDs of processes still in our pod cgroups.
    pub fn cgroup_pids(&self) -> Vec<i32> {
        fn walk(dir: &Path, out: &mut Vec<i32>) {
            if let Ok(procs) = std::fs::read_to_string(dir.join("cgroup.procs")) {
                out.extend(procs.lines().filter_map(|l| l.trim().parse::<i32>().ok()));
            }
            if let Ok(rd) = std::fs::read_dir(dir) {
                for e in rd.flatten() {
                    if e.file_type().is_ok_and(|t| t.is_dir()) {
                        walk(&e.path(), out);
                    }
                }
            }
        }
        let mut pids = Vec::new();
        for d in self.cgroup_dirs() {
            walk(&d, &mut pids);
        }
        pids.sort_unstable();
        pids.dedup();
        pids
    }

    /// containerd and shim processes of this lab (their command lines name our data dir).
    pub fn runtime_pids(&self) -> Vec<(i32, String)> {
        let needle = self.data_dir().to_string_lossy().into_owned();
        let mut out = Vec::new();
        let Ok(rd) = std::fs::read_dir("/proc") else {
            return out;
        };
        for e in rd.flatten() {
            let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
                continue;
            };
            let Ok(cmd) = std::fs::read(e.path().join("cmdline")) else {
                continue;
            };
            let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
            let zombie = std::fs::read_to_string(e.path().join("stat"))
                .ok()
                .and_then(|s| {
                    s.rsplit_once(')')
                        .map(|(_, r)| r.trim_start().starts_with('Z'))
                })
                .unwrap_or(false);
            if !zombie
                && cmd.contains(&needle)
                && pid != i32::try_from(std::process::id()).unwrap_or(0)
            {
                out.push((pid, cmd));
            }
        }
        out
    }

    /// Mount points under our data dir, deepest first.
    fn mounts(&self) -> Vec<String> {
        let prefix = self.data_dir().to_string_lossy().into_owned();
        let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
        let mut mounts: Vec<String> = info
            .lines()
            .filter_map(|l| l.split(' ').nth(4))
            .map(|m| m.replace("\\040", " "))
            .filter(|m| m.starts_with(&prefix))
            .collect();
        mounts.sort_by_key(|m| std::cmp::Reverse(m.len()));
        mounts
    }

    /// What is left of the lab's processes and mounts (empty after a clean teardown).
    pub fn leftovers(&self) -> Vec<String> {
        let mut left: Vec<String> = self
            .runtime_pids()
            .into_iter()
            .map(|(pid, cmd)| format!("process {pid}: {cmd}"))
            .collect();
        left.extend(
            self.cgroup_pids()
                .into_iter()
                .map(|p| format!("pod process {p}")),
        );
        left.extend(self.mounts().into_iter().map(|m| format!("mount {m}")));
        left
    }

    /// IDs of sandboxes containerd knows or a shim still serves.
    fn sandbox_ids(&self) -> Vec<String> {
        let dir = self
            .data_dir()
            .join("agent/containerd/state/io.containerd.grpc.v1.cri/sandboxes");
        let mut ids: Vec<String> = std::fs::read_dir(dir)
            .map(|rd| {
                rd.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        for (_, cmd) in self.runtime_pids() {
            let mut words = cmd.split(' ');
            while let Some(w) = words.next() {
                if w == "-id"
                    && let Some(id) = words.next()
                {
                    ids.push(id.to_owned());
                }
            }
        }
        ids.sort();
        ids.dedup();
        ids
    }

    pub fn remove_pod_cgroup(&self, uid: &str) {
        // runc removes only the container cgroups; the pod level is the kubelet's to remove.
        for d in self.cgroup_dirs() {
            let _ = std::fs::remove_dir(d.join(format!("pod{uid}")));
        }
    }
}

pub fn kill(pid: i32, sig: i32) {
    // SAFETY: kill(2) has no memory-safety preconditions.
    unsafe { libc::kill(pid, sig) };
}

impl Drop for Lab {
    fn drop(&mut self) {
        let sandboxes = self.sandbox_ids();
        // Containers first, while their shims live to reap them (an orphan would become a
        // zombie of PID 1); then containerd and the shims.
        let gone = |pid: i32| {
            std::fs::read_to_string(format!("/proc/{pid}/stat")).map_or(true, |s| {
                s.rsplit_once(')')
                    .is_some_and(|(_, r)| r.trim_start().starts_with('Z'))
            })
        };
        for round in 0..2 {
            let deadline = Instant::now() + Duration::from_secs(3);
            loop {
                let pids: Vec<(i32, String)> = if round == 0 {
                    let pods = self.cgroup_pids();
                    pods.into_iter()
                        .map(|p| (p, "pod process".to_owned()))
                        .collect()
                } else {
                    self.runtime_pids()
                };
                let alive: Vec<_> = pids.into_iter().filter(|(p, _)| !gone(*p)).collect();
                if alive.is_empty() || Instant::now() > deadline {
                    break;
                }
                for (p, what) in alive {
                    eprintln!("lab cleanup: killing {p}: {what}");
                    kill(p, libc::SIGKILL);
                }
                std::thread::sleep(Duration::from_millis(200));
            }
        }
        for m in self.mounts() {
            eprintln!("lab cleanup: unmounting {m}");
            if let Ok(c) = std::ffi::CString::new(m) {
                // SAFETY: a valid NUL-terminated path.
                unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) };
            }
        }
        for d in self.cgroup_dirs() {
            let _ = Command::new("find")
                .arg(&d)
                .args(["-depth", "-type", "d", "-exec", "rmdir", "{}", ";"])
                .status();
        }
        let _ = self.netns_holder.kill();
        let _ = self.netns_holder.wait();
        // libcni's result cache is machine-wide and not configurable in containerd 1.6; a
        // sandbox never torn down leaves `<network>-<sandbox id>-<ifname>` there.
        if let Ok(rd) = std::fs::read_dir("/var/lib/cni/results") {
            for e in rd.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                if name.starts_with(&format!("{}-", self.network))
                    || sandboxes.iter().any(|id| name.contains(&format!("-{id}-")))
                {
                    let _ = std::fs::remove_file(e.path());
                }
            }
        }
        // A killed shim leaves its socket, /run/containerd/s/sha256(<address>/<ns>/<id>).
        let address = self.data_dir().join("agent/containerd/containerd.sock");
        for id in &sandboxes {
            let key = format!("{}/k8s.io/{id}", address.display());
            let digest = ring::digest::digest(&ring::digest::SHA256, key.as_bytes());
            let hex: String = digest.as_ref().iter().map(|b| format!("{b:02x}")).collect();
            let _ = std::fs::remove_file(format!("/run/containerd/s/{hex}"));
        }
        // Machine-wide directories containerd and libcni create; only removed when empty, as
        // another runtime on this machine may use them.
        for d in [
            "/var/lib/cni/results",
            "/var/lib/cni",
            "/run/containerd/s",
            "/run/containerd",
        ] {
            let _ = std::fs::remove_dir(d);
        }
        if let Some(dir) = self.dir.take()
            && let Err(e) = dir.close()
        {
            eprintln!("lab cleanup: removing the data dir: {e}");
        }
    }
}

/// An HTTP GET from inside the node's network namespace (where the pod IPs are routed).
pub fn http_get_in_netns(netns: &Path, addr: SocketAddr) -> Result<String> {
    let ns = File::open(netns).with_context(|| format!("open {}", netns.display()))?;
    let handle = std::thread::spawn(move || -> Result<String> {
        // SAFETY: setns on this thread only; the fd is valid for the call.
        if unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
            bail!("setns: {}", std::io::Error::last_os_error());
        }
        let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(3))?;
        s.set_read_timeout(Some(Duration::from_secs(3)))?;
        s.write_all(b"GET / HTTP/1.0\r\nHost: pod\r\n\r\n")?;
        let mut body = String::new();
        s.read_to_string(&mut body)?;
        Ok(body)
    });
    handle.join().map_err(|_| anyhow!("http thread panicked"))?
}

pub fn pod_config(lab: &Lab, name: &str, log_dir: &Path, uid: &str) -> api::PodSandboxConfig {
    let ns = api::NamespaceOption {
        network: api::NamespaceMode::Pod as i32,
        // Shared PID namespace: pause is PID 1 and must reap orphans.
        pid: api::NamespaceMode::Pod as i32,
        ipc: api::NamespaceMode::Pod as i32,
        ..Default::default()
    };
    api::PodSandboxConfig {
        metadata: Some(api::PodSandboxMetadata {
            name: name.into(),
            uid: uid.into(),
            namespace: "default".into(),
            attempt: 0,
        }),
        hostname: name.into(),
        log_directory: log_dir.to_string_lossy().into_owned(),
        labels: HashMap::from([
            ("io.kubernetes.pod.name".to_owned(), name.to_owned()),
            (
                "io.kubernetes.pod.namespace".to_owned(),
                "default".to_owned(),
            ),
            ("io.kubernetes.pod.uid".to_owned(), uid.to_owned()),
        ]),
        linux: Some(api::LinuxPodSandboxConfig {
            cgroup_parent: lab.cgroup_parent(uid),
            security_context: Some(api::LinuxSandboxSecurityContext {
                namespace_options: Some(ns),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

pub fn container_config(name: &str, image: &str, cmd: &[&str]) -> api::ContainerConfig {
    api::ContainerConfig {
        metadata: Some(api::ContainerMetadata {
            name: name.into(),
            attempt: 0,
        }),
        image: Some(api::ImageSpec {
            image: image.into(),
            ..Default::default()
        }),
        command: cmd.iter().map(|s| (*s).to_owned()).collect(),
        log_path: format!("{name}/0.log"),
        linux: Some(api::LinuxContainerConfig {
            resources: Some(api::LinuxContainerResources {
                cpu_shares: 256,
                memory_limit_in_bytes: 64 << 20,
                ..Default::default()
            }),
            security_context: Some(api::LinuxContainerSecurityContext {
                namespace_options: Some(api::NamespaceOption {
                    network: api::NamespaceMode::Pod as i32,
                    pid: api::NamespaceMode::Pod as i32,
                    ipc: api::NamespaceMode::Pod as i32,
                    ..Default::default()
                }),
                ..Default::default()
            }),
        }),
        ..Default::default()
    }
}
