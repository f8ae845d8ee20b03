//! NodeResourcesBalancedAllocation (the seed's BalancedResourceAllocation): nodes whose CPU
//! and memory would be used in similar proportions score higher (1 - standard deviation of
//! the fractions).

use crate::framework::{CycleState, MAX_NODE_SCORE, Plugin};
use crate::nodeinfo::NodeInfo;

pub struct BalancedAllocation;

impl Plugin for BalancedAllocation {
    fn name(&self) -> &'static str {
        "NodeResourcesBalancedAllocation"
    }
    fn score(&self, state: &CycleState, node: &NodeInfo) -> i64 {
        let frac = |used: i64, cap: i64| {
            if cap <= 0 {
                1.0
            } else {
                (used as f64 / cap as f64).min(1.0)
            }
        };
        let cpu = frac(
            node.non_zero_requested.milli_cpu + state.pod.non_zero.milli_cpu,
            node.allocatable.milli_cpu,
        );
        let mem = frac(
            node.non_zero_requested.memory + state.pod.non_zero.memory,
            node.allocatable.memory,
        );
        // The standard deviation of two values is half their distance.
        let std = (cpu - mem).abs() / 2.0;
        ((1.0 - std) * MAX_NODE_SCORE as f64) as i64
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::testutil::{node, pod, score_all};

    #[test]
    fn balanced_nodes_score_higher() {
        // 4 cpu / 8Gi nodes; one already half full of CPU only.
        let mut nodes = vec![node("cpu-heavy", json!({})), node("empty", json!({}))];
        nodes[0].add_pod(pod(
            "hog",
            json!({"containers": [{"name": "c", "resources": {"requests": {"cpu": "2", "memory": "1Mi"}}}]}),
            json!({}),
        ));
        let p = pod(
            "p",
            json!({"containers": [{"name": "c", "resources": {"requests": {"cpu": "1", "memory": "2Gi"}}}]}),
            json!({}),
        );
        let scores = score_all(&BalancedAllocation, &nodes, p);
        assert!(scores[1] > scores[0], "{scores:?}");
        assert_eq!(scores[1], 100);
    }
}
