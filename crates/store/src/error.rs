use std::path::PathBuf;

use crate::{KeyValue, Revision};

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What a store operation can fail with. The first group are answers the API server turns
/// into Kubernetes statuses (409, 404, 410); the rest are faults.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("key {key:?} already exists")]
    AlreadyExists { key: String },

    #[error("key {key:?} not found")]
    NotFound { key: String },

    /// The key changed since `expected`; `current` is its value now, so a caller can retry
    /// without reading it again.
    #[error("key {key:?} was modified: expected mod_revision {expected}, found {}", current.mod_revision)]
    Conflict {
        key: String,
        expected: Revision,
        current: Box<KeyValue>,
    },

    #[error("revision {requested} has been compacted{}", compacted.map(|c| format!(" (history starts at {c})")).unwrap_or_default())]
    Compacted {
        requested: Revision,
        /// Where history now starts, when the backend says.
        compacted: Option<Revision>,
    },

    #[error("revision {requested} is newer than the current revision {current}")]
    FutureRevision {
        requested: Revision,
        current: Revision,
    },

    #[error("invalid argument: {0}")]
    InvalidArgument(String),

    /// The database file cannot be used; it has not been modified.
    #[error("cannot use database {}: {reason}", path.display())]
    InvalidDatabase { path: PathBuf, reason: String },

    /// The disk holding the database is full: writes fail, reads still work, nothing
    /// acknowledged is lost.
    #[error("database disk is full: {0}")]
    DiskFull(String),

    /// The datastore cannot be reached (e.g. no etcd member answers).
    #[error("datastore unavailable: {0}")]
    Unavailable(String),

    #[error("store is shut down")]
    Closed,

    #[error("{context}: {source}")]
    Backend {
        context: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

impl Error {
    pub(crate) fn backend(
        context: impl Into<String>,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        Error::Backend {
            context: context.into(),
            source: Box::new(source),
        }
    }
}
