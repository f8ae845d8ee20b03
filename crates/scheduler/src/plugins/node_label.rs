//! NodeLabel: the seed's CheckNodeLabelPresence predicate and CalculateNodeLabelPriority
//! priority (removed from upstream in 1.24, kept here as an addition, off unless
//! configured): nodes must (or must not) carry given labels, and score by the labels they
//! carry.

use crate::framework::{CycleState, MAX_NODE_SCORE, Plugin, Status};
use crate::nodeinfo::NodeInfo;

pub const ERR: &str = "node(s) didn't have the requested labels";

#[derive(Clone, Debug, Default)]
pub struct NodeLabel {
    /// Labels a node must have (predicate).
    pub present: Vec<String>,
    /// Labels a node must not have (predicate).
    pub absent: Vec<String>,
    /// Labels that raise a node's score when present (priority).
    pub present_preference: Vec<String>,
    /// Labels that raise a node's score when absent (priority).
    pub absent_preference: Vec<String>,
}

impl Plugin for NodeLabel {
    fn name(&self) -> &'static str {
        "NodeLabel"
    }
    fn filter(&self, _state: &CycleState, node: &NodeInfo) -> Status {
        let labels = node.labels();
        let ok = self.present.iter().all(|l| labels.contains_key(l))
            && self.absent.iter().all(|l| !labels.contains_key(l));
        if ok {
            Status::Success
        } else {
            Status::unresolvable(ERR)
        }
    }
    fn score(&self, _state: &CycleState, node: &NodeInfo) -> i64 {
        let labels = node.labels();
        let total = self.present_preference.len() + self.absent_preference.len();
        if total == 0 {
            return 0;
        }
        let hits = self
            .present_preference
            .iter()
            .filter(|l| labels.contains_key(*l))
            .count()
            + self
                .absent_preference
                .iter()
                .filter(|l| !labels.contains_key(*l))
                .count();
        hits as i64 * MAX_NODE_SCORE / total as i64
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::testutil::{filter_all, node, pod, score_all};

    #[test]
    fn presence_and_preference() {
        let nodes = vec![
            node("ssd", json!({"disk": "ssd", "fast": "yes"})),
            node("plain", json!({})),
        ];
        let plugin = NodeLabel {
            present: vec!["disk".into()],
            present_preference: vec!["fast".into()],
            ..Default::default()
        };
        let got = filter_all(&plugin, &nodes, pod("p", json!({}), json!({})));
        assert_eq!(got, [Status::Success, Status::unresolvable(ERR)]);
        assert_eq!(
            score_all(&plugin, &nodes, pod("p", json!({}), json!({}))),
            [100, 0]
        );
    }
}
