//! One scheduling cycle (Kubernetes' `schedulePod`): PreFilter, Filter over the nodes until
//! enough feasible ones are found, Score with the profile's weights, and the best node; or,
//! when nothing fits, the per-node reasons `FailedScheduling` reports.

use std::collections::BTreeMap;

use crate::framework::{CycleState, Profile, Snapshot, Status};
use crate::nodeinfo::PodInfo;

/// Why no node fits: each node's failing status.
pub struct FitError {
    pub num_nodes: usize,
    pub statuses: Vec<(usize, Status)>,
    /// A PreFilter's reasons, when one failed the pod before any node was looked at.
    pub pre_filter: Option<String>,
}

impl FitError {
    /// Kubernetes' message: "0/3 nodes are available: 1 Insufficient cpu, 2 node(s) didn't
    /// match Pod's node affinity/selector." (reasons counted, sorted).
    pub fn message(&self) -> String {
        let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
        for (_, s) in &self.statuses {
            for r in s.reasons() {
                *counts.entry(r.as_str()).or_default() += 1;
            }
        }
        let mut parts: Vec<String> = counts.iter().map(|(r, n)| format!("{n} {r}")).collect();
        parts.sort();
        if self.num_nodes == 0 {
            return "no nodes available to schedule pods".to_string();
        }
        // Upstream names a PreFilter's reasons once instead of counting them per node.
        if let Some(m) = &self.pre_filter {
            return format!("0/{} nodes are available: {m}.", self.num_nodes);
        }
        format!(
            "0/{} nodes are available: {}.",
            self.num_nodes,
            parts.join(", ")
        )
    }
}

/// The outcome of one cycle.
pub enum Decision {
    Node(String),
    Unfit(FitError),
}

/// Runs the cycle for `pod`. `start` rotates where the search begins so a partial search
/// does not always favour the first nodes.
pub fn schedule(
    profile: &Profile,
    snapshot: &Snapshot<'_>,
    pod: PodInfo,
    start: &mut usize,
) -> (Decision, CycleState) {
    let mut state = CycleState::new(pod);
    let n = snapshot.nodes.len();
    if n == 0 {
        return (
            Decision::Unfit(FitError {
                num_nodes: 0,
                statuses: vec![],
                pre_filter: None,
            }),
            state,
        );
    }
    for p in &profile.filters {
        let s = p.pre_filter(&mut state, snapshot);
        if !s.is_success() {
            let statuses = (0..n).map(|i| (i, s.clone())).collect();
            return (
                Decision::Unfit(FitError {
                    num_nodes: n,
                    statuses,
                    pre_filter: Some(s.reasons().join(", ")),
                }),
                state,
            );
        }
    }
    let want = profile.nodes_to_find(n);
    let mut feasible = Vec::new();
    let mut statuses = Vec::new();
    let mut examined = 0;
    for k in 0..n {
        let i = (*start + k) % n;
        examined += 1;
        let node = &snapshot.nodes[i];
        let failed = profile
            .filters
            .iter()
            .map(|p| p.filter(&state, node))
            .find(|s| !s.is_success());
        match failed {
            Some(s) => statuses.push((i, s)),
            None => {
                feasible.push(i);
                if feasible.len() >= want {
                    break;
                }
            }
        }
    }
    *start = (*start + examined) % n;
    if feasible.is_empty() {
        return (
            Decision::Unfit(FitError {
                num_nodes: n,
                statuses,
                pre_filter: None,
            }),
            state,
        );
    }
    if feasible.len() == 1 {
        let name = snapshot.nodes[feasible[0]].name().to_string();
        return (Decision::Node(name), state);
    }
    let mut totals = vec![0i64; feasible.len()];
    for (p, weight) in &profile.scores {
        p.pre_score(&mut state, snapshot, &feasible);
        let mut scores: Vec<i64> = feasible
            .iter()
            .map(|i| p.score(&state, &snapshot.nodes[*i]))
            .collect();
        p.normalize(&state, &mut scores);
        for (t, s) in totals.iter_mut().zip(scores) {
            *t += s * weight;
        }
    }
    // The best score; ties go to a pseudo-random one of the best (reservoir sampling).
    let best = totals.iter().copied().max().unwrap_or(0);
    let mut chosen = feasible[0];
    let mut seen = 0u64;
    let mut rng = (*start as u64).wrapping_mul(0x9E3779B97F4A7C15) ^ 0xD1B54A32D192ED03;
    for (idx, t) in feasible.iter().zip(&totals) {
        if *t == best {
            seen += 1;
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            if rng.is_multiple_of(seen) {
                chosen = *idx;
            }
        }
    }
    (
        Decision::Node(snapshot.nodes[chosen].name().to_string()),
        state,
    )
}
