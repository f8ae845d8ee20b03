//! Accessors of claims and volumes with upstream's defaults (the API server does not default
//! every field: a missing volumeMode is Filesystem, a missing reclaim policy Retain), and the
//! keys the controllers queue them under.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{ObjectReference, PersistentVolume, PersistentVolumeClaim};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use super::annotations;

pub const PHASE_PENDING: &str = "Pending";
pub const PHASE_AVAILABLE: &str = "Available";
pub const PHASE_BOUND: &str = "Bound";
pub const PHASE_RELEASED: &str = "Released";
pub const PHASE_FAILED: &str = "Failed";
pub const PHASE_LOST: &str = "Lost";

/// `namespace/name`, the key claims are queued and cached under.
pub fn claim_key(claim: &PersistentVolumeClaim) -> String {
    format!(
        "{}/{}",
        claim.metadata.namespace.as_deref().unwrap_or_default(),
        claim.metadata.name.as_deref().unwrap_or_default()
    )
}

/// The key of the claim a volume's claimRef names.
pub fn claim_ref_key(r: &ObjectReference) -> String {
    format!(
        "{}/{}",
        r.namespace.as_deref().unwrap_or_default(),
        r.name.as_deref().unwrap_or_default()
    )
}

pub fn name(meta: &ObjectMeta) -> &str {
    meta.name.as_deref().unwrap_or_default()
}

pub fn uid(meta: &ObjectMeta) -> &str {
    meta.uid.as_deref().unwrap_or_default()
}

/// The volume a claim is bound (or pre-bound) to; empty when none.
pub fn volume_name(claim: &PersistentVolumeClaim) -> &str {
    claim
        .spec
        .as_ref()
        .and_then(|s| s.volume_name.as_deref())
        .unwrap_or_default()
}

/// A claim's class: the beta annotation wins over `storageClassName` (upstream's
/// GetPersistentVolumeClaimClass); empty for none.
pub fn claim_class(claim: &PersistentVolumeClaim) -> &str {
    if let Some(c) = annotations::get(&claim.metadata, annotations::BETA_STORAGE_CLASS) {
        return c;
    }
    claim
        .spec
        .as_ref()
        .and_then(|s| s.storage_class_name.as_deref())
        .unwrap_or_default()
}

/// Whether the claim names a class at all (`""` counts: it asks for no class).
pub fn claim_has_class(claim: &PersistentVolumeClaim) -> bool {
    annotations::has(&claim.metadata, annotations::BETA_STORAGE_CLASS)
        || claim
            .spec
            .as_ref()
            .is_some_and(|s| s.storage_class_name.is_some())
}

/// A volume's class, as [`claim_class`].
pub fn volume_class(volume: &PersistentVolume) -> &str {
    if let Some(c) = annotations::get(&volume.metadata, annotations::BETA_STORAGE_CLASS) {
        return c;
    }
    volume
        .spec
        .as_ref()
        .and_then(|s| s.storage_class_name.as_deref())
        .unwrap_or_default()
}

pub fn claim_ref(volume: &PersistentVolume) -> Option<&ObjectReference> {
    volume.spec.as_ref()?.claim_ref.as_ref()
}

pub fn volume_phase(volume: &PersistentVolume) -> &str {
    volume
        .status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .unwrap_or_default()
}

pub fn claim_phase(claim: &PersistentVolumeClaim) -> &str {
    claim
        .status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .unwrap_or_default()
}

/// The reclaim policy; the API's default (Retain) when unset.
pub fn reclaim_policy(volume: &PersistentVolume) -> &str {
    volume
        .spec
        .as_ref()
        .and_then(|s| s.persistent_volume_reclaim_policy.as_deref())
        .unwrap_or("Retain")
}

pub fn claim_access_modes(claim: &PersistentVolumeClaim) -> &[String] {
    claim
        .spec
        .as_ref()
        .and_then(|s| s.access_modes.as_deref())
        .unwrap_or_default()
}

pub fn volume_access_modes(volume: &PersistentVolume) -> &[String] {
    volume
        .spec
        .as_ref()
        .and_then(|s| s.access_modes.as_deref())
        .unwrap_or_default()
}

/// Filesystem unless Block is asked for (upstream defaults a missing mode the same way).
pub fn claim_volume_mode(claim: &PersistentVolumeClaim) -> &str {
    claim
        .spec
        .as_ref()
        .and_then(|s| s.volume_mode.as_deref())
        .unwrap_or("Filesystem")
}

pub fn volume_volume_mode(volume: &PersistentVolume) -> &str {
    volume
        .spec
        .as_ref()
        .and_then(|s| s.volume_mode.as_deref())
        .unwrap_or("Filesystem")
}

/// The storage a claim requests.
pub fn requested_storage(claim: &PersistentVolumeClaim) -> Option<&Quantity> {
    claim
        .spec
        .as_ref()?
        .resources
        .as_ref()?
        .requests
        .as_ref()?
        .get("storage")
}

/// The storage a volume offers.
pub fn volume_storage(volume: &PersistentVolume) -> Option<&Quantity> {
    volume.spec.as_ref()?.capacity.as_ref()?.get("storage")
}

/// A quantity in bytes, rounded up; a missing or unparsable one is zero (as the zero
/// Quantity upstream compares with).
pub fn bytes(q: Option<&Quantity>) -> i64 {
    q.and_then(|q| crate::quantity::parse_scaled(&q.0, 1))
        .unwrap_or(0)
}

/// Whether two capacity maps hold the same storage amount.
pub fn same_storage(
    a: Option<&BTreeMap<String, Quantity>>,
    b: Option<&BTreeMap<String, Quantity>>,
) -> bool {
    match (
        a.and_then(|m| m.get("storage")),
        b.and_then(|m| m.get("storage")),
    ) {
        (Some(x), Some(y)) => bytes(Some(x)) == bytes(Some(y)),
        _ => false,
    }
}

/// The reference a volume's claimRef holds (client-go's GetReference of the claim).
pub fn reference_to(claim: &PersistentVolumeClaim) -> ObjectReference {
    ObjectReference {
        api_version: Some("v1".into()),
        kind: Some("PersistentVolumeClaim".into()),
        namespace: claim.metadata.namespace.clone(),
        name: claim.metadata.name.clone(),
        uid: claim.metadata.uid.clone(),
        resource_version: claim.metadata.resource_version.clone(),
        field_path: None,
    }
}

/// Whether the object is newer than or as new as `old` by resourceVersion (rkube's are
/// integers, as etcd's; one that is not is taken as newer so the cache never sticks).
pub fn not_older(new: &ObjectMeta, old: &ObjectMeta) -> bool {
    let rv = |m: &ObjectMeta| m.resource_version.as_deref()?.parse::<u64>().ok();
    match (rv(new), rv(old)) {
        (Some(n), Some(o)) => n >= o,
        _ => true,
    }
}
