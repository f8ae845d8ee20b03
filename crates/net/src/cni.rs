//! The pod network's CNI configuration: bridge + host-local + portmap + loopback, from Debian's
//! containernetworking-plugins (`/usr/lib/cni`).
//!
//! Minimal on purpose: it gives pods IPs from the node's pod CIDR so the runtime layer can be
//! tested end to end. Node-to-node routes and the rest of the network belong to `crates/net`,
//! which should take this over.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use serde_json::json;

#[derive(Debug, thiserror::Error)]
pub enum CniError {
    #[error("invalid pod CIDR {0:?}: expected an IPv4 network like 10.42.0.0/24")]
    InvalidCidr(String),
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// A bridge network for this node's pods.
#[derive(Clone, Debug)]
pub struct BridgeNetwork {
    /// The CNI network name. libcni caches results under `/var/lib/cni/results/<name>-…`
    /// machine-wide, so simulated nodes on one machine need distinct names.
    pub name: String,
    /// Linux bridge in the node's network namespace.
    pub bridge: String,
    /// This node's pod CIDR (`spec.podCIDR`), e.g. `10.42.0.0/24`.
    pub subnet: String,
    /// host-local's allocation directory (default `/var/lib/cni/networks` would be shared).
    pub ipam_dir: PathBuf,
    /// SNAT pod traffic leaving the node. Off by default: pods then have no way off the machine
    /// except the routes someone adds on purpose.
    pub ip_masq: bool,
}

impl BridgeNetwork {
    pub fn new(
        name: impl Into<String>,
        subnet: impl Into<String>,
        ipam_dir: impl Into<PathBuf>,
    ) -> Self {
        BridgeNetwork {
            name: name.into(),
            bridge: "cni0".into(),
            subnet: subnet.into(),
            ipam_dir: ipam_dir.into(),
            ip_masq: false,
        }
    }

    /// The conflist JSON.
    pub fn conflist(&self) -> Result<String, CniError> {
        parse_cidr(&self.subnet)?;
        let conf = json!({
            "cniVersion": "0.4.0",
            "name": self.name,
            "plugins": [
                {
                    "type": "bridge",
                    "bridge": self.bridge,
                    "isGateway": true,
                    "ipMasq": self.ip_masq,
                    "hairpinMode": true,
                    "ipam": {
                        "type": "host-local",
                        "dataDir": self.ipam_dir,
                        "ranges": [[{"subnet": self.subnet}]],
                        "routes": [{"dst": "0.0.0.0/0"}],
                    },
                },
                {"type": "portmap", "capabilities": {"portMappings": true}},
                {"type": "loopback"},
            ],
        });
        serde_json::to_string_pretty(&conf).map_err(|e| CniError::Io {
            path: PathBuf::new(),
            source: std::io::Error::other(e),
        })
    }

    /// Writes the conflist into `conf_dir` as `10-<name>.conflist`. Atomically (dot-temp file and
    /// rename in the same directory): containerd watches the directory, and a file written in
    /// place is first seen empty.
    pub fn write(&self, conf_dir: &Path) -> Result<PathBuf, CniError> {
        let content = self.conflist()?;
        let io = |path: &Path| {
            let path = path.to_owned();
            move |source| CniError::Io { path, source }
        };
        std::fs::create_dir_all(conf_dir).map_err(io(conf_dir))?;
        std::fs::create_dir_all(&self.ipam_dir).map_err(io(&self.ipam_dir))?;
        let path = conf_dir.join(format!("10-{}.conflist", self.name));
        let tmp = conf_dir.join(format!(".10-{}.conflist.tmp", self.name));
        std::fs::write(&tmp, content).map_err(io(&tmp))?;
        std::fs::rename(&tmp, &path).map_err(io(&path))?;
        Ok(path)
    }
}

/// Parses `a.b.c.d/len` (IPv4 only, host bits zero).
pub fn parse_cidr(cidr: &str) -> Result<(Ipv4Addr, u8), CniError> {
    let bad = || CniError::InvalidCidr(cidr.to_owned());
    let (addr, len) = cidr.split_once('/').ok_or_else(bad)?;
    let addr: Ipv4Addr = addr.parse().map_err(|_| bad())?;
    let len: u8 = len.parse().map_err(|_| bad())?;
    if len > 30 {
        return Err(bad());
    }
    let mask = u32::MAX.checked_shl(32 - u32::from(len)).unwrap_or(0);
    if u32::from(addr) & !mask != 0 {
        return Err(bad());
    }
    Ok((addr, len))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidrs() {
        assert!(parse_cidr("10.42.3.0/24").is_ok());
        assert!(parse_cidr("10.42.0.0/16").is_ok());
        assert!(parse_cidr("10.42.3.1/24").is_err());
        assert!(parse_cidr("10.42.3.0").is_err());
        assert!(parse_cidr("10.42.3.0/31").is_err());
        assert!(parse_cidr("fd00::/64").is_err());
    }

    #[test]
    fn conflist_has_the_subnet_and_no_masquerade() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let net = BridgeNetwork::new("rkube-test", "10.42.7.0/24", dir.path().join("ipam"));
        let path = net.write(&dir.path().join("net.d"))?;
        let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(path)?)?;
        assert_eq!(v["name"], "rkube-test");
        assert_eq!(v["plugins"][0]["ipMasq"], false);
        assert_eq!(
            v["plugins"][0]["ipam"]["ranges"][0][0]["subnet"],
            "10.42.7.0/24"
        );
        Ok(())
    }
}
