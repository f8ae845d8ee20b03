//! Which claims a pod uses (upstream's PodPVCIndex: `persistentVolumeClaim` volumes and the
//! claims of generic ephemeral volumes) and whether a pod is done with them.

use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod, Volume};

/// The claim name of a generic ephemeral volume: `<pod>-<volume>` (deterministic, so the
/// kubelet and the controllers agree without asking each other).
pub fn ephemeral_claim_name(pod: &Pod, volume: &Volume) -> String {
    format!(
        "{}-{}",
        pod.metadata.name.as_deref().unwrap_or_default(),
        volume.name
    )
}

/// Whether `claim` is the one made for the pod's ephemeral volume: the pod is its
/// controller. The error is upstream's words.
pub fn ephemeral_claim_is_for_pod(pod: &Pod, claim: &PersistentVolumeClaim) -> Result<(), String> {
    let pod_uid = pod.metadata.uid.as_deref().unwrap_or_default();
    let controlled = claim
        .metadata
        .owner_references
        .iter()
        .flatten()
        .any(|r| r.controller == Some(true) && r.uid == pod_uid);
    if claim.metadata.namespace != pod.metadata.namespace || !controlled {
        return Err(format!(
            "PVC {}/{} was not created for pod {}/{} (pod is not owner)",
            claim.metadata.namespace.as_deref().unwrap_or_default(),
            claim.metadata.name.as_deref().unwrap_or_default(),
            pod.metadata.namespace.as_deref().unwrap_or_default(),
            pod.metadata.name.as_deref().unwrap_or_default()
        ));
    }
    Ok(())
}

/// The names of the claims a pod references (same namespace as the pod).
pub fn claim_names(pod: &Pod) -> Vec<String> {
    pod.spec
        .iter()
        .flat_map(|s| s.volumes.iter().flatten())
        .filter_map(|v| {
            if let Some(c) = &v.persistent_volume_claim {
                Some(c.claim_name.clone())
            } else {
                v.ephemeral.as_ref().map(|_| ephemeral_claim_name(pod, v))
            }
        })
        .collect()
}

/// Whether the pod references claim `name` (the index lookup upstream does).
pub fn references_claim(pod: &Pod, name: &str) -> bool {
    claim_names(pod).iter().any(|n| n == name)
}

pub fn node_name(pod: &Pod) -> &str {
    pod.spec
        .as_ref()
        .and_then(|s| s.node_name.as_deref())
        .unwrap_or_default()
}

/// Upstream's IsPodTerminated: Succeeded or Failed, or being deleted with no container
/// running any more.
pub fn is_terminated(pod: &Pod) -> bool {
    let status = pod.status.as_ref();
    let phase = status.and_then(|s| s.phase.as_deref()).unwrap_or_default();
    if phase == "Succeeded" || phase == "Failed" {
        return true;
    }
    pod.metadata.deletion_timestamp.is_some()
        && status
            .and_then(|s| s.container_statuses.as_deref())
            .unwrap_or_default()
            .iter()
            .all(|c| {
                c.state
                    .as_ref()
                    .is_some_and(|s| s.terminated.is_some() || s.waiting.is_some())
            })
}

/// Whether the kubelet is done with the pod or it was force-deleted (a deletion with a zero
/// grace period): it then no longer keeps its ephemeral claims.
pub fn is_shut_down(pod: &Pod) -> bool {
    pod.metadata.deletion_timestamp.is_some()
        && pod.metadata.deletion_grace_period_seconds == Some(0)
}
