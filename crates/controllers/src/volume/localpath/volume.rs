//! The volume local-path makes for a claim on a node (rancher/local-path-provisioner's
//! provisionFor, node-path mode): a directory `<storage dir>/<pv>_<namespace>_<claim>` on that
//! node, as a `local` (or `hostPath`) volume pinned to it by node affinity, sized as asked,
//! with the class's reclaim policy. Refusals are local-path's words.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    HostPathVolumeSource, LocalVolumeSource, Node, NodeSelector, NodeSelectorRequirement,
    NodeSelectorTerm, PersistentVolume, PersistentVolumeClaim, PersistentVolumeSpec,
    VolumeNodeAffinity,
};
use k8s_openapi::api::storage::v1::StorageClass;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use super::storageclass::{CLAIM_VOLUME_TYPE, CLASS_VOLUME_TYPE, PROVISIONER, SELECTED_NODE};
use crate::volume::annotations::{self, PROVISIONED_BY};
use crate::volume::claims;

/// The label local-path pins volumes with (the node name when a node lacks it).
const HOSTNAME_LABEL: &str = "kubernetes.io/hostname";

/// The name of the volume provisioned for a claim (the external-provisioner library's).
pub fn volume_name(claim: &PersistentVolumeClaim) -> String {
    format!("pvc-{}", claims::uid(&claim.metadata))
}

/// Where the claim's data lives on the node.
pub fn volume_path(storage_dir: &str, pv_name: &str, claim: &PersistentVolumeClaim) -> String {
    format!(
        "{}/{pv_name}_{}_{}",
        storage_dir.trim_end_matches('/'),
        claim.metadata.namespace.as_deref().unwrap_or_default(),
        claims::name(&claim.metadata)
    )
}

/// The volume for `claim` of `class` on `node`, or why there is none.
pub fn provision(
    claim: &PersistentVolumeClaim,
    class: &StorageClass,
    node: Option<&Node>,
    storage_dir: &str,
) -> Result<PersistentVolume, String> {
    let spec = claim.spec.clone().unwrap_or_default();
    if spec.selector.is_some() {
        return Err("claim.Spec.Selector is not supported".into());
    }
    let modes = spec.access_modes.clone().unwrap_or_default();
    if modes
        .iter()
        .any(|m| m != "ReadWriteOnce" && m != "ReadWriteOncePod")
    {
        return Err(
            "NodePath only supports ReadWriteOnce and ReadWriteOncePod (1.22+) access modes".into(),
        );
    }
    let Some(node) = node else {
        return Err("configuration error, no node was specified".into());
    };
    let node_name = claims::name(&node.metadata);
    let pv_name = volume_name(claim);
    let path = volume_path(storage_dir, &pv_name, claim);
    let volume_type = annotations::get(&claim.metadata, CLAIM_VOLUME_TYPE)
        .or_else(|| annotations::get(&class.metadata, CLASS_VOLUME_TYPE))
        .unwrap_or("local");
    let mut pv_spec = PersistentVolumeSpec::default();
    match volume_type.to_ascii_lowercase().as_str() {
        "local" => {
            pv_spec.local = Some(LocalVolumeSource {
                path,
                fs_type: None,
            })
        }
        "hostpath" => {
            pv_spec.host_path = Some(HostPathVolumeSource {
                path,
                type_: Some("DirectoryOrCreate".into()),
            })
        }
        other => return Err(format!("{other:?} is not a recognised volume type")),
    }
    let hostname = node
        .metadata
        .labels
        .as_ref()
        .and_then(|l| l.get(HOSTNAME_LABEL))
        .map_or(node_name, String::as_str);
    pv_spec.node_affinity = Some(VolumeNodeAffinity {
        required: Some(NodeSelector {
            node_selector_terms: vec![NodeSelectorTerm {
                match_expressions: Some(vec![NodeSelectorRequirement {
                    key: HOSTNAME_LABEL.into(),
                    operator: "In".into(),
                    values: Some(vec![hostname.to_string()]),
                }]),
                match_fields: None,
            }],
        }),
    });
    // A class's reclaim policy defaults to Delete.
    pv_spec.persistent_volume_reclaim_policy = Some(
        class
            .reclaim_policy
            .clone()
            .unwrap_or_else(|| "Delete".into()),
    );
    pv_spec.access_modes = Some(modes);
    pv_spec.volume_mode = Some("Filesystem".into());
    pv_spec.capacity =
        claims::requested_storage(claim).map(|q| [("storage".to_string(), q.clone())].into());
    pv_spec.claim_ref = Some(claims::reference_to(claim));
    pv_spec.storage_class_name = Some(claims::claim_class(claim).to_string());
    let annotations: BTreeMap<String, String> = [
        (SELECTED_NODE.to_string(), node_name.to_string()),
        (PROVISIONED_BY.to_string(), PROVISIONER.to_string()),
    ]
    .into();
    Ok(PersistentVolume {
        metadata: ObjectMeta {
            name: Some(pv_name),
            annotations: Some(annotations),
            ..Default::default()
        },
        spec: Some(pv_spec),
        status: None,
    })
}

/// The node a local-path volume lives on: local-path's annotation (the node's name), else its
/// affinity's hostname.
pub fn node_of(volume: &PersistentVolume) -> Option<String> {
    if let Some(n) = annotations::get(&volume.metadata, SELECTED_NODE).filter(|n| !n.is_empty()) {
        return Some(n.to_string());
    }
    volume
        .spec
        .as_ref()
        .and_then(|s| s.node_affinity.as_ref())
        .and_then(|a| a.required.as_ref())
        .and_then(|r| {
            r.node_selector_terms.iter().find_map(|t| {
                t.match_expressions.iter().flatten().find_map(|e| {
                    (e.key == HOSTNAME_LABEL && e.operator == "In")
                        .then(|| e.values.as_ref()?.first().cloned())
                        .flatten()
                })
            })
        })
}
