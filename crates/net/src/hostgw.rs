//! host-gw routes: every other Node's `spec.podCIDR` via its InternalIP, kept in step with
//! the Nodes as they come, change and go. Routes carry a protocol number of their own
//! ([`ROUTE_PROTO`]), so the set this node installed can be listed and stale ones (a deleted
//! node, a restarted agent's leftovers) removed without touching any other route.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use client_go::informer::{Change, Informer};
use k8s_openapi::api::core::v1::Node;
use kube::{Api, Client};
use tokio::sync::Notify;

/// The `proto` of the routes this module owns (any number not in /etc/iproute2/rt_protos).
pub const ROUTE_PROTO: &str = "167";

/// Where routes go: the node's network namespace (`None`: the agent's own).
#[derive(Clone, Debug)]
pub struct HostGw {
    pub node_name: String,
    pub netns: Option<PathBuf>,
}

/// pod CIDR → gateway (the other node's InternalIP).
pub type Routes = BTreeMap<String, Ipv4Addr>;

fn internal_ip(n: &Node) -> Option<Ipv4Addr> {
    n.status
        .as_ref()?
        .addresses
        .as_ref()?
        .iter()
        .find(|a| a.type_ == "InternalIP")
        .and_then(|a| a.address.parse::<IpAddr>().ok())
        .and_then(|ip| match ip {
            IpAddr::V4(v4) => Some(v4),
            IpAddr::V6(_) => None,
        })
}

/// The routes this node needs: one per other node that has a pod CIDR and an IPv4 InternalIP.
pub fn desired(nodes: &[Arc<Node>], me: &str) -> Routes {
    nodes
        .iter()
        .filter(|n| n.metadata.name.as_deref() != Some(me))
        .filter_map(|n| {
            let cidr = n.spec.as_ref()?.pod_cidr.clone()?;
            Some((cidr, internal_ip(n)?))
        })
        .filter(|(_, ip)| !ip.is_loopback() && !ip.is_unspecified())
        .collect()
}

impl HostGw {
    fn ip(&self) -> Command {
        crate::netns::command(self.netns.as_deref(), "ip")
    }

    fn run_ip(&self, args: &[&str]) -> anyhow::Result<String> {
        let out = self
            .ip()
            .args(args)
            .output()
            .context("running `ip` (iproute2)")?;
        if !out.status.success() {
            bail!(
                "ip {}: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// The routes of ours now in the table.
    pub fn installed(&self) -> anyhow::Result<Routes> {
        let out = self.run_ip(&["-j", "route", "show", "proto", ROUTE_PROTO])?;
        let list: Vec<serde_json::Value> =
            serde_json::from_str(if out.trim().is_empty() { "[]" } else { &out })
                .context("parsing `ip -j route`")?;
        Ok(list
            .iter()
            .filter_map(|r| {
                let dst = r.get("dst")?.as_str()?.to_string();
                let via = r.get("gateway")?.as_str()?.parse().ok()?;
                Some((dst, via))
            })
            .collect())
    }

    /// Makes the table hold exactly `want` of our routes.
    pub fn apply(&self, want: &Routes) -> anyhow::Result<()> {
        let have = self.installed()?;
        for (cidr, via) in want {
            if have.get(cidr) != Some(via) {
                let via = via.to_string();
                self.run_ip(&["route", "replace", cidr, "via", &via, "proto", ROUTE_PROTO])?;
                tracing::info!(%cidr, %via, "route to a node's pods");
            }
        }
        for cidr in have.keys().filter(|c| !want.contains_key(*c)) {
            self.run_ip(&["route", "del", cidr, "proto", ROUTE_PROTO])?;
            tracing::info!(%cidr, "removed the route to a node gone");
        }
        Ok(())
    }

    /// Keeps the routes in step with the Nodes until aborted.
    pub async fn run(self, client: Client) -> anyhow::Result<()> {
        let nodes = Informer::<Node>::start(Api::all(client));
        let _stop = client_go::informer::StopOnDrop(vec![nodes.stopper()]);
        let changed = Arc::new(Notify::new());
        let signal = changed.clone();
        nodes.on_change(move |_: &Change<Node>| signal.notify_one());
        nodes.wait_synced().await;
        loop {
            let want = desired(&nodes.list(), &self.node_name);
            let me = self.clone();
            let result = tokio::task::spawn_blocking(move || me.apply(&want))
                .await
                .context("the route task")?;
            match result {
                Ok(()) => changed.notified().await,
                Err(e) => {
                    tracing::warn!(error = %format!("{e:#}"), "updating node routes; retrying");
                    tokio::time::sleep(Duration::from_secs(2)).await;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn node(name: &str, cidr: Option<&str>, ip: &str) -> Arc<Node> {
        Arc::new(
            serde_json::from_value(json!({
                "metadata": {"name": name},
                "spec": {"podCIDR": cidr},
                "status": {"addresses": [{"type": "InternalIP", "address": ip}, {"type": "Hostname", "address": name}]},
            }))
            .unwrap_or_default(),
        )
    }

    #[test]
    fn one_route_per_other_node_with_a_cidr() {
        let nodes = vec![
            node("a", Some("10.42.0.0/24"), "10.99.0.1"),
            node("b", Some("10.42.1.0/24"), "10.99.0.2"),
            node("c", None, "10.99.0.3"),
            node("d", Some("10.42.3.0/24"), "127.0.0.1"),
        ];
        let want = desired(&nodes, "a");
        assert_eq!(
            want,
            Routes::from([("10.42.1.0/24".to_string(), Ipv4Addr::new(10, 99, 0, 2))])
        );
    }
}
