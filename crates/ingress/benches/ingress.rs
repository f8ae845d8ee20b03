//! The ingress proxy's throughput and latency side by side with Debian's nginx as a reverse
//! proxy to the same backend, and with the backend directly, all on loopback: one small
//! backend (a 6-byte answer; plain HTTP, and TLS on a second port for the direct HTTPS
//! column), the controller serving an Ingress to it, nginx configured as ingress-nginx
//! would be for that Ingress, and one closed-loop client of N connections for every column.
//! Keep-alive and a new connection per request; HTTP, HTTPS (HTTP/1.1) and HTTPS with HTTP/2.
//! Each round measures every case on the three targets in turn (so a change in the machine's
//! load hits all three alike); the table gives the median round and the range. Then the
//! memory 1,000 Ingress rules take: rkube's heap (inputs as the informers cache them, and
//! the built tables) and nginx's PSS with the equivalent 1,000 server blocks. No
//! assertions: the figures are the result.
//!
//! rkube's proxy runs on a tokio runtime of `INGRESS_BENCH_THREADS` worker threads (default:
//! the CPUs) with the in-process API server (idle while measuring); nginx gets as many
//! worker processes; the backend and the client have runtimes of their own.
//!
//! `cargo bench -p rkube-ingress --bench ingress` (env `INGRESS_BENCH_SECS`, default 5;
//! `INGRESS_BENCH_CONNS`, default 32; `INGRESS_BENCH_ROUNDS`, default 3;
//! `INGRESS_BENCH_THREADS`; `INGRESS_BENCH_NGINX`, the nginx binary, default from PATH).
#![allow(clippy::unwrap_used, clippy::expect_used)] // a benchmark: a failed step should panic

use std::alloc::{GlobalAlloc, Layout};
use std::sync::atomic::{AtomicBool, Ordering};

/// The allocator the `rkube` binary runs its servers with (figures mean what users get),
/// counted through `common::heap` only while the memory of 1,000 rules is measured: a
/// counter shared by every thread would tax the proxy's allocations during the load cases
/// (and not nginx's).
struct Switch;
static COUNTING: AtomicBool = AtomicBool::new(false);
static COUNTED: common::heap::Counting<mimalloc::MiMalloc> =
    common::heap::Counting(mimalloc::MiMalloc);

// SAFETY: both paths are the same mimalloc; the counting one only adds a counter, so a block
// may be freed through either path whichever allocated it.
unsafe impl GlobalAlloc for Switch {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        // SAFETY: the caller's contract is passed on as it is.
        unsafe {
            if COUNTING.load(Ordering::Relaxed) {
                COUNTED.alloc(l)
            } else {
                mimalloc::MiMalloc.alloc(l)
            }
        }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        // SAFETY: as above.
        unsafe {
            if COUNTING.load(Ordering::Relaxed) {
                COUNTED.dealloc(p, l)
            } else {
                mimalloc::MiMalloc.dealloc(p, l)
            }
        }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
        // SAFETY: as above.
        unsafe {
            if COUNTING.load(Ordering::Relaxed) {
                COUNTED.realloc(p, l, new)
            } else {
                mimalloc::MiMalloc.realloc(p, l, new)
            }
        }
    }
}

#[global_allocator]
static ALLOCATOR: Switch = Switch;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
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

/// The backend: "hello\n" to everything, HTTP/1.1 keep-alive; with `tls`, over TLS (HTTP/1.1
/// or HTTP/2 by ALPN), for the direct HTTPS column.
async fn backend(tls: Option<Arc<rustls::ServerConfig>>) -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((s, _)) = l.accept().await else {
                continue;
            };
            let _ = s.set_nodelay(true);
            let tls = tls.clone();
            tokio::spawn(async move {
                let svc = service_fn(|_req| async {
                    Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(b"hello\n"))))
                });
                match tls {
                    None => {
                        let _ = hyper::server::conn::http1::Builder::new()
                            .serve_connection(TokioIo::new(s), svc)
                            .await;
                    }
                    Some(cfg) => {
                        let Ok(s) = tokio_rustls::TlsAcceptor::from(cfg).accept(s).await else {
                            return;
                        };
                        let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                            .serve_connection(TokioIo::new(s), svc)
                            .await;
                    }
                }
            });
        }
    });
    addr
}

fn server_tls(crt: &str, key: &str) -> Arc<rustls::ServerConfig> {
    let chain = rustls_pemfile::certs(&mut crt.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    let key = rustls_pemfile::private_key(&mut key.as_bytes())
        .unwrap()
        .unwrap();
    let mut cfg = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(chain, key)
    .unwrap();
    cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Arc::new(cfg)
}

type H1 = hyper::client::conn::http1::SendRequest<Empty<Bytes>>;
type H2 = hyper::client::conn::http2::SendRequest<Empty<Bytes>>;

enum Conn {
    H1(H1),
    H2(H2),
}

async fn connect(t: &Target) -> Conn {
    try_connect(t).await.unwrap()
}

async fn try_connect(t: &Target) -> Option<Conn> {
    let tcp = TcpStream::connect(t.addr).await.ok()?;
    tcp.set_nodelay(true).ok()?;
    Some(match (&t.tls, t.mode) {
        (None, _) => {
            let (s, c) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
                .await
                .ok()?;
            tokio::spawn(c);
            Conn::H1(s)
        }
        (Some(cfg), mode) => {
            let name = rustls::pki_types::ServerName::try_from(HOST).ok()?;
            let tls = tokio_rustls::TlsConnector::from(cfg.clone())
                .connect(name, tcp)
                .await
                .ok()?;
            if mode == Mode::H2 {
                let (s, c) =
                    hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tls))
                        .await
                        .ok()?;
                tokio::spawn(c);
                Conn::H2(s)
            } else {
                let (s, c) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
                    .await
                    .ok()?;
                tokio::spawn(c);
                Conn::H1(s)
            }
        }
    })
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
                    conn = try_connect(&t).await;
                    if conn.is_none() {
                        errors += 1;
                        continue;
                    }
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

/// The 1,000 Ingresses of the memory case: one host and path each, 1,000 Services with 3
/// endpoints each (never connected to).
fn endpoint_ip(i: usize, e: usize) -> String {
    format!("127.1.{}.{}", i / 200, (i % 200) + e)
}

/// Builds the routing table of 1,000 Ingresses, as a rebuild after any change does: its time
/// and the heap the inputs (as the informers' caches hold them) and the tables keep, in bytes.
fn build_1000() -> (Duration, isize, isize) {
    use k8s_openapi::api::core::v1::Service as Svc;
    COUNTING.store(true, Ordering::SeqCst);
    let before = common::heap::live();
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
            "endpoints": (0..3).map(|e| json!({"addresses": [endpoint_ip(i, e)]})).collect::<Vec<_>>(),
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
    let inputs = common::heap::live() - before;
    let health = ingress::backend::HealthRegistry::new(3, Duration::from_secs(10));
    let mut cache = ingress::certs::CertCache::default();
    let build = |cache: &mut ingress::certs::CertCache| {
        ingress::build::build(
            ingress::build::Inputs {
                ingresses: ingresses.clone(),
                services: &services,
                slices: &slices,
                secrets: &[],
                default_cert: None,
            },
            &health,
            cache,
        )
    };
    let before_tables = common::heap::live();
    let built = build(&mut cache);
    let tables = common::heap::live() - before_tables;
    assert_eq!(built.routes.len(), 1000);
    drop(built);
    COUNTING.store(false, Ordering::SeqCst);
    let mut times = Vec::new();
    for _ in 0..10 {
        let start = Instant::now();
        let built = build(&mut cache);
        times.push(start.elapsed());
        drop(built);
    }
    times.sort();
    (times[5], inputs, tables)
}

/// Debian's nginx, found on PATH (or `INGRESS_BENCH_NGINX`).
fn nginx_binary() -> Option<PathBuf> {
    if let Ok(p) = std::env::var("INGRESS_BENCH_NGINX") {
        return Some(PathBuf::from(p));
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin".into(), "/sbin".into()])
        .map(|d| d.join("nginx"))
        .find(|p| p.is_file())
}

/// An nginx of its own: config, certificate, pid and logs in a temporary directory, in the
/// foreground; stopped (`-s stop`) and its directory removed on drop.
struct Nginx {
    bin: PathBuf,
    dir: PathBuf,
    child: std::process::Child,
}

/// A free loopback port (bound, then released for nginx to bind).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The `http {}` block's common part: what the bench's nginx shares whatever its servers.
fn nginx_conf(dir: &Path, workers: usize, servers: &str) -> String {
    let d = dir.display();
    format!(
        "worker_processes {workers};
pid {d}/nginx.pid;
error_log {d}/error.log warn;
events {{ worker_connections 8192; }}
http {{
    access_log off;
    # Room for 1,000 server names (nginx warns and builds a slower hash otherwise).
    server_names_hash_max_size 4096;
    client_body_temp_path {d}/body;
    proxy_temp_path {d}/proxy;
    fastcgi_temp_path {d}/fastcgi;
    uwsgi_temp_path {d}/uwsgi;
    scgi_temp_path {d}/scgi;
    # Never close a client's keep-alive connection on a request count (the ingress does not).
    keepalive_requests 1000000;
    ssl_certificate {d}/tls.crt;
    ssl_certificate_key {d}/tls.key;
    # What ingress-nginx sets: the same headers the ingress adds.
    proxy_http_version 1.1;
    proxy_set_header Connection \"\";
    proxy_set_header Host $host;
    proxy_set_header X-Real-IP $remote_addr;
    proxy_set_header X-Forwarded-For $remote_addr;
    proxy_set_header X-Forwarded-Host $host;
    proxy_set_header X-Forwarded-Port $server_port;
    proxy_set_header X-Forwarded-Proto $scheme;
{servers}}}
"
    )
}

impl Nginx {
    fn start(bin: &Path, conf: impl FnOnce(&Path) -> String, crt: &str, key: &str) -> Nginx {
        static SEQ: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "rkube-ingress-bench-nginx-{}-{}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("tls.crt"), crt).unwrap();
        std::fs::write(dir.join("tls.key"), key).unwrap();
        std::fs::write(dir.join("nginx.conf"), conf(&dir)).unwrap();
        let child = std::process::Command::new(bin)
            .arg("-p")
            .arg(&dir)
            .arg("-c")
            .arg(dir.join("nginx.conf"))
            .arg("-e")
            .arg(dir.join("error.log"))
            .args(["-g", "daemon off;"])
            .stdin(std::process::Stdio::null())
            .spawn()
            .unwrap();
        Nginx {
            bin: bin.to_path_buf(),
            dir,
            child,
        }
    }

    /// Waits for the master's pid file and `workers` worker processes, then gives the sum of
    /// their PSS (shared pages split among them) in bytes.
    fn pss(&mut self, workers: usize) -> u64 {
        let master = self.child.id();
        for _ in 0..200 {
            let kids = children(master);
            if kids.len() >= workers {
                std::thread::sleep(Duration::from_millis(300));
                return std::iter::once(master)
                    .chain(children(master))
                    .map(pss_of)
                    .sum();
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("nginx exited: {status}; {}", self.error_log());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("nginx's workers did not start; {}", self.error_log());
    }

    fn error_log(&self) -> String {
        std::fs::read_to_string(self.dir.join("error.log")).unwrap_or_default()
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = std::process::Command::new(&self.bin)
            .arg("-p")
            .arg(&self.dir)
            .arg("-c")
            .arg(self.dir.join("nginx.conf"))
            .arg("-e")
            .arg(self.dir.join("error.log"))
            .args(["-s", "stop"])
            .status();
        for _ in 0..100 {
            if let Ok(Some(_)) = self.child.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The processes whose parent is `pid`.
fn children(pid: u32) -> Vec<u32> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(p) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{p}/stat")) else {
            continue;
        };
        // pid (comm) state ppid ...: comm may hold spaces, so split after its ')'.
        let ppid = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().nth(1))
            .and_then(|s| s.parse::<u32>().ok());
        if ppid == Some(pid) {
            out.push(p);
        }
    }
    out
}

/// A process's PSS in bytes (`/proc/PID/smaps_rollup`).
fn pss_of(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("Pss:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

/// nginx's PSS (master + workers) with one server block, then with 1,000 server blocks and
/// 1,000 upstreams of 3 servers (keepalive 64), as the 1,000 Ingresses of `build_1000`.
fn nginx_memory(bin: &Path, workers: usize, crt: &str, key: &str) -> (u64, u64) {
    let port = free_port();
    let one = format!(
        "    upstream u0 {{ server {}:8080; server {}:8080; server {}:8080; keepalive 64; }}
    server {{ listen 127.0.0.1:{port}; server_name site-0.example.com;
        location /app-0 {{ proxy_pass http://u0; }} }}
",
        endpoint_ip(0, 0),
        endpoint_ip(0, 1),
        endpoint_ip(0, 2)
    );
    let mut thousand = String::new();
    for i in 0..1000 {
        thousand.push_str(&format!(
            "    upstream u{i} {{ server {}:8080; server {}:8080; server {}:8080; keepalive 64; }}
    server {{ listen 127.0.0.1:{port}; server_name site-{i}.example.com;
        location /app-{i} {{ proxy_pass http://u{i}; }} }}
",
            endpoint_ip(i, 0),
            endpoint_ip(i, 1),
            endpoint_ip(i, 2)
        ));
    }
    let mut small = Nginx::start(bin, |d| nginx_conf(d, workers, &one), crt, key);
    let small_pss = small.pss(workers);
    drop(small);
    let mut big = Nginx::start(bin, |d| nginx_conf(d, workers, &thousand), crt, key);
    let big_pss = big.pss(workers);
    drop(big);
    (small_pss, big_pss)
}

/// The bench's nginx: the Ingress's host and path to the backend through a keep-alive
/// upstream pool, HTTP on one port, HTTPS (HTTP/1.1 and HTTP/2 by ALPN) with the Ingress's
/// certificate on another.
fn nginx_proxy(
    bin: &Path,
    workers: usize,
    backend: SocketAddr,
    crt: &str,
    key: &str,
) -> (Nginx, SocketAddr, SocketAddr) {
    let (http, https) = (free_port(), free_port());
    let servers = format!(
        "    upstream bench {{ server {backend}; keepalive 64; keepalive_requests 1000000; }}
    server {{
        listen 127.0.0.1:{http};
        listen 127.0.0.1:{https} ssl http2;
        server_name {HOST};
        location / {{ proxy_pass http://bench; }}
    }}
"
    );
    let nginx = Nginx::start(bin, |d| nginx_conf(d, workers, &servers), crt, key);
    let addr = |p: u16| SocketAddr::from(([127, 0, 0, 1], p));
    (nginx, addr(http), addr(https))
}

/// Waits until `t` answers 200.
async fn ready(what: &str, t: Target) {
    eventually(what, || {
        let t = t.clone();
        async move {
            let ok = tokio::time::timeout(Duration::from_secs(2), async {
                let mut c = try_connect(&t).await?;
                request(&mut c).await.then_some(())
            })
            .await;
            ok.ok().flatten()
        }
    })
    .await;
}

fn env<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

fn mb(bytes: f64) -> String {
    format!("{:.1} MB", bytes / 1e6)
}

fn main() {
    let secs: u64 = env("INGRESS_BENCH_SECS", 5);
    let conns: usize = env("INGRESS_BENCH_CONNS", 32);
    let rounds: usize = env("INGRESS_BENCH_ROUNDS", 3).max(1);
    let cpus = std::thread::available_parallelism().map_or(2, |n| n.get());
    let threads: usize = env("INGRESS_BENCH_THREADS", cpus).max(1);
    let nginx_bin = nginx_binary();
    if nginx_bin.is_none() {
        println!(
            "nginx: NOT INSTALLED, the nginx column stays empty. Install Debian's (as root):\n  \
             apt-get install -y --no-install-recommends nginx-light\n\
             or point INGRESS_BENCH_NGINX at an nginx binary.\n"
        );
    }
    let (ca, crt, key) = certificates();

    // Memory first, with nothing else running: the heap counter sees only this thread.
    let (build_time, inputs, tables) = build_1000();
    let nginx_mem = nginx_bin
        .as_deref()
        .map(|b| nginx_memory(b, threads, &crt, &key));

    // The proxy (with the API server and the controller), the backend and the client each on
    // a runtime of their own: the proxy's threads are its own, as nginx's workers are.
    // Named, so a profile (`perf report --comm proxy`) tells the three apart.
    let servers = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .thread_name("proxy")
        .enable_all()
        .build()
        .unwrap();
    let backends = tokio::runtime::Builder::new_multi_thread()
        .thread_name("backend")
        .enable_all()
        .build()
        .unwrap();
    let clients = tokio::runtime::Builder::new_multi_thread()
        .thread_name("client")
        .enable_all()
        .build()
        .unwrap();
    let (backend_http, backend_https) = backends.block_on(async {
        (
            backend(None).await,
            backend(Some(server_tls(&crt, &key))).await,
        )
    });
    let (proxy, _cluster) = servers.block_on(async {
        let cluster = Cluster::start(false).await;
        let client = cluster.client().await;
        let mut cfg = ingress::IngressConfig::new("bench", vec!["127.0.0.1".parse().unwrap()]);
        cfg.http_addr = Some("127.0.0.1:0".parse().unwrap());
        cfg.https_addr = Some("127.0.0.1:0".parse().unwrap());
        let running = ingress::start(client.clone(), cfg).await.unwrap();
        setup(&client, backend_http, &crt, &key).await;
        let http = running.http_addr.unwrap();
        let https = running.https_addr.unwrap();
        tokio::spawn(async move {
            let _keep = running;
            std::future::pending::<()>().await
        });
        ((http, https), cluster)
    });
    let nginx = nginx_bin
        .as_deref()
        .map(|b| nginx_proxy(b, threads, backend_http, &crt, &key));

    let target = |addr: SocketAddr, mode: Mode, keep_alive: bool| Target {
        addr,
        mode,
        keep_alive,
        tls: match mode {
            Mode::Http => None,
            Mode::Https => Some(client_tls(&ca, b"http/1.1")),
            Mode::H2 => Some(client_tls(&ca, b"h2")),
        },
    };
    let cases: [(&str, Mode, bool); 5] = [
        ("HTTP keep-alive", Mode::Http, true),
        ("HTTPS keep-alive (HTTP/1.1)", Mode::Https, true),
        ("HTTPS HTTP/2 (8 streams/conn)", Mode::H2, true),
        ("HTTP new connection per request", Mode::Http, false),
        ("HTTPS new connection per request", Mode::Https, false),
    ];
    const COLUMNS: [&str; 3] = ["direct", "rkube", "nginx"];
    // targets[case][column]
    let targets: Vec<Vec<Option<Target>>> = cases
        .iter()
        .map(|&(_, mode, ka)| {
            let direct = if mode == Mode::Http {
                backend_http
            } else {
                backend_https
            };
            let rkube = if mode == Mode::Http { proxy.0 } else { proxy.1 };
            let ngx = nginx
                .as_ref()
                .map(|(_, h, s)| if mode == Mode::Http { *h } else { *s });
            vec![
                Some(target(direct, mode, ka)),
                Some(target(rkube, mode, ka)),
                ngx.map(|a| target(a, mode, ka)),
            ]
        })
        .collect();
    clients.block_on(async {
        for (c, row) in targets.iter().enumerate() {
            for (col, t) in row.iter().enumerate() {
                if let Some(t) = t {
                    ready(&format!("{} {}", COLUMNS[col], cases[c].0), t.clone()).await;
                }
            }
        }
    });

    println!(
        "{conns} connections, {secs} s per case, {rounds} rounds, loopback, 6-byte responses; \
         rkube's proxy on {threads} tokio threads, nginx ({}) with {threads} workers\n",
        nginx_bin
            .as_deref()
            .map_or("absent".to_string(), |b| b.display().to_string())
    );
    let mut results: Vec<Vec<Vec<Figures>>> = cases
        .iter()
        .map(|_| COLUMNS.iter().map(|_| Vec::new()).collect())
        .collect();
    for round in 1..=rounds {
        println!("round {round}");
        for (c, row) in targets.iter().enumerate() {
            for (col, t) in row.iter().enumerate() {
                let Some(t) = t else { continue };
                let f = clients.block_on(load(t.clone(), conns, secs));
                print(&format!("{}, {}", COLUMNS[col], cases[c].0), &f);
                results[c][col].push(f);
            }
        }
        println!();
    }

    // The median round of each cell (by req/s) with its latencies, and the req/s range.
    println!("median of {rounds} rounds (req/s min–max); p50 / p99 of the median round\n");
    println!(
        "| case | direct req/s | rkube req/s | nginx req/s | rkube / nginx | direct p50 / p99 | rkube p50 / p99 | nginx p50 / p99 |"
    );
    println!("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
    for (c, (name, _, _)) in cases.iter().enumerate() {
        let mut rps = Vec::new();
        let mut lat = Vec::new();
        let mut med = Vec::new();
        for runs in &mut results[c] {
            if runs.is_empty() {
                rps.push("—".to_string());
                lat.push("—".to_string());
                med.push(None);
                continue;
            }
            runs.sort_by(|a, b| a.rps.total_cmp(&b.rps));
            let m = &runs[runs.len() / 2];
            let (lo, hi) = (runs[0].rps, runs[runs.len() - 1].rps);
            let errors: usize = runs.iter().map(|f| f.errors).sum();
            let err = if errors > 0 {
                format!(" ({errors} errors)")
            } else {
                String::new()
            };
            rps.push(if runs.len() > 1 {
                format!("{:.0} ({:.0}–{:.0}){err}", m.rps, lo, hi)
            } else {
                format!("{:.0}{err}", m.rps)
            });
            lat.push(format!(
                "{:.2} / {:.2} ms",
                m.p50.as_secs_f64() * 1000.0,
                m.p99.as_secs_f64() * 1000.0
            ));
            med.push(Some(m.rps));
        }
        let ratio = match (med[1], med[2]) {
            (Some(r), Some(n)) if n > 0.0 => format!("{:.2}", r / n),
            _ => "—".to_string(),
        };
        println!(
            "| {name} | {} | {} | {} | {ratio} | {} | {} | {} |",
            rps[0], rps[1], rps[2], lat[0], lat[1], lat[2]
        );
    }

    println!("\n1,000 Ingress rules (1,000 hosts x 1 path, 1,000 Services x 3 endpoints):");
    println!(
        "  rkube: routing table build median {:.2} ms (of 10); heap: inputs as cached {}, \
         built tables {}",
        build_time.as_secs_f64() * 1000.0,
        mb(inputs as f64),
        mb(tables as f64)
    );
    match nginx_mem {
        Some((one, thousand)) => println!(
            "  nginx, {threads} workers: PSS master + workers {} with 1 server block, {} with \
             1,000 (+{})",
            mb(one as f64),
            mb(thousand as f64),
            mb(thousand as f64 - one as f64)
        ),
        None => println!("  nginx: not installed, not measured"),
    }
    drop(nginx);
    drop(servers);
}
