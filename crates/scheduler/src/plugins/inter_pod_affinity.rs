//! InterPodAffinity: required pod affinity and anti-affinity (the pod's own, and existing
//! pods' anti-affinity against it) filter nodes by topology domain; preferred terms score.
//! Counts are computed once per pod in PreFilter/PreScore, so filtering a node is a few
//! lookups, not a scan of every pod.

use std::collections::{HashMap, HashSet};

use k8s_openapi::api::core::v1::{Pod, PodAffinityTerm};

use crate::framework::{CycleState, Plugin, Snapshot, Status, min_max_normalize};
use crate::nodeinfo::NodeInfo;

pub const ERR_AFFINITY: &str = "node(s) didn't match pod affinity rules";
pub const ERR_ANTI: &str = "node(s) didn't match pod anti-affinity rules";
pub const ERR_EXISTING_ANTI: &str = "node(s) didn't satisfy existing pods anti-affinity rules";

pub struct InterPodAffinity;

/// Whether `term` (declared by a pod in `owner_ns`) selects `pod`.
pub fn term_selects(term: &PodAffinityTerm, owner_ns: &str, pod: &Pod) -> bool {
    static NO_LABELS: std::collections::BTreeMap<String, String> =
        std::collections::BTreeMap::new();
    let ns = pod.metadata.namespace.as_deref().unwrap_or_default();
    let namespaces = term.namespaces.as_deref().unwrap_or_default();
    // An empty namespaceSelector ({}) means every namespace; without labels of namespaces
    // here, a non-empty one is treated as matching none beyond the listed namespaces.
    let all_namespaces = term.namespace_selector.as_ref().is_some_and(|s| {
        s.match_labels.as_ref().is_none_or(|m| m.is_empty())
            && s.match_expressions.as_ref().is_none_or(|e| e.is_empty())
    });
    let ns_ok = all_namespaces
        || if namespaces.is_empty() && term.namespace_selector.is_none() {
            ns == owner_ns
        } else {
            namespaces.iter().any(|n| n == ns)
        };
    // Checked namespace first: it is cheap, and this runs for every pod in the cluster.
    ns_ok
        && term.label_selector.as_ref().is_some_and(|s| {
            common::selectors::selects(s, pod.metadata.labels.as_ref().unwrap_or(&NO_LABELS))
        })
}

fn affinity(pod: &Pod) -> Option<&k8s_openapi::api::core::v1::Affinity> {
    pod.spec.as_ref()?.affinity.as_ref()
}

fn required_affinity(pod: &Pod) -> &[PodAffinityTerm] {
    affinity(pod)
        .and_then(|a| a.pod_affinity.as_ref())
        .and_then(|a| {
            a.required_during_scheduling_ignored_during_execution
                .as_deref()
        })
        .unwrap_or_default()
}

fn required_anti(pod: &Pod) -> &[PodAffinityTerm] {
    affinity(pod)
        .and_then(|a| a.pod_anti_affinity.as_ref())
        .and_then(|a| {
            a.required_during_scheduling_ignored_during_execution
                .as_deref()
        })
        .unwrap_or_default()
}

#[derive(Default)]
struct PreFilterState {
    /// Per required affinity term: topology value -> matching pods there.
    affinity: Vec<HashMap<String, usize>>,
    /// Per required anti-affinity term: topology values holding a matching pod.
    anti: Vec<HashSet<String>>,
    /// (topologyKey, value) where an existing pod's anti-affinity forbids this pod.
    forbidden: HashSet<(String, String)>,
    /// No pod matches any affinity term, and the pod matches its own terms: the first of a
    /// group that wants to be together may go anywhere.
    first_of_group: bool,
}

const KEY: &str = "InterPodAffinity";
const SCORE_KEY: &str = "InterPodAffinity/score";

impl Plugin for InterPodAffinity {
    fn name(&self) -> &'static str {
        "InterPodAffinity"
    }

    fn pre_filter(&self, state: &mut CycleState, snapshot: &Snapshot<'_>) -> Status {
        let pod = state.pod.pod.clone();
        let ns = pod.metadata.namespace.clone().unwrap_or_default();
        let aff = required_affinity(&pod);
        let anti = required_anti(&pod);
        let mut s = PreFilterState {
            affinity: vec![HashMap::new(); aff.len()],
            anti: vec![HashSet::new(); anti.len()],
            ..Default::default()
        };
        // Without terms of its own, only pods with anti-affinity can rule this pod out.
        let own_terms = !aff.is_empty() || !anti.is_empty();
        let candidates = snapshot
            .nodes
            .iter()
            .filter(|n| own_terms || n.affinity_pods > 0)
            .flat_map(|n| n.pods.iter().map(move |p| (n, p)));
        for (node, other) in candidates {
            if other.pod.metadata.deletion_timestamp.is_some() {
                continue;
            }
            let labels = node.labels();
            for (i, t) in aff.iter().enumerate() {
                if let Some(v) = labels.get(&t.topology_key)
                    && term_selects(t, &ns, &other.pod)
                {
                    *s.affinity[i].entry(v.clone()).or_default() += 1;
                }
            }
            for (i, t) in anti.iter().enumerate() {
                if let Some(v) = labels.get(&t.topology_key)
                    && term_selects(t, &ns, &other.pod)
                {
                    s.anti[i].insert(v.clone());
                }
            }
            if other.has_affinity() {
                let other_ns = other.pod.metadata.namespace.as_deref().unwrap_or_default();
                for t in required_anti(&other.pod) {
                    if let Some(v) = labels.get(&t.topology_key)
                        && term_selects(t, other_ns, &pod)
                    {
                        s.forbidden.insert((t.topology_key.clone(), v.clone()));
                    }
                }
            }
        }
        s.first_of_group = !aff.is_empty()
            && s.affinity.iter().all(HashMap::is_empty)
            && aff.iter().all(|t| term_selects(t, &ns, &pod));
        state.write(KEY, s);
        Status::Success
    }

    fn filter(&self, state: &CycleState, node: &NodeInfo) -> Status {
        let Some(s) = state.read::<PreFilterState>(KEY) else {
            return Status::Success;
        };
        let labels = node.labels();
        let pod = &state.pod.pod;
        // Kubernetes' order: the pod's affinity, its anti-affinity, then existing pods'
        // anti-affinity (the first failing one is the reason reported).
        if !s.first_of_group {
            for (i, t) in required_affinity(pod).iter().enumerate() {
                let ok = labels
                    .get(&t.topology_key)
                    .is_some_and(|v| s.affinity[i].get(v).copied().unwrap_or(0) > 0);
                if !ok {
                    return Status::unresolvable(ERR_AFFINITY);
                }
            }
        } else if required_affinity(pod)
            .iter()
            .any(|t| !labels.contains_key(&t.topology_key))
        {
            return Status::unresolvable(ERR_AFFINITY);
        }
        for (i, t) in required_anti(pod).iter().enumerate() {
            if let Some(v) = labels.get(&t.topology_key)
                && s.anti[i].contains(v)
            {
                return Status::unschedulable(ERR_ANTI);
            }
        }
        if s.forbidden.iter().any(|(k, v)| labels.get(k) == Some(v)) {
            return Status::unschedulable(ERR_EXISTING_ANTI);
        }
        Status::Success
    }

    fn pre_score(&self, state: &mut CycleState, snapshot: &Snapshot<'_>, _feasible: &[usize]) {
        let pod = state.pod.pod.clone();
        let ns = pod.metadata.namespace.clone().unwrap_or_default();
        let a = affinity(&pod);
        let preferred: Vec<(i64, &PodAffinityTerm)> = a
            .and_then(|a| a.pod_affinity.as_ref())
            .and_then(|a| {
                a.preferred_during_scheduling_ignored_during_execution
                    .as_deref()
            })
            .unwrap_or_default()
            .iter()
            .map(|w| (i64::from(w.weight), &w.pod_affinity_term))
            .chain(
                a.and_then(|a| a.pod_anti_affinity.as_ref())
                    .and_then(|a| {
                        a.preferred_during_scheduling_ignored_during_execution
                            .as_deref()
                    })
                    .unwrap_or_default()
                    .iter()
                    .map(|w| (-i64::from(w.weight), &w.pod_affinity_term)),
            )
            .collect();
        // (topologyKey, value) -> score contribution.
        let mut contrib: HashMap<(String, String), i64> = HashMap::new();
        if !preferred.is_empty() {
            for (node, other) in snapshot.pods() {
                let labels = node.labels();
                for (w, t) in &preferred {
                    if let Some(v) = labels.get(&t.topology_key)
                        && term_selects(t, &ns, &other.pod)
                    {
                        *contrib
                            .entry((t.topology_key.clone(), v.clone()))
                            .or_default() += w;
                    }
                }
            }
        }
        state.write(SCORE_KEY, contrib);
    }

    fn score(&self, state: &CycleState, node: &NodeInfo) -> i64 {
        let Some(contrib) = state.read::<HashMap<(String, String), i64>>(SCORE_KEY) else {
            return 0;
        };
        contrib
            .iter()
            .filter(|((k, v), _)| node.labels().get(k) == Some(v))
            .map(|(_, s)| *s)
            .sum()
    }

    fn normalize(&self, _state: &CycleState, scores: &mut [i64]) {
        min_max_normalize(scores, false, 0);
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::testutil::{filter_all, node, pod, score_all};

    fn term(app: &str) -> serde_json::Value {
        json!({"labelSelector": {"matchLabels": {"app": app}}, "topologyKey": "zone"})
    }

    #[test]
    fn required_terms_by_topology_domain() {
        let mut nodes = vec![
            node("a1", json!({"zone": "a"})),
            node("a2", json!({"zone": "a"})),
            node("b1", json!({"zone": "b"})),
            node("none", json!({})),
        ];
        nodes[0].add_pod(pod("db", json!({}), json!({"app": "db"})));
        let cases = [
            // (spec, expected per node)
            (
                json!({"affinity": {"podAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [term("db")]}}}),
                [true, true, false, false],
            ),
            (
                json!({"affinity": {"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [term("db")]}}}),
                [false, false, true, true],
            ),
            // Nothing matches and the pod matches its own term: the first of its group.
            (
                json!({"affinity": {"podAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [term("web")]}}}),
                [true, true, true, false],
            ),
        ];
        for (spec, want) in cases {
            let got: Vec<bool> = filter_all(
                &InterPodAffinity,
                &nodes,
                pod("p", spec.clone(), json!({"app": "web"})),
            )
            .iter()
            .map(Status::is_success)
            .collect();
            assert_eq!(got, want, "{spec}");
        }
        // An existing pod's anti-affinity keeps a matching newcomer out of its zone.
        let mut nodes2 = nodes.clone();
        nodes2[2].add_pod(pod(
            "loner",
            json!({"affinity": {"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [term("web")]}}}),
            json!({"app": "loner"}),
        ));
        let got = filter_all(
            &InterPodAffinity,
            &nodes2,
            pod("p", json!({}), json!({"app": "web"})),
        );
        assert_eq!(got[2], Status::unschedulable(ERR_EXISTING_ANTI));
        assert!(got[0].is_success());
        // Preferred affinity scores the zone with the matching pod highest.
        let preferred = json!({"affinity": {"podAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
            {"weight": 10, "podAffinityTerm": term("db")}]}}});
        let scores = score_all(&InterPodAffinity, &nodes, pod("p", preferred, json!({})));
        assert_eq!(scores, [100, 100, 0, 0]);
    }
}
