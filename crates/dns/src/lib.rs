//! Cluster DNS (CoreDNS's `kubernetes` plugin): Service, headless, SRV, ExternalName, pod and
//! PTR records under the cluster domain, per the Kubernetes DNS specification, served over
//! UDP and TCP with hickory-dns.
//!
//! - [`index`]: the records distilled from Services and EndpointSlices;
//! - [`resolve`]: one question against them (pure);
//! - [`watch`]: the informers that keep them current;
//! - [`server`]: sockets (network namespaces, IP_FREEBIND) and the request handler;
//! - [`forward`]: names outside the zone, to configured upstreams only.

pub mod forward;
pub mod index;
pub mod resolve;
pub mod server;
pub mod watch;

use std::net::SocketAddr;
use std::path::PathBuf;

pub use server::Server;
pub use watch::Records;

/// How the cluster DNS answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnsConfig {
    /// The cluster zone, `cluster.local`.
    pub cluster_domain: String,
    /// Resolvers for names outside the zone. Empty: those are REFUSED (nothing leaves the
    /// node unless configured to).
    pub upstream: Vec<SocketAddr>,
    /// TTL of every record (CoreDNS's kubernetes plugin defaults to 5 s).
    pub ttl: u32,
}

impl DnsConfig {
    pub fn new() -> Self {
        DnsConfig {
            cluster_domain: "cluster.local".into(),
            upstream: Vec::new(),
            ttl: 5,
        }
    }
}

impl Default for DnsConfig {
    fn default() -> Self {
        DnsConfig::new()
    }
}

/// Binds UDP and TCP on `listen` inside the network namespace `netns` (None = the process's
/// own), with IP_FREEBIND so the address may not exist yet (the node's CNI bridge gateway,
/// e.g. 10.42.0.1, appears only with the first pod), and serves cluster records from the API
/// server until dropped/aborted.
pub async fn serve(
    client: kube::Client,
    cfg: DnsConfig,
    listen: SocketAddr,
    netns: Option<PathBuf>,
) -> anyhow::Result<()> {
    Server::bind(listen, netns.as_deref())?
        .serve(client, cfg)
        .await
}
