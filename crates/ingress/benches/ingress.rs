//! The ingress proxy's throughput and latency against going straight to the backend, all on
//! loopback: one small HTTP backend (a 6-byte answer), the controller serving an Ingress to
//! it, and a closed-loop client of N connections. Keep-alive and a new connection per
//! request; HTTP, HTTPS (HTTP/1.1) and HTTPS with HTTP/2. Prints requests/s and p50/p99
//! latency per case, then the table build time for 1,000 Ingresses. No assertions: the
//! figures are the result. nginx is compared only when Debian's nginx is installed.
//!
//! `cargo bench -p rkube-ingress --bench ingress` (env `INGRESS_BENCH_SECS`, default 5;
//! `INGRESS_BENCH_CONNS`, default 32).
#![allow(clippy::unwrap_used, clippy::expect_used)] // a benchmark: a failed step should panic

/// The allocator the `rkube` binary runs its servers with (figures mean what users get).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use apiserver::testing::{Cluster, eventually};
use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Empty, Full};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use k8s_openapi::api::core::v1::{Secret, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::networking::v1::Ingress;
use kube::Api;
use kube::api::PostParams;
use serde_json::json;
use tokio::net::{TcpListener, TcpStream};

const HOST: &str = "bench.example.com";

#[derive(Clone, Copy, PartialEq)]
enum Mode {
    Http,
    Https,
    H2,
}

#[derive(Clone)]
struct Target {
    addr: SocketAddr,
    mode: Mode,
    keep_alive: bool,
    tls: Option<Arc<rustls::ClientConfig>>,
}

/// The backend: "hello\n" to everything, HTTP/1.1 keep-alive.
async fn backend() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((s, _)) = l.accept().await else {
                continue;
            };
            let _ = s.set_nodelay(true);
            tokio::spawn(async move {
                let svc = service_fn(|_req| async {
                    Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(b"hello\n"))))
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(s), svc)
                    .await;
            });
        }
    });
    addr
}

type H1 = hyper::client::conn::http1::SendRequest<Empty<Bytes>>;
type H2 = hyper::client::conn::http2::SendRequest<Empty<Bytes>>;

enum Conn {
    H1(H1),
    H2(H2),
}

async fn connect(t: &Target) -> Conn {
    let tcp = TcpStream::connect(t.addr).await.unwrap();
    tcp.set_nodelay(true).unwrap();
    match (&t.tls, t.mode) {
        (None, _) => {
            let (s, c) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
                .await
                .unwrap();
            tokio::spawn(c);
            Conn::H1(s)
        }
        (Some(cfg), mode) => {
            let name = rustls::pki_types::ServerName::try_from(HOST).unwrap();
            let tls = tokio_rustls::TlsConnector::from(cfg.clone())
                .connect(name, tcp)
                .await
                .unwrap();
            if mode == Mode::H2 {
                let (s, c) =
                    hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tls))
                        .await
                        .unwrap();
                tokio::spawn(c);
                Conn::H2(s)
            } else {
                let (s, c) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
                    .await
                    .unwrap();
                tokio::spawn(c);
                Conn::H1(s)
            }
        }
    }
}

async fn request(conn: &mut Conn) -> bool {
    let resp = match conn {
        Conn::H1(s) => {
            let req = Request::get("/")
                .header("host", HOST)
                .body(Empty::new())
                .unwrap();
            s.send_request(req).await
        }
        Conn::H2(s) => {
            let req = Request::get(format!("https://{HOST}/"))
                .body(Empty::new())
                .unwrap();
            s.send_request(req).await
        }
    };
    match resp {
        Ok(r) => {
            let ok = r.status() == StatusCode::OK;
            ok && r.into_body().collect().await.is_ok()
        }
        Err(_) => false,
    }
}

struct Figures {
    rps: f64,
    p50: Duration,
    p99: Duration,
    errors: usize,
}

/// `conns` closed-loop clients for `secs`; HTTP/2 shares one connection per 8 clients.
async fn load(t: Target, conns: usize, secs: u64) -> Figures {
    let end = Instant::now() + Duration::from_secs(secs);
    let mut shared: Vec<H2> = Vec::new();
    if t.mode == Mode::H2 {
        for _ in 0..conns.div_ceil(8) {
            if let Conn::H2(s) = connect(&t).await {
                shared.push(s);
            }
        }
    }
    let mut tasks = Vec::new();
    for i in 0..conns {
        let t = t.clone();
        let h2 = shared.get(i % shared.len().max(1)).cloned();
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::with_capacity(100_000);
            let mut errors = 0;
            let mut conn = h2.map(Conn::H2);
            while Instant::now() < end {
                let start = Instant::now();
                if conn.is_none() || !t.keep_alive && t.mode != Mode::H2 {
                    conn = Some(connect(&t).await);
                }
                let Some(c) = conn.as_mut() else { break };
                if request(c).await {
                    lat.push(start.elapsed());
                } else {
                    errors += 1;
                    conn = None;
                }
            }
            (lat, errors)
        }));
    }
    let mut all = Vec::new();
    let mut errors = 0;
    for t in tasks {
        let (l, e) = t.await.unwrap();
        all.extend(l);
        errors += e;
    }
    all.sort();
    let pct = |p: f64| {
        all.get(((all.len() as f64 * p) as usize).min(all.len().saturating_sub(1)))
            .copied()
            .unwrap_or_default()
    };
    Figures {
        rps: all.len() as f64 / secs as f64,
        p50: pct(0.50),
        p99: pct(0.99),
        errors,
    }
}

fn print(name: &str, f: &Figures) {
    println!(
        "{name:<44} {:>9.0} req/s   p50 {:>7.3} ms   p99 {:>7.3} ms   errors {}",
        f.rps,
        f.p50.as_secs_f64() * 1000.0,
        f.p99.as_secs_f64() * 1000.0,
        f.errors
    );
}

fn client_tls(ca_pem: &str, alpn: &[u8]) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    for c in rustls_pemfile::certs(&mut ca_pem.as_bytes()) {
        roots.add(c.unwrap()).unwrap();
    }
    let mut cfg = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    cfg.alpn_protocols = vec![alpn.to_vec()];
    Arc::new(cfg)
}

/// The certificate of `HOST`, signed by a fresh CA: (CA PEM, cert PEM, key PEM).
fn certificates() -> (String, String, String) {
    let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let ca_pem = ca.self_signed(&ca_key).unwrap().pem();
    let issuer = rcgen::Issuer::new(ca, ca_key);
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec![HOST.to_string()])
        .unwrap()
        .signed_by(&key, &issuer)
        .unwrap();
    (ca_pem, cert.pem(), key.serialize_pem())
}

async fn setup(client: &kube::Client, backend: SocketAddr, crt: &str, key: &str) {
    let ns = "default";
    let svc: Service = serde_json::from_value(json!({
        "metadata": {"name": "bench", "namespace": ns},
        "spec": {"ports": [{"name": "http", "port": 80, "targetPort": 8080}]},
    }))
    .unwrap();
    Api::<Service>::namespaced(client.clone(), ns)
        .create(&PostParams::default(), &svc)
        .await
        .unwrap();
    let slice: EndpointSlice = serde_json::from_value(json!({
        "metadata": {"name": "bench-1", "namespace": ns, "labels": {"kubernetes.io/service-name": "bench"}},
        "addressType": "IPv4",
        "ports": [{"name": "http", "port": backend.port(), "protocol": "TCP"}],
        "endpoints": [{"addresses": ["127.0.0.1"], "conditions": {"ready": true}}],
    }))
    .unwrap();
    Api::<EndpointSlice>::namespaced(client.clone(), ns)
        .create(&PostParams::default(), &slice)
        .await
        .unwrap();
    let secret: Secret = serde_json::from_value(json!({
        "metadata": {"name": "bench-tls", "namespace": ns},
        "type": "kubernetes.io/tls",
        "stringData": {"tls.crt": crt, "tls.key": key},
    }))
    .unwrap();
    Api::<Secret>::namespaced(client.clone(), ns)
        .create(&PostParams::default(), &secret)
        .await
        .unwrap();
    let ing: Ingress = serde_json::from_value(json!({
        "metadata": {"name": "bench", "namespace": ns},
        "spec": {"ingressClassName": "rkube",
                 "tls": [{"hosts": [HOST], "secretName": "bench-tls"}],
                 "rules": [{"host": HOST, "http": {"paths": [{"path": "/", "pathType": "Prefix",
                     "backend": {"service": {"name": "bench", "port": {"number": 80}}}}]}}]},
    }))
    .unwrap();
    Api::<Ingress>::namespaced(client.clone(), ns)
        .create(&PostParams::default(), &ing)
        .await
        .unwrap();
}

/// Builds the routing table of 1,000 Ingresses (one host and path each, 1,000 Services
/// with 3 endpoints each), as a rebuild after any change does.
fn build_1000() {
    use k8s_openapi::api::core::v1::Service as Svc;
    let mut ingresses = Vec::new();
    let mut services = Vec::new();
    let mut slices = Vec::new();
    for i in 0..1000 {
        let name = format!("svc-{i}");
        services.push(Arc::new(
            serde_json::from_value::<Svc>(json!({
            "metadata": {"name": name, "namespace": "default"},
            "spec": {"ports": [{"name": "http", "port": 80}]}}))
            .unwrap(),
        ));
        slices.push(Arc::new(serde_json::from_value::<EndpointSlice>(json!({
            "metadata": {"name": format!("{name}-1"), "namespace": "default",
                         "labels": {"kubernetes.io/service-name": name}},
            "addressType": "IPv4",
            "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
            "endpoints": (0..3).map(|e| json!({"addresses": [format!("10.42.{}.{}", i / 200, (i % 200) + e)]})).collect::<Vec<_>>(),
        })).unwrap()));
        ingresses.push(Arc::new(
            serde_json::from_value::<Ingress>(json!({
            "metadata": {"name": format!("ing-{i}"), "namespace": "default"},
            "spec": {"rules": [{"host": format!("site-{i}.example.com"), "http": {"paths": [
                {"path": format!("/app-{i}"), "pathType": "Prefix",
                 "backend": {"service": {"name": name, "port": {"number": 80}}}}]}}]}}))
            .unwrap(),
        ));
    }
    let health = ingress::backend::HealthRegistry::new(3, Duration::from_secs(10));
    let mut cache = ingress::certs::CertCache::default();
    let mut times = Vec::new();
    for _ in 0..10 {
        let start = Instant::now();
        let built = ingress::build::build(
            ingress::build::Inputs {
                ingresses: ingresses.clone(),
                services: &services,
                slices: &slices,
                secrets: &[],
                default_cert: None,
            },
            &health,
            &mut cache,
        );
        times.push(start.elapsed());
        assert_eq!(built.routes.len(), 1000);
    }
    times.sort();
    println!(
        "routing table build, 1,000 Ingresses x 3 endpoints: median {:.2} ms (of 10)",
        times[5].as_secs_f64() * 1000.0
    );
}

fn main() {
    let secs: u64 = std::env::var("INGRESS_BENCH_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(5);
    let conns: usize = std::env::var("INGRESS_BENCH_CONNS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(32);
    // The servers (API server, controller, proxy, backend) on one runtime, the client on
    // another: the client's work is not scheduled among the proxy's.
    let servers = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let clients = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let (ca, crt, key) = certificates();
    let (backend_addr, proxy, _cluster) = servers.block_on(async {
        let cluster = Cluster::start(false).await;
        let client = cluster.client().await;
        let backend_addr = backend().await;
        let mut cfg = ingress::IngressConfig::new("bench", vec!["127.0.0.1".parse().unwrap()]);
        cfg.http_addr = Some("127.0.0.1:0".parse().unwrap());
        cfg.https_addr = Some("127.0.0.1:0".parse().unwrap());
        let running = ingress::start(client.clone(), cfg).await.unwrap();
        setup(&client, backend_addr, &crt, &key).await;
        let http = running.http_addr.unwrap();
        let https = running.https_addr.unwrap();
        // Served once the routes and the certificate are in.
        let tls = client_tls(&ca, b"http/1.1");
        eventually("the Ingress served over HTTPS", || {
            let t = Target {
                addr: https,
                mode: Mode::Https,
                keep_alive: true,
                tls: Some(tls.clone()),
            };
            async move {
                let tcp = TcpStream::connect(t.addr).await.ok()?;
                let name = rustls::pki_types::ServerName::try_from(HOST).ok()?;
                let tls = tokio_rustls::TlsConnector::from(t.tls.clone()?)
                    .connect(name, tcp)
                    .await
                    .ok()?;
                let (mut s, c) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
                    .await
                    .ok()?;
                tokio::spawn(c);
                let req = Request::get("/")
                    .header("host", HOST)
                    .body(Empty::<Bytes>::new())
                    .ok()?;
                (s.send_request(req).await.ok()?.status() == StatusCode::OK).then_some(())
            }
        })
        .await;
        tokio::spawn(async move {
            let _keep = running;
            std::future::pending::<()>().await
        });
        (backend_addr, (http, https), cluster)
    });
    println!("{conns} connections, {secs} s per case, loopback, 6-byte responses\n");
    let cases: Vec<(&str, Target)> = vec![
        (
            "direct to the backend, HTTP keep-alive",
            Target {
                addr: backend_addr,
                mode: Mode::Http,
                keep_alive: true,
                tls: None,
            },
        ),
        (
            "rkube ingress, HTTP keep-alive",
            Target {
                addr: proxy.0,
                mode: Mode::Http,
                keep_alive: true,
                tls: None,
            },
        ),
        (
            "rkube ingress, HTTPS keep-alive (HTTP/1.1)",
            Target {
                addr: proxy.1,
                mode: Mode::Https,
                keep_alive: true,
                tls: Some(client_tls(&ca, b"http/1.1")),
            },
        ),
        (
            "rkube ingress, HTTPS HTTP/2 (8 streams/conn)",
            Target {
                addr: proxy.1,
                mode: Mode::H2,
                keep_alive: true,
                tls: Some(client_tls(&ca, b"h2")),
            },
        ),
        (
            "direct to the backend, HTTP new connections",
            Target {
                addr: backend_addr,
                mode: Mode::Http,
                keep_alive: false,
                tls: None,
            },
        ),
        (
            "rkube ingress, HTTP new connections",
            Target {
                addr: proxy.0,
                mode: Mode::Http,
                keep_alive: false,
                tls: None,
            },
        ),
        (
            "rkube ingress, HTTPS new connections",
            Target {
                addr: proxy.1,
                mode: Mode::Https,
                keep_alive: false,
                tls: Some(client_tls(&ca, b"http/1.1")),
            },
        ),
    ];
    for (name, t) in cases {
        let f = clients.block_on(load(t, conns, secs));
        print(name, &f);
    }
    let nginx = ["/usr/sbin/nginx", "/usr/bin/nginx"]
        .iter()
        .any(|p| std::path::Path::new(p).exists());
    if nginx {
        println!("\nnginx is installed, but this bench does not drive it yet (see the README)");
    } else {
        println!("\nnginx: not installed (Debian's nginx package absent), no comparison");
    }
    println!();
    build_1000();
    drop(servers);
}
