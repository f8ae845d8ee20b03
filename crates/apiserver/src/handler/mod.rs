//! Request handling: authentication and the REST verbs on top of the generic registry; which
//! handler a path goes to in `route.rs` (as Kubernetes' RequestInfo parses paths), content
//! negotiation in `negotiation.rs`, WATCH in `watch.rs` (upstream's `endpoints/handlers`).

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Arc;

use bytes::Bytes;
use common::params::query_bool;
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full, Limited, combinators::BoxBody};
use hyper::body::Incoming;
use serde_json::{Value, json};

use crate::authn::UserInfo as User;
use crate::discovery;
use crate::error::{ApiError, ApiResult};
use crate::kinds::Review;
use crate::meta;
use crate::openapi;
use crate::registry::{
    DeleteOptions, ListQuery, Patch, PatchKind, Registry, RequestContext, WriteOptions,
};
use crate::resources::{Catalog, ResourceInfo};
use crate::selector::{FieldSelector, LabelSelector};

mod negotiation;
mod route;
mod watch;

use negotiation::{Accept, parse_accept, render};
use route::{Route, Target, route};
use watch::watch_response;

pub type Body = BoxBody<Bytes, Infallible>;

/// Largest request body accepted (Kubernetes' limit is 3 MiB for JSON).
const MAX_BODY: usize = 3 * 1024 * 1024;

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
    pub(crate) fn internal(&self) -> RequestContext<'_> {
        RequestContext::internal(&*self.admission)
    }
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
        Route::Remote(remote) => crate::aggregator::proxy::serve(&remote, &user, req).await,
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
    let (doc, content_type) = if accept.openapi_protobuf {
        let served = negotiation::OPENAPI_PROTOBUF_SERVED;
        (openapi::v2_protobuf(catalog), served)
    } else if accept.json_media {
        (openapi::v2(catalog), "application/json")
    } else {
        return Err(ApiError::not_found_path());
    };
    let mut resp = Response::new(full(doc));
    let headers = resp.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static(content_type),
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

fn list_query(info: &ResourceInfo, query: &HashMap<String, String>) -> ApiResult<ListQuery> {
    let strategy = crate::kinds::of(info).strategy();
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
    let kind = crate::kinds::of(info);
    if let Some(warning) = kind.deprecation() {
        crate::typed::warn(warning.to_string());
    }
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
        ) => {
            // Only pods have these subresources (the route checked).
            let sub = sub.to_owned();
            crate::pod_connect::serve(state, ns, name, &sub, req).await
        }
        (Method::GET, Some(name), Some("log")) => {
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
        (Method::POST, None, None) if kind.review() == Some(Review::Token) => {
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
        (Method::POST, Some(name), Some("eviction")) => {
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
                    let shape = crate::apply::Shape::of_kind(info);
                    crate::apply::record_manager(&mut obj, &applied, &manager, &api_version, shape);
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
                    let shape = crate::apply::Shape::of_kind(info);
                    let conflicts = crate::apply::conflicts(&live, &applied, &manager, shape);
                    let force = query_bool(query.get("force").map(String::as_str));
                    if !conflicts.is_empty() && !force {
                        return Err(crate::apply::conflict_error(info, name, &conflicts));
                    }
                    // Other managers' managedFields entries survive: only this manager's
                    // entry is replaced.
                    let patch = Patch {
                        kind: PatchKind::Apply(shape),
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
                            crate::apply::remove_unapplied(obj, &applied2, &manager2, shape);
                            crate::apply::take_over(obj, &conflicts);
                            crate::apply::record_manager(
                                obj,
                                &applied2,
                                &manager2,
                                &api_version,
                                shape,
                            );
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
                // Custom kinds have no patch strategy to merge by (upstream's CRD handler
                // does not accept this type).
                Some("application/strategic-merge-patch+json")
                    if kind.typed().is_some_and(|t| !t.is_builtin()) =>
                {
                    return Err(ApiError::new(
                        415,
                        "UnsupportedMediaType",
                        "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml",
                    ));
                }
                // A Scale is patched as a Scale (no lists), anything else as its kind's type.
                Some("application/strategic-merge-patch+json") => {
                    PatchKind::Strategic((sub != Some("scale")).then(|| kind.go_type()).flatten())
                }
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
            kind.hooks().check_delete(name)?;
            let opts = delete_options(&query, req).await?;
            // A namespace is emptied and finalized by the namespace controller.
            let (obj, gone) = reg.delete(ctx, info, ns, name, &opts).await?;
            if gone && !kind.hooks().return_deleted_object() {
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
            Some("application/json, application/com.github.proto-openapi.spec.v2@v1.0+protobuf"),
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
        // kubectl's Accept: the protobuf document (its type in the spelling Go can parse).
        let proto = openapi::v2_protobuf(&c).len() as u64;
        for accept in [
            "application/com.github.proto-openapi.spec.v2@v1.0+protobuf",
            "application/com.github.proto-openapi.spec.v2.v1.0+protobuf",
            "application/com.github.proto-openapi.spec.v2@v1.0+protobuf, application/json",
        ] {
            let Ok(resp) = openapi_v2(&c, &parse_accept(Some(accept))) else {
                panic!("{accept:?}: not served");
            };
            assert_eq!(
                resp.headers()[header::CONTENT_TYPE],
                "application/com.github.proto-openapi.spec.v2.v1.0+protobuf"
            );
            assert_eq!(
                hyper::body::Body::size_hint(resp.body()).exact(),
                Some(proto)
            );
        }
        // Neither form asked for: 404, never JSON to a client that cannot read it.
        for accept in ["application/vnd.kubernetes.protobuf", "application/yaml"] {
            match openapi_v2(&c, &parse_accept(Some(accept))) {
                Err(e) => assert_eq!(e.code, 404, "{accept}"),
                Ok(_) => panic!("{accept}: served JSON"),
            }
        }
    }
}
