//! GatewayClasses, Gateways, HTTPRoutes, GRPCRoutes and ReferenceGrants → the Gateway
//! routing table, listener certificates and the statuses to publish. Pure apart from the
//! certificate cache; backends resolve through the Ingress build's [`Resolver`] (same
//! endpoints, same pools).

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;

use k8s_openapi::api::core::v1::Namespace;

use super::compile::{Grants, compile_grpc_route, compile_route};
use super::hostname::{self, Hostname};
use super::listener::{GatewayState, gateway_status, listener, namespace_allowed, route_kind};
use super::status::{Cond, Desired};
use super::table::GatewayTable;
use super::types::{GROUP, GRPCRoute, Gateway, GatewayClass, HTTPRoute, ObjectRef, ReferenceGrant};
use crate::build::Resolver;
use crate::certs::CertCache;
use crate::tls::CertTable;

pub struct Inputs<'a> {
    pub classes: &'a [Arc<GatewayClass>],
    pub gateways: &'a [Arc<Gateway>],
    pub routes: &'a RouteLists,
    pub grants: &'a [Arc<ReferenceGrant>],
    pub namespaces: &'a [Arc<Namespace>],
    /// `spec.controllerName` of the classes served.
    pub controller: &'a str,
    /// The proxy's ports: HTTP listeners must name the first, HTTPS ones the second.
    pub http_port: Option<u16>,
    pub https_port: Option<u16>,
    /// Whether there are node addresses to publish (else Programmed is False).
    pub has_addresses: bool,
}

/// The routes of every kind served.
#[derive(Clone, Debug, Default)]
pub struct RouteLists {
    pub http: Vec<Arc<HTTPRoute>>,
    pub grpc: Vec<Arc<GRPCRoute>>,
}

/// A route of either kind.
#[derive(Clone, Copy)]
enum AnyRoute<'a> {
    Http(&'a HTTPRoute),
    Grpc(&'a GRPCRoute),
}

impl<'a> AnyRoute<'a> {
    fn kind(self) -> &'static str {
        match self {
            AnyRoute::Http(_) => "HTTPRoute",
            AnyRoute::Grpc(_) => "GRPCRoute",
        }
    }

    fn meta(self) -> &'a k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
        match self {
            AnyRoute::Http(r) => &r.metadata,
            AnyRoute::Grpc(r) => &r.metadata,
        }
    }

    fn parent_refs(self) -> &'a [ObjectRef] {
        match self {
            AnyRoute::Http(r) => &r.spec.parent_refs,
            AnyRoute::Grpc(r) => &r.spec.parent_refs,
        }
    }

    fn hostnames(self) -> &'a [String] {
        match self {
            AnyRoute::Http(r) => &r.spec.hostnames,
            AnyRoute::Grpc(r) => &r.spec.hostnames,
        }
    }
}

pub struct Built {
    pub table: GatewayTable,
    pub status: Desired,
}

pub(super) fn ns_name(
    m: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
) -> (&str, &str) {
    (
        m.namespace.as_deref().unwrap_or("default"),
        m.name.as_deref().unwrap_or_default(),
    )
}

pub(super) fn created(
    m: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
) -> Option<i64> {
    m.creation_timestamp.as_ref().map(|t| t.0.as_second())
}

pub(crate) fn build(
    inputs: Inputs<'_>,
    r: &mut Resolver<'_>,
    certs: &mut CertTable,
    cache: &mut CertCache,
) -> Built {
    let mut status = Desired::default();
    let ours: BTreeSet<&str> = inputs
        .classes
        .iter()
        .filter(|c| c.spec.controller_name == inputs.controller)
        .filter_map(|c| c.metadata.name.as_deref())
        .collect();
    for c in inputs
        .classes
        .iter()
        .filter(|c| c.spec.controller_name == inputs.controller)
    {
        let name = c.metadata.name.clone().unwrap_or_default();
        let accepted = Cond::new(
            "Accepted",
            true,
            "Accepted",
            "served by rkube's ingress proxy",
        );
        status.classes.push((name, vec![accepted]));
    }
    let grants = Grants(inputs.grants);
    // Oldest first: the oldest Gateway's certificate wins a hostname.
    let mut gateways: Vec<&Gateway> = inputs
        .gateways
        .iter()
        .map(Arc::as_ref)
        .filter(|g| ours.contains(g.spec.gateway_class_name.as_str()))
        .collect();
    gateways.sort_by(|a, b| {
        (created(&a.metadata), ns_name(&a.metadata))
            .cmp(&(created(&b.metadata), ns_name(&b.metadata)))
    });
    let mut states: Vec<GatewayState<'_>> = gateways
        .iter()
        .map(|gw| GatewayState {
            gw,
            listeners: gw
                .spec
                .listeners
                .iter()
                .map(|l| listener(gw, l, &inputs, &grants, r, certs, cache))
                .collect(),
        })
        .collect();
    let by_key: HashMap<(String, String), usize> = states
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let (ns, name) = ns_name(&s.gw.metadata);
            ((ns.to_string(), name.to_string()), i)
        })
        .collect();
    let ns_labels: HashMap<&str, &Namespace> = inputs
        .namespaces
        .iter()
        .filter_map(|n| Some((n.metadata.name.as_deref()?, n.as_ref())))
        .collect();

    let mut table = GatewayTable::default();
    // Both kinds in one order, oldest first: of an HTTPRoute and a GRPCRoute sharing a
    // hostname on a listener, the older is accepted there (the spec's rule), and the older
    // of two routes wins a tie in the table.
    let mut routes: Vec<AnyRoute<'_>> = inputs
        .routes
        .http
        .iter()
        .map(|r| AnyRoute::Http(r.as_ref()))
        .chain(
            inputs
                .routes
                .grpc
                .iter()
                .map(|r| AnyRoute::Grpc(r.as_ref())),
        )
        .collect();
    routes.sort_by(|a, b| {
        (created(a.meta()), ns_name(a.meta()), a.kind()).cmp(&(
            created(b.meta()),
            ns_name(b.meta()),
            b.kind(),
        ))
    });
    for route in routes {
        let rkind = route.kind();
        let (rns, rname) = ns_name(route.meta());
        let key = format!("{rns}/{rname}");
        let compiled = match route {
            AnyRoute::Http(h) => compile_route(h, &grants, r),
            AnyRoute::Grpc(g) => compile_grpc_route(g, &grants, r),
        };
        let verdict = compiled.verdict();
        let route_hosts: Vec<Hostname> = route
            .hostnames()
            .iter()
            .map(|h| Hostname::parse(h))
            .collect();
        let mut parents = Vec::new();
        let mut inserted: HashSet<(usize, usize)> = HashSet::new();
        for parent in route.parent_refs() {
            let group = parent.group.as_deref().unwrap_or(GROUP);
            let kind = parent.kind.as_deref().unwrap_or("Gateway");
            if group != GROUP || kind != "Gateway" {
                continue;
            }
            let pns = parent.namespace.as_deref().unwrap_or(rns);
            let Some(&gi) = by_key.get(&(pns.to_string(), parent.name.clone())) else {
                continue; // not one of ours: another controller reports it
            };
            let gw_ns = ns_name(&states[gi].gw.metadata).0.to_string();
            let candidates: Vec<usize> = states[gi]
                .listeners
                .iter()
                .enumerate()
                .filter(|(_, l)| {
                    parent
                        .section_name
                        .as_ref()
                        .is_none_or(|s| *s == l.spec.name)
                })
                .filter(|(_, l)| parent.port.is_none_or(|p| p == l.spec.port))
                .map(|(i, _)| i)
                .collect();
            let allowed: Vec<usize> = candidates
                .iter()
                .copied()
                .filter(|&i| {
                    let l = &states[gi].listeners[i];
                    l.kinds.contains(&route_kind(rkind))
                        && namespace_allowed(l.spec, &gw_ns, rns, &ns_labels)
                })
                .collect();
            let attached: Vec<(usize, Vec<Option<Hostname>>)> = allowed
                .iter()
                .map(|&i| {
                    (
                        i,
                        hostname::intersect(
                            states[gi].listeners[i].hostname.as_ref(),
                            &route_hosts,
                        ),
                    )
                })
                .filter(|(_, hosts)| !hosts.is_empty())
                .collect();
            // Listeners where an older route of the other kind shares a hostname.
            let (attached, conflicted): (Vec<_>, Vec<_>) =
                attached.into_iter().partition(|(i, hosts)| {
                    !states[gi].listeners[*i].hosts.iter().any(|(k, h)| {
                        *k != rkind
                            && hosts
                                .iter()
                                .any(|x| hostname::overlap(x.as_ref(), h.as_ref()))
                    })
                });
            let accepted = if candidates.is_empty() {
                Cond::new(
                    "Accepted",
                    false,
                    "NoMatchingParent",
                    "no listener matches the parentRef's sectionName and port",
                )
            } else if allowed.is_empty() {
                Cond::new(
                    "Accepted",
                    false,
                    "NotAllowedByListeners",
                    "no listener allows this route (namespace or kind)",
                )
            } else if attached.is_empty() && conflicted.is_empty() {
                Cond::new(
                    "Accepted",
                    false,
                    "NoMatchingListenerHostname",
                    "no listener hostname intersects the route's hostnames",
                )
            } else if let Err((reason, msg)) = &verdict {
                Cond::new("Accepted", false, reason, msg.clone())
            } else if attached.is_empty() {
                Cond::new(
                    "Accepted",
                    false,
                    "HostnameConflict",
                    "an older route of the other kind (HTTPRoute, GRPCRoute) has an \
                     intersecting hostname on every listener",
                )
            } else {
                Cond::new("Accepted", true, "Accepted", "accepted")
            };
            let resolved = match &compiled.unresolved {
                Some((reason, msg)) => Cond::new("ResolvedRefs", false, reason, msg.clone()),
                None => Cond::new(
                    "ResolvedRefs",
                    true,
                    "ResolvedRefs",
                    "all references resolved",
                ),
            };
            // Only on an accepted route, and only True (upstream: never set when the route
            // is fully valid, fully invalid or not accepted).
            let partially = match &verdict {
                Ok(Some(msg)) if accepted.status => Some(Cond::new(
                    "PartiallyInvalid",
                    true,
                    "UnsupportedValue",
                    msg.clone(),
                )),
                _ => None,
            };
            if accepted.status {
                for (li, hosts) in attached {
                    let l = &mut states[gi].listeners[li];
                    l.attached += 1;
                    l.hosts.extend(hosts.iter().map(|h| (rkind, h.clone())));
                    if !l.serves() || !inserted.insert((gi, li)) {
                        continue;
                    }
                    for host in &hosts {
                        for rule in &compiled.rules {
                            for (mi, m) in rule.matches.iter().enumerate() {
                                let order =
                                    (m.rank(), created(route.meta()), key.clone(), rule.index, mi);
                                table.insert(
                                    l.tls,
                                    l.hostname.as_ref(),
                                    host.as_ref(),
                                    order,
                                    m.clone(),
                                    rule.action.clone(),
                                );
                            }
                        }
                    }
                }
            }
            let mut conds = vec![accepted, resolved];
            conds.extend(partially);
            parents.push((parent.clone(), conds));
        }
        match route {
            AnyRoute::Http(_) => status.routes.push((key, parents)),
            AnyRoute::Grpc(_) => status.grpc_routes.push((key, parents)),
        }
    }
    table.finish();
    for s in &states {
        status
            .gateways
            .push(gateway_status(s, inputs.has_addresses));
    }
    Built { table, status }
}

/// Decides one listener; installs its certificate when it is a usable HTTPS one.
#[cfg(test)]
#[path = "build_tests.rs"]
mod tests;
