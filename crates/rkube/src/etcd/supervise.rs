//! The etcd member process: started with its flags, restarted with back-off when it dies,
//! stopped (SIGTERM, then SIGKILL) when the server stops — as the agent supervises
//! containerd.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::Context;
use tokio::sync::watch;

/// etcd's client and peer ports (etcd's and k3s' defaults).
pub const CLIENT_PORT: u16 = 2379;
pub const PEER_PORT: u16 = 2380;
/// etcd's metrics and health, loopback only (as k3s sets it).
const METRICS_PORT: u16 = 2381;

/// How one member runs.
#[derive(Clone, Debug)]
pub struct MemberConfig {
    pub name: String,
    pub data_dir: PathBuf,
    pub ip: IpAddr,
    /// `name=https://ip:2380` for every member, this one included.
    pub initial_cluster: Vec<String>,
    /// `new` for the first member, `existing` for one added to a running cluster. Both are
    /// ignored by etcd once its data directory holds a member.
    pub initial_cluster_state: &'static str,
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
    /// Where etcd's own log goes.
    pub log: PathBuf,
    /// `--force-new-cluster`: this member alone, its data kept (`--cluster-reset`, one start).
    pub force_new_cluster: bool,
}

impl MemberConfig {
    pub fn peer_url(ip: IpAddr) -> String {
        format!("https://{}", std::net::SocketAddr::new(ip, PEER_PORT))
    }

    pub fn client_url(ip: IpAddr) -> String {
        format!("https://{}", std::net::SocketAddr::new(ip, CLIENT_PORT))
    }

    /// Where clients reach the member: the node's address and loopback (once, if they are
    /// the same).
    fn client_urls(&self) -> Vec<String> {
        let loopback = std::net::IpAddr::from([127, 0, 0, 1]);
        let mut urls = vec![Self::client_url(self.ip)];
        if self.ip != loopback {
            urls.push(Self::client_url(loopback));
        }
        urls
    }

    fn args(&self) -> Vec<String> {
        let p = |p: &Path| p.display().to_string();
        let mut args = vec![
            format!("--name={}", self.name),
            format!("--data-dir={}", p(&self.data_dir)),
            // TLS with client certificates from the etcd CA, on the node's address (other
            // servers) and on loopback (this server's API server): no plain port.
            format!("--listen-client-urls={}", self.client_urls().join(",")),
            format!("--advertise-client-urls={}", Self::client_url(self.ip)),
            format!("--listen-peer-urls={}", Self::peer_url(self.ip)),
            format!("--initial-advertise-peer-urls={}", Self::peer_url(self.ip)),
            format!("--initial-cluster={}", self.initial_cluster.join(",")),
            format!("--initial-cluster-state={}", self.initial_cluster_state),
            format!("--listen-metrics-urls=http://127.0.0.1:{METRICS_PORT}"),
            format!("--cert-file={}", p(&self.cert)),
            format!("--key-file={}", p(&self.key)),
            format!("--trusted-ca-file={}", p(&self.ca)),
            "--client-cert-auth".into(),
            format!("--peer-cert-file={}", p(&self.cert)),
            format!("--peer-key-file={}", p(&self.key)),
            format!("--peer-trusted-ca-file={}", p(&self.ca)),
            "--peer-client-cert-auth".into(),
            // k3s' timings: tolerant of a busy machine, still a leader within seconds.
            "--heartbeat-interval=500".into(),
            "--election-timeout=5000".into(),
            "--logger=zap".into(),
            "--log-outputs=stderr".into(),
        ];
        if self.force_new_cluster {
            args.push("--force-new-cluster".into());
        }
        args
    }
}

/// The etcd binary: `RKUBE_ETCD_BIN`, else `etcd` on PATH, else Debian's /usr/bin/etcd.
pub fn etcd_binary() -> anyhow::Result<PathBuf> {
    find_binary("etcd", "RKUBE_ETCD_BIN", "etcd-server")
}

/// etcdctl (snapshot restore): `RKUBE_ETCDCTL_BIN`, else on PATH, else /usr/bin/etcdctl.
pub fn etcdctl_binary() -> anyhow::Result<PathBuf> {
    find_binary("etcdctl", "RKUBE_ETCDCTL_BIN", "etcd-client")
}

/// `env` if set, else `name` on PATH, else `/usr/bin/<name>`; the error names the Debian
/// package that has it.
fn find_binary(name: &str, env: &str, package: &str) -> anyhow::Result<PathBuf> {
    if let Some(p) = std::env::var_os(env) {
        return Ok(PathBuf::from(p));
    }
    let on_path = std::env::var_os("PATH")
        .map(|p| {
            std::env::split_paths(&p)
                .map(|d| d.join(name))
                .collect::<Vec<_>>()
        })
        .unwrap_or_default();
    on_path
        .into_iter()
        .chain([Path::new("/usr/bin").join(name)])
        .find(|p| p.is_file())
        .ok_or_else(|| {
            anyhow::anyhow!(
                "no {name} binary: install Debian's {package} (scripts/install-deps.sh) or set {env}"
            )
        })
}

/// A supervised member; [`Supervisor::stop`] ends it.
pub struct Supervisor {
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl Supervisor {
    /// Starts etcd and keeps it running: a member that exits is started again after a
    /// back-off (1 s, doubling to 30 s, reset after a minute of running).
    pub fn start(config: MemberConfig) -> anyhow::Result<Supervisor> {
        let bin = etcd_binary()?;
        if let Some(dir) = config.log.parent() {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        // Started once here so that a bad binary or flag is an error of `rkube server`.
        let child = spawn(&bin, &config)?;
        let (stop, stopped) = watch::channel(false);
        let task = tokio::spawn(supervise(bin, config, child, stopped));
        Ok(Supervisor { stop, task })
    }

    /// Stops the member (SIGTERM, SIGKILL after 10 s) and waits for it.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}

fn spawn(bin: &Path, config: &MemberConfig) -> anyhow::Result<tokio::process::Child> {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&config.log)
        .with_context(|| format!("opening {}", config.log.display()))?;
    let mut cmd = tokio::process::Command::new(bin);
    cmd.args(config.args())
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .kill_on_drop(true);
    // etcd goes down with the server, as k3s' embedded etcd does: a SIGKILLed server is a
    // lost member, not an orphan still voting.
    // SAFETY: prctl is async-signal-safe and touches only the child.
    unsafe {
        cmd.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let child = cmd
        .spawn()
        .with_context(|| format!("starting {}", bin.display()))?;
    tracing::info!(pid = ?child.id(), name = %config.name, "etcd member started");
    Ok(child)
}

async fn supervise(
    bin: PathBuf,
    config: MemberConfig,
    mut child: tokio::process::Child,
    mut stopped: watch::Receiver<bool>,
) {
    let mut delay = Duration::from_secs(1);
    loop {
        let started = tokio::time::Instant::now();
        tokio::select! {
            status = child.wait() => {
                if *stopped.borrow() {
                    return;
                }
                tracing::error!(status = ?status, log = %config.log.display(), "etcd exited; restarting in {delay:?}");
            }
            _ = stopped.changed() => {
                terminate(&mut child).await;
                return;
            }
        }
        if started.elapsed() > Duration::from_secs(60) {
            delay = Duration::from_secs(1);
        }
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = stopped.changed() => return,
        }
        delay = (delay * 2).min(Duration::from_secs(30));
        child = match spawn(&bin, &config) {
            Ok(c) => c,
            Err(e) => {
                tracing::error!(error = %format!("{e:#}"), "restarting etcd");
                match retry_spawn(&bin, &config, &mut stopped, &mut delay).await {
                    Some(c) => c,
                    None => return,
                }
            }
        };
    }
}

/// Keeps trying to start etcd until it starts or the server stops.
async fn retry_spawn(
    bin: &Path,
    config: &MemberConfig,
    stopped: &mut watch::Receiver<bool>,
    delay: &mut Duration,
) -> Option<tokio::process::Child> {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(*delay) => {}
            _ = stopped.changed() => return None,
        }
        *delay = (*delay * 2).min(Duration::from_secs(30));
        match spawn(bin, config) {
            Ok(c) => return Some(c),
            Err(e) => tracing::error!(error = %format!("{e:#}"), "restarting etcd"),
        }
    }
}

/// SIGTERM (etcd finishes its writes and leaves cleanly), SIGKILL after 10 s.
async fn terminate(child: &mut tokio::process::Child) {
    if let Some(pid) = child.id().and_then(|p| i32::try_from(p).ok()) {
        // SAFETY: a plain kill(2) on our own child's pid, which we have not reaped.
        unsafe { libc::kill(pid, libc::SIGTERM) };
    }
    match tokio::time::timeout(Duration::from_secs(10), child.wait()).await {
        Ok(_) => tracing::info!("etcd member stopped"),
        Err(_) => {
            tracing::warn!("etcd did not stop within 10 s of SIGTERM; killing it");
            let _ = child.kill().await;
        }
    }
}

/// The error of a start that would go on without the cluster a SQLite store holds (`why`:
/// what this start would do with it, and what the user can do instead).
pub fn sqlite_refused(data_dir: &Path, why: &str) -> anyhow::Error {
    anyhow::anyhow!(
        "{} holds this server's cluster in SQLite; {why}",
        super::migrate::sqlite_path(data_dir).display()
    )
}
