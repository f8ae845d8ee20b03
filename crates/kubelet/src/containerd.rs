//! The agent's own containerd: config, start, readiness, restart with back-off, stop.
//!
//! [`Containerd::start`] writes `<data-dir>/agent/etc/containerd/config.toml`, starts
//! `containerd --config …` as a child, waits until CRI answers on
//! `<data-dir>/agent/containerd/containerd.sock`, imports the pause image and the air-gap
//! tarballs, and keeps a task that restarts containerd whenever it dies.
//!
//! Pods outlive both containerd and the agent: containerd's shims daemonise (they are not our
//! children and not in containerd's process group), so stopping or losing containerd leaves
//! every pod running, and the next containerd reconnects to their shims. Nothing here ever
//! signals a shim.

use std::fs::File;
use std::os::fd::AsRawFd;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;
use tracing::{debug, error, info, warn};

use crate::cri::RuntimeClient;
use crate::images::{self, ImageError, PAUSE_IMAGE};
use crate::paths::AgentDirs;

/// A containerd that stayed up this long is healthy again: its next crash restarts it at once.
const STABLE_AFTER: Duration = Duration::from_secs(60);

/// `sun_path` holds 108 bytes with the NUL, and containerd also listens on `<socket>.ttrpc`.
const MAX_SOCKET_PATH: usize = 107 - ".ttrpc".len();

#[derive(Debug, thiserror::Error)]
pub enum ContainerdError {
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("containerd socket path {} is too long for a unix socket; use a shorter --data-dir", .0.display())]
    SocketPathTooLong(PathBuf),
    #[error("containerd did not become ready: {error}\nlast lines of {}:\n{log_tail}", log.display())]
    NotReady {
        error: String,
        log: PathBuf,
        log_tail: String,
    },
    #[error("importing images into containerd: {0}")]
    Images(#[from] ImageError),
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> ContainerdError + '_ {
    move |source| ContainerdError::Io {
        path: path.to_owned(),
        source,
    }
}

/// How to run containerd. [`ContainerdConfig::new`] gives the defaults for a Debian machine.
#[derive(Clone, Debug)]
pub struct ContainerdConfig {
    /// rkube's `--data-dir`; everything goes under `<data_dir>/agent` (see [`AgentDirs`]).
    pub data_dir: PathBuf,
    pub containerd_bin: PathBuf,
    /// `ctr`, used to import image tarballs.
    pub ctr_bin: PathBuf,
    pub runc_bin: PathBuf,
    /// CNI plugin binaries (Debian's containernetworking-plugins).
    pub cni_bin_dir: PathBuf,
    /// containerd's `sandbox_image`; the project's pause image by default.
    pub sandbox_image: String,
    /// Run containerd (and so the pods' CNI setup and its stream server) in this network
    /// namespace, e.g. `/proc/<pid>/ns/net` or `/run/netns/<name>`; `None` = the agent's own.
    pub netns: Option<PathBuf>,
    /// containerd's log level (`info`, `debug`, …).
    pub log_level: String,
    /// How long one start may take until CRI answers.
    pub ready_timeout: Duration,
    /// First restart delay after a crash; doubles up to `max_restart_backoff`.
    pub restart_backoff: Duration,
    pub max_restart_backoff: Duration,
    /// Grace period between SIGTERM and SIGKILL when stopping containerd.
    pub stop_timeout: Duration,
    /// Import the pause image and `<data-dir>/agent/images/*.tar` after the first start.
    pub import_images: bool,
}

impl ContainerdConfig {
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        ContainerdConfig {
            data_dir: data_dir.into(),
            containerd_bin: "/usr/bin/containerd".into(),
            ctr_bin: "/usr/bin/ctr".into(),
            runc_bin: "/usr/sbin/runc".into(),
            cni_bin_dir: "/usr/lib/cni".into(),
            sandbox_image: PAUSE_IMAGE.into(),
            netns: None,
            log_level: "info".into(),
            ready_timeout: Duration::from_secs(30),
            restart_backoff: Duration::from_millis(200),
            max_restart_backoff: Duration::from_secs(30),
            stop_timeout: Duration::from_secs(10),
            import_images: true,
        }
    }

    pub fn dirs(&self) -> AgentDirs {
        AgentDirs::new(&self.data_dir)
    }

    /// containerd's config.toml (version 2, containerd 1.6).
    pub fn render(&self) -> String {
        let d = self.dirs();
        let s = |p: &Path| toml_str(&p.to_string_lossy());
        let c = &d.containerd;
        format!(
            r#"# Written by rkube at every agent start; edits are lost.
version = 2
root = {root}
state = {state}
# Pods' processes keep their own score; containerd does not make itself unkillable.
oom_score = 0

[grpc]
  address = {socket}

[debug]
  address = ""
  level = {level}

[metrics]
  address = ""

[plugins]
  [plugins."io.containerd.internal.v1.opt"]
    path = {opt}

  [plugins."io.containerd.grpc.v1.cri"]
    sandbox_image = {sandbox}
    stream_server_address = "127.0.0.1"
    stream_server_port = "0"
    enable_selinux = false
    disable_apparmor = true
    # Pod network namespaces under the state dir, not the machine-wide /var/run/netns.
    netns_mounts_under_state_dir = true
    max_container_log_line_size = 16384
    # Required where root lacks CAP_SYS_RESOURCE: the sandbox's oom_score_adj -998 cannot be
    # written there, and every RunPodSandbox fails. This clamps scores to containerd's own.
    restrict_oom_score_adj = true
    [plugins."io.containerd.grpc.v1.cri".containerd]
      snapshotter = "overlayfs"
      default_runtime_name = "runc"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
        runtime_type = "io.containerd.runc.v2"
        [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
          SystemdCgroup = false
          BinaryName = {runc}
          # runc's default root /run/containerd/runc would be shared with other instances.
          Root = {runc_root}
    [plugins."io.containerd.grpc.v1.cri".cni]
      bin_dir = {cni_bin}
      conf_dir = {cni_conf}
      max_conf_num = 1
    [plugins."io.containerd.grpc.v1.cri".registry]
      config_path = {certs}
"#,
            root = s(&c.join("root")),
            state = s(&c.join("state")),
            socket = s(&d.containerd_socket),
            level = toml_str(&self.log_level),
            opt = s(&c.join("opt")),
            sandbox = toml_str(&self.sandbox_image),
            runc = s(&self.runc_bin),
            runc_root = s(&c.join("runc")),
            cni_bin = s(&self.cni_bin_dir),
            cni_conf = s(&d.cni_conf),
            certs = s(&d.registry_config),
        )
    }
}

/// A TOML basic string.
fn toml_str(v: &str) -> String {
    let mut out = String::with_capacity(v.len() + 2);
    out.push('"');
    for ch in v.chars() {
        match ch {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 || c == '\u{7f}' => {
                out.push_str(&format!("\\u{:04x}", c as u32))
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// What the supervisor is doing; watch it with [`Containerd::subscribe`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ContainerdState {
    /// Started (for the `attempt`-th time), waiting for CRI to answer.
    Starting { attempt: u32 },
    /// Serving CRI.
    Running { pid: u32, restarts: u32 },
    /// Died or failed to start; restarts after `delay`.
    BackingOff {
        restarts: u32,
        delay: Duration,
        error: String,
    },
    /// Stopped for good (shutdown).
    Stopped,
}

/// A supervised containerd. Stopped by [`Containerd::shutdown`], or on drop (SIGTERM, not
/// waited for). Pods keep running either way.
pub struct Containerd {
    dirs: AgentDirs,
    state: watch::Receiver<ContainerdState>,
    shutdown: watch::Sender<bool>,
    pid: Arc<AtomicU32>,
    task: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for Containerd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Containerd")
            .field("socket", &self.dirs.containerd_socket)
            .field("state", &*self.state.borrow())
            .finish()
    }
}

impl Containerd {
    /// Writes the config, starts containerd, waits until CRI answers, imports the pause image
    /// and the air-gap tarballs. Fails if the first start does not come up within
    /// `ready_timeout` (with the end of containerd's log in the error).
    pub async fn start(config: ContainerdConfig) -> Result<Self, ContainerdError> {
        let dirs = config.dirs();
        if dirs.containerd_socket.as_os_str().len() > MAX_SOCKET_PATH {
            return Err(ContainerdError::SocketPathTooLong(dirs.containerd_socket));
        }
        for dir in [
            &dirs.containerd,
            &dirs.registry_config,
            &dirs.cni_conf,
            &dirs.cni_ipam,
            &dirs.images,
            &dirs.pod_logs,
        ] {
            std::fs::create_dir_all(dir).map_err(io_err(dir))?;
        }
        if let Some(parent) = dirs.containerd_config.parent() {
            std::fs::create_dir_all(parent).map_err(io_err(parent))?;
        }
        let tmp = dirs.containerd_config.with_extension("toml.tmp");
        std::fs::write(&tmp, config.render()).map_err(io_err(&tmp))?;
        std::fs::rename(&tmp, &dirs.containerd_config).map_err(io_err(&dirs.containerd_config))?;
        stop_stale(&dirs, config.stop_timeout).await;

        let (state_tx, mut state_rx) = watch::channel(ContainerdState::Starting { attempt: 0 });
        let (shutdown_tx, shutdown_rx) = watch::channel(false);
        let pid = Arc::new(AtomicU32::new(0));
        let task = tokio::spawn(supervise(
            config.clone(),
            dirs.clone(),
            state_tx,
            shutdown_rx,
            pid.clone(),
        ));
        let me = Containerd {
            dirs,
            state: state_rx.clone(),
            shutdown: shutdown_tx,
            pid,
            task: Some(task),
        };

        // Wait for the first start only: a broken setup (binary, config) should fail loudly here
        // rather than be retried forever in the background.
        let first = state_rx
            .wait_for(|s| !matches!(s, ContainerdState::Starting { .. }))
            .await
            .map(|s| s.clone());
        match first {
            Ok(ContainerdState::Running { pid, .. }) => {
                info!(pid, socket = %me.dirs.containerd_socket.display(), "containerd running");
            }
            Ok(ContainerdState::BackingOff { error, .. }) => {
                let log = me.dirs.containerd_log();
                let log_tail = tail(&log, 20);
                me.shutdown().await;
                return Err(ContainerdError::NotReady {
                    error,
                    log,
                    log_tail,
                });
            }
            other => {
                let log = me.dirs.containerd_log();
                let log_tail = tail(&log, 20);
                me.shutdown().await;
                return Err(ContainerdError::NotReady {
                    error: format!("supervisor ended: {other:?}"),
                    log,
                    log_tail,
                });
            }
        }

        if config.import_images
            && let Err(e) = me.import_images(&config).await
        {
            me.shutdown().await;
            return Err(e);
        }
        Ok(me)
    }

    async fn import_images(&self, config: &ContainerdConfig) -> Result<(), ContainerdError> {
        // Written next to containerd's data and imported at every start: the import is
        // idempotent (same digest) and cheap, and it repairs an image someone removed.
        let tarball = self.dirs.containerd.join("rkube-pause.tar");
        images::pause_image()?.write_to(&tarball)?;
        images::import_image(&config.ctr_bin, &self.dirs.containerd_socket, &tarball).await?;
        let report = images::import_dir(
            &config.ctr_bin,
            &self.dirs.containerd_socket,
            &self.dirs.images,
        )
        .await?;
        if !report.imported.is_empty() || !report.failed.is_empty() {
            info!(imported = report.imported.len(), failed = report.failed.len(),
                dir = %self.dirs.images.display(), "air-gap images");
        }
        Ok(())
    }

    /// The socket serving both CRI and containerd's own API (for `ctr`).
    pub fn socket(&self) -> &Path {
        &self.dirs.containerd_socket
    }

    pub fn dirs(&self) -> &AgentDirs {
        &self.dirs
    }

    pub fn state(&self) -> ContainerdState {
        self.state.borrow().clone()
    }

    pub fn subscribe(&self) -> watch::Receiver<ContainerdState> {
        self.state.clone()
    }

    /// The running containerd's PID, if one is running.
    pub fn pid(&self) -> Option<u32> {
        match self.pid.load(Ordering::SeqCst) {
            0 => None,
            pid => Some(pid),
        }
    }

    /// Waits until containerd serves CRI (e.g. after a restart); returns its PID.
    pub async fn wait_running(&self, timeout: Duration) -> Option<u32> {
        let mut rx = self.state.clone();
        let wait = rx.wait_for(|s| matches!(s, ContainerdState::Running { .. }));
        match tokio::time::timeout(timeout, wait).await {
            Ok(Ok(s)) => match &*s {
                ContainerdState::Running { pid, .. } => Some(*pid),
                _ => None,
            },
            _ => None,
        }
    }

    /// A CRI client for this containerd (connects lazily; reconnects after restarts).
    pub fn client(&self) -> RuntimeClient {
        RuntimeClient::lazy(&self.dirs.containerd_socket)
    }

    /// Stops containerd (SIGTERM, SIGKILL after `stop_timeout`) and waits until it is gone.
    /// Pods keep running.
    pub async fn shutdown(mut self) {
        self.shutdown.send_replace(true);
        if let Some(task) = self.task.take()
            && let Err(e) = task.await
        {
            error!(error = %e, "containerd supervisor task failed");
        }
    }
}

impl Drop for Containerd {
    fn drop(&mut self) {
        if self.task.is_none() {
            return;
        }
        self.shutdown.send_replace(true);
        // The runtime may be going away with us, so the task might never run again: signal
        // containerd directly too. Its waiter thread still reaps it.
        if let Some(pid) = self.pid() {
            signal(pid, libc::SIGTERM);
        }
    }
}

fn signal(pid: u32, sig: i32) {
    if let Ok(pid) = i32::try_from(pid)
        && pid > 0
    {
        // SAFETY: kill(2) has no memory-safety preconditions.
        unsafe { libc::kill(pid, sig) };
    }
}

/// The last `n` lines of a log file, for error messages.
fn tail(path: &Path, n: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// True if `pid` is a live (not zombie) process whose command line mentions `needle`.
fn is_our_process(pid: u32, needle: &str) -> bool {
    let Ok(cmdline) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
        return false;
    };
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let zombie = stat
        .rsplit_once(')')
        .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z'));
    !zombie && String::from_utf8_lossy(&cmdline).contains(needle)
}

/// Stops a containerd left by an earlier agent of this data dir (pid file + matching command
/// line): two containerds on one root would block on its metadata lock.
async fn stop_stale(dirs: &AgentDirs, grace: Duration) {
    let pid_file = dirs.containerd_pid_file();
    let Some(pid) = std::fs::read_to_string(&pid_file)
        .ok()
        .and_then(|s| s.trim().parse::<u32>().ok())
    else {
        return;
    };
    let needle = dirs.containerd_config.to_string_lossy().into_owned();
    if !is_our_process(pid, &needle) {
        return;
    }
    warn!(pid, "stopping containerd left by an earlier agent");
    signal(pid, libc::SIGTERM);
    let deadline = Instant::now() + grace;
    while is_our_process(pid, &needle) {
        if Instant::now() > deadline {
            signal(pid, libc::SIGKILL);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let _ = std::fs::remove_file(&pid_file);
}

/// One running containerd: its PID and the exit status its waiter thread reports.
struct Running {
    pid: u32,
    exited: oneshot::Receiver<std::io::Result<ExitStatus>>,
}

/// Starts containerd from a thread that then waits for it.
///
/// containerd gets PR_SET_PDEATHSIG=SIGKILL so it cannot outlive the agent (a leftover would
/// hold the data dir's metadata lock). The death signal fires when the *thread* that forked it
/// exits, which is why a dedicated thread forks it and lives exactly as long as containerd.
fn spawn(config: &ContainerdConfig, dirs: &AgentDirs) -> Result<Running, ContainerdError> {
    let log_path = dirs.containerd_log();
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)
        .map_err(io_err(&log_path))?;
    let log2 = log.try_clone().map_err(io_err(&log_path))?;
    let netns = match &config.netns {
        Some(p) => Some(File::open(p).map_err(io_err(p))?),
        None => None,
    };
    let netns_fd = netns.as_ref().map(|f| f.as_raw_fd());
    let mut cmd = std::process::Command::new(&config.containerd_bin);
    cmd.arg("--config")
        .arg(&dirs.containerd_config)
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(log2)
        // Own process group: a Ctrl-C meant for the agent must not hit containerd directly.
        .process_group(0);
    // SAFETY: the closure runs between fork and exec and only makes async-signal-safe
    // syscalls (prctl, setns) on values prepared before the fork.
    unsafe {
        cmd.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            if let Some(fd) = netns_fd
                && libc::setns(fd, libc::CLONE_NEWNET) != 0
            {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let program = config.containerd_bin.clone();
    let (pid_tx, pid_rx) = std::sync::mpsc::channel();
    let (exit_tx, exit_rx) = oneshot::channel();
    std::thread::Builder::new()
        .name("containerd-waiter".into())
        .spawn(move || {
            let mut child = match cmd.spawn() {
                Ok(c) => c,
                Err(e) => {
                    let _ = pid_tx.send(Err(e));
                    return;
                }
            };
            drop(netns);
            let _ = pid_tx.send(Ok(child.id()));
            let _ = exit_tx.send(child.wait());
        })
        .map_err(io_err(&program))?;
    let pid = pid_rx
        .recv()
        .map_err(|_| std::io::Error::other("containerd waiter thread died"))
        .and_then(|r| r)
        .map_err(io_err(&program))?;
    Ok(Running {
        pid,
        exited: exit_rx,
    })
}

fn describe(status: &std::io::Result<ExitStatus>) -> String {
    match status {
        Ok(s) => match (s.code(), s.signal()) {
            (Some(code), _) => format!("exited with code {code}"),
            (_, Some(sig)) => format!("killed by signal {sig}"),
            _ => s.to_string(),
        },
        Err(e) => format!("wait failed: {e}"),
    }
}

/// Resolves when shutdown is requested (or the `Containerd` handle is gone).
async fn shutdown_requested(rx: &mut watch::Receiver<bool>) {
    let _ = rx.wait_for(|stop| *stop).await;
}

/// Sleeps `delay` unless shutdown is requested first; false on shutdown.
async fn sleep_unless_shutdown(rx: &mut watch::Receiver<bool>, delay: Duration) -> bool {
    tokio::select! {
        _ = tokio::time::sleep(delay) => true,
        _ = shutdown_requested(rx) => false,
    }
}

/// SIGTERM, then SIGKILL after `grace`; waits for the exit.
async fn terminate(running: Running, grace: Duration) {
    let Running { pid, mut exited } = running;
    signal(pid, libc::SIGTERM);
    let status = match tokio::time::timeout(grace, &mut exited).await {
        Ok(status) => status,
        Err(_) => {
            warn!(pid, ?grace, "containerd ignored SIGTERM; killing it");
            signal(pid, libc::SIGKILL);
            exited.await
        }
    };
    if let Ok(status) = status {
        info!(pid, "containerd stopped: {}", describe(&status));
    }
}

/// Restart delays: doubling from `initial` up to `max`, reset after a stable run.
struct Backoff {
    next: Duration,
    initial: Duration,
    max: Duration,
}

impl Backoff {
    /// Publishes the back-off state and returns how long to wait.
    fn wait(
        &mut self,
        state: &watch::Sender<ContainerdState>,
        attempt: u32,
        error: String,
    ) -> Duration {
        let delay = self.next;
        self.next = (self.next * 2).min(self.max);
        state.send_replace(ContainerdState::BackingOff {
            restarts: attempt.saturating_sub(1),
            delay,
            error,
        });
        delay
    }

    fn reset(&mut self) {
        self.next = self.initial;
    }
}

enum Event {
    Exited(std::io::Result<ExitStatus>),
    Shutdown,
}

async fn supervise(
    config: ContainerdConfig,
    dirs: AgentDirs,
    state: watch::Sender<ContainerdState>,
    mut shutdown: watch::Receiver<bool>,
    pid_slot: Arc<AtomicU32>,
) {
    let pid_file = dirs.containerd_pid_file();
    let mut backoff = Backoff {
        next: config.restart_backoff,
        initial: config.restart_backoff,
        max: config.max_restart_backoff,
    };
    let mut attempt = 0u32;
    'outer: while !*shutdown.borrow() {
        attempt += 1;
        state.send_replace(ContainerdState::Starting { attempt });
        let mut running = match spawn(&config, &dirs) {
            Ok(r) => r,
            Err(e) => {
                error!(error = %e, "cannot start containerd");
                let delay = backoff.wait(&state, attempt, e.to_string());
                if !sleep_unless_shutdown(&mut shutdown, delay).await {
                    break;
                }
                continue;
            }
        };
        let pid = running.pid;
        pid_slot.store(pid, Ordering::SeqCst);
        if let Err(e) = std::fs::write(&pid_file, format!("{pid}\n")) {
            warn!(error = %e, path = %pid_file.display(), "cannot write containerd pid file");
        }
        debug!(pid, attempt, "containerd started");

        // Until CRI answers, the process may also die or we may be told to stop.
        let client = RuntimeClient::lazy(&dirs.containerd_socket);
        let ready = tokio::select! {
            r = client.wait_ready(config.ready_timeout) => r.map_err(|e| e.to_string()),
            status = &mut running.exited => {
                pid_slot.store(0, Ordering::SeqCst);
                let status = status.unwrap_or_else(|_| Err(std::io::Error::other("waiter gone")));
                Err(format!("containerd {} during startup", describe(&status)))
            }
            _ = shutdown_requested(&mut shutdown) => {
                pid_slot.store(0, Ordering::SeqCst);
                terminate(running, config.stop_timeout).await;
                break 'outer;
            }
        };
        if let Err(error) = ready {
            error!(%error, log = %dirs.containerd_log().display(), "containerd did not become ready");
            if pid_slot.swap(0, Ordering::SeqCst) != 0 {
                terminate(running, Duration::from_secs(1)).await;
            }
            let delay = backoff.wait(&state, attempt, error);
            if !sleep_unless_shutdown(&mut shutdown, delay).await {
                break;
            }
            continue;
        }
        let started = Instant::now();
        state.send_replace(ContainerdState::Running {
            pid,
            restarts: attempt - 1,
        });

        let event = tokio::select! {
            status = &mut running.exited => {
                Event::Exited(status.unwrap_or_else(|_| Err(std::io::Error::other("waiter gone"))))
            }
            _ = shutdown_requested(&mut shutdown) => Event::Shutdown,
        };
        match event {
            Event::Shutdown => {
                pid_slot.store(0, Ordering::SeqCst);
                terminate(running, config.stop_timeout).await;
                break;
            }
            Event::Exited(status) => {
                pid_slot.store(0, Ordering::SeqCst);
                if *shutdown.borrow() {
                    break;
                }
                if started.elapsed() >= STABLE_AFTER {
                    backoff.reset();
                }
                let what = describe(&status);
                let delay = backoff.wait(&state, attempt, format!("containerd {what}"));
                warn!(pid, %what, ?delay, "containerd died; restarting it (pods keep running)");
                if !sleep_unless_shutdown(&mut shutdown, delay).await {
                    break;
                }
            }
        }
    }
    let _ = std::fs::remove_file(&pid_file);
    pid_slot.store(0, Ordering::SeqCst);
    state.send_replace(ContainerdState::Stopped);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_has_what_this_machine_needs() {
        let c = ContainerdConfig::new("/var/lib/rkube");
        let toml = c.render();
        for line in [
            r#"root = "/var/lib/rkube/agent/containerd/root""#,
            r#"state = "/var/lib/rkube/agent/containerd/state""#,
            r#"address = "/var/lib/rkube/agent/containerd/containerd.sock""#,
            r#"path = "/var/lib/rkube/agent/containerd/opt""#,
            "restrict_oom_score_adj = true",
            "SystemdCgroup = false",
            r#"sandbox_image = "rkube.local/pause:3.9""#,
            r#"bin_dir = "/usr/lib/cni""#,
            r#"conf_dir = "/var/lib/rkube/agent/etc/cni/net.d""#,
            r#"config_path = "/var/lib/rkube/agent/etc/containerd/certs.d""#,
        ] {
            assert!(toml.contains(line), "missing {line}:\n{toml}");
        }
    }

    #[test]
    fn toml_strings_are_escaped() {
        assert_eq!(toml_str(r#"a"b\c"#), r#""a\"b\\c""#);
        assert_eq!(toml_str("x\ny"), r#""x\u000ay""#);
    }

    #[tokio::test]
    async fn long_socket_paths_are_refused() {
        let c = ContainerdConfig::new(format!("/tmp/{}", "x".repeat(100)));
        let err = Containerd::start(c).await;
        assert!(matches!(err, Err(ContainerdError::SocketPathTooLong(_))));
    }

    #[tokio::test]
    async fn a_missing_binary_fails_start_with_context() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let mut c = ContainerdConfig::new(dir.path());
        c.containerd_bin = "/nonexistent/containerd".into();
        let err = Containerd::start(c).await;
        let Err(err) = err else {
            panic!("started a missing binary");
        };
        assert!(err.to_string().contains("/nonexistent/containerd"), "{err}");
        Ok(())
    }
}
