//! NodeAffinity (the seed's PodSelectorMatches / MatchNodeSelector): `nodeSelector` and
//! required node affinity filter nodes; preferred node affinity scores them by the summed
//! weights of the terms they match.

use k8s_openapi::api::core::v1::Pod;

use crate::framework::{CycleState, Plugin, Status, default_normalize};
use crate::nodeinfo::NodeInfo;

pub const ERR: &str = "node(s) didn't match Pod's node affinity/selector";

pub struct NodeAffinity;

pub use common::scheduling::term_matches;

/// Whether the pod's nodeSelector and required node affinity admit the node.
pub fn required_matches(pod: &Pod, node: &NodeInfo) -> bool {
    common::scheduling::node_matches(pod, node.labels(), node.name())
}

impl Plugin for NodeAffinity {
    fn name(&self) -> &'static str {
        "NodeAffinity"
    }
    fn filter(&self, state: &CycleState, node: &NodeInfo) -> Status {
        if required_matches(&state.pod.pod, node) {
            Status::Success
        } else {
            Status::unresolvable(ERR)
        }
    }
    fn score(&self, state: &CycleState, node: &NodeInfo) -> i64 {
        let preferred = state
            .pod
            .pod
            .spec
            .as_ref()
            .and_then(|s| s.affinity.as_ref())
            .and_then(|a| a.node_affinity.as_ref())
            .and_then(|n| {
                n.preferred_during_scheduling_ignored_during_execution
                    .as_ref()
            });
        preferred
            .into_iter()
            .flatten()
            .filter(|p| p.weight != 0 && term_matches(&p.preference, node.labels(), node.name()))
            .map(|p| i64::from(p.weight))
            .sum()
    }
    fn normalize(&self, _state: &CycleState, scores: &mut [i64]) {
        default_normalize(scores, false);
    }
}
