//! The proxy's settings.

use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result, bail, ensure};

#[derive(Clone, Debug)]
pub struct ProxyConfig {
    /// This node: endpoints with this `nodeName` are local (traffic policy Local).
    pub node_name: String,
    /// Network namespace the rules go into (the node's pod network); None = the process's own.
    pub netns: Option<PathBuf>,
    /// Pod network ("10.42.0.0/16"): sources outside it reaching a ClusterIP are masqueraded.
    pub cluster_cidr: String,
    /// Service network ("10.43.0.0/16"): traffic to an unallocated ClusterIP is dropped.
    pub service_cidr: String,
    /// Our nftables table (family `ip`); nothing else is ever touched.
    pub table: String,
    /// Least time between two syncs: changes arriving meanwhile are applied together.
    pub min_sync_interval: Duration,
    /// Every this often, every object of the table is rewritten from the informers' state
    /// (repairing anything changed behind our back), not only what changed.
    pub full_sync_interval: Duration,
    /// Set `net.ipv4.ip_forward` and `net.bridge.bridge-nf-call-iptables` in the netns.
    pub set_sysctls: bool,
}

impl ProxyConfig {
    /// rkube's defaults (the cluster and service networks of ARCHITECTURE.md).
    pub fn new(node_name: &str) -> Self {
        ProxyConfig {
            node_name: node_name.to_string(),
            netns: None,
            cluster_cidr: "10.42.0.0/16".into(),
            service_cidr: "10.43.0.0/16".into(),
            table: "rkube-proxy".into(),
            min_sync_interval: Duration::from_millis(30),
            // As upstream's iptables proxier: a full rebuild costs seconds at 10k endpoints.
            full_sync_interval: Duration::from_secs(3600),
            set_sysctls: true,
        }
    }

    /// Everything that ends up verbatim in an nft script is checked first.
    pub fn validate(&self) -> Result<()> {
        cidr(&self.cluster_cidr).context("cluster_cidr")?;
        cidr(&self.service_cidr).context("service_cidr")?;
        ensure!(
            !self.table.is_empty()
                && self.table.len() <= 64
                && self.table.starts_with(|c: char| c.is_ascii_alphabetic())
                && self
                    .table
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'),
            "table name {:?}: letters, digits, '-' and '_' only",
            self.table
        );
        Ok(())
    }
}

fn cidr(s: &str) -> Result<()> {
    let Some((ip, len)) = s.split_once('/') else {
        bail!("{s:?} is not an IPv4 CIDR");
    };
    ip.parse::<Ipv4Addr>()
        .with_context(|| format!("{s:?} is not an IPv4 CIDR"))?;
    let len: u8 = len
        .parse()
        .with_context(|| format!("{s:?}: bad prefix length"))?;
    ensure!(len <= 32, "{s:?}: bad prefix length");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_validate_and_bad_values_do_not() {
        assert!(ProxyConfig::new("n").validate().is_ok());
        let mut c = ProxyConfig::new("n");
        c.cluster_cidr = "10.42.0.0/16; flush ruleset".into();
        assert!(c.validate().is_err());
        let mut c = ProxyConfig::new("n");
        c.table = "x y".into();
        assert!(c.validate().is_err());
    }
}
