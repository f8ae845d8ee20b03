//! One Gateway listener decided: protocol and port against the proxy's, allowed route kinds,
//! HTTPS certificates (installed in the certificate table), which namespaces may attach;
//! and the Gateway's and its listeners' conditions from those decisions.

use std::collections::HashMap;
use std::sync::Arc;

use k8s_openapi::api::core::v1::Namespace;

use super::build::{Inputs, ns_name};
use super::compile::Grants;
use super::hostname::Hostname;
use super::selector;
use super::status::{Cond, ListenerDesired};
use super::types::{GROUP, Gateway, Listener, ObjectRef, RouteGroupKind};
use crate::build::Resolver;
use crate::certs::CertCache;
use crate::tls::CertTable;

/// The route kinds served, in `supportedKinds` order: an HTTP or HTTPS listener takes both
/// unless its `allowedRoutes.kinds` says otherwise (gRPC is HTTP/2 on the same ports).
pub(super) const ROUTE_KINDS: [&str; 2] = ["HTTPRoute", "GRPCRoute"];

pub(super) fn route_kind(kind: &str) -> RouteGroupKind {
    RouteGroupKind {
        group: Some(GROUP.to_string()),
        kind: kind.to_string(),
    }
}

/// One listener as decided.
pub(super) struct ListenerState<'a> {
    pub(super) spec: &'a Listener,
    pub(super) tls: bool,
    pub(super) hostname: Option<Hostname>,
    /// `Accepted=False` reason and message.
    pub(super) not_accepted: Option<(&'static str, String)>,
    /// `ResolvedRefs=False` reason and message.
    pub(super) unresolved: Option<(&'static str, String)>,
    /// A usable certificate (HTTPS) or none needed.
    pub(super) cert_ok: bool,
    pub(super) kinds: Vec<RouteGroupKind>,
    pub(super) attached: i32,
    /// The hostnames of the routes accepted through it, with their kind (an HTTPRoute and
    /// a GRPCRoute may not share a hostname on one listener).
    pub(super) hosts: Vec<(&'static str, Option<Hostname>)>,
}

impl ListenerState<'_> {
    /// Routes are served through it.
    pub(super) fn serves(&self) -> bool {
        self.not_accepted.is_none() && self.cert_ok && !self.kinds.is_empty()
    }
}

pub(super) struct GatewayState<'a> {
    pub(super) gw: &'a Gateway,
    pub(super) listeners: Vec<ListenerState<'a>>,
}

/// ReferenceGrants: may an object of `from_kind` in `from_ns` refer to `to_kind` `name`
/// (core group) in `to_ns`?
pub(super) fn listener<'a>(
    gw: &Gateway,
    l: &'a Listener,
    inputs: &Inputs<'_>,
    grants: &Grants<'_>,
    r: &Resolver<'_>,
    certs: &mut CertTable,
    cache: &mut CertCache,
) -> ListenerState<'a> {
    let port_msg = |proto: &str, p: Option<u16>| match p {
        Some(p) => format!("the proxy serves {proto} on port {p} only"),
        None => format!("the proxy has no {proto} port"),
    };
    let (tls, not_accepted) = match l.protocol.as_str() {
        "HTTP" if inputs.http_port.is_some_and(|p| i32::from(p) == l.port) => (false, None),
        "HTTP" => (
            false,
            Some(("PortUnavailable", port_msg("HTTP", inputs.http_port))),
        ),
        "HTTPS" if inputs.https_port.is_none_or(|p| i32::from(p) != l.port) => (
            true,
            Some(("PortUnavailable", port_msg("HTTPS", inputs.https_port))),
        ),
        "HTTPS" => match l
            .tls
            .as_ref()
            .and_then(|t| t.mode.as_deref())
            .unwrap_or("Terminate")
        {
            "Terminate" => (true, None),
            m => (
                true,
                Some(("UnsupportedValue", format!("tls mode {m} is not supported"))),
            ),
        },
        p => (
            false,
            Some((
                "UnsupportedProtocol",
                format!("protocol {p} is not supported"),
            )),
        ),
    };
    let mut state = ListenerState {
        spec: l,
        tls,
        hostname: l
            .hostname
            .as_deref()
            .filter(|h| !h.is_empty())
            .map(Hostname::parse),
        not_accepted,
        unresolved: None,
        cert_ok: !tls,
        kinds: Vec::new(),
        attached: 0,
        hosts: Vec::new(),
    };
    if state.not_accepted.is_some() {
        return state;
    }
    let asked = l
        .allowed_routes
        .as_ref()
        .map(|a| a.kinds.as_slice())
        .unwrap_or_default();
    if asked.is_empty() {
        state.kinds = ROUTE_KINDS.map(route_kind).to_vec();
    } else {
        for k in asked {
            if k.group.as_deref().is_none_or(|g| g == GROUP)
                && ROUTE_KINDS.contains(&k.kind.as_str())
            {
                if !state.kinds.contains(&route_kind(&k.kind)) {
                    state.kinds.push(route_kind(&k.kind));
                }
            } else {
                state.unresolved = Some((
                    "InvalidRouteKinds",
                    format!("route kind {} is not supported", k.kind),
                ));
            }
        }
    }
    if tls {
        let (gns, _) = ns_name(&gw.metadata);
        let refs = l
            .tls
            .as_ref()
            .map(|t| t.certificate_refs.as_slice())
            .unwrap_or_default();
        if refs.is_empty() {
            state.unresolved = Some(("InvalidCertificateRef", "no certificateRefs".into()));
        }
        for c in refs {
            match certificate(c, gns, grants, r, cache) {
                Ok(cert) => {
                    certs.insert_gateway(state.hostname.as_ref(), cert);
                    state.cert_ok = true;
                }
                Err(e) => state.unresolved = Some(e),
            }
        }
    }
    state
}

fn certificate(
    c: &ObjectRef,
    gns: &str,
    grants: &Grants<'_>,
    r: &Resolver<'_>,
    cache: &mut CertCache,
) -> Result<Arc<rustls::sign::CertifiedKey>, (&'static str, String)> {
    if !c.group.as_deref().unwrap_or_default().is_empty()
        || c.kind.as_deref().unwrap_or("Secret") != "Secret"
    {
        return Err((
            "InvalidCertificateRef",
            format!(
                "certificateRef {}/{} is not a Secret",
                c.kind.as_deref().unwrap_or_default(),
                c.name
            ),
        ));
    }
    let ns = c.namespace.as_deref().unwrap_or(gns);
    if ns != gns && !grants.allows("Gateway", gns, "Secret", ns, &c.name) {
        return Err((
            "RefNotPermitted",
            format!("no ReferenceGrant in {ns} allows Secret {ns}/{}", c.name),
        ));
    }
    let secret = r.secret(ns, &c.name).ok_or_else(|| {
        (
            "InvalidCertificateRef",
            format!(
                "Secret {ns}/{} not found (or not of type kubernetes.io/tls)",
                c.name
            ),
        )
    })?;
    cache.get(secret).map_err(|e| {
        (
            "InvalidCertificateRef",
            format!("Secret {ns}/{}: {e}", c.name),
        )
    })
}

pub(super) fn namespace_allowed(
    l: &Listener,
    gw_ns: &str,
    route_ns: &str,
    labels: &HashMap<&str, &Namespace>,
) -> bool {
    let ns = l
        .allowed_routes
        .as_ref()
        .and_then(|a| a.namespaces.as_ref());
    match ns.and_then(|n| n.from.as_deref()).unwrap_or("Same") {
        "All" => true,
        "Same" => gw_ns == route_ns,
        "Selector" => {
            let sel = ns.and_then(|n| n.selector.as_ref());
            let l = labels
                .get(route_ns)
                .and_then(|n| n.metadata.labels.as_ref());
            sel.is_some_and(|s| selector::matches(s, l))
        }
        _ => false,
    }
}

pub(super) fn gateway_status(
    s: &GatewayState<'_>,
    has_addresses: bool,
) -> (String, Vec<Cond>, Vec<ListenerDesired>) {
    let (ns, name) = ns_name(&s.gw.metadata);
    let mut listeners = Vec::new();
    for l in &s.listeners {
        let mut conds = Vec::new();
        conds.push(match &l.not_accepted {
            Some((reason, msg)) => Cond::new("Accepted", false, reason, msg.clone()),
            None => Cond::new("Accepted", true, "Accepted", "accepted"),
        });
        conds.push(if l.serves() {
            Cond::new("Programmed", true, "Programmed", "programmed")
        } else {
            Cond::new("Programmed", false, "Invalid", "the listener is not served")
        });
        conds.push(match &l.unresolved {
            Some((reason, msg)) => Cond::new("ResolvedRefs", false, reason, msg.clone()),
            None => Cond::new(
                "ResolvedRefs",
                true,
                "ResolvedRefs",
                "all references resolved",
            ),
        });
        conds.push(Cond::new(
            "Conflicted",
            false,
            "NoConflicts",
            "no conflicts",
        ));
        listeners.push(ListenerDesired {
            name: l.spec.name.clone(),
            supported_kinds: if l.not_accepted.is_none() {
                l.kinds.clone()
            } else {
                Vec::new()
            },
            attached: l.attached,
            conditions: conds,
        });
    }
    let valid = s
        .listeners
        .iter()
        .filter(|l| l.not_accepted.is_none())
        .count();
    let accepted = if valid == s.listeners.len() {
        Cond::new("Accepted", true, "Accepted", "accepted")
    } else if valid > 0 {
        Cond::new(
            "Accepted",
            true,
            "ListenersNotValid",
            "some listeners are not valid",
        )
    } else {
        Cond::new(
            "Accepted",
            false,
            "ListenersNotValid",
            "no listener is valid",
        )
    };
    let programmed = if !has_addresses {
        Cond::new(
            "Programmed",
            false,
            "AddressNotAssigned",
            "the node has no address to publish",
        )
    } else if s.listeners.iter().any(ListenerState::serves) {
        Cond::new("Programmed", true, "Programmed", "programmed")
    } else {
        Cond::new("Programmed", false, "Invalid", "no listener is served")
    };
    (
        format!("{ns}/{name}"),
        vec![accepted, programmed],
        listeners,
    )
}
