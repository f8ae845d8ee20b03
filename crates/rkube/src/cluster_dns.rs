//! The node's share of cluster DNS: every agent serves cluster DNS on its pod bridge's
//! gateway address (the first address of the node's pod CIDR, reachable from each of its
//! pods) and publishes that address as an endpoint of the `kube-system/kube-dns` Service.
//! The Service's `internalTrafficPolicy: Local` makes kube-proxy send a pod's queries to
//! 10.43.0.10 to its own node's server, so DNS works on every node without a DNS pod.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use k8s_openapi::api::core::v1::Node;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{Patch, PatchParams};
use kube::{Api, Client};
use serde_json::json;

/// How the agent's endpoint slices are told apart from the controllers'.
const MANAGED_BY: &str = "rkube-agent";
const FIELD_MANAGER: &str = "rkube-agent";

pub struct ClusterDns {
    pub node_name: String,
    /// The pod network's namespace (None: the agent's own).
    pub netns: Option<PathBuf>,
    pub dns: dns::DnsConfig,
}

/// The pod bridge's gateway: the first address of the pod CIDR (as the CNI bridge assigns).
pub fn gateway(pod_cidr: &str) -> anyhow::Result<Ipv4Addr> {
    let (net, _) =
        net::cni::parse_cidr(pod_cidr).with_context(|| format!("pod CIDR {pod_cidr:?}"))?;
    Ok(Ipv4Addr::from(u32::from(net) + 1))
}

impl ClusterDns {
    /// Waits for the node's pod CIDR, then serves and publishes the endpoint, until aborted.
    pub async fn run(self, client: Client) -> anyhow::Result<()> {
        let nodes: Api<Node> = Api::all(client.clone());
        let node = loop {
            match nodes.get_opt(&self.node_name).await {
                Ok(Some(n)) if n.spec.as_ref().and_then(|s| s.pod_cidr.as_ref()).is_some() => {
                    break n;
                }
                Ok(_) => {}
                Err(e) => tracing::debug!(error = %e, "reading the node for its pod CIDR"),
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        };
        let cidr = node
            .spec
            .as_ref()
            .and_then(|s| s.pod_cidr.clone())
            .unwrap_or_default();
        let ip = gateway(&cidr)?;
        let server = tokio::spawn(dns::serve(
            client.clone(),
            self.dns,
            SocketAddr::new(IpAddr::V4(ip), 53),
            self.netns,
        ));
        publish(&client, &node, ip).await?;
        tracing::info!(address = %ip, "cluster DNS serving for this node");
        server.await.context("the DNS server task")?
    }
}

/// Writes this node's endpoint of `kube-system/kube-dns` (owned by the Node, so it goes
/// when the node is deleted).
async fn publish(client: &Client, node: &Node, ip: Ipv4Addr) -> anyhow::Result<()> {
    let node_name = node.metadata.name.clone().unwrap_or_default();
    let name = format!("kube-dns-{node_name}");
    let slice = json!({
        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {
            "name": name, "namespace": "kube-system",
            "labels": {"kubernetes.io/service-name": "kube-dns",
                "endpointslice.kubernetes.io/managed-by": MANAGED_BY},
            "ownerReferences": [{"apiVersion": "v1", "kind": "Node", "name": node_name,
                "uid": node.metadata.uid.clone().unwrap_or_default()}],
        },
        "addressType": "IPv4",
        "endpoints": [{"addresses": [ip.to_string()], "nodeName": node_name,
            "conditions": {"ready": true, "serving": true, "terminating": false}}],
        "ports": [{"name": "dns", "port": 53, "protocol": "UDP"},
            {"name": "dns-tcp", "port": 53, "protocol": "TCP"}],
    });
    let api: Api<EndpointSlice> = Api::namespaced(client.clone(), "kube-system");
    api.patch(
        &name,
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(&slice),
    )
    .await
    .context("publishing the node's kube-dns endpoint")?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_gateway_is_the_first_address() {
        assert_eq!(
            gateway("10.42.3.0/24").unwrap(),
            Ipv4Addr::new(10, 42, 3, 1)
        );
        assert!(gateway("10.42.3.1/24").is_err());
    }
}
