//! The built-in local-path provisioner (k3s' `rancher.io/local-path`, run as the
//! external-provisioner library runs it): claims the PersistentVolume controller annotated
//! for `rancher.io/local-path` get a volume `pvc-<claim uid>` on their selected node (classes
//! binding at once have no node and are refused, as local-path refuses them), pre-bound to
//! the claim for the PV controller to bind; released volumes with reclaim policy Delete are
//! deleted.
//!
//! The controller never touches a filesystem: the kubelet of the volume's node creates the
//! directory when it first mounts it, and removes directories of volumes that no longer exist.
//! `volume.rs` builds the volume, `storageclass.rs` has the shared names and the default class.

pub mod storageclass;
pub mod volume;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use k8s_openapi::api::core::v1::{Node, PersistentVolume, PersistentVolumeClaim};
use k8s_openapi::api::storage::v1::StorageClass;
use kube::api::{DeleteParams, PostParams};
use kube::{Api, Client};

use crate::volume::annotations::{
    self, BETA_STORAGE_PROVISIONER, PROVISIONED_BY, SELECTED_NODE, STORAGE_PROVISIONER,
};
use crate::volume::claims;
use client_go::events::Recorder;
use client_go::informer::{Change, HasSynced, Informer, key_of};
use client_go::queue::WorkQueue;
use client_go::reconciler::{self, Action, Reconciler};
use storageclass::{NODE_STORAGE_DIR, PROVISIONER};

/// How often a claim local-path refused is looked at again.
const REFUSED_RETRY: Duration = Duration::from_secs(15);

#[derive(Clone, Debug)]
pub struct Options {
    /// Where volumes go on nodes without the `rkube.io/local-storage-path` annotation.
    pub default_storage_dir: PathBuf,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            default_storage_dir: PathBuf::from("/var/lib/rkube/agent/storage"),
        }
    }
}

/// The informers the provisioner reads.
pub struct Sources {
    pub claims: Informer<PersistentVolumeClaim>,
    pub volumes: Informer<PersistentVolume>,
    pub classes: Informer<StorageClass>,
    pub nodes: Informer<Node>,
}

pub struct LocalPathProvisioner {
    client: Client,
    src: Sources,
    options: Options,
    claim_queue: Arc<WorkQueue>,
    volume_queue: Arc<WorkQueue>,
    recorder: Recorder,
}

/// Whether a released volume is this provisioner's to delete.
pub fn should_delete(volume: &PersistentVolume) -> bool {
    volume.metadata.deletion_timestamp.is_none()
        && claims::volume_phase(volume) == claims::PHASE_RELEASED
        && claims::reclaim_policy(volume) == "Delete"
        && annotations::get(&volume.metadata, PROVISIONED_BY) == Some(PROVISIONER)
}

/// The provisioner a claim was annotated for.
fn claim_provisioner(claim: &PersistentVolumeClaim) -> Option<&str> {
    annotations::get(&claim.metadata, STORAGE_PROVISIONER)
        .or_else(|| annotations::get(&claim.metadata, BETA_STORAGE_PROVISIONER))
}

impl LocalPathProvisioner {
    pub fn new(client: Client, src: Sources, options: Options) -> Arc<Self> {
        let c = Arc::new(LocalPathProvisioner {
            recorder: Recorder::new(client.clone(), PROVISIONER),
            client,
            src,
            options,
            claim_queue: WorkQueue::new(),
            volume_queue: WorkQueue::new(),
        });
        let q = c.claim_queue.clone();
        c.src
            .claims
            .on_change(move |ch: &Change<PersistentVolumeClaim>| {
                if let Some(claim) = &ch.new
                    && claim_provisioner(claim) == Some(PROVISIONER)
                {
                    q.add(key_of(claim.as_ref()));
                }
            });
        let q = c.volume_queue.clone();
        c.src
            .volumes
            .on_change(move |ch: &Change<PersistentVolume>| {
                if let Some(v) = &ch.new
                    && should_delete(v)
                {
                    q.add(key_of(v.as_ref()));
                }
            });
        c
    }

    pub async fn run(self: Arc<Self>, workers: usize) {
        let s = &self.src;
        let caches: [&dyn HasSynced; 4] = [&s.claims, &s.volumes, &s.classes, &s.nodes];
        let volumes = Arc::new(ReleasedVolumes(self.clone()));
        futures::join!(
            reconciler::run(&self, &self.claim_queue, &caches, workers),
            reconciler::run(&volumes, &self.volume_queue, &caches, 1),
        );
    }

    /// Whether the claim waits for this provisioner: unbound, annotated for it, and (for a
    /// WaitForFirstConsumer class) given a node by the scheduler.
    fn should_provision(&self, claim: &PersistentVolumeClaim) -> anyhow::Result<bool> {
        if !claims::volume_name(claim).is_empty() || claim_provisioner(claim) != Some(PROVISIONER) {
            return Ok(false);
        }
        let class = self.class_of(claim)?;
        if class.volume_binding_mode.as_deref() == Some("WaitForFirstConsumer") {
            return Ok(
                annotations::get(&claim.metadata, SELECTED_NODE).is_some_and(|n| !n.is_empty())
            );
        }
        Ok(true)
    }

    fn class_of(&self, claim: &PersistentVolumeClaim) -> anyhow::Result<Arc<StorageClass>> {
        let name = claims::claim_class(claim);
        self.src
            .classes
            .get(None, name)
            .ok_or_else(|| anyhow::anyhow!("storageclass.storage.k8s.io {name:?} not found"))
    }

    async fn node(&self, name: &str) -> anyhow::Result<Option<Arc<Node>>> {
        if let Some(n) = self.src.nodes.get(None, name) {
            return Ok(Some(n));
        }
        // A node registered a moment ago may not be cached yet.
        let api: Api<Node> = Api::all(self.client.clone());
        Ok(api
            .get_opt(name)
            .await
            .with_context(|| format!("reading node {name}"))?
            .map(Arc::new))
    }
}

impl Reconciler for LocalPathProvisioner {
    const NAME: &'static str = "local-path-claims";

    /// Provisions for a claim; a claim local-path refuses is tried again every
    /// [`REFUSED_RETRY`] (its class or the claim may be fixed).
    async fn reconcile(self: &Arc<Self>, key: &str) -> anyhow::Result<Action> {
        let Some(claim) = self.src.claims.get_key(key) else {
            return Ok(Action::Done);
        };
        if !self.should_provision(&claim)? {
            return Ok(Action::Done);
        }
        let pv_name = volume::volume_name(&claim);
        if self.src.volumes.get(None, &pv_name).is_some() {
            return Ok(Action::Done);
        }
        let class = self.class_of(&claim)?;
        if class.provisioner != PROVISIONER {
            return Ok(Action::Done);
        }
        if claims::claim_volume_mode(&claim) == "Block" {
            self.recorder.record(
                claim.as_ref(),
                true,
                "ProvisioningFailed",
                format!("{PROVISIONER} does not support block volume provisioning"),
            );
            return Ok(Action::Done);
        }
        let mut node = None;
        if let Some(name) = annotations::get(&claim.metadata, SELECTED_NODE) {
            node = self.node(name).await?;
            if node.is_none() {
                // The node is gone: the scheduler must choose again.
                self.recorder.record(
                    claim.as_ref(),
                    true,
                    "ProvisioningFailed",
                    format!("nodes {name:?} not found"),
                );
                return self.reschedule(&claim).await.map(|()| Action::Done);
            }
        }
        self.recorder.record(
            claim.as_ref(),
            false,
            "Provisioning",
            format!("External provisioner is provisioning volume for claim {key:?}"),
        );
        let storage_dir = node
            .as_deref()
            .and_then(|n| annotations::get(&n.metadata, NODE_STORAGE_DIR))
            .filter(|d| !d.is_empty())
            .map_or_else(
                || self.options.default_storage_dir.display().to_string(),
                String::from,
            );
        let pv = match volume::provision(&claim, &class, node.as_deref(), &storage_dir) {
            Ok(pv) => pv,
            Err(why) => {
                tracing::info!(claim = key, error = why, "local-path refuses the claim");
                self.recorder
                    .record(claim.as_ref(), true, "ProvisioningFailed", why);
                return Ok(Action::RequeueAfter(REFUSED_RETRY));
            }
        };
        let api: Api<PersistentVolume> = Api::all(self.client.clone());
        match api.create(&PostParams::default(), &pv).await {
            Ok(_) => {}
            // Made by an earlier attempt whose result was not seen.
            Err(kube::Error::Api(e)) if e.code == 409 => {}
            Err(e) => {
                let message = format!("Error creating provisioned PV object for claim {key}: {e}");
                self.recorder
                    .record(claim.as_ref(), true, "ProvisioningFailed", message);
                return Err(e).with_context(|| format!("creating volume {pv_name}"));
            }
        }
        tracing::info!(claim = key, volume = pv_name, path = ?pv.spec.as_ref().and_then(|s| s.local.as_ref()).map(|l| &l.path), "volume provisioned");
        self.recorder.record(
            claim.as_ref(),
            false,
            "ProvisioningSucceeded",
            format!("Successfully provisioned volume {pv_name}"),
        );
        Ok(Action::Done)
    }
}

/// The volume queue's reconciler: released volumes of ours whose reclaim policy is Delete.
struct ReleasedVolumes(Arc<LocalPathProvisioner>);

impl Reconciler for ReleasedVolumes {
    const NAME: &'static str = "local-path-volumes";

    async fn reconcile(self: &Arc<Self>, name: &str) -> anyhow::Result<Action> {
        self.0.sync_volume(name).await?;
        Ok(Action::Done)
    }
}

impl LocalPathProvisioner {
    /// Drops the claim's selected node so the scheduler places its pod again.
    async fn reschedule(&self, claim: &PersistentVolumeClaim) -> anyhow::Result<()> {
        let mut clone = claim.clone();
        if let Some(a) = clone.metadata.annotations.as_mut() {
            a.remove(SELECTED_NODE);
        }
        let api: Api<PersistentVolumeClaim> = Api::namespaced(
            self.client.clone(),
            claim.metadata.namespace.as_deref().unwrap_or_default(),
        );
        api.replace(
            claims::name(&claim.metadata),
            &PostParams::default(),
            &clone,
        )
        .await
        .with_context(|| {
            format!(
                "removing the selected node of claim {}",
                claims::claim_key(claim)
            )
        })?;
        Ok(())
    }

    /// Deletes a released volume of ours. Its directory stays for the node's kubelet to
    /// remove (and is gone with the node when the node is).
    async fn sync_volume(&self, name: &str) -> anyhow::Result<()> {
        if !self
            .src
            .volumes
            .get(None, name)
            .is_some_and(|v| should_delete(&v))
        {
            return Ok(());
        }
        // Decided on a fresh read: the claim may have been bound again meanwhile.
        let api: Api<PersistentVolume> = Api::all(self.client.clone());
        let Some(fresh) = api
            .get_opt(name)
            .await
            .with_context(|| format!("reading volume {name}"))?
        else {
            return Ok(());
        };
        if !should_delete(&fresh) {
            return Ok(());
        }
        if let Some(node) = volume::node_of(&fresh)
            && self.node(&node).await?.is_none()
        {
            tracing::info!(
                volume = name,
                node,
                "node does not exist, skipping cleanup of the volume's directory"
            );
        }
        match api.delete(name, &DeleteParams::default()).await {
            Ok(_) => {}
            Err(kube::Error::Api(e)) if e.code == 404 => {}
            Err(e) => {
                self.recorder
                    .record(&fresh, true, "VolumeFailedDelete", e.to_string());
                return Err(e).with_context(|| format!("deleting volume {name}"));
            }
        }
        tracing::info!(volume = name, "released volume deleted");
        Ok(())
    }
}

#[cfg(test)]
mod tests;
