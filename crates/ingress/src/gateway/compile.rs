//! An HTTPRoute or GRPCRoute compiled once per build: its rules' matches and filters (an
//! error drops the rule: `PartiallyInvalid`; the route is not accepted when no rule is
//! left), its backendRefs resolved to backends (errors make `ResolvedRefs` false and that
//! share of requests 500), and ReferenceGrants for cross-namespace refs.

use std::sync::Arc;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use super::build::ns_name;
use super::filters::{HeaderMod, Redirect, Rewrite};
use super::matching::Match;
use super::table::RuleAction;
use super::types::{
    GROUP, GRPCRoute, GRPCRouteMatch, GRPCRouteRule, HTTPBackendRef, HTTPRoute, HTTPRouteFilter,
    HTTPRouteRule, ObjectRef, ReferenceGrant,
};
use crate::backend::{Backend, Endpoint, Protocol};
use crate::build::{PortRef, Resolver};

pub(super) struct Grants<'a>(pub(super) &'a [Arc<ReferenceGrant>]);

impl Grants<'_> {
    pub(super) fn allows(
        &self,
        from_kind: &str,
        from_ns: &str,
        to_kind: &str,
        to_ns: &str,
        name: &str,
    ) -> bool {
        self.0.iter().any(|g| {
            g.metadata.namespace.as_deref() == Some(to_ns)
                && g.spec
                    .from
                    .iter()
                    .any(|f| f.group == GROUP && f.kind == from_kind && f.namespace == from_ns)
                && g.spec.to.iter().any(|t| {
                    t.group.is_empty()
                        && t.kind == to_kind
                        && t.name.as_deref().is_none_or(|n| n.is_empty() || n == name)
                })
        })
    }
}

pub(super) struct CompiledRule {
    /// The rule's index in `spec.rules` (the order of rules within a route).
    pub(super) index: usize,
    pub(super) matches: Vec<Match>,
    pub(super) action: Arc<RuleAction>,
}

/// A reason (for `Accepted=False`, or `ResolvedRefs=False` for a reference) and a message.
pub(super) type RuleError = (&'static str, String);

pub(super) struct CompiledRoute {
    /// The valid rules, served.
    pub(super) rules: Vec<CompiledRule>,
    /// The invalid rules, dropped: their index in `spec.rules` and why.
    pub(super) dropped: Vec<(usize, RuleError)>,
    /// The first reference of a served rule that does not resolve: `ResolvedRefs=False`.
    pub(super) unresolved: Option<RuleError>,
}

impl CompiledRoute {
    /// Err: no rule is valid (`Accepted=False` with the first rule's reason). Ok(Some):
    /// some rules were dropped, the message of upstream's `PartiallyInvalid` condition
    /// (its "Drop Rule(s)" approach: the message starts with "Dropped Rule").
    pub(super) fn verdict(&self) -> Result<Option<String>, RuleError> {
        match (self.rules.is_empty(), self.dropped.first()) {
            (_, None) => Ok(None),
            (true, Some((_, e))) => Err(e.clone()),
            (false, Some(_)) => Ok(Some(
                self.dropped
                    .iter()
                    .map(|(i, (_, msg))| format!("Dropped Rule {i}: {msg}"))
                    .collect::<Vec<_>>()
                    .join("; "),
            )),
        }
    }
}

pub(super) fn compile_route(
    route: &HTTPRoute,
    grants: &Grants<'_>,
    r: &mut Resolver<'_>,
) -> CompiledRoute {
    compile_rules(
        &route.metadata,
        &route.spec.rules,
        r,
        |rule, ns, key, r, u| compile_rule(rule, ns, key, grants, r, u),
    )
}

pub(super) fn compile_grpc_route(
    route: &GRPCRoute,
    grants: &Grants<'_>,
    r: &mut Resolver<'_>,
) -> CompiledRoute {
    compile_rules(
        &route.metadata,
        &route.spec.rules,
        r,
        |rule, ns, key, r, u| compile_grpc_rule(rule, ns, key, grants, r, u),
    )
}

type RuleCompiled = Result<(Vec<Match>, RuleAction), RuleError>;

/// Every rule of a route compiled by `one` (rule, route namespace, `namespace/name`,
/// resolver, the first unresolved reference): the valid ones kept, the others dropped.
fn compile_rules<'a, R>(
    meta: &ObjectMeta,
    rules: &[R],
    r: &mut Resolver<'a>,
    mut one: impl FnMut(&R, &str, &str, &mut Resolver<'a>, &mut Option<RuleError>) -> RuleCompiled,
) -> CompiledRoute {
    let (ns, name) = ns_name(meta);
    let key = format!("{ns}/{name}");
    let mut out = CompiledRoute {
        rules: Vec::new(),
        dropped: Vec::new(),
        unresolved: None,
    };
    for (index, rule) in rules.iter().enumerate() {
        // A dropped rule's references do not count for ResolvedRefs: it is not served.
        let mut unresolved = None;
        match one(rule, ns, &key, r, &mut unresolved) {
            Ok((matches, action)) => {
                if out.unresolved.is_none() {
                    out.unresolved = unresolved;
                }
                out.rules.push(CompiledRule {
                    index,
                    matches,
                    action: Arc::new(action),
                });
            }
            Err(e) => out.dropped.push((index, e)),
        }
    }
    out
}

/// The header modifiers, core filters of both route kinds: `Ok(true)` when `f` is one (the
/// first of each type counts), `Ok(false)` when it is another type.
fn header_filter(
    f: &HTTPRouteFilter,
    req_h: &mut Option<HeaderMod>,
    resp_h: &mut Option<HeaderMod>,
) -> Result<bool, RuleError> {
    let unsupported = |e: String| ("UnsupportedValue", e);
    let missing = || unsupported(format!("filter {} has no configuration", f.type_));
    let (config, into) = match f.type_.as_str() {
        "RequestHeaderModifier" => (&f.request_header_modifier, req_h),
        "ResponseHeaderModifier" => (&f.response_header_modifier, resp_h),
        _ => return Ok(false),
    };
    let c = config.as_ref().ok_or_else(missing)?;
    into.get_or_insert(HeaderMod::compile(c).map_err(unsupported)?);
    Ok(true)
}

/// A GRPCRoute rule: method and header matches, the two header modifiers (GRPCRoute's core
/// filters; RequestMirror and ExtensionRef are not supported), backends over HTTP/2.
fn compile_grpc_rule(
    rule: &GRPCRouteRule,
    ns: &str,
    route: &str,
    grants: &Grants<'_>,
    r: &mut Resolver<'_>,
    unresolved: &mut Option<RuleError>,
) -> RuleCompiled {
    let unsupported = |e: String| ("UnsupportedValue", e);
    let matches: Vec<Match> = if rule.matches.is_empty() {
        vec![Match::grpc(&GRPCRouteMatch::default()).map_err(unsupported)?]
    } else {
        rule.matches
            .iter()
            .map(Match::grpc)
            .collect::<Result<_, _>>()
            .map_err(unsupported)?
    };
    let (mut req_h, mut resp_h) = (None, None);
    for f in &rule.filters {
        if !header_filter(f, &mut req_h, &mut resp_h)? {
            return Err(unsupported(format!(
                "filter type {} is not supported",
                f.type_
            )));
        }
    }
    let backends = backend_refs(&rule.backend_refs, "GRPCRoute", ns, grants, r, unresolved)?
        .into_iter()
        .map(|(b, w)| (b.map(h2c), w))
        .collect();
    let action = RuleAction::new(route.to_string(), req_h, resp_h, None, None, backends);
    Ok((matches, action))
}

/// A GRPCRoute's backend speaks HTTP/2 with prior knowledge whatever its Service port's
/// `appProtocol` says (upstream lets an implementation infer the protocol from the route
/// type): gRPC needs HTTP/2.
fn h2c(b: Arc<Backend>) -> Arc<Backend> {
    if b.protocol == Protocol::H2c {
        return b;
    }
    let endpoints = b
        .endpoints
        .iter()
        .map(|e| Endpoint::new(e.addr, e.health.clone()))
        .collect();
    Arc::new(Backend::new(b.name.clone(), Protocol::H2c, endpoints))
}

/// A backendRef resolved (`None`: invalid) and its weight.
type WeightedBackend = (Option<Arc<Backend>>, u64);

/// A rule's backendRefs with their weights (`None`: an invalid ref, its share gets 500);
/// the first invalid ref in `unresolved`.
fn backend_refs(
    refs: &[HTTPBackendRef],
    from_kind: &str,
    ns: &str,
    grants: &Grants<'_>,
    r: &mut Resolver<'_>,
    unresolved: &mut Option<RuleError>,
) -> Result<Vec<WeightedBackend>, RuleError> {
    let mut backends = Vec::new();
    for b in refs {
        if !b.filters.is_empty() {
            return Err((
                "UnsupportedValue",
                "backendRefs[].filters are not supported".into(),
            ));
        }
        let weight = u64::try_from(b.weight.unwrap_or(1)).unwrap_or(0);
        match backend(&b.target, from_kind, ns, grants, r) {
            Ok(backend) => backends.push((Some(backend), weight)),
            Err(e) => {
                unresolved.get_or_insert(e);
                backends.push((None, weight));
            }
        }
    }
    Ok(backends)
}

fn compile_rule(
    rule: &HTTPRouteRule,
    ns: &str,
    route: &str,
    grants: &Grants<'_>,
    r: &mut Resolver<'_>,
    unresolved: &mut Option<RuleError>,
) -> RuleCompiled {
    let unsupported = |e: String| ("UnsupportedValue", e);
    let matches: Vec<Match> = if rule.matches.is_empty() {
        vec![Match::any()]
    } else {
        rule.matches
            .iter()
            .map(Match::compile)
            .collect::<Result<_, _>>()
            .map_err(unsupported)?
    };
    let (mut req_h, mut resp_h, mut redirect, mut rewrite) = (None, None, None, None);
    for f in &rule.filters {
        if header_filter(f, &mut req_h, &mut resp_h)? {
            continue;
        }
        let missing = || unsupported(format!("filter {} has no configuration", f.type_));
        match f.type_.as_str() {
            "RequestRedirect" => {
                let c = f.request_redirect.as_ref().ok_or_else(missing)?;
                redirect.get_or_insert(Redirect::compile(c).map_err(unsupported)?);
            }
            "URLRewrite" => {
                let c = f.url_rewrite.as_ref().ok_or_else(missing)?;
                rewrite.get_or_insert(Rewrite::compile(c).map_err(unsupported)?);
            }
            other => return Err(unsupported(format!("filter type {other} is not supported"))),
        }
    }
    if redirect.is_some() && rewrite.is_some() {
        return Err((
            "IncompatibleFilters",
            "RequestRedirect and URLRewrite in one rule".into(),
        ));
    }
    let prefix_mod = redirect
        .as_ref()
        .and_then(|r: &Redirect| r.path_mod())
        .is_some_and(|p| p.is_prefix())
        || rewrite
            .as_ref()
            .and_then(|r: &Rewrite| r.path.as_ref())
            .is_some_and(|p| p.is_prefix());
    if prefix_mod && matches.iter().any(|m| m.prefix().is_none()) {
        return Err(unsupported(
            "ReplacePrefixMatch needs PathPrefix matches only".into(),
        ));
    }
    let backends = backend_refs(&rule.backend_refs, "HTTPRoute", ns, grants, r, unresolved)?;
    let action = RuleAction::new(
        route.to_string(),
        req_h,
        resp_h,
        redirect,
        rewrite,
        backends,
    );
    Ok((matches, action))
}

fn backend(
    t: &ObjectRef,
    from_kind: &str,
    route_ns: &str,
    grants: &Grants<'_>,
    r: &mut Resolver<'_>,
) -> Result<Arc<Backend>, (&'static str, String)> {
    let (group, kind) = (
        t.group.as_deref().unwrap_or_default(),
        t.kind.as_deref().unwrap_or("Service"),
    );
    if !group.is_empty() || kind != "Service" {
        return Err((
            "InvalidKind",
            format!("backendRef kind {group}/{kind} is not supported"),
        ));
    }
    let ns = t.namespace.as_deref().unwrap_or(route_ns);
    if ns != route_ns && !grants.allows(from_kind, route_ns, "Service", ns, &t.name) {
        return Err((
            "RefNotPermitted",
            format!("no ReferenceGrant in {ns} allows Service {ns}/{}", t.name),
        ));
    }
    let Some(port) = t.port else {
        return Err((
            "BackendNotFound",
            format!("backendRef to Service {ns}/{} has no port", t.name),
        ));
    };
    if r.service(ns, &t.name).is_none() {
        return Err((
            "BackendNotFound",
            format!("Service {ns}/{} not found", t.name),
        ));
    }
    match r.backend(ns, &t.name, &PortRef::Number(port)) {
        (b, None) => Ok(b),
        (_, Some((_, msg))) => Err(("BackendNotFound", msg)),
    }
}
