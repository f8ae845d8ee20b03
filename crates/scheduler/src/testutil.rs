//! Builders for the plugins' table tests.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use k8s_openapi::api::core::v1::{Node, Pod};
use serde_json::{Value, json};

use crate::framework::{CycleState, Plugin, Snapshot, Status};
use crate::nodeinfo::{NodeInfo, PodInfo};

pub fn node(name: &str, labels: Value) -> NodeInfo {
    let mut labels = labels;
    labels["kubernetes.io/hostname"] = json!(name);
    let n: Node = serde_json::from_value(json!({
        "metadata": {"name": name, "labels": labels},
        "status": {"allocatable": {"cpu": "4", "memory": "8Gi", "pods": "110"}}
    }))
    .unwrap();
    NodeInfo::new(Arc::new(n))
}

pub fn pod(name: &str, spec_extra: Value, labels: Value) -> PodInfo {
    let mut spec = json!({"containers": [{"name": "c", "image": "busybox"}]});
    for (k, v) in spec_extra.as_object().cloned().unwrap_or_default() {
        spec[k] = v;
    }
    let p: Pod = serde_json::from_value(json!({
        "metadata": {"name": name, "namespace": "default", "labels": labels},
        "spec": spec
    }))
    .unwrap();
    PodInfo::new(Arc::new(p))
}

/// Runs PreFilter then Filter of `plugin` for `pod` on every node.
pub fn filter_all(plugin: &dyn Plugin, nodes: &[NodeInfo], pod: PodInfo) -> Vec<Status> {
    let snapshot = Snapshot { nodes };
    let mut state = CycleState::new(pod);
    assert!(plugin.pre_filter(&mut state, &snapshot).is_success());
    nodes.iter().map(|n| plugin.filter(&state, n)).collect()
}

/// Runs PreScore, Score and NormalizeScore of `plugin` for `pod` on every node.
pub fn score_all(plugin: &dyn Plugin, nodes: &[NodeInfo], pod: PodInfo) -> Vec<i64> {
    let snapshot = Snapshot { nodes };
    let mut state = CycleState::new(pod);
    let feasible: Vec<usize> = (0..nodes.len()).collect();
    plugin.pre_score(&mut state, &snapshot, &feasible);
    let mut scores: Vec<i64> = nodes.iter().map(|n| plugin.score(&state, n)).collect();
    plugin.normalize(&state, &mut scores);
    scores
}
