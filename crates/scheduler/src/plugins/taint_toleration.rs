//! TaintToleration: NoSchedule and NoExecute taints keep out pods that do not tolerate
//! them; PreferNoSchedule taints lower a node's score by how many the pod does not tolerate.

use k8s_openapi::api::core::v1::{Taint, Toleration};

use crate::framework::{CycleState, Plugin, Status, default_normalize};
use crate::nodeinfo::NodeInfo;

pub struct TaintToleration;

pub use common::scheduling::tolerates;

fn tolerations(state: &CycleState) -> &[Toleration] {
    state
        .pod
        .pod
        .spec
        .as_ref()
        .and_then(|s| s.tolerations.as_deref())
        .unwrap_or_default()
}

fn taints(node: &NodeInfo) -> &[Taint] {
    node.node
        .spec
        .as_ref()
        .and_then(|s| s.taints.as_deref())
        .unwrap_or_default()
}

impl Plugin for TaintToleration {
    fn name(&self) -> &'static str {
        "TaintToleration"
    }
    fn filter(&self, state: &CycleState, node: &NodeInfo) -> Status {
        match common::scheduling::untolerated(taints(node), tolerations(state)) {
            None => Status::Success,
            Some(t) => Status::unresolvable(format!(
                "node(s) had untolerated taint {{{}: {}}}",
                t.key,
                t.value.as_deref().unwrap_or_default()
            )),
        }
    }
    fn score(&self, state: &CycleState, node: &NodeInfo) -> i64 {
        let tols: Vec<&Toleration> = tolerations(state)
            .iter()
            .filter(|t| {
                t.effect
                    .as_deref()
                    .is_none_or(|e| e.is_empty() || e == "PreferNoSchedule")
            })
            .collect();
        taints(node)
            .iter()
            .filter(|taint| taint.effect == "PreferNoSchedule")
            .filter(|taint| !tols.iter().any(|t| tolerates(t, taint)))
            .count() as i64
    }
    fn normalize(&self, _state: &CycleState, scores: &mut [i64]) {
        default_normalize(scores, true);
    }
}
