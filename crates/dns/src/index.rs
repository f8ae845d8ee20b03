//! The cluster's DNS data, distilled from Services and EndpointSlices: what each Service
//! answers with (ClusterIPs, ready endpoints, an external name), its ports, and the reverse
//! (PTR) map. Built in one pass from the informer caches and swapped in whole, so a query
//! never sees half an update.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::IpAddr;
use std::sync::Arc;

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;

/// The label that ties an EndpointSlice to its Service.
pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";

/// A port as DNS sees it: SRV records exist only for named ports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Port {
    /// Lowercased; empty for an unnamed port.
    pub name: String,
    /// `tcp`, `udp` or `sctp` (lowercase, as it appears in `_<proto>` labels).
    pub protocol: String,
    pub port: u16,
}

/// One address of a headless Service's endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// The endpoint's `hostname`, or the address with dashes (`10-42-0-5`) when it has none,
    /// as CoreDNS names endpoints (the spec's "unique, system-assigned identifier").
    pub name: String,
    /// Whether `name` came from the endpoint's `hostname` (the spec's PTR records are only
    /// required for those; CoreDNS answers PTR for every endpoint, and so do we).
    pub has_hostname: bool,
    pub ip: IpAddr,
    /// The EndpointSlice's ports (target ports), for headless SRV records.
    pub ports: Arc<Vec<Port>>,
}

/// What a Service's own name resolves to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    /// ClusterIP, NodePort and LoadBalancer Services: their cluster IPs (one per family).
    ClusterIp(Vec<IpAddr>),
    /// `clusterIP: None`: the endpoints that DNS publishes (ready ones, or all of them with
    /// `publishNotReadyAddresses`).
    Headless(Vec<Endpoint>),
    /// A CNAME to this name (lowercased, without a trailing dot).
    ExternalName(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceEntry {
    pub kind: Kind,
    pub ports: Vec<Port>,
}

/// Everything the resolver answers from. Names are lowercase (Kubernetes names are already;
/// hostnames and external names are folded here so lookups can compare bytes).
#[derive(Debug, Default)]
pub struct Index {
    /// namespace → service name → entry.
    pub services: HashMap<String, HashMap<String, ServiceEntry>>,
    /// IP → the fully qualified names (without the zone) that PTR answers with, e.g.
    /// `["web.default.svc"]` or `["web-0.nginx.default.svc"]`.
    pub reverse: HashMap<IpAddr, BTreeSet<String>>,
    /// When this index was built, in seconds since the epoch: the SOA serial, so it moves
    /// whenever the data does (as CoreDNS's does).
    pub serial: u32,
}

impl Index {
    pub fn service(&self, namespace: &str, name: &str) -> Option<&ServiceEntry> {
        self.services.get(namespace)?.get(name)
    }

    /// A namespace exists for DNS purposes when it holds at least one Service (we do not
    /// watch Namespaces; `<ns>.svc.<zone>` is then NOERROR/NODATA rather than NXDOMAIN).
    pub fn has_namespace(&self, namespace: &str) -> bool {
        self.services.contains_key(namespace)
    }

    /// Builds the index from the Services and EndpointSlices in the caches.
    pub fn build(services: &[Arc<Service>], slices: &[Arc<EndpointSlice>], serial: u32) -> Index {
        // Slices of each Service, keyed (namespace, service name).
        let mut slices_of: HashMap<(&str, &str), Vec<&EndpointSlice>> = HashMap::new();
        for slice in slices {
            let Some(ns) = slice.metadata.namespace.as_deref() else {
                continue;
            };
            let Some(svc) = slice
                .metadata
                .labels
                .as_ref()
                .and_then(|l| l.get(SERVICE_NAME_LABEL))
            else {
                continue;
            };
            slices_of.entry((ns, svc.as_str())).or_default().push(slice);
        }

        let mut index = Index {
            serial,
            ..Index::default()
        };
        for svc in services {
            let (Some(ns), Some(name)) = (
                svc.metadata.namespace.as_deref(),
                svc.metadata.name.as_deref(),
            ) else {
                continue;
            };
            let Some(spec) = svc.spec.as_ref() else {
                continue;
            };
            let ports = spec
                .ports
                .iter()
                .flatten()
                .filter_map(|p| {
                    Some(Port {
                        name: p.name.as_deref().unwrap_or_default().to_ascii_lowercase(),
                        protocol: p.protocol.as_deref().unwrap_or("TCP").to_ascii_lowercase(),
                        port: u16::try_from(p.port).ok()?,
                    })
                })
                .collect::<Vec<_>>();
            let fqdn = format!("{name}.{ns}.svc");
            let kind = if spec.type_.as_deref() == Some("ExternalName") {
                let target = spec.external_name.as_deref().unwrap_or_default();
                let target = target.trim_end_matches('.').to_ascii_lowercase();
                if target.is_empty() {
                    continue;
                }
                Kind::ExternalName(target)
            } else if is_headless(spec) {
                let publish_not_ready = spec.publish_not_ready_addresses == Some(true);
                let endpoints = headless_endpoints(
                    slices_of.get(&(ns, name)).map(Vec::as_slice).unwrap_or(&[]),
                    publish_not_ready,
                );
                for ep in &endpoints {
                    index
                        .reverse
                        .entry(ep.ip)
                        .or_default()
                        .insert(format!("{}.{fqdn}", ep.name));
                }
                Kind::Headless(endpoints)
            } else {
                let ips = cluster_ips(spec);
                if ips.is_empty() {
                    // Not allocated yet: the Service has no records until it has an IP.
                    continue;
                }
                for ip in &ips {
                    index.reverse.entry(*ip).or_default().insert(fqdn.clone());
                }
                Kind::ClusterIp(ips)
            };
            index
                .services
                .entry(ns.to_string())
                .or_default()
                .insert(name.to_string(), ServiceEntry { kind, ports });
        }
        index
    }
}

fn is_headless(spec: &k8s_openapi::api::core::v1::ServiceSpec) -> bool {
    spec.cluster_ip.as_deref() == Some("None")
        || spec
            .cluster_ips
            .as_ref()
            .is_some_and(|ips| ips.first().map(String::as_str) == Some("None"))
}

fn cluster_ips(spec: &k8s_openapi::api::core::v1::ServiceSpec) -> Vec<IpAddr> {
    let mut ips: Vec<IpAddr> = spec
        .cluster_ips
        .iter()
        .flatten()
        .filter_map(|ip| ip.parse().ok())
        .collect();
    // `clusterIP` is `clusterIPs[0]`; older objects may only carry the former.
    if let Some(ip) = spec.cluster_ip.as_deref().and_then(|ip| ip.parse().ok())
        && !ips.contains(&ip)
    {
        ips.insert(0, ip);
    }
    ips
}

/// The endpoints DNS publishes for a headless Service: one per address, de-duplicated across
/// slices (an address can sit in two slices while the controller moves it), in a stable order.
fn headless_endpoints(slices: &[&EndpointSlice], publish_not_ready: bool) -> Vec<Endpoint> {
    let mut out: BTreeMap<(IpAddr, String), Endpoint> = BTreeMap::new();
    for slice in slices {
        if !matches!(slice.address_type.as_str(), "IPv4" | "IPv6") {
            continue; // FQDN slices have no addresses DNS can serve
        }
        let ports = Arc::new(
            slice
                .ports
                .iter()
                .flatten()
                .filter_map(|p| {
                    Some(Port {
                        name: p.name.as_deref().unwrap_or_default().to_ascii_lowercase(),
                        protocol: p.protocol.as_deref().unwrap_or("TCP").to_ascii_lowercase(),
                        port: u16::try_from(p.port?).ok()?,
                    })
                })
                .collect::<Vec<_>>(),
        );
        for ep in &slice.endpoints {
            // A nil `ready` means ready (discovery/v1's documented reading).
            let ready = ep.conditions.as_ref().and_then(|c| c.ready).unwrap_or(true);
            if !ready && !publish_not_ready {
                continue;
            }
            let hostname = ep
                .hostname
                .as_deref()
                .filter(|h| !h.is_empty())
                .map(str::to_ascii_lowercase);
            for addr in &ep.addresses {
                let Ok(ip) = addr.parse::<IpAddr>() else {
                    continue;
                };
                let name = hostname.clone().unwrap_or_else(|| dashed(ip));
                out.entry((ip, name.clone())).or_insert_with(|| Endpoint {
                    name,
                    has_hostname: hostname.is_some(),
                    ip,
                    ports: ports.clone(),
                });
            }
        }
    }
    out.into_values().collect()
}

/// An address as one DNS label: `10.42.0.5` → `10-42-0-5`, `fd00::1` → `fd00--1`.
pub fn dashed(ip: IpAddr) -> String {
    ip.to_string().replace(['.', ':'], "-")
}

/// The inverse of [`dashed`] for pod names (`a-b-c-d.<ns>.pod.<zone>`).
pub fn undashed(label: &str) -> Option<IpAddr> {
    if let Ok(ip) = label.replace('-', ".").parse::<std::net::Ipv4Addr>() {
        return Some(IpAddr::V4(ip));
    }
    label
        .replace('-', ":")
        .parse::<std::net::Ipv6Addr>()
        .ok()
        .map(IpAddr::V6)
}

#[cfg(test)]
pub(crate) mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use k8s_openapi::api::core::v1::{ServicePort, ServiceSpec};
    use k8s_openapi::api::discovery::v1::{Endpoint as SliceEndpoint, EndpointConditions};
    use kube::api::ObjectMeta;

    pub fn service(ns: &str, name: &str, spec: ServiceSpec) -> Arc<Service> {
        Arc::new(Service {
            metadata: ObjectMeta {
                namespace: Some(ns.into()),
                name: Some(name.into()),
                ..Default::default()
            },
            spec: Some(spec),
            status: None,
        })
    }

    pub fn port(name: &str, protocol: &str, port: i32) -> ServicePort {
        ServicePort {
            name: (!name.is_empty()).then(|| name.to_string()),
            protocol: Some(protocol.into()),
            port,
            ..Default::default()
        }
    }

    pub fn cluster_ip(ips: &[&str], ports: Vec<ServicePort>) -> ServiceSpec {
        ServiceSpec {
            cluster_ip: ips.first().map(|s| s.to_string()),
            cluster_ips: Some(ips.iter().map(|s| s.to_string()).collect()),
            ports: Some(ports),
            ..Default::default()
        }
    }

    pub fn headless(ports: Vec<ServicePort>, publish_not_ready: bool) -> ServiceSpec {
        ServiceSpec {
            cluster_ip: Some("None".into()),
            cluster_ips: Some(vec!["None".into()]),
            ports: Some(ports),
            publish_not_ready_addresses: publish_not_ready.then_some(true),
            ..Default::default()
        }
    }

    /// (address, hostname, ready)
    pub fn slice(
        ns: &str,
        svc: &str,
        name: &str,
        eps: &[(&str, Option<&str>, Option<bool>)],
        ports: &[(&str, &str, i32)],
    ) -> Arc<EndpointSlice> {
        let family = if eps.iter().any(|e| e.0.contains(':')) {
            "IPv6"
        } else {
            "IPv4"
        };
        Arc::new(EndpointSlice {
            metadata: ObjectMeta {
                namespace: Some(ns.into()),
                name: Some(name.into()),
                labels: Some([(SERVICE_NAME_LABEL.to_string(), svc.to_string())].into()),
                ..Default::default()
            },
            address_type: family.into(),
            endpoints: eps
                .iter()
                .map(|(ip, host, ready)| SliceEndpoint {
                    addresses: vec![ip.to_string()],
                    hostname: host.map(str::to_string),
                    conditions: Some(EndpointConditions {
                        ready: *ready,
                        ..Default::default()
                    }),
                    ..Default::default()
                })
                .collect(),
            ports: Some(
                ports
                    .iter()
                    .map(
                        |(n, p, num)| k8s_openapi::api::discovery::v1::EndpointPort {
                            name: Some(n.to_string()),
                            protocol: Some(p.to_string()),
                            port: Some(*num),
                            ..Default::default()
                        },
                    )
                    .collect(),
            ),
        })
    }

    #[test]
    fn dashed_round_trips() {
        for ip in ["10.42.0.5", "fd00::1", "2001:db8::a:b"] {
            let ip: IpAddr = ip.parse().unwrap();
            assert_eq!(undashed(&dashed(ip)), Some(ip));
        }
        assert_eq!(dashed("10.42.0.5".parse().unwrap()), "10-42-0-5");
        assert_eq!(undashed("10-42-0"), None);
        assert_eq!(undashed("web"), None);
    }

    #[test]
    fn headless_keeps_ready_and_dedups_across_slices() {
        let svcs = [service("default", "db", headless(vec![], false))];
        let slices = [
            slice(
                "default",
                "db",
                "db-a",
                &[
                    ("10.42.0.1", Some("DB-0"), Some(true)),
                    ("10.42.0.2", None, None),
                    ("10.42.0.3", None, Some(false)),
                ],
                &[],
            ),
            slice(
                "default",
                "db",
                "db-b",
                &[("10.42.0.1", Some("db-0"), Some(true))],
                &[],
            ),
        ];
        let index = Index::build(&svcs, &slices, 1);
        let Kind::Headless(eps) = &index.service("default", "db").unwrap().kind else {
            panic!("not headless");
        };
        let names: Vec<_> = eps.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(names, ["db-0", "10-42-0-2"]);
        assert!(index.reverse[&"10.42.0.1".parse().unwrap()].contains("db-0.db.default.svc"));
    }

    #[test]
    fn unallocated_cluster_ip_has_no_entry() {
        let svcs = [service(
            "default",
            "web",
            ServiceSpec {
                ports: Some(vec![port("http", "TCP", 80)]),
                ..Default::default()
            },
        )];
        let index = Index::build(&svcs, &[], 1);
        assert!(index.service("default", "web").is_none());
    }
}
