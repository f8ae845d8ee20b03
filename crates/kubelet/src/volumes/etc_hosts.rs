//! The kubelet-managed `/etc/hosts` (upstream's `makeHostsMount` in kubelet_pods.go): localhost
//! entries, the pod's IPs with its hostname (and FQDN with a subdomain), and `hostAliases`; a
//! host-network pod gets a copy of the node's file (plus its aliases).

use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;

use k8s_openapi::api::core::v1::HostAlias;

const MANAGED_HEADER: &str = "# Kubernetes-managed hosts file.\n";
const MANAGED_HEADER_HOST_NETWORK: &str = "# Kubernetes-managed hosts file (host network).\n";

fn aliases(host_aliases: &[HostAlias]) -> String {
    if host_aliases.is_empty() {
        return String::new();
    }
    let mut out = String::from("\n# Entries added by HostAliases.\n");
    for a in host_aliases {
        out.push_str(&format!(
            "{}\t{}\n",
            a.ip,
            a.hostnames.clone().unwrap_or_default().join("\t")
        ));
    }
    out
}

/// The managed file of a pod on the pod network.
pub fn managed_content(
    ips: &[String],
    hostname: &str,
    domain: &str,
    host_aliases: &[HostAlias],
) -> String {
    let mut out = String::from(MANAGED_HEADER);
    out.push_str("127.0.0.1\tlocalhost\n");
    out.push_str("::1\tlocalhost ip6-localhost ip6-loopback\n");
    out.push_str("fe00::0\tip6-localnet\n");
    out.push_str("fe00::0\tip6-mcastprefix\n");
    out.push_str("fe00::1\tip6-allnodes\n");
    out.push_str("fe00::2\tip6-allrouters\n");
    for ip in ips {
        if domain.is_empty() {
            out.push_str(&format!("{ip}\t{hostname}\n"));
        } else {
            out.push_str(&format!("{ip}\t{hostname}.{domain}\t{hostname}\n"));
        }
    }
    out.push_str(&aliases(host_aliases));
    out
}

/// Writes the pod's hosts file at `path` (mode 0644).
pub fn ensure(
    path: &Path,
    ips: &[String],
    hostname: &str,
    domain: &str,
    host_aliases: &[HostAlias],
    host_network: bool,
) -> std::io::Result<()> {
    let content = if host_network {
        let node = std::fs::read_to_string("/etc/hosts")?;
        format!(
            "{MANAGED_HEADER_HOST_NETWORK}{node}{}",
            aliases(host_aliases)
        )
    } else {
        managed_content(ips, hostname, domain, host_aliases)
    };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(path, content)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o644))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn managed_hosts_file() {
        let a = [HostAlias {
            ip: "10.1.2.3".into(),
            hostnames: Some(vec!["foo.local".into(), "bar".into()]),
        }];
        let c = managed_content(&["10.42.0.5".into()], "web", "sub.ns.svc.cluster.local", &a);
        assert!(c.starts_with("# Kubernetes-managed hosts file.\n127.0.0.1\tlocalhost\n"));
        assert!(c.contains("10.42.0.5\tweb.sub.ns.svc.cluster.local\tweb\n"));
        assert!(c.ends_with("\n# Entries added by HostAliases.\n10.1.2.3\tfoo.local\tbar\n"));
        let plain = managed_content(&["10.42.0.5".into()], "web", "", &[]);
        assert!(plain.ends_with("fe00::2\tip6-allrouters\n10.42.0.5\tweb\n"));
    }
}
