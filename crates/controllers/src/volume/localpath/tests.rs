//! The volume local-path makes, and when it deletes one.
#![allow(clippy::unwrap_used)]

use k8s_openapi::api::core::v1::{Node, PersistentVolume, PersistentVolumeClaim};
use k8s_openapi::api::storage::v1::StorageClass;
use serde_json::json;

use super::should_delete;
use super::storageclass::STORAGE_CLASS_YAML;
use super::volume::{node_of, provision};

fn claim(extra: serde_json::Value) -> PersistentVolumeClaim {
    let mut c = json!({
        "metadata": {"name": "data", "namespace": "db", "uid": "0123-abcd", "resourceVersion": "7",
                     "annotations": {"volume.kubernetes.io/selected-node": "n1"}},
        "spec": {"accessModes": ["ReadWriteOnce"], "storageClassName": "local-path",
                 "resources": {"requests": {"storage": "2Gi"}}}
    });
    if let (Some(c), Some(e)) = (c["spec"].as_object_mut(), extra.as_object()) {
        for (k, v) in e {
            c.insert(k.clone(), v.clone());
        }
    }
    serde_json::from_value(c).unwrap()
}

fn class() -> StorageClass {
    serde_json::from_value(json!({
        "metadata": {"name": "local-path"}, "provisioner": "rancher.io/local-path",
        "reclaimPolicy": "Retain", "volumeBindingMode": "WaitForFirstConsumer"
    }))
    .unwrap()
}

fn node(labels: serde_json::Value) -> Node {
    serde_json::from_value(json!({"metadata": {"name": "n1", "labels": labels}})).unwrap()
}

#[test]
fn a_local_volume_on_the_selected_node() {
    let n = node(json!({"kubernetes.io/hostname": "host-1"}));
    let pv = provision(&claim(json!({})), &class(), Some(&n), "/data/storage/").unwrap();
    let v = serde_json::to_value(&pv).unwrap();
    assert_eq!(v["metadata"]["name"], "pvc-0123-abcd");
    assert_eq!(
        v["metadata"]["annotations"]["pv.kubernetes.io/provisioned-by"],
        "rancher.io/local-path"
    );
    assert_eq!(
        v["metadata"]["annotations"]["local.path.provisioner/selected-node"],
        "n1"
    );
    assert_eq!(
        v["spec"]["local"]["path"],
        "/data/storage/pvc-0123-abcd_db_data"
    );
    assert_eq!(
        v["spec"]["nodeAffinity"]["required"]["nodeSelectorTerms"][0]["matchExpressions"][0],
        json!({"key": "kubernetes.io/hostname", "operator": "In", "values": ["host-1"]})
    );
    assert_eq!(v["spec"]["capacity"]["storage"], "2Gi");
    assert_eq!(v["spec"]["persistentVolumeReclaimPolicy"], "Retain");
    assert_eq!(v["spec"]["storageClassName"], "local-path");
    assert_eq!(v["spec"]["volumeMode"], "Filesystem");
    assert_eq!(v["spec"]["accessModes"], json!(["ReadWriteOnce"]));
    assert_eq!(
        v["spec"]["claimRef"],
        json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim", "namespace": "db",
               "name": "data", "uid": "0123-abcd", "resourceVersion": "7"})
    );
    assert_eq!(node_of(&pv).as_deref(), Some("n1"));
}

#[test]
fn host_path_volumes_and_refusals() {
    let n = node(json!({}));
    // Without a hostname label the node's name pins it; a claim may ask for hostPath.
    let mut c = claim(json!({}));
    c.metadata
        .annotations
        .as_mut()
        .unwrap()
        .insert("volumeType".into(), "hostPath".into());
    let v = serde_json::to_value(provision(&c, &class(), Some(&n), "/s").unwrap()).unwrap();
    assert_eq!(
        v["spec"]["hostPath"],
        json!({"path": "/s/pvc-0123-abcd_db_data", "type": "DirectoryOrCreate"})
    );
    assert_eq!(
        v["spec"]["nodeAffinity"]["required"]["nodeSelectorTerms"][0]["matchExpressions"][0]["values"],
        json!(["n1"])
    );
    let refusals = [
        (
            claim(json!({"accessModes": ["ReadWriteMany"]})),
            Some(&n),
            "NodePath only supports ReadWriteOnce and ReadWriteOncePod (1.22+) access modes",
        ),
        (
            claim(json!({"selector": {"matchLabels": {"a": "b"}}})),
            Some(&n),
            "claim.Spec.Selector is not supported",
        ),
        (
            claim(json!({})),
            None,
            "configuration error, no node was specified",
        ),
    ];
    for (c, n, want) in refusals {
        assert_eq!(provision(&c, &class(), n, "/s").unwrap_err(), want);
    }
}

#[test]
fn only_released_delete_volumes_of_ours_are_deleted() {
    let volume = |phase: &str, policy: &str, by: &str| -> PersistentVolume {
        serde_json::from_value(json!({
            "metadata": {"name": "pvc-1", "annotations": {"pv.kubernetes.io/provisioned-by": by}},
            "spec": {"persistentVolumeReclaimPolicy": policy},
            "status": {"phase": phase}
        }))
        .unwrap()
    };
    assert!(should_delete(&volume(
        "Released",
        "Delete",
        "rancher.io/local-path"
    )));
    assert!(!should_delete(&volume(
        "Bound",
        "Delete",
        "rancher.io/local-path"
    )));
    assert!(!should_delete(&volume(
        "Released",
        "Retain",
        "rancher.io/local-path"
    )));
    assert!(!should_delete(&volume(
        "Released",
        "Delete",
        "example.com/other"
    )));
}

#[test]
fn the_default_class_is_k3s_local_path() {
    for line in [
        "kind: StorageClass",
        "  name: local-path",
        "    storageclass.kubernetes.io/is-default-class: \"true\"",
        "provisioner: rancher.io/local-path",
        "volumeBindingMode: WaitForFirstConsumer",
        "reclaimPolicy: Delete",
    ] {
        assert!(STORAGE_CLASS_YAML.lines().any(|l| l == line), "{line}");
    }
}
