//! Online snapshots of the SQLite store and restoring one (k3s' `etcd-snapshot` for the
//! SQLite backend). A snapshot is `VACUUM INTO` on a reader connection: one consistent read
//! transaction, so it is taken while the server writes, and the copy is a complete, compact
//! rkube database. A restore needs the store closed (its lock file free); the replaced
//! database is kept beside it, and the revision goes on from above both histories with
//! everything before marked compacted — as etcd's `snapshot restore --bump-revision
//! --mark-compacted` — so a client resuming a watch from before gets 410 Gone and relists
//! instead of missing what the restore undid.

use std::path::{Path, PathBuf};

use rusqlite::{Connection, OpenFlags};

use super::schema;
use crate::{Error, Result};

fn invalid(path: &Path, reason: impl Into<String>) -> Error {
    Error::InvalidDatabase {
        path: path.to_path_buf(),
        reason: reason.into(),
    }
}

/// Opens an existing rkube database read-only and checks it is one.
fn open_checked(path: &Path) -> Result<Connection> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|e| invalid(path, format!("cannot open: {e}")))?;
    conn.busy_timeout(std::time::Duration::from_secs(10))
        .map_err(|e| invalid(path, format!("cannot set busy timeout: {e}")))?;
    schema::validate(path, &conn)?;
    Ok(conn)
}

/// What a snapshot holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SnapshotInfo {
    pub path: PathBuf,
    /// The store's revision when the snapshot was taken.
    pub revision: i64,
    pub keys: i64,
    pub bytes: u64,
}

/// Reads a snapshot's (or database's) revision and live key count.
pub fn snapshot_info(path: &Path) -> Result<SnapshotInfo> {
    let conn = open_checked(path)?;
    let revision = schema::last_revision(&conn)?;
    // Live keys: each key's newest row, unless it is a deletion.
    let keys: i64 = conn
        .query_row(
            "SELECT count(*) FROM kv k WHERE version > 0 AND rev = (SELECT max(rev) FROM kv WHERE key = k.key)",
            [],
            |r| r.get(0),
        )
        .map_err(|e| Error::backend("counting keys", e))?;
    let bytes = std::fs::metadata(path)
        .map_err(|e| invalid(path, format!("cannot stat: {e}")))?
        .len();
    Ok(SnapshotInfo {
        path: path.to_path_buf(),
        revision,
        keys,
        bytes,
    })
}

/// Writes a consistent copy of the database at `db` to `dest` (which must not exist), while
/// the store may be open and writing.
pub fn snapshot(db: &Path, dest: &Path) -> Result<SnapshotInfo> {
    if dest.exists() {
        return Err(invalid(dest, "a file is already there"));
    }
    if let Some(dir) = dest.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)
            .map_err(|e| invalid(dest, format!("cannot create {}: {e}", dir.display())))?;
    }
    let conn = open_checked(db)?;
    let dest_str = dest
        .to_str()
        .ok_or_else(|| invalid(dest, "the path is not UTF-8"))?;
    conn.execute("VACUUM INTO ?1", [dest_str])
        .map_err(|e| invalid(dest, format!("cannot write the snapshot: {e}")))?;
    let file = std::fs::File::open(dest).map_err(|e| invalid(dest, format!("{e}")))?;
    file.sync_all()
        .map_err(|e| invalid(dest, format!("cannot sync: {e}")))?;
    snapshot_info(dest)
}

/// Where the database replaced by a restore is kept: `state.db.replaced-<unix seconds>`.
fn replaced_name(db: &Path) -> PathBuf {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default();
    let mut name = db.as_os_str().to_owned();
    name.push(format!(".replaced-{secs}"));
    PathBuf::from(name)
}

fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

/// Replaces the database at `db` with `snapshot`; refused while a store has `db` open.
/// Returns the restored revision and where the replaced database went (if there was one).
pub fn restore(snapshot: &Path, db: &Path) -> Result<(i64, Option<PathBuf>)> {
    let _lock = super::lock_file(db)?;
    let snap = snapshot_info(snapshot)?;
    let replaced_rev = if db.exists() {
        schema::last_revision(&open_checked(db)?)?
    } else {
        0
    };
    // Go on above both histories, everything before compacted.
    let revision = snap.revision.max(replaced_rev) + 1;
    let staging = with_suffix(db, ".restoring");
    let _ = std::fs::remove_file(&staging);
    std::fs::copy(snapshot, &staging)
        .map_err(|e| invalid(&staging, format!("cannot copy the snapshot: {e}")))?;
    {
        let conn = Connection::open(&staging)
            .map_err(|e| invalid(&staging, format!("cannot open: {e}")))?;
        conn.execute(
            "UPDATE meta SET value = ?1 WHERE name IN ('last_rev', 'compact_rev')",
            [revision],
        )
        .map_err(|e| invalid(&staging, format!("cannot set the revision: {e}")))?;
    }
    std::fs::File::open(&staging)
        .and_then(|f| f.sync_all())
        .map_err(|e| invalid(&staging, format!("cannot sync: {e}")))?;
    let kept = if db.exists() {
        let kept = replaced_name(db);
        // The write-ahead log belongs to the replaced file: it goes with it.
        for suffix in ["-wal", "-shm"] {
            let from = with_suffix(db, suffix);
            if from.exists() {
                std::fs::rename(&from, with_suffix(&kept, suffix))
                    .map_err(|e| invalid(db, format!("cannot move {}: {e}", from.display())))?;
            }
        }
        std::fs::rename(db, &kept)
            .map_err(|e| invalid(db, format!("cannot move it aside: {e}")))?;
        Some(kept)
    } else {
        None
    };
    std::fs::rename(&staging, db)
        .map_err(|e| invalid(db, format!("cannot put the snapshot in place: {e}")))?;
    if let Some(dir) = db.parent() {
        let _ = std::fs::File::open(dir).and_then(|d| d.sync_all());
    }
    Ok((revision, kept))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use bytes::Bytes;

    use crate::{SqliteOptions, SqliteStore, Store};

    #[tokio::test]
    async fn snapshot_while_open_then_restore_when_closed() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("state.db");
        let store = SqliteStore::open(&db, SqliteOptions::default()).unwrap();
        store
            .create("/registry/a", Bytes::from_static(b"1"), None)
            .await
            .unwrap();
        store
            .create("/registry/b", Bytes::from_static(b"2"), None)
            .await
            .unwrap();
        let snap = snapshot(&db, &dir.path().join("snapshots/one.db")).unwrap();
        assert_eq!((snap.revision, snap.keys), (2, 2));
        // Written after the snapshot: gone after the restore.
        store
            .create("/registry/c", Bytes::from_static(b"3"), None)
            .await
            .unwrap();
        store.delete("/registry/a", None).await.unwrap();
        let before = store.current_revision().await.unwrap();
        // Refused while the store has the database open.
        let err = restore(&snap.path, &db).unwrap_err().to_string();
        assert!(err.contains("in use by another process"), "{err}");
        drop(store);

        let (revision, kept) = restore(&snap.path, &db).unwrap();
        assert!(revision > before, "{revision} > {before}");
        assert!(kept.as_ref().is_some_and(|k| k.exists()));
        let store = SqliteStore::open(&db, SqliteOptions::default()).unwrap();
        assert_eq!(store.current_revision().await.unwrap(), revision);
        assert_eq!(store.compacted_revision(), revision);
        let keys: Vec<String> = store
            .list("/registry/", Default::default())
            .await
            .unwrap()
            .kvs
            .into_iter()
            .map(|kv| kv.key)
            .collect();
        assert_eq!(keys, ["/registry/a", "/registry/b"]);
        // Writes go on above the old history.
        let put = store
            .create("/registry/d", Bytes::from_static(b"4"), None)
            .await
            .unwrap();
        assert_eq!(put, revision + 1);
        // Not a database: refused, nothing replaced.
        drop(store);
        let junk = dir.path().join("junk.db");
        std::fs::write(&junk, "no").unwrap();
        assert!(restore(&junk, &db).is_err());
        assert!(db.exists());
    }
}
