//! Preemption (Kubernetes' DefaultPreemption): when a pod fits nowhere, find the node where
//! evicting the fewest, least important lower-priority pods makes it fit; the pod is
//! nominated to that node and the victims are deleted gracefully. PodDisruptionBudgets are
//! respected as far as possible, as upstream: on each node the victims whose eviction would
//! break a budget are reprieved first, and the node breaking the fewest budgets wins.

use std::sync::Arc;

use k8s_openapi::api::policy::v1::PodDisruptionBudget;

use crate::framework::{CycleState, Profile, Snapshot, Status};
use crate::nodeinfo::{NodeInfo, PodInfo};
use crate::schedule_one::FitError;

pub const NOT_HELPFUL: &str = "Preemption is not helpful for scheduling";
pub const NO_VICTIMS: &str = "No preemption victims found for incoming pod";

pub struct Candidate {
    pub node: String,
    pub victims: Vec<PodInfo>,
    /// How many victims' evictions break a PodDisruptionBudget.
    pub pdb_violations: usize,
}

/// Upstream's `filterPodsWithPDBViolation`: splits `pods` (most important first) into those
/// whose eviction would break a budget and the others, counting each budget's allowed
/// disruptions down as pods are taken. A budget with an empty selector matches nothing here,
/// and a pod the budget already counts as disrupted costs nothing.
fn split_by_pdb(
    pods: Vec<PodInfo>,
    pdbs: &[Arc<PodDisruptionBudget>],
) -> (Vec<PodInfo>, Vec<PodInfo>) {
    let mut allowed: Vec<i32> = pdbs
        .iter()
        .map(|p| p.status.as_ref().map_or(0, |s| s.disruptions_allowed))
        .collect();
    let (mut violating, mut other) = (Vec::new(), Vec::new());
    for pod in pods {
        let meta = &pod.pod.metadata;
        let labels = meta.labels.clone().unwrap_or_default();
        let mut violated = false;
        for (i, pdb) in pdbs.iter().enumerate() {
            if pdb.metadata.namespace != meta.namespace {
                continue;
            }
            let selected = pdb
                .spec
                .as_ref()
                .and_then(|s| s.selector.as_ref())
                .is_some_and(|sel| common::selectors::selects_some(sel, &labels));
            let disrupted = pdb
                .status
                .as_ref()
                .and_then(|s| s.disrupted_pods.as_ref())
                .is_some_and(|d| meta.name.as_ref().is_some_and(|n| d.contains_key(n)));
            if !selected || disrupted {
                continue;
            }
            allowed[i] -= 1;
            if allowed[i] < 0 {
                violated = true;
            }
        }
        if violated {
            violating.push(pod);
        } else {
            other.push(pod);
        }
    }
    (violating, other)
}

fn fits(profile: &Profile, state: &CycleState, node: &NodeInfo) -> bool {
    profile
        .filters
        .iter()
        .all(|p| p.filter(state, node).is_success())
}

/// The best candidate, or the message part Kubernetes appends ("preemption: 0/3 nodes are
/// available: ...").
pub fn find(
    profile: &Profile,
    snapshot: &Snapshot<'_>,
    state: &CycleState,
    fit: &FitError,
    pdbs: &[Arc<PodDisruptionBudget>],
) -> Result<Candidate, String> {
    let pod = &state.pod;
    let never = pod
        .pod
        .spec
        .as_ref()
        .and_then(|s| s.preemption_policy.as_deref())
        == Some("Never");
    let prio = pod.priority();
    let mut not_helpful = 0;
    let mut no_victims = 0;
    let mut best: Option<(Candidate, (usize, i32, i64, usize))> = None;
    for (i, status) in &fit.statuses {
        if never || matches!(status, Status::Unresolvable(_)) {
            not_helpful += 1;
            continue;
        }
        let node = &snapshot.nodes[*i];
        let mut lower: Vec<PodInfo> = node
            .pods
            .iter()
            .filter(|p| p.priority() < prio && p.pod.metadata.deletion_timestamp.is_none())
            .cloned()
            .collect();
        if lower.is_empty() {
            no_victims += 1;
            continue;
        }
        let mut trial = node.clone();
        for v in &lower {
            trial.remove_pod(&v.key());
        }
        if !fits(profile, state, &trial) {
            no_victims += 1;
            continue;
        }
        // Reprieve the most important victims that can stay, those protected by a budget
        // first.
        lower.sort_by_key(|p| std::cmp::Reverse(p.priority()));
        let (violating, other) = split_by_pdb(lower, pdbs);
        let mut victims = Vec::new();
        let mut pdb_violations = 0;
        for (v, breaks_budget) in violating
            .into_iter()
            .map(|v| (v, true))
            .chain(other.into_iter().map(|v| (v, false)))
        {
            trial.add_pod(v.clone());
            if !fits(profile, state, &trial) {
                trial.remove_pod(&v.key());
                victims.push(v);
                pdb_violations += usize::from(breaks_budget);
            }
        }
        victims.sort_by_key(|p| std::cmp::Reverse(p.priority()));
        // Upstream's pickOneNodeForPreemption: fewest budgets broken, then the lowest
        // highest-priority victim, then the smallest priority sum, then fewest victims.
        let rank = (
            pdb_violations,
            victims
                .iter()
                .map(PodInfo::priority)
                .max()
                .unwrap_or(i32::MIN),
            victims.iter().map(|v| i64::from(v.priority())).sum::<i64>(),
            victims.len(),
        );
        if best.as_ref().is_none_or(|(_, r)| rank < *r) {
            best = Some((
                Candidate {
                    node: node.name().to_string(),
                    victims,
                    pdb_violations,
                },
                rank,
            ));
        }
    }
    match best {
        Some((c, _)) => Ok(c),
        None => {
            let mut parts = Vec::new();
            if not_helpful > 0 {
                parts.push(format!("{not_helpful} {NOT_HELPFUL}"));
            }
            if no_victims > 0 {
                parts.push(format!("{no_victims} {NO_VICTIMS}"));
            }
            parts.sort();
            Err(format!(
                "preemption: 0/{} nodes are available: {}.",
                fit.num_nodes,
                parts.join(", ")
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use serde_json::json;

    use super::*;
    use crate::schedule_one::{Decision, schedule};
    use crate::testutil::{node, pod};

    /// A pod asking for 3 of a node's 4 CPUs, at `priority`.
    fn big(name: &str, priority: i32, app: &str) -> PodInfo {
        pod(
            name,
            json!({"priority": priority, "containers": [{"name": "c", "image": "busybox",
                "resources": {"requests": {"cpu": "3"}}}]}),
            json!({"app": app}),
        )
    }

    fn pdb(app: &str, allowed: i32) -> Arc<PodDisruptionBudget> {
        Arc::new(
            serde_json::from_value(json!({
                "metadata": {"name": app, "namespace": "default"},
                "spec": {"selector": {"matchLabels": {"app": app}}},
                "status": {"disruptionsAllowed": allowed, "currentHealthy": 1,
                    "desiredHealthy": 1, "expectedPods": 1},
            }))
            .unwrap(),
        )
    }

    /// The candidate for a priority-100 pod needing 3 CPUs, on nodes `a` and `b` each holding
    /// one low-priority pod (`db` on `a`, `cache` on `b`).
    fn candidate(pdbs: &[Arc<PodDisruptionBudget>], prio_a: i32, prio_b: i32) -> Candidate {
        let mut a = node("a", json!({}));
        a.add_pod(big("db-0", prio_a, "db"));
        let mut b = node("b", json!({}));
        b.add_pod(big("cache-0", prio_b, "cache"));
        let nodes = [a, b];
        let snapshot = Snapshot { nodes: &nodes };
        let profile = crate::plugins::default_profile();
        let (decision, state) = schedule(&profile, &snapshot, big("web", 100, "web"), &mut 0);
        let Decision::Unfit(fit) = decision else {
            panic!("the pod should not fit");
        };
        find(&profile, &snapshot, &state, &fit, pdbs).unwrap()
    }

    #[test]
    fn the_node_breaking_no_budget_is_chosen() {
        // Without budgets the lower-priority victim's node wins.
        assert_eq!(candidate(&[], 1, 5).node, "a");
        // A budget allowing no disruption of `db` sends preemption to `b`, even though its
        // victim is more important.
        let c = candidate(&[pdb("db", 0)], 1, 5);
        assert_eq!((c.node.as_str(), c.pdb_violations), ("b", 0));
        // A budget with room left is no obstacle.
        assert_eq!(candidate(&[pdb("db", 1)], 1, 5).node, "a");
        // Both protected: one budget is broken either way; priority decides.
        let c = candidate(&[pdb("db", 0), pdb("cache", 0)], 1, 5);
        assert_eq!((c.node.as_str(), c.pdb_violations), ("a", 1));
    }

    #[test]
    fn protected_pods_are_reprieved_first_on_a_node() {
        // Two 2-CPU pods on one 4-CPU node; the new pod needs 2: either victim suffices.
        let half = |name: &str, app: &str| {
            pod(
                name,
                json!({"priority": 1, "containers": [{"name": "c", "image": "busybox",
                    "resources": {"requests": {"cpu": "2"}}}]}),
                json!({"app": app}),
            )
        };
        let mut a = node("a", json!({}));
        a.add_pod(half("db-0", "db"));
        a.add_pod(half("cache-0", "cache"));
        let nodes = [a];
        let snapshot = Snapshot { nodes: &nodes };
        let profile = crate::plugins::default_profile();
        let web = pod(
            "web",
            json!({"priority": 100, "containers": [{"name": "c", "image": "busybox",
                "resources": {"requests": {"cpu": "2"}}}]}),
            json!({"app": "web"}),
        );
        let (decision, state) = schedule(&profile, &snapshot, web, &mut 0);
        let Decision::Unfit(fit) = decision else {
            panic!("the pod should not fit");
        };
        for (protected, victim) in [("db", "cache-0"), ("cache", "db-0")] {
            let c = find(&profile, &snapshot, &state, &fit, &[pdb(protected, 0)]).unwrap();
            let names: Vec<_> = c
                .victims
                .iter()
                .map(|v| v.pod.metadata.name.clone().unwrap())
                .collect();
            assert_eq!((names, c.pdb_violations), (vec![victim.to_string()], 0));
        }
    }
}
