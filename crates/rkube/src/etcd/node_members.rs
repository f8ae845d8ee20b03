//! A server's etcd member goes with its Node (k3s' etcd member controller): a server that
//! runs a node marks its Node with its member (name and peer URL annotations) and a
//! finalizer; `kubectl delete node` of that server removes the member from the etcd cluster,
//! then the finalizer, and the Node goes. Every server with a managed member runs the
//! removal: it is idempotent (a member already gone is done), so whichever acts first wins.
//! The cluster's last voting member is never removed (the Node goes, the member stays).
//!
//! The removed server's own member stops (etcd ends a removed member); that server is done
//! and must be stopped, as with k3s.

use std::sync::Arc;
use std::time::Duration;

use client_go::informer::{Change, Informer, key_of};
use client_go::queue::WorkQueue;
use client_go::reconciler::{self, Action, Reconciler};
use k8s_openapi::api::core::v1::Node;
use kube::Api;
use kube::api::{Patch, PatchParams};
use serde_json::json;

use super::member::{self, Removal};

/// The member's name in etcd.
pub const MEMBER_NAME: &str = "etcd.rkube.io/member-name";
/// The URL the member serves its peers on: what identifies it in the member list.
pub const PEER_URL: &str = "etcd.rkube.io/peer-url";
/// Keeps a deleted server's Node until its member is removed.
pub const FINALIZER: &str = "etcd.rkube.io/member-removal";

/// How often the server looks at its own Node: until the agent has registered it, and later
/// in case it was made anew.
const MARK_EVERY: Duration = Duration::from_secs(2);
const RECHECK_EVERY: Duration = Duration::from_secs(30);

/// Marks this server's Node `node` with its member, for as long as the server runs.
pub async fn mark_own_node(client: kube::Client, node: String, name: String, peer_url: String) {
    let nodes: Api<Node> = Api::all(client);
    loop {
        let pause = match mark(&nodes, &node, &name, &peer_url).await {
            Ok(true) => RECHECK_EVERY,
            Ok(false) => MARK_EVERY,
            Err(e) => {
                tracing::debug!(node, error = %format!("{e:#}"), "cannot mark the node with its etcd member yet");
                MARK_EVERY
            }
        };
        tokio::time::sleep(pause).await;
    }
}

/// Adds the annotations and the finalizer if they are missing; `false` while the Node does
/// not exist yet.
async fn mark(nodes: &Api<Node>, node: &str, name: &str, peer_url: &str) -> anyhow::Result<bool> {
    let Some(n) = nodes.get_opt(node).await? else {
        return Ok(false);
    };
    // A Node being deleted is not marked again: its removal is under way.
    if n.metadata.deletion_timestamp.is_some() {
        return Ok(true);
    }
    let annotations = n.metadata.annotations.unwrap_or_default();
    let mut finalizers = n.metadata.finalizers.unwrap_or_default();
    let annotated = annotations.get(MEMBER_NAME).is_some_and(|v| v == name)
        && annotations.get(PEER_URL).is_some_and(|v| v == peer_url);
    if annotated && finalizers.iter().any(|f| f == FINALIZER) {
        return Ok(true);
    }
    if !finalizers.iter().any(|f| f == FINALIZER) {
        finalizers.push(FINALIZER.into());
    }
    // The resourceVersion makes it a compare-and-swap: finalizers are a list a merge
    // patch replaces whole, and someone else's change in between must not be lost.
    let patch = json!({"metadata": {
        "resourceVersion": n.metadata.resource_version,
        "annotations": {MEMBER_NAME: name, PEER_URL: peer_url},
        "finalizers": finalizers,
    }});
    nodes
        .patch(node, &PatchParams::default(), &Patch::Merge(&patch))
        .await?;
    tracing::info!(node, member = name, "node marked with its etcd member");
    Ok(true)
}

/// The removal: deleted Nodes holding [`FINALIZER`].
pub struct MemberRemoval {
    nodes: Informer<Node>,
    api: Api<Node>,
    etcd: etcd_client::Client,
    queue: Arc<WorkQueue>,
}

impl MemberRemoval {
    pub fn new(client: kube::Client, etcd: etcd_client::Client) -> Arc<Self> {
        let api: Api<Node> = Api::all(client);
        let c = Arc::new(MemberRemoval {
            nodes: Informer::start(api.clone()),
            api,
            etcd,
            queue: WorkQueue::new(),
        });
        let queue = c.queue.clone();
        c.nodes.on_change(move |ch: &Change<Node>| {
            if let Some(n) = &ch.new
                && n.metadata.deletion_timestamp.is_some()
            {
                queue.add(key_of(n.as_ref()));
            }
        });
        c
    }

    pub async fn run(self: Arc<Self>) {
        reconciler::run(&self, &self.queue, &[&self.nodes], 1).await;
    }
}

impl Reconciler for MemberRemoval {
    const NAME: &'static str = "etcd-member-removal";

    async fn reconcile(self: &Arc<Self>, name: &str) -> anyhow::Result<Action> {
        let Some(node) = self.nodes.get(None, name) else {
            return Ok(Action::Done);
        };
        let finalizers = node.metadata.finalizers.clone().unwrap_or_default();
        if node.metadata.deletion_timestamp.is_none() || !finalizers.iter().any(|f| f == FINALIZER)
        {
            return Ok(Action::Done);
        }
        let annotations = node.metadata.annotations.clone().unwrap_or_default();
        let peer_url = annotations.get(PEER_URL).map_or("", String::as_str);
        let member_name = annotations.get(MEMBER_NAME).map_or("", String::as_str);
        if !(peer_url.is_empty() && member_name.is_empty()) {
            let mut etcd = self.etcd.clone();
            match member::remove(&mut etcd, peer_url, member_name).await? {
                Removal::Removed(_) | Removal::NotMember => {}
                Removal::LastVoter => tracing::warn!(
                    node = name,
                    member = member_name,
                    "not removing the etcd cluster's last voting member"
                ),
            }
        }
        let rest: Vec<&String> = finalizers.iter().filter(|f| *f != FINALIZER).collect();
        let patch = json!({"metadata": {
            "resourceVersion": node.metadata.resource_version,
            "finalizers": rest,
        }});
        self.api
            .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
            .await?;
        Ok(Action::Done)
    }
}
