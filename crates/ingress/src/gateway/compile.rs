//! An HTTPRoute compiled once per build: its rules' matches and filters (errors make the
//! route not accepted), its backendRefs resolved to backends (errors make `ResolvedRefs`
//! false and that share of requests 500), and ReferenceGrants for cross-namespace refs.

use std::sync::Arc;

use super::build::ns_name;
use super::filters::{HeaderMod, Redirect, Rewrite};
use super::matching::Match;
use super::table::RuleAction;
use super::types::{GROUP, HTTPRoute, HTTPRouteRule, ObjectRef, ReferenceGrant};
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
    pub(super) matches: Vec<Match>,
    pub(super) action: Arc<RuleAction>,
}

pub(super) struct CompiledRoute {
    /// Err: `Accepted=False` (reason, message).
    pub(super) rules: Result<Vec<CompiledRule>, (&'static str, String)>,
    /// The first reference that does not resolve: `ResolvedRefs=False`.
    pub(super) unresolved: Option<(&'static str, String)>,
}

pub(super) fn compile_route(
    route: &HTTPRoute,
    grants: &Grants<'_>,
    r: &mut Resolver<'_>,
) -> CompiledRoute {
    let (ns, name) = ns_name(&route.metadata);
    let mut unresolved = None;
    let mut rules = Vec::new();
    for rule in &route.spec.rules {
        match compile_rule(
            rule,
            ns,
            &format!("{ns}/{name}"),
            grants,
            r,
            &mut unresolved,
        ) {
            Ok(c) => rules.push(c),
            Err(e) => {
                return CompiledRoute {
                    rules: Err(e),
                    unresolved,
                };
            }
        }
    }
    CompiledRoute {
        rules: Ok(rules),
        unresolved,
    }
}

fn compile_rule(
    rule: &HTTPRouteRule,
    ns: &str,
    route: &str,
    grants: &Grants<'_>,
    r: &mut Resolver<'_>,
    unresolved: &mut Option<(&'static str, String)>,
) -> Result<CompiledRule, (&'static str, String)> {
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
        let missing = || unsupported(format!("filter {} has no configuration", f.type_));
        match f.type_.as_str() {
            "RequestHeaderModifier" => {
                let c = f.request_header_modifier.as_ref().ok_or_else(missing)?;
                req_h.get_or_insert(HeaderMod::compile(c).map_err(unsupported)?);
            }
            "ResponseHeaderModifier" => {
                let c = f.response_header_modifier.as_ref().ok_or_else(missing)?;
                resp_h.get_or_insert(HeaderMod::compile(c).map_err(unsupported)?);
            }
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
    let mut backends = Vec::new();
    for b in &rule.backend_refs {
        if !b.filters.is_empty() {
            return Err(unsupported(
                "backendRefs[].filters are not supported".into(),
            ));
        }
        let weight = u64::try_from(b.weight.unwrap_or(1)).unwrap_or(0);
        match backend(&b.target, ns, grants, r) {
            Ok(backend) => backends.push((Some(backend), weight)),
            Err(e) => {
                unresolved.get_or_insert(e);
                backends.push((None, weight));
            }
        }
    }
    let action = RuleAction::new(
        route.to_string(),
        req_h,
        resp_h,
        redirect,
        rewrite,
        backends,
    );
    Ok(CompiledRule {
        matches,
        action: Arc::new(action),
    })
}

fn backend(
    t: &ObjectRef,
    route_ns: &str,
    grants: &Grants<'_>,
    r: &mut Resolver<'_>,
) -> Result<Arc<crate::backend::Backend>, (&'static str, String)> {
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
    if ns != route_ns && !grants.allows("HTTPRoute", route_ns, "Service", ns, &t.name) {
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
