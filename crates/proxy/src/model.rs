//! What the proxy needs from Services and EndpointSlices, flattened to one entry per
//! Service port with its endpoints (upstream's ServicePortMap + EndpointsMap). Pure: API
//! objects in, plain data out.

use std::collections::{BTreeMap, HashMap};
use std::net::Ipv4Addr;
use std::sync::Arc;

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;

/// Services carrying this label belong to another proxy (upstream skips them too).
const SERVICE_PROXY_NAME_LABEL: &str = "service.kubernetes.io/service-proxy-name";
/// Headless Services' slices carry this label; they have no virtual IP to program.
const HEADLESS_LABEL: &str = "service.kubernetes.io/headless";
/// The label tying an EndpointSlice to its Service.
pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";
/// `sessionAffinityConfig.clientIP.timeoutSeconds` when unset (3 hours).
pub const DEFAULT_AFFINITY_TIMEOUT: u32 = 10800;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Protocol {
    Tcp,
    Udp,
    Sctp,
}

impl Protocol {
    fn parse(s: Option<&str>) -> Option<Self> {
        match s.unwrap_or("TCP") {
            "TCP" => Some(Protocol::Tcp),
            "UDP" => Some(Protocol::Udp),
            "SCTP" => Some(Protocol::Sctp),
            _ => None,
        }
    }

    /// The nft keyword (`tcp`, `udp`, `sctp`).
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
            Protocol::Sctp => "sctp",
        }
    }
}

/// One port of one Service, with everything that decides its rules.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServicePort {
    pub namespace: String,
    pub name: String,
    /// The Service port's name ("" for a single unnamed port).
    pub port_name: String,
    pub protocol: Protocol,
    pub cluster_ip: Ipv4Addr,
    pub port: u16,
    /// 0 when the port has no NodePort.
    pub node_port: u16,
    pub external_ips: Vec<Ipv4Addr>,
    /// `status.loadBalancer.ingress[].ip` (VIP mode only, as upstream).
    pub load_balancer_ips: Vec<Ipv4Addr>,
    pub load_balancer_source_ranges: Vec<String>,
    /// `Some(timeout seconds)` for `sessionAffinity: ClientIP`.
    pub affinity_timeout: Option<u32>,
    /// `externalTrafficPolicy: Local` on an externally reachable Service.
    pub external_policy_local: bool,
    /// `internalTrafficPolicy: Local`.
    pub internal_policy_local: bool,
}

impl ServicePort {
    /// `namespace/name/protocol/portname`, upstream's name of a service port.
    pub fn id(&self) -> String {
        format!(
            "{}/{}/{}/{}",
            self.namespace,
            self.name,
            self.protocol.as_str(),
            self.port_name
        )
    }

    /// Reachable from outside the cluster network: NodePort, externalIPs or LB ingress.
    pub fn externally_accessible(&self) -> bool {
        self.node_port != 0 || !self.external_ips.is_empty() || !self.load_balancer_ips.is_empty()
    }

    /// Some traffic of this port uses the cluster-wide endpoints: internal traffic under
    /// Cluster policy, and any external traffic (even under Local policy, pods and the node
    /// itself are short-circuited to the cluster-wide endpoints).
    pub fn uses_cluster_endpoints(&self) -> bool {
        !self.internal_policy_local || self.externally_accessible()
    }

    /// Some traffic of this port uses only this node's endpoints.
    pub fn uses_local_endpoints(&self) -> bool {
        self.internal_policy_local || (self.externally_accessible() && self.external_policy_local)
    }
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Endpoint {
    pub ip: Ipv4Addr,
    pub port: u16,
    pub ready: bool,
    pub serving: bool,
    pub terminating: bool,
    /// On this node (`nodeName` == the proxy's node).
    pub local: bool,
}

impl Endpoint {
    /// `ip:port`, as it appears in a `dnat to`.
    pub fn addr(&self) -> String {
        format!("{}:{}", self.ip, self.port)
    }
}

/// A Service port and every endpoint its slices list for it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServiceState {
    pub port: ServicePort,
    pub endpoints: Vec<Endpoint>,
}

/// The endpoints each kind of traffic goes to (upstream's CategorizeEndpoints).
#[derive(Debug, Default)]
pub struct Categorized<'a> {
    pub cluster: Vec<&'a Endpoint>,
    pub local: Vec<&'a Endpoint>,
    /// Endpoints this node may DNAT to (the union of the two).
    pub reachable: Vec<&'a Endpoint>,
    /// Usable endpoints exist anywhere in the cluster.
    pub has_any: bool,
}

impl ServiceState {
    pub fn categorize(&self) -> Categorized<'_> {
        let eps = &self.endpoints;
        let mut c = Categorized::default();
        if self.port.uses_cluster_endpoints() {
            c.cluster = eps.iter().filter(|e| e.ready).collect();
            // No ready endpoint anywhere: fall back to ones still serving while terminating.
            if c.cluster.is_empty() {
                c.cluster = eps.iter().filter(|e| e.serving && e.terminating).collect();
            }
            c.has_any = !c.cluster.is_empty();
        }
        if !self.port.uses_local_endpoints() {
            c.reachable = c.cluster.clone();
            return c;
        }
        let (mut local_ready, mut local_serving) = (false, false);
        for e in eps {
            if e.ready {
                c.has_any = true;
                local_ready |= e.local;
            } else if e.serving && e.terminating {
                c.has_any = true;
                local_serving |= e.local;
            }
        }
        if local_ready {
            c.local = eps.iter().filter(|e| e.local && e.ready).collect();
        } else if local_serving {
            c.local = eps
                .iter()
                .filter(|e| e.local && e.serving && e.terminating)
                .collect();
        }
        if !self.port.uses_cluster_endpoints() {
            c.reachable = c.local.clone();
            return c;
        }
        let mut all = c.cluster.clone();
        for e in &c.local {
            if !all.contains(e) {
                all.push(e);
            }
        }
        c.reachable = all;
        c
    }
}

fn ipv4(s: &str) -> Option<Ipv4Addr> {
    s.parse().ok()
}

/// The proxied ports of one Service; empty for headless, ExternalName, IPv6-only or
/// foreign-proxy Services.
pub fn service_ports(svc: &Service) -> Vec<ServicePort> {
    let meta = &svc.metadata;
    if meta
        .labels
        .as_ref()
        .is_some_and(|l| l.contains_key(SERVICE_PROXY_NAME_LABEL))
    {
        return Vec::new();
    }
    let Some(spec) = svc.spec.as_ref() else {
        return Vec::new();
    };
    if spec.type_.as_deref() == Some("ExternalName") {
        return Vec::new();
    }
    // The IPv4 cluster IP (first of clusterIPs, or clusterIP); "None" (headless) never parses.
    let cluster_ip = spec
        .cluster_ips
        .iter()
        .flatten()
        .chain(spec.cluster_ip.iter())
        .find_map(|s| ipv4(s));
    let Some(cluster_ip) = cluster_ip else {
        return Vec::new();
    };
    let external_ips: Vec<Ipv4Addr> = spec
        .external_ips
        .iter()
        .flatten()
        .filter_map(|s| ipv4(s))
        .collect();
    let load_balancer_ips: Vec<Ipv4Addr> = svc
        .status
        .as_ref()
        .and_then(|s| s.load_balancer.as_ref())
        .and_then(|lb| lb.ingress.as_ref())
        .into_iter()
        .flatten()
        // ipMode Proxy means the load balancer delivers to the node itself, not to the VIP.
        .filter(|i| i.ip_mode.as_deref().is_none_or(|m| m == "VIP"))
        .filter_map(|i| i.ip.as_deref().and_then(ipv4))
        .collect();
    let externally_typed = matches!(spec.type_.as_deref(), Some("NodePort" | "LoadBalancer"))
        || !external_ips.is_empty();
    let affinity_timeout = (spec.session_affinity.as_deref() == Some("ClientIP")).then(|| {
        spec.session_affinity_config
            .as_ref()
            .and_then(|c| c.client_ip.as_ref())
            .and_then(|c| c.timeout_seconds)
            .and_then(|t| u32::try_from(t).ok())
            .filter(|t| *t > 0)
            .unwrap_or(DEFAULT_AFFINITY_TIMEOUT)
    });
    let mut out = Vec::new();
    for p in spec.ports.iter().flatten() {
        let (Some(protocol), Ok(port)) = (
            Protocol::parse(p.protocol.as_deref()),
            u16::try_from(p.port),
        ) else {
            continue;
        };
        let node_port = match spec.type_.as_deref() {
            Some("NodePort" | "LoadBalancer") => {
                p.node_port.and_then(|n| u16::try_from(n).ok()).unwrap_or(0)
            }
            _ => 0,
        };
        let port = ServicePort {
            namespace: meta.namespace.clone().unwrap_or_default(),
            name: meta.name.clone().unwrap_or_default(),
            port_name: p.name.clone().unwrap_or_default(),
            protocol,
            cluster_ip,
            port,
            node_port,
            external_ips: external_ips.clone(),
            load_balancer_ips: load_balancer_ips.clone(),
            load_balancer_source_ranges: spec
                .load_balancer_source_ranges
                .clone()
                .unwrap_or_default(),
            affinity_timeout,
            external_policy_local: false,
            internal_policy_local: spec.internal_traffic_policy.as_deref() == Some("Local"),
        };
        let external_policy_local = externally_typed
            && port.externally_accessible()
            && spec.external_traffic_policy.as_deref() == Some("Local");
        out.push(ServicePort {
            external_policy_local,
            ..port
        });
    }
    out
}

/// Key of a service port's endpoints: (namespace, service, port name, protocol).
type PortKey = (String, String, String, Protocol);

/// The endpoints of every (service, port name, protocol) listed by `slices`, merged over
/// slices (an address in several slices counts once, ready if any says so).
fn endpoints_by_port(
    slices: &[Arc<EndpointSlice>],
    node_name: &str,
) -> HashMap<PortKey, Vec<Endpoint>> {
    let mut merged: HashMap<PortKey, BTreeMap<(Ipv4Addr, u16), Endpoint>> = HashMap::new();
    for slice in slices {
        if slice.address_type != "IPv4" {
            continue;
        }
        let labels = slice.metadata.labels.as_ref();
        let Some(service) = labels.and_then(|l| l.get(SERVICE_NAME_LABEL)) else {
            continue;
        };
        if labels.is_some_and(|l| l.contains_key(HEADLESS_LABEL)) {
            continue;
        }
        let namespace = slice.metadata.namespace.clone().unwrap_or_default();
        for sp in slice.ports.iter().flatten() {
            let (Some(protocol), Some(Ok(port))) = (
                Protocol::parse(sp.protocol.as_deref()),
                sp.port.map(u16::try_from),
            ) else {
                continue;
            };
            let key = (
                namespace.clone(),
                service.clone(),
                sp.name.clone().unwrap_or_default(),
                protocol,
            );
            let entry = merged.entry(key).or_default();
            for ep in &slice.endpoints {
                let Some(ip) = ep.addresses.first().and_then(|a| ipv4(a)) else {
                    continue;
                };
                let cond = ep.conditions.as_ref();
                // Unset conditions: ready (as the API documents), serving = ready.
                let ready = cond.and_then(|c| c.ready).unwrap_or(true);
                let e = Endpoint {
                    ip,
                    port,
                    ready,
                    serving: cond.and_then(|c| c.serving).unwrap_or(ready),
                    terminating: cond.and_then(|c| c.terminating).unwrap_or(false),
                    local: ep.node_name.as_deref() == Some(node_name),
                };
                match entry.get(&(ip, port)) {
                    Some(old) if old.ready || !e.ready => {}
                    _ => {
                        entry.insert((ip, port), e);
                    }
                }
            }
        }
    }
    merged
        .into_iter()
        .map(|(k, v)| (k, v.into_values().collect()))
        .collect()
}

/// Every proxied Service port with its endpoints, sorted by `id()` so the generated rules
/// are stable.
pub fn build(
    services: &[Arc<Service>],
    slices: &[Arc<EndpointSlice>],
    node_name: &str,
) -> Vec<ServiceState> {
    let mut eps = endpoints_by_port(slices, node_name);
    let mut out: Vec<ServiceState> = services
        .iter()
        .flat_map(|s| service_ports(s))
        .map(|port| {
            let key = (
                port.namespace.clone(),
                port.name.clone(),
                port.port_name.clone(),
                port.protocol,
            );
            ServiceState {
                endpoints: eps.remove(&key).unwrap_or_default(),
                port,
            }
        })
        .collect();
    out.sort_by_key(|s| s.port.id());
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use serde_json::json;

    fn svc(v: serde_json::Value) -> Arc<Service> {
        Arc::new(serde_json::from_value(v).unwrap())
    }
    fn slice(v: serde_json::Value) -> Arc<EndpointSlice> {
        Arc::new(serde_json::from_value(v).unwrap())
    }

    #[test]
    fn ports_resolve_target_ports_by_name_and_protocol() {
        let s = svc(json!({
            "metadata": {"name": "web", "namespace": "default"},
            "spec": {"clusterIP": "10.43.0.5", "type": "NodePort", "ports": [
                {"name": "http", "port": 80, "protocol": "TCP", "nodePort": 30080},
                {"name": "dns", "port": 53, "protocol": "UDP", "nodePort": 30053}]}
        }));
        let sl = slice(json!({
            "metadata": {"name": "web-1", "namespace": "default",
                         "labels": {"kubernetes.io/service-name": "web"}},
            "addressType": "IPv4",
            "ports": [{"name": "http", "port": 8080, "protocol": "TCP"},
                      {"name": "dns", "port": 5353, "protocol": "UDP"}],
            "endpoints": [
                {"addresses": ["10.42.0.2"], "conditions": {"ready": true}, "nodeName": "n1"},
                {"addresses": ["10.42.0.3"], "conditions": {"ready": false}, "nodeName": "n2"}]
        }));
        let states = build(&[s], &[sl], "n1");
        assert_eq!(states.len(), 2);
        let dns = &states[1];
        assert_eq!(dns.port.id(), "default/web/udp/dns");
        assert_eq!(dns.port.node_port, 30053);
        assert_eq!(dns.endpoints[0].port, 5353);
        let http = &states[0];
        assert_eq!(http.endpoints.len(), 2);
        assert!(http.endpoints[0].local && http.endpoints[0].ready);
        assert!(!http.endpoints[1].ready);
        let c = http.categorize();
        assert_eq!(c.cluster.len(), 1);
        assert!(c.has_any);
    }

    #[test]
    fn headless_external_name_and_foreign_services_are_skipped() {
        let headless = svc(json!({"metadata": {"name": "h", "namespace": "d"},
            "spec": {"clusterIP": "None", "ports": [{"port": 80}]}}));
        let ext = svc(json!({"metadata": {"name": "e", "namespace": "d"},
            "spec": {"type": "ExternalName", "externalName": "x.example", "ports": [{"port": 80}]}}));
        let foreign = svc(json!({"metadata": {"name": "f", "namespace": "d",
            "labels": {"service.kubernetes.io/service-proxy-name": "other"}},
            "spec": {"clusterIP": "10.43.0.7", "ports": [{"port": 80}]}}));
        assert!(build(&[headless, ext, foreign], &[], "n").is_empty());
    }

    #[test]
    fn terminating_serving_endpoints_are_the_fallback() {
        let s = svc(json!({"metadata": {"name": "a", "namespace": "d"},
            "spec": {"clusterIP": "10.43.0.8", "ports": [{"port": 80}]}}));
        let sl = slice(json!({
            "metadata": {"name": "a-1", "namespace": "d",
                         "labels": {"kubernetes.io/service-name": "a"}},
            "addressType": "IPv4", "ports": [{"port": 80}],
            "endpoints": [
                {"addresses": ["10.42.0.2"], "conditions": {"ready": false, "serving": true, "terminating": true}},
                {"addresses": ["10.42.0.3"], "conditions": {"ready": false, "serving": false, "terminating": true}}]
        }));
        let states = build(&[s], &[sl], "n");
        let c = states[0].categorize();
        assert_eq!(c.cluster.len(), 1);
        assert_eq!(c.cluster[0].ip, Ipv4Addr::new(10, 42, 0, 2));
    }

    #[test]
    fn local_policies_pick_local_endpoints() {
        let s = svc(json!({"metadata": {"name": "a", "namespace": "d"},
            "spec": {"clusterIP": "10.43.0.8", "type": "NodePort", "externalTrafficPolicy": "Local",
                     "sessionAffinity": "ClientIP",
                     "ports": [{"port": 80, "nodePort": 30001}]}}));
        let sl = slice(json!({
            "metadata": {"name": "a-1", "namespace": "d",
                         "labels": {"kubernetes.io/service-name": "a"}},
            "addressType": "IPv4", "ports": [{"port": 80}],
            "endpoints": [
                {"addresses": ["10.42.0.2"], "nodeName": "me"},
                {"addresses": ["10.42.1.2"], "nodeName": "other"}]
        }));
        let states = build(&[s], &[sl], "me");
        let st = &states[0];
        assert!(st.port.external_policy_local);
        assert_eq!(st.port.affinity_timeout, Some(DEFAULT_AFFINITY_TIMEOUT));
        let c = st.categorize();
        assert_eq!(c.cluster.len(), 2);
        assert_eq!(c.local.len(), 1);
        assert_eq!(c.reachable.len(), 2);
    }
}
