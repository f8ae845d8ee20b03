//! One request: route it (Gateway routes, then Ingress rules), apply the Gateway rule's
//! filters, send it to a ready endpoint of the backend over a pooled keep-alive connection,
//! retry another endpoint when connecting fails, and answer 404 (no rule), 500 (an invalid
//! Gateway backendRef), 503 (no endpoints), 502 (no endpoint reachable) or 504 (timeout);
//! to gRPC requests those answers are gRPC statuses instead (see [`crate::reply`]).

use std::sync::Arc;

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::uri::{self, PathAndQuery, Scheme};
use http::{Request, Response, Uri, Version};
use http_body_util::{Either, Full};
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};

use crate::backend::{Backend, HealthRegistry, Protocol};
use crate::config::IngressConfig;
use crate::forward::{self, ClientInfo};
use crate::gateway::{self, filters::RequestParts, table::Pick, table::RuleAction};
use crate::host;
use crate::reply::{self, Local};
use crate::retry_body::{Parked, RetryBody};
use crate::table::Current;
use crate::upgrade;

pub use crate::reply::plain;

/// What the proxy answers with: the backend's body, or one of its own.
pub type ProxyBody = Either<Incoming, Full<Bytes>>;

type Pool = Client<HttpConnector, RetryBody>;

pub struct Proxy {
    pub(crate) current: Arc<Current>,
    pub(crate) health: Arc<HealthRegistry>,
    pub(crate) cfg: IngressConfig,
    http1: Pool,
    h2c: Pool,
}

fn connector(cfg: &IngressConfig) -> HttpConnector {
    let mut c = HttpConnector::new();
    c.set_nodelay(true);
    c.set_connect_timeout(Some(cfg.connect_timeout));
    c
}

fn pool(cfg: &IngressConfig, http2: bool) -> Pool {
    let mut b = Client::builder(TokioExecutor::new());
    b.pool_timer(TokioTimer::new())
        .pool_idle_timeout(cfg.pool_idle_timeout)
        .pool_max_idle_per_host(cfg.pool_idle_per_endpoint)
        // The Host header is the client's, set below; the URI names the endpoint.
        .set_host(false)
        .http2_only(http2);
    b.build(connector(cfg))
}

/// A Gateway rule applied to the request: a redirect answered, headers and URL rewritten, a
/// backend picked by weight; `Err` is the response when the request goes no further (the
/// redirect, or 500 when the pick lands on an invalid backendRef: gRPC `UNAVAILABLE` to a
/// gRPC request, as GRPCRoute requires).
fn gateway_step(
    action: &RuleAction,
    prefix: Option<&str>,
    req: &mut Request<Incoming>,
    host: &str,
    client: &ClientInfo,
    grpc: bool,
) -> Result<Arc<Backend>, Box<Response<ProxyBody>>> {
    if let Some(r) = &action.redirect {
        let parts = RequestParts {
            tls: client.tls,
            host,
            path: req.uri().path(),
            query: req.uri().query(),
            listener_port: client.local_port,
        };
        let mut resp = plain(r.status, "");
        match HeaderValue::from_str(&r.location(&parts, prefix)) {
            Ok(v) => {
                resp.headers_mut().insert(header::LOCATION, v);
            }
            Err(_) => return Err(Box::new(Local::InvalidRedirect.response(grpc))),
        }
        return Err(Box::new(resp));
    }
    if let Some(m) = &action.request_headers {
        m.apply(req.headers_mut());
    }
    if let Some(rw) = &action.rewrite {
        if let Some(h) = &rw.hostname {
            req.headers_mut().insert(header::HOST, h.clone());
        }
        if let Some(p) = &rw.path {
            let path = p.apply(req.uri().path(), prefix);
            let pq = match req.uri().query() {
                Some(q) => format!("{path}?{q}"),
                None => path,
            };
            let mut parts = req.uri().clone().into_parts();
            parts.path_and_query = PathAndQuery::try_from(pq).ok();
            match Uri::from_parts(parts) {
                Ok(u) => *req.uri_mut() = u,
                Err(e) => {
                    tracing::debug!(route = %action.route, error = %e, "rewritten path is not a valid URI");
                    return Err(Box::new(Local::InvalidRewrite.response(grpc)));
                }
            }
        }
    }
    match action.pick() {
        Pick::Backend(b) => Ok(b.clone()),
        Pick::Invalid => Err(Box::new(Local::InvalidBackend.response(grpc))),
    }
}

/// The request's host: HTTP/2's `:authority` (in the URI) or HTTP/1.1's `Host`.
fn request_host<B>(req: &Request<B>) -> Option<String> {
    let authority = match req.uri().authority() {
        Some(a) => a.as_str(),
        None => req.headers().get(header::HOST)?.to_str().ok()?,
    };
    Some(host::normalize(host::without_port(authority)))
}

impl Proxy {
    pub fn new(current: Arc<Current>, health: Arc<HealthRegistry>, cfg: IngressConfig) -> Self {
        Proxy {
            http1: pool(&cfg, false),
            h2c: pool(&cfg, true),
            current,
            health,
            cfg,
        }
    }

    pub async fn handle(
        &self,
        mut req: Request<Incoming>,
        client: ClientInfo,
    ) -> Response<ProxyBody> {
        let host = request_host(&req).unwrap_or_default();
        // gRPC clients get the proxy's own answers as gRPC statuses (GRPCRoute rules only
        // match such requests).
        let grpc = reply::is_grpc(req.headers());
        let snapshot = self.current.load();
        let found = snapshot.gateway.lookup(
            client.tls,
            &gateway::table::Request {
                host: &host,
                method: req.method(),
                path: req.uri().path(),
                query: req.uri().query(),
                headers: req.headers(),
            },
        );
        // Gateway routes first; a request none of them matches goes to the Ingress rules.
        let (backend, action) = match found {
            Some(f) => {
                let action = f.action.clone();
                let prefix = f.prefix.map(str::to_string);
                match gateway_step(&action, prefix.as_deref(), &mut req, &host, &client, grpc) {
                    Ok(b) => (b, Some(action)),
                    Err(resp) => {
                        let mut resp = *resp;
                        if let Some(m) = &action.response_headers {
                            m.apply(resp.headers_mut());
                        }
                        return resp;
                    }
                }
            }
            None => match snapshot.routes.lookup(&host, req.uri().path()) {
                Some(b) => (b.clone(), None),
                None => return Local::NoRoute.response(grpc),
            },
        };
        drop(snapshot);
        let mut resp = if backend.endpoints.is_empty() {
            Local::NoEndpoints.response(grpc)
        } else if req.version() == Version::HTTP_11 && forward::is_upgrade(req.headers()) {
            upgrade::proxy(self, &backend, req, client).await
        } else {
            self.forward(&backend, req, client, grpc).await
        };
        if let Some(m) = action.as_ref().and_then(|a| a.response_headers.as_ref()) {
            m.apply(resp.headers_mut());
        }
        resp
    }

    async fn forward(
        &self,
        backend: &Backend,
        req: Request<Incoming>,
        client: ClientInfo,
        grpc: bool,
    ) -> Response<ProxyBody> {
        let (parts, body) = req.into_parts();
        let mut headers = parts.headers;
        // HTTP/2 clients name the host in `:authority` only; HTTP/1.1 backends need `Host`.
        if !headers.contains_key(header::HOST)
            && let Some(a) = parts.uri.authority()
            && let Ok(v) = HeaderValue::from_str(a.as_str())
        {
            headers.insert(header::HOST, v);
        }
        forward::strip_hop_by_hop(&mut headers, false);
        let host = headers.get(header::HOST).cloned();
        forward::add_forwarded(&mut headers, &client, host.as_ref());
        let path = parts
            .uri
            .path_and_query()
            .cloned()
            .unwrap_or_else(|| PathAndQuery::from_static("/"));
        let (pool, version) = match backend.protocol {
            Protocol::Http1 => (&self.http1, Version::HTTP_11),
            Protocol::H2c => {
                // `:authority` names the endpoint (the pool is per endpoint); a `Host` that
                // differs from it makes the request malformed in HTTP/2 (RFC 9113 §8.3.1).
                // The client's host stays in `X-Forwarded-Host`.
                headers.remove(header::HOST);
                (&self.h2c, Version::HTTP_2)
            }
        };
        let body = Parked::new(body);
        let attempts = self.cfg.max_attempts.clamp(1, backend.endpoints.len());
        let mut tried = Vec::with_capacity(attempts);
        while tried.len() < attempts && body.available() {
            let Some(idx) = backend.pick(&self.health, &tried) else {
                break;
            };
            tried.push(idx);
            let ep = &backend.endpoints[idx];
            let mut uri = uri::Parts::default();
            uri.scheme = Some(Scheme::HTTP);
            uri.authority = Some(ep.authority.clone());
            uri.path_and_query = Some(path.clone());
            let uri = match Uri::from_parts(uri) {
                Ok(u) => u,
                Err(e) => {
                    tracing::debug!(error = %e, "unroutable request path");
                    return Local::BadRequest.response(grpc);
                }
            };
            let mut out = Request::new(body.attempt());
            *out.method_mut() = parts.method.clone();
            *out.uri_mut() = uri;
            *out.version_mut() = version;
            *out.headers_mut() = headers.clone();
            match tokio::time::timeout(self.cfg.response_timeout, pool.request(out)).await {
                Ok(Ok(resp)) => {
                    self.health.succeeded(&ep.health);
                    let (mut rp, rb) = resp.into_parts();
                    forward::strip_hop_by_hop(&mut rp.headers, false);
                    return Response::from_parts(rp, Either::Left(rb));
                }
                Ok(Err(e)) if e.is_connect() => {
                    let ejected = self.health.failed(&ep.health);
                    tracing::debug!(backend = %backend.name, endpoint = %ep.addr, ejected, error = %e, "connecting to the endpoint failed");
                }
                Ok(Err(e)) => {
                    tracing::debug!(backend = %backend.name, endpoint = %ep.addr, error = %e, "request to the endpoint failed");
                    return Local::BackendFailed.response(grpc);
                }
                Err(_) => {
                    tracing::debug!(backend = %backend.name, endpoint = %ep.addr, "no response in time");
                    return Local::Timeout.response(grpc);
                }
            }
        }
        Local::Unreachable.response(grpc)
    }
}
