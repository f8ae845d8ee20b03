//! Stale UDP conntrack entries. UDP has no connection to end, so a client that keeps sending
//! to a VIP keeps using the NAT binding of its first packet, even after that endpoint is
//! gone. After each sync we delete the flows that point at endpoints no longer in use, and
//! the un-NATed flows of a service that just got its first endpoint (upstream's conntrack
//! cleanup).

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;
use std::path::Path;
use std::process::Stdio;

use anyhow::{Context, Result, bail};

use crate::model::{Protocol, ServiceState};
use crate::nft::command_in;

/// One `conntrack -D` filter.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Filter {
    /// The original destination (None: any, for NodePorts).
    pub orig_dst: Option<Ipv4Addr>,
    pub orig_port_dst: u16,
    /// The endpoint the flow was DNATed to (None: any).
    pub reply_src: Option<Ipv4Addr>,
}

impl Filter {
    pub fn args(&self) -> Vec<String> {
        let mut a = vec!["-D".into(), "-p".into(), "udp".into()];
        if let Some(d) = self.orig_dst {
            a.extend(["--orig-dst".into(), d.to_string()]);
        }
        a.extend(["--orig-port-dst".into(), self.orig_port_dst.to_string()]);
        if let Some(r) = self.reply_src {
            a.extend(["--reply-src".into(), r.to_string()]);
        }
        a
    }
}

/// (ip or None for a NodePort, port) of every address a UDP service port answers on.
fn frontends(st: &ServiceState) -> Vec<(Option<Ipv4Addr>, u16)> {
    let p = &st.port;
    let mut f: Vec<(Option<Ipv4Addr>, u16)> = std::iter::once(p.cluster_ip)
        .chain(p.external_ips.iter().copied())
        .chain(p.load_balancer_ips.iter().copied())
        .map(|ip| (Some(ip), p.port))
        .collect();
    if p.node_port != 0 {
        f.push((None, p.node_port));
    }
    f
}

/// The flows to delete after going from `prev` to `next`.
pub fn stale_flows(prev: &[ServiceState], next: &[ServiceState]) -> BTreeSet<Filter> {
    let udp = |states: &[ServiceState]| -> BTreeMap<String, ServiceState> {
        states
            .iter()
            .filter(|s| s.port.protocol == Protocol::Udp)
            .map(|s| (s.port.id(), s.clone()))
            .collect()
    };
    let (old, new) = (udp(prev), udp(next));
    let used = |st: &ServiceState| -> BTreeSet<Ipv4Addr> {
        st.categorize().reachable.iter().map(|e| e.ip).collect()
    };
    let mut out = BTreeSet::new();
    for (id, o) in &old {
        let now = new.get(id).map(used).unwrap_or_default();
        for ip in used(o).difference(&now) {
            for (dst, port) in frontends(o) {
                out.insert(Filter {
                    orig_dst: dst,
                    orig_port_dst: port,
                    reply_src: Some(*ip),
                });
            }
        }
    }
    for (id, n) in &new {
        let before = old.get(id).map(used).unwrap_or_default();
        if before.is_empty() && !used(n).is_empty() {
            for (dst, port) in frontends(n) {
                // A NodePort without an address would match every flow to that port;
                // only clear its un-NATed flows (reply from our own address is unknown),
                // so leave NodePorts to their endpoint-specific filters.
                if dst.is_some() {
                    out.insert(Filter {
                        orig_dst: dst,
                        orig_port_dst: port,
                        reply_src: None,
                    });
                }
            }
        }
    }
    out
}

/// Runs `conntrack -D` in `netns`; "0 flow entries" is not an error.
pub async fn delete(netns: Option<&Path>, filter: &Filter) -> Result<()> {
    let out = command_in(netns, "conntrack")
        .args(filter.args())
        .stdin(Stdio::null())
        .output()
        .await
        .context("running conntrack (Debian package conntrack)")?;
    let err = String::from_utf8_lossy(&out.stderr);
    if out.status.success() || err.contains("0 flow entries") {
        return Ok(());
    }
    bail!("conntrack {:?} failed: {}", filter.args(), err.trim())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use crate::model::{Endpoint, ServicePort};

    fn st(proto: Protocol, eps: &[[u8; 4]]) -> ServiceState {
        ServiceState {
            port: ServicePort {
                namespace: "d".into(),
                name: "dns".into(),
                port_name: String::new(),
                protocol: proto,
                cluster_ip: Ipv4Addr::new(10, 43, 0, 10),
                port: 53,
                node_port: 30053,
                external_ips: vec![],
                load_balancer_ips: vec![],
                load_balancer_source_ranges: vec![],
                affinity_timeout: None,
                external_policy_local: false,
                internal_policy_local: false,
            },
            endpoints: eps
                .iter()
                .map(|o| Endpoint {
                    ip: Ipv4Addr::from(*o),
                    port: 5353,
                    ready: true,
                    serving: true,
                    terminating: false,
                    local: true,
                })
                .collect(),
        }
    }

    #[test]
    fn removed_udp_endpoints_are_flushed_on_every_frontend() {
        let prev = [st(Protocol::Udp, &[[10, 42, 0, 2], [10, 42, 0, 3]])];
        let next = [st(Protocol::Udp, &[[10, 42, 0, 3]])];
        let f: Vec<_> = stale_flows(&prev, &next).into_iter().collect();
        assert_eq!(f.len(), 2, "{f:?}");
        assert!(
            f.iter()
                .all(|f| f.reply_src == Some(Ipv4Addr::new(10, 42, 0, 2)))
        );
        assert_eq!(
            f[1].args(),
            [
                "-D",
                "-p",
                "udp",
                "--orig-dst",
                "10.43.0.10",
                "--orig-port-dst",
                "53",
                "--reply-src",
                "10.42.0.2"
            ]
        );
        assert_eq!(f[0].orig_dst, None);
        assert_eq!(f[0].orig_port_dst, 30053);
    }

    #[test]
    fn first_endpoint_clears_unnated_flows_and_tcp_is_ignored() {
        let f = stale_flows(
            &[st(Protocol::Udp, &[])],
            &[st(Protocol::Udp, &[[10, 42, 0, 2]])],
        );
        assert_eq!(f.len(), 1);
        assert_eq!(f.first().unwrap().reply_src, None);
        let t = stale_flows(&[st(Protocol::Tcp, &[[10, 42, 0, 2]])], &[]);
        assert!(t.is_empty());
    }
}
