//! 1,000 Services × 10 endpoints: ruleset generation, the full `nft -f` apply, an in-place
//! rebuild, and the time from a single-endpoint change to the rules being applied (p50/p99)
//! — with the engine driven directly, then through the API server and the informers.
//! Needs root for nft (a throwaway network namespace of its own); prints figures only.
//!
//! `cargo bench -p rkube-proxy --bench proxy_sync` (`PROXY_BENCH_SERVICES`, `…_ENDPOINTS`,
//! `…_CHANGES` change the sizes).
#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed bench step should panic

/// The allocator the `rkube` binary runs its servers with (figures mean what users get).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[path = "../tests/netlab/mod.rs"]
mod netlab;

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use apiserver::testing::Cluster;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::Api;
use kube::api::{Patch, PatchParams, PostParams};
use proxy::model::{Endpoint, Protocol, ServicePort, ServiceState};
use proxy::proxier::Proxier;
use proxy::ruleset::{self, RulesConfig};
use proxy::script::{self, Previous};
use proxy::{ProxyConfig, SyncStatus};
use serde_json::json;

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn pct(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    ms(sorted[i])
}

fn report(what: &str, mut v: Vec<Duration>) {
    v.sort();
    println!(
        "{what}: n={} p50={:.1} ms p99={:.1} ms max={:.1} ms",
        v.len(),
        pct(&v, 0.5),
        pct(&v, 0.99),
        v.last().map_or(0.0, |d| ms(*d))
    );
}

/// Endpoint `i` of service `s`: 10.42.0.0/16 at first, a fresh address per generation after.
fn ep_ip(svc: usize, i: usize, generation: usize) -> Ipv4Addr {
    let n = (svc * 10 + i) as u32;
    if generation == 0 {
        Ipv4Addr::from(0x0a2a_0000 + n)
    } else {
        Ipv4Addr::from(0x0b00_0000 + generation as u32 * 100_000 + n)
    }
}

fn states(services: usize, endpoints: usize) -> Vec<ServiceState> {
    (0..services)
        .map(|s| ServiceState {
            port: ServicePort {
                namespace: "default".into(),
                name: format!("svc-{s}"),
                port_name: "http".into(),
                protocol: Protocol::Tcp,
                cluster_ip: Ipv4Addr::from(0x0a2b_0000 + 100 + s as u32),
                port: 80,
                node_port: if s % 10 == 0 { 30000 + s as u16 } else { 0 },
                external_ips: vec![],
                load_balancer_ips: vec![],
                load_balancer_source_ranges: vec![],
                affinity_timeout: None,
                external_policy_local: false,
                internal_policy_local: false,
            },
            endpoints: (0..endpoints)
                .map(|i| Endpoint {
                    ip: ep_ip(s, i, 0),
                    port: 8080,
                    ready: true,
                    serving: true,
                    terminating: false,
                    local: i % 3 == 0,
                })
                .collect(),
        })
        .collect()
}

async fn engine(services: usize, endpoints: usize, changes: usize) {
    let cfg = RulesConfig {
        cluster_cidr: "10.42.0.0/16".into(),
        service_cidr: "10.43.0.0/16".into(),
    };
    let mut st = states(services, endpoints);
    let t = Instant::now();
    let rs = ruleset::generate(&st, &cfg);
    let generate = t.elapsed();
    let t = Instant::now();
    let text = script::render("rkp-bench", &Previous::Fresh, &rs);
    let render = t.elapsed();
    println!(
        "engine: {services} services x {endpoints} endpoints: {} chains, generate {:.1} ms, render {:.1} ms, script {} KiB",
        rs.chains().count(),
        ms(generate),
        ms(render),
        text.len() / 1024
    );
    if !netlab::can_run() {
        return;
    }
    let ns = netlab::Netns::new().unwrap();
    let mut pcfg = ProxyConfig::new("node-1");
    pcfg.netns = Some(ns.path());
    pcfg.table = "rkp-bench".into();
    let mut p = Proxier::new(&pcfg);
    let t = Instant::now();
    let s = p.sync(st.clone(), false).await.unwrap();
    println!(
        "engine: first sync (table replaced from scratch) {:.1} ms (nft apply {:.1} ms)",
        ms(t.elapsed()),
        ms(s.apply)
    );
    let t = Instant::now();
    let s = p.sync(st.clone(), true).await.unwrap();
    println!(
        "engine: full in-place rebuild {:.1} ms (nft apply {:.1} ms, {} KiB)",
        ms(t.elapsed()),
        ms(s.apply),
        s.script_bytes / 1024
    );
    let (mut lat, mut gen_t, mut apply_t, mut bytes) = (Vec::new(), Vec::new(), Vec::new(), 0);
    for c in 0..changes {
        let svc = (c * 37) % services;
        st[svc].endpoints[c % endpoints].ip = ep_ip(svc, c % endpoints, c + 1);
        let t = Instant::now();
        let s = p.sync(st.clone(), false).await.unwrap();
        lat.push(t.elapsed());
        gen_t.push(s.generate);
        apply_t.push(s.apply);
        bytes += s.script_bytes;
    }
    report("engine: one endpoint changed -> rules applied", lat);
    report("engine:   of which generating the ruleset", gen_t);
    report("engine:   of which nft -f (diff script)", apply_t);
    println!(
        "engine:   diff script {} bytes on average",
        bytes / changes.max(1)
    );
}

async fn through_api(services: usize, endpoints: usize, changes: usize) {
    if !netlab::can_run() {
        return;
    }
    let cluster = Cluster::start(false).await;
    let client = cluster.client().await;
    let svcs: Api<Service> = Api::namespaced(client.clone(), "default");
    let slices: Api<EndpointSlice> = Api::namespaced(client.clone(), "default");
    let t = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for s in 0..services {
        let (svcs, slices) = (svcs.clone(), slices.clone());
        tasks.spawn(async move {
            let svc: Service = serde_json::from_value(json!({
                "metadata": {"name": format!("svc-{s}")},
                "spec": {"ports": [{"name": "http", "port": 80, "targetPort": 8080}]}
            }))
            .unwrap();
            svcs.create(&PostParams::default(), &svc).await.unwrap();
            let sl = slice_of(s, endpoints, 0, None);
            slices.create(&PostParams::default(), &sl).await.unwrap();
        });
        // Bounded concurrency: the server shares our two cores.
        while tasks.len() >= 16 {
            tasks.join_next().await;
        }
    }
    while tasks.join_next().await.is_some() {}
    println!(
        "api: created {services} services + slices in {:.1} s",
        t.elapsed().as_secs_f64()
    );

    let ns = netlab::Netns::new().unwrap();
    let mut cfg = ProxyConfig::new("node-1");
    cfg.netns = Some(ns.path());
    cfg.table = "rkp-bench".into();
    let (tx, mut rx) = tokio::sync::watch::channel::<Option<SyncStatus>>(None);
    let t = Instant::now();
    let proxy = tokio::spawn(proxy::run_with_status(client.clone(), cfg, Some(tx)));
    let want = services * endpoints;
    rx.wait_for(|s| s.as_ref().is_some_and(|s| s.stats.endpoints >= want))
        .await
        .unwrap();
    println!(
        "api: proxy start to all {want} endpoints programmed: {:.1} ms",
        ms(t.elapsed())
    );

    let mut lat = Vec::new();
    for c in 0..changes {
        let s = (c * 37) % services;
        let sl = slice_of(s, endpoints, c + 1, Some(c % endpoints));
        let new_ip = ep_ip(s, c % endpoints, c + 1);
        let suffix = format!("default/svc-{s}/tcp/http__{new_ip}/8080");
        let t0 = Instant::now();
        slices
            .patch(
                &format!("svc-{s}-x1"),
                &PatchParams::apply("bench").force(),
                &Patch::Apply(&sl),
            )
            .await
            .unwrap();
        let st = rx
            .wait_for(|st| {
                st.as_ref()
                    .is_some_and(|st| st.ruleset.chains().any(|(k, _)| k.ends_with(&suffix)))
            })
            .await
            .unwrap()
            .clone()
            .unwrap();
        lat.push(st.at.saturating_duration_since(t0));
    }
    report("api: endpoint change (API write) -> rules applied", lat);
    proxy.abort();
}

/// The slice of service `s`; endpoint `changed` gets the address of `generation`.
fn slice_of(
    s: usize,
    endpoints: usize,
    generation: usize,
    changed: Option<usize>,
) -> EndpointSlice {
    let eps: Vec<_> = (0..endpoints)
        .map(|i| {
            let g = if Some(i) == changed { generation } else { 0 };
            json!({"addresses": [ep_ip(s, i, g).to_string()], "conditions": {"ready": true},
                   "nodeName": "node-1"})
        })
        .collect();
    serde_json::from_value(json!({
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {"name": format!("svc-{s}-x1"), "namespace": "default",
                     "labels": {"kubernetes.io/service-name": format!("svc-{s}")}},
        "addressType": "IPv4",
        "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
        "endpoints": eps,
    }))
    .unwrap()
}

fn main() {
    let services = env("PROXY_BENCH_SERVICES", 1000);
    let endpoints = env("PROXY_BENCH_ENDPOINTS", 10);
    let changes = env("PROXY_BENCH_CHANGES", 50);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        engine(services, endpoints, changes).await;
        through_api(services, endpoints, changes).await;
    });
}
