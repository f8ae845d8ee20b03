//! NodeAffinity (the seed's PodSelectorMatches / MatchNodeSelector): `nodeSelector` and
//! required node affinity filter nodes; preferred node affinity scores them by the summed
//! weights of the terms they match.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{NodeSelectorRequirement, NodeSelectorTerm, Pod};

use crate::framework::{CycleState, Plugin, Status, default_normalize};
use crate::nodeinfo::NodeInfo;

pub const ERR: &str = "node(s) didn't match Pod's node affinity/selector";

pub struct NodeAffinity;

fn requirement_matches(r: &NodeSelectorRequirement, value: Option<&str>) -> bool {
    let values = r.values.as_deref().unwrap_or_default();
    match r.operator.as_str() {
        "In" => value.is_some_and(|v| values.iter().any(|x| x == v)),
        "NotIn" => value.is_none_or(|v| !values.iter().any(|x| x == v)),
        "Exists" => value.is_some(),
        "DoesNotExist" => value.is_none(),
        "Gt" | "Lt" => {
            let (Some(v), Some(bound)) = (
                value.and_then(|v| v.parse::<i64>().ok()),
                values.first().and_then(|b| b.parse::<i64>().ok()),
            ) else {
                return false;
            };
            if r.operator == "Gt" {
                v > bound
            } else {
                v < bound
            }
        }
        _ => false,
    }
}

/// Whether a node (its labels and name) matches one selector term: every expression and
/// field requirement holds; an empty term matches nothing.
pub fn term_matches(t: &NodeSelectorTerm, labels: &BTreeMap<String, String>, name: &str) -> bool {
    let exprs = t.match_expressions.as_deref().unwrap_or_default();
    let fields = t.match_fields.as_deref().unwrap_or_default();
    if exprs.is_empty() && fields.is_empty() {
        return false;
    }
    exprs
        .iter()
        .all(|r| requirement_matches(r, labels.get(&r.key).map(String::as_str)))
        && fields.iter().all(|r| {
            let v = (r.key == "metadata.name").then_some(name);
            requirement_matches(r, v)
        })
}

/// Whether the pod's nodeSelector and required node affinity admit the node.
pub fn required_matches(pod: &Pod, node: &NodeInfo) -> bool {
    let Some(spec) = pod.spec.as_ref() else {
        return true;
    };
    let labels = node.labels();
    if let Some(sel) = spec.node_selector.as_ref()
        && !sel.iter().all(|(k, v)| labels.get(k) == Some(v))
    {
        return false;
    }
    let required = spec
        .affinity
        .as_ref()
        .and_then(|a| a.node_affinity.as_ref())
        .and_then(|n| {
            n.required_during_scheduling_ignored_during_execution
                .as_ref()
        });
    match required {
        None => true,
        Some(sel) => sel
            .node_selector_terms
            .iter()
            .any(|t| term_matches(t, labels, node.name())),
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn req(key: &str, op: &str, values: &[&str]) -> NodeSelectorRequirement {
        NodeSelectorRequirement {
            key: key.into(),
            operator: op.into(),
            values: Some(values.iter().map(|v| v.to_string()).collect()),
        }
    }

    #[test]
    fn operators() {
        assert!(requirement_matches(
            &req("zone", "In", &["a", "b"]),
            Some("a")
        ));
        assert!(!requirement_matches(&req("zone", "In", &["a"]), None));
        assert!(requirement_matches(&req("zone", "NotIn", &["a"]), None));
        assert!(requirement_matches(&req("zone", "Exists", &[]), Some("")));
        assert!(requirement_matches(&req("cores", "Gt", &["4"]), Some("8")));
        assert!(!requirement_matches(
            &req("cores", "Gt", &["4"]),
            Some("four")
        ));
        assert!(requirement_matches(&req("cores", "Lt", &["4"]), Some("2")));
        let empty = NodeSelectorTerm::default();
        assert!(!term_matches(&empty, &BTreeMap::new(), "n"));
        let by_name = NodeSelectorTerm {
            match_fields: Some(vec![req("metadata.name", "In", &["n1"])]),
            ..Default::default()
        };
        assert!(term_matches(&by_name, &BTreeMap::new(), "n1"));
        assert!(!term_matches(&by_name, &BTreeMap::new(), "n2"));
    }
}
