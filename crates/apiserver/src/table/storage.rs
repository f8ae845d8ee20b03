//! The volume tables, as upstream's printers define them (`printPersistentVolume`,
//! `printPersistentVolumeClaim`, `printStorageClass`): PersistentVolume,
//! PersistentVolumeClaim and StorageClass.

use common::quota::Quantity;
use common::storage::annotations::{BETA_IS_DEFAULT_CLASS, BETA_STORAGE_CLASS, IS_DEFAULT_CLASS};
use serde_json::{Value, json};

use super::{NAME, Printer, col, s};

/// Access modes as upstream's `GetAccessModesAsString` abbreviates them: in this fixed order,
/// each once, unknown modes left out.
fn access_modes(modes: Option<&Value>) -> String {
    let given: Vec<&str> = modes
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    [
        ("ReadWriteOnce", "RWO"),
        ("ReadOnlyMany", "ROX"),
        ("ReadWriteMany", "RWX"),
        ("ReadWriteOncePod", "RWOP"),
    ]
    .iter()
    .filter(|(mode, _)| given.contains(mode))
    .map(|(_, short)| *short)
    .collect::<Vec<_>>()
    .join(",")
}

/// A storage quantity as Go's `Quantity.String()` prints it: canonical, and `0` when absent
/// (the zero Quantity of a missing map entry).
fn storage(v: Option<&Value>) -> String {
    match v {
        Some(v) => Quantity::from_json(v).map_or_else(|| s(Some(v)), |q| q.to_string()),
        None => "0".into(),
    }
}

fn annotation<'a>(obj: &'a Value, key: &str) -> Option<&'a Value> {
    obj.pointer("/metadata/annotations")
        .and_then(|a| a.get(key))
}

/// The STATUS cell: `Terminating` once deleted (finalizers still held), else the phase.
fn phase(obj: &Value) -> String {
    if obj
        .pointer("/metadata/deletionTimestamp")
        .is_some_and(|t| !t.is_null())
    {
        "Terminating".into()
    } else {
        s(obj.pointer("/status/phase"))
    }
}

/// The class a claim or volume names: the beta annotation (any value) before the field, as
/// upstream's `GetPersistentVolume(Claim)Class`.
fn class(obj: &Value) -> String {
    match annotation(obj, BETA_STORAGE_CLASS) {
        Some(c) => s(Some(c)),
        None => s(obj.pointer("/spec/storageClassName")),
    }
}

/// The value at `ptr`, `<unset>` when absent (the printers' nil pointer).
fn or_unset(obj: &Value, ptr: &str) -> String {
    match obj.pointer(ptr) {
        Some(v) if !v.is_null() => s(Some(v)),
        _ => "<unset>".into(),
    }
}

pub const PERSISTENT_VOLUME_CLAIM: Printer = Printer {
    columns: || {
        vec![
            NAME,
            col("Status", 0),
            col("Volume", 0),
            col("Capacity", 0),
            col("Access Modes", 0),
            col("StorageClass", 0),
            col("VolumeAttributesClass", 0),
            col("Age", 0),
            col("VolumeMode", 1),
        ]
    },
    cells: persistent_volume_claim_cells,
};

/// Capacity and access modes are the bound volume's, so shown only once the claim names one.
fn persistent_volume_claim_cells(obj: &Value, name: Value, age: Value) -> Vec<Value> {
    let volume = s(obj.pointer("/spec/volumeName"));
    let (capacity, modes) = if volume.is_empty() {
        (String::new(), String::new())
    } else {
        (
            storage(obj.pointer("/status/capacity/storage")),
            access_modes(obj.pointer("/status/accessModes")),
        )
    };
    vec![
        name,
        json!(phase(obj)),
        json!(volume),
        json!(capacity),
        json!(modes),
        json!(class(obj)),
        json!(or_unset(obj, "/spec/volumeAttributesClassName")),
        age,
        json!(or_unset(obj, "/spec/volumeMode")),
    ]
}

pub const PERSISTENT_VOLUME: Printer = Printer {
    columns: || {
        vec![
            NAME,
            col("Capacity", 0),
            col("Access Modes", 0),
            col("Reclaim Policy", 0),
            col("Status", 0),
            col("Claim", 0),
            col("StorageClass", 0),
            col("VolumeAttributesClass", 0),
            col("Reason", 0),
            col("Age", 0),
            col("VolumeMode", 1),
        ]
    },
    cells: persistent_volume_cells,
};

fn persistent_volume_cells(obj: &Value, name: Value, age: Value) -> Vec<Value> {
    // `namespace/name` whenever there is a claimRef, even a partial one, as upstream.
    let claim = match obj.pointer("/spec/claimRef") {
        Some(r) if !r.is_null() => format!("{}/{}", s(r.get("namespace")), s(r.get("name"))),
        _ => String::new(),
    };
    vec![
        name,
        json!(storage(obj.pointer("/spec/capacity/storage"))),
        json!(access_modes(obj.pointer("/spec/accessModes"))),
        json!(s(obj.pointer("/spec/persistentVolumeReclaimPolicy"))),
        json!(phase(obj)),
        json!(claim),
        json!(class(obj)),
        json!(or_unset(obj, "/spec/volumeAttributesClassName")),
        json!(s(obj.pointer("/status/reason"))),
        age,
        json!(or_unset(obj, "/spec/volumeMode")),
    ]
}

pub const STORAGE_CLASS: Printer = Printer {
    columns: || {
        vec![
            NAME,
            col("Provisioner", 0),
            col("ReclaimPolicy", 0),
            col("VolumeBindingMode", 0),
            col("AllowVolumeExpansion", 0),
            col("Age", 0),
        ]
    },
    cells: storage_class_cells,
};

/// The NAME cell says `(default)` for a class annotated default (GA or beta annotation);
/// unset policies show the API's defaults, as upstream's printer does for objects stored
/// before defaulting.
fn storage_class_cells(obj: &Value, _name: Value, age: Value) -> Vec<Value> {
    let default = [IS_DEFAULT_CLASS, BETA_IS_DEFAULT_CLASS]
        .iter()
        .any(|a| annotation(obj, a).and_then(Value::as_str) == Some("true"));
    let mut shown = s(obj.pointer("/metadata/name"));
    if default {
        shown.push_str(" (default)");
    }
    let or = |key: &str, default: &str| match obj.get(key) {
        Some(v) if !v.is_null() => s(Some(v)),
        _ => default.to_string(),
    };
    vec![
        json!(shown),
        json!(s(obj.get("provisioner"))),
        json!(or("reclaimPolicy", "Delete")),
        json!(or("volumeBindingMode", "Immediate")),
        json!(
            obj.get("allowVolumeExpansion")
                .and_then(Value::as_bool)
                .unwrap_or(false)
        ),
        age,
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn access_modes_in_upstreams_order_once_each() {
        let modes = json!([
            "ReadWriteOncePod",
            "ReadWriteMany",
            "ReadWriteOnce",
            "ReadWriteOnce",
            "Odd"
        ]);
        assert_eq!(access_modes(Some(&modes)), "RWO,RWX,RWOP");
        assert_eq!(access_modes(None), "");
    }

    /// Objects stored before defaulting (no volumeMode) and partial claimRefs, as upstream.
    #[test]
    fn unset_fields_and_partial_claim_refs() {
        let pv = json!({"metadata": {"deletionTimestamp": "2026-01-01T00:00:00Z"},
            "spec": {"claimRef": {"name": "c"}}, "status": {"phase": "Bound"}});
        let cells = persistent_volume_cells(&pv, json!("pv"), json!("1s"));
        assert_eq!(cells[4], "Terminating");
        assert_eq!(cells[5], "/c");
        assert_eq!(cells[7], "<unset>");
        assert_eq!(cells[10], "<unset>");
    }

    #[test]
    fn quantities_print_canonically() {
        assert_eq!(storage(Some(&json!("1024Mi"))), "1Gi");
        assert_eq!(storage(None), "0");
    }
}
