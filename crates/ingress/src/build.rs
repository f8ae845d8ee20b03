//! Served Ingresses + Services + EndpointSlices + TLS Secrets (+ the Gateway API objects,
//! see `gateway::build`) → a routing table and a certificate table, and the problems found
//! on the way (reported as events). Pure apart from the certificate cache.

use std::collections::{BTreeSet, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use k8s_openapi::api::core::v1::{Secret, Service, ServicePort};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::networking::v1::{Ingress, IngressBackend};
use rustls::sign::CertifiedKey;

use crate::backend::{Backend, Endpoint, HealthRegistry, Protocol};
use crate::certs::CertCache;
use crate::gateway::{self, table::GatewayTable};
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
    /// The Gateway API routes (empty without Gateway inputs).
    pub gateway: GatewayTable,
    /// The Gateway API statuses to publish (`None` without Gateway inputs).
    pub gateway_status: Option<gateway::status::Desired>,
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
pub(crate) enum PortRef {
    Number(i32),
    Name(String),
}

/// Why a backend cannot be served: an event reason (Ingress) and a message.
pub(crate) type Unresolved = (&'static str, String);

/// A resolved backend and why it cannot be served, if it cannot.
pub(crate) type Resolved = (Arc<Backend>, Option<Unresolved>);

/// Services, EndpointSlices and Secrets by `namespace/name`, and the backends resolved so far
/// in this build: the endpoint resolution the Ingress and Gateway API builds share.
pub(crate) struct Resolver<'a> {
    services: HashMap<String, &'a Service>,
    /// `namespace/service` → its slices.
    slices: HashMap<String, Vec<&'a EndpointSlice>>,
    secrets: HashMap<String, &'a Secret>,
    health: &'a HealthRegistry,
    /// Backends already resolved in this build: one `Arc` (one round-robin) per port, with
    /// the reason it cannot be served, if any.
    backends: HashMap<(String, String, PortRef), Resolved>,
}

struct Builder<'a> {
    r: Resolver<'a>,
    problems: Vec<Problem>,
}

/// Builds the tables from `inputs`; the oldest Ingress wins conflicting paths, hosts'
/// certificates and the default backend (as ingress-nginx decides).
pub fn build(inputs: Inputs<'_>, health: &HealthRegistry, certs: &mut CertCache) -> Built {
    build_with_gateway(inputs, None, health, certs)
}

/// [`build`] with the Gateway API objects too (`None` while their CRDs are not served).
/// Gateway listeners' certificates go in first, so they win a host an Ingress names too.
pub fn build_with_gateway(
    inputs: Inputs<'_>,
    gateway: Option<gateway::build::Inputs<'_>>,
    health: &HealthRegistry,
    certs: &mut CertCache,
) -> Built {
    let mut ingresses = inputs.ingresses;
    ingresses.sort_by(|a, b| {
        let created = |i: &Ingress| i.metadata.creation_timestamp.as_ref().map(|t| t.0);
        created(a)
            .cmp(&created(b))
            .then_with(|| ns_of(a).cmp(ns_of(b)))
            .then_with(|| a.metadata.name.cmp(&b.metadata.name))
    });
    let mut b = Builder {
        r: Resolver::new(inputs.services, inputs.slices, inputs.secrets, health),
        problems: Vec::new(),
    };
    let mut routes = RouteTable::default();
    let mut cert_table = CertTable::new(inputs.default_cert);
    certs.start_build();
    let (gateway, gateway_status) = match gateway {
        Some(g) => {
            let built = gateway::build::build(g, &mut b.r, &mut cert_table, certs);
            (built.table, Some(built.status))
        }
        None => (GatewayTable::default(), None),
    };
    for ing in &ingresses {
        b.add_rules(ing, &mut routes);
        b.add_tls(ing, &mut cert_table, certs);
    }
    certs.finish_build();
    Built {
        routes,
        certs: cert_table,
        problems: b.problems,
        gateway,
        gateway_status,
    }
}

impl<'a> Resolver<'a> {
    pub(crate) fn new(
        services: &'a [Arc<Service>],
        slices: &'a [Arc<EndpointSlice>],
        secrets: &'a [Arc<Secret>],
        health: &'a HealthRegistry,
    ) -> Self {
        let mut r = Resolver {
            services: services
                .iter()
                .map(|s| (key_of(&s.metadata), s.as_ref()))
                .collect(),
            slices: HashMap::new(),
            secrets: secrets
                .iter()
                .map(|s| (key_of(&s.metadata), s.as_ref()))
                .collect(),
            health,
            backends: HashMap::new(),
        };
        for s in slices {
            let svc = s
                .metadata
                .labels
                .as_ref()
                .and_then(|l| l.get(SERVICE_NAME_LABEL));
            if let Some(svc) = svc {
                let ns = s.metadata.namespace.as_deref().unwrap_or("default");
                r.slices.entry(key(ns, svc)).or_default().push(s.as_ref());
            }
        }
        r
    }

    pub(crate) fn service(&self, ns: &str, name: &str) -> Option<&'a Service> {
        self.services.get(&key(ns, name)).copied()
    }

    /// A `kubernetes.io/tls` Secret.
    pub(crate) fn secret(&self, ns: &str, name: &str) -> Option<&'a Secret> {
        self.secrets.get(&key(ns, name)).copied()
    }

    /// The backend of a Service port, resolved once per build; with why it cannot be served
    /// (it then has no endpoints: 503 for an Ingress).
    pub(crate) fn backend(&mut self, ns: &str, name: &str, port: &PortRef) -> Resolved {
        let k = (ns.to_string(), name.to_string(), port.clone());
        if let Some(existing) = self.backends.get(&k) {
            return existing.clone();
        }
        let (backend, problem) = self.resolve(ns, name, port);
        let entry = (Arc::new(backend), problem);
        self.backends.insert(k, entry.clone());
        entry
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
        let (backend, problem) = self.r.backend(ns_of(ing), &svc.name, &port);
        if let Some((reason, message)) = problem {
            self.problem(ing, reason, message);
        }
        Some(backend)
    }
}

impl Resolver<'_> {
    fn resolve(&self, ns: &str, name: &str, port: &PortRef) -> (Backend, Option<Unresolved>) {
        let label = match port {
            PortRef::Number(n) => format!("{ns}/{name}:{n}"),
            PortRef::Name(n) => format!("{ns}/{name}:{n}"),
        };
        let empty = |label: String| Backend::new(label, Protocol::Http1, Vec::new());
        let Some(service) = self.services.get(&key(ns, name)).copied() else {
            let why = ("MissingService", format!("Service {ns}/{name} not found"));
            return (empty(label), Some(why));
        };
        let spec = service.spec.as_ref();
        if spec.and_then(|s| s.type_.as_deref()) == Some("ExternalName") {
            let why = (
                "ExternalNameUnsupported",
                format!("Service {ns}/{name} is an ExternalName Service; not supported"),
            );
            return (empty(label), Some(why));
        }
        let sp = spec.and_then(|s| s.ports.as_ref()).and_then(|ports| {
            ports.iter().find(|p| match port {
                PortRef::Number(n) => p.port == *n,
                PortRef::Name(n) => p.name.as_deref() == Some(n.as_str()),
            })
        });
        let Some(sp) = sp else {
            let why = (
                "MissingServicePort",
                format!("Service {ns}/{name} has no port {}", label_port(port)),
            );
            return (empty(label), Some(why));
        };
        let endpoints = self
            .ready_endpoints(ns, name, sp)
            .into_iter()
            .map(|addr| Endpoint::new(addr, self.health.get(addr)))
            .collect();
        (Backend::new(label, protocol_of(sp), endpoints), None)
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
}

impl Builder<'_> {
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
            let Some(secret) = self.r.secret(&ns, secret_name) else {
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
