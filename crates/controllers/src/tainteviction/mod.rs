//! The taint eviction controller (Kubernetes' `pkg/controller/tainteviction`, 1.33, run as
//! its own `taint-eviction-controller`): pods on a node with NoExecute taints they do not
//! all tolerate are deleted at once; pods whose matching tolerations all have
//! `tolerationSeconds` are deleted that many seconds (the fewest) after the taint is seen;
//! the deletion is cancelled if the taints go, the tolerations change to forever, or the pod
//! goes (`TaintManagerEviction` events "Marking for deletion Pod ns/name" and "Cancelling
//! deletion of Pod ns/name"). `eviction.rs` marks and deletes a pod, `timed_workers.rs`
//! schedules the deletions, `tolerations.rs` decides how long a pod may stay.

mod eviction;
pub mod timed_workers;
pub mod tolerations;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use k8s_openapi::api::core::v1::{Node, Pod, Taint, Toleration};
use kube::Client;
use tokio::time::Instant;

use client_go::events::Recorder;
use client_go::informer::{Change, HasSynced, Informer, key_of, wait_for_cache_sync};
use client_go::queue::WorkQueue;

use crate::nodelifecycle::pods_by_node::PodsByNode;
use crate::nodelifecycle::taints::node_taints;
use timed_workers::TimedWorkerQueue;
use tolerations::{matching_tolerations, min_toleration_time, no_execute_taints};

/// The controller's name, its events' source.
pub const NAME: &str = "taint-eviction-controller";

pub struct TaintEvictionController {
    nodes: Informer<Node>,
    pods: Informer<Pod>,
    pods_by_node: Arc<PodsByNode>,
    recorder: Recorder,
    /// The NoExecute taints of each node that has any.
    tainted_nodes: Mutex<HashMap<String, Vec<Taint>>>,
    evictions: TimedWorkerQueue,
    node_queue: Arc<WorkQueue>,
    pod_queue: Arc<WorkQueue>,
}

fn tolerations_of(p: &Pod) -> &[Toleration] {
    p.spec
        .as_ref()
        .and_then(|s| s.tolerations.as_deref())
        .unwrap_or_default()
}

fn node_of(p: &Pod) -> Option<&str> {
    p.spec
        .as_ref()
        .and_then(|s| s.node_name.as_deref())
        .filter(|n| !n.is_empty())
}

enum Item {
    Node(String),
    Pod(String),
}

impl TaintEvictionController {
    pub fn new(client: Client, nodes: Informer<Node>, pods: Informer<Pod>) -> Arc<Self> {
        let recorder = Recorder::new(client.clone(), NAME);
        let (c2, r2) = (client.clone(), recorder.clone());
        let evictions = TimedWorkerQueue::new(Arc::new(move |key: String| {
            Box::pin(eviction::evict(c2.clone(), r2.clone(), key))
        }));
        let c = Arc::new(TaintEvictionController {
            pods_by_node: PodsByNode::new(&pods),
            nodes,
            pods,
            recorder,
            tainted_nodes: Mutex::new(HashMap::new()),
            evictions,
            node_queue: WorkQueue::new(),
            pod_queue: WorkQueue::new(),
        });
        let me = c.clone();
        c.nodes.on_change(move |ch: &Change<Node>| {
            let taints =
                |n: &Option<Arc<Node>>| n.as_deref().map(|n| no_execute_taints(node_taints(n)));
            if ch.old.is_some() && ch.new.is_some() && taints(&ch.old) == taints(&ch.new) {
                return;
            }
            if let Some(n) = ch.object() {
                me.node_queue
                    .add(n.metadata.name.clone().unwrap_or_default());
            }
        });
        let me = c.clone();
        c.pods.on_change(move |ch: &Change<Pod>| {
            if let (Some(old), Some(new)) = (&ch.old, &ch.new)
                && tolerations_of(old) == tolerations_of(new)
                && node_of(old) == node_of(new)
            {
                return;
            }
            if let Some(p) = ch.object() {
                me.pod_queue.add(key_of(p.as_ref()));
            }
        });
        c
    }

    fn tainted(&self) -> MutexGuard<'_, HashMap<String, Vec<Taint>>> {
        self.tainted_nodes.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Handles node and pod changes one at a time, nodes first: a node's taints are
    /// recorded before any of its pods is looked at, and never change under a pod's
    /// decision (upstream's NoExecuteTaintManager worker likewise takes node updates before
    /// pod updates). Not `reconciler::run`, which would give each queue workers of its own:
    /// one worker over both queues, node updates first, is the point. Nothing here fails, so
    /// there is no back-off to lose.
    pub async fn run(self: Arc<Self>) {
        let caches: [&dyn HasSynced; 2] = [&self.nodes, &self.pods];
        wait_for_cache_sync(&caches).await;
        loop {
            let item = tokio::select! {
                biased;
                Some(k) = self.node_queue.get() => Item::Node(k),
                Some(k) = self.pod_queue.get() => Item::Pod(k),
                else => return,
            };
            match item {
                Item::Node(name) => {
                    self.handle_node_update(&name);
                    self.node_queue.done(&name);
                }
                Item::Pod(key) => {
                    self.handle_pod_update(&key);
                    self.pod_queue.done(&key);
                }
            }
        }
    }

    fn cancel_with_event(&self, key: &str) {
        if self.evictions.cancel_work(key) {
            eviction::record(
                &self.recorder,
                key,
                format!("Cancelling deletion of Pod {key}"),
            );
        }
    }

    fn handle_pod_update(&self, key: &str) {
        let Some(pod) = self.pods.get_key(key) else {
            tracing::debug!(pod = key, "pod deleted; cancelling its eviction");
            self.cancel_with_event(key);
            return;
        };
        let Some(node) = node_of(&pod) else { return };
        // A node without NoExecute taints cancelled its pods' evictions already.
        let Some(taints) = self.tainted().get(node).cloned() else {
            return;
        };
        self.process_pod_on_node(key, tolerations_of(&pod), &taints, Instant::now());
    }

    fn handle_node_update(&self, name: &str) {
        let Some(node) = self.nodes.get(None, name) else {
            self.tainted().remove(name);
            return;
        };
        let taints = no_execute_taints(node_taints(&node));
        if taints.is_empty() {
            self.tainted().remove(name);
        } else {
            self.tainted().insert(name.to_string(), taints.clone());
        }
        // Taints are recorded first: a pod bound meanwhile is handled by its own update.
        let pods = self.pods_by_node.pods(name);
        if taints.is_empty() {
            for p in &pods {
                self.cancel_with_event(&key_of(p.as_ref()));
            }
            return;
        }
        let now = Instant::now();
        for p in &pods {
            self.process_pod_on_node(&key_of(p.as_ref()), tolerations_of(p), &taints, now);
        }
    }

    /// Schedules, keeps or cancels the pod's deletion (upstream's processPodOnNode).
    fn process_pod_on_node(
        &self,
        key: &str,
        tolerations: &[Toleration],
        taints: &[Taint],
        now: Instant,
    ) {
        if taints.is_empty() {
            self.cancel_with_event(key);
            return;
        }
        let Some(used) = matching_tolerations(taints, tolerations) else {
            tracing::info!(
                pod = key,
                "pod does not tolerate its node's NoExecute taints"
            );
            // Replaces any later deletion with one now.
            self.cancel_with_event(key);
            self.evictions.add_work(key, now, now);
            return;
        };
        let Some(wait) = min_toleration_time(&used) else {
            tracing::debug!(pod = key, "pod tolerates its node's taints forever");
            self.cancel_with_event(key);
            return;
        };
        let mut start = now;
        let trigger = now + wait;
        if let Some(scheduled) = self.evictions.created_at(key) {
            // A deletion scheduled earlier stands (as upstream: later toleration changes do
            // not move it).
            if scheduled + wait < trigger {
                return;
            }
            start = scheduled;
            self.cancel_with_event(key);
        }
        self.evictions.add_work(key, start, trigger);
    }
}
