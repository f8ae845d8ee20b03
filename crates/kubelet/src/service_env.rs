//! The Service environment variables every container gets (upstream's `envvars` package
//! and the kubelet's `getServiceEnvVarMap`): for the `kubernetes` Service of the `default`
//! namespace always (how in-cluster clients find the API server: client-go's
//! `InClusterConfig`, kube-rs' `Config::incluster`), and, when the pod's
//! `enableServiceLinks` is on (the default), for every Service of the pod's namespace —
//! `<NAME>_SERVICE_HOST`, `<NAME>_SERVICE_PORT[_<PORT NAME>]` and Docker's link variables
//! (`<NAME>_PORT`, `<NAME>_PORT_<port>_<PROTO>[_PROTO|_PORT|_ADDR]`). Services without a
//! cluster IP (headless, ExternalName) give none.

use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::api::core::v1::Service;

/// The Services whose variables every pod gets, from the `default` namespace.
const MASTER_SERVICES: [&str; 1] = ["kubernetes"];

/// The variables of the pod in namespace `ns`, by name, from every Service the kubelet knows.
pub fn service_env(
    services: &[Arc<Service>],
    ns: &str,
    enable_service_links: bool,
) -> BTreeMap<String, String> {
    let mut chosen: BTreeMap<&str, &Service> = BTreeMap::new();
    for service in services {
        if cluster_ip(service).is_none() {
            continue;
        }
        let name = service.metadata.name.as_deref().unwrap_or_default();
        let namespace = service.metadata.namespace.as_deref().unwrap_or_default();
        if namespace == "default" && MASTER_SERVICES.contains(&name) {
            chosen.entry(name).or_insert(service);
        } else if namespace == ns && enable_service_links {
            // The pod's own namespace wins, over a master Service of that name too.
            chosen.insert(name, service);
        }
    }
    chosen.values().flat_map(|s| variables(s)).collect()
}

/// The Service's cluster IP, if it has one (upstream's `IsServiceIPSet`).
fn cluster_ip(service: &Service) -> Option<&str> {
    let ip = service.spec.as_ref()?.cluster_ip.as_deref()?;
    (!ip.is_empty() && ip != "None").then_some(ip)
}

/// A name as a variable name: upper case, `-` as `_` (upstream's `makeEnvVariableName`).
fn variable_name(name: &str) -> String {
    name.replace('-', "_").to_uppercase()
}

/// One Service's variables (upstream's `FromServices` for one Service).
fn variables(service: &Service) -> Vec<(String, String)> {
    let Some(ip) = cluster_ip(service) else {
        return Vec::new();
    };
    let ports = service
        .spec
        .as_ref()
        .and_then(|s| s.ports.as_deref())
        .unwrap_or_default();
    let Some(first) = ports.first() else {
        return Vec::new();
    };
    let prefix = variable_name(service.metadata.name.as_deref().unwrap_or_default());
    let mut out = vec![
        (format!("{prefix}_SERVICE_HOST"), ip.to_owned()),
        (format!("{prefix}_SERVICE_PORT"), first.port.to_string()),
    ];
    for p in ports {
        if let Some(name) = p.name.as_deref().filter(|n| !n.is_empty()) {
            out.push((
                format!("{prefix}_SERVICE_PORT_{}", variable_name(name)),
                p.port.to_string(),
            ));
        }
    }
    // Docker's link variables; an IPv6 address in brackets, as Go's JoinHostPort.
    let host = if ip.contains(':') {
        format!("[{ip}]")
    } else {
        ip.to_owned()
    };
    for (i, p) in ports.iter().enumerate() {
        let protocol = p.protocol.as_deref().unwrap_or("TCP");
        let lower = protocol.to_lowercase();
        let url = format!("{lower}://{host}:{}", p.port);
        if i == 0 {
            out.push((format!("{prefix}_PORT"), url.clone()));
        }
        let port_prefix = format!("{prefix}_PORT_{}_{}", p.port, protocol.to_uppercase());
        out.push((format!("{port_prefix}_PROTO"), lower));
        out.push((format!("{port_prefix}_PORT"), p.port.to_string()));
        out.push((format!("{port_prefix}_ADDR"), ip.to_owned()));
        out.push((port_prefix, url));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn service(ns: &str, name: &str, ip: &str, ports: serde_json::Value) -> Arc<Service> {
        Arc::new(
            serde_json::from_value(serde_json::json!({
                "metadata": {"namespace": ns, "name": name},
                "spec": {"clusterIP": ip, "ports": ports},
            }))
            .unwrap_or_default(),
        )
    }

    fn services() -> Vec<Arc<Service>> {
        vec![
            service(
                "default",
                "kubernetes",
                "10.43.0.1",
                serde_json::json!([{"name": "https", "port": 443, "protocol": "TCP"}]),
            ),
            service(
                "shop",
                "web-api",
                "10.43.0.20",
                serde_json::json!([
                    {"port": 80, "protocol": "TCP"},
                    {"name": "dns-udp", "port": 53, "protocol": "UDP"},
                ]),
            ),
            service(
                "shop",
                "headless",
                "None",
                serde_json::json!([{"port": 80}]),
            ),
            service(
                "other",
                "db",
                "10.43.0.30",
                serde_json::json!([{"port": 5432}]),
            ),
        ]
    }

    #[test]
    fn the_api_servers_and_the_namespaces_services_as_upstream_names_them() {
        let env = service_env(&services(), "shop", true);
        let want: BTreeMap<String, String> = [
            ("KUBERNETES_SERVICE_HOST", "10.43.0.1"),
            ("KUBERNETES_SERVICE_PORT", "443"),
            ("KUBERNETES_SERVICE_PORT_HTTPS", "443"),
            ("KUBERNETES_PORT", "tcp://10.43.0.1:443"),
            ("KUBERNETES_PORT_443_TCP", "tcp://10.43.0.1:443"),
            ("KUBERNETES_PORT_443_TCP_PROTO", "tcp"),
            ("KUBERNETES_PORT_443_TCP_PORT", "443"),
            ("KUBERNETES_PORT_443_TCP_ADDR", "10.43.0.1"),
            ("WEB_API_SERVICE_HOST", "10.43.0.20"),
            ("WEB_API_SERVICE_PORT", "80"),
            ("WEB_API_SERVICE_PORT_DNS_UDP", "53"),
            ("WEB_API_PORT", "tcp://10.43.0.20:80"),
            ("WEB_API_PORT_80_TCP", "tcp://10.43.0.20:80"),
            ("WEB_API_PORT_80_TCP_PROTO", "tcp"),
            ("WEB_API_PORT_80_TCP_PORT", "80"),
            ("WEB_API_PORT_80_TCP_ADDR", "10.43.0.20"),
            ("WEB_API_PORT_53_UDP", "udp://10.43.0.20:53"),
            ("WEB_API_PORT_53_UDP_PROTO", "udp"),
            ("WEB_API_PORT_53_UDP_PORT", "53"),
            ("WEB_API_PORT_53_UDP_ADDR", "10.43.0.20"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        assert_eq!(env, want);
    }

    #[test]
    fn without_service_links_only_the_api_server() {
        let env = service_env(&services(), "shop", false);
        assert_eq!(env.len(), 8, "{env:?}");
        assert!(env.keys().all(|k| k.starts_with("KUBERNETES_")), "{env:?}");
        // A pod of `default` gets the master Service once, links or not.
        assert_eq!(service_env(&services(), "default", true).len(), 8);
    }

    #[test]
    fn a_namespaces_own_kubernetes_service_wins() {
        let mut all = services();
        all.push(service(
            "shop",
            "kubernetes",
            "10.43.0.99",
            serde_json::json!([{"port": 8443}]),
        ));
        let env = service_env(&all, "shop", true);
        assert_eq!(env["KUBERNETES_SERVICE_HOST"], "10.43.0.99");
        assert_eq!(env["KUBERNETES_SERVICE_PORT"], "8443");
    }
}
