//! Cluster DNS throughput and latency: 1,000 Services (900 ClusterIP, 100 headless with 10
//! ready endpoints each) served over loopback UDP to concurrent clients. Prints the index
//! build time, in-process resolution rate, queries/s with p50/p99 latency per kind of name,
//! and the process RSS. No assertions: the figures are the result.
//!
//! `cargo bench -p rkube-dns --bench dns_queries` (env `DNS_BENCH_SECS`, `DNS_BENCH_CLIENTS`).
#![allow(clippy::unwrap_used, clippy::expect_used)] // a benchmark: a failed step should panic

/// The allocator the `rkube` binary runs its servers with (figures mean what users get).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use dns::index::{Index, SERVICE_NAME_LABEL};
use dns::resolve::Zone;
use dns::{DnsConfig, Records, Server};
use hickory_server::proto::op::{Message, Query};
use hickory_server::proto::rr::{Name, RecordType};
use k8s_openapi::api::core::v1::{Service, ServicePort, ServiceSpec};
use k8s_openapi::api::discovery::v1::{Endpoint, EndpointConditions, EndpointPort, EndpointSlice};
use kube::api::ObjectMeta;

const SERVICES: usize = 1000;
const HEADLESS: usize = 100;
const ENDPOINTS: usize = 10;

fn meta(ns: &str, name: &str) -> ObjectMeta {
    ObjectMeta {
        namespace: Some(ns.into()),
        name: Some(name.into()),
        ..Default::default()
    }
}

fn namespace(i: usize) -> String {
    format!("ns-{}", i % 20)
}

fn objects() -> (Vec<Arc<Service>>, Vec<Arc<EndpointSlice>>) {
    let mut svcs = Vec::new();
    let mut slices = Vec::new();
    for i in 0..SERVICES {
        let ns = namespace(i);
        let name = format!("svc-{i}");
        let headless = i < HEADLESS;
        let ip = if headless {
            "None".to_string()
        } else {
            format!("10.43.{}.{}", i / 250, i % 250 + 1)
        };
        svcs.push(Arc::new(Service {
            metadata: meta(&ns, &name),
            spec: Some(ServiceSpec {
                cluster_ip: Some(ip.clone()),
                cluster_ips: Some(vec![ip]),
                ports: Some(vec![ServicePort {
                    name: Some("http".into()),
                    port: 80,
                    protocol: Some("TCP".into()),
                    ..Default::default()
                }]),
                ..Default::default()
            }),
            status: None,
        }));
        if headless {
            let mut m = meta(&ns, &format!("{name}-abcde"));
            m.labels = Some([(SERVICE_NAME_LABEL.to_string(), name.clone())].into());
            slices.push(Arc::new(EndpointSlice {
                metadata: m,
                address_type: "IPv4".into(),
                endpoints: (0..ENDPOINTS)
                    .map(|e| Endpoint {
                        addresses: vec![format!("10.42.{}.{}", i, e + 2)],
                        hostname: Some(format!("{name}-{e}")),
                        conditions: Some(EndpointConditions {
                            ready: Some(true),
                            ..Default::default()
                        }),
                        ..Default::default()
                    })
                    .collect(),
                ports: Some(vec![EndpointPort {
                    name: Some("http".into()),
                    port: Some(8080),
                    protocol: Some("TCP".into()),
                    ..Default::default()
                }]),
            }));
        }
    }
    (svcs, slices)
}

/// The names a client asks, by kind; pods with `ndots:5` ask search-list expansions first,
/// which are NXDOMAIN, so those are measured too.
fn names(kind: &str, i: usize) -> (String, RecordType) {
    let ns = namespace(i);
    match kind {
        "clusterip" => {
            let s = HEADLESS + i % (SERVICES - HEADLESS);
            let ns = namespace(s);
            (format!("svc-{s}.{ns}.svc.cluster.local."), RecordType::A)
        }
        "headless" => {
            let s = i % HEADLESS;
            let ns = namespace(s);
            (format!("svc-{s}.{ns}.svc.cluster.local."), RecordType::A)
        }
        "srv" => {
            let s = i % HEADLESS;
            let ns = namespace(s);
            (
                format!("_http._tcp.svc-{s}.{ns}.svc.cluster.local."),
                RecordType::SRV,
            )
        }
        _ => (
            format!("svc-{i}.{ns}.svc.cluster.local.{ns}.svc.cluster.local."),
            RecordType::A,
        ),
    }
}

const KINDS: [&str; 4] = ["clusterip", "headless", "srv", "nxdomain"];

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx]
}

async fn client(
    addr: SocketAddr,
    kind: &'static str,
    seed: usize,
    until: Instant,
) -> Vec<Duration> {
    let sock = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    sock.connect(addr).await.unwrap();
    let mut buf = vec![0u8; 4096];
    let mut lat = Vec::new();
    let mut i = seed;
    while Instant::now() < until {
        let (name, t) = names(kind, i);
        i += 7;
        let mut q = Message::query();
        q.add_query(Query::query(Name::from_ascii(&name).unwrap(), t));
        let bytes = q.to_vec().unwrap();
        let start = Instant::now();
        sock.send(&bytes).await.unwrap();
        match tokio::time::timeout(Duration::from_secs(1), sock.recv(&mut buf)).await {
            Ok(Ok(_)) => lat.push(start.elapsed()),
            _ => eprintln!("a {kind} query timed out"),
        }
    }
    lat
}

fn main() {
    let secs: u64 = std::env::var("DNS_BENCH_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3);
    let clients: usize = std::env::var("DNS_BENCH_CLIENTS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(16);
    let rss_start = rss_kib();
    let (svcs, slices) = objects();

    let t = Instant::now();
    let rounds = 20;
    for _ in 0..rounds {
        std::hint::black_box(Index::build(&svcs, &slices, 1));
    }
    println!(
        "index build: {SERVICES} Services ({HEADLESS} headless x {ENDPOINTS} endpoints): {:?} each",
        t.elapsed() / rounds
    );

    // In-process resolution alone (no sockets), to separate it from the serving path.
    let records = Records::fixed(&svcs, &slices);
    let zone = Zone::new("cluster.local", 5).unwrap();
    let index = records.snapshot();
    for kind in KINDS {
        let n = 100_000;
        let qs: Vec<(Name, RecordType)> = (0..1000)
            .map(|i| {
                let (name, t) = names(kind, i);
                (Name::from_ascii(name).unwrap(), t)
            })
            .collect();
        let t = Instant::now();
        for i in 0..n {
            let (name, rt) = &qs[i % qs.len()];
            std::hint::black_box(zone.resolve(&index, name, *rt));
        }
        let el = t.elapsed();
        println!(
            "resolve {kind:>9}: {:>9.0} /s in-process ({:?} each)",
            n as f64 / el.as_secs_f64(),
            el / n as u32
        );
    }
    let rss_loaded = rss_kib();

    // The server on its own 2-thread runtime; clients on another thread's runtime.
    let server_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let server = Server::bind("127.0.0.1:0".parse().unwrap(), None).unwrap();
    let addr = server.local_addr();
    let cfg = DnsConfig::new();
    server_rt.spawn(async move { server.run(records, &cfg).await });

    let client_rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    println!(
        "loopback UDP, {clients} concurrent clients, {secs}s per kind (server: 2 threads, clients: 1, same 2-core machine)"
    );
    for kind in KINDS {
        let until = Instant::now() + Duration::from_secs(secs);
        let started = Instant::now();
        let mut lat: Vec<Duration> = client_rt.block_on(async {
            let tasks: Vec<_> = (0..clients)
                .map(|c| tokio::spawn(client(addr, kind, c * 13, until)))
                .collect();
            let mut all = Vec::new();
            for t in tasks {
                all.extend(t.await.unwrap());
            }
            all
        });
        let el = started.elapsed();
        lat.sort();
        println!(
            "{kind:>9}: {:>7.0} queries/s  p50 {:>6.0} us  p99 {:>6.0} us  ({} queries)",
            lat.len() as f64 / el.as_secs_f64(),
            percentile(&lat, 0.50).as_secs_f64() * 1e6,
            percentile(&lat, 0.99).as_secs_f64() * 1e6,
            lat.len()
        );
    }
    println!(
        "RSS: {} KiB at start, {} KiB with the index, {} KiB after serving (one process: server and clients)",
        rss_start,
        rss_loaded,
        rss_kib()
    );
}
