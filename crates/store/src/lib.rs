//! The cluster's state store: a revisioned key-value store with watch, with the etcd v3
//! contract the API server relies on.
//!
//! One [`Store`] trait, two backends:
//! - [`SqliteStore`]: embedded, one file, the default (what k3s does with kine, but native);
//! - [`EtcdStore`]: a real etcd v3 cluster under a key prefix, for several servers.
//!
//! The contract, as etcd defines it:
//! - one cluster-wide revision that only grows; every write gets a new, higher revision;
//! - per key: `create_revision`, `mod_revision` and `version` (writes since creation);
//! - reads at the latest or at a past revision (so a paginated list is one snapshot);
//! - writes guarded by the expected `mod_revision` (optimistic concurrency);
//! - watch a prefix from a revision, replaying history, each event carrying the previous value;
//! - compaction drops history older than a revision; reading or watching there fails with
//!   [`Error::Compacted`];
//! - keys may carry a time-to-live, after which they are deleted (with a DELETE event).

mod compactor;
mod config;
mod error;
mod etcd;
mod sqlite;
#[cfg(feature = "testing")]
pub mod testing;

use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::BoxStream;

pub use compactor::{CompactionPolicy, Compactor};
pub use config::{DatastoreConfig, open};
pub use error::{Error, Result};
pub use etcd::{EtcdConfig, EtcdStore, EtcdTls};
pub use sqlite::{SnapshotInfo, SqliteOptions, SqliteStore};
/// Online snapshots of the SQLite store and their restore.
pub mod sqlite_backup {
    pub use crate::sqlite::{restore, snapshot, snapshot_info};
}

/// A store revision. Revisions start at 1; 0 means "none" or "latest" depending on context.
pub type Revision = i64;

/// One key's value as of some revision.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyValue {
    pub key: String,
    pub value: Bytes,
    /// Revision of the write that created the key (since its last deletion).
    pub create_revision: Revision,
    /// Revision of the last write to the key.
    pub mod_revision: Revision,
    /// Number of writes since creation: 1 on create.
    pub version: i64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventType {
    Put,
    Delete,
}

/// One change, as a watcher sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    pub event_type: EventType,
    /// For a PUT the new value; for a DELETE the key with `mod_revision` = the deletion's
    /// revision, an empty value and `version` 0 (as etcd reports it).
    pub kv: KeyValue,
    /// The value before this change: `None` for a create.
    pub prev_kv: Option<KeyValue>,
}

impl Event {
    pub fn revision(&self) -> Revision {
        self.kv.mod_revision
    }
}

/// Options for [`Store::list`].
#[derive(Clone, Debug, Default)]
pub struct ListOptions {
    /// Read as of this revision; `None` (or 0) reads the latest.
    pub revision: Option<Revision>,
    /// At most this many keys; `None` (or 0) for all.
    pub limit: Option<usize>,
    /// Start from this key (inclusive) instead of the prefix's start: the continuation of a
    /// paginated list. Must lie under the prefix.
    pub start_key: Option<String>,
}

/// The answer to [`Store::list`].
#[derive(Clone, Debug, Default)]
pub struct ListResult {
    pub kvs: Vec<KeyValue>,
    /// The revision the list was read at: pass it back with the next `start_key` to read the
    /// next page from the same snapshot.
    pub revision: Revision,
    /// More keys follow the last one returned.
    pub more: bool,
}

/// A watch: events in revision order, then whatever comes next. An error ends the stream.
pub type WatchStream = BoxStream<'static, Result<Event>>;

/// The store contract (see the crate documentation).
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// The revision of the latest write.
    async fn current_revision(&self) -> Result<Revision>;

    /// The latest value of one key.
    async fn get(&self, key: &str) -> Result<Option<KeyValue>>;

    /// Keys under `prefix` in key order.
    async fn list(&self, prefix: &str, opts: ListOptions) -> Result<ListResult>;

    /// How many keys exist under `prefix`.
    async fn count(&self, prefix: &str) -> Result<i64>;

    /// Creates `key` if it does not exist ([`Error::AlreadyExists`] otherwise). Returns the
    /// write's revision.
    async fn create(&self, key: &str, value: Bytes, ttl: Option<Duration>) -> Result<Revision>;

    /// Replaces `key`'s value if its `mod_revision` is still `expected` ([`Error::Conflict`]
    /// with the current value otherwise, [`Error::NotFound`] if it is gone). A `ttl` restarts
    /// the key's time-to-live; `None` removes it. Returns the write's revision.
    async fn update(
        &self,
        key: &str,
        value: Bytes,
        expected: Revision,
        ttl: Option<Duration>,
    ) -> Result<Revision>;

    /// Deletes `key`, if given only while its `mod_revision` is still `expected`. Returns the
    /// deletion's revision and the value deleted.
    async fn delete(&self, key: &str, expected: Option<Revision>) -> Result<(Revision, KeyValue)>;

    /// Watches keys under `prefix`, starting with the change at `start_revision` (inclusive);
    /// 0 starts after the current revision. [`Error::Compacted`] if that history is gone.
    async fn watch(&self, prefix: &str, start_revision: Revision) -> Result<WatchStream>;

    /// Drops history before `revision`; later reads at older revisions fail with
    /// [`Error::Compacted`]. Compacting to an already compacted revision is a no-op.
    async fn compact(&self, revision: Revision) -> Result<()>;
}

/// The first key after every key that starts with `prefix` (etcd's range end), or `None`
/// if no such key exists (empty prefix, or all 0xff).
pub(crate) fn prefix_end(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return Some(end);
        }
    }
    None
}

/// Checks that a list's `start_key` lies under its prefix: a continuation elsewhere would
/// read another resource's keys.
pub(crate) fn check_start_key(prefix: &str, opts: &ListOptions) -> Result<()> {
    match &opts.start_key {
        Some(k) if !k.starts_with(prefix) => Err(Error::InvalidArgument(format!(
            "start key {k:?} is not under prefix {prefix:?}"
        ))),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_end_increments_last_byte() {
        assert_eq!(prefix_end(b"/a/"), Some(b"/a0".to_vec()));
        assert_eq!(prefix_end(b"a\xff"), Some(b"b".to_vec()));
        assert_eq!(prefix_end(b""), None);
        assert_eq!(prefix_end(b"\xff\xff"), None);
    }
}
