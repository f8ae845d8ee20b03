//! Served Ingresses + Services + EndpointSlices + TLS Secrets → a routing table and a
//! certificate table, and the problems found on the way (reported as events). Pure apart
//! from the certificate cache.

use std::collections::{BTreeSet, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use k8s_openapi::api::core::v1::{Secret, Service, ServicePort};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::networking::v1::{Ingress, IngressBackend};
use rustls::sign::CertifiedKey;

use crate::backend::{Backend, Endpoint, HealthRegistry, Protocol};
use crate::certs::CertCache;
use crate::host::HostPattern;
use crate::path::PathKind;
use crate::table::RouteTable;
use crate::tls::CertTable;

/// EndpointSlices name their Service with this label.
const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";

/// Something wrong with a served Ingress, for a Warning event.
#[derive(Clone, Debug)]
pub struct Problem {
    pub ingress: Arc<Ingress>,
    pub reason: &'static str,
    pub message: String,
}

/// What the build reads.
pub struct Inputs<'a> {
    /// The Ingresses served (the class decision made), any order.
    pub ingresses: Vec<Arc<Ingress>>,
    pub services: &'a [Arc<Service>],
    pub slices: &'a [Arc<EndpointSlice>],
    /// `kubernetes.io/tls` Secrets.
    pub secrets: &'a [Arc<Secret>],
    pub default_cert: Option<Arc<CertifiedKey>>,
}

pub struct Built {
    pub routes: RouteTable,
    pub certs: CertTable,
    pub problems: Vec<Problem>,
}

/// `namespace/name`.
fn key(ns: &str, name: &str) -> String {
    format!("{ns}/{name}")
}

fn ns_of(ing: &Ingress) -> &str {
    ing.metadata.namespace.as_deref().unwrap_or("default")
}

/// A Service port as a backend names it.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum PortRef {
    Number(i32),
    Name(String),
}

struct Builder<'a> {
    services: HashMap<String, &'a Service>,
    /// `namespace/service` → its slices.
    slices: HashMap<String, Vec<&'a EndpointSlice>>,
    secrets: HashMap<String, &'a Secret>,
    health: &'a HealthRegistry,
    /// Backends already resolved in this build: one `Arc` (one round-robin) per port.
    backends: HashMap<(String, String, PortRef), Arc<Backend>>,
    problems: Vec<Problem>,
}

/// Builds the tables from `inputs`; the oldest Ingress wins conflicting paths, hosts'
/// certificates and the default backend (as ingress-nginx decides).
pub fn build(inputs: Inputs<'_>, health: &HealthRegistry, certs: &mut CertCache) -> Built {
    let mut ingresses = inputs.ingresses;
    ingresses.sort_by(|a, b| {
        let created = |i: &Ingress| i.metadata.creation_timestamp.as_ref().map(|t| t.0);
        created(a)
            .cmp(&created(b))
            .then_with(|| ns_of(a).cmp(ns_of(b)))
            .then_with(|| a.metadata.name.cmp(&b.metadata.name))
    });
    let mut b = Builder {
        services: inputs
            .services
            .iter()
            .map(|s| (key_of(&s.metadata), s.as_ref()))
            .collect(),
        slices: HashMap::new(),
        secrets: inputs
            .secrets
            .iter()
            .map(|s| (key_of(&s.metadata), s.as_ref()))
            .collect(),
        health,
        backends: HashMap::new(),
        problems: Vec::new(),
    };
    for s in inputs.slices {
        let svc = s
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get(SERVICE_NAME_LABEL));
        if let Some(svc) = svc {
            let ns = s.metadata.namespace.as_deref().unwrap_or("default");
            b.slices.entry(key(ns, svc)).or_default().push(s.as_ref());
        }
    }
    let mut routes = RouteTable::default();
    let mut cert_table = CertTable::new(inputs.default_cert);
    certs.start_build();
    for ing in &ingresses {
        b.add_rules(ing, &mut routes);
        b.add_tls(ing, &mut cert_table, certs);
    }
    certs.finish_build();
    Built {
        routes,
        certs: cert_table,
        problems: b.problems,
    }
}

fn key_of(m: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta) -> String {
    key(
        m.namespace.as_deref().unwrap_or("default"),
        m.name.as_deref().unwrap_or_default(),
    )
}

impl Builder<'_> {
    fn problem(&mut self, ing: &Arc<Ingress>, reason: &'static str, message: String) {
        self.problems.push(Problem {
            ingress: ing.clone(),
            reason,
            message,
        });
    }

    fn add_rules(&mut self, ing: &Arc<Ingress>, routes: &mut RouteTable) {
        let Some(spec) = ing.spec.as_ref() else {
            return;
        };
        let default = spec
            .default_backend
            .as_ref()
            .and_then(|d| self.backend(ing, d));
        if let Some(d) = &default {
            routes.set_default_backend(d.clone());
        }
        for rule in spec.rules.iter().flatten() {
            let host = rule
                .host
                .as_deref()
                .filter(|h| !h.is_empty())
                .map(HostPattern::parse);
            let Some(http) = &rule.http else {
                // A host without paths answers with the Ingress's default backend.
                if let (Some(h), Some(d)) = (&host, &default) {
                    routes.insert(Some(h), PathKind::Prefix, "/", d.clone());
                }
                continue;
            };
            for p in &http.paths {
                let Some(kind) = PathKind::parse(&p.path_type) else {
                    self.problem(
                        ing,
                        "InvalidPathType",
                        format!("path type {:?} is not supported; path skipped", p.path_type),
                    );
                    continue;
                };
                let path = p.path.as_deref().filter(|p| !p.is_empty()).unwrap_or("/");
                if !path.starts_with('/') {
                    self.problem(
                        ing,
                        "InvalidPath",
                        format!("path {path:?} does not start with /; skipped"),
                    );
                    continue;
                }
                if let Some(backend) = self.backend(ing, &p.backend) {
                    routes.insert(host.as_ref(), kind, path, backend);
                }
            }
        }
    }

    /// The backend `b` names, or `None` (with a problem) when it cannot be served at all. A
    /// missing Service or port still routes, to a backend without endpoints: 503.
    fn backend(&mut self, ing: &Arc<Ingress>, b: &IngressBackend) -> Option<Arc<Backend>> {
        if let Some(r) = &b.resource {
            self.problem(
                ing,
                "ResourceBackendUnsupported",
                format!(
                    "resource backend {}/{} is not supported by rkube; path skipped",
                    r.kind, r.name
                ),
            );
            return None;
        }
        let svc = b.service.as_ref()?;
        let port = match svc.port.as_ref() {
            Some(p) if p.name.as_deref().is_some_and(|n| !n.is_empty()) => {
                PortRef::Name(p.name.clone().unwrap_or_default())
            }
            Some(p) => PortRef::Number(p.number.unwrap_or(0)),
            None => PortRef::Number(0),
        };
        let ns = ns_of(ing).to_string();
        let k = (ns.clone(), svc.name.clone(), port.clone());
        if let Some(existing) = self.backends.get(&k) {
            return Some(existing.clone());
        }
        let backend = Arc::new(self.resolve(ing, &ns, &svc.name, &port));
        self.backends.insert(k, backend.clone());
        Some(backend)
    }

    fn resolve(&mut self, ing: &Arc<Ingress>, ns: &str, name: &str, port: &PortRef) -> Backend {
        let label = match port {
            PortRef::Number(n) => format!("{ns}/{name}:{n}"),
            PortRef::Name(n) => format!("{ns}/{name}:{n}"),
        };
        let empty = |label: String| Backend::new(label, Protocol::Http1, Vec::new());
        let Some(service) = self.services.get(&key(ns, name)).copied() else {
            self.problem(
                ing,
                "MissingService",
                format!("Service {ns}/{name} not found"),
            );
            return empty(label);
        };
        let spec = service.spec.as_ref();
        if spec.and_then(|s| s.type_.as_deref()) == Some("ExternalName") {
            self.problem(
                ing,
                "ExternalNameUnsupported",
                format!("Service {ns}/{name} is an ExternalName Service; not supported"),
            );
            return empty(label);
        }
        let sp = spec.and_then(|s| s.ports.as_ref()).and_then(|ports| {
            ports.iter().find(|p| match port {
                PortRef::Number(n) => p.port == *n,
                PortRef::Name(n) => p.name.as_deref() == Some(n.as_str()),
            })
        });
        let Some(sp) = sp else {
            self.problem(
                ing,
                "MissingServicePort",
                format!("Service {ns}/{name} has no port {}", label_port(port)),
            );
            return empty(label);
        };
        let endpoints = self
            .ready_endpoints(ns, name, sp)
            .into_iter()
            .map(|addr| Endpoint::new(addr, self.health.get(addr)))
            .collect();
        Backend::new(label, protocol_of(sp), endpoints)
    }

    /// Ready endpoints (`conditions.ready` true or unset) of the Service's slices, with the
    /// slice port named as the Service port is (its target port), deduplicated.
    fn ready_endpoints(&self, ns: &str, name: &str, sp: &ServicePort) -> Vec<SocketAddr> {
        let want = sp.name.as_deref().unwrap_or_default();
        let mut out = BTreeSet::new();
        for slice in self.slices.get(&key(ns, name)).into_iter().flatten() {
            if !matches!(slice.address_type.as_str(), "IPv4" | "IPv6") {
                continue;
            }
            let port = slice.ports.iter().flatten().find(|p| {
                p.name.as_deref().unwrap_or_default() == want
                    && p.protocol.as_deref().unwrap_or("TCP") == "TCP"
            });
            let Some(port) = port
                .and_then(|p| p.port)
                .and_then(|p| u16::try_from(p).ok())
            else {
                continue;
            };
            for ep in &slice.endpoints {
                let ready = ep.conditions.as_ref().and_then(|c| c.ready).unwrap_or(true);
                if !ready {
                    continue;
                }
                for a in &ep.addresses {
                    if let Ok(ip) = a.parse::<IpAddr>() {
                        out.insert(SocketAddr::new(ip, port));
                    }
                }
            }
        }
        out.into_iter().collect()
    }

    fn add_tls(&mut self, ing: &Arc<Ingress>, table: &mut CertTable, cache: &mut CertCache) {
        let Some(spec) = ing.spec.as_ref() else {
            return;
        };
        for tls in spec.tls.iter().flatten() {
            // No Secret: those hosts get the default certificate (as nginx ingress).
            let Some(secret_name) = tls.secret_name.as_deref().filter(|s| !s.is_empty()) else {
                continue;
            };
            let ns = ns_of(ing).to_string();
            let Some(secret) = self.secrets.get(&key(&ns, secret_name)).copied() else {
                self.problem(
                    ing,
                    "MissingSecret",
                    format!("TLS Secret {ns}/{secret_name} not found (or not of type kubernetes.io/tls); the default certificate is served"),
                );
                continue;
            };
            let cert = match cache.get(secret) {
                Ok(c) => c,
                Err(e) => {
                    self.problem(
                        ing,
                        "InvalidSecret",
                        format!(
                            "TLS Secret {ns}/{secret_name}: {e}; the default certificate is served"
                        ),
                    );
                    continue;
                }
            };
            // Hosts left out: the hosts of the Ingress's rules.
            let listed: Vec<&str> = tls.hosts.iter().flatten().map(String::as_str).collect();
            let hosts: Vec<&str> = if listed.is_empty() {
                spec.rules
                    .iter()
                    .flatten()
                    .filter_map(|r| r.host.as_deref())
                    .collect()
            } else {
                listed
            };
            for h in hosts.into_iter().filter(|h| !h.is_empty()) {
                table.insert(&HostPattern::parse(h), cert.clone());
            }
        }
    }
}

fn label_port(p: &PortRef) -> String {
    match p {
        PortRef::Number(n) => n.to_string(),
        PortRef::Name(n) => format!("{n:?}"),
    }
}

/// HTTP/2 with prior knowledge for `appProtocol` `kubernetes.io/h2c` (upstream's name),
/// `h2c` or `grpc`; HTTP/1.1 otherwise.
fn protocol_of(sp: &ServicePort) -> Protocol {
    match sp.app_protocol.as_deref() {
        Some("kubernetes.io/h2c" | "h2c" | "grpc") => Protocol::H2c,
        _ => Protocol::Http1,
    }
}

#[cfg(test)]
#[path = "build_tests.rs"]
mod tests;
