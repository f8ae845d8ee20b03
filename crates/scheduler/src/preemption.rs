//! Preemption (Kubernetes' DefaultPreemption): when a pod fits nowhere, find the node where
//! evicting the fewest, least important lower-priority pods makes it fit; the pod is
//! nominated to that node and the victims are deleted gracefully.

use crate::framework::{CycleState, Profile, Snapshot, Status};
use crate::nodeinfo::{NodeInfo, PodInfo};
use crate::schedule_one::FitError;

pub const NOT_HELPFUL: &str = "Preemption is not helpful for scheduling";
pub const NO_VICTIMS: &str = "No preemption victims found for incoming pod";

pub struct Candidate {
    pub node: String,
    pub victims: Vec<PodInfo>,
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
    let mut best: Option<(Candidate, (i32, usize, i64))> = None;
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
        // Reprieve the most important victims that can stay.
        lower.sort_by_key(|p| std::cmp::Reverse(p.priority()));
        let mut victims = Vec::new();
        for v in lower {
            trial.add_pod(v.clone());
            if !fits(profile, state, &trial) {
                trial.remove_pod(&v.key());
                victims.push(v);
            }
        }
        // Fewer important victims first: lowest highest-priority, then fewest, then the
        // smallest priority sum.
        let rank = (
            victims
                .iter()
                .map(PodInfo::priority)
                .max()
                .unwrap_or(i32::MIN),
            victims.len(),
            victims.iter().map(|v| i64::from(v.priority())).sum::<i64>(),
        );
        if best.as_ref().is_none_or(|(_, r)| rank < *r) {
            best = Some((
                Candidate {
                    node: node.name().to_string(),
                    victims,
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
