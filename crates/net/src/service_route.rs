//! The Service CIDR's black-hole route on the node.
//!
//! A Service IP is virtual: only kube-proxy's rules give it meaning. Until they exist (or for a
//! VIP nothing programs) a packet to one would follow the default route off the machine, so
//! every node routes the whole Service CIDR into a sink: a bridge with no ports
//! (`rkube-svc`), which drops everything sent to it. Not a `blackhole` route: the kernel
//! refuses a locally generated packet on such a route before the nat OUTPUT hook runs, so the
//! node itself (and host-network pods) could never reach a Service. With the sink, the
//! route lookup succeeds, kube-proxy's DNAT rewrites a programmed VIP and the packet is
//! rerouted to the endpoint; an unprogrammed one ends in the sink.

use std::path::Path;
use std::process::Command;

use anyhow::{Context, bail};

/// The sink device.
pub const SINK: &str = "rkube-svc";

fn ip(netns: Option<&Path>) -> Command {
    crate::netns::command(netns, "ip")
}

fn run(mut cmd: Command, what: &str) -> anyhow::Result<()> {
    let out = cmd
        .output()
        .with_context(|| format!("running `ip` (iproute2) to {what}"))?;
    if !out.status.success() {
        bail!(
            "{what} failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

/// Routes `cidr` into the sink in the node's network namespace: `netns` when the pod network
/// lives in another namespace than the agent, else the agent's own. Idempotent, so a
/// restarted agent keeps what it finds (and replaces an older `blackhole` route).
pub fn ensure_sink(cidr: &str, netns: Option<&Path>) -> anyhow::Result<()> {
    crate::cni::parse_cidr(cidr).with_context(|| format!("service CIDR {cidr:?}"))?;
    let exists = ip(netns)
        .args(["link", "show", SINK])
        .output()
        .is_ok_and(|o| o.status.success());
    if !exists {
        let mut add = ip(netns);
        add.args(["link", "add", SINK, "type", "bridge"]);
        run(add, "create the Service CIDR sink device")?;
    }
    let mut up = ip(netns);
    up.args(["link", "set", SINK, "up"]);
    run(up, "bring the Service CIDR sink up")?;
    let mut route = ip(netns);
    route.args(["route", "replace", cidr, "dev", SINK]);
    run(
        route,
        &format!("route the Service CIDR {cidr} into the sink"),
    )
}
