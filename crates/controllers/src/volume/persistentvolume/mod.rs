//! The PersistentVolume controller (upstream's `pkg/controller/volume/persistentvolume`,
//! 1.33): binds claims to volumes in two steps (the volume's claimRef first, then the claim's
//! volumeName) so that any step may fail, be raced or repeated and the next sync finishes or
//! undoes it; marks volumes Available / Bound / Released / Failed and claims Pending / Bound /
//! Lost; asks provisioners for volumes of claims no volume fits; reclaims released volumes.
//!
//! `matching` (in `common::storage`, shared with the scheduler) chooses a volume, `index.rs` is the controller's own cache, `sync_claim.rs`
//! and `sync_volume.rs` the two state machines, `binder.rs` the writes, `provision.rs`
//! default classes, WaitForFirstConsumer and provisioning, `reclaim.rs` Retain / Delete /
//! Recycle, `operations.rs` their back-off.

mod binder;
pub mod index;
pub use common::storage::matching;
mod operations;
mod provision;
mod reclaim;
mod sync_claim;
mod sync_volume;
#[cfg(test)]
mod tests;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::api::core::v1::{PersistentVolume, PersistentVolumeClaim, Pod};
use k8s_openapi::api::storage::v1::StorageClass;
use kube::{Api, Client};

use crate::volume::claims;
use client_go::events::Recorder;
use client_go::informer::{Change, Informer, key_of, wait_for_cache_sync};
use client_go::queue::WorkQueue;
use client_go::reconciler::{self, Action, Reconciler};
use index::{ClaimStore, VolumeIndex};
use operations::Operations;

/// The name the controller's events carry.
const COMPONENT: &str = "persistentvolume-controller";

/// The informers the controller reads.
pub struct Sources {
    pub volumes: Informer<PersistentVolume>,
    pub claims: Informer<PersistentVolumeClaim>,
    pub classes: Informer<StorageClass>,
    pub pods: Informer<Pod>,
}

pub struct PersistentVolumeController {
    client: Client,
    src: Sources,
    /// The controller's own view: informer versions and its own writes, newest kept.
    volumes: Mutex<VolumeIndex>,
    claims: Mutex<ClaimStore>,
    /// One worker each, as upstream: two claim syncs at once could bind one volume twice.
    claim_queue: Arc<WorkQueue>,
    volume_queue: Arc<WorkQueue>,
    operations: Operations,
    recorder: Recorder,
    sync_period: Duration,
}

/// The volume queue's worker (upstream's volumeWorker).
struct VolumeWorker(Arc<PersistentVolumeController>);

impl Reconciler for VolumeWorker {
    const NAME: &'static str = "persistentvolume-volumes";

    async fn reconcile(self: &Arc<Self>, key: &str) -> anyhow::Result<Action> {
        self.0.volume_worker(key).await
    }
}

/// The claim queue's worker (upstream's claimWorker).
struct ClaimWorker(Arc<PersistentVolumeController>);

impl Reconciler for ClaimWorker {
    const NAME: &'static str = "persistentvolume-claims";

    async fn reconcile(self: &Arc<Self>, key: &str) -> anyhow::Result<Action> {
        self.0.claim_worker(key).await
    }
}

impl PersistentVolumeController {
    pub fn new(client: Client, src: Sources, sync_period: Duration) -> Arc<Self> {
        let c = Arc::new(PersistentVolumeController {
            recorder: Recorder::new(client.clone(), COMPONENT),
            client,
            src,
            volumes: Mutex::new(VolumeIndex::default()),
            claims: Mutex::new(ClaimStore::default()),
            claim_queue: WorkQueue::new(),
            volume_queue: WorkQueue::new(),
            operations: Operations::default(),
            sync_period,
        });
        // Every change, deletions included, is looked at by a worker: it tells a deletion by
        // the object's absence from the informer.
        let q = c.volume_queue.clone();
        c.src
            .volumes
            .on_change(move |ch: &Change<PersistentVolume>| {
                if let Some(v) = ch.object() {
                    q.add(key_of(v.as_ref()));
                }
            });
        let q = c.claim_queue.clone();
        c.src
            .claims
            .on_change(move |ch: &Change<PersistentVolumeClaim>| {
                if let Some(v) = ch.object() {
                    q.add(key_of(v.as_ref()));
                }
            });
        c
    }

    pub async fn run(self: Arc<Self>) {
        let s = &self.src;
        wait_for_cache_sync(&[&s.volumes, &s.claims, &s.classes, &s.pods]).await;
        // Filled before the first sync, so no claim is matched against a half-known world.
        {
            let mut volumes = self.lock_volumes();
            for v in self.src.volumes.list() {
                volumes.store(v);
            }
        }
        {
            let mut store = self.lock_claims();
            for c in self.src.claims.list() {
                store.store(c);
            }
        }
        // One worker each (see the queues); the caches are synced already.
        let volumes = Arc::new(VolumeWorker(self.clone()));
        let claims = Arc::new(ClaimWorker(self.clone()));
        futures::join!(
            reconciler::run(&volumes, &self.volume_queue, &[], 1),
            reconciler::run(&claims, &self.claim_queue, &[], 1),
            self.resync()
        );
    }

    /// Every claim and volume again every sync period (informers here do not resync).
    async fn resync(&self) {
        let mut tick = tokio::time::interval(self.sync_period);
        tick.tick().await;
        loop {
            tick.tick().await;
            for c in self.src.claims.list() {
                self.claim_queue.add(key_of(c.as_ref()));
            }
            for v in self.src.volumes.list() {
                self.volume_queue.add(key_of(v.as_ref()));
            }
        }
    }

    fn lock_volumes(&self) -> std::sync::MutexGuard<'_, VolumeIndex> {
        self.volumes.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn lock_claims(&self) -> std::sync::MutexGuard<'_, ClaimStore> {
        self.claims.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A volume added, changed or resynced (in the informer), or deleted (gone from it).
    async fn volume_worker(&self, key: &str) -> anyhow::Result<Action> {
        if let Some(volume) = self.src.volumes.get_key(key) {
            if !self.lock_volumes().store(volume.clone()) {
                // An older version than one the controller wrote itself.
                return Ok(Action::Done);
            }
            return self.sync_volume(volume).await.map(|()| Action::Done);
        }
        let Some(gone) = self.lock_volumes().remove(key) else {
            return Ok(Action::Done);
        };
        tracing::debug!(volume = key, "volume deleted");
        // Its claim learns it is Lost now rather than at the next resync.
        if let Some(r) = claims::claim_ref(&gone) {
            self.claim_queue.add(claims::claim_ref_key(r));
        }
        Ok(Action::Done)
    }

    /// A claim added, changed or resynced, or deleted.
    async fn claim_worker(&self, key: &str) -> anyhow::Result<Action> {
        if let Some(claim) = self.src.claims.get_key(key) {
            if !self.lock_claims().store(claim.clone()) {
                return Ok(Action::Done);
            }
            return self.sync_claim(claim).await.map(|()| Action::Done);
        }
        let Some(gone) = self.lock_claims().remove(key) else {
            return Ok(Action::Done);
        };
        tracing::debug!(claim = key, "claim deleted");
        // Its volume is released now rather than at the next resync.
        let volume = claims::volume_name(&gone);
        if !volume.is_empty() {
            self.volume_queue.add(volume);
        }
        Ok(Action::Done)
    }

    fn volumes_api(&self) -> Api<PersistentVolume> {
        Api::all(self.client.clone())
    }

    fn claims_api(&self, claim: &PersistentVolumeClaim) -> Api<PersistentVolumeClaim> {
        Api::namespaced(
            self.client.clone(),
            claim.metadata.namespace.as_deref().unwrap_or_default(),
        )
    }
}
