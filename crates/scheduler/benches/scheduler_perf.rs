//! Scheduler throughput in the style of Kubernetes' scheduler_perf: an API server (SQLite),
//! hollow nodes (Node objects only, as kubemark registers them) and the scheduler, all in
//! this process; pods with resource requests are created by 32 concurrent clients and the
//! benchmark measures, from a watch, when each one is bound.
//!
//! `cargo bench -p rkube-scheduler --bench scheduler_perf [-- NODES PODS [constrained]]` (default: 1000
//! nodes / 10000 pods, then 5000 nodes / 10000 pods, then the 1000-node case with required
//! pod anti-affinity and zone topology spread).
#![allow(clippy::unwrap_used, clippy::expect_used)] // a benchmark: a failed step should panic

/// The allocator the `rkube` binary runs its servers with (figures mean what users get).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use apiserver::testing::Cluster;
use futures::StreamExt;
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::Api;
use kube::api::{PostParams, WatchEvent, WatchParams};
use serde_json::json;

const CLIENTS: usize = 32;

fn node(i: usize) -> Node {
    serde_json::from_value(json!({
        "metadata": {"name": format!("hollow-{i}"), "labels": {
            "kubernetes.io/hostname": format!("hollow-{i}"),
            "topology.kubernetes.io/zone": format!("zone-{}", i % 10)}},
        "status": {
            "capacity": {"cpu": "32", "memory": "128Gi", "pods": "110"},
            "allocatable": {"cpu": "32", "memory": "128Gi", "pods": "110"},
        }
    }))
    .unwrap()
}

fn pod(i: usize, constrained: bool) -> Pod {
    let mut spec = json!({"containers": [{"name": "c", "image": "registry.k8s.io/pause:3.10",
        "resources": {"requests": {"cpu": "100m", "memory": "500Mi"}}}]});
    if constrained {
        let group = format!("g{}", i % 100);
        spec["affinity"] = json!({"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
            {"labelSelector": {"matchLabels": {"group": group}}, "topologyKey": "kubernetes.io/hostname"}]}});
        spec["topologySpreadConstraints"] = json!([{"maxSkew": 1,
            "topologyKey": "topology.kubernetes.io/zone", "whenUnsatisfiable": "DoNotSchedule",
            "labelSelector": {"matchLabels": {"group": group}}}]);
    }
    serde_json::from_value(json!({
        "metadata": {"name": format!("p-{i}"), "labels": {"group": format!("g{}", i % 100)}},
        "spec": spec,
    }))
    .unwrap()
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[((sorted.len() as f64 * p) as usize).min(sorted.len() - 1)]
}

async fn run(nodes: usize, pods: usize, constrained: bool) {
    let c = Cluster::start(false).await;
    let client = c.client().await;
    let node_api: Api<Node> = Api::all(client.clone());
    let mut next = 0;
    while next < nodes {
        let batch: Vec<usize> = (next..(next + 64).min(nodes)).collect();
        next += batch.len();
        futures::future::join_all(batch.into_iter().map(|i| {
            let api = node_api.clone();
            async move { api.create(&PostParams::default(), &node(i)).await.unwrap() }
        }))
        .await;
    }
    let sched_client = scheduler::client(c.config().await).unwrap();
    tokio::spawn(scheduler::run_scheduler(
        sched_client,
        scheduler::plugins::default_profile(),
    ));
    let pod_api: Api<Pod> = Api::namespaced(client.clone(), "default");
    // Bound times from a watch.
    let bound: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    let b = bound.clone();
    let w = pod_api.clone();
    let watcher = tokio::spawn(async move {
        let mut s = w.watch(&WatchParams::default(), "0").await.unwrap().boxed();
        while let Some(ev) = s.next().await {
            if let Ok(WatchEvent::Modified(p)) = ev
                && p.spec.as_ref().and_then(|s| s.node_name.as_ref()).is_some()
            {
                b.lock()
                    .unwrap()
                    .entry(p.metadata.name.unwrap())
                    .or_insert_with(Instant::now);
            }
        }
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    let created: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    let start = Instant::now();
    let mut tasks = Vec::new();
    for k in 0..CLIENTS {
        let api = pod_api.clone();
        let created = created.clone();
        tasks.push(tokio::spawn(async move {
            let mut i = k;
            while i < pods {
                let p = pod(i, constrained);
                api.create(&PostParams::default(), &p).await.unwrap();
                created
                    .lock()
                    .unwrap()
                    .insert(format!("p-{i}"), Instant::now());
                i += CLIENTS;
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let created_in = start.elapsed();
    let deadline = Instant::now() + Duration::from_secs(600);
    while bound.lock().unwrap().len() < pods && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let bound = bound.lock().unwrap().clone();
    let created = created.lock().unwrap().clone();
    watcher.abort();
    let last = bound.values().max().copied().unwrap_or(start);
    let total = last.duration_since(start);
    let mut lat: Vec<Duration> = created
        .iter()
        .filter_map(|(n, t)| bound.get(n).map(|b| b.saturating_duration_since(*t)))
        .collect();
    lat.sort();
    println!(
        "{nodes:>5} nodes, {pods} pods{}: {} bound in {:.2} s = {:.0} pods/s (creates took {:.2} s); created->bound p50 {:.1} ms, p99 {:.1} ms",
        if constrained {
            " (anti-affinity + topology spread)"
        } else {
            ""
        },
        bound.len(),
        total.as_secs_f64(),
        bound.len() as f64 / total.as_secs_f64(),
        created_in.as_secs_f64(),
        percentile(&lat, 0.5).as_secs_f64() * 1000.0,
        percentile(&lat, 0.99).as_secs_f64() * 1000.0,
    );
}

fn main() {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        println!("scheduler benchmark (API server + scheduler in one process, SQLite, 2 cores)");
        let constrained = std::env::args().any(|a| a == "constrained");
        if let [nodes, pods] = args[..] {
            run(nodes, pods, constrained).await;
            return;
        }
        run(1000, 10_000, false).await;
        run(5000, 10_000, false).await;
        run(1000, 10_000, true).await;
    });
}
