//! The live data: informers on Services and EndpointSlices, and an [`Index`] rebuilt from
//! their caches whenever either changes. Bursts of changes coalesce into one rebuild (a
//! rebuild of 1,000 Services takes milliseconds, far below the record TTL).

use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use client_go::informer::{Informer, StopOnDrop};
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::Api;
use tokio::sync::Notify;

use crate::index::Index;

/// How long serving waits for the first complete list before answering from what it has
/// (CoreDNS waits five seconds too, then serves).
const SYNC_WAIT: Duration = Duration::from_secs(5);

/// The current index, shared by every query. Cheap to clone.
#[derive(Clone, Default)]
pub struct Records {
    current: Arc<RwLock<Arc<Index>>>,
}

impl Records {
    /// Records that never change: for tests and benchmarks.
    pub fn fixed(services: &[Arc<Service>], slices: &[Arc<EndpointSlice>]) -> Records {
        let records = Records::default();
        records.set(Index::build(services, slices, now_serial()));
        records
    }

    /// The index as it is now; later updates do not change the returned one.
    pub fn snapshot(&self) -> Arc<Index> {
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn set(&self, index: Index) {
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(index);
    }
}

/// The watches behind [`Records`]; stops them when dropped.
pub struct Watch {
    services: Informer<Service>,
    slices: Informer<EndpointSlice>,
    changed: Arc<Notify>,
    _stop: StopOnDrop,
}

impl Watch {
    /// Starts watching every namespace's Services and EndpointSlices.
    pub fn start(client: kube::Client) -> Watch {
        let services = Informer::<Service>::start(Api::all(client.clone()));
        let slices = Informer::<EndpointSlice>::start(Api::all(client));
        let changed = Arc::new(Notify::new());
        let n = changed.clone();
        services.on_change(move |_| n.notify_one());
        let n = changed.clone();
        slices.on_change(move |_| n.notify_one());
        let stop = StopOnDrop(vec![services.stopper(), slices.stopper()]);
        Watch {
            services,
            slices,
            changed,
            _stop: stop,
        }
    }

    /// Waits (a bounded time) for both first lists, then fills `records`.
    pub async fn sync(&self, records: &Records) {
        let synced = async {
            self.services.wait_synced().await;
            self.slices.wait_synced().await;
        };
        if tokio::time::timeout(SYNC_WAIT, synced).await.is_err() {
            tracing::warn!("Services/EndpointSlices not listed yet; serving what is known");
        }
        self.rebuild(records);
    }

    /// Rebuilds `records` after every change, forever.
    pub async fn keep_updated(&self, records: &Records) {
        loop {
            // `notify_one` stores a permit, so a change during a rebuild triggers another.
            self.changed.notified().await;
            self.rebuild(records);
        }
    }

    fn rebuild(&self, records: &Records) {
        let started = std::time::Instant::now();
        let services = self.services.list();
        let slices = self.slices.list();
        records.set(Index::build(&services, &slices, now_serial()));
        tracing::debug!(
            services = services.len(),
            slices = slices.len(),
            took = ?started.elapsed(),
            "DNS records rebuilt"
        );
    }
}

/// Seconds since the epoch as a SOA serial (wraps in 2106, as serial arithmetic allows).
fn now_serial() -> u32 {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default();
    (secs & u64::from(u32::MAX)) as u32
}
