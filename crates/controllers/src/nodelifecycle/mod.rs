//! The node lifecycle controller (Kubernetes' `pkg/controller/nodelifecycle`, 1.33): watches
//! Nodes and their heartbeat Leases in `kube-node-lease`.
//!
//! - `health.rs`, `monitor.rs`: every `--node-monitor-period`, and as soon as a node's own
//!   grace period runs out (its last heartbeat, as the Lease informer delivered it, plus
//!   `--node-monitor-grace-period`), each node's health is looked at; one silent past the
//!   grace period gets its conditions set to Unknown (`NodeStatusUnknown`, "Kubelet stopped
//!   posting node status."), a `NodeNotReady` event, its pods' Ready condition set to False
//!   (`pod_status.rs`), and is queued for its NoExecute taint in that same pass (upstream
//!   waits for the next one).
//! - `taints.rs`, `node_taints.rs`, `no_schedule.rs`: NoSchedule taints follow the node's
//!   conditions (`node.kubernetes.io/not-ready`, `unreachable`, `memory-pressure`,
//!   `disk-pressure`, `pid-pressure`, `network-unavailable`) and `spec.unschedulable`
//!   (`node.kubernetes.io/unschedulable`) at once; nothing else in rkube writes these.
//! - `noexecute.rs`, `zones.rs`, `rate_limited_queue.rs`: the `not-ready` / `unreachable`
//!   NoExecute taints (which make taint eviction delete pods) come through a rate-limited
//!   queue per zone (`--node-eviction-rate`), slower or not at all in a partially disrupted
//!   zone, and come off every node when all zones are down; they go once the node is Ready.

mod health;
mod labels;
mod monitor;
mod no_schedule;
mod node_taints;
mod noexecute;
mod options;
pub(crate) mod pod_status;
pub(crate) mod pods_by_node;
mod rate_limited_queue;
pub mod taints;
pub mod zones;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Node, Pod};
use k8s_openapi::jiff::Timestamp;
use kube::Client;

use client_go::events::Recorder;
use client_go::informer::{Change, HasSynced, Informer, key_of, wait_for_cache_sync};
use client_go::queue::WorkQueue;
use client_go::reconciler::{self, Action, Reconciler};

use health::NodeHealth;
use noexecute::Zones;
pub use options::Options;
use pods_by_node::PodsByNode;

/// Where kubelets keep their heartbeat Leases, one named after each node.
pub const NODE_LEASE_NAMESPACE: &str = "kube-node-lease";

/// How often the NoExecute tainting queues are looked at (upstream's NodeEvictionPeriod).
const NO_EXECUTE_PERIOD: Duration = Duration::from_millis(100);
/// The least time between two health passes woken by deadlines: many nodes lost at once
/// cost a pass per this, not one per node.
const MIN_PASS_GAP: Duration = Duration::from_millis(200);

pub struct NodeLifecycleController {
    client: Client,
    nodes: Informer<Node>,
    leases: Informer<Lease>,
    pods: Informer<Pod>,
    pods_by_node: Arc<PodsByNode>,
    recorder: Recorder,
    options: Options,
    /// Nodes whose NoSchedule taints and labels to reconcile.
    node_queue: Arc<WorkQueue>,
    /// Pods just bound to a node, marked not Ready if the node is not.
    pod_queue: Arc<WorkQueue>,
    health: Mutex<HashMap<String, NodeHealth>>,
    /// Zone states and NoExecute tainting queues (upstream's evictorLock).
    zones: Mutex<Zones>,
    /// Nodes seen by the last health pass.
    known: Mutex<HashMap<String, Arc<Node>>>,
    /// Nodes whose pods could not all be marked not Ready.
    retry: Mutex<HashSet<String>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn bound_node(p: &Pod) -> Option<&str> {
    p.spec
        .as_ref()
        .and_then(|s| s.node_name.as_deref())
        .filter(|n| !n.is_empty())
}

impl NodeLifecycleController {
    pub fn new(
        client: Client,
        nodes: Informer<Node>,
        leases: Informer<Lease>,
        pods: Informer<Pod>,
        options: Options,
    ) -> Arc<Self> {
        let c = Arc::new(NodeLifecycleController {
            recorder: Recorder::new(client.clone(), "node-controller"),
            client,
            pods_by_node: PodsByNode::new(&pods),
            nodes,
            leases,
            pods,
            options,
            node_queue: WorkQueue::new(),
            pod_queue: WorkQueue::new(),
            health: Mutex::new(HashMap::new()),
            zones: Mutex::new(Zones::default()),
            known: Mutex::new(HashMap::new()),
            retry: Mutex::new(HashSet::new()),
        });
        let me = c.clone();
        c.nodes
            .on_change(move |ch: &Change<Node>| match (&ch.old, &ch.new) {
                (_, Some(n)) => me
                    .node_queue
                    .add(n.metadata.name.clone().unwrap_or_default()),
                (Some(n), None) => {
                    lock(&me.retry).remove(n.metadata.name.as_deref().unwrap_or_default());
                }
                (None, None) => {}
            });
        // Renewals count from when they arrive, so a silent node's deadline is exact.
        let me = c.clone();
        c.leases.on_change(move |ch: &Change<Lease>| {
            let Some(l) = &ch.new else { return };
            if l.metadata.namespace.as_deref() != Some(NODE_LEASE_NAMESPACE) {
                return;
            }
            let Some(name) = l.metadata.name.as_deref() else {
                return;
            };
            let renew = l.spec.as_ref().and_then(|s| s.renew_time.clone());
            // Only nodes a pass has looked at: the first look starts the count.
            if let Some(h) = lock(&me.health).get_mut(name) {
                health::observe_lease(h, renew, Timestamp::now());
            }
        });
        let me = c.clone();
        c.pods.on_change(move |ch: &Change<Pod>| {
            let Some(new) = &ch.new else { return };
            let Some(node) = bound_node(new) else { return };
            if ch.old.as_deref().and_then(bound_node) != Some(node) {
                me.pod_queue.add(key_of(new.as_ref()));
            }
        });
        c
    }

    /// Runs the health passes, the tainting passes and `workers` workers for the NoSchedule
    /// taints and for newly bound pods, all once the caches have synced.
    pub async fn run(self: Arc<Self>, workers: usize) {
        let caches: [&dyn HasSynced; 3] = [&self.nodes, &self.leases, &self.pods];
        let pods = Arc::new(BoundPods(self.clone()));
        let tainting = async {
            loop {
                self.no_execute_tainting_pass().await;
                tokio::time::sleep(NO_EXECUTE_PERIOD).await;
            }
        };
        let monitoring = async {
            loop {
                let started = Timestamp::now();
                self.monitor_node_health().await;
                tokio::time::sleep(self.next_pass_in(started)).await;
            }
        };
        // The passes judge nodes against the caches too, so they wait as the workers do.
        let passes = async {
            wait_for_cache_sync(&caches).await;
            tokio::join!(tainting, monitoring);
        };
        tokio::join!(
            reconciler::run(&self, &self.node_queue, &caches, workers),
            reconciler::run(&pods, &self.pod_queue, &caches, workers),
            passes,
        );
    }

    /// A pod bound to a node that is not Ready is not Ready either (the pass over nodes
    /// catches the rest; this is for pods bound since).
    async fn process_pod(&self, key: &str) -> anyhow::Result<()> {
        let Some(pod) = self.pods.get_key(key) else {
            return Ok(());
        };
        let Some(node) = bound_node(&pod) else {
            return Ok(());
        };
        let ready = lock(&self.health).get(node).map(|h| h.ready.clone());
        // Not looked at yet, or deleted: the next pass over nodes decides.
        let Some(Some(ready)) = ready else {
            return Ok(());
        };
        if self.nodes.get(None, node).is_none() || ready.status == "True" {
            return Ok(());
        }
        pod_status::mark_pods_not_ready(
            &self.client,
            &self.recorder,
            std::slice::from_ref(&pod),
            node,
        )
        .await
    }
}

/// The node queue: a node's NoSchedule taints and labels (upstream's nodeUpdateQueue).
impl Reconciler for NodeLifecycleController {
    const NAME: &'static str = "node-lifecycle";

    async fn reconcile(self: &Arc<Self>, key: &str) -> anyhow::Result<Action> {
        self.sync_node(key).await?;
        Ok(Action::Done)
    }
}

/// The pod queue (upstream's podUpdateQueue): a pod just bound to a node that is not Ready.
struct BoundPods(Arc<NodeLifecycleController>);

impl Reconciler for BoundPods {
    const NAME: &'static str = "node-lifecycle-pods";

    async fn reconcile(self: &Arc<Self>, key: &str) -> anyhow::Result<Action> {
        self.0.process_pod(key).await?;
        Ok(Action::Done)
    }
}
