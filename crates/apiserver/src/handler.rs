//! Request handling: authentication, routing (as Kubernetes' RequestInfo parses paths),
//! content negotiation, and the REST verbs on top of the generic registry.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use common::params::query_bool;
use futures::StreamExt;
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full, Limited, StreamBody, combinators::BoxBody};
use hyper::body::{Frame, Incoming};
use serde_json::{Value, json};

use crate::authn::UserInfo as User;
use crate::discovery;
use crate::error::{ApiError, ApiResult};
use crate::meta;
use crate::openapi;
use crate::registry::{
    DeleteOptions, ListQuery, Patch, PatchKind, Registry, RequestContext, WatchEvent, WriteOptions,
};
use crate::resources::{Catalog, ResourceInfo};
use crate::selector::{FieldSelector, LabelSelector};
use crate::strategy;
use crate::table::{self, IncludeObject};

pub type Body = BoxBody<Bytes, Infallible>;

/// Largest request body accepted (Kubernetes' limit is 3 MiB for JSON).
const MAX_BODY: usize = 3 * 1024 * 1024;

const SYSTEM_NAMESPACES: [&str; 4] = ["default", "kube-system", "kube-public", "kube-node-lease"];

pub struct ApiState {
    pub registry: Arc<Registry>,
    /// The admission chain, handed to the registry with every write.
    pub admission: Arc<crate::admission::Chain>,
    /// Node, then RBAC; `None`: every authenticated request is allowed (benchmarks measure
    /// the difference).
    pub authorizer: Option<Arc<crate::authz::Authorizer>>,
    pub authenticator: crate::authn::Authenticator,
    pub catalog: Catalog,
    pub server_address: String,
    pub metrics: crate::metrics::Metrics,
    /// How `pods/log` reaches kubelets; `None`: it cannot.
    pub kubelet: Option<crate::kubelet_client::KubeletClient>,
    /// Dials pod addresses (the proxy subresources) from the pods' network namespace, when
    /// it is not the server's own.
    pub pod_dialer: Option<Arc<streaming::NetnsDialer>>,
    /// The audit log (`--audit-policy-file`); `None`: only the `Audit-Id` header is set.
    pub audit: Option<Arc<crate::audit::Auditor>>,
    /// Groups other components of this process serve (the metrics APIs).
    pub services: crate::aggregator::LocalServices,
}

impl ApiState {
    /// The state over `registry`, with the admission plugins `disabled_admission` off.
    pub fn new(
        registry: Registry,
        server_address: String,
        disabled_admission: std::collections::HashSet<String>,
    ) -> Self {
        let registry = Arc::new(registry);
        ApiState {
            admission: Arc::new(crate::admission::Chain::new(
                registry.clone(),
                disabled_admission,
            )),
            registry,
            authorizer: None,
            authenticator: Default::default(),
            catalog: Catalog::new(),
            server_address,
            metrics: Default::default(),
            kubelet: None,
            pod_dialer: None,
            audit: None,
            services: Default::default(),
        }
    }

    /// The server's own writes (bootstrap, reconcilers): no user, the full admission chain.
    fn internal(&self) -> RequestContext<'_> {
        RequestContext::internal(&*self.admission)
    }
}

/// Creates the namespaces every cluster has.
pub async fn bootstrap(state: &ApiState) -> ApiResult<()> {
    let ns = crate::resources::namespace_info();
    for name in SYSTEM_NAMESPACES {
        let obj = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}});
        match state
            .registry
            .create(&ns, None, obj, WriteOptions::new(state.internal()))
            .await
        {
            Ok(_) => tracing::info!(namespace = name, "created namespace"),
            Err(e) if e.code == 409 => {}
            Err(e) => return Err(e),
        }
    }
    // The system PriorityClasses.
    let pc = crate::resources::priority_class_info();
    for (name, value, description) in crate::admission::priority::SYSTEM_CLASSES {
        let obj = json!({"apiVersion": "scheduling.k8s.io/v1", "kind": "PriorityClass",
            "metadata": {"name": name}, "value": value, "description": description});
        match state
            .registry
            .create(&pc, None, obj, WriteOptions::new(state.internal()))
            .await
        {
            Ok(_) | Err(ApiError { code: 409, .. }) => {}
            Err(e) => return Err(e),
        }
    }
    crate::authz::bootstrap_policy::reconcile(&state.registry, state.internal()).await?;
    // The `kubernetes` Service, at the first address of the Service range.
    let svc = crate::resources::service_info();
    let kubernetes = json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "kubernetes", "namespace": "default", "labels": {"component": "apiserver", "provider": "kubernetes"}},
        "spec": {
            "clusterIP": crate::service_alloc::KUBERNETES_SERVICE_IP.to_string(),
            "ports": [{"name": "https", "port": 443, "protocol": "TCP", "targetPort": 6443}],
        },
    });
    create_if_missing(state, &svc, "default", "kubernetes", kubernetes).await?;
    Ok(())
}

async fn create_if_missing(
    state: &ApiState,
    info: &crate::resources::ResourceInfo,
    namespace: &str,
    name: &str,
    obj: Value,
) -> ApiResult<()> {
    match state.registry.get(info, Some(namespace), name).await {
        Ok(_) => Ok(()),
        Err(e) if e.code == 404 => {
            match state
                .registry
                .create(
                    info,
                    Some(namespace),
                    obj,
                    WriteOptions::new(state.internal()),
                )
                .await
            {
                Ok(_) | Err(ApiError { code: 409, .. }) => {}
                Err(e) => return Err(e),
            }
            tracing::info!(namespace, name, "created {}", info.kind);
            Ok(())
        }
        Err(e) => Err(e),
    }
}

/// Publishes `kube-public/cluster-info` (the server's URL and CA, as kubeadm does), readable
/// by anyone: a joining node reads it and checks the CA against the hash in its token.
pub async fn publish_cluster_info(state: &ApiState, server: &str, ca_pem: &str) -> ApiResult<()> {
    use base64::Engine;
    let kubeconfig = format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: \"\"\n  cluster:\n    certificate-authority-data: {}\n    server: {server}\ncontexts: null\ncurrent-context: \"\"\npreferences: {{}}\nusers: null\n",
        base64::engine::general_purpose::STANDARD.encode(ca_pem)
    );
    let catalog = crate::resources::Catalog::new();
    let cm = catalog
        .by_kind("", "ConfigMap")
        .ok_or_else(|| ApiError::internal("no ConfigMap resource"))?;
    let data = json!({"kubeconfig": kubeconfig});
    match state
        .registry
        .get(cm, Some("kube-public"), "cluster-info")
        .await
    {
        Ok(live) if live.get("data") == Some(&data) => {}
        Ok(_) => {
            state
                .registry
                .update_with(
                    state.internal(),
                    cm,
                    Some("kube-public"),
                    "cluster-info",
                    None,
                    |old| {
                        let mut new = old.clone();
                        new["data"] = data.clone();
                        Ok(new)
                    },
                )
                .await?;
        }
        Err(e) if e.code == 404 => {
            let obj = json!({"apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": "cluster-info", "namespace": "kube-public"}, "data": data});
            create_if_missing(state, cm, "kube-public", "cluster-info", obj).await?;
        }
        Err(e) => return Err(e),
    }
    let (Some(role), Some(binding)) = (
        catalog.by_kind("rbac.authorization.k8s.io", "Role"),
        catalog.by_kind("rbac.authorization.k8s.io", "RoleBinding"),
    ) else {
        return Ok(());
    };
    let name = "rkube:bootstrap-signer-clusterinfo";
    let role_obj = json!({
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
        "metadata": {"name": name, "namespace": "kube-public"},
        "rules": [{"verbs": ["get"], "apiGroups": [""], "resources": ["configmaps"], "resourceNames": ["cluster-info"]}],
    });
    create_if_missing(state, role, "kube-public", name, role_obj).await?;
    let binding_obj = json!({
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
        "metadata": {"name": name, "namespace": "kube-public"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "system:anonymous"}],
    });
    create_if_missing(state, binding, "kube-public", name, binding_obj).await
}

/// Points the `kubernetes` Service at this API server (Kubernetes' endpoint reconciler, for
/// one server): the Endpoints object (not mirrored, as upstream marks it) and its slice.
pub async fn reconcile_kubernetes_endpoints(
    state: &Arc<ApiState>,
    at: std::net::SocketAddr,
) -> ApiResult<()> {
    let ip = at.ip().to_string();
    let endpoints = json!({
        "apiVersion": "v1", "kind": "Endpoints",
        "metadata": {"name": "kubernetes", "namespace": "default",
            "labels": {"endpointslice.kubernetes.io/skip-mirror": "true"}},
        "subsets": [{"addresses": [{"ip": ip}], "ports": [{"name": "https", "port": at.port(), "protocol": "TCP"}]}],
    });
    let slice = json!({
        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {"name": "kubernetes", "namespace": "default",
            "labels": {"kubernetes.io/service-name": "kubernetes"}},
        "addressType": if at.is_ipv4() { "IPv4" } else { "IPv6" },
        "endpoints": [{"addresses": [ip], "conditions": {"ready": true}}],
        "ports": [{"name": "https", "port": at.port(), "protocol": "TCP"}],
    });
    let catalog = &state.catalog;
    for (group, version, resource, obj) in [
        ("", "v1", "endpoints", endpoints),
        ("discovery.k8s.io", "v1", "endpointslices", slice),
    ] {
        let Some(info) = catalog.find(group, version, resource) else {
            continue;
        };
        let info = info.clone();
        match state
            .registry
            .get(&info, Some("default"), "kubernetes")
            .await
        {
            Ok(current) => {
                let mut obj = obj;
                obj["metadata"]["resourceVersion"] = current["metadata"]["resourceVersion"].clone();
                let same = ["subsets", "endpoints", "ports"]
                    .iter()
                    .all(|k| current[k] == obj[k]);
                if !same {
                    state
                        .registry
                        .update(
                            &info,
                            Some("default"),
                            "kubernetes",
                            obj,
                            None,
                            WriteOptions::new(state.internal()),
                        )
                        .await?;
                }
            }
            Err(e) if e.code == 404 => {
                create_if_missing(state, &info, "default", "kubernetes", obj).await?;
            }
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into()).boxed()
}

/// A JSON body as Go's `json.Encoder` writes it: compact, then a newline.
fn json_response(code: StatusCode, value: &Value, content_type: &str) -> Response<Body> {
    let mut body = serde_json::to_vec(value).unwrap_or_default();
    body.push(b'\n');
    let mut resp = Response::new(full(body));
    *resp.status_mut() = code;
    if let Ok(v) = header::HeaderValue::from_str(content_type) {
        resp.headers_mut().insert(header::CONTENT_TYPE, v);
    }
    resp
}

fn ok(value: &Value) -> Response<Body> {
    json_response(StatusCode::OK, value, "application/json")
}

fn error_response(e: &ApiError) -> Response<Body> {
    let code = StatusCode::from_u16(e.code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut resp = json_response(code, &e.to_status(), "application/json");
    // As upstream's error writer: a suggested delay becomes Retry-After (evictions).
    if let Some(secs) = e
        .details
        .as_ref()
        .and_then(|d| d.get("retryAfterSeconds"))
        .and_then(Value::as_i64)
        .filter(|s| *s > 0)
    {
        resp.headers_mut().insert(header::RETRY_AFTER, secs.into());
    }
    resp
}

fn text(code: StatusCode, s: &str) -> Response<Body> {
    let mut resp = Response::new(full(s.to_string()));
    *resp.status_mut() = code;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    resp
}

/// What the Accept header asks for.
struct Accept {
    table: bool,
    /// `apidiscovery.k8s.io/<version>` for aggregated discovery, if acceptable.
    discovery: Option<&'static str>,
    /// Whether plain JSON is acceptable.
    json: bool,
    /// Whether the JSON media type itself is acceptable (`application/json` whatever its
    /// parameters, `application/*`, `*/*`, or no Accept): for a document served only as
    /// JSON (`/openapi/v2`, whose other form Kubernetes serves is protobuf), which a YAML-
    /// or protobuf-only client must not get.
    json_media: bool,
    /// `as=PartialObjectMetadata[List]`: only metadata (the garbage collector's and other
    /// metadata informers' form).
    metadata_only: bool,
}

fn parse_accept(h: Option<&str>) -> Accept {
    let h = h.unwrap_or("application/json");
    let mut a = Accept {
        table: false,
        discovery: None,
        json: false,
        json_media: false,
        metadata_only: false,
    };
    for part in h.split(',') {
        let mut items = part.split(';').map(str::trim);
        let media = items.next().unwrap_or("");
        let params: HashMap<&str, &str> = items.filter_map(|p| p.split_once('=')).collect();
        if matches!(media, "application/json" | "application/*" | "*/*" | "") {
            a.json_media = true;
        }
        let json_like = matches!(
            media,
            "application/json" | "*/*" | "application/*" | "application/yaml"
        );
        match (
            params.get("as").copied(),
            params.get("g").copied(),
            params.get("v").copied(),
        ) {
            (Some("Table"), Some("meta.k8s.io"), Some("v1" | "v1beta1")) if json_like => {
                a.table = true
            }
            (
                Some("PartialObjectMetadata" | "PartialObjectMetadataList"),
                Some("meta.k8s.io"),
                Some("v1" | "v1beta1"),
            ) if json_like && !a.table => a.metadata_only = true,
            (Some("APIGroupDiscoveryList"), Some("apidiscovery.k8s.io"), Some(v))
                if json_like && a.discovery.is_none() =>
            {
                a.discovery = match v {
                    "v2" => Some("apidiscovery.k8s.io/v2"),
                    "v2beta1" => Some("apidiscovery.k8s.io/v2beta1"),
                    _ => None,
                }
            }
            (None, _, _) if json_like || media.is_empty() => a.json = true,
            _ => {}
        }
    }
    a
}

/// The parts of a resource URL (Kubernetes' RequestInfo).
struct Target<'a> {
    info: &'a ResourceInfo,
    namespace: Option<String>,
    name: Option<String>,
    subresource: Option<String>,
    watch_path: bool,
}

enum Route<'a> {
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
    /// Below a group-version a local API service answers.
    Local {
        group: String,
        version: String,
        rest: Vec<String>,
    },
}

fn route<'a>(catalog: &'a Catalog, path: &str) -> Option<Route<'a>> {
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
        return None;
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

pub async fn handle(
    state: Arc<ApiState>,
    user: Option<User>,
    req: Request<Incoming>,
) -> Response<Body> {
    // `user` is the client certificate's, if one was presented.
    let started = std::time::Instant::now();
    let method = req.method().clone();
    let authed = state
        .authenticator
        .authenticate(&state.registry, user, req.headers(), req.uri().path())
        .await;
    let audit = crate::audit::begin(state.audit.as_ref(), authed.as_ref().ok(), &req);
    let state2 = state.clone();
    let body_slot = audit.body_slot();
    let (resp, warnings) = crate::typed::WARNINGS
        .scope(Default::default(), async move {
            let served = async {
                let user = authed?;
                let user = match &state2.authorizer {
                    Some(authz) => crate::impersonation::impersonate(authz, user, req.headers())?,
                    None => user,
                };
                let dispatched = dispatch(&state2, user, req);
                crate::audit::capturing(body_slot, dispatched).await
            };
            let resp = match served.await {
                Ok(r) => r,
                Err(e) => error_response(&e),
            };
            (resp, crate::typed::WARNINGS.with(|w| w.take()))
        })
        .await;
    let mut resp = resp;
    for w in warnings {
        // RFC 7234 warning: code 299, agent "-", the text quoted.
        let value = format!("299 - \"{}\"", w.replace('\\', "\\\\").replace('"', "\\\""));
        if let Ok(v) = header::HeaderValue::from_str(&value) {
            resp.headers_mut().append(header::WARNING, v);
        }
    }
    state
        .metrics
        .observe(method.as_str(), resp.status().as_u16(), started.elapsed());
    crate::audit::finish(audit, resp).await
}

async fn dispatch(
    state: &Arc<ApiState>,
    user: User,
    req: Request<Incoming>,
) -> ApiResult<Response<Body>> {
    let path = req.uri().path().to_string();
    let query = common::query::Query::parse(req.uri().query()).first_values();
    if let Some(authz) = &state.authorizer {
        let info = crate::request_info::RequestInfo::new(req.method(), &path, &query);
        authz.check(&crate::authz::Attributes::new(user.clone(), &info))?;
    }
    let accept = parse_accept(
        req.headers()
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok()),
    );
    let route = route(&state.catalog, &path);
    // Health and version (anyone may read them: see authn and the default RBAC policy).
    match (&route, req.method()) {
        (Some(Route::Healthz), &Method::GET) => return Ok(text(StatusCode::OK, "ok")),
        (Some(Route::Version), &Method::GET) => return Ok(ok(&discovery::version())),
        _ => {}
    }
    let Some(route) = route else {
        return Err(ApiError::not_found_path());
    };
    let is_get = req.method() == Method::GET;
    match route {
        Route::Healthz | Route::Version => Err(ApiError::method_not_allowed()),
        Route::Metrics if is_get => Ok(text(
            StatusCode::OK,
            &(state.metrics.render() + &state.registry.reads.render()),
        )),
        Route::CoreVersions if is_get => Ok(match accept.discovery {
            Some(v) => discovery_response(&discovery::aggregated(&state.catalog, true, v), v),
            None => ok(&discovery::api_versions(&state.server_address)),
        }),
        Route::Groups if is_get => Ok(match accept.discovery {
            Some(v) => discovery_response(&discovery::aggregated(&state.catalog, false, v), v),
            None => ok(&discovery::api_group_list(&state.catalog)),
        }),
        Route::Group(g) if is_get => discovery::api_group(&state.catalog, &g)
            .map(|v| ok(&v))
            .ok_or_else(ApiError::not_found_path),
        Route::ResourceList(g, v) if is_get => {
            let mut list = discovery::resource_list(&state.catalog, &g, &v);
            if let Some(resources) = state
                .services
                .find(&g, &v)
                .and_then(|s| s.resource_list(&v))
            {
                list["resources"] = Value::Array(resources);
            }
            Ok(ok(&list))
        }
        Route::OpenApiV2 if is_get => openapi_v2(&state.catalog, &accept),
        Route::OpenApiV3Index if is_get => Ok(ok(&openapi::index(&state.catalog))),
        Route::OpenApiV3Doc(p) if is_get => openapi::group_version_doc(&state.catalog, &p)
            .map(|doc| {
                let mut resp = Response::new(full(doc));
                resp.headers_mut().insert(
                    header::CONTENT_TYPE,
                    header::HeaderValue::from_static("application/json"),
                );
                resp
            })
            .ok_or_else(ApiError::not_found_path),
        Route::Resource(target) => resource(state, &user, target, query, accept, req).await,
        Route::Local {
            group,
            version,
            rest,
        } => {
            let rest: Vec<&str> = rest.iter().map(String::as_str).collect();
            let (service, request) = crate::aggregator::request(
                &state.services,
                req.method().clone(),
                (&group, &version),
                &rest,
                query.clone(),
            )?;
            let info = state
                .catalog
                .find(&group, &version, &request.resource)
                .cloned();
            let value = service.get(request).await?;
            match info {
                Some(info) => render(&info, value, &accept, &query),
                None => Ok(ok(&value)),
            }
        }
        _ => Err(ApiError::method_not_allowed()),
    }
}

/// The OpenAPI v2 document, if JSON is acceptable. A protobuf-only client (kubectl) gets the
/// 404 it got before v2 was served, on which it falls back to its compiled-in types; JSON
/// it would fail to decode.
fn openapi_v2(catalog: &Catalog, accept: &Accept) -> ApiResult<Response<Body>> {
    if !accept.json_media {
        return Err(ApiError::not_found_path());
    }
    let mut resp = Response::new(full(openapi::v2(catalog)));
    let headers = resp.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json"),
    );
    headers.insert(header::VARY, header::HeaderValue::from_static("Accept"));
    Ok(resp)
}

fn discovery_response(v: &Value, api_version: &str) -> Response<Body> {
    let version = api_version.rsplit('/').next().unwrap_or("v2");
    json_response(
        StatusCode::OK,
        v,
        &format!("application/json;g=apidiscovery.k8s.io;v={version};as=APIGroupDiscoveryList"),
    )
}

async fn read_body(req: Request<Incoming>) -> ApiResult<(Option<String>, Bytes)> {
    let content_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|s| s.split(';').next().unwrap_or("").trim().to_string());
    let body = Limited::new(req.into_body(), MAX_BODY)
        .collect()
        .await
        .map_err(|e| {
            ApiError::new(
                413,
                "RequestEntityTooLarge",
                format!("reading the request body: {e}"),
            )
        })?
        .to_bytes();
    crate::audit::capture_request_body(&body);
    Ok((content_type, body))
}

/// Decodes an object body: JSON (also when no Content-Type is given).
fn decode_object(content_type: Option<&str>, body: &[u8]) -> ApiResult<Value> {
    match content_type {
        None | Some("") | Some("application/json") | Some("*/*") => {}
        Some("application/vnd.kubernetes.protobuf") => {
            return crate::protobuf::decode(body).inspect(crate::audit::capture_request_object);
        }
        Some(other) => return Err(ApiError::unsupported_media_type(other)),
    }
    serde_json::from_slice(body).map_err(|e| {
        ApiError::bad_request(format!(
            "the object provided is unrecognized or not valid JSON: {e}"
        ))
    })
}

/// The applied configuration without managedFields (which are recorded separately).
fn strip_managed(v: &Value) -> Value {
    let mut v = v.clone();
    if let Some(m) = v.get_mut("metadata").and_then(Value::as_object_mut) {
        m.remove("managedFields");
    }
    v
}

fn dry_run(query: &HashMap<String, String>) -> bool {
    query.get("dryRun").is_some_and(|v| v == "All")
}

/// A write's options in `ctx`; the field manager defaults, as in Kubernetes, to the client's
/// User-Agent up to its first `/`.
fn write_options<'a>(
    ctx: RequestContext<'a>,
    query: &HashMap<String, String>,
    user_agent: &str,
) -> WriteOptions<'a> {
    let manager = match query.get("fieldManager").filter(|m| !m.is_empty()) {
        Some(m) => m.clone(),
        None => user_agent
            .split('/')
            .next()
            .unwrap_or_default()
            .chars()
            .take(128)
            .collect(),
    };
    WriteOptions {
        ctx,
        validation: crate::typed::FieldValidation::parse(
            query.get("fieldValidation").map(String::as_str),
        ),
        // No name, no entry (a client that sends neither fieldManager nor User-Agent).
        field_manager: Some(manager).filter(|m| !m.is_empty()),
    }
}

fn status_success(info: &ResourceInfo, obj: &Value) -> Value {
    json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Success",
        "details": {
            "name": meta::name(obj),
            "group": info.group,
            "kind": info.plural,
            "uid": meta::str_at(obj, "/metadata/uid").unwrap_or(""),
        },
    })
}

/// Renders one object or a list, as a Table when the client asked for one.
/// An object (or list) as PartialObjectMetadata (or PartialObjectMetadataList).
fn partial_metadata(v: &Value) -> Value {
    let one = |o: &Value| {
        json!({
            "kind": "PartialObjectMetadata",
            "apiVersion": "meta.k8s.io/v1",
            "metadata": o.get("metadata").cloned().unwrap_or_else(|| json!({})),
        })
    };
    match v.get("items").and_then(Value::as_array) {
        Some(items) => json!({
            "kind": "PartialObjectMetadataList",
            "apiVersion": "meta.k8s.io/v1",
            "metadata": v.get("metadata").cloned().unwrap_or_else(|| json!({})),
            "items": items.iter().map(one).collect::<Vec<_>>(),
        }),
        None => one(v),
    }
}

fn render(
    info: &ResourceInfo,
    value: Value,
    accept: &Accept,
    query: &HashMap<String, String>,
) -> ApiResult<Response<Body>> {
    if accept.metadata_only && !accept.table {
        return Ok(ok(&partial_metadata(&value)));
    }
    if !accept.table {
        if !accept.json {
            return Err(ApiError::not_acceptable(
                "only the following media types are accepted: application/json, application/yaml, application/vnd.kubernetes.protobuf",
            ));
        }
        return Ok(ok(&value));
    }
    let include = IncludeObject::parse(query.get("includeObject").map(String::as_str));
    let (items, metadata) = match value.get("items").and_then(Value::as_array) {
        Some(items) => (
            items.clone(),
            value.get("metadata").cloned().unwrap_or_default(),
        ),
        None => {
            let rv = value
                .pointer("/metadata/resourceVersion")
                .cloned()
                .unwrap_or_default();
            (vec![value], json!({"resourceVersion": rv}))
        }
    };
    Ok(ok(&table::table(info, &items, metadata, include)))
}

fn list_query(info: &ResourceInfo, query: &HashMap<String, String>) -> ApiResult<ListQuery> {
    let strategy = strategy::for_resource(info);
    Ok(ListQuery {
        label: LabelSelector::parse(query.get("labelSelector").map(String::as_str).unwrap_or(""))?,
        field: FieldSelector::parse(
            query.get("fieldSelector").map(String::as_str).unwrap_or(""),
            strategy.field_selectors(),
        )?,
        limit: query.get("limit").and_then(|l| l.parse().ok()),
        continue_token: query.get("continue").cloned(),
        resource_version: query.get("resourceVersion").cloned(),
    })
}

async fn resource(
    state: &Arc<ApiState>,
    user: &User,
    t: Target<'_>,
    query: HashMap<String, String>,
    accept: Accept,
    req: Request<Incoming>,
) -> ApiResult<Response<Body>> {
    let info = t.info;
    let reg = &state.registry;
    // Who writes, the admission they pass and whether it is stored, handed to the registry
    // with each write.
    let ctx = RequestContext::new(Some(user), &*state.admission).with_dry_run(dry_run(&query));
    let ns = t.namespace.as_deref();
    if info.namespaced && t.name.is_some() && ns.is_none() {
        return Err(ApiError::not_found_path());
    }
    let method = req.method().clone();
    let agent = req
        .headers()
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let write_options = |q: &HashMap<String, String>| write_options(ctx, q, &agent);
    let watch = t.watch_path || query_bool(query.get("watch").map(String::as_str));
    match (method, t.name.as_deref(), t.subresource.as_deref()) {
        (Method::GET, None, None) if watch => {
            watch_response(state, info, ns, &query, &accept).await
        }
        (Method::GET, Some(name), None) if watch => {
            let mut q = query.clone();
            q.insert("fieldSelector".into(), format!("metadata.name={name}"));
            watch_response(state, info, ns, &q, &accept).await
        }
        (Method::GET, None, None) => {
            let q = list_query(info, &query)?;
            if !accept.table && !accept.metadata_only && accept.json {
                let mut resp = Response::new(full(reg.list_json(info, ns, &q).await?));
                resp.headers_mut().insert(
                    header::CONTENT_TYPE,
                    header::HeaderValue::from_static("application/json"),
                );
                return Ok(resp);
            }
            let list = reg.list(info, ns, &q).await?;
            render(info, list, &accept, &query)
        }
        (Method::GET, Some(name), None) => {
            render(info, reg.get(info, ns, name).await?, &accept, &query)
        }
        (Method::GET, Some(name), Some("status" | "ephemeralcontainers")) => {
            render(info, reg.get(info, ns, name).await?, &accept, &query)
        }
        (_, Some(name), Some("proxy")) => {
            // Everything after `/{name}/proxy` is the backend's path.
            let path = req.uri().path().to_string();
            let marker = format!("/{name}/proxy");
            let rest = path
                .find(&marker)
                .map(|i| path[i + marker.len()..].to_string())
                .unwrap_or_default();
            let name = name.to_owned();
            crate::proxy::serve(state, info, ns, &name, &rest, req).await
        }
        (
            Method::GET | Method::POST,
            Some(name),
            Some(sub @ ("exec" | "attach" | "portforward")),
        ) if info.group.is_empty() && info.kind == "Pod" => {
            let sub = sub.to_owned();
            crate::pod_connect::serve(state, ns, name, &sub, req).await
        }
        (Method::GET, Some(name), Some("log")) if info.group.is_empty() && info.kind == "Pod" => {
            let resp = crate::pod_log::get(state, ns, name, &query).await?;
            if streaming::websocket::is_websocket_request(&req) && resp.status() == 200 {
                // The log as WebSocket messages (the conformance suite reads it so).
                let ws = streaming::websocket::body_as_messages(req, resp.into_body())
                    .map_err(ApiError::bad_request)?;
                return Ok(ws.map(|b| b.map_err(|never| match never {}).boxed()));
            }
            Ok(resp)
        }
        (Method::GET, Some(name), Some("scale")) => Ok(ok(&crate::scale::to_scale(
            info,
            &reg.get(info, ns, name).await?,
        ))),
        (Method::POST, Some(name), Some("token")) => {
            let (ct, body) = read_body(req).await?;
            let obj = decode_object(ct.as_deref(), &body)?;
            let issued = crate::token_request::create(state, ns.unwrap_or(""), name, obj).await?;
            Ok(json_response(
                StatusCode::CREATED,
                &issued,
                "application/json",
            ))
        }
        (Method::POST, None, None) if info.kind == "TokenReview" => {
            let (ct, body) = read_body(req).await?;
            let obj = decode_object(ct.as_deref(), &body)?;
            let reviewed = crate::authn::token_review(state, obj).await?;
            Ok(json_response(
                StatusCode::CREATED,
                &reviewed,
                "application/json",
            ))
        }
        (Method::POST, None, None) if info.create_only => {
            let (ct, body) = read_body(req).await?;
            let obj = decode_object(ct.as_deref(), &body)?;
            let reviewed =
                crate::authz::review::create(state.authorizer.as_deref(), info, ns, obj, user)?;
            Ok(json_response(
                StatusCode::CREATED,
                &reviewed,
                "application/json",
            ))
        }
        (_, _, _) if info.create_only => Err(ApiError::method_not_allowed()),
        (Method::POST, None, None) => {
            let (ct, body) = read_body(req).await?;
            let obj = decode_object(ct.as_deref(), &body)?;
            let created = reg.create(info, ns, obj, write_options(&query)).await?;
            Ok(json_response(
                StatusCode::CREATED,
                &created,
                "application/json",
            ))
        }
        (Method::POST, Some(name), Some("eviction"))
            if info.group.is_empty() && info.kind == "Pod" =>
        {
            let (ct, body) = read_body(req).await?;
            let eviction = decode_object(ct.as_deref(), &body)?;
            let dry = query.get("dryRun").map(String::as_str);
            let status =
                crate::eviction::create(reg, ctx, ns.unwrap_or(""), name, eviction, dry).await?;
            Ok(json_response(
                StatusCode::CREATED,
                &status,
                "application/json",
            ))
        }
        (Method::POST, Some(name), Some("binding")) => {
            let (ct, body) = read_body(req).await?;
            let binding = decode_object(ct.as_deref(), &body)?;
            crate::binding::bind(reg, ctx, info, ns, name, &binding).await?;
            Ok(json_response(
                StatusCode::CREATED,
                &json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201}),
                "application/json",
            ))
        }
        (
            Method::PUT,
            Some(name),
            sub @ (None
            | Some("status")
            | Some("finalize")
            | Some("approval")
            | Some("ephemeralcontainers")),
        ) => {
            let (ct, body) = read_body(req).await?;
            let obj = decode_object(ct.as_deref(), &body)?;
            let updated = reg
                .update(info, ns, name, obj, sub, write_options(&query))
                .await?;
            Ok(ok(&updated))
        }
        (Method::PUT, Some(name), Some("scale")) => {
            let (ct, body) = read_body(req).await?;
            let scale = decode_object(ct.as_deref(), &body)?;
            let updated = crate::scale::update(reg, ctx, info, ns, name, &scale).await?;
            Ok(ok(&updated))
        }
        (Method::PATCH, Some(name), None)
            if req
                .headers()
                .get(header::CONTENT_TYPE)
                .is_some_and(|v| v.as_bytes().starts_with(b"application/apply-patch")) =>
        {
            let manager = query
                .get("fieldManager")
                .filter(|m| !m.is_empty())
                .cloned()
                .ok_or_else(|| {
                    ApiError::new(422, "Invalid", "PatchOptions.meta.k8s.io \"\" is invalid: fieldManager: Required value: is required for apply patch")
                })?;
            let (_, body) = read_body(req).await?;
            let applied = crate::apply::parse_body(&body)?;
            let api_version = info.api_version();
            match reg.get(info, ns, name).await {
                Err(e) if e.code == 404 => {
                    let mut obj = applied.clone();
                    crate::apply::record_manager(&mut obj, &applied, &manager, &api_version);
                    if meta::name(&obj).is_empty() {
                        meta::metadata_mut(&mut obj).insert("name".into(), json!(name));
                    }
                    let opts = WriteOptions {
                        field_manager: None,
                        ..write_options(&query)
                    };
                    let created = reg.create(info, ns, obj, opts).await?;
                    Ok(json_response(
                        StatusCode::CREATED,
                        &created,
                        "application/json",
                    ))
                }
                Err(e) => Err(e),
                Ok(live) => {
                    let conflicts = crate::apply::conflicts(&live, &applied, &manager);
                    let force = query_bool(query.get("force").map(String::as_str));
                    if !conflicts.is_empty() && !force {
                        return Err(crate::apply::conflict_error(info, name, &conflicts));
                    }
                    // Other managers' managedFields entries survive: only this manager's
                    // entry is replaced.
                    let patch = Patch {
                        kind: PatchKind::Strategic,
                        body: strip_managed(&applied),
                    };
                    let manager2 = manager.clone();
                    let applied2 = applied.clone();
                    let opts = WriteOptions {
                        field_manager: None,
                        ..write_options(&query)
                    };
                    let out = reg
                        .patch_then(info, ns, name, patch, opts, move |obj| {
                            crate::apply::remove_unapplied(obj, &applied2, &manager2);
                            crate::apply::take_over(obj, &conflicts);
                            crate::apply::record_manager(obj, &applied2, &manager2, &api_version);
                        })
                        .await?;
                    Ok(ok(&out))
                }
            }
        }
        (
            Method::PATCH,
            Some(name),
            sub @ (None | Some("status") | Some("scale") | Some("ephemeralcontainers")),
        ) => {
            let (ct, body) = read_body(req).await?;
            let kind = match ct.as_deref() {
                Some("application/json-patch+json") => PatchKind::Json,
                Some("application/merge-patch+json") => PatchKind::Merge,
                Some("application/strategic-merge-patch+json") => PatchKind::Strategic,
                other => return Err(ApiError::unsupported_media_type(other.unwrap_or(""))),
            };
            let body: Value = serde_json::from_slice(&body)
                .map_err(|e| ApiError::bad_request(format!("the patch is not valid JSON: {e}")))?;
            let patch = Patch { kind, body };
            let out = if sub == Some("scale") {
                crate::scale::patch(reg, ctx, info, ns, name, patch).await?
            } else {
                reg.patch(info, ns, name, patch, sub, write_options(&query))
                    .await?
            };
            Ok(ok(&out))
        }
        (Method::DELETE, Some(name), None) => {
            if info.group.is_empty()
                && info.kind == "Namespace"
                && SYSTEM_NAMESPACES.contains(&name)
            {
                return Err(ApiError::forbidden(format!(
                    "namespaces \"{name}\" is forbidden: this namespace may not be deleted"
                )));
            }
            let opts = delete_options(&query, req).await?;
            // A namespace is emptied and finalized by the namespace controller.
            let (obj, gone) = reg.delete(ctx, info, ns, name, &opts).await?;
            if gone && !(info.group.is_empty() && info.kind == "Pod") {
                Ok(ok(&status_success(info, &obj)))
            } else {
                Ok(ok(&obj))
            }
        }
        (Method::DELETE, None, None) => {
            let opts = delete_options(&query, req).await?;
            let q = list_query(info, &query)?;
            let list = reg.list(info, ns, &q).await?;
            for item in list
                .get("items")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default()
            {
                let item_ns = Some(meta::namespace(&item)).filter(|n| !n.is_empty());
                match reg
                    .delete(ctx, info, item_ns, meta::name(&item), &opts)
                    .await
                {
                    Ok(_) => {}
                    Err(e) if e.code == 404 => {}
                    Err(e) => return Err(e),
                }
            }
            Ok(ok(
                &json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success"}),
            ))
        }
        _ => Err(ApiError::method_not_allowed()),
    }
}

async fn delete_options(
    query: &HashMap<String, String>,
    req: Request<Incoming>,
) -> ApiResult<DeleteOptions> {
    let (_, body) = read_body(req).await?;
    let body: Value = if body.is_empty() {
        json!({})
    } else {
        serde_json::from_slice(&body)
            .map_err(|e| ApiError::bad_request(format!("invalid DeleteOptions: {e}")))?
    };
    let grace = query
        .get("gracePeriodSeconds")
        .and_then(|g| g.parse().ok())
        .or_else(|| body.get("gracePeriodSeconds").and_then(Value::as_i64));
    let propagation = query
        .get("propagationPolicy")
        .cloned()
        .or_else(|| {
            body.get("propagationPolicy")
                .and_then(Value::as_str)
                .map(str::to_string)
        })
        .or_else(|| {
            // The deprecated form, in the query (the Python client's `orphan_dependents`)
            // or the body.
            let orphan =
                common::params::query_opt_bool(query.get("orphanDependents").map(String::as_str))
                    .or_else(|| body.get("orphanDependents").and_then(Value::as_bool));
            match orphan {
                Some(true) => Some("Orphan".to_string()),
                Some(false) => Some("Background".to_string()),
                None => None,
            }
        });
    Ok(DeleteOptions {
        grace_period_seconds: grace,
        propagation,
        precondition_uid: body
            .pointer("/preconditions/uid")
            .and_then(Value::as_str)
            .map(str::to_string),
        precondition_rv: body
            .pointer("/preconditions/resourceVersion")
            .and_then(Value::as_str)
            .map(str::to_string),
    })
}

/// A watch: newline-delimited JSON events over a chunked response, until the client goes,
/// `timeoutSeconds` passes or the store fails (then an ERROR event with the Status).
async fn watch_response(
    state: &Arc<ApiState>,
    info: &ResourceInfo,
    ns: Option<&str>,
    query: &HashMap<String, String>,
    accept: &Accept,
) -> ApiResult<Response<Body>> {
    let q = list_query(info, query)?;
    let send_initial =
        common::params::query_opt_bool(query.get("sendInitialEvents").map(String::as_str));
    let events = state
        .registry
        .watch(
            info,
            ns,
            q.label,
            q.field,
            q.resource_version.as_deref(),
            send_initial,
        )
        .await;
    let (events, progress) = match events {
        Ok(w) => (w.events, w.progress),
        // A too-old resourceVersion is reported inside the stream, as Kubernetes does.
        Err(e) if e.code == 410 => (futures::stream::iter(vec![Err(e)]).boxed(), Arc::default()),
        Err(e) => return Err(e),
    };
    let timeout = query
        .get("timeoutSeconds")
        .and_then(|t| t.parse::<u64>().ok())
        .map(Duration::from_secs)
        .unwrap_or(Duration::from_secs(1800));
    let bookmarks = query
        .get("allowWatchBookmarks")
        .is_some_and(|v| query_bool(Some(v)));
    let table = accept.table;
    let metadata_only = accept.metadata_only && !table;
    let include = IncludeObject::parse(query.get("includeObject").map(String::as_str));
    let info = info.clone();
    let deadline = tokio::time::sleep(timeout);
    let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(64);
    tokio::spawn(async move {
        let mut events = events;
        tokio::pin!(deadline);
        let mut tick = tokio::time::interval(Duration::from_secs(60));
        tick.tick().await;
        let mut first_table = true;
        loop {
            let ev = tokio::select! {
                _ = &mut deadline => break,
                _ = tick.tick(), if bookmarks => {
                    // Only a revision everything before which was sent.
                    let rev = progress.load(std::sync::atomic::Ordering::Relaxed);
                    if rev == 0 {
                        continue;
                    }
                    WatchEvent {
                        kind: "BOOKMARK",
                        object: json!({"kind": info.kind, "apiVersion": info.api_version(), "metadata": {"resourceVersion": rev.to_string()}}),
                    }
                }
                ev = events.next() => match ev {
                    Some(Ok(ev)) => ev,
                    Some(Err(e)) => {
                        let line = json!({"type": "ERROR", "object": e.to_status()});
                        let _ = tx.send(line_bytes(&line)).await;
                        break;
                    }
                    None => break,
                },
            };
            let object = if table && ev.kind != "BOOKMARK" {
                let rv = ev
                    .object
                    .pointer("/metadata/resourceVersion")
                    .cloned()
                    .unwrap_or_default();
                let mut t = table::table(
                    &info,
                    std::slice::from_ref(&ev.object),
                    json!({"resourceVersion": rv}),
                    include,
                );
                if !first_table {
                    t["columnDefinitions"] = json!([]);
                }
                first_table = false;
                t
            } else if metadata_only && ev.kind != "BOOKMARK" && ev.kind != "ERROR" {
                partial_metadata(&ev.object)
            } else {
                ev.object
            };
            if tx
                .send(line_bytes(&json!({"type": ev.kind, "object": object})))
                .await
                .is_err()
            {
                break;
            }
        }
    });
    let stream = tokio_stream_from(rx).map(|b| Ok::<_, Infallible>(Frame::data(b)));
    let mut resp = Response::new(BodyExt::boxed(StreamBody::new(stream)));
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json"),
    );
    Ok(resp)
}

fn line_bytes(v: &Value) -> Bytes {
    let mut b = serde_json::to_vec(v).unwrap_or_default();
    b.push(b'\n');
    Bytes::from(b)
}

fn tokio_stream_from(
    mut rx: tokio::sync::mpsc::Receiver<Bytes>,
) -> impl futures::Stream<Item = Bytes> {
    futures::stream::poll_fn(move |cx| rx.poll_recv(cx))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes() {
        let c = Catalog::new();
        let Some(Route::Resource(t)) = route(&c, "/api/v1/namespaces/default/pods/web/status")
        else {
            panic!("no route");
        };
        assert_eq!(
            (
                t.info.plural,
                t.namespace.as_deref(),
                t.name.as_deref(),
                t.subresource.as_deref()
            ),
            ("pods", Some("default"), Some("web"), Some("status"))
        );
        let Some(Route::Resource(t)) = route(&c, "/api/v1/namespaces/kube-system") else {
            panic!("no route");
        };
        assert_eq!(
            (t.info.plural, t.namespace.as_deref(), t.name.as_deref()),
            ("namespaces", None, Some("kube-system"))
        );
        let Some(Route::Resource(t)) = route(&c, "/apis/apps/v1/watch/namespaces/x/deployments")
        else {
            panic!("no route");
        };
        assert!(t.watch_path);
        assert_eq!(t.namespace.as_deref(), Some("x"));
        assert!(route(&c, "/apis/apps/v9/deployments").is_none());
        assert!(route(&c, "/api/v1/namespaces/d/pods/p/exec2").is_none());
    }

    #[test]
    fn accept_negotiation() {
        let a = parse_accept(Some(
            "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,application/json",
        ));
        assert_eq!(a.discovery, Some("apidiscovery.k8s.io/v2"));
        let a = parse_accept(Some(
            "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,application/json",
        ));
        assert_eq!(a.discovery, Some("apidiscovery.k8s.io/v2beta1"));
        let a = parse_accept(Some(
            "application/json;as=Table;v=v1;g=meta.k8s.io,application/json",
        ));
        assert!(a.table && a.json);
    }

    #[test]
    fn openapi_v2_negotiation() {
        let c = Catalog::new();
        assert!(matches!(route(&c, "/openapi/v2"), Some(Route::OpenApiV2)));
        assert!(matches!(route(&c, "/openapi/v2/"), Some(Route::OpenApiV2)));
        let served = openapi::v2(&c).len() as u64;
        for accept in [
            None,
            Some(""),
            Some("application/json"),
            Some("*/*"),
            Some("application/json;charset=utf-8"),
            Some("application/com.github.proto-openapi.spec.v2@v1.0+protobuf, application/json"),
        ] {
            let Ok(resp) = openapi_v2(&c, &parse_accept(accept)) else {
                panic!("{accept:?}: not served");
            };
            assert_eq!(resp.status(), StatusCode::OK);
            assert_eq!(resp.headers()[header::CONTENT_TYPE], "application/json");
            assert_eq!(
                hyper::body::Body::size_hint(resp.body()).exact(),
                Some(served)
            );
        }
        // kubectl's Accept: JSON it could not decode, so the 404 it falls back on.
        for accept in [
            "application/com.github.proto-openapi.spec.v2@v1.0+protobuf",
            "application/com.github.proto-openapi.spec.v2.v1.0+protobuf",
            "application/vnd.kubernetes.protobuf",
            "application/yaml",
        ] {
            match openapi_v2(&c, &parse_accept(Some(accept))) {
                Err(e) => assert_eq!(e.code, 404, "{accept}"),
                Ok(_) => panic!("{accept}: served JSON"),
            }
        }
    }
}
