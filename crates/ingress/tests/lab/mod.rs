//! The ingress test lab: an API server, the controller on 127.0.0.1 ports, backend servers
//! on 127.0.0.1 ports standing in for pods (their Services' EndpointSlices list 127.0.0.1
//! with each backend's port), and HTTP, HTTPS and WebSocket clients.
#![allow(dead_code)] // each test binary uses part of it

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use apiserver::testing::Cluster;
use bytes::Bytes;
use http::{HeaderMap, Request, Response, StatusCode, Version};
use http_body_util::{BodyExt, Full};
use hyper::body::{Frame, Incoming};
use hyper::service::service_fn;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use k8s_openapi::api::core::v1::{Secret, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::networking::v1::Ingress;
use kube::Api;
use kube::api::{Patch, PatchParams, PostParams};
use serde_json::{Value, json};
use tokio::net::{TcpListener, TcpStream};

pub fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "ingress=info".into()),
        )
        .with_test_writer()
        .try_init();
}

/// A backend "pod": answers every request with its name and what it was sent.
pub struct Backend {
    pub name: String,
    pub addr: SocketAddr,
    pub hits: Arc<AtomicUsize>,
    _task: AbortOnDrop,
}

pub struct AbortOnDrop(pub tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

fn header(h: &HeaderMap, k: &str) -> String {
    h.get(k)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("-")
        .to_string()
}

/// `name path host=… xff=… proto=… fhost=… version=…`, with a `grpc-status: 0` trailer
/// when asked over HTTP/2 (as a gRPC server ends its responses).
async fn answer(
    name: String,
    hits: Arc<AtomicUsize>,
    req: Request<Incoming>,
) -> Response<
    http_body_util::StreamBody<
        futures::stream::Iter<std::vec::IntoIter<Result<Frame<Bytes>, Infallible>>>,
    >,
> {
    hits.fetch_add(1, Ordering::Relaxed);
    let h = req.headers();
    let mut text = format!(
        "{name} {} host={} xff={} realip={} proto={} fhost={} version={:?}",
        req.uri().path(),
        header(h, "host"),
        header(h, "x-forwarded-for"),
        header(h, "x-real-ip"),
        header(h, "x-forwarded-proto"),
        header(h, "x-forwarded-host"),
        req.version(),
    );
    // Headers the Gateway tests set or change: every value, comma-joined.
    let mut names: Vec<&str> = h
        .keys()
        .map(|k| k.as_str())
        .filter(|k| k.starts_with("x-gw-"))
        .collect();
    names.sort();
    for k in names {
        let values: Vec<&str> = h
            .get_all(k)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect();
        text.push_str(&format!(" {k}={}", values.join(",")));
    }
    let http2 = req.version() == Version::HTTP_2;
    // Drain a request body (POSTs in the retry test).
    let _ = req.into_body().collect().await;
    let mut frames = vec![Ok(Frame::data(Bytes::from(text)))];
    if http2 {
        let mut t = HeaderMap::new();
        t.insert("grpc-status", http::HeaderValue::from_static("0"));
        frames.push(Ok(Frame::trailers(t)));
    }
    Response::new(http_body_util::StreamBody::new(futures::stream::iter(
        frames,
    )))
}

impl Backend {
    /// HTTP/1.1 and HTTP/2 (prior knowledge) on a free 127.0.0.1 port.
    pub async fn start(name: &str) -> Backend {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let hits = Arc::new(AtomicUsize::new(0));
        let (n, h) = (name.to_string(), hits.clone());
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let (n, h) = (n.clone(), h.clone());
                tokio::spawn(async move {
                    let svc = service_fn(move |req| {
                        let (n, h) = (n.clone(), h.clone());
                        async move { Ok::<_, Infallible>(answer(n, h, req).await) }
                    });
                    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        Backend {
            name: name.to_string(),
            addr,
            hits,
            _task: AbortOnDrop(task),
        }
    }

    /// A WebSocket server echoing every message.
    pub async fn websocket_echo(name: &str) -> Backend {
        use futures::{SinkExt, StreamExt};
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let hits = Arc::new(AtomicUsize::new(0));
        let h = hits.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                h.fetch_add(1, Ordering::Relaxed);
                tokio::spawn(async move {
                    let Ok(mut ws) = tokio_tungstenite::accept_async(stream).await else {
                        return;
                    };
                    while let Some(Ok(msg)) = ws.next().await {
                        if msg.is_close() || ws.send(msg).await.is_err() {
                            break;
                        }
                    }
                });
            }
        });
        Backend {
            name: name.to_string(),
            addr,
            hits,
            _task: AbortOnDrop(task),
        }
    }
}

/// A 127.0.0.1 port nothing listens on (bound, then closed): connecting is refused.
pub async fn dead_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    l.local_addr().unwrap().port()
}

pub struct Lab {
    pub cluster: Cluster,
    pub client: kube::Client,
    pub http: SocketAddr,
    pub https: SocketAddr,
    http_client: Client<HttpConnector, Full<Bytes>>,
    _ingress: ingress::Running,
}

impl Lab {
    pub async fn start() -> Lab {
        Self::start_with(|_| {}).await
    }

    /// [`Lab::start`] with the controller's configuration adjusted by `f`.
    pub async fn start_with(f: impl FnOnce(&mut ingress::IngressConfig)) -> Lab {
        init_tracing();
        let cluster = Cluster::start(false).await;
        let client = cluster.client().await;
        let mut cfg = ingress::IngressConfig::new("node-1", vec!["127.0.0.1".parse().unwrap()]);
        cfg.http_addr = Some("127.0.0.1:0".parse().unwrap());
        cfg.https_addr = Some("127.0.0.1:0".parse().unwrap());
        cfg.response_timeout = Duration::from_secs(10);
        f(&mut cfg);
        let running = ingress::start(client.clone(), cfg).await.unwrap();
        let mut b = Client::builder(TokioExecutor::new());
        b.pool_max_idle_per_host(32);
        Lab {
            http: running.http_addr.unwrap(),
            https: running.https_addr.unwrap(),
            http_client: b.build(HttpConnector::new()),
            cluster,
            client,
            _ingress: running,
        }
    }

    /// A Service `name` without selector, port `http` 80 (target 8080, as a pod would
    /// listen; the slices say where the endpoints really are).
    pub async fn service(&self, name: &str, app_protocol: Option<&str>) {
        let mut port = json!({"name": "http", "port": 80, "protocol": "TCP", "targetPort": 8080});
        if let Some(p) = app_protocol {
            port["appProtocol"] = json!(p);
        }
        let svc: Service = serde_json::from_value(json!({
            "metadata": {"name": name, "namespace": "default"},
            "spec": {"ports": [port]},
        }))
        .unwrap();
        Api::<Service>::namespaced(self.client.clone(), "default")
            .create(&PostParams::default(), &svc)
            .await
            .unwrap();
    }

    /// An EndpointSlice `suffix` of Service `svc`: one ready endpoint 127.0.0.1 on `port`.
    pub async fn endpoint(&self, svc: &str, suffix: &str, port: u16, ready: bool) {
        let slice: EndpointSlice = serde_json::from_value(json!({
            "metadata": {"name": format!("{svc}-{suffix}"), "namespace": "default",
                         "labels": {"kubernetes.io/service-name": svc}},
            "addressType": "IPv4",
            "ports": [{"name": "http", "port": port, "protocol": "TCP"}],
            "endpoints": [{"addresses": ["127.0.0.1"], "conditions": {"ready": ready}}],
        }))
        .unwrap();
        let api = Api::<EndpointSlice>::namespaced(self.client.clone(), "default");
        api.patch(
            &format!("{svc}-{suffix}"),
            &PatchParams::apply("ingress-test").force(),
            &Patch::Apply(slice),
        )
        .await
        .unwrap();
    }

    /// A Service with one slice per backend.
    pub async fn service_for(&self, name: &str, backends: &[&Backend]) {
        self.service(name, None).await;
        for (i, b) in backends.iter().enumerate() {
            self.endpoint(name, &i.to_string(), b.addr.port(), true)
                .await;
        }
    }

    /// Creates or replaces an Ingress (server-side apply).
    pub async fn ingress(&self, name: &str, spec: Value) {
        let ing: Ingress = serde_json::from_value(json!({
            "apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
            "metadata": {"name": name, "namespace": "default"},
            "spec": spec,
        }))
        .unwrap();
        Api::<Ingress>::namespaced(self.client.clone(), "default")
            .patch(
                name,
                &PatchParams::apply("ingress-test").force(),
                &Patch::Apply(ing),
            )
            .await
            .unwrap();
    }

    pub async fn tls_secret(&self, name: &str, crt: &str, key: &str) {
        let s: Secret = serde_json::from_value(json!({
            "metadata": {"name": name, "namespace": "default"},
            "type": "kubernetes.io/tls",
            "stringData": {"tls.crt": crt, "tls.key": key},
        }))
        .unwrap();
        Api::<Secret>::namespaced(self.client.clone(), "default")
            .create(&PostParams::default(), &s)
            .await
            .unwrap();
    }

    /// GET `path` with `Host: host` on the plain listener: status and body.
    pub async fn get(&self, host: &str, path: &str) -> (StatusCode, String) {
        self.try_get(host, path).await.unwrap()
    }

    pub async fn try_get(&self, host: &str, path: &str) -> Result<(StatusCode, String), String> {
        let req = Request::get(format!("http://{}{path}", self.http))
            .header("host", host)
            .body(Full::new(Bytes::new()))
            .unwrap();
        let resp = self
            .http_client
            .request(req)
            .await
            .map_err(|e| e.to_string())?;
        let status = resp.status();
        let body = resp
            .into_body()
            .collect()
            .await
            .map_err(|e| e.to_string())?
            .to_bytes();
        Ok((status, String::from_utf8_lossy(&body).into_owned()))
    }

    /// A request with `method` and extra `headers`: status, response headers and body.
    pub async fn request(
        &self,
        method: &str,
        host: &str,
        path: &str,
        headers: &[(&str, &str)],
    ) -> (StatusCode, HeaderMap, String) {
        let mut b = Request::builder()
            .method(method)
            .uri(format!("http://{}{path}", self.http))
            .header("host", host);
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        let resp = self
            .http_client
            .request(b.body(Full::new(Bytes::new())).unwrap())
            .await
            .unwrap();
        let (parts, body) = resp.into_parts();
        let body = body.collect().await.unwrap().to_bytes();
        (
            parts.status,
            parts.headers,
            String::from_utf8_lossy(&body).into_owned(),
        )
    }

    /// POSTs `body`.
    pub async fn post(&self, host: &str, path: &str, body: &'static str) -> (StatusCode, String) {
        let req = Request::post(format!("http://{}{path}", self.http))
            .header("host", host)
            .body(Full::new(Bytes::from_static(body.as_bytes())))
            .unwrap();
        let resp = self.http_client.request(req).await.unwrap();
        let status = resp.status();
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        (status, String::from_utf8_lossy(&body).into_owned())
    }
}

/// A test CA and leaf certificates it signs.
pub struct TestCa {
    issuer: rcgen::Issuer<'static, rcgen::KeyPair>,
    pub pem: String,
}

impl TestCa {
    pub fn new() -> TestCa {
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "ingress test CA");
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        TestCa {
            pem: cert.pem(),
            issuer: rcgen::Issuer::new(params, key),
        }
    }

    /// (certificate PEM, key PEM) for `names`.
    pub fn leaf(&self, names: &[&str]) -> (String, String) {
        let names: Vec<String> = names.iter().map(|s| s.to_string()).collect();
        let params = rcgen::CertificateParams::new(names).unwrap();
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        (cert.pem(), key.serialize_pem())
    }

    fn client_config(&self, alpn: &[&[u8]]) -> Arc<rustls::ClientConfig> {
        let mut roots = rustls::RootCertStore::empty();
        for c in rustls_pemfile::certs(&mut self.pem.as_bytes()) {
            roots.add(c.unwrap()).unwrap();
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut cfg = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        cfg.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        Arc::new(cfg)
    }

    /// GET `https://{sni}{path}` through `addr`, trusting only this CA; HTTP/2 when `h2`
    /// (ALPN). Status, body and the negotiated protocol; Err when the handshake fails.
    pub async fn get(
        &self,
        addr: SocketAddr,
        sni: &str,
        path: &str,
        h2: bool,
    ) -> Result<(StatusCode, String, Version), String> {
        let alpn: &[&[u8]] = if h2 { &[b"h2"] } else { &[b"http/1.1"] };
        let connector = tokio_rustls::TlsConnector::from(self.client_config(alpn));
        let tcp = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
        let name = rustls::pki_types::ServerName::try_from(sni.to_string()).unwrap();
        let tls = connector
            .connect(name, tcp)
            .await
            .map_err(|e| e.to_string())?;
        let io = TokioIo::new(tls);
        let resp = if h2 {
            let (mut s, conn) = hyper::client::conn::http2::handshake(TokioExecutor::new(), io)
                .await
                .unwrap();
            tokio::spawn(conn);
            let req = Request::get(format!("https://{sni}{path}"))
                .body(Full::new(Bytes::new()))
                .unwrap();
            s.send_request(req).await.map_err(|e| e.to_string())?
        } else {
            let (mut s, conn) = hyper::client::conn::http1::handshake(io).await.unwrap();
            tokio::spawn(conn);
            let req = Request::get(path)
                .header("host", sni)
                .body(Full::new(Bytes::new()))
                .unwrap();
            s.send_request(req).await.map_err(|e| e.to_string())?
        };
        let (status, version) = (resp.status(), resp.version());
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        Ok((status, String::from_utf8_lossy(&body).into_owned(), version))
    }
}

/// An HTTP/2 (prior knowledge) GET on the plain listener: body and trailers.
pub async fn h2c_get(
    addr: SocketAddr,
    host: &str,
    path: &str,
) -> (StatusCode, String, Option<HeaderMap>) {
    let tcp = TcpStream::connect(addr).await.unwrap();
    let (mut s, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tcp))
            .await
            .unwrap();
    tokio::spawn(conn);
    let req = Request::get(format!("http://{host}{path}"))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(Full::new(Bytes::new()))
        .unwrap();
    let resp = s.send_request(req).await.unwrap();
    let status = resp.status();
    let collected = resp.into_body().collect().await.unwrap();
    let trailers = collected.trailers().cloned();
    let body = collected.to_bytes();
    (
        status,
        String::from_utf8_lossy(&body).into_owned(),
        trailers,
    )
}

/// A gRPC-shaped call on the plain listener over HTTP/2 with prior knowledge: POST `path`
/// (`/<service>/<method>`) to `host` with `application/grpc` and `te: trailers`, and
/// `headers`; status, response headers, body and trailers.
pub async fn h2c_call(
    addr: SocketAddr,
    host: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> (StatusCode, HeaderMap, String, Option<HeaderMap>) {
    let tcp = TcpStream::connect(addr).await.unwrap();
    let (mut s, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tcp))
            .await
            .unwrap();
    tokio::spawn(conn);
    let mut b = Request::post(format!("http://{host}{path}"))
        .header("content-type", "application/grpc")
        .header("te", "trailers");
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    let resp = s
        .send_request(b.body(Full::new(Bytes::new())).unwrap())
        .await
        .unwrap();
    let (parts, body) = resp.into_parts();
    let collected = body.collect().await.unwrap();
    let trailers = collected.trailers().cloned();
    let body = collected.to_bytes();
    (
        parts.status,
        parts.headers,
        String::from_utf8_lossy(&body).into_owned(),
        trailers,
    )
}
