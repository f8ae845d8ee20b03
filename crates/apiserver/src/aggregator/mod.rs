//! API groups served by another component of this process, as kube-aggregator serves an
//! `APIService` by proxying to its Service: rkube's metrics server answers
//! `metrics.k8s.io` and `custom.metrics.k8s.io` this way, in-process. The API server
//! authenticates and authorizes the request (the same RequestInfo as for any group), lists
//! the group in discovery and OpenAPI, and hands the rest of the path to the service.
//!
//! Remote API services are kube-aggregator's proper: an `apiregistration.k8s.io/v1`
//! APIService with `spec.service` is checked by [`availability`] (which also keeps an
//! APIService for every group-version served here) and its requests proxied by [`proxy`]
//! to the extension API server, as the request-header user ([`crate::authn::requestheader`]).

use std::collections::HashMap;
use std::sync::Arc;

/// How a local API service makes its kinds' schemas.
use async_trait::async_trait;
use http::Method;
use serde_json::Value;

use crate::error::{ApiError, ApiResult};
use crate::resources::ResourceInfo;

mod availability;
pub mod discovery;
mod endpoint;
pub mod proxy;
pub mod remote;

pub use availability::start;

/// What a local API service is asked: the path below `/apis/<group>/<version>/`, parsed as
/// Kubernetes' RequestInfo parses it.
#[derive(Debug)]
pub struct ServiceRequest {
    pub method: Method,
    pub version: String,
    pub namespace: Option<String>,
    /// The resource (`pods`), or `*` in custom metrics' `/metrics/<name>` style paths.
    pub resource: String,
    /// The object's name, `*` for every object matching the selector (custom metrics).
    pub name: Option<String>,
    /// What follows the name (a custom metric's name).
    pub subresource: Vec<String>,
    pub query: HashMap<String, String>,
}

/// A group served in-process.
#[async_trait]
pub trait LocalApiService: Send + Sync {
    /// The group it serves.
    fn group(&self) -> &'static str;
    /// Its versions, preferred first.
    fn versions(&self) -> &'static [&'static str];
    /// The resources discovery lists (and routes reach it by), per version.
    fn resources(&self) -> Vec<ResourceInfo>;
    /// The resources of `version`'s discovery document, when they change at run time
    /// (custom metrics); `None`: those of [`LocalApiService::resources`].
    fn resource_list(&self, _version: &str) -> Option<Vec<Value>> {
        None
    }
    /// The OpenAPI schema of a kind it serves at `version` (`kubectl explain`), as
    /// `schemars::schema_for!` would make them (with `$defs`: [`crate::schemas::Table::with_defs`]);
    /// `None`: an object of unknown fields.
    fn schema(&self, _version: &str, _kind: &str) -> Option<Value> {
        None
    }
    /// A GET below the group-version (the only verb these groups serve).
    async fn get(&self, req: ServiceRequest) -> ApiResult<Value>;
}

/// The local services, looked up by group.
#[derive(Clone, Default)]
pub struct LocalServices(Vec<Arc<dyn LocalApiService>>);

impl std::fmt::Debug for LocalServices {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.0.iter().map(|s| s.group()))
            .finish()
    }
}

impl LocalServices {
    pub fn add(&mut self, service: Arc<dyn LocalApiService>) {
        self.0.push(service);
    }

    pub fn iter(&self) -> impl Iterator<Item = &Arc<dyn LocalApiService>> {
        self.0.iter()
    }

    /// The service of `group` serving `version`.
    pub fn find(&self, group: &str, version: &str) -> Option<&Arc<dyn LocalApiService>> {
        self.0
            .iter()
            .find(|s| s.group() == group && s.versions().contains(&version))
    }
}

/// The service answering below `group/version` and what it is asked: only GETs that are
/// not watches (these groups serve `get` and `list`).
pub fn request<'a>(
    services: &'a LocalServices,
    method: Method,
    (group, version): (&str, &str),
    rest: &[&str],
    query: HashMap<String, String>,
) -> ApiResult<(&'a Arc<dyn LocalApiService>, ServiceRequest)> {
    let service = services
        .find(group, version)
        .ok_or_else(ApiError::not_found_path)?;
    if method != Method::GET
        || common::params::query_bool(query.get("watch").map(String::as_str))
        || rest.first() == Some(&"watch")
    {
        return Err(ApiError::method_not_allowed());
    }
    let request = parse(method, version, rest, query).ok_or_else(ApiError::not_found_path)?;
    Ok((service, request))
}

/// Splits the path below `/apis/<group>/<version>` into a request (`None`: the path is the
/// group-version itself, whose discovery the API server answers).
pub fn parse(
    method: Method,
    version: &str,
    rest: &[&str],
    query: HashMap<String, String>,
) -> Option<ServiceRequest> {
    let rest: Vec<String> = rest
        .iter()
        .map(|s| common::query::unescape_path(s))
        .collect();
    let rest: Vec<&str> = rest.iter().map(String::as_str).collect();
    let (namespace, rest) = match rest.as_slice() {
        ["namespaces", ns, tail @ ..] if !tail.is_empty() => (Some(ns.to_string()), tail),
        all => (None, all),
    };
    let (resource, rest) = rest.split_first()?;
    let (name, subresource) = match rest.split_first() {
        Some((name, sub)) => (
            Some(name.to_string()),
            sub.iter().map(|s| s.to_string()).collect(),
        ),
        None => (None, Vec::new()),
    };
    Some(ServiceRequest {
        method,
        version: version.to_string(),
        namespace,
        resource: resource.to_string(),
        name,
        subresource,
        query,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_split_as_request_info_does() {
        let r = parse(
            Method::GET,
            "v1beta1",
            &["namespaces", "default", "pods", "web"],
            HashMap::new(),
        )
        .unwrap();
        assert_eq!(
            (
                r.namespace.as_deref(),
                r.resource.as_str(),
                r.name.as_deref()
            ),
            (Some("default"), "pods", Some("web"))
        );
        let r = parse(
            Method::GET,
            "v1beta2",
            &["namespaces", "default", "pods", "%2A", "qps"], // kubectl escapes `*`
            HashMap::new(),
        )
        .unwrap();
        assert_eq!(
            (r.name.as_deref(), r.subresource.as_slice()),
            (Some("*"), &["qps".to_string()][..])
        );
        let r = parse(Method::GET, "v1beta1", &["nodes"], HashMap::new()).unwrap();
        assert_eq!(
            (r.namespace, r.resource.as_str(), r.name),
            (None, "nodes", None)
        );
        // A namespace itself, as a resource of the group, is not namespaced.
        let r = parse(
            Method::GET,
            "v1beta2",
            &["namespaces", "default"],
            HashMap::new(),
        )
        .unwrap();
        assert_eq!(
            (r.resource.as_str(), r.name.as_deref()),
            ("namespaces", Some("default"))
        );
        assert!(parse(Method::GET, "v1beta1", &[], HashMap::new()).is_none());
    }
}
