//! Which handler a path goes to: the fixed paths (health, version, metrics, discovery,
//! OpenAPI), a resource as Kubernetes' RequestInfo parses it (group, version, namespace,
//! resource, name, subresource; the kind from the catalog), or a local or remote API
//! service.

use crate::resources::{Catalog, ResourceInfo};

/// The parts of a resource URL (Kubernetes' RequestInfo).
pub(super) struct Target<'a> {
    pub(super) info: &'a ResourceInfo,
    pub(super) namespace: Option<String>,
    pub(super) name: Option<String>,
    pub(super) subresource: Option<String>,
    pub(super) watch_path: bool,
}

pub(super) enum Route<'a> {
    Healthz,
    Version,
    Metrics,
    CoreVersions,
    Groups,
    Group(String),
    ResourceList(String, String),
    OpenApiV2,
    OpenApiV3Index,
    OpenApiV3Doc(String),
    Resource(Target<'a>),
    /// At or below a group-version a remote APIService proxies.
    Remote(crate::aggregator::remote::Remote),
    /// Below a group-version a local API service answers.
    Local {
        group: String,
        version: String,
        rest: Vec<String>,
    },
}

pub(super) fn route<'a>(catalog: &'a Catalog, path: &str) -> Option<Route<'a>> {
    let path = path.trim_end_matches('/');
    match path {
        "/healthz" | "/livez" | "/readyz" => return Some(Route::Healthz),
        "/version" => return Some(Route::Version),
        "/metrics" => return Some(Route::Metrics),
        "/api" => return Some(Route::CoreVersions),
        "/apis" => return Some(Route::Groups),
        "/openapi/v2" => return Some(Route::OpenApiV2),
        "/openapi/v3" => return Some(Route::OpenApiV3Index),
        _ => {}
    }
    if path.starts_with("/healthz/") || path.starts_with("/livez/") || path.starts_with("/readyz/")
    {
        return Some(Route::Healthz);
    }
    if let Some(rest) = path.strip_prefix("/openapi/v3/") {
        return Some(Route::OpenApiV3Doc(rest.to_string()));
    }
    let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let (group, version, rest) = match parts.as_slice() {
        ["api", v, rest @ ..] => ("", *v, rest),
        ["apis", g] => return Some(Route::Group(g.to_string())),
        ["apis", g, v, rest @ ..] => (*g, *v, rest),
        _ => return None,
    };
    if !catalog.has_version(group, version) {
        // A group-version served here wins over an APIService claiming it.
        return catalog.remote.find(group, version).map(Route::Remote);
    }
    if rest.is_empty() {
        return Some(Route::ResourceList(group.into(), version.into()));
    }
    if catalog.is_local(group, version) {
        return Some(Route::Local {
            group: group.into(),
            version: version.into(),
            rest: rest.iter().map(|s| s.to_string()).collect(),
        });
    }
    let mut rest: Vec<&str> = rest.to_vec();
    let watch_path = rest.first() == Some(&"watch");
    if watch_path {
        rest.remove(0);
    }
    let mut namespace = None;
    if rest.first() == Some(&"namespaces") && rest.len() > 1 {
        namespace = Some(rest[1].to_string());
        if rest.len() > 2 && !matches!(rest[2], "status" | "finalize") {
            rest.drain(..2);
        }
    }
    let info = catalog.find(group, version, rest.first()?)?;
    let name = rest.get(1).map(|s| s.to_string());
    let subresource = rest.get(2).map(|s| s.to_string());
    // Only a proxy subresource takes a path of its own (`pods/web/proxy/a/b`).
    if rest.len() > 3 && subresource.as_deref() != Some("proxy") {
        return None;
    }
    if let Some(sub) = &subresource
        && !info.has_subresource(sub)
    {
        return None;
    }
    // A cluster-scoped resource has no namespace (for `namespaces/<name>` the name is it).
    let namespace = if info.namespaced { namespace } else { None };
    Some(Route::Resource(Target {
        info,
        namespace,
        name,
        subresource,
        watch_path,
    }))
}
