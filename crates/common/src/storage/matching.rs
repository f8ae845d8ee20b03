//! Which volume a claim gets (upstream's FindMatchingVolume and its checks, in
//! `component-helpers/storage/volume`): used by the PV controller here and meant for the
//! scheduler's VolumeBinding too (the `node` argument is its path).

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use k8s_openapi::api::core::v1::{PersistentVolume, PersistentVolumeClaim};

use super::claims;

/// The node a scheduler checks volumes against: its labels and name.
#[derive(Clone, Copy, Debug)]
pub struct NodeInfo<'a> {
    pub name: &'a str,
    pub labels: &'a BTreeMap<String, String>,
}

/// Whether the volume is pre-bound or bound to this claim: same namespace and name, and the
/// same uid when the volume names one.
pub fn is_volume_bound_to_claim(volume: &PersistentVolume, claim: &PersistentVolumeClaim) -> bool {
    let Some(r) = claims::claim_ref(volume) else {
        return false;
    };
    if r.name != claim.metadata.name || r.namespace != claim.metadata.namespace {
        return false;
    }
    let ref_uid = r.uid.as_deref().unwrap_or_default();
    ref_uid.is_empty() || ref_uid == claims::uid(&claim.metadata)
}

/// Whether the volume offers every access mode the claim asks for.
pub fn check_access_modes(claim: &PersistentVolumeClaim, volume: &PersistentVolume) -> bool {
    let offered = claims::volume_access_modes(volume);
    claims::claim_access_modes(claim)
        .iter()
        .all(|m| offered.contains(m))
}

/// Whether claim and volume differ in volumeMode (Filesystem when unset).
pub fn volume_mode_mismatch(claim: &PersistentVolumeClaim, volume: &PersistentVolume) -> bool {
    claims::claim_volume_mode(claim) != claims::volume_volume_mode(volume)
}

/// Whether the volume's required node affinity admits the node (no affinity admits all).
pub fn check_node_affinity(volume: &PersistentVolume, node: NodeInfo<'_>) -> bool {
    let Some(required) = volume
        .spec
        .as_ref()
        .and_then(|s| s.node_affinity.as_ref())
        .and_then(|a| a.required.as_ref())
    else {
        return true;
    };
    required
        .node_selector_terms
        .iter()
        .any(|t| crate::scheduling::term_matches(t, node.labels, node.name))
}

/// The volume for `claim` among `volumes`: one pre-bound (or provisioned) for it wins at
/// once; otherwise the smallest Available volume of the claim's class whose labels the
/// claim's selector selects, big enough, of the same volumeMode, not being deleted.
///
/// `delay_binding` (the PV controller, WaitForFirstConsumer claims): only pre-bound volumes
/// are returned, the scheduler binds the rest. `node` (the scheduler): volumes must admit it,
/// and access modes are checked here (the PV controller's index already grouped them).
/// `excluded`: volumes the scheduler already chose for the pod's other claims. Among equal
/// sizes the first in `volumes` wins.
pub fn find_matching_volume<'a>(
    claim: &PersistentVolumeClaim,
    volumes: impl IntoIterator<Item = &'a Arc<PersistentVolume>>,
    node: Option<NodeInfo<'_>>,
    excluded: Option<&HashSet<String>>,
    delay_binding: bool,
) -> Option<&'a Arc<PersistentVolume>> {
    let sized = volumes
        .into_iter()
        .map(|v| (v, claims::bytes(claims::volume_storage(v))));
    find_matching_sized(claim, sized, node, excluded, delay_binding)
}

/// [`find_matching_volume`] over volumes with their capacity already in bytes (the index
/// keeps it, so a claim's search parses no quantity).
pub fn find_matching_sized<'a>(
    claim: &PersistentVolumeClaim,
    volumes: impl IntoIterator<Item = (&'a Arc<PersistentVolume>, i64)>,
    node: Option<NodeInfo<'_>>,
    excluded: Option<&HashSet<String>>,
    delay_binding: bool,
) -> Option<&'a Arc<PersistentVolume>> {
    let requested = claims::bytes(claims::requested_storage(claim));
    let class = claims::claim_class(claim);
    let selector = claim.spec.as_ref().and_then(|s| s.selector.as_ref());
    let no_labels = BTreeMap::new();
    let mut smallest: Option<(&'a Arc<PersistentVolume>, i64)> = None;
    for (volume, size) in volumes {
        let name = claims::name(&volume.metadata);
        if excluded.is_some_and(|e| e.contains(name)) {
            continue;
        }
        let bound_here = is_volume_bound_to_claim(volume, claim);
        if claims::claim_ref(volume).is_some() && !bound_here {
            continue;
        }
        if bound_here {
            if size < requested
                || volume_mode_mismatch(claim, volume)
                || volume.metadata.deletion_timestamp.is_some()
            {
                continue;
            }
            // A pre-bound volume that does not fit the node means no volume on this node.
            return node
                .is_none_or(|n| check_node_affinity(volume, n))
                .then_some(volume);
        }
        if node.is_none() && delay_binding {
            continue;
        }
        // The rest must all hold (cheap ones first).
        // Volumes not yet Available are skipped: the controller is about to update them and
        // binding now would likely conflict.
        if claims::volume_phase(volume) != claims::PHASE_AVAILABLE
            || claims::volume_class(volume) != class
            || volume_mode_mismatch(claim, volume)
            || volume.metadata.deletion_timestamp.is_some()
        {
            continue;
        }
        let labels = volume.metadata.labels.as_ref().unwrap_or(&no_labels);
        if selector.is_some_and(|s| !crate::selectors::selects(s, labels)) {
            continue;
        }
        if let Some(n) = node
            && (!check_node_affinity(volume, n) || !check_access_modes(claim, volume))
        {
            continue;
        }
        if size >= requested && smallest.is_none_or(|(_, s)| s > size) {
            smallest = Some((volume, size));
        }
    }
    smallest.map(|(v, _)| v)
}
