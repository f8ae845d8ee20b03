//! `persistentVolumeClaim` and generic `ephemeral` volumes: upstream's desired-state populator
//! resolving the claim to its bound PersistentVolume (`getPVCExtractPV` + `getPVSpec`, with
//! their messages), the kubelet's node-affinity check of the volume, then the volume's source
//! bound at `volumes/kubernetes.io~local-volume/<volume>`: `local` (see [`super::local`]) or
//! `hostPath` (the inline plugin's type checks, then the same bind), or `nfs` mounted there
//! (see [`super::nfs`], with the PV's `mountOptions`).
//!
//! An ephemeral volume's claim is `<pod>-<volume>`, made by the ephemeral-volume controller; it
//! must be controlled by the pod (upstream refuses a claim of the same name made by anyone
//! else). The claim's `readOnly` makes the mount read-only (a PV's `ReadOnlyMany` access mode
//! does not, as upstream). fsGroup applies to `local` volumes mounted read-write, not to
//! `hostPath` ones, as upstream.
//!
//! A volume is resolved until it is mounted once; later syncs find the mount and leave it
//! (upstream keeps a mounted volume in its actual state of the world, whatever the claim does
//! meanwhile) — an NFS mount whose FUSE helper died excepted, mounted again. Teardown is the
//! volume manager's: unmount, then remove the mount point.
//!
//! Expansion (upstream's node expansion): once the expand controller has grown the volume and
//! marked the claim `FileSystemResizePending`, the kubelet of a node with a pod using it —
//! at the mount, or at a later sync, which reads the claim again (best effort, 5 s at most) —
//! sets `status.capacity` to the volume's and clears the condition and
//! `allocatedResourceStatuses[storage]`; the volumes mounted here have no filesystem of their
//! own to grow, so that is the whole node step.

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::storage::{claims, matching, pods};
use futures::future::BoxFuture;
use k8s_openapi::api::core::v1::{Node, PersistentVolume, PersistentVolumeClaim, Pod, Volume};
use kube::Api;
use kube::api::{Patch, PatchParams};
use tracing::{debug, info, warn};

use crate::events::EventTarget;

use super::{
    MountStage, VolumeError, VolumeHost, VolumePlugin, fs_group, go_error, host_path, local, nfs,
    set_volume_ownership,
};

pub struct PersistentVolumeClaimPlugin;

/// The claim a volume uses, and whether it is an ephemeral volume's.
pub fn claim_of(pod: &Pod, v: &Volume) -> Option<(String, bool)> {
    match (&v.persistent_volume_claim, &v.ephemeral) {
        (Some(src), _) => Some((src.claim_name.clone(), false)),
        (None, Some(_)) => Some((pods::ephemeral_claim_name(pod, v), true)),
        _ => None,
    }
}

/// A client error as Go's client prints it (the API's message when it sent one).
fn api_error(e: &kube::Error) -> String {
    match e {
        kube::Error::Api(s) => s.message.clone(),
        other => other.to_string(),
    }
}

/// Upstream's `getPVCExtractPV` checks on the claim.
pub fn check_claim(claim: &PersistentVolumeClaim) -> Result<(), String> {
    if claim.metadata.deletion_timestamp.is_some() {
        return Err("PVC is being deleted".into());
    }
    if claims::claim_phase(claim) != claims::PHASE_BOUND {
        return Err("PVC is not bound".into());
    }
    if claims::volume_name(claim).is_empty() {
        return Err("PVC has empty pvc.Spec.VolumeName".into());
    }
    Ok(())
}

/// Upstream's `getPVSpec` checks: the volume is bound to this very claim.
pub fn check_volume(pv: &PersistentVolume, claim: &PersistentVolumeClaim) -> Result<(), String> {
    let name = claims::name(&pv.metadata);
    let Some(r) = claims::claim_ref(pv) else {
        return Err(format!(
            "found PV object {name} but it has a nil pv.Spec.ClaimRef indicating it is not yet bound to the claim"
        ));
    };
    let (have, want) = (
        r.uid.as_deref().unwrap_or_default(),
        claims::uid(&claim.metadata),
    );
    if have != want {
        return Err(format!(
            "found PV object {name} but its pv.Spec.ClaimRef.UID {have} does not point to claim.UID {want}"
        ));
    }
    Ok(())
}

/// The claim of the pod's volume `v` and its bound PersistentVolume, as upstream's populator
/// finds them.
async fn resolve(
    host: &VolumeHost,
    pod: &Pod,
    v: &Volume,
) -> Result<(PersistentVolumeClaim, PersistentVolume), VolumeError> {
    let ns = pod.metadata.namespace.as_deref().unwrap_or_default();
    let (claim_name, ephemeral) = claim_of(pod, v).unwrap_or_default();
    let process = |message: String| VolumeError {
        volume: v.name.clone(),
        message,
        stage: MountStage::Process,
    };
    let processing = |m: String| process(format!("error processing PVC {ns}/{claim_name}: {m}"));
    let claims_api: Api<PersistentVolumeClaim> = Api::namespaced(host.client.clone(), ns);
    let claim = claims_api.get(&claim_name).await.map_err(|e| {
        processing(format!(
            "failed to fetch PVC from API server: {}",
            api_error(&e)
        ))
    })?;
    check_claim(&claim).map_err(processing)?;
    if ephemeral {
        pods::ephemeral_claim_is_for_pod(pod, &claim).map_err(process)?;
    }
    let pv_name = claims::volume_name(&claim);
    let volumes: Api<PersistentVolume> = Api::all(host.client.clone());
    let pv = volumes.get(pv_name).await.map_err(|e| {
        processing(format!(
            "failed to fetch PV {pv_name} from API server: {}",
            api_error(&e)
        ))
    })?;
    check_volume(&pv, &claim).map_err(processing)?;
    let mode = claims::volume_volume_mode(&pv);
    if mode != "Filesystem" {
        return Err(process(format!(
            "volume {} has volumeMode {mode}, but is specified in volumeMounts",
            v.name
        )));
    }
    Ok((claim, pv))
}

/// The claim's condition while the node's step of an expansion is pending.
const FS_RESIZE_PENDING: &str = "FileSystemResizePending";
/// How long the expansion check of a mounted volume may take: it is best effort, and a slow
/// API server must not hold the pod's worker nor fail the volume.
const RESIZE_CHECK_TIMEOUT: Duration = Duration::from_secs(5);

/// Whether the expand controller asked the node to finish expanding the claim's volume
/// (upstream's `FileSystemResizePending`, or `allocatedResourceStatuses[storage]:
/// NodeResizePending`).
pub fn resize_pending(claim: &PersistentVolumeClaim) -> bool {
    let status = claim.status.as_ref();
    let condition = status
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| {
            cs.iter()
                .any(|c| c.type_ == FS_RESIZE_PENDING && c.status == "True")
        });
    let node_pending = status
        .and_then(|s| s.allocated_resource_statuses.as_ref())
        .and_then(|m| m.get("storage"))
        .is_some_and(|s| s == "NodeResizePending");
    condition || node_pending
}

/// The status patch that finishes an expansion (upstream's `MarkFSResizeFinished`): the
/// claim's capacity is the volume's, the condition and the resize status gone.
pub fn resize_finished_patch(
    claim: &PersistentVolumeClaim,
    pv: &PersistentVolume,
) -> Option<serde_json::Value> {
    let size = pv
        .spec
        .as_ref()
        .and_then(|s| s.capacity.as_ref())
        .and_then(|c| c.get("storage"))?;
    let status = claim.status.clone().unwrap_or_default();
    let conditions: Vec<_> = status
        .conditions
        .unwrap_or_default()
        .into_iter()
        .filter(|c| c.type_ != FS_RESIZE_PENDING && c.type_ != "Resizing")
        .collect();
    // Emptied lists and maps go (null), so the claim reads as one never resized.
    let others = status
        .allocated_resource_statuses
        .unwrap_or_default()
        .into_keys()
        .any(|k| k != "storage");
    let statuses = if others {
        serde_json::json!({"storage": null})
    } else {
        serde_json::Value::Null
    };
    let conditions = if conditions.is_empty() {
        serde_json::Value::Null
    } else {
        serde_json::json!(conditions)
    };
    Some(serde_json::json!({"status": {
        "capacity": {"storage": size},
        "conditions": conditions,
        "allocatedResourceStatuses": statuses,
    }}))
}

/// The node's step of an expansion asked for: none for the volumes mounted here (a
/// directory, an export: nothing to grow), so only the claim's status, with upstream's
/// `FileSystemResizeSuccessful` event on the pod. Failures are logged and retried at the
/// next sync; the volume serves on meanwhile.
async fn finish_expansion(
    host: &VolumeHost,
    pod: &Pod,
    claim: &PersistentVolumeClaim,
    pv: &PersistentVolume,
) -> Result<(), String> {
    if !resize_pending(claim) {
        return Ok(());
    }
    let Some(patch) = resize_finished_patch(claim, pv) else {
        return Ok(());
    };
    let ns = claim.metadata.namespace.as_deref().unwrap_or_default();
    let name = claims::name(&claim.metadata);
    let pv_name = claims::name(&pv.metadata);
    let api: Api<PersistentVolumeClaim> = Api::namespaced(host.client.clone(), ns);
    api.patch_status(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .map_err(|e| {
            format!(
                "updating the status of claim {ns}/{name}: {}",
                api_error(&e)
            )
        })?;
    info!(claim = %format!("{ns}/{name}"), pv = pv_name, capacity = %patch["status"]["capacity"]["storage"], "volume expansion finished on the node");
    EventTarget::pod(&host.events, pod).normal(
        "FileSystemResizeSuccessful",
        format!(
            "MountVolume.NodeExpandVolume succeeded for volume {pv_name:?} {}",
            host.node_name
        ),
    );
    Ok(())
}

/// [`finish_expansion`] right after a mount, with the claim and volume just read.
async fn finish_expansion_logged(
    host: &VolumeHost,
    pod: &Pod,
    v: &Volume,
    claim: &PersistentVolumeClaim,
    pv: &PersistentVolume,
) {
    match tokio::time::timeout(RESIZE_CHECK_TIMEOUT, finish_expansion(host, pod, claim, pv)).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => warn!(volume = %v.name, error = %e, "cannot finish a volume expansion"),
        Err(_) => debug!(volume = %v.name, "volume expansion update timed out"),
    }
}

/// [`finish_expansion`] for a volume mounted at an earlier sync: the claim read again (and
/// the volume only when an expansion is pending), everything best effort.
async fn check_expansion(host: &VolumeHost, pod: &Pod, v: &Volume) {
    let check = async {
        let ns = pod.metadata.namespace.as_deref().unwrap_or_default();
        let (claim_name, _) = claim_of(pod, v).unwrap_or_default();
        let claims_api: Api<PersistentVolumeClaim> = Api::namespaced(host.client.clone(), ns);
        let claim = claims_api
            .get(&claim_name)
            .await
            .map_err(|e| format!("reading claim {ns}/{claim_name}: {}", api_error(&e)))?;
        if !resize_pending(&claim) {
            return Ok(());
        }
        let pv_name = claims::volume_name(&claim);
        let pv = Api::<PersistentVolume>::all(host.client.clone())
            .get(pv_name)
            .await
            .map_err(|e| format!("reading volume {pv_name}: {}", api_error(&e)))?;
        check_volume(&pv, &claim)?;
        finish_expansion(host, pod, &claim, &pv).await
    };
    match tokio::time::timeout(RESIZE_CHECK_TIMEOUT, check).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => warn!(volume = %v.name, error = %e, "cannot finish a volume expansion"),
        Err(_) => debug!(volume = %v.name, "volume expansion check timed out"),
    }
}

/// Upstream's `CheckNodeAffinity` of the volume against this node's labels.
async fn check_node_affinity(host: &VolumeHost, pv: &PersistentVolume) -> Result<(), VolumeError> {
    let failed = |message: String| VolumeError {
        volume: claims::name(&pv.metadata).to_owned(),
        message,
        stage: MountStage::NodeAffinity,
    };
    let has_affinity = pv
        .spec
        .as_ref()
        .and_then(|s| s.node_affinity.as_ref())
        .and_then(|a| a.required.as_ref())
        .is_some();
    if !has_affinity {
        return Ok(());
    }
    let nodes: Api<Node> = Api::all(host.client.clone());
    let node = nodes
        .get(&host.node_name)
        .await
        .map_err(|e| failed(api_error(&e)))?;
    let labels = node.metadata.labels.unwrap_or_default();
    let info = matching::NodeInfo {
        name: &host.node_name,
        labels: &labels,
    };
    if matching::check_node_affinity(pv, info) {
        Ok(())
    } else {
        Err(failed("no matching NodeSelectorTerms".into()))
    }
}

impl VolumePlugin for PersistentVolumeClaimPlugin {
    fn name(&self) -> &'static str {
        "kubernetes.io/local-volume"
    }

    fn can_support(&self, v: &Volume) -> bool {
        v.persistent_volume_claim.is_some() || v.ephemeral.is_some()
    }

    fn volume_read_only(&self, v: &Volume) -> bool {
        v.persistent_volume_claim
            .as_ref()
            .and_then(|c| c.read_only)
            .unwrap_or(false)
    }

    fn set_up<'a>(
        &'a self,
        host: &'a VolumeHost,
        pod: &'a Pod,
        v: &'a Volume,
        dir: &'a Path,
    ) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(async move {
            self.set_up_volume(host, pod, v, dir)
                .await
                .map_err(|e| e.message)
        })
    }

    fn set_up_volume<'a>(
        &'a self,
        host: &'a VolumeHost,
        pod: &'a Pod,
        v: &'a Volume,
        dir: &'a Path,
    ) -> BoxFuture<'a, Result<(), VolumeError>> {
        Box::pin(async move {
            // From mountinfo (and the FUSE helper's liveness) only: stat through an NFS mount
            // could wait on its server. A FUSE mount whose helper died is mounted again below.
            if nfs::mount_state(host, dir) == nfs::MountState::Mounted {
                check_expansion(host, pod, v).await;
                return Ok(());
            }
            let (claim, pv) = resolve(host, pod, v).await?;
            check_node_affinity(host, &pv).await?;
            let pv_name = claims::name(&pv.metadata).to_owned();
            let new_mounter = |message: String| VolumeError {
                volume: pv_name.clone(),
                message,
                stage: MountStage::NewMounter,
            };
            let read_only = self.volume_read_only(v);
            let spec = pv.spec.clone().unwrap_or_default();
            if let Some(src) = &spec.nfs {
                // The PV's own readOnly, or the claim's, as upstream's nfs plugin.
                let ro = read_only || src.read_only.unwrap_or(false);
                let options = spec.mount_options.clone().unwrap_or_default();
                nfs::mount(
                    host,
                    (pod, &v.name),
                    &src.server,
                    &src.path,
                    ro,
                    &options,
                    dir,
                )
                .await
                .map_err(|m| VolumeError::set_up(&pv_name, m))?;
                finish_expansion_logged(host, pod, v, &claim, &pv).await;
                return Ok(());
            }
            let (src, is_local) = if spec.local.is_some() {
                (
                    PathBuf::from(local::source_path(&pv).map_err(new_mounter)?),
                    true,
                )
            } else if let Some(hp) = &spec.host_path {
                host_path::check_type(Path::new(&hp.path), hp.type_.as_deref().unwrap_or(""))
                    .map_err(|m| VolumeError::set_up(&pv_name, m))?;
                (PathBuf::from(&hp.path), false)
            } else {
                return Err(new_mounter("no volume plugin matched".into()));
            };
            let fresh = local::bind(&src, dir, read_only).map_err(|e| {
                VolumeError::set_up(
                    &pv_name,
                    format!(
                        "mount {} to {}: {}",
                        src.display(),
                        dir.display(),
                        go_error(&e)
                    ),
                )
            })?;
            if fresh {
                info!(volume = %v.name, pv = %pv_name, src = %src.display(), read_only, "persistent volume mounted");
                // Upstream's local plugin sets ownership on a read-write mount; hostPath never.
                if is_local
                    && !read_only
                    && let Some(gid) = fs_group(pod)
                {
                    set_volume_ownership(dir, gid, false);
                }
            }
            finish_expansion_logged(host, pod, v, &claim, &pv).await;
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn claim(v: serde_json::Value) -> PersistentVolumeClaim {
        serde_json::from_value(v).unwrap_or_default()
    }

    #[test]
    fn claims_are_checked_as_upstream() {
        let bound = claim(json!({"metadata": {"name": "c", "uid": "u1"},
            "spec": {"volumeName": "pv1"}, "status": {"phase": "Bound"}}));
        assert_eq!(check_claim(&bound), Ok(()));
        let pending = claim(json!({"metadata": {"name": "c"}, "status": {"phase": "Pending"}}));
        assert_eq!(check_claim(&pending), Err("PVC is not bound".into()));
        let deleting = claim(json!({"metadata": {"name": "c",
            "deletionTimestamp": "2026-01-01T00:00:00Z"}, "status": {"phase": "Bound"}}));
        assert_eq!(check_claim(&deleting), Err("PVC is being deleted".into()));
        let no_volume = claim(json!({"metadata": {"name": "c"}, "status": {"phase": "Bound"}}));
        assert_eq!(
            check_claim(&no_volume),
            Err("PVC has empty pvc.Spec.VolumeName".into())
        );

        let pv = |r: serde_json::Value| -> PersistentVolume {
            serde_json::from_value(json!({"metadata": {"name": "pv1"}, "spec": r}))
                .unwrap_or_default()
        };
        assert_eq!(
            check_volume(&pv(json!({"claimRef": {"name": "c", "uid": "u1"}})), &bound),
            Ok(())
        );
        assert_eq!(
            check_volume(&pv(json!({})), &bound),
            Err("found PV object pv1 but it has a nil pv.Spec.ClaimRef indicating it is not yet bound to the claim".into())
        );
        assert_eq!(
            check_volume(&pv(json!({"claimRef": {"name": "c", "uid": "u2"}})), &bound),
            Err("found PV object pv1 but its pv.Spec.ClaimRef.UID u2 does not point to claim.UID u1".into())
        );
    }

    #[test]
    fn expansions_finish_with_the_volumes_capacity() {
        let pending = claim(json!({"metadata": {"name": "c"},
            "status": {"phase": "Bound", "capacity": {"storage": "64Mi"},
                "allocatedResources": {"storage": "128Mi"},
                "allocatedResourceStatuses": {"storage": "NodeResizePending"},
                "conditions": [{"type": "FileSystemResizePending", "status": "True"},
                    {"type": "ModifyingVolume", "status": "True"}]}}));
        let done = claim(json!({"metadata": {"name": "c"},
            "status": {"phase": "Bound", "capacity": {"storage": "128Mi"}}}));
        assert!(resize_pending(&pending) && !resize_pending(&done));
        let pv: PersistentVolume = serde_json::from_value(json!({"metadata": {"name": "pv1"},
            "spec": {"capacity": {"storage": "128Mi"}}}))
        .unwrap_or_default();
        assert_eq!(
            resize_finished_patch(&pending, &pv),
            Some(json!({"status": {"capacity": {"storage": "128Mi"},
                "conditions": [{"type": "ModifyingVolume", "status": "True"}],
                "allocatedResourceStatuses": null}}))
        );
        let only_condition = claim(json!({"metadata": {"name": "c"},
            "status": {"capacity": {"storage": "64Mi"},
                "allocatedResourceStatuses": {"storage": "NodeResizePending", "cpu": "x"},
                "conditions": [{"type": "FileSystemResizePending", "status": "True"}]}}));
        assert_eq!(
            resize_finished_patch(&only_condition, &pv),
            Some(json!({"status": {"capacity": {"storage": "128Mi"},
                "conditions": null, "allocatedResourceStatuses": {"storage": null}}}))
        );
    }

    #[test]
    fn ephemeral_volumes_use_the_pods_claim() {
        let pod: Pod = serde_json::from_value(json!({"metadata": {"name": "web", "uid": "p1"},
            "spec": {"containers": []}}))
        .unwrap_or_default();
        let eph: Volume =
            serde_json::from_value(json!({"name": "scratch", "ephemeral": {}})).unwrap_or_default();
        let pvc: Volume = serde_json::from_value(
            json!({"name": "data", "persistentVolumeClaim": {"claimName": "db", "readOnly": true}}),
        )
        .unwrap_or_default();
        assert_eq!(claim_of(&pod, &eph), Some(("web-scratch".into(), true)));
        assert_eq!(claim_of(&pod, &pvc), Some(("db".into(), false)));
        let p = PersistentVolumeClaimPlugin;
        assert!(p.can_support(&eph) && p.can_support(&pvc));
        assert!(p.volume_read_only(&pvc) && !p.volume_read_only(&eph));
    }

    #[test]
    fn events_read_as_upstream() {
        let e = VolumeError {
            volume: "data".into(),
            message: "error processing PVC default/db: PVC is not bound".into(),
            stage: MountStage::Process,
        };
        assert_eq!(
            e.to_string(),
            "Unable to attach or mount volumes: unmounted volumes=[data], unattached volumes=[data], failed to process volumes=[data]: error processing PVC default/db: PVC is not bound"
        );
        let e = VolumeError {
            volume: "pv1".into(),
            message: "path \"/x\" does not exist".into(),
            stage: MountStage::NewMounter,
        };
        assert_eq!(
            e.to_string(),
            "MountVolume.NewMounter initialization failed for volume \"pv1\" : path \"/x\" does not exist"
        );
    }
}
