//! The Service CIDR's blackhole route on the node.
//!
//! A Service IP is virtual: only kube-proxy's rules give it meaning. Until they exist (or for a
//! VIP nothing programs) a packet to one would follow the default route off the machine, so
//! every node routes the whole Service CIDR to a blackhole. Rules that DNAT a VIP act before
//! routing, so the route never hides a programmed Service.

use std::path::Path;
use std::process::Command;

use anyhow::{Context, bail};

/// Installs (or keeps) `blackhole <cidr>` in the node's network namespace: `netns` when the
/// pod network lives in another namespace than the agent, else the agent's own.
pub fn ensure_blackhole(cidr: &str, netns: Option<&Path>) -> anyhow::Result<()> {
    crate::cni::parse_cidr(cidr).with_context(|| format!("service CIDR {cidr:?}"))?;
    let mut cmd = match netns {
        Some(ns) => {
            let mut c = Command::new("nsenter");
            c.arg(format!("--net={}", ns.display())).arg("--").arg("ip");
            c
        }
        None => Command::new("ip"),
    };
    // `replace` is idempotent: a restarted agent finds its route and keeps it.
    cmd.args(["route", "replace", "blackhole", cidr]);
    let out = cmd
        .output()
        .context("running `ip route` (iproute2) for the Service CIDR blackhole")?;
    if !out.status.success() {
        bail!(
            "`ip route replace blackhole {cidr}` failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}
