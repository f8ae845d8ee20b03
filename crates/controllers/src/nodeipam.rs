//! The node IPAM controller (Kubernetes' `pkg/controller/nodeipam`, range allocator, as the
//! controller manager runs it with `--allocate-node-cidrs`): every Node gets a /24 of the
//! cluster CIDR as `spec.podCIDR`/`podCIDRs`, which its kubelet turns into the pod network.
//!
//! One worker allocates, so two nodes registering at once never get the same range; the write
//! carries the node's resourceVersion, and ranges handed out but not yet seen in the cache are
//! remembered.

use std::collections::HashSet;
use std::net::Ipv4Addr;
use std::sync::{Arc, Mutex};

use anyhow::{Context, bail};
use k8s_openapi::api::core::v1::Node;
use kube::api::{Patch, PatchParams};
use kube::{Api, Client};

use client_go::events::Recorder;
use client_go::informer::{Change, Informer};
use client_go::queue::WorkQueue;
use client_go::reconciler::{self, Action, Reconciler};

/// The cluster's pod network (k3s's default, as ARCHITECTURE.md gives it).
pub const CLUSTER_CIDR: &str = "10.42.0.0/16";

pub struct NodeIpamController {
    client: Client,
    nodes: Informer<Node>,
    queue: Arc<WorkQueue>,
    recorder: Recorder,
    cluster_cidr: String,
    /// Ranges written but perhaps not in the cache yet.
    assigned: Mutex<HashSet<String>>,
}

fn pod_cidr(n: &Node) -> Option<&str> {
    n.spec
        .as_ref()
        .and_then(|s| s.pod_cidr.as_deref())
        .filter(|c| !c.is_empty())
}

/// `a.b.c.d/len` as (address, prefix length).
fn parse_cidr(cidr: &str) -> anyhow::Result<(Ipv4Addr, u8)> {
    let (ip, len) = cidr
        .split_once('/')
        .with_context(|| format!("invalid CIDR {cidr:?}"))?;
    let ip: Ipv4Addr = ip
        .parse()
        .with_context(|| format!("invalid CIDR {cidr:?}"))?;
    let len: u8 = len
        .parse()
        .with_context(|| format!("invalid CIDR {cidr:?}"))?;
    if len > 32 {
        bail!("invalid CIDR {cidr:?}");
    }
    Ok((ip, len))
}

/// The first `/24` of `cluster_cidr` (a /24 or larger) that is not in `used`.
pub fn allocate(cluster_cidr: &str, used: &HashSet<String>) -> anyhow::Result<String> {
    let (base, len) = parse_cidr(cluster_cidr)?;
    if len > 24 {
        bail!("cluster CIDR {cluster_cidr} is smaller than a /24");
    }
    let count = 1u32 << (24 - u32::from(len));
    let base = u32::from(base) & !((1u32 << (32 - u32::from(len))) - 1);
    (0..count)
        .map(|i| format!("{}/24", Ipv4Addr::from(base + (i << 8))))
        .find(|c| !used.contains(c))
        .with_context(|| format!("no remaining CIDRs in the cluster CIDR {cluster_cidr}"))
}

/// The node IPAM controller on its own (for tests that want nodes with pod CIDRs and no other
/// controller acting).
pub async fn run(client: Client) {
    let nodes = Informer::<Node>::start(Api::all(client.clone()));
    NodeIpamController::new(client, nodes).run(1).await;
}

impl NodeIpamController {
    pub fn new(client: Client, nodes: Informer<Node>) -> Arc<Self> {
        let c = Arc::new(NodeIpamController {
            recorder: Recorder::new(client.clone(), "node-controller"),
            client,
            nodes,
            queue: WorkQueue::new(),
            cluster_cidr: CLUSTER_CIDR.into(),
            assigned: Mutex::new(HashSet::new()),
        });
        let me = c.clone();
        c.nodes.on_change(move |ch: &Change<Node>| {
            if let Some(n) = &ch.new
                && pod_cidr(n).is_none()
            {
                me.queue.add(n.metadata.name.clone().unwrap_or_default());
            }
        });
        c
    }

    /// Runs with one worker whatever `_workers` says: allocation must be serial.
    pub async fn run(self: Arc<Self>, _workers: usize) {
        reconciler::run(&self, &self.queue, &[&self.nodes], 1).await;
    }
}

impl Reconciler for NodeIpamController {
    const NAME: &'static str = "nodeipam";

    async fn reconcile(self: &Arc<Self>, name: &str) -> anyhow::Result<Action> {
        let api: Api<Node> = Api::all(self.client.clone());
        let node = match api.get(name).await {
            Ok(n) => n,
            Err(kube::Error::Api(e)) if e.code == 404 => return Ok(Action::Done),
            Err(e) => return Err(e).context("reading the node"),
        };
        if pod_cidr(&node).is_some() {
            return Ok(Action::Done);
        }
        let mut used: HashSet<String> = self
            .nodes
            .list()
            .iter()
            .filter_map(|n| pod_cidr(n).map(str::to_owned))
            .collect();
        used.extend(
            self.assigned
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .iter()
                .cloned(),
        );
        let cidr = match allocate(&self.cluster_cidr, &used) {
            Ok(c) => c,
            Err(e) => {
                self.recorder.record(
                    &node,
                    true,
                    "CIDRNotAvailable",
                    format!("Node {name} status is now: CIDRNotAvailable"),
                );
                return Err(e);
            }
        };
        // The resourceVersion makes a concurrent change to the node a conflict, retried.
        let patch = serde_json::json!({
            "metadata": {"resourceVersion": node.metadata.resource_version},
            "spec": {"podCIDR": cidr, "podCIDRs": [cidr]},
        });
        api.patch(name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .with_context(|| format!("assigning {cidr} to node {name}"))?;
        tracing::info!(node = name, pod_cidr = %cidr, "pod CIDR assigned");
        self.assigned
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(cidr);
        Ok(Action::Done)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_free_slash_24() {
        let mut used = HashSet::new();
        assert_eq!(
            allocate("10.42.0.0/16", &used).ok().as_deref(),
            Some("10.42.0.0/24")
        );
        used.insert("10.42.0.0/24".to_owned());
        used.insert("10.42.2.0/24".to_owned());
        assert_eq!(
            allocate("10.42.0.0/16", &used).ok().as_deref(),
            Some("10.42.1.0/24")
        );
        assert_eq!(
            allocate("10.42.5.7/16", &HashSet::new()).ok().as_deref(),
            Some("10.42.0.0/24")
        );
        assert!(allocate("10.42.0.0/25", &HashSet::new()).is_err());
        let all: HashSet<String> = (0..256).map(|i| format!("10.42.{i}.0/24")).collect();
        assert!(allocate("10.42.0.0/16", &all).is_err());
    }
}
