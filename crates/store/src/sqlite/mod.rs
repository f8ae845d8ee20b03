//! The embedded backend: one SQLite file in WAL mode.
//!
//! - One writer thread owns the only writing connection. Writes queue to it; it takes every
//!   write waiting, applies them in one transaction with consecutive revisions and commits
//!   once (group commit: one fsync for the batch). A write is acknowledged only after that
//!   commit is durable (`synchronous = FULL`).
//! - Reads run on a small pool of read-only connections; WAL lets them proceed while the
//!   writer commits.
//! - After each commit the writer hands the batch's events to watchers in-process (a
//!   broadcast channel); nothing polls the database for changes.

mod backup;
pub use backup::{SnapshotInfo, restore, snapshot, snapshot_info};
mod schema;
mod watch;
mod writer;

use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use bytes::Bytes;
use rusqlite::{Connection, OptionalExtension, params};
use tokio::sync::{broadcast, oneshot};

use crate::{
    Error, Event, KeyValue, ListOptions, ListResult, Result, Revision, Store, WatchStream,
    check_start_key, prefix_end,
};
use writer::{Op, Output, Request};

/// Tuning for the SQLite backend; the defaults suit a server.
#[derive(Clone, Debug)]
pub struct SqliteOptions {
    /// Most writes committed together in one transaction.
    pub max_batch: usize,
    /// Batches of events kept for watchers that fall behind before they re-read history from
    /// the database.
    pub watch_buffer: usize,
}

impl Default for SqliteOptions {
    fn default() -> Self {
        SqliteOptions {
            max_batch: 1024,
            watch_buffer: 4096,
        }
    }
}

/// The embedded store. Cheap to clone; all clones share one database.
#[derive(Clone)]
pub struct SqliteStore {
    inner: Arc<Inner>,
}

/// What the writer thread and the readers share.
pub(crate) struct Shared {
    /// Revision of the last durable commit.
    current_rev: AtomicI64,
    compact_rev: AtomicI64,
    events: broadcast::Sender<Arc<[Event]>>,
}

struct Inner {
    path: PathBuf,
    shared: Arc<Shared>,
    /// `None` once closing.
    writes: Option<std::sync::mpsc::Sender<Request>>,
    writer: Option<std::thread::JoinHandle<()>>,
    readers: Mutex<Vec<Connection>>,
    /// Held for the store's lifetime: a second process on the same file would fork history.
    _lock: File,
}

impl SqliteStore {
    /// Opens (or creates) the database at `path`. A file that is not an intact rkube database
    /// is refused with [`Error::InvalidDatabase`] and left as it was.
    pub fn open(path: impl AsRef<Path>, opts: SqliteOptions) -> Result<Self> {
        let path = path.as_ref().to_path_buf();
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| Error::InvalidDatabase {
                path: path.clone(),
                reason: format!("cannot create directory {}: {e}", dir.display()),
            })?;
        }
        let lock = lock_file(&path)?;
        let conn = schema::open_writer(&path)?;
        let current = schema::last_revision(&conn)?;
        let compacted = schema::read_meta(&conn, "compact_rev")?;
        let (events, _) = broadcast::channel(opts.watch_buffer.max(1));
        let shared = Arc::new(Shared {
            current_rev: AtomicI64::new(current),
            compact_rev: AtomicI64::new(compacted),
            events,
        });
        let (writes, writer) = writer::spawn(conn, shared.clone(), opts.max_batch.max(1))?;
        tracing::info!(path = %path.display(), revision = current, "opened SQLite store");
        Ok(SqliteStore {
            inner: Arc::new(Inner {
                path,
                shared,
                writes: Some(writes),
                writer: Some(writer),
                readers: Mutex::new(Vec::new()),
                _lock: lock,
            }),
        })
    }

    /// The revision up to which history has been compacted (0 if never).
    pub fn compacted_revision(&self) -> Revision {
        self.inner.shared.compact_rev.load(Ordering::SeqCst)
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// When each key that has a time-to-live loses it: what copying the store into another
    /// backend needs to carry the keys' leases over (the [`Store`] trait does not expose them).
    pub async fn expiries(&self) -> Result<HashMap<String, SystemTime>> {
        self.read(|conn| {
            let mut stmt = conn
                .prepare("SELECT key, expires_at FROM lease")
                .map_err(|e| sql_err("reading leases", e))?;
            let rows = stmt
                .query_map([], |r| Ok((r.get::<_, Vec<u8>>(0)?, r.get::<_, i64>(1)?)))
                .map_err(|e| sql_err("reading leases", e))?;
            let mut out = HashMap::new();
            for row in rows {
                let (key, at) = row.map_err(|e| sql_err("reading leases", e))?;
                let at = UNIX_EPOCH + Duration::from_millis(u64::try_from(at).unwrap_or(0));
                out.insert(String::from_utf8_lossy(&key).into_owned(), at);
            }
            Ok(out)
        })
        .await
    }

    async fn write(&self, op: Op) -> Result<Output> {
        let (reply, rx) = oneshot::channel();
        self.inner
            .writes
            .as_ref()
            .ok_or(Error::Closed)?
            .send(Request { op, reply })
            .map_err(|_| Error::Closed)?;
        rx.await.map_err(|_| Error::Closed)?
    }

    /// Runs `f` on a pooled read connection, off the async threads.
    async fn read<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T> + Send + 'static,
    {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || inner.with_reader(f))
            .await
            .map_err(|e| Error::backend("read task failed", e))?
    }
}

impl Inner {
    fn with_reader<T>(&self, f: impl FnOnce(&Connection) -> Result<T>) -> Result<T> {
        let pooled = self.readers.lock().map_err(|_| Error::Closed)?.pop();
        let conn = match pooled {
            Some(c) => c,
            None => schema::open_reader(&self.path)?,
        };
        let out = f(&conn);
        if let Ok(mut idle) = self.readers.lock() {
            idle.push(conn);
        }
        out
    }

    fn current_rev(&self) -> Revision {
        self.shared.current_rev.load(Ordering::SeqCst)
    }

    /// Checks that history at `rev` can be read.
    fn check_readable(&self, rev: Revision) -> Result<()> {
        let compacted = self.shared.compact_rev.load(Ordering::SeqCst);
        if rev < compacted {
            return Err(Error::Compacted {
                requested: rev,
                compacted: Some(compacted),
            });
        }
        let current = self.current_rev();
        if rev > current {
            return Err(Error::FutureRevision {
                requested: rev,
                current,
            });
        }
        Ok(())
    }
}

impl Drop for Inner {
    /// Closes the database cleanly: readers first, then the writer finishes what is queued
    /// and closes last, which checkpoints the WAL into the main file.
    fn drop(&mut self) {
        if let Ok(mut idle) = self.readers.lock() {
            idle.clear();
        }
        self.writes.take();
        if let Some(writer) = self.writer.take() {
            let _ = writer.join();
        }
    }
}

pub(super) fn lock_file(path: &Path) -> Result<File> {
    let mut lock_path = path.as_os_str().to_owned();
    lock_path.push(".lock");
    let lock_path = PathBuf::from(lock_path);
    let file = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(|e| Error::InvalidDatabase {
            path: path.to_path_buf(),
            reason: format!("cannot open lock file {}: {e}", lock_path.display()),
        })?;
    file.try_lock().map_err(|e| Error::InvalidDatabase {
        path: path.to_path_buf(),
        reason: match e {
            std::fs::TryLockError::WouldBlock => {
                "in use by another process (its lock file is held)".to_string()
            }
            std::fs::TryLockError::Error(e) => format!("cannot lock: {e}"),
        },
    })?;
    Ok(file)
}

/// Maps a SQLite error, telling a full disk apart.
pub(crate) fn sql_err(context: &str, e: rusqlite::Error) -> Error {
    if e.sqlite_error_code() == Some(rusqlite::ErrorCode::DiskFull) {
        return Error::DiskFull(format!("{context}: {e}"));
    }
    Error::backend(context.to_string(), e)
}

/// Reads a `KeyValue` from columns (key, rev, create_rev, version, value) starting at `at`.
fn kv_from_row(row: &rusqlite::Row<'_>, at: usize) -> rusqlite::Result<KeyValue> {
    let key: Vec<u8> = row.get(at)?;
    let value: Vec<u8> = row.get(at + 4)?;
    Ok(KeyValue {
        key: String::from_utf8(key).map_err(|e| {
            rusqlite::Error::FromSqlConversionFailure(at, rusqlite::types::Type::Blob, e.into())
        })?,
        mod_revision: row.get(at + 1)?,
        create_revision: row.get(at + 2)?,
        version: row.get(at + 3)?,
        value: Bytes::from(value),
    })
}

/// A key's newest row (live or tombstone), as the writer and `get` need it.
fn latest(conn: &Connection, key: &[u8]) -> rusqlite::Result<Option<KeyValue>> {
    conn.prepare_cached(
        "SELECT key, rev, create_rev, version, value FROM kv WHERE key = ?1 ORDER BY rev DESC LIMIT 1",
    )?
    .query_row([key], |r| kv_from_row(r, 0))
    .optional()
}

/// Binds the upper bound of a prefix range; `None` means unbounded.
fn range_end(prefix: &str) -> Option<Vec<u8>> {
    prefix_end(prefix.as_bytes())
}

#[async_trait]
impl Store for SqliteStore {
    async fn current_revision(&self) -> Result<Revision> {
        Ok(self.inner.current_rev())
    }

    async fn get(&self, key: &str) -> Result<Option<KeyValue>> {
        let key = key.as_bytes().to_vec();
        self.read(move |conn| {
            let kv = latest(conn, &key).map_err(|e| sql_err("get", e))?;
            Ok(kv.filter(|kv| kv.version > 0))
        })
        .await
    }

    async fn list(&self, prefix: &str, opts: ListOptions) -> Result<ListResult> {
        check_start_key(prefix, &opts)?;
        let revision = match opts.revision {
            Some(r) if r > 0 => {
                self.inner.check_readable(r)?;
                r
            }
            _ => self.inner.current_rev(),
        };
        let start = opts
            .start_key
            .as_deref()
            .unwrap_or(prefix)
            .as_bytes()
            .to_vec();
        let end = range_end(prefix);
        // One row more than asked tells whether more follow.
        let limit = opts.limit.filter(|l| *l > 0).map(|l| l as i64 + 1);
        let mut out = self
            .read(move |conn| {
                // The newest row of each key at or below `revision`; tombstones drop out.
                // (SQLite takes bare columns from the row holding max(rev).)
                let mut stmt = conn
                    .prepare_cached(
                        "SELECT key, max(rev), create_rev, version, value FROM kv
                         WHERE key >= ?1 AND (?2 IS NULL OR key < ?2) AND rev <= ?3
                         GROUP BY key HAVING version > 0 ORDER BY key LIMIT ?4",
                    )
                    .map_err(|e| sql_err("list", e))?;
                let rows = stmt
                    .query_map(params![start, end, revision, limit.unwrap_or(-1)], |r| {
                        kv_from_row(r, 0)
                    })
                    .map_err(|e| sql_err("list", e))?;
                rows.collect::<rusqlite::Result<Vec<_>>>()
                    .map_err(|e| sql_err("list", e))
            })
            .await?;
        let more = limit.is_some_and(|l| out.len() as i64 == l);
        if more {
            out.pop();
        }
        // A compaction may have run while we read: only a result read at a revision that is
        // still retained is a true snapshot.
        self.inner.check_readable(revision)?;
        Ok(ListResult {
            kvs: out,
            revision,
            more,
        })
    }

    async fn count(&self, prefix: &str) -> Result<i64> {
        let start = prefix.as_bytes().to_vec();
        let end = range_end(prefix);
        self.read(move |conn| {
            conn.prepare_cached(
                "SELECT count(*) FROM (
                    SELECT max(rev), version FROM kv
                    WHERE key >= ?1 AND (?2 IS NULL OR key < ?2) GROUP BY key
                 ) WHERE version > 0",
            )
            .and_then(|mut s| s.query_row(params![start, end], |r| r.get(0)))
            .map_err(|e| sql_err("count", e))
        })
        .await
    }

    async fn create(&self, key: &str, value: Bytes, ttl: Option<Duration>) -> Result<Revision> {
        match self
            .write(Op::Create {
                key: key.to_string(),
                value,
                ttl,
            })
            .await?
        {
            Output::Written(rev) => Ok(rev),
            other => Err(unexpected(other)),
        }
    }

    async fn update(
        &self,
        key: &str,
        value: Bytes,
        expected: Revision,
        ttl: Option<Duration>,
    ) -> Result<Revision> {
        match self
            .write(Op::Update {
                key: key.to_string(),
                value,
                expected,
                ttl,
            })
            .await?
        {
            Output::Written(rev) => Ok(rev),
            other => Err(unexpected(other)),
        }
    }

    async fn delete(&self, key: &str, expected: Option<Revision>) -> Result<(Revision, KeyValue)> {
        match self
            .write(Op::Delete {
                key: key.to_string(),
                expected,
            })
            .await?
        {
            Output::Deleted(rev, kv) => Ok((rev, kv)),
            other => Err(unexpected(other)),
        }
    }

    async fn watch(&self, prefix: &str, start_revision: Revision) -> Result<WatchStream> {
        watch::watch(self.clone(), prefix.to_string(), start_revision)
    }

    async fn compact(&self, revision: Revision) -> Result<()> {
        let current = self.inner.current_rev();
        if revision > current {
            return Err(Error::FutureRevision {
                requested: revision,
                current,
            });
        }
        match self.write(Op::Compact { revision }).await? {
            Output::Compacted => Ok(()),
            other => Err(unexpected(other)),
        }
    }
}

fn unexpected(out: Output) -> Error {
    Error::Backend {
        context: "writer".into(),
        source: format!("unexpected reply {out:?}").into(),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[tokio::test]
    async fn expiries_are_the_keys_with_a_time_to_live() {
        let dir = tempfile::tempdir().unwrap();
        let store =
            SqliteStore::open(dir.path().join("state.db"), SqliteOptions::default()).unwrap();
        let before = SystemTime::now();
        let ttl = Duration::from_secs(600);
        store
            .create("/registry/events/a", Bytes::from_static(b"e"), Some(ttl))
            .await
            .unwrap();
        store
            .create("/registry/configmaps/b", Bytes::from_static(b"c"), None)
            .await
            .unwrap();
        let expiries = store.expiries().await.unwrap();
        assert_eq!(expiries.len(), 1, "{expiries:?}");
        let at = expiries["/registry/events/a"];
        assert!(at >= before + ttl - Duration::from_millis(1), "{at:?}");
        assert!(at <= SystemTime::now() + ttl, "{at:?}");
        // An update without a time-to-live removes it.
        let rev = store
            .get("/registry/events/a")
            .await
            .unwrap()
            .unwrap()
            .mod_revision;
        store
            .update("/registry/events/a", Bytes::from_static(b"f"), rev, None)
            .await
            .unwrap();
        assert!(store.expiries().await.unwrap().is_empty());
    }
}
