//! Shared by the store's integration tests: a store of each backend, and watch helpers.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)] // a failed test step should panic

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use store::testing::EtcdProcess;
use store::{Event, SqliteOptions, SqliteStore, Store, WatchStream};

/// A store plus whatever keeps it alive (its temp dir or its etcd process).
pub struct Backend {
    pub store: Arc<dyn Store>,
    _dir: Option<tempfile::TempDir>,
    pub etcd: Option<EtcdProcess>,
}

impl Backend {
    pub fn sqlite() -> Backend {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = SqliteStore::open(dir.path().join("state.db"), SqliteOptions::default())
            .expect("open sqlite store");
        Backend {
            store: Arc::new(store),
            _dir: Some(dir),
            etcd: None,
        }
    }

    /// A real etcd of its own; keys under a prefix, as a shared etcd would hold them.
    pub async fn etcd() -> Backend {
        let etcd = EtcdProcess::start().await.expect("start etcd");
        let store = etcd.store("/cluster-a").await.expect("connect to etcd");
        Backend {
            store: Arc::new(store),
            _dir: None,
            etcd: Some(etcd),
        }
    }
}

pub fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_test_writer()
        .try_init();
}

/// The next `n` events, failing the test if they do not come within 10 s.
pub async fn next_events(w: &mut WatchStream, n: usize) -> Vec<Event> {
    let mut out = Vec::with_capacity(n);
    while out.len() < n {
        match tokio::time::timeout(Duration::from_secs(10), w.next()).await {
            Ok(Some(Ok(ev))) => out.push(ev),
            Ok(Some(Err(e))) => panic!("watch failed after {} events: {e}", out.len()),
            Ok(None) => panic!("watch ended after {} events", out.len()),
            Err(_) => panic!("timed out after {} of {n} events", out.len()),
        }
    }
    out
}

/// Asserts nothing arrives on the watch for a short while.
pub async fn expect_quiet(w: &mut WatchStream) {
    if let Ok(item) = tokio::time::timeout(Duration::from_millis(300), w.next()).await {
        panic!("expected no event, got {item:?}");
    }
}
