//! `rkube server --cluster-reset [--cluster-reset-restore-path FILE]`, as k3s: this server's
//! member becomes the only member of a new cluster — its own data kept (etcd's
//! `--force-new-cluster`, one start), or a snapshot's, restored with `etcdctl snapshot
//! restore` into a new data directory (the old one moved aside to `db/etcd-old-<unix
//! seconds>`). The member is started once to check that it serves alone, then stopped: the
//! server exits and is restarted without the flag.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};

use super::supervise::{self, CLIENT_PORT, MemberConfig, Supervisor};
use super::{etcd_dir, member};

/// How long the reset member may take to serve.
const SERVE_WITHIN: Duration = Duration::from_secs(120);

/// What a reset did, for the message the server prints.
pub struct Reset {
    /// Where the replaced member data went (a restore).
    pub old: Option<PathBuf>,
}

/// Resets this server's membership (see the module's doc); `ip` is its peer address.
pub async fn run(data_dir: &Path, ip: IpAddr, restore: Option<&Path>) -> anyhow::Result<Reset> {
    let dir = etcd_dir(data_dir);
    if super::migrate::pending(data_dir, &dir) {
        return Err(supervise::sqlite_refused(
            data_dir,
            "--cluster-reset has no etcd member to reset: start with --cluster-init (without \
             --cluster-reset) to convert it into a managed etcd first",
        ));
    }
    // Moving the data of a running member aside would lose its writes.
    let loopback = SocketAddr::new(IpAddr::from([127, 0, 0, 1]), CLIENT_PORT);
    if std::net::TcpStream::connect_timeout(&loopback, Duration::from_secs(1)).is_ok() {
        bail!("an etcd member answers on {loopback}: stop the server before --cluster-reset");
    }
    let old = match restore {
        Some(file) => restore_snapshot(data_dir, ip, file)?,
        None if !dir.join("member").exists() => bail!(
            "--cluster-reset: {} holds no etcd member to reset (give --cluster-reset-restore-path \
             to restore a snapshot)",
            dir.display()
        ),
        None => None,
    };
    let (pki, mut config) = super::prepare(data_dir, ip)?;
    // A restored member is already alone in its cluster; one with its old data forgets the
    // others' membership now.
    config.force_new_cluster = restore.is_none();
    let name = config.name.clone();
    let supervisor = Supervisor::start(config)?;
    let alone = serves_alone(&pki, &name).await;
    supervisor.stop().await;
    alone.with_context(|| {
        format!(
            "the reset etcd member did not serve (its log: {})",
            data_dir.join("db").join("etcd.log").display()
        )
    })?;
    tracing::info!(member = %name, "etcd cluster reset to this member");
    Ok(Reset { old })
}

/// Restores `file` into a new member directory for this member alone; the old directory is
/// moved aside only once etcdctl has restored the snapshot, so a missing or corrupt snapshot
/// leaves it as it was.
fn restore_snapshot(data_dir: &Path, ip: IpAddr, file: &Path) -> anyhow::Result<Option<PathBuf>> {
    let meta = std::fs::metadata(file)
        .with_context(|| format!("the snapshot to restore, {}", file.display()))?;
    if !meta.is_file() {
        bail!("the snapshot to restore, {}, is not a file", file.display());
    }
    let etcdctl = supervise::etcdctl_binary()?;
    let dir = etcd_dir(data_dir);
    let db = data_dir.join("db");
    std::fs::create_dir_all(&db).with_context(|| format!("creating {}", db.display()))?;
    // The member keeps its name (a new one if it had none).
    let name = match std::fs::read_to_string(dir.join("name")) {
        Ok(n) if !n.trim().is_empty() => n.trim().to_string(),
        _ => super::new_member_name(),
    };
    let secs = crate::snapshots::unix_now();
    let staging = db.join(format!("etcd-restore-{secs}"));
    // A leftover of an interrupted restore: etcdctl refuses an existing directory.
    if staging.exists() {
        std::fs::remove_dir_all(&staging)
            .with_context(|| format!("removing {}", staging.display()))?;
    }
    let peer = MemberConfig::peer_url(ip);
    let out = std::process::Command::new(&etcdctl)
        .env("ETCDCTL_API", "3")
        .arg("snapshot")
        .arg("restore")
        .arg(file)
        .arg(format!("--data-dir={}", staging.display()))
        .arg(format!("--name={name}"))
        .arg(format!(
            "--initial-cluster={}",
            member::self_entry(&name, ip)
        ))
        .arg(format!("--initial-advertise-peer-urls={peer}"))
        .output()
        .with_context(|| format!("running {}", etcdctl.display()))?;
    if !out.status.success() {
        let _ = std::fs::remove_dir_all(&staging);
        let err = String::from_utf8_lossy(&out.stderr);
        // etcdctl's zap log lines come first; its error is the last line.
        let last = err
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("");
        bail!(
            "restoring {} failed ({}): {}; the member data in {} is unchanged",
            file.display(),
            out.status,
            last.trim(),
            dir.display()
        );
    }
    std::fs::write(staging.join("name"), &name)
        .with_context(|| format!("writing {}", staging.join("name").display()))?;
    let old = if dir.exists() {
        let old = db.join(format!("etcd-old-{secs}"));
        std::fs::rename(&dir, &old)
            .with_context(|| format!("moving {} to {}", dir.display(), old.display()))?;
        tracing::info!(old = %old.display(), "previous etcd member data moved aside");
        Some(old)
    } else {
        None
    };
    std::fs::rename(&staging, &dir)
        .with_context(|| format!("moving {} to {}", staging.display(), dir.display()))?;
    tracing::info!(snapshot = %file.display(), member = %name, "etcd snapshot restored");
    Ok(old)
}

/// Waits until the member answers and lists itself as the only member.
async fn serves_alone(pki: &apiserver::pki::Pki, name: &str) -> anyhow::Result<()> {
    let endpoint = MemberConfig::client_url(IpAddr::from([127, 0, 0, 1]));
    let deadline = tokio::time::Instant::now() + SERVE_WITHIN;
    loop {
        let listed = async {
            let mut client = member::connect(std::slice::from_ref(&endpoint), pki).await?;
            let list = client.member_list().await.context("listing etcd members")?;
            anyhow::Ok(
                list.members()
                    .iter()
                    .map(|m| m.name().to_string())
                    .collect::<Vec<_>>(),
            )
        }
        .await;
        match listed {
            Ok(names) if names == [name] => return Ok(()),
            // Not serving yet, or not yet published its name.
            r if tokio::time::Instant::now() < deadline => {
                if let Err(e) = r {
                    tracing::debug!(error = %format!("{e:#}"), "reset etcd member not serving yet");
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            Ok(names) => bail!("after the reset etcd lists members {names:?}, not {name:?} alone"),
            Err(e) => return Err(e),
        }
    }
}
