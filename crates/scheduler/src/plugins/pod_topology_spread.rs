//! PodTopologySpread: `topologySpreadConstraints` keep matching pods spread across
//! topology domains within `maxSkew` (DoNotSchedule filters, ScheduleAnyway scores).
//! Nodes count as domains when they pass the pod's node affinity/selector
//! (nodeAffinityPolicy Honor) and carry the topology key.

use std::collections::{BTreeMap, HashMap};

use k8s_openapi::api::core::v1::{Pod, TopologySpreadConstraint};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

use crate::framework::{CycleState, MAX_NODE_SCORE, Plugin, Snapshot, Status, min_max_normalize};
use crate::nodeinfo::NodeInfo;
use crate::plugins::node_affinity::required_matches;

pub const ERR: &str = "node(s) didn't match pod topology spread constraints";
pub const ERR_LABEL: &str =
    "node(s) didn't match pod topology spread constraints (missing required label)";

pub struct PodTopologySpread;

fn constraints<'a>(pod: &'a Pod, when: &str) -> Vec<&'a TopologySpreadConstraint> {
    pod.spec
        .as_ref()
        .and_then(|s| s.topology_spread_constraints.as_deref())
        .unwrap_or_default()
        .iter()
        .filter(|c| c.when_unsatisfiable == when)
        .collect()
}

/// The constraint's selector with matchLabelKeys folded in from the pod's labels.
fn selector(c: &TopologySpreadConstraint, pod: &Pod) -> LabelSelector {
    let mut sel = c.label_selector.clone().unwrap_or_default();
    let labels = pod.metadata.labels.clone().unwrap_or_default();
    for k in c.match_label_keys.iter().flatten() {
        if let Some(v) = labels.get(k) {
            sel.match_labels
                .get_or_insert_with(BTreeMap::new)
                .insert(k.clone(), v.clone());
        }
    }
    sel
}

struct Counts {
    /// Per constraint: domain value -> matching pods.
    per_domain: Vec<HashMap<String, i64>>,
    /// Per constraint: the smallest count over domains.
    min: Vec<i64>,
    self_match: Vec<i64>,
}

fn count(cs: &[&TopologySpreadConstraint], pod: &Pod, snapshot: &Snapshot<'_>) -> Counts {
    let ns = pod.metadata.namespace.as_deref().unwrap_or_default();
    let own_labels = pod.metadata.labels.clone().unwrap_or_default();
    let mut per_domain = vec![HashMap::new(); cs.len()];
    let mut self_match = vec![0; cs.len()];
    let selectors: Vec<LabelSelector> = cs.iter().map(|c| selector(c, pod)).collect();
    for (i, sel) in selectors.iter().enumerate() {
        self_match[i] = i64::from(common::selectors::selects(sel, &own_labels));
    }
    for node in snapshot.nodes {
        if !required_matches(pod, node) {
            continue;
        }
        for (i, c) in cs.iter().enumerate() {
            let Some(v) = node.labels().get(&c.topology_key) else {
                continue;
            };
            let n = node
                .pods
                .iter()
                .filter(|p| {
                    p.pod.metadata.namespace.as_deref() == Some(ns)
                        && p.pod.metadata.deletion_timestamp.is_none()
                        && common::selectors::selects(
                            &selectors[i],
                            p.pod.metadata.labels.as_ref().unwrap_or(&BTreeMap::new()),
                        )
                })
                .count() as i64;
            *per_domain[i].entry(v.clone()).or_default() += n;
        }
    }
    let min = cs
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let domains = per_domain[i].len() as i32;
            if c.min_domains.is_some_and(|m| domains < m) {
                0
            } else {
                per_domain[i].values().copied().min().unwrap_or(0)
            }
        })
        .collect();
    Counts {
        per_domain,
        min,
        self_match,
    }
}

const KEY: &str = "PodTopologySpread";
const SCORE_KEY: &str = "PodTopologySpread/score";

impl Plugin for PodTopologySpread {
    fn name(&self) -> &'static str {
        "PodTopologySpread"
    }

    fn pre_filter(&self, state: &mut CycleState, snapshot: &Snapshot<'_>) -> Status {
        let pod = state.pod.pod.clone();
        let cs = constraints(&pod, "DoNotSchedule");
        if !cs.is_empty() {
            state.write(KEY, count(&cs, &pod, snapshot));
        }
        Status::Success
    }

    fn filter(&self, state: &CycleState, node: &NodeInfo) -> Status {
        let Some(counts) = state.read::<Counts>(KEY) else {
            return Status::Success;
        };
        for (i, c) in constraints(&state.pod.pod, "DoNotSchedule")
            .iter()
            .enumerate()
        {
            let Some(v) = node.labels().get(&c.topology_key) else {
                return Status::unresolvable(ERR_LABEL);
            };
            let here = counts.per_domain[i].get(v).copied().unwrap_or(0);
            if here + counts.self_match[i] - counts.min[i] > i64::from(c.max_skew) {
                return Status::unschedulable(ERR);
            }
        }
        Status::Success
    }

    fn pre_score(&self, state: &mut CycleState, snapshot: &Snapshot<'_>, _feasible: &[usize]) {
        let pod = state.pod.pod.clone();
        let cs = constraints(&pod, "ScheduleAnyway");
        if !cs.is_empty() {
            state.write(SCORE_KEY, count(&cs, &pod, snapshot));
        }
    }

    fn score(&self, state: &CycleState, node: &NodeInfo) -> i64 {
        let Some(counts) = state.read::<Counts>(SCORE_KEY) else {
            return 0;
        };
        constraints(&state.pod.pod, "ScheduleAnyway")
            .iter()
            .enumerate()
            .map(|(i, c)| {
                node.labels()
                    .get(&c.topology_key)
                    .and_then(|v| counts.per_domain[i].get(v))
                    .copied()
                    .unwrap_or(0)
            })
            .sum()
    }

    /// Fewer matching pods in the node's domains is better.
    fn normalize(&self, state: &CycleState, scores: &mut [i64]) {
        if state.read::<Counts>(SCORE_KEY).is_none() {
            scores.iter_mut().for_each(|s| *s = 0);
            return;
        }
        min_max_normalize(scores, true, MAX_NODE_SCORE);
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::testutil::{filter_all, node, pod, score_all};

    fn spread(max_skew: i32, when: &str) -> serde_json::Value {
        json!({"topologySpreadConstraints": [{"maxSkew": max_skew, "topologyKey": "zone",
            "whenUnsatisfiable": when, "labelSelector": {"matchLabels": {"app": "web"}}}]})
    }

    #[test]
    fn skew_is_kept_within_max_skew() {
        let mut nodes = vec![
            node("a1", json!({"zone": "a"})),
            node("b1", json!({"zone": "b"})),
            node("nolabel", json!({})),
        ];
        nodes[0].add_pod(pod("w1", json!({}), json!({"app": "web"})));
        nodes[0].add_pod(pod("w2", json!({}), json!({"app": "web"})));
        nodes[1].add_pod(pod("w3", json!({}), json!({"app": "web"})));
        let web = |spec| pod("new", spec, json!({"app": "web"}));
        let got = filter_all(&PodTopologySpread, &nodes, web(spread(1, "DoNotSchedule")));
        assert_eq!(got[0], Status::unschedulable(ERR));
        assert!(got[1].is_success());
        assert_eq!(got[2], Status::unresolvable(ERR_LABEL));
        let got = filter_all(&PodTopologySpread, &nodes, web(spread(2, "DoNotSchedule")));
        assert!(got[0].is_success());
        // ScheduleAnyway only scores: the emptier zone wins.
        let scores = score_all(
            &PodTopologySpread,
            &nodes[..2],
            web(spread(1, "ScheduleAnyway")),
        );
        assert_eq!(scores, [0, 100]);
    }
}
