//! The expand controller (upstream's `pkg/controller/volume/expand`, for rkube's volume
//! types): a bound claim whose `spec.resources.requests.storage` grew past its
//! `status.capacity`, of a class with `allowVolumeExpansion: true`, gets its PersistentVolume's
//! capacity raised, then the node step asked for as upstream does it for volumes needing one —
//! `status.allocatedResources[storage]`, `status.allocatedResourceStatuses[storage]:
//! NodeResizePending` and the `FileSystemResizePending` condition — which the kubelet of a node
//! running a pod with the claim completes (`status.capacity` set, the condition and the
//! resize status cleared; `kubelet::volumes::persistent_volume_claim`).
//!
//! `local`, `hostPath` and `nfs` volumes (local-path ones included) are a directory or an
//! export with no size of their own, so the controller's step is the PV's capacity and the
//! node's only the claim's status. Claims of other volume types, or of classes that do not
//! allow expansion, are left as they are with a `VolumeResizeFailed` warning (the API
//! server's PersistentVolumeClaimResize admission refuses the latter's edit already; the
//! warning covers claims grown while that plugin is disabled).

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use k8s_openapi::api::core::v1::{
    PersistentVolume, PersistentVolumeClaim, PersistentVolumeClaimCondition,
};
use k8s_openapi::api::storage::v1::StorageClass;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::PostParams;
use kube::{Api, Client};

use crate::volume::claims;
use client_go::events::Recorder;
use client_go::informer::{Change, Informer, key_of};
use client_go::queue::WorkQueue;
use client_go::reconciler::{self, Action, Reconciler};

/// The condition a claim carries while its node step is pending.
pub const FS_RESIZE_PENDING: &str = "FileSystemResizePending";
/// `allocatedResourceStatuses[storage]` while the node step is pending.
pub const NODE_RESIZE_PENDING: &str = "NodeResizePending";
const STORAGE: &str = "storage";

/// A quantity in bytes (`None` when it does not parse).
pub fn bytes(q: &Quantity) -> Option<i64> {
    common::quantity::parse_scaled(&q.0, 1)
}

fn storage_of(list: Option<&std::collections::BTreeMap<String, Quantity>>) -> Option<&Quantity> {
    list.and_then(|l| l.get(STORAGE))
}

/// The size the claim asks for, when it is more than its capacity (a bound claim whose request
/// grew).
pub fn wanted_size(claim: &PersistentVolumeClaim) -> Option<Quantity> {
    let requested = claim
        .spec
        .as_ref()
        .and_then(|s| s.resources.as_ref())
        .and_then(|r| storage_of(r.requests.as_ref()))?;
    let capacity = claim
        .status
        .as_ref()
        .and_then(|s| storage_of(s.capacity.as_ref()))
        .and_then(bytes)?;
    (bytes(requested)? > capacity).then(|| requested.clone())
}

/// Whether the volume's type grows with no step of its own (see the module's doc).
fn expandable(pv: &PersistentVolume) -> bool {
    pv.spec
        .as_ref()
        .is_some_and(|s| s.local.is_some() || s.host_path.is_some() || s.nfs.is_some())
}

pub struct ExpandController {
    client: Client,
    claims: Informer<PersistentVolumeClaim>,
    volumes: Informer<PersistentVolume>,
    classes: Informer<StorageClass>,
    recorder: Recorder,
    queue: Arc<WorkQueue>,
}

impl ExpandController {
    pub fn new(
        client: Client,
        claims: Informer<PersistentVolumeClaim>,
        volumes: Informer<PersistentVolume>,
        classes: Informer<StorageClass>,
    ) -> Arc<Self> {
        let c = Arc::new(ExpandController {
            recorder: Recorder::new(client.clone(), "volume_expand"),
            client,
            claims,
            volumes,
            classes,
            queue: WorkQueue::new(),
        });
        let q = c.queue.clone();
        c.claims
            .on_change(move |ch: &Change<PersistentVolumeClaim>| {
                if let Some(claim) = &ch.new
                    && claims::claim_phase(claim) == claims::PHASE_BOUND
                    && wanted_size(claim).is_some()
                {
                    q.add(key_of(claim.as_ref()));
                }
            });
        c
    }

    pub async fn run(self: Arc<Self>, workers: usize) {
        reconciler::run(
            &self,
            &self.queue,
            &[&self.claims, &self.volumes, &self.classes],
            workers,
        )
        .await;
    }
}

impl Reconciler for ExpandController {
    const NAME: &'static str = "volume-expand";

    async fn reconcile(self: &Arc<Self>, key: &str) -> anyhow::Result<Action> {
        let Some(claim) = self.claims.get_key(key) else {
            return Ok(Action::Done);
        };
        if claim.metadata.deletion_timestamp.is_some()
            || claims::claim_phase(&claim) != claims::PHASE_BOUND
        {
            return Ok(Action::Done);
        }
        let Some(size) = wanted_size(&claim) else {
            return Ok(Action::Done);
        };
        let status = claim.status.clone().unwrap_or_default();
        let pending = status
            .allocated_resource_statuses
            .as_ref()
            .and_then(|s| s.get(STORAGE))
            .is_some_and(|s| s == NODE_RESIZE_PENDING);
        let allocated = storage_of(status.allocated_resources.as_ref()).and_then(bytes);
        if pending && allocated >= bytes(&size) {
            // Asked already: the node's to finish.
            return Ok(Action::Done);
        }
        let class = claims::claim_class(&claim);
        let allowed = self
            .classes
            .get(None, class)
            .is_some_and(|c| c.allow_volume_expansion == Some(true));
        if !allowed {
            self.recorder.record(
                claim.as_ref(),
                true,
                "VolumeResizeFailed",
                format!(
                    "only dynamically provisioned pvc can be resized and the storageclass that provisions the pvc must support resize (class {class:?} does not allow volume expansion)"
                ),
            );
            return Ok(Action::Done);
        }
        let pv_name = claims::volume_name(&claim);
        let Some(pv) = self.volumes.get(None, pv_name) else {
            return Ok(Action::RequeueAfter(Duration::from_secs(5)));
        };
        if !expandable(&pv) {
            self.recorder.record(
                claim.as_ref(),
                true,
                "VolumeResizeFailed",
                format!("volume {pv_name} cannot be expanded: its type has no expander in rkube"),
            );
            return Ok(Action::Done);
        }
        self.expand_volume(&pv, &size).await?;
        self.ask_node(&claim, &size).await?;
        tracing::info!(claim = key, volume = pv_name, size = %size.0, "volume expanded; waiting for the node to finish");
        self.recorder.record(
            claim.as_ref(),
            false,
            "FileSystemResizeRequired",
            "Require file system resize of volume on node".into(),
        );
        Ok(Action::Done)
    }
}

impl ExpandController {
    /// The controller's step: the volume's capacity (nothing to grow behind it).
    async fn expand_volume(&self, pv: &PersistentVolume, size: &Quantity) -> anyhow::Result<()> {
        let spec = pv.spec.clone().unwrap_or_default();
        let current = storage_of(spec.capacity.as_ref()).and_then(bytes);
        if current >= bytes(size) {
            return Ok(());
        }
        let mut clone = pv.clone();
        clone
            .spec
            .get_or_insert_with(Default::default)
            .capacity
            .get_or_insert_with(Default::default)
            .insert(STORAGE.into(), size.clone());
        let name = claims::name(&pv.metadata);
        Api::<PersistentVolume>::all(self.client.clone())
            .replace(name, &PostParams::default(), &clone)
            .await
            .with_context(|| format!("updating the capacity of volume {name}"))?;
        Ok(())
    }

    /// The node step asked for (upstream's `MarkForFSResize`).
    async fn ask_node(&self, claim: &PersistentVolumeClaim, size: &Quantity) -> anyhow::Result<()> {
        let mut clone = claim.clone();
        let status = clone.status.get_or_insert_with(Default::default);
        status
            .allocated_resources
            .get_or_insert_with(Default::default)
            .insert(STORAGE.into(), size.clone());
        status
            .allocated_resource_statuses
            .get_or_insert_with(Default::default)
            .insert(STORAGE.into(), NODE_RESIZE_PENDING.into());
        let conditions = status.conditions.get_or_insert_with(Default::default);
        conditions.retain(|c| c.type_ != FS_RESIZE_PENDING);
        conditions.push(PersistentVolumeClaimCondition {
            type_: FS_RESIZE_PENDING.into(),
            status: "True".into(),
            message: Some(
                "Waiting for user to (re-)start a pod to finish file system resize of volume on node."
                    .into(),
            ),
            last_transition_time: Some(Time(k8s_openapi::jiff::Timestamp::now())),
            ..Default::default()
        });
        let ns = claim.metadata.namespace.as_deref().unwrap_or_default();
        let name = claims::name(&claim.metadata);
        Api::<PersistentVolumeClaim>::namespaced(self.client.clone(), ns)
            .replace_status(name, &PostParams::default(), &clone)
            .await
            .with_context(|| format!("asking the node to finish resizing claim {ns}/{name}"))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::json;

    fn claim(request: &str, capacity: Option<&str>) -> PersistentVolumeClaim {
        let mut c = json!({"metadata": {"name": "c", "namespace": "ns"},
            "spec": {"resources": {"requests": {"storage": request}}},
            "status": {"phase": "Bound"}});
        if let Some(cap) = capacity {
            c["status"]["capacity"] = json!({"storage": cap});
        }
        serde_json::from_value(c).unwrap()
    }

    #[test]
    fn only_grown_requests_ask_for_expansion() {
        assert_eq!(
            wanted_size(&claim("2Gi", Some("1Gi"))).map(|q| q.0),
            Some("2Gi".into())
        );
        // Same size in other units, smaller, or no capacity yet (not bound): nothing to do.
        assert!(wanted_size(&claim("1024Mi", Some("1Gi"))).is_none());
        assert!(wanted_size(&claim("512Mi", Some("1Gi"))).is_none());
        assert!(wanted_size(&claim("2Gi", None)).is_none());
        let pv = |spec: serde_json::Value| -> PersistentVolume {
            serde_json::from_value(json!({"metadata": {"name": "v"}, "spec": spec})).unwrap()
        };
        assert!(expandable(&pv(json!({"local": {"path": "/x"}}))));
        assert!(expandable(&pv(
            json!({"nfs": {"server": "s", "path": "/e"}})
        )));
        assert!(!expandable(&pv(
            json!({"iscsi": {"targetPortal": "t", "iqn": "i", "lun": 0}})
        )));
    }
}
