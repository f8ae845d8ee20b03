//! The node's share of cluster DNS: every agent serves cluster DNS on its pod bridge's
//! gateway address (the first address of the node's pod CIDR, reachable from each of its
//! pods) and publishes that address as an endpoint of the `kube-system/kube-dns` Service,
//! while that Service is the packaged `coredns` manifest's (`deploy::packaged`).
//! The Service's `internalTrafficPolicy: Local` makes kube-proxy send a pod's queries to
//! 10.43.0.10 to its own node's server, so DNS works on every node without a DNS pod.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use k8s_openapi::api::core::v1::{Node, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{Patch, PatchParams};
use kube::runtime::watcher;
use kube::{Api, Client};

use client_go::informer::{Informer, StopOnDrop};
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
        // One watch of the one Service, not a GET per node every few seconds.
        let services = Informer::<Service>::start_with(
            Api::namespaced(client.clone(), "kube-system"),
            watcher::Config::default().fields("metadata.name=kube-dns"),
        );
        let _stop = StopOnDrop(vec![services.stopper()]);
        services.wait_synced().await;
        loop {
            // Only while kube-dns is the packaged Service (`--disable coredns` removes it,
            // and a user's own DNS must not get this node's server as an endpoint).
            while !packaged_service(&services) {
                tokio::time::sleep(Duration::from_secs(2)).await;
            }
            let server = tokio::spawn(dns::serve(
                client.clone(),
                self.dns.clone(),
                SocketAddr::new(IpAddr::V4(ip), 53),
                self.netns.clone(),
            ));
            publish(&client, &node, ip).await?;
            tracing::info!(address = %ip, "cluster DNS serving for this node");
            loop {
                tokio::time::sleep(Duration::from_secs(5)).await;
                if server.is_finished() {
                    return server.await.context("the DNS server task")?;
                }
                if !packaged_service(&services) {
                    break;
                }
            }
            server.abort();
            unpublish(&client, &node).await;
            tracing::info!("cluster DNS stopped: kube-dns is not the packaged Service");
        }
    }
}

/// Whether `kube-system/kube-dns` is the packaged `coredns` manifest's.
fn packaged_service(services: &Informer<Service>) -> bool {
    services
        .get(Some("kube-system"), "kube-dns")
        .is_some_and(|s| {
            s.metadata
                .labels
                .as_ref()
                .and_then(|l| l.get(crate::deploy::apply::ADDON_LABEL))
                .is_some_and(|a| a == "coredns")
        })
}

fn slice_name(node: &Node) -> String {
    format!(
        "kube-dns-{}",
        node.metadata.name.as_deref().unwrap_or_default()
    )
}

/// Removes this node's endpoint (the DNS server has stopped).
async fn unpublish(client: &Client, node: &Node) {
    let api: Api<EndpointSlice> = Api::namespaced(client.clone(), "kube-system");
    if let Err(e) = api.delete(&slice_name(node), &Default::default()).await {
        tracing::debug!(error = %e, "removing the node's kube-dns endpoint");
    }
}

/// Writes this node's endpoint of `kube-system/kube-dns` (owned by the Node, so it goes
/// when the node is deleted).
async fn publish(client: &Client, node: &Node, ip: Ipv4Addr) -> anyhow::Result<()> {
    let node_name = node.metadata.name.clone().unwrap_or_default();
    let name = slice_name(node);
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
