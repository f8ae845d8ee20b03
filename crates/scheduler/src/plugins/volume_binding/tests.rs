//! VolumeBinding's decisions on fixed claims, volumes and classes (no API server).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use serde_json::{Value, json};

use super::*;
use crate::framework::{CycleState, Snapshot, Status};
use crate::testutil::{node, pod};

fn obj<T: serde::de::DeserializeOwned>(v: Value) -> Arc<T> {
    Arc::new(serde_json::from_value(v).unwrap())
}

fn class(name: &str, provisioner: &str, mode: &str, extra: Value) -> Arc<StorageClass> {
    let mut v = json!({"metadata": {"name": name, "resourceVersion": "1"},
        "provisioner": provisioner, "volumeBindingMode": mode});
    for (k, x) in extra.as_object().cloned().unwrap_or_default() {
        v[k] = x;
    }
    obj(v)
}

fn claim(
    name: &str,
    class: &str,
    size: &str,
    extra_meta: Value,
    spec: Value,
) -> Arc<PersistentVolumeClaim> {
    let mut meta = json!({"name": name, "namespace": "default", "uid": format!("uid-{name}"),
        "resourceVersion": "5"});
    for (k, x) in extra_meta.as_object().cloned().unwrap_or_default() {
        meta[k] = x;
    }
    let mut s = json!({"storageClassName": class, "accessModes": ["ReadWriteOnce"],
        "resources": {"requests": {"storage": size}}});
    for (k, x) in spec.as_object().cloned().unwrap_or_default() {
        s[k] = x;
    }
    obj(json!({"metadata": meta, "spec": s, "status": {"phase": "Pending"}}))
}

/// A `local` volume on `host` (none: no node affinity), Available unless `claim_ref` is set.
fn local_pv(name: &str, class: &str, size: &str, host: Option<&str>) -> Arc<PersistentVolume> {
    let mut spec = json!({"storageClassName": class, "accessModes": ["ReadWriteOnce"],
        "capacity": {"storage": size}, "local": {"path": "/mnt/x"}});
    if let Some(h) = host {
        spec["nodeAffinity"] = json!({"required": {"nodeSelectorTerms": [{"matchExpressions": [
            {"key": "kubernetes.io/hostname", "operator": "In", "values": [h]}]}]}});
    }
    obj(
        json!({"metadata": {"name": name, "resourceVersion": "3"}, "spec": spec,
        "status": {"phase": "Available"}}),
    )
}

fn using(name: &str, claims: &[&str]) -> crate::nodeinfo::PodInfo {
    let vols: Vec<Value> = claims
        .iter()
        .map(|c| json!({"name": c, "persistentVolumeClaim": {"claimName": c}}))
        .collect();
    pod(name, json!({"volumes": vols}), json!({}))
}

fn plugin() -> Arc<VolumeBinding> {
    let p = VolumeBinding::new(None, DEFAULT_BIND_TIMEOUT);
    p.set_class(class(
        "local-path",
        "rancher.io/local-path",
        "WaitForFirstConsumer",
        json!({}),
    ));
    p.set_class(class(
        "static",
        "kubernetes.io/no-provisioner",
        "WaitForFirstConsumer",
        json!({}),
    ));
    p.set_class(class("fast", "example.com/fast", "Immediate", json!({})));
    p
}

fn nodes() -> Vec<NodeInfo> {
    vec![
        node("n1", json!({"zone": "a"})),
        node("n2", json!({"zone": "b"})),
    ]
}

/// PreFilter, then Filter on every node; the state for Reserve.
fn cycle(
    p: &VolumeBinding,
    nodes: &[NodeInfo],
    pod: crate::nodeinfo::PodInfo,
) -> (Status, Vec<Status>, CycleState) {
    let snapshot = Snapshot { nodes };
    let mut state = CycleState::new(pod);
    let pre = p.pre_filter(&mut state, &snapshot);
    let got = if pre.is_success() {
        nodes.iter().map(|n| p.filter(&state, n)).collect()
    } else {
        vec![]
    };
    (pre, got, state)
}

#[test]
fn pods_without_claims_fit_everywhere() {
    let p = plugin();
    let (pre, got, _) = cycle(&p, &nodes(), pod("p", json!({}), json!({})));
    assert!(pre.is_success());
    assert_eq!(got, [Status::Success, Status::Success]);
}

#[test]
fn missing_deleted_and_immediate_claims_are_unresolvable() {
    let p = plugin();
    let (pre, _, _) = cycle(&p, &nodes(), using("p", &["data"]));
    assert_eq!(
        pre,
        Status::unresolvable(r#"persistentvolumeclaim "data" not found"#)
    );
    p.set_claim(claim("data", "fast", "1Gi", json!({}), json!({})));
    let (pre, _, _) = cycle(&p, &nodes(), using("p", &["data"]));
    assert_eq!(pre, Status::unresolvable(ERR_UNBOUND_IMMEDIATE));
    p.set_claim(claim(
        "gone",
        "local-path",
        "1Gi",
        json!({"resourceVersion": "6", "deletionTimestamp": "2026-01-01T00:00:00Z"}),
        json!({}),
    ));
    let (pre, _, _) = cycle(&p, &nodes(), using("p", &["gone"]));
    assert_eq!(
        pre,
        Status::unresolvable(r#"persistentvolumeclaim "gone" is being deleted"#)
    );
    let eph = pod(
        "e",
        json!({"volumes": [{"name": "scratch", "ephemeral": {"volumeClaimTemplate": {"spec": {}}}}]}),
        json!({}),
    );
    let (pre, _, _) = cycle(&p, &nodes(), eph);
    assert_eq!(
        pre,
        Status::unresolvable(
            r#"waiting for ephemeral volume controller to create the persistentvolumeclaim "e-scratch""#
        )
    );
}

#[test]
fn a_bound_local_volume_pins_the_pod_to_its_node() {
    let p = plugin();
    p.set_volume(local_pv("pv1", "local-path", "1Gi", Some("n2")));
    p.set_claim(claim(
        "data",
        "local-path",
        "1Gi",
        json!({"annotations": {"pv.kubernetes.io/bind-completed": "yes"}}),
        json!({"volumeName": "pv1"}),
    ));
    let (_, got, _) = cycle(&p, &nodes(), using("p", &["data"]));
    assert_eq!(
        got,
        [Status::unresolvable(ERR_NODE_CONFLICT), Status::Success]
    );
    p.set_claim(claim(
        "lost",
        "local-path",
        "1Gi",
        json!({"annotations": {"pv.kubernetes.io/bind-completed": "yes"}}),
        json!({"volumeName": "nope"}),
    ));
    let (_, got, _) = cycle(&p, &nodes(), using("p", &["lost"]));
    assert_eq!(
        got,
        [
            Status::unresolvable(ERR_PV_NOT_EXIST),
            Status::unresolvable(ERR_PV_NOT_EXIST)
        ]
    );
}

#[test]
fn static_volumes_only_where_one_matches_and_reserve_takes_it() {
    let p = plugin();
    p.set_volume(local_pv("small", "static", "1Gi", Some("n2")));
    p.set_volume(local_pv("big", "static", "10Gi", Some("n2")));
    p.set_claim(claim("a", "static", "1Gi", json!({}), json!({})));
    p.set_claim(claim("b", "static", "1Gi", json!({}), json!({})));
    p.set_claim(claim("c", "static", "1Gi", json!({}), json!({})));
    let nodes = nodes();
    let (_, got, mut state) = cycle(&p, &nodes, using("pa", &["a"]));
    assert_eq!(
        got,
        [Status::unresolvable(ERR_BIND_CONFLICT), Status::Success]
    );
    // Reserving n2 pre-binds the smallest fitting volume to the claim, in the cache.
    assert!(p.reserve(&mut state, "n2").is_success());
    let small = p.volumes.get("small").unwrap();
    let r = small.spec.as_ref().unwrap().claim_ref.as_ref().unwrap();
    assert_eq!(
        (r.name.as_deref(), r.uid.as_deref()),
        (Some("a"), Some("uid-a"))
    );
    assert_eq!(
        annotations::get(&small.metadata, annotations::BOUND_BY_CONTROLLER),
        Some("yes")
    );
    // The next pod gets the other volume; a third finds none.
    let (_, _, mut s2) = cycle(&p, &nodes, using("pb", &["b"]));
    assert!(p.reserve(&mut s2, "n2").is_success());
    assert!(claims::claim_ref(&p.volumes.get("big").unwrap()).is_some());
    let (_, got, _) = cycle(&p, &nodes, using("pc", &["c"]));
    assert_eq!(got[1], Status::unresolvable(ERR_BIND_CONFLICT));
    // Undoing the first reservation frees its volume again.
    p.unreserve(&state, "n2");
    assert!(claims::claim_ref(&p.volumes.get("small").unwrap()).is_none());
    let (_, got, _) = cycle(&p, &nodes, using("pc", &["c"]));
    assert_eq!(got[1], Status::Success);
}

#[test]
fn provisioning_classes_fit_any_node_their_topology_allows() {
    let p = plugin();
    p.set_class(class("zoned", "rancher.io/local-path", "WaitForFirstConsumer",
        json!({"allowedTopologies": [{"matchLabelExpressions": [{"key": "zone", "values": ["b"]}]}]})));
    p.set_claim(claim("anywhere", "local-path", "1Gi", json!({}), json!({})));
    p.set_claim(claim("zoned", "zoned", "1Gi", json!({}), json!({})));
    let nodes = nodes();
    let (_, got, mut state) = cycle(&p, &nodes, using("p", &["anywhere"]));
    assert_eq!(got, [Status::Success, Status::Success]);
    let (_, got, _) = cycle(&p, &nodes, using("q", &["zoned"]));
    assert_eq!(
        got,
        [Status::unresolvable(ERR_BIND_CONFLICT), Status::Success]
    );
    // Reserve assumes the claim annotated with the node; its other nodes then conflict.
    assert!(p.reserve(&mut state, "n1").is_success());
    let c = p.claims.get("default/anywhere").unwrap();
    assert_eq!(
        annotations::get(&c.metadata, annotations::SELECTED_NODE),
        Some("n1")
    );
    let (_, got, _) = cycle(&p, &nodes, using("p2", &["anywhere"]));
    assert_eq!(
        got,
        [Status::Success, Status::unresolvable(ERR_BIND_CONFLICT)]
    );
    // A newer claim from the API replaces the assumption.
    p.set_claim(claim(
        "anywhere",
        "local-path",
        "1Gi",
        json!({"resourceVersion": "9"}),
        json!({}),
    ));
    let c = p.claims.get("default/anywhere").unwrap();
    assert_eq!(
        annotations::get(&c.metadata, annotations::SELECTED_NODE),
        None
    );
}

#[test]
fn a_matching_static_volume_is_preferred_to_provisioning() {
    let p = plugin();
    p.set_volume(local_pv("pv-n1", "local-path", "5Gi", Some("n1")));
    p.set_claim(claim("data", "local-path", "2Gi", json!({}), json!({})));
    let nodes = nodes();
    let (_, got, mut state) = cycle(&p, &nodes, using("p", &["data"]));
    assert_eq!(got, [Status::Success, Status::Success]);
    assert!(p.reserve(&mut state, "n1").is_success());
    assert!(claims::claim_ref(&p.volumes.get("pv-n1").unwrap()).is_some());
    let c = p.claims.get("default/data").unwrap();
    assert_eq!(
        annotations::get(&c.metadata, annotations::SELECTED_NODE),
        None
    );
}
