//! PersistentVolumes start `Pending` until the controller sees them, with upstream's defaults
//! (volumeMode Filesystem, reclaim policy Retain) and validation: access modes, a positive
//! storage capacity, exactly one volume source, a node affinity for `local`, and a source,
//! volume mode and node affinity that do not change once set. StorageClasses get upstream's
//! `storage.k8s.io/v1` defaults: reclaim policy Delete, binding mode Immediate.

use serde_json::{Value, json};

use super::claim::immutable;
use super::{Strategy, set_default};
use crate::error::Cause;
use crate::meta;

const ACCESS_MODES: [&str; 4] = [
    "ReadOnlyMany",
    "ReadWriteMany",
    "ReadWriteOnce",
    "ReadWriteOncePod",
];
const VOLUME_MODES: [&str; 2] = ["Block", "Filesystem"];
const RECLAIM_POLICIES: [&str; 3] = ["Delete", "Recycle", "Retain"];

/// The volume sources of `PersistentVolumeSpec` (its inlined `PersistentVolumeSource`).
const SOURCES: [&str; 22] = [
    "awsElasticBlockStore",
    "azureDisk",
    "azureFile",
    "cephfs",
    "cinder",
    "csi",
    "fc",
    "flexVolume",
    "flocker",
    "gcePersistentDisk",
    "glusterfs",
    "hostPath",
    "iscsi",
    "local",
    "nfs",
    "photonPersistentDisk",
    "portworxVolume",
    "quobyte",
    "rbd",
    "scaleIO",
    "storageos",
    "vsphereVolume",
];

pub struct VolumeStrategy;

impl Strategy for VolumeStrategy {
    fn defaults(&self, obj: &mut Value) {
        if let Some(spec) = obj.get_mut("spec") {
            set_default(spec, "volumeMode", json!("Filesystem"));
            set_default(spec, "persistentVolumeReclaimPolicy", json!("Retain"));
        }
    }

    fn prepare_for_create(&self, obj: &mut Value, _user: Option<&crate::user::UserInfo>) {
        obj["status"] = json!({"phase": "Pending"});
    }

    fn validate(&self, obj: &Value) -> Vec<Cause> {
        let spec = &obj["spec"];
        let mut causes = Vec::new();
        if spec
            .get("accessModes")
            .and_then(Value::as_array)
            .is_none_or(Vec::is_empty)
        {
            causes.push(Cause::required("spec.accessModes"));
        }
        causes.extend(check_access_modes(spec, "spec.accessModes"));
        match spec.pointer("/capacity/storage") {
            None | Some(Value::Null) => causes.push(Cause::required("spec.capacity")),
            Some(q) if storage_bytes(q) <= 0 => causes.push(Cause::invalid(
                "spec.capacity[storage]",
                q.as_str().unwrap_or_default(),
                "must be greater than zero",
            )),
            Some(_) => {}
        }
        if let Some(class) = spec.get("storageClassName").and_then(Value::as_str)
            && !class.is_empty()
        {
            causes.extend(meta::check_subdomain("spec.storageClassName", class));
        }
        if let Some(p) = spec
            .get("persistentVolumeReclaimPolicy")
            .and_then(Value::as_str)
            && !RECLAIM_POLICIES.contains(&p)
        {
            causes.push(Cause::not_supported(
                "spec.persistentVolumeReclaimPolicy",
                p,
                &RECLAIM_POLICIES,
            ));
        }
        causes.extend(check_source(spec));
        causes.extend(check_volume_mode(spec, "spec.volumeMode"));
        causes
    }

    fn validate_update(&self, new: &Value, old: &Value) -> Vec<Cause> {
        let (new_spec, old_spec) = (&new["spec"], &old["spec"]);
        let mut causes = Vec::new();
        if SOURCES.iter().any(|s| {
            new_spec.get(s).filter(|v| !v.is_null()) != old_spec.get(s).filter(|v| !v.is_null())
        }) {
            causes.push(Cause::forbidden(
                "spec.persistentvolumesource",
                "spec.persistentvolumesource is immutable after creation",
            ));
        }
        if new_spec.get("volumeMode") != old_spec.get("volumeMode") {
            causes.push(immutable("volumeMode", &new_spec["volumeMode"]));
        }
        // A node affinity may be added to a volume that had none, and then stays.
        if old_spec.get("nodeAffinity").is_some_and(|a| !a.is_null())
            && new_spec.get("nodeAffinity") != old_spec.get("nodeAffinity")
        {
            causes.push(immutable("nodeAffinity", &new_spec["nodeAffinity"]));
        }
        causes
    }
}

pub struct StorageClassStrategy;

impl Strategy for StorageClassStrategy {
    fn defaults(&self, obj: &mut Value) {
        set_default(obj, "reclaimPolicy", json!("Delete"));
        set_default(obj, "volumeBindingMode", json!("Immediate"));
    }
}

/// Access modes known to Kubernetes, ReadWriteOncePod alone (claims and volumes alike).
pub(super) fn check_access_modes(spec: &Value, field: &str) -> Vec<Cause> {
    let modes = spec.get("accessModes").and_then(Value::as_array);
    let modes: Vec<&str> = modes
        .into_iter()
        .flatten()
        .map(|m| m.as_str().unwrap_or_default())
        .collect();
    let mut causes: Vec<Cause> = modes
        .iter()
        .filter(|m| !ACCESS_MODES.contains(m))
        .map(|m| Cause::not_supported(field, m, &ACCESS_MODES))
        .collect();
    let pod_only = modes.contains(&"ReadWriteOncePod");
    let others = modes
        .iter()
        .any(|m| *m != "ReadWriteOncePod" && ACCESS_MODES.contains(m));
    if pod_only && others {
        causes.push(Cause::forbidden(
            field,
            "may not use ReadWriteOncePod with other access modes",
        ));
    }
    causes
}

pub(super) fn check_volume_mode(spec: &Value, field: &str) -> Option<Cause> {
    let mode = spec.get("volumeMode").and_then(Value::as_str)?;
    (!VOLUME_MODES.contains(&mode)).then(|| Cause::not_supported(field, mode, &VOLUME_MODES))
}

/// A storage quantity in bytes; an unparsable one counts as zero (and so is refused as not
/// positive; the schema has refused malformed quantities already).
pub(super) fn storage_bytes(q: &Value) -> i64 {
    q.as_str()
        .and_then(|q| common::quantity::parse_scaled(q, 1))
        .or_else(|| q.as_i64())
        .unwrap_or(0)
}

/// Exactly one volume source, with the fields rkube's volume plugins need.
fn check_source(spec: &Value) -> Vec<Cause> {
    let present: Vec<&str> = SOURCES
        .into_iter()
        .filter(|s| spec.get(s).is_some_and(|v| !v.is_null()))
        .collect();
    let mut causes = Vec::new();
    match present.as_slice() {
        [] => causes.push(Cause {
            message: "Required value: must specify a volume type".into(),
            ..Cause::required("spec")
        }),
        [_, more @ ..] => causes.extend(more.iter().map(|s| {
            Cause::forbidden(
                format!("spec.{s}"),
                "may not specify more than 1 volume type",
            )
        })),
    }
    for (source, field) in [
        ("hostPath", "path"),
        ("local", "path"),
        ("nfs", "server"),
        ("nfs", "path"),
    ] {
        if let Some(s) = spec.get(source).filter(|s| s.is_object())
            && s.get(field)
                .and_then(Value::as_str)
                .is_none_or(str::is_empty)
        {
            causes.push(Cause::required(format!("spec.{source}.{field}")));
        }
    }
    if let Some(path) = spec.pointer("/nfs/path").and_then(Value::as_str)
        && !path.is_empty()
        && !path.starts_with('/')
    {
        causes.push(Cause::invalid(
            "spec.nfs.path",
            path,
            "must be an absolute path",
        ));
    }
    if present.contains(&"local") && spec.get("nodeAffinity").is_none_or(Value::is_null) {
        causes.push(Cause {
            message: "Required value: Local volume requires node affinity".into(),
            ..Cause::required("spec.nodeAffinity")
        });
    }
    causes
}

#[cfg(test)]
mod tests {
    use super::*;

    fn volume() -> Value {
        let mut v = json!({
            "kind": "PersistentVolume",
            "metadata": {"name": "pv"},
            "spec": {
                "capacity": {"storage": "1Gi"},
                "accessModes": ["ReadWriteOnce"],
                "hostPath": {"path": "/srv/pv"},
            },
        });
        VolumeStrategy.defaults(&mut v);
        v
    }

    fn fields(causes: &[Cause]) -> Vec<String> {
        causes.iter().map(Cause::line).collect()
    }

    #[test]
    fn a_volume_has_modes_capacity_and_one_source() {
        assert!(VolumeStrategy.validate(&volume()).is_empty());
        let mut v = volume();
        v["spec"] = json!({"capacity": {"storage": "0"}, "accessModes": [],
            "persistentVolumeReclaimPolicy": "Recycle", "volumeMode": "Filesystem"});
        assert_eq!(
            fields(&VolumeStrategy.validate(&v)),
            [
                "spec.accessModes: Required value",
                "spec.capacity[storage]: Invalid value: \"0\": must be greater than zero",
                "spec: Required value: must specify a volume type",
            ]
        );
        let mut v = volume();
        v["spec"]["nfs"] = json!({"server": "10.0.0.1", "path": "export"});
        v["spec"]["local"] = json!({"path": "/mnt"});
        v["spec"]["persistentVolumeReclaimPolicy"] = json!("Keep");
        assert_eq!(
            fields(&VolumeStrategy.validate(&v)),
            [
                "spec.persistentVolumeReclaimPolicy: Unsupported value: \"Keep\": supported values: \"Delete\", \"Recycle\", \"Retain\"",
                "spec.local: Forbidden: may not specify more than 1 volume type",
                "spec.nfs: Forbidden: may not specify more than 1 volume type",
                "spec.nfs.path: Invalid value: \"export\": must be an absolute path",
                "spec.nodeAffinity: Required value: Local volume requires node affinity",
            ]
        );
    }

    #[test]
    fn the_source_mode_and_affinity_stay() {
        let old = volume();
        let mut grown = old.clone();
        grown["spec"]["capacity"]["storage"] = json!("2Gi");
        grown["spec"]["claimRef"] = json!({"name": "data", "namespace": "default"});
        assert!(VolumeStrategy.validate_update(&grown, &old).is_empty());
        let mut moved = old.clone();
        moved["spec"]["hostPath"]["path"] = json!("/srv/other");
        moved["spec"]["volumeMode"] = json!("Block");
        assert_eq!(
            fields(&VolumeStrategy.validate_update(&moved, &old)),
            [
                "spec.persistentvolumesource: Forbidden: spec.persistentvolumesource is immutable after creation",
                "volumeMode: Invalid value: \"Block\": field is immutable",
            ]
        );
        let mut pinned = old.clone();
        pinned["spec"]["nodeAffinity"] = json!({"required": {"nodeSelectorTerms": []}});
        assert!(VolumeStrategy.validate_update(&pinned, &old).is_empty());
        let unpinned = old.clone();
        assert_eq!(VolumeStrategy.validate_update(&unpinned, &pinned).len(), 1);
    }
}
