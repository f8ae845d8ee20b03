//! Snapshots of the managed etcd, as k3s' `k3s etcd-snapshot save|ls|delete|prune` and its
//! scheduled snapshots: run on a server, against its own member (`https://127.0.0.1:2379`
//! with the member's certificate), into `<data-dir>/db/snapshots` by default, named
//! `<name>-<node>-<unix seconds>` (scheduled ones `etcd-snapshot-<node>-<unix seconds>`).
//! A snapshot is etcd's own (the maintenance Snapshot API, what `etcdctl snapshot save`
//! writes), so `etcdctl snapshot restore` and `rkube server --cluster-reset
//! --cluster-reset-restore-path` read it.

use std::io::Write;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Subcommand;

use super::supervise::MemberConfig;
use crate::snapshots;

/// The name scheduled snapshots take (k3s' `--etcd-snapshot-name` default).
const SCHEDULED_NAME: &str = "etcd-snapshot";

#[derive(Subcommand)]
pub enum Command {
    /// Save a snapshot of this server's etcd member now:
    /// `<dir>/<name>-<node>-<unix seconds>`.
    Save {
        #[command(flatten)]
        common: Common,
        /// The snapshot's name (before the node and the timestamp).
        #[arg(long, default_value = "on-demand")]
        name: String,
    },
    /// List the snapshots in the snapshot directory: name, location, size, created.
    #[command(alias = "list")]
    Ls {
        #[command(flatten)]
        common: Common,
    },
    /// Delete snapshots by name.
    Delete {
        #[command(flatten)]
        common: Common,
        /// Snapshot names, as `ls` prints them.
        #[arg(required = true)]
        names: Vec<String>,
    },
    /// Remove the oldest snapshots named `<name>-<node>-*` beyond the retention.
    Prune {
        #[command(flatten)]
        common: Common,
        /// Which snapshots: those saved with this name.
        #[arg(long, default_value = "on-demand")]
        name: String,
        /// How many of them are kept.
        #[arg(long, alias = "etcd-snapshot-retention", default_value_t = 5)]
        snapshot_retention: usize,
    },
}

#[derive(clap::Args)]
pub struct Common {
    /// The server's data directory (its etcd member's certificates are there).
    #[arg(long, env = "RKUBE_DATA_DIR", default_value = "/var/lib/rkube/server")]
    data_dir: PathBuf,
    /// The snapshot directory (default: <data-dir>/db/snapshots).
    #[arg(long, alias = "etcd-snapshot-dir")]
    dir: Option<PathBuf>,
    /// The node name in snapshot names (default: the hostname, as the server's node).
    #[arg(long)]
    node_name: Option<String>,
}

impl Common {
    fn dir(&self) -> PathBuf {
        self.dir
            .clone()
            .unwrap_or_else(|| snapshots::default_dir(&self.data_dir))
    }

    fn node(&self) -> String {
        node_name(self.node_name.as_deref(), &self.data_dir)
    }
}

/// The server's node name, which snapshot names carry.
pub fn node_name(given: Option<&str>, data_dir: &Path) -> String {
    kubelet::config::KubeletConfig::new(given, data_dir).node_name
}

/// `rkube server`'s scheduled snapshots of its managed etcd member.
#[derive(clap::Args, Clone)]
pub struct ScheduleArgs {
    /// How often the managed etcd is snapshotted (Go duration; 0 turns it off).
    #[arg(long, default_value = "12h", value_parser = snapshots::parse_interval)]
    etcd_snapshot_interval: Duration,
    /// How many scheduled etcd snapshots are kept.
    #[arg(long, default_value_t = 5)]
    etcd_snapshot_retention: usize,
    /// Where etcd snapshots go (default: <data-dir>/db/snapshots).
    #[arg(long)]
    etcd_snapshot_dir: Option<PathBuf>,
}

impl ScheduleArgs {
    /// Snapshots the member on schedule for as long as the runtime runs (nothing when off).
    pub fn spawn(&self, data_dir: &Path, node: &str) {
        let dir = self
            .etcd_snapshot_dir
            .clone()
            .unwrap_or_else(|| snapshots::default_dir(data_dir));
        let data_dir = data_dir.to_path_buf();
        let keep = self.etcd_snapshot_retention;
        let prefix = format!("{SCHEDULED_NAME}-{node}-");
        snapshots::every(self.etcd_snapshot_interval, "etcd", move || {
            let (data_dir, dir, prefix) = (data_dir.clone(), dir.clone(), prefix.clone());
            async move {
                let saved = save(&data_dir, &dir, &prefix).await?;
                snapshots::prune(&dir, &prefix, "", keep)?;
                Ok(saved.0)
            }
        });
    }
}

pub fn run(cmd: Command) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    match cmd {
        Command::Save { common, name } => {
            let prefix = format!("{name}-{}-", common.node());
            let (path, bytes) = tokio::runtime::Runtime::new()
                .context("starting the runtime")?
                .block_on(save(&common.data_dir, &common.dir(), &prefix))?;
            writeln!(out, "Snapshot saved: {} ({bytes} bytes)", path.display())?;
        }
        Command::Ls { common } => {
            let files = snapshots::list(&common.dir())?;
            let rows: Vec<[String; 4]> = files
                .iter()
                .map(|f| {
                    [
                        f.name.clone(),
                        format!("file://{}", f.path.display()),
                        f.size.to_string(),
                        rfc3339(f.created),
                    ]
                })
                .collect();
            let header = ["Name", "Location", "Size", "Created"].map(String::from);
            let mut widths = [0; 4];
            for row in std::iter::once(&header).chain(&rows) {
                for (w, cell) in widths.iter_mut().zip(row) {
                    *w = (*w).max(cell.len());
                }
            }
            for row in std::iter::once(&header).chain(&rows) {
                let line = format!(
                    "{:w0$} {:w1$} {:w2$} {}",
                    row[0],
                    row[1],
                    row[2],
                    row[3],
                    w0 = widths[0],
                    w1 = widths[1],
                    w2 = widths[2]
                );
                writeln!(out, "{}", line.trim_end())?;
            }
        }
        Command::Delete { common, names } => {
            let dir = common.dir();
            let mut missing = Vec::new();
            for name in &names {
                if name.is_empty() || name.starts_with('.') || name.contains('/') {
                    bail!("{name:?} is not a snapshot name (`rkube etcd-snapshot ls` lists them)");
                }
                let path = dir.join(name);
                match std::fs::remove_file(&path) {
                    Ok(()) => writeln!(out, "Snapshot {name} deleted")?,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => missing.push(name),
                    Err(e) => {
                        return Err(e).with_context(|| format!("removing {}", path.display()));
                    }
                }
            }
            if !missing.is_empty() {
                bail!("no snapshot {missing:?} in {}", dir.display());
            }
        }
        Command::Prune {
            common,
            name,
            snapshot_retention,
        } => {
            let prefix = format!("{name}-{}-", common.node());
            for path in snapshots::prune(&common.dir(), &prefix, "", snapshot_retention)? {
                writeln!(out, "Snapshot {} pruned", path.display())?;
            }
        }
    }
    Ok(())
}

fn rfc3339(t: std::time::SystemTime) -> String {
    time::OffsetDateTime::from(t)
        .replace_nanosecond(0)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default()
}

/// Saves a snapshot of the member of the server in `data_dir` as
/// `<dir>/<prefix><unix seconds>`: the path and its size. Streamed into a hidden file that is
/// synced, then renamed: a crash or a failed stream never leaves a partial snapshot under a
/// snapshot's name.
pub async fn save(data_dir: &Path, dir: &Path, prefix: &str) -> anyhow::Result<(PathBuf, u64)> {
    let endpoint = MemberConfig::client_url(IpAddr::from([127, 0, 0, 1]));
    let pki = apiserver::pki::Pki::new(data_dir);
    let mut client = super::member::connect(std::slice::from_ref(&endpoint), &pki)
        .await
        .with_context(|| {
            format!(
                "is a server with a managed etcd (--cluster-init) running on {}?",
                data_dir.display()
            )
        })?;
    create_private_dir(dir)?;
    let name = format!("{prefix}{}", snapshots::unix_now());
    let path = dir.join(&name);
    if path.exists() {
        bail!("{} exists already", path.display());
    }
    let part = dir.join(format!(".{name}.part"));
    let written = async {
        let mut stream = client
            .snapshot()
            .await
            .with_context(|| format!("asking {endpoint} for a snapshot"))?;
        let mut file = open_private(&part).await?;
        let mut bytes = 0u64;
        while let Some(chunk) = stream
            .message()
            .await
            .context("reading the snapshot stream")?
        {
            tokio::io::AsyncWriteExt::write_all(&mut file, chunk.blob())
                .await
                .with_context(|| format!("writing {}", part.display()))?;
            bytes += chunk.blob().len() as u64;
        }
        if bytes == 0 {
            bail!("etcd sent an empty snapshot");
        }
        file.sync_all()
            .await
            .with_context(|| format!("syncing {}", part.display()))?;
        Ok(bytes)
    }
    .await;
    let bytes = match written {
        Ok(b) => b,
        Err(e) => {
            let _ = std::fs::remove_file(&part);
            return Err(e);
        }
    };
    std::fs::rename(&part, &path).with_context(|| format!("renaming to {}", path.display()))?;
    super::sync_dir(dir)?;
    tracing::info!(path = %path.display(), bytes, "etcd snapshot saved");
    Ok((path, bytes))
}

/// Snapshots hold every Secret: their directory is the owner's only (k3s makes it 0700).
fn create_private_dir(dir: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    if dir.is_dir() {
        return Ok(());
    }
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .with_context(|| format!("creating {}", dir.display()))
}

async fn open_private(path: &Path) -> anyhow::Result<tokio::fs::File> {
    tokio::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .await
        .with_context(|| format!("creating {}", path.display()))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn created_is_rfc3339_in_utc() {
        let t = std::time::UNIX_EPOCH + Duration::from_millis(1_700_000_000_500);
        assert_eq!(rfc3339(t), "2023-11-14T22:13:20Z");
    }
}
