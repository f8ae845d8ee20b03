//! The metrics pipeline's cost at 1,000 pods (10 nodes of 100), in process: each round
//! parses and decodes every node's `/metrics/resource` page (the text the kubelet writes)
//! into the storage, as one scrape period does; then `metrics.k8s.io` lists every pod, as
//! `kubectl top pod -A` and the HPA read it. Prints the heap the storage keeps, the heap the
//! server's pod informer keeps for the same pods, whole and trimmed as the metrics
//! server keeps them (it watches pods for their labels and metrics endpoints), and the CPU time of a scrape round and of a list. The network and TLS of the
//! scrape itself are not included. Allocator: mimalloc, as the rkube binary.
//!
//! `cargo bench -p rkube-metrics-server --bench pipeline`

#![allow(clippy::expect_used)] // a bench with a broken page should stop

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::heap::{Counting, live};
use k8s_openapi::api::core::v1::Pod;
use metrics_server::api::{self, Labels};
use metrics_server::storage::Storage;
use metrics_server::{decode, prom_text};

/// mimalloc, counting the bytes live on the heap.
#[global_allocator]
static GLOBAL: Counting<mimalloc::MiMalloc> = Counting(mimalloc::MiMalloc);

const NODES: usize = 10;
const PODS_PER_NODE: usize = 100;
const ROUNDS: usize = 20;

/// A node's `/metrics/resource` page as the kubelet writes it, at scrape `round`.
fn page(node: usize, round: usize) -> String {
    let ts = 1_700_000_000_000i64 + round as i64 * 15_000;
    let mut s = String::new();
    let cpu = round as f64 * 1.5;
    let _ = writeln!(
        s,
        "# HELP node_cpu_usage_seconds_total [STABLE] Cumulative cpu time consumed by the node in core-seconds\n\
         # TYPE node_cpu_usage_seconds_total counter\nnode_cpu_usage_seconds_total {cpu} {ts}\n\
         # HELP node_memory_working_set_bytes [STABLE] Current working set of the node in bytes\n\
         # TYPE node_memory_working_set_bytes gauge\nnode_memory_working_set_bytes 2.1e+09 {ts}"
    );
    for (name, typ) in [
        ("container_cpu_usage_seconds_total", "counter"),
        ("container_memory_working_set_bytes", "gauge"),
        ("container_start_time_seconds", "gauge"),
        ("pod_cpu_usage_seconds_total", "counter"),
        ("pod_memory_working_set_bytes", "gauge"),
    ] {
        let _ = writeln!(s, "# HELP {name} [STABLE] x\n# TYPE {name} {typ}");
        for p in 0..PODS_PER_NODE {
            let pod = format!("web-7d4b9c8f6d-n{node:02}p{p:03}");
            let value = match name {
                "container_start_time_seconds" => 1.6999e9,
                n if n.contains("cpu") => cpu * 0.01 * (p + 1) as f64,
                _ => 8.0e6 + p as f64 * 4096.0,
            };
            if name.starts_with("pod_") {
                let _ = writeln!(
                    s,
                    "{name}{{namespace=\"bench\",pod=\"{pod}\"}} {value} {ts}"
                );
            } else {
                let _ = writeln!(
                    s,
                    "{name}{{container=\"web\",namespace=\"bench\",pod=\"{pod}\"}} {value} {ts}"
                );
            }
        }
    }
    s.push_str("# HELP resource_scrape_error x\n# TYPE resource_scrape_error gauge\nresource_scrape_error 0\n");
    s
}

/// A pod as the API serves it for a Deployment's replica (what the informer keeps).
fn pod(node: usize, p: usize) -> Pod {
    let json = serde_json::json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": format!("web-7d4b9c8f6d-n{node:02}p{p:03}"), "namespace": "bench",
            "uid": format!("6f1c2b3a-0000-4000-8000-{node:04}{p:08}"), "resourceVersion": "123456",
            "generateName": "web-7d4b9c8f6d-", "creationTimestamp": "2026-12-07T04:00:00Z",
            "labels": {"app": "web", "pod-template-hash": "7d4b9c8f6d"},
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-7d4b9c8f6d",
                "uid": "0a1b2c3d-0000-4000-8000-000000000001", "controller": true, "blockOwnerDeletion": true}]},
        "spec": {"nodeName": format!("node-{node}"), "serviceAccountName": "default",
            "containers": [{"name": "web", "image": "rkube.local/web:1", "imagePullPolicy": "IfNotPresent",
                "resources": {"requests": {"cpu": "50m"}},
                "volumeMounts": [{"name": "kube-api-access-x1y2z", "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount", "readOnly": true}],
                "terminationMessagePath": "/dev/termination-log", "terminationMessagePolicy": "File"}],
            "volumes": [{"name": "kube-api-access-x1y2z", "projected": {"sources": [
                {"serviceAccountToken": {"path": "token", "expirationSeconds": 3607}},
                {"configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
                {"downwardAPI": {"items": [{"path": "namespace", "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"}}]}}]}}],
            "restartPolicy": "Always", "dnsPolicy": "ClusterFirst", "schedulerName": "default-scheduler",
            "tolerations": [
                {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300},
                {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300}]},
        "status": {"phase": "Running", "podIP": "10.42.0.9", "hostIP": "10.99.0.1", "qosClass": "Burstable",
            "startTime": "2026-12-07T04:00:01Z",
            "conditions": [
                {"type": "PodReadyToStartContainers", "status": "True", "lastTransitionTime": "2026-12-07T04:00:02Z"},
                {"type": "Initialized", "status": "True", "lastTransitionTime": "2026-12-07T04:00:01Z"},
                {"type": "Ready", "status": "True", "lastTransitionTime": "2026-12-07T04:00:02Z"},
                {"type": "ContainersReady", "status": "True", "lastTransitionTime": "2026-12-07T04:00:02Z"},
                {"type": "PodScheduled", "status": "True", "lastTransitionTime": "2026-12-07T04:00:00Z"}],
            "containerStatuses": [{"name": "web", "ready": true, "restartCount": 0, "started": true,
                "image": "rkube.local/web:1", "imageID": "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
                "containerID": "containerd://0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
                "state": {"running": {"startedAt": "2026-12-07T04:00:02Z"}}}]}
    });
    serde_json::from_value(json).unwrap_or_default()
}

/// Every pod exists, labelled `app=web`.
struct AllExist;
impl Labels for AllExist {
    fn node(&self, _: &str) -> Option<BTreeMap<String, String>> {
        Some(BTreeMap::new())
    }
    fn pod(&self, _: &str, _: &str) -> Option<BTreeMap<String, String>> {
        Some(BTreeMap::from([("app".to_string(), "web".to_string())]))
    }
}

fn cpu_time() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes the timespec it is given.
    unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut ts) };
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

fn main() {
    let storage = Storage::default();
    let pages: Vec<Vec<String>> = (0..ROUNDS)
        .map(|r| (0..NODES).map(|n| page(n, r)).collect())
        .collect();
    let page_bytes: usize = pages[0].iter().map(String::len).sum();

    let before = live();
    let mut rounds = Vec::new();
    for round in &pages {
        let (wall, cpu) = (Instant::now(), cpu_time());
        for (n, text) in round.iter().enumerate() {
            let e = prom_text::parse(text).expect("the page parses");
            storage.store(&format!("node-{n}"), decode::resource_metrics(&e, 0));
        }
        rounds.push((wall.elapsed(), cpu_time() - cpu));
    }
    let kept = live() - before;

    let mut lists = Vec::new();
    let mut listed = 0;
    for _ in 0..20 {
        let (wall, cpu) = (Instant::now(), cpu_time());
        let items = api::pod_metrics(&storage, &AllExist, None);
        listed = items.len();
        let body = serde_json::to_vec(&serde_json::json!({"items": items})).unwrap_or_default();
        lists.push((wall.elapsed(), cpu_time() - cpu, body.len()));
    }

    let before = live();
    let informer: Vec<Arc<Pod>> = (0..NODES)
        .flat_map(|n| (0..PODS_PER_NODE).map(move |p| Arc::new(pod(n, p))))
        .collect();
    let pods_heap = live() - before;
    let before = live();
    let trimmed: Vec<Pod> = informer
        .iter()
        .map(|p| metrics_server::custom::scrape::trim_pod(p.as_ref().clone()))
        .collect();
    let trimmed_heap = live() - before;

    let median = |mut v: Vec<Duration>| {
        v.sort();
        v[v.len() / 2]
    };
    let pods = NODES * PODS_PER_NODE;
    println!("metrics pipeline, {pods} pods on {NODES} nodes (1 container each), mimalloc");
    println!(
        "  /metrics/resource pages: {:.0} KiB a round",
        page_bytes as f64 / 1024.0
    );
    println!(
        "  scrape round (parse + decode + store, all nodes): median {:.2} ms wall, {:.2} ms CPU",
        median(rounds.iter().map(|r| r.0).collect()).as_secs_f64() * 1e3,
        median(rounds.iter().map(|r| r.1).collect()).as_secs_f64() * 1e3
    );
    println!(
        "  storage kept after {ROUNDS} rounds: {:.0} KiB ({:.0} bytes a pod)",
        kept as f64 / 1024.0,
        kept as f64 / pods as f64
    );
    println!(
        "  list of every PodMetrics ({listed} items, {:.0} KiB JSON): median {:.2} ms wall, {:.2} ms CPU",
        lists[0].2 as f64 / 1024.0,
        median(lists.iter().map(|l| l.0).collect()).as_secs_f64() * 1e3,
        median(lists.iter().map(|l| l.1).collect()).as_secs_f64() * 1e3
    );
    println!(
        "  pod informer for the same pods: {:.0} KiB ({:.0} bytes a pod)",
        pods_heap as f64 / 1024.0,
        pods_heap as f64 / pods as f64
    );
    println!(
        "  the same pods as the metrics server keeps them (trimmed): {:.0} KiB ({:.0} bytes a pod)",
        trimmed_heap as f64 / 1024.0,
        trimmed_heap as f64 / pods as f64
    );
    drop((informer, trimmed));
}
