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
//! any other (the FUSE helper then exits by itself). Failures are the `FailedMount` event's
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
        _pod: &'a Pod,
        v: &'a Volume,
        dir: &'a Path,
    ) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(async move {
            let Some(src) = &v.nfs else {
                return Err("nfs volume source is nil".into());
            };
            mount(
                host,
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

/// Mounts `server:path` at `dir` unless it is mounted already; idempotent.
pub async fn mount(
    host: &VolumeHost,
    server: &str,
    path: &str,
    read_only: bool,
    options: &[String],
    dir: &Path,
) -> Result<(), String> {
    if mounted_at(dir) {
        if !client_gone(dir).await {
            return Ok(());
        }
        // A FUSE mount whose helper died: unmount it and mount again (for containers started
        // from now on; running ones keep the dead mount, as with a kernel mount gone stale).
        warn!(dir = %dir.display(), "NFS mount lost its client; mounting again");
        super::umount(dir).map_err(|e| format!("unmount {}: {}", dir.display(), go_error(&e)))?;
    }
    std::fs::create_dir_all(dir)
        .map_err(|e| format!("mkdir {}: {}", dir.display(), go_error(&e)))?;
    let src = source(server, path);
    let opts = mount_options(read_only, options);
    let kernel = kernel_nfs();
    let log = helper_log(host, dir);
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
        run_helper(&command, &args, &log).await
    };
    match result {
        Ok(()) => {
            info!(source = %src, dir = %dir.display(), read_only, via = %command, "NFS volume mounted");
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

/// Whether something is mounted at `dir`, from mountinfo alone: nothing under `dir` is
/// looked at, so a server that does not answer cannot hold the pod's worker here.
pub fn mounted_at(dir: &Path) -> bool {
    let (Some(parent), Some(name)) = (dir.parent(), dir.file_name()) else {
        return false;
    };
    let Ok(parent) = parent.canonicalize() else {
        return false;
    };
    let p = parent.join(name);
    super::mounts_under(&p).contains(&p)
}

/// Whether the FUSE mount at `dir` lost its client (`ENOTCONN`); a stat that takes long
/// (a slow server) counts as alive.
async fn client_gone(dir: &Path) -> bool {
    let d = dir.to_owned();
    let stat = tokio::task::spawn_blocking(move || std::fs::metadata(d).err());
    match tokio::time::timeout(Duration::from_secs(2), stat).await {
        Ok(Ok(Some(e))) => e.raw_os_error() == Some(libc::ENOTCONN),
        _ => false,
    }
}

/// Where the FUSE helper logs (under the agent's directory, named for the mount point). The
/// helper removes it when the mount ends.
fn helper_log(host: &VolumeHost, dir: &Path) -> PathBuf {
    let name = dir
        .strip_prefix(&host.dirs.kubelet_pods)
        .unwrap_or(dir)
        .to_string_lossy()
        .replace('/', "_");
    host.dirs
        .agent
        .join("nfs-mounts")
        .join(format!("{name}.log"))
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
/// keeps running, detached, serving the mount.
async fn run_helper(exe: &str, args: &[String], log: &Path) -> Result<(), String> {
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
        return Ok(());
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
        assert!(mounted_at(Path::new("/proc")));
        let tmp = tempfile::tempdir()?;
        assert!(!mounted_at(tmp.path()));
        assert!(!mounted_at(&tmp.path().join("missing")));
        Ok(())
    }
}
