//! The volume tables, as upstream's printers define them: PersistentVolume,
//! PersistentVolumeClaim and StorageClass.

use serde_json::{Value, json};

use super::{NAME, Printer, col, or_none, s};
use crate::meta;

/// Access modes as kubectl abbreviates them (`RWO,ROX`).
fn access_modes(modes: Option<&Value>) -> String {
    modes
        .and_then(Value::as_array)
        .map(|m| {
            m.iter()
                .filter_map(Value::as_str)
                .map(|x| match x {
                    "ReadWriteOnce" => "RWO",
                    "ReadOnlyMany" => "ROX",
                    "ReadWriteMany" => "RWX",
                    "ReadWriteOncePod" => "RWOP",
                    other => other,
                })
                .collect::<Vec<_>>()
                .join(",")
        })
        .unwrap_or_default()
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
    cells: |obj, name, age| {
        vec![
            name,
            json!(s(obj.pointer("/status/phase"))),
            json!(s(obj.pointer("/spec/volumeName"))),
            json!(s(obj.pointer("/status/capacity/storage"))),
            json!(access_modes(obj.pointer("/status/accessModes"))),
            json!(or_none(s(obj.pointer("/spec/storageClassName")))),
            json!("<unset>"),
            age,
            json!(s(obj.pointer("/spec/volumeMode"))),
        ]
    },
};

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
    let claim = match (
        meta::str_at(obj, "/spec/claimRef/namespace"),
        meta::str_at(obj, "/spec/claimRef/name"),
    ) {
        (Some(ns), Some(n)) => format!("{ns}/{n}"),
        _ => String::new(),
    };
    vec![
        name,
        json!(s(obj.pointer("/spec/capacity/storage"))),
        json!(access_modes(obj.pointer("/spec/accessModes"))),
        json!(s(obj.pointer("/spec/persistentVolumeReclaimPolicy"))),
        json!(s(obj.pointer("/status/phase"))),
        json!(claim),
        json!(s(obj.pointer("/spec/storageClassName"))),
        json!("<unset>"),
        json!(s(obj.pointer("/status/reason"))),
        age,
        json!(s(obj.pointer("/spec/volumeMode"))),
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

/// The NAME cell says `(default)` for the default class, as kubectl shows it.
fn storage_class_cells(obj: &Value, _name: Value, age: Value) -> Vec<Value> {
    let default = [
        "storageclass.kubernetes.io/is-default-class",
        "storageclass.beta.kubernetes.io/is-default-class",
    ]
    .iter()
    .any(|a| {
        obj.pointer(&format!("/metadata/annotations/{}", a.replace('/', "~1")))
            .and_then(Value::as_str)
            == Some("true")
    });
    let mut shown = s(obj.pointer("/metadata/name"));
    if default {
        shown.push_str(" (default)");
    }
    vec![
        json!(shown),
        json!(s(obj.get("provisioner"))),
        json!(or(s(obj.get("reclaimPolicy")), "Delete")),
        json!(or(s(obj.get("volumeBindingMode")), "Immediate")),
        json!(
            obj.get("allowVolumeExpansion")
                .and_then(Value::as_bool)
                .unwrap_or(false)
        ),
        age,
    ]
}

fn or(v: String, default: &str) -> String {
    if v.is_empty() { default.into() } else { v }
}
