//! The scheduling framework (Kubernetes' `pkg/scheduler/framework`): plugins with
//! PreFilter / Filter / PreScore / Score / NormalizeScore / Reserve / PreBind extension
//! points, a per-pod cycle state, and a profile that enables plugins and weights their scores.

use std::any::Any;
use std::collections::HashMap;
use std::sync::Arc;

use futures::future::BoxFuture;
use k8s_openapi::api::core::v1::Pod;

use crate::nodeinfo::{NodeInfo, PodInfo};

/// Highest score a plugin gives a node (after normalization).
pub const MAX_NODE_SCORE: i64 = 100;

/// A filter's verdict on one node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Status {
    Success,
    /// Does not fit; the reasons are the ones `FailedScheduling` counts. Preemption may
    /// help.
    Unschedulable(Vec<String>),
    /// Does not fit and removing pods would not change that (preemption skips the node).
    Unresolvable(Vec<String>),
}

impl Status {
    pub fn unschedulable(reason: impl Into<String>) -> Status {
        Status::Unschedulable(vec![reason.into()])
    }
    pub fn unresolvable(reason: impl Into<String>) -> Status {
        Status::Unresolvable(vec![reason.into()])
    }
    pub fn is_success(&self) -> bool {
        matches!(self, Status::Success)
    }
    pub fn reasons(&self) -> &[String] {
        match self {
            Status::Success => &[],
            Status::Unschedulable(r) | Status::Unresolvable(r) => r,
        }
    }
}

/// Every node the scheduler knows, as one cycle sees them.
pub struct Snapshot<'a> {
    pub nodes: &'a [NodeInfo],
}

impl Snapshot<'_> {
    /// Every pod on every node, with its node.
    pub fn pods(&self) -> impl Iterator<Item = (&NodeInfo, &PodInfo)> {
        self.nodes
            .iter()
            .flat_map(|n| n.pods.iter().map(move |p| (n, p)))
    }
}

/// What one scheduling cycle knows about its pod, and what plugins computed in PreFilter /
/// PreScore for their later calls.
pub struct CycleState {
    pub pod: PodInfo,
    data: HashMap<&'static str, Box<dyn Any + Send + Sync>>,
}

impl CycleState {
    pub fn new(pod: PodInfo) -> Self {
        CycleState {
            pod,
            data: HashMap::new(),
        }
    }
    pub fn write<T: Any + Send + Sync>(&mut self, key: &'static str, v: T) {
        self.data.insert(key, Box::new(v));
    }
    pub fn read<T: Any + Send + Sync>(&self, key: &'static str) -> Option<&T> {
        self.data.get(key)?.downcast_ref()
    }
}

/// A plugin; each implements the extension points it needs.
pub trait Plugin: Send + Sync {
    fn name(&self) -> &'static str;

    /// Once per pod, before any node is filtered (precompute what filtering needs). A
    /// failure here fails every node.
    fn pre_filter(&self, _state: &mut CycleState, _snapshot: &Snapshot<'_>) -> Status {
        Status::Success
    }

    fn filter(&self, _state: &CycleState, _node: &NodeInfo) -> Status {
        Status::Success
    }

    /// Once per pod, with the feasible nodes, before scoring.
    fn pre_score(&self, _state: &mut CycleState, _snapshot: &Snapshot<'_>, _feasible: &[usize]) {}

    /// A raw score; `normalize` then maps the feasible nodes' scores to 0..=100.
    fn score(&self, _state: &CycleState, _node: &NodeInfo) -> i64 {
        0
    }

    fn normalize(&self, _state: &CycleState, _scores: &mut [i64]) {}

    /// Once the node is chosen, still in the scheduling cycle: set aside what the pod will
    /// use there, so the next pods' cycles see it taken. A failure undoes every plugin's
    /// reservation and the pod is retried.
    fn reserve(&self, _state: &mut CycleState, _node: &str) -> Status {
        Status::Success
    }

    /// Undoes `reserve` (a later step failed); must be harmless when nothing was reserved.
    fn unreserve(&self, _state: &CycleState, _node: &str) {}

    /// In the binding task, before the pod is bound: the API writes its binding depends on,
    /// and waiting for them. `Err` (a message) leaves the pod unbound to be retried.
    fn pre_bind<'a>(&'a self, _ctx: &'a BindContext<'a>) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(async { Ok(()) })
    }

    /// Subscribes `requeue` to the cluster events (beyond node and pod changes, which the
    /// scheduler itself watches) that may make a pod this plugin rejected schedulable.
    fn register_events(&self, _requeue: Requeue) {}
}

/// What makes unschedulable pods try again.
pub type Requeue = Arc<dyn Fn() + Send + Sync>;

/// What PreBind knows: the cycle's state, the pod, its node, and whether the pod still
/// exists (a deleted pod's bind gives up waiting).
pub struct BindContext<'a> {
    pub state: &'a CycleState,
    pub pod: &'a Pod,
    pub node: &'a str,
    pub pod_exists: &'a (dyn Fn() -> bool + Send + Sync),
}

/// Scales scores so the highest becomes 100 (or, `reverse`, the lowest does).
pub fn default_normalize(scores: &mut [i64], reverse: bool) {
    let max = scores.iter().copied().max().unwrap_or(0);
    if max == 0 {
        if reverse {
            scores.iter_mut().for_each(|s| *s = MAX_NODE_SCORE);
        }
        return;
    }
    for s in scores.iter_mut() {
        let v = *s * MAX_NODE_SCORE / max;
        *s = if reverse { MAX_NODE_SCORE - v } else { v };
    }
}

/// Scales scores linearly so the lowest becomes 0 and the highest 100 (`reverse`: the
/// lowest 100); all equal become `if_equal`.
pub fn min_max_normalize(scores: &mut [i64], reverse: bool, if_equal: i64) {
    let (min, max) = scores
        .iter()
        .fold((i64::MAX, i64::MIN), |(lo, hi), s| (lo.min(*s), hi.max(*s)));
    for s in scores.iter_mut() {
        *s = if max == min {
            if_equal
        } else if reverse {
            (max - *s) * MAX_NODE_SCORE / (max - min)
        } else {
            (*s - min) * MAX_NODE_SCORE / (max - min)
        };
    }
}

/// A profile: the plugins that filter and the plugins that score, with weights (as a
/// KubeSchedulerConfiguration profile enables, disables and weights them). The filters'
/// Reserve and PreBind points run too: a plugin's points are enabled together, as
/// `multiPoint` enables them.
#[derive(Clone)]
pub struct Profile {
    pub scheduler_name: String,
    pub filters: Vec<Arc<dyn Plugin>>,
    pub scores: Vec<(Arc<dyn Plugin>, i64)>,
    /// Percentage of nodes to find feasible before scoring (0: Kubernetes' adaptive
    /// default, 50% minus 1% per 125 nodes, at least 5%).
    pub percentage_of_nodes_to_score: u32,
}

impl Profile {
    /// Disables a plugin at every extension point.
    pub fn disable(&mut self, name: &str) {
        self.filters.retain(|p| p.name() != name);
        self.scores.retain(|(p, _)| p.name() != name);
    }

    /// Sets a score plugin's weight.
    pub fn weight(&mut self, name: &str, weight: i64) {
        for (p, w) in &mut self.scores {
            if p.name() == name {
                *w = weight;
            }
        }
    }

    /// How many feasible nodes to look for among `all`.
    pub fn nodes_to_find(&self, all: usize) -> usize {
        const MIN_FEASIBLE: usize = 100;
        if all < MIN_FEASIBLE || self.percentage_of_nodes_to_score >= 100 {
            return all;
        }
        let pct = match self.percentage_of_nodes_to_score {
            0 => (50 - (all / 125) as i64).max(5) as usize,
            p => p as usize,
        };
        (all * pct / 100).max(MIN_FEASIBLE)
    }
}
