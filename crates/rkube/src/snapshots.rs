//! Scheduled snapshots of the SQLite store (k3s takes etcd snapshots every 12 hours and keeps
//! the newest 5): `scheduled-<unix seconds>.db` in the snapshot directory, taken online with
//! `rkube datastore snapshot`'s code, the oldest scheduled ones beyond the retention removed.

use std::path::{Path, PathBuf};
use std::time::Duration;

use store::sqlite_backup;

#[derive(clap::Args, Clone)]
pub struct SnapshotArgs {
    /// How often the SQLite store is snapshotted (Go duration; 0 turns it off).
    #[arg(long, default_value = "12h", value_parser = parse_interval)]
    datastore_snapshot_interval: Duration,
    /// How many scheduled snapshots are kept.
    #[arg(long, default_value_t = 5)]
    datastore_snapshot_retention: usize,
    /// Where snapshots go (default: <data-dir>/db/snapshots).
    #[arg(long)]
    datastore_snapshot_dir: Option<PathBuf>,
}

fn parse_interval(s: &str) -> Result<Duration, String> {
    common::duration::parse_go(s).ok_or_else(|| format!("{s:?} is not a duration (e.g. 12h, 30m)"))
}

impl SnapshotArgs {
    /// Snapshots `db` on schedule for as long as the runtime runs (nothing when off).
    pub fn spawn(&self, db: PathBuf, data_dir: &Path) {
        if self.datastore_snapshot_interval.is_zero() {
            return;
        }
        let dir = self
            .datastore_snapshot_dir
            .clone()
            .unwrap_or_else(|| data_dir.join("db").join("snapshots"));
        let (every, keep) = (
            self.datastore_snapshot_interval,
            self.datastore_snapshot_retention,
        );
        tokio::spawn(async move {
            let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
            loop {
                tick.tick().await;
                let (db, dir) = (db.clone(), dir.clone());
                match tokio::task::spawn_blocking(move || take(&db, &dir, keep)).await {
                    Ok(Ok(path)) => {
                        tracing::info!(path = %path.display(), "datastore snapshot saved")
                    }
                    Ok(Err(e)) => tracing::warn!(error = %e, "scheduled datastore snapshot failed"),
                    Err(e) => tracing::warn!(error = %e, "scheduled datastore snapshot panicked"),
                }
            }
        });
    }
}

/// One scheduled snapshot, then the retention.
fn take(db: &Path, dir: &Path, keep: usize) -> anyhow::Result<PathBuf> {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_secs();
    let info = sqlite_backup::snapshot(db, &dir.join(format!("scheduled-{secs}.db")))?;
    prune(dir, keep)?;
    Ok(info.path)
}

/// Removes the oldest `scheduled-*.db` beyond `keep` (on-demand snapshots are the user's).
fn prune(dir: &Path, keep: usize) -> anyhow::Result<()> {
    let mut scheduled: Vec<(u64, PathBuf)> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter_map(|p| {
            let name = p.file_name()?.to_str()?;
            let secs = name
                .strip_prefix("scheduled-")?
                .strip_suffix(".db")?
                .parse()
                .ok()?;
            Some((secs, p))
        })
        .collect();
    scheduled.sort();
    let extra = scheduled.len().saturating_sub(keep);
    for (_, path) in scheduled.into_iter().take(extra) {
        std::fs::remove_file(&path)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn only_the_newest_scheduled_snapshots_stay() {
        let dir = tempfile::tempdir().unwrap();
        for name in [
            "scheduled-100.db",
            "scheduled-300.db",
            "scheduled-200.db",
            "on-demand-1.db",
        ] {
            std::fs::write(dir.path().join(name), "").unwrap();
        }
        prune(dir.path(), 2).unwrap();
        let mut left: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        left.sort();
        assert_eq!(
            left,
            ["on-demand-1.db", "scheduled-200.db", "scheduled-300.db"]
        );
    }
}
