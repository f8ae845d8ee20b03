//! NodeResourcesFit (the seed's PodFitsResources) and its LeastAllocated score (the seed's
//! LeastRequestedPriority): the pod's requests must fit the node's allocatable minus what
//! its pods request; emptier nodes score higher.

use crate::framework::{CycleState, MAX_NODE_SCORE, Plugin, Status};
use crate::nodeinfo::NodeInfo;

pub struct NodeResourcesFit;

/// Why the pod does not fit, one reason per resource short ("Insufficient cpu").
pub fn insufficient(state: &CycleState, node: &NodeInfo) -> Vec<String> {
    let want = &state.pod.requests;
    let have = &node.allocatable;
    let used = &node.requested;
    let mut out = Vec::new();
    if used.pods + 1 > have.pods {
        out.push("Too many pods".to_string());
    }
    if want.milli_cpu > 0 && want.milli_cpu > have.milli_cpu - used.milli_cpu {
        out.push("Insufficient cpu".to_string());
    }
    if want.memory > 0 && want.memory > have.memory - used.memory {
        out.push("Insufficient memory".to_string());
    }
    if want.ephemeral_storage > 0
        && want.ephemeral_storage > have.ephemeral_storage - used.ephemeral_storage
    {
        out.push("Insufficient ephemeral-storage".to_string());
    }
    for (name, q) in &want.scalar {
        if *q > 0 {
            let cap = have.scalar.get(name).copied().unwrap_or(0);
            let u = used.scalar.get(name).copied().unwrap_or(0);
            if *q > cap - u {
                out.push(format!("Insufficient {name}"));
            }
        }
    }
    out
}

/// Free fraction of one resource after placing the pod, 0..=100.
fn least_requested(requested: i64, capacity: i64) -> i64 {
    if capacity <= 0 || requested > capacity {
        return 0;
    }
    (capacity - requested) * MAX_NODE_SCORE / capacity
}

impl Plugin for NodeResourcesFit {
    fn name(&self) -> &'static str {
        "NodeResourcesFit"
    }
    fn filter(&self, state: &CycleState, node: &NodeInfo) -> Status {
        let reasons = insufficient(state, node);
        if reasons.is_empty() {
            Status::Success
        } else {
            Status::Unschedulable(reasons)
        }
    }
    fn score(&self, state: &CycleState, node: &NodeInfo) -> i64 {
        let cpu = least_requested(
            node.non_zero_requested.milli_cpu + state.pod.non_zero.milli_cpu,
            node.allocatable.milli_cpu,
        );
        let mem = least_requested(
            node.non_zero_requested.memory + state.pod.non_zero.memory,
            node.allocatable.memory,
        );
        (cpu + mem) / 2
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn least_requested_scores() {
        assert_eq!(least_requested(0, 1000), 100);
        assert_eq!(least_requested(250, 1000), 75);
        assert_eq!(least_requested(2000, 1000), 0);
        assert_eq!(least_requested(10, 0), 0);
    }
}
