//! `nfs` volumes (pkg/volume/nfs), inline in the pod and as PersistentVolumes reached through
//! claims ([`super::persistent_volume_claim`] calls [`mount`] with the PV's `mountOptions`).
//!
//! Two ways to mount, chosen per mount:
//! - the kernel's NFS client (`mount -t nfs`, Debian's `nfs-common`), as upstream, when the
//!   kernel has the `nfs` filesystem and `mount.nfs` is installed;
//! - otherwise rkube's userspace NFSv3 client through FUSE (`rkube nfs-mount`, the `nfs`
//!   crate), spawned in a process group of its own so that, like a kernel mount, it outlives
//!   the agent (a restart finds the mount and leaves it).
//!
//! Either way the volume is a mount at the pod's volume directory, which teardown unmounts as
//! any other (the FUSE helper then exits by itself). A FUSE mount outlives its helper only as
//! a dead end (`ENOTCONN`), so each sync checks the helper runs — its pid file, written at
//! mount time, then /proc; never the mount itself, which could wait on the server — and
//! mounts again (lazily unmounting the dead one) when it does not. Failures are the `FailedMount` event's
//! message in upstream's `mount failed: …` shape, with the helper's reason (server
//! unreachable, export refused).

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use futures::future::BoxFuture;
use k8s_openapi::api::core::v1::{Pod, Volume};
use tokio::io::AsyncBufReadExt as _;
use tokio::process::Command;
use tracing::{info, warn};

use super::{VolumeHost, VolumePlugin, go_error};
use crate::events::EventTarget;

pub struct NfsPlugin;

/// What `rkube nfs-mount` prints on stdout once the FUSE mount is up.
pub const READY: &str = "mounted";
/// How long the helper may take to connect and mount (within the volume set-up's 30s).
const MOUNT_TIMEOUT: Duration = Duration::from_secs(20);

impl VolumePlugin for NfsPlugin {
    fn name(&self) -> &'static str {
        "kubernetes.io/nfs"
    }

    fn can_support(&self, v: &Volume) -> bool {
        v.nfs.is_some()
    }

    fn volume_read_only(&self, v: &Volume) -> bool {
        v.nfs.as_ref().and_then(|n| n.read_only).unwrap_or(false)
    }

    fn set_up<'a>(
        &'a self,
        host: &'a VolumeHost,
        pod: &'a Pod,
        v: &'a Volume,
        dir: &'a Path,
    ) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(async move {
            let Some(src) = &v.nfs else {
                return Err("nfs volume source is nil".into());
            };
            mount(
                host,
                (pod, &v.name),
                &src.server,
                &src.path,
                self.volume_read_only(v),
                &[],
                dir,
            )
            .await
        })
    }
}

/// Whether this kernel can mount NFS itself (and `mount.nfs` is there to do it).
pub fn kernel_nfs() -> bool {
    let fs = std::fs::read_to_string("/proc/filesystems").unwrap_or_default();
    let has_fs = fs
        .lines()
        .any(|l| l.split_whitespace().last() == Some("nfs"));
    has_fs
        && ["/sbin/mount.nfs", "/usr/sbin/mount.nfs"]
            .iter()
            .any(|p| Path::new(p).exists())
}

/// The `-o` list of a mount: the volume's options, plus `ro` for a read-only volume.
pub fn mount_options(read_only: bool, options: &[String]) -> Vec<String> {
    let mut out: Vec<String> = options.iter().filter(|o| !o.is_empty()).cloned().collect();
    if read_only && !out.iter().any(|o| o == "ro") {
        out.push("ro".into());
    }
    out
}

/// `server:path` as mount takes it (an IPv6 server in brackets).
pub fn source(server: &str, path: &str) -> String {
    if server.contains(':') && !server.starts_with('[') {
        format!("[{server}]:{path}")
    } else {
        format!("{server}:{path}")
    }
}

/// What is at a volume's directory, known from mountinfo and the process table alone:
/// nothing under the mount is touched, so a server that does not answer cannot hold the
/// pod's worker, and a live helper whose server is down counts as serving.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MountState {
    /// Nothing mounted there.
    Unmounted,
    /// A mount (kernel NFS, a bind, or a FUSE mount whose helper runs).
    Mounted,
    /// A FUSE NFS mount whose `rkube nfs-mount` helper is gone: every access fails with
    /// `ENOTCONN` until it is unmounted.
    HelperGone { source: String },
}

/// The state of the mount at `dir` (see [`MountState`]).
pub fn mount_state(host: &VolumeHost, dir: &Path) -> MountState {
    state_of(dir, &helper_file(host, dir, "pid"))
}

/// [`mount_state`] with the helper's pid file at `pid_file`.
fn state_of(dir: &Path, pid_file: &Path) -> MountState {
    let Some((fs_type, source)) = super::mounted_fs(dir) else {
        return MountState::Unmounted;
    };
    // Ours as the helper mounts: type `fuse` as root, `fuse.rkube-nfs` through fusermount3.
    let fuse = fs_type == "fuse" || fs_type == format!("fuse.{FUSE_SUBTYPE}");
    if !fuse || helper_alive(pid_file, dir) {
        return MountState::Mounted;
    }
    MountState::HelperGone { source }
}

/// The FUSE subtype `rkube nfs-mount` mounts with (the `nfs` crate's `SUBTYPE`).
const FUSE_SUBTYPE: &str = "rkube-nfs";

/// Whether an `rkube nfs-mount` process serving `dir` runs: the one the pid file names, else
/// any (a mount made before pid files were written); one found is remembered.
fn helper_alive(pid_file: &Path, dir: &Path) -> bool {
    let names = dir_names(dir);
    let recorded = std::fs::read_to_string(pid_file)
        .ok()
        .and_then(|s| s.trim().parse::<u32>().ok());
    if recorded.is_some_and(|pid| serves(pid, &names)) {
        return true;
    }
    let found = std::fs::read_dir("/proc").ok().and_then(|rd| {
        rd.flatten()
            .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
            .find(|&pid| serves(pid, &names))
    });
    match found {
        Some(pid) => {
            let _ = std::fs::write(pid_file, format!("{pid}\n"));
            true
        }
        None => false,
    }
}

/// The names a helper may have been given for `dir`: as the kubelet spells it, and with its
/// parent resolved (the data dir reached through a symlink by an earlier kubelet).
fn dir_names(dir: &Path) -> Vec<PathBuf> {
    let mut names = vec![dir.to_owned()];
    if let Some(r) = dir
        .parent()
        .and_then(|p| p.canonicalize().ok())
        .zip(dir.file_name())
        .map(|(p, n)| p.join(n))
        .filter(|r| r != dir)
    {
        names.push(r);
    }
    names
}

/// Whether process `pid` is an `rkube nfs-mount` serving one of `names` (its last argument).
/// A zombie has no command line, so a helper that died and was not reaped yet counts as gone.
fn serves(pid: u32, names: &[PathBuf]) -> bool {
    std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|cmd| is_helper_of(&cmd, names))
}

/// Whether `cmdline` (NUL-separated, as /proc has it) is `… nfs-mount … DIR`.
fn is_helper_of(cmdline: &[u8], names: &[PathBuf]) -> bool {
    let args: Vec<&[u8]> = cmdline
        .split(|b| *b == 0)
        .filter(|a| !a.is_empty())
        .collect();
    args.contains(&b"nfs-mount".as_slice())
        && args.last().is_some_and(|last| {
            names
                .iter()
                .any(|n| *last == n.as_os_str().as_encoded_bytes())
        })
}

/// Mounts `server:path` at `dir` unless it is mounted already; idempotent. A FUSE mount
/// whose helper died is unmounted and mounted again, with a `VolumeRemounted` event on the
/// pod (`volume` is the pod's name for it).
pub async fn mount(
    host: &VolumeHost,
    (pod, volume): (&Pod, &str),
    server: &str,
    path: &str,
    read_only: bool,
    options: &[String],
    dir: &Path,
) -> Result<(), String> {
    let mut repaired = None;
    match mount_state(host, dir) {
        MountState::Mounted => return Ok(()),
        MountState::Unmounted => {}
        MountState::HelperGone { source } => {
            // Lazily, as `fusermount3 -uz`: processes still in the dead mount keep it (and
            // their ENOTCONN) while the directory is free for the new mount.
            warn!(dir = %dir.display(), %source, "the NFS mount's client (rkube nfs-mount) is gone; mounting again");
            super::umount(dir)
                .map_err(|e| format!("unmount {}: {}", dir.display(), go_error(&e)))?;
            repaired = Some(source);
        }
    }
    std::fs::create_dir_all(dir)
        .map_err(|e| format!("mkdir {}: {}", dir.display(), go_error(&e)))?;
    let src = source(server, path);
    let opts = mount_options(read_only, options);
    let kernel = kernel_nfs();
    let log = helper_file(host, dir, "log");
    let (command, mut args) = if kernel {
        ("mount".to_owned(), vec!["-t".to_owned(), "nfs".to_owned()])
    } else {
        let exe = std::env::current_exe()
            .map_err(|e| format!("finding the rkube binary: {}", go_error(&e)))?;
        (exe.display().to_string(), vec!["nfs-mount".to_owned()])
    };
    if !opts.is_empty() {
        args.extend(["-o".to_owned(), opts.join(",")]);
    }
    if !kernel {
        args.extend(["--log-file".to_owned(), log.display().to_string()]);
    }
    args.extend([src.clone(), dir.display().to_string()]);
    let result = if kernel {
        run_mount(&args).await
    } else {
        run_helper(&command, &args, &log)
            .await
            .map(|pid| write_pid_file(host, dir, pid))
    };
    match result {
        Ok(()) => {
            info!(source = %src, dir = %dir.display(), read_only, via = %command, "NFS volume mounted");
            if let Some(old) = repaired {
                info!(volume, source = %old, dir = %dir.display(), "NFS volume remounted after its client died");
                EventTarget::pod(&host.events, pod).warning(
                    "VolumeRemounted",
                    format!(
                        "MountVolume.SetUp remounted volume {volume:?} ({old}): its NFS client (rkube nfs-mount) had exited, leaving the mount unusable (transport endpoint is not connected). Containers started before keep the broken mount until they restart"
                    ),
                );
            }
            Ok(())
        }
        Err(output) => {
            // Upstream's shape: the exit status, then the command and what it printed.
            let (status, output) = output.split_once('\n').unwrap_or((&output, ""));
            Err(format!(
                "mount failed: {status}\nMounting command: {command}\nMounting arguments: {}\nOutput: {output}",
                args.join(" ")
            ))
        }
    }
}

/// The FUSE helper's files under the agent's directory, named for the mount point: its log
/// (`log`, which the helper removes when the mount ends) and its pid (`pid`, the kubelet's).
fn helper_file(host: &VolumeHost, dir: &Path, ext: &str) -> PathBuf {
    let name = dir
        .strip_prefix(&host.dirs.kubelet_pods)
        .unwrap_or(dir)
        .to_string_lossy()
        .replace('/', "_");
    host.dirs
        .agent
        .join("nfs-mounts")
        .join(format!("{name}.{ext}"))
}

/// Removes the pid files of helpers that no longer run (their mounts ended with their pods).
fn sweep_pid_files(dir: &Path) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    for e in rd.flatten() {
        let path = e.path();
        if path.extension().is_none_or(|x| x != "pid") {
            continue;
        }
        let alive = std::fs::read_to_string(&path)
            .ok()
            .and_then(|s| s.trim().parse::<u32>().ok())
            .and_then(|pid| std::fs::read(format!("/proc/{pid}/cmdline")).ok())
            .is_some_and(|cmd| cmd.split(|b| *b == 0).any(|a| a == b"nfs-mount"));
        if !alive {
            let _ = std::fs::remove_file(&path);
        }
    }
}

/// Records the helper serving `dir` (how [`mount_state`] tells a dead one at later syncs),
/// first removing the files of helpers gone with their mounts.
fn write_pid_file(host: &VolumeHost, dir: &Path, pid: Option<u32>) {
    let path = helper_file(host, dir, "pid");
    if let Some(parent) = path.parent() {
        sweep_pid_files(parent);
    }
    // Without one, the next sync looks the helper up in /proc (and writes it then).
    let Some(pid) = pid else { return };
    if let Err(e) = std::fs::write(&path, format!("{pid}\n")) {
        warn!(path = %path.display(), error = %e, "cannot record the NFS helper's pid");
    }
}

/// `mount -t nfs`; the error is `exit status N` then mount's output.
async fn run_mount(args: &[String]) -> Result<(), String> {
    let out = tokio::time::timeout(MOUNT_TIMEOUT, Command::new("mount").args(args).output())
        .await
        .map_err(|_| format!("timed out after {MOUNT_TIMEOUT:?}"))?
        .map_err(|e| format!("running mount: {}", go_error(&e)))?;
    if out.status.success() {
        return Ok(());
    }
    Err(format!(
        "exit status {}\n{}",
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).trim()
    ))
}

/// Spawns `rkube nfs-mount` and waits for it to report the mount (or to fail); on success it
/// keeps running, detached, serving the mount, and its pid is returned.
async fn run_helper(exe: &str, args: &[String], log: &Path) -> Result<Option<u32>, String> {
    if let Some(parent) = log.parent() {
        std::fs::create_dir_all(parent)
            .map_err(|e| format!("mkdir {}: {}", parent.display(), go_error(&e)))?;
    }
    let mut child = Command::new(exe)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        // Its own process group: signals meant for the agent (a restart) leave it serving.
        .process_group(0)
        .spawn()
        .map_err(|e| format!("running {exe}: {}", go_error(&e)))?;
    let Some(stdout) = child.stdout.take() else {
        return Err("the helper's stdout is not piped".into());
    };
    let mut lines = tokio::io::BufReader::new(stdout).lines();
    let first = tokio::time::timeout(MOUNT_TIMEOUT, lines.next_line()).await;
    if let Ok(Ok(Some(line))) = &first
        && line == READY
    {
        // Dropped without kill_on_drop: the helper goes on; tokio reaps it when it exits.
        return Ok(child.id());
    }
    if first.is_err() {
        let _ = child.start_kill();
    }
    let status = child
        .wait()
        .await
        .map(|s| format!("exit status {}", s.code().unwrap_or(-1)))
        .unwrap_or_else(|e| go_error(&e));
    let output = std::fs::read_to_string(log).unwrap_or_default();
    let _ = std::fs::remove_file(log);
    // The helper's last line is its error (`rkube: mounting …: …`).
    let reason = output
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("")
        .trim();
    let reason = if first.is_err() {
        format!("timed out after {MOUNT_TIMEOUT:?}")
    } else {
        reason.to_owned()
    };
    Err(format!("{status}\n{reason}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_and_sources_read_as_mount_takes_them() {
        assert_eq!(
            mount_options(true, &["nfsvers=3".into(), "".into()]),
            ["nfsvers=3", "ro"]
        );
        assert_eq!(mount_options(true, &["ro".into()]), ["ro"]);
        assert!(mount_options(false, &[]).is_empty());
        assert_eq!(source("10.0.0.1", "/export"), "10.0.0.1:/export");
        assert_eq!(source("fd00::1", "/e"), "[fd00::1]:/e");
        let v: Volume = serde_json::from_value(serde_json::json!({"name": "n",
            "nfs": {"server": "10.0.0.1", "path": "/e", "readOnly": true}}))
        .unwrap_or_default();
        assert!(NfsPlugin.can_support(&v) && NfsPlugin.volume_read_only(&v));
    }

    #[test]
    fn mounts_are_found_in_mountinfo() -> anyhow::Result<()> {
        let tmp = tempfile::tempdir()?;
        let pid_file = tmp.path().join("x.pid");
        // Not FUSE: mounted, whatever runs.
        assert_eq!(state_of(Path::new("/proc"), &pid_file), MountState::Mounted);
        assert_eq!(state_of(tmp.path(), &pid_file), MountState::Unmounted);
        assert_eq!(
            state_of(&tmp.path().join("missing"), &pid_file),
            MountState::Unmounted
        );
        Ok(())
    }

    #[test]
    fn helpers_are_known_by_their_command_line() {
        let dir = Path::new("/no/such/pods/u/volumes/kubernetes.io~nfs/data");
        let names = dir_names(dir);
        let cmd = |args: &[&str]| args.join("\0").into_bytes();
        assert!(is_helper_of(
            &cmd(&[
                "/usr/bin/rkube",
                "nfs-mount",
                "-o",
                "ro",
                "10.0.0.1:/e",
                &dir.to_string_lossy(),
                ""
            ]),
            &names
        ));
        // Another mount's helper, another program, a zombie (empty command line).
        assert!(!is_helper_of(
            &cmd(&[
                "/usr/bin/rkube",
                "nfs-mount",
                "10.0.0.1:/e",
                "/no/such/other"
            ]),
            &names
        ));
        assert!(!is_helper_of(
            &cmd(&["sleep", &dir.to_string_lossy()]),
            &names
        ));
        assert!(!is_helper_of(b"", &names));
    }

    #[test]
    fn a_helper_given_the_resolved_path_is_known() -> anyhow::Result<()> {
        let tmp = tempfile::tempdir()?;
        let real = tmp.path().canonicalize()?.join("real");
        std::fs::create_dir(&real)?;
        std::os::unix::fs::symlink(&real, tmp.path().join("link"))?;
        let dir = tmp.path().join("link/data");
        let cmd = format!("rkube\0nfs-mount\0s:/e\0{}\0", real.join("data").display());
        assert!(is_helper_of(cmd.as_bytes(), &dir_names(&dir)));
        Ok(())
    }

    #[test]
    fn a_running_helper_counts_as_alive_and_a_dead_one_not() -> anyhow::Result<()> {
        let tmp = tempfile::tempdir()?;
        let dir = tmp.path().join("data");
        let pid_file = tmp.path().join("data.pid");
        // A stand-in helper: only its command line and liveness matter, never its mount (so a
        // live helper with an unanswering server is alive).
        let mut child = std::process::Command::new("sh")
            .args(["-c", "sleep 30; :", "nfs-mount", "10.0.0.1:/e"])
            .arg(&dir)
            .spawn()?;
        // Until the child has exec'd, /proc shows the test's command line.
        for _ in 0..200 {
            if serves(child.id(), &dir_names(&dir)) {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        // No pid file: found in /proc, and remembered.
        let found = helper_alive(&pid_file, &dir);
        let recorded = std::fs::read_to_string(&pid_file).unwrap_or_default();
        // A pid file naming another process: found in /proc again.
        std::fs::write(&pid_file, format!("{}\n", std::process::id()))?;
        let found_again = helper_alive(&pid_file, &dir);
        child.kill()?;
        child.wait()?;
        assert!(found && found_again);
        assert_eq!(recorded.trim(), child.id().to_string());
        assert!(!helper_alive(&pid_file, &dir));
        // Swept once dead; a live helper's file stays.
        sweep_pid_files(tmp.path());
        assert!(!pid_file.exists());
        Ok(())
    }
}
