//! kube-proxy on nftables: Service virtual IPs, NodePorts, externalIPs and LoadBalancer
//! ingress IPs, load balanced over EndpointSlice endpoints, in one table of our own that is
//! replaced atomically (upstream's `pkg/proxy/nftables` semantics).
//!
//! - [`model`]: Services + EndpointSlices → service ports with endpoints (pure)
//! - [`ruleset`]: service ports → desired chains, sets and maps (pure)
//! - [`script`]: desired vs previous → one `nft -f` transaction (pure)
//! - [`nft`]: running nft in the target network namespace
//! - [`conntrack`]: stale UDP flows
//! - [`sysctl`]: forwarding and bridge-netfilter in the target namespace
//! - [`proxier`]: one sync; [`runner`]: the informer loop

pub mod config;
pub mod conntrack;
pub mod model;
pub mod nft;
pub mod proxier;
pub mod ruleset;
pub mod runner;
pub mod script;
pub mod sysctl;

pub use config::ProxyConfig;
pub use runner::{SyncStatus, cleanup, run, run_with_status};
