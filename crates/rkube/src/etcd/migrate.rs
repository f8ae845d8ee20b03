//! Converting a SQLite server into the first member of a managed etcd, as k3s does:
//! `rkube server --cluster-init` on a data dir whose `db/state.db` holds the cluster starts a
//! new member, copies every key into it (values byte for byte; resourceVersions become
//! etcd's revisions, as in k3s), then renames the file to `db/state.db.migrated` so that the
//! conversion runs once. Keys with a time-to-live in SQLite (Events, `/masterleases/`) get a
//! lease for the time they had left; those already expired are not copied.
//!
//! A conversion that fails or is interrupted leaves `state.db` in place: the marker file
//! written before the member starts tells the next start to discard the partial member and
//! start over.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use anyhow::{Context, bail};

use super::sync_dir;
use store::{ListOptions, SqliteOptions, SqliteStore, Store};

/// Keys read from SQLite at a time.
const PAGE: usize = 500;
/// Writes to etcd in flight at once: a large store copies in seconds, not one fsync at a time.
const IN_FLIGHT: usize = 16;
/// How long the new member may take to elect itself leader.
const LEADER_WITHIN: Duration = Duration::from_secs(60);

/// The SQLite store a server without `--cluster-init` keeps its cluster in.
pub fn sqlite_path(data_dir: &Path) -> PathBuf {
    data_dir.join("db").join("state.db")
}

/// Written before a conversion's member starts, removed once `state.db` is renamed.
fn marker(etcd_dir: &Path) -> PathBuf {
    etcd_dir.join("converting-sqlite")
}

/// Whether the SQLite store still holds the cluster: there is no member yet, or the member
/// is what an interrupted conversion left.
pub fn pending(data_dir: &Path, etcd_dir: &Path) -> bool {
    sqlite_path(data_dir).exists()
        && (!etcd_dir.join("member").exists() || marker(etcd_dir).exists())
}

/// Before the member starts: drops a partial member an interrupted conversion left (SQLite
/// still has every key) and writes the marker, so that a crash from here on is seen.
pub fn begin(data_dir: &Path, etcd_dir: &Path) -> anyhow::Result<()> {
    let migrated = migrated_path(&sqlite_path(data_dir));
    if migrated.exists() {
        bail!(
            "{} exists from an earlier conversion: move it aside to convert {} again",
            migrated.display(),
            sqlite_path(data_dir).display()
        );
    }
    let member = etcd_dir.join("member");
    if member.exists() {
        tracing::warn!(member = %member.display(), "removing the etcd member of an unfinished SQLite conversion; starting over");
        std::fs::remove_dir_all(&member)
            .with_context(|| format!("removing {}", member.display()))?;
    }
    let marker = marker(etcd_dir);
    std::fs::write(&marker, b"").with_context(|| format!("writing {}", marker.display()))?;
    sync_dir(etcd_dir)
}

/// After a failed conversion (the member stopped): removes the half-made member, so that the
/// next start converts again from `state.db`, which is left as it was.
pub fn abandon(etcd_dir: &Path) {
    let member = etcd_dir.join("member");
    if let Err(e) = std::fs::remove_dir_all(&member)
        && e.kind() != std::io::ErrorKind::NotFound
    {
        // The marker stays: the next start removes the member itself.
        tracing::error!(member = %member.display(), error = %e, "removing the half-made etcd member");
        return;
    }
    let _ = std::fs::remove_file(marker(etcd_dir));
}

/// Copies every key of `<data-dir>/db/state.db` into the running member at `endpoint`, then
/// renames the file (and its -wal/-shm, if any) to `state.db.migrated`. Returns how many
/// keys were copied.
pub async fn run(
    data_dir: &Path,
    etcd_dir: &Path,
    endpoint: &str,
    tls: &store::EtcdTls,
) -> anyhow::Result<u64> {
    let path = sqlite_path(data_dir);
    tracing::info!(from = %path.display(), "converting the SQLite store into the managed etcd");
    let opening = path.clone();
    let sqlite =
        tokio::task::spawn_blocking(move || SqliteStore::open(opening, SqliteOptions::default()))
            .await
            .context("opening the SQLite store")?
            .with_context(|| format!("opening {}", path.display()))?;
    let mut config = store::EtcdConfig::new(vec![endpoint.to_string()]);
    config.tls = Some(tls.clone());
    let copied = async {
        let etcd = store::EtcdStore::connect(config)
            .await
            .with_context(|| format!("connecting to the new etcd member at {endpoint}"))?;
        wait_for_leader(&etcd).await?;
        copy(&sqlite, &etcd).await
    }
    .await;
    // Closed before the rename: closing checkpoints the WAL into the file itself.
    tokio::task::spawn_blocking(move || drop(sqlite))
        .await
        .context("closing the SQLite store")?;
    let (copied, leased, expired) = copied?;
    retire(&path)?;
    let _ = std::fs::remove_file(marker(etcd_dir));
    tracing::info!(
        keys = copied,
        with_lease = leased,
        expired_skipped = expired,
        renamed_to = %migrated_path(&path).display(),
        "SQLite store converted into the managed etcd"
    );
    Ok(copied)
}

/// A new single member elects itself within seconds; a write before that would fail.
async fn wait_for_leader(etcd: &store::EtcdStore) -> anyhow::Result<()> {
    let deadline = tokio::time::Instant::now() + LEADER_WITHIN;
    loop {
        // A linearizable read (any key) answers only once there is a leader.
        match etcd.get("/registry/").await {
            Ok(_) => return Ok(()),
            Err(e) if tokio::time::Instant::now() < deadline => {
                tracing::debug!(error = %e, "the new etcd member is not serving yet");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            Err(e) => {
                return Err(e).context(format!(
                    "the new etcd member did not serve within {LEADER_WITHIN:?}"
                ));
            }
        }
    }
}

/// Copies every live key, page by page from one SQLite revision: (copied, with a lease,
/// expired and skipped).
async fn copy(sqlite: &SqliteStore, etcd: &store::EtcdStore) -> anyhow::Result<(u64, u64, u64)> {
    // Read before the list: a key that expires in between is listed with its past expiry
    // and skipped below, never copied without its lease.
    let expiries = sqlite
        .expiries()
        .await
        .context("reading the SQLite store's leases")?;
    let (mut copied, mut leased, mut expired) = (0u64, 0u64, 0u64);
    let mut opts = ListOptions {
        limit: Some(PAGE),
        ..ListOptions::default()
    };
    loop {
        let page = sqlite
            .list("", opts.clone())
            .await
            .context("listing the SQLite store")?;
        let mut writes = tokio::task::JoinSet::new();
        let now = SystemTime::now();
        let next = page.kvs.last().map(|kv| format!("{}\0", kv.key));
        for kv in page.kvs {
            let ttl = match expiries.get(&kv.key) {
                None => None,
                Some(at) => match at.duration_since(now) {
                    Ok(left) if !left.is_zero() => Some(left),
                    _ => {
                        expired += 1;
                        continue;
                    }
                },
            };
            leased += u64::from(ttl.is_some());
            while writes.len() >= IN_FLIGHT {
                joined(writes.join_next().await)?;
                copied += 1;
            }
            let etcd = etcd.clone();
            writes.spawn(async move {
                // Create, not put: the member is new, so a key already there is a bug to
                // report, not a value to overwrite.
                etcd.create(&kv.key, kv.value, ttl)
                    .await
                    .with_context(|| format!("copying {} into etcd", kv.key))
            });
        }
        while let Some(done) = writes.join_next().await {
            joined(Some(done))?;
            copied += 1;
        }
        if !page.more {
            return Ok((copied, leased, expired));
        }
        // The next page from the same snapshot.
        opts.revision = Some(page.revision);
        opts.start_key = next;
    }
}

fn joined(
    done: Option<Result<anyhow::Result<store::Revision>, tokio::task::JoinError>>,
) -> anyhow::Result<()> {
    match done {
        Some(r) => r.context("a copy task failed")?.map(drop),
        None => Ok(()),
    }
}

/// `state.db` → `state.db.migrated`.
fn migrated_path(path: &Path) -> PathBuf {
    let mut p = path.as_os_str().to_owned();
    p.push(".migrated");
    PathBuf::from(p)
}

/// Renames the converted file so that the next start does not convert it again: the file
/// first (the step that ends the conversion: etcd has every key), then any -wal/-shm beside
/// it under the names SQLite looks for next to the new one; the lock file goes. Only the
/// first rename can fail the conversion.
fn retire(path: &Path) -> anyhow::Result<()> {
    let migrated = migrated_path(path);
    std::fs::rename(path, &migrated)
        .with_context(|| format!("renaming {} to {}", path.display(), migrated.display()))?;
    let with = |p: &Path, suffix: &str| {
        let mut s = p.as_os_str().to_owned();
        s.push(suffix);
        PathBuf::from(s)
    };
    for suffix in ["-wal", "-shm"] {
        let (from, to) = (with(path, suffix), with(&migrated, suffix));
        match std::fs::rename(&from, &to) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                tracing::warn!(from = %from.display(), to = %to.display(), error = %e, "renaming the converted store's file");
            }
        }
    }
    let _ = std::fs::remove_file(with(path, ".lock"));
    if let Some(dir) = path.parent()
        && let Err(e) = sync_dir(dir)
    {
        tracing::warn!(error = %format!("{e:#}"), "the converted store's rename may not survive a crash");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn an_interrupted_conversion_starts_over() {
        let data = tempfile::tempdir().unwrap();
        let etcd = data.path().join("db").join("etcd");
        std::fs::create_dir_all(&etcd).unwrap();
        assert!(!pending(data.path(), &etcd), "no SQLite store");
        std::fs::write(sqlite_path(data.path()), b"x").unwrap();
        assert!(pending(data.path(), &etcd), "SQLite and no member");

        begin(data.path(), &etcd).unwrap();
        // The member etcd made before the crash: still pending, and the next begin drops it.
        std::fs::create_dir_all(etcd.join("member").join("wal")).unwrap();
        assert!(pending(data.path(), &etcd));
        begin(data.path(), &etcd).unwrap();
        assert!(!etcd.join("member").exists());

        // A failed copy: the member goes, state.db stays.
        std::fs::create_dir_all(etcd.join("member")).unwrap();
        abandon(&etcd);
        assert!(!etcd.join("member").exists());
        assert!(sqlite_path(data.path()).exists());
        assert!(!marker(&etcd).exists());
    }

    #[test]
    fn a_finished_conversion_is_not_pending() {
        let data = tempfile::tempdir().unwrap();
        let etcd = data.path().join("db").join("etcd");
        std::fs::create_dir_all(&etcd).unwrap();
        let db = sqlite_path(data.path());
        std::fs::write(&db, b"db").unwrap();
        std::fs::write(data.path().join("db/state.db-wal"), b"wal").unwrap();
        begin(data.path(), &etcd).unwrap();
        std::fs::create_dir_all(etcd.join("member")).unwrap();
        retire(&db).unwrap();
        std::fs::remove_file(marker(&etcd)).unwrap();
        assert!(!db.exists());
        assert_eq!(
            std::fs::read(data.path().join("db/state.db.migrated")).unwrap(),
            b"db"
        );
        assert_eq!(
            std::fs::read(data.path().join("db/state.db.migrated-wal")).unwrap(),
            b"wal"
        );
        assert!(!pending(data.path(), &etcd));
        // A SQLite store made again later (a start without --cluster-init) is not converted
        // over the running member.
        std::fs::write(&db, b"new").unwrap();
        assert!(!pending(data.path(), &etcd));
        // And a second conversion would not overwrite the first one's file.
        std::fs::remove_dir_all(etcd.join("member")).unwrap();
        let err = begin(data.path(), &etcd).unwrap_err();
        assert!(format!("{err:#}").contains("earlier conversion"), "{err:#}");
    }
}
