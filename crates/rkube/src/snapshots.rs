//! Snapshot directories, shared by the SQLite store's snapshots and the managed etcd's
//! (`rkube etcd-snapshot`): listing, the retention (k3s takes etcd snapshots every 12 hours
//! and keeps the newest 5) and the schedule. Scheduled SQLite snapshots are
//! `scheduled-<unix seconds>.db` in the snapshot directory, taken online with `rkube
//! datastore snapshot`'s code, the oldest scheduled ones beyond the retention removed.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use anyhow::Context;
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

pub fn parse_interval(s: &str) -> Result<Duration, String> {
    common::duration::parse_go(s).ok_or_else(|| format!("{s:?} is not a duration (e.g. 12h, 30m)"))
}

/// `<data-dir>/db/snapshots`: where snapshots go unless a flag says otherwise (k3s' place).
pub fn default_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("db").join("snapshots")
}

pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default()
}

impl SnapshotArgs {
    /// Snapshots `db` on schedule for as long as the runtime runs (nothing when off).
    pub fn spawn(&self, db: PathBuf, data_dir: &Path) {
        let dir = self
            .datastore_snapshot_dir
            .clone()
            .unwrap_or_else(|| default_dir(data_dir));
        let keep = self.datastore_snapshot_retention;
        every(self.datastore_snapshot_interval, "datastore", move || {
            let (db, dir) = (db.clone(), dir.clone());
            async move {
                tokio::task::spawn_blocking(move || take(&db, &dir, keep))
                    .await
                    .context("the snapshot task")?
            }
        });
    }
}

/// Runs `take` every `interval` (the first one interval after the start) for as long as the
/// runtime runs; nothing when `interval` is zero. `what` names the store in the logs.
pub fn every<F, Fut>(interval: Duration, what: &'static str, mut take: F)
where
    F: FnMut() -> Fut + Send + 'static,
    Fut: std::future::Future<Output = anyhow::Result<PathBuf>> + Send,
{
    if interval.is_zero() {
        return;
    }
    tokio::spawn(async move {
        let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
        // A snapshot that took longer than the interval is not followed by a burst.
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            match take().await {
                Ok(path) => tracing::info!(path = %path.display(), "{what} snapshot saved"),
                Err(e) => {
                    tracing::warn!(error = %format!("{e:#}"), "scheduled {what} snapshot failed")
                }
            }
        }
    });
}

/// One scheduled snapshot, then the retention.
fn take(db: &Path, dir: &Path, keep: usize) -> anyhow::Result<PathBuf> {
    let info = sqlite_backup::snapshot(db, &dir.join(format!("scheduled-{}.db", unix_now())))?;
    prune(dir, "scheduled-", ".db", keep)?;
    Ok(info.path)
}

/// One file of a snapshot directory.
pub struct SnapshotFile {
    pub name: String,
    pub path: PathBuf,
    pub size: u64,
    pub created: SystemTime,
}

/// The snapshot files of `dir` (none if it does not exist), oldest first. Hidden files are
/// left out: a snapshot being written is `.<name>.part` until it is complete.
pub fn list(dir: &Path) -> anyhow::Result<Vec<SnapshotFile>> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e).with_context(|| format!("reading {}", dir.display())),
    };
    let mut files = Vec::new();
    for entry in entries {
        let entry = entry.with_context(|| format!("reading {}", dir.display()))?;
        let Ok(name) = entry.file_name().into_string() else {
            continue;
        };
        let Ok(meta) = entry.metadata() else { continue };
        if name.starts_with('.') || !meta.is_file() {
            continue;
        }
        files.push(SnapshotFile {
            name,
            path: entry.path(),
            size: meta.len(),
            created: meta.modified().unwrap_or(SystemTime::UNIX_EPOCH),
        });
    }
    files.sort_by(|a, b| a.created.cmp(&b.created).then(a.name.cmp(&b.name)));
    Ok(files)
}

/// Removes the oldest files named `<prefix><unix seconds><suffix>` beyond the newest `keep`
/// (others, like on-demand snapshots when the scheduled ones are pruned, stay); the removed.
pub fn prune(dir: &Path, prefix: &str, suffix: &str, keep: usize) -> anyhow::Result<Vec<PathBuf>> {
    let mut matching: Vec<(u64, SnapshotFile)> = list(dir)?
        .into_iter()
        .filter_map(|f| {
            let stamp = f.name.strip_prefix(prefix)?.strip_suffix(suffix)?;
            let secs = stamp
                .bytes()
                .all(|b| b.is_ascii_digit())
                .then(|| stamp.parse().ok())??;
            Some((secs, f))
        })
        .collect();
    matching.sort_by_key(|(secs, _)| *secs);
    let extra = matching.len().saturating_sub(keep);
    let mut removed = Vec::new();
    for (_, f) in matching.into_iter().take(extra) {
        std::fs::remove_file(&f.path).with_context(|| format!("removing {}", f.path.display()))?;
        removed.push(f.path);
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn names(dir: &Path) -> Vec<String> {
        list(dir).unwrap().into_iter().map(|f| f.name).collect()
    }

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
        prune(dir.path(), "scheduled-", ".db", 2).unwrap();
        let mut left = names(dir.path());
        left.sort();
        assert_eq!(
            left,
            ["on-demand-1.db", "scheduled-200.db", "scheduled-300.db"]
        );
    }

    #[test]
    fn etcd_retention_counts_only_its_own_name_and_node() {
        let dir = tempfile::tempdir().unwrap();
        for name in [
            "etcd-snapshot-a-1700000300",
            "etcd-snapshot-a-1700000100",
            "etcd-snapshot-a-1700000200",
            // Another node's, a longer name with the same start, an on-demand one, and a save
            // in progress: none is this schedule's.
            "etcd-snapshot-b-1700000000",
            "etcd-snapshot-a-b-1600000000",
            "on-demand-a-1500000000",
            ".etcd-snapshot-a-1700000400.part",
        ] {
            std::fs::write(dir.path().join(name), "x").unwrap();
        }
        let removed = prune(dir.path(), "etcd-snapshot-a-", "", 1).unwrap();
        let removed: Vec<_> = removed
            .iter()
            .map(|p| p.file_name().unwrap().to_str().unwrap().to_string())
            .collect();
        assert_eq!(
            removed,
            ["etcd-snapshot-a-1700000100", "etcd-snapshot-a-1700000200"]
        );
        let mut left = names(dir.path());
        left.sort();
        assert_eq!(
            left,
            [
                "etcd-snapshot-a-1700000300",
                "etcd-snapshot-a-b-1600000000",
                "etcd-snapshot-b-1700000000",
                "on-demand-a-1500000000",
            ]
        );
        // Retention 0 keeps none of them; a missing directory has nothing to prune.
        prune(dir.path(), "etcd-snapshot-a-", "", 0).unwrap();
        assert!(!names(dir.path()).contains(&"etcd-snapshot-a-1700000300".to_string()));
        assert!(
            prune(&dir.path().join("none"), "x-", "", 0)
                .unwrap()
                .is_empty()
        );
    }
}
