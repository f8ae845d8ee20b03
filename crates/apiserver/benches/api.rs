//! API server benchmark: a real server in a child process (so its memory is its own), driven
//! over HTTPS by the `kube` client.
//!
//!     cargo bench -p rkube-apiserver --bench api
//!
//! Prints: pod creates/s with p50/p99 at 64 concurrent clients, LIST of all pods, how long
//! 1,000 watchers take to see a new pod, and the server's resident memory idle and with the
//! pods stored. `RKUBE_BENCH_PODS` (default 10000) and `RKUBE_BENCH_DATASTORE` (an etcd URL;
//! default the embedded SQLite) change the workload.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a benchmark that fails should stop loudly

/// The allocator the `rkube` binary runs its servers with.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams, PostParams, WatchEvent, WatchParams};

const CHILD: &str = "RKUBE_BENCH_SERVER_DIR";
const CREATORS: usize = 64;
const WATCHERS: usize = 1000;
const WATCHED_PODS: usize = 20;

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i].as_secs_f64() * 1000.0
}

fn rss_mib(pid: u32) -> f64 {
    store::testing::rss_kib(pid) as f64 / 1024.0
}

fn pod(name: &str) -> Pod {
    serde_json::from_value(serde_json::json!({
        "metadata": {"name": name, "labels": {"app": "bench", "tier": "web"}},
        "spec": {"containers": [{"name": "app", "image": "registry.local/app:1.0",
            "ports": [{"containerPort": 8080}],
            "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}}}]},
    }))
    .unwrap()
}

/// The child: runs a server on a loopback port and prints its kubeconfig path.
fn serve(dir: &str) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let dir = std::path::PathBuf::from(dir);
        let endpoint = std::env::var("RKUBE_BENCH_DATASTORE").ok();
        let server = apiserver::Server::start(apiserver::testing::config(
            &dir,
            store::DatastoreConfig::parse(endpoint.as_deref(), &dir).unwrap(),
        ))
        .await
        .unwrap();
        println!("KUBECONFIG {}", server.kubeconfig.display());
        server.wait().await.unwrap();
    });
}

fn main() {
    if let Ok(dir) = std::env::var(CHILD) {
        return serve(&dir);
    }
    let pods: usize = std::env::var("RKUBE_BENCH_PODS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(10_000);
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(std::env::current_exe().unwrap())
        .env(CHILD, dir.path())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let kubeconfig = line.trim().strip_prefix("KUBECONFIG ").unwrap().to_string();
    let pid = child.id();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async move {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let idle = rss_mib(pid);
        let kc = kube::config::Kubeconfig::read_from(&kubeconfig).unwrap();
        let cfg = kube::Config::from_custom_kubeconfig(kc, &Default::default()).await.unwrap();
        let client = kube::Client::try_from(cfg).unwrap();
        let api: Api<Pod> = Api::namespaced(client.clone(), "default");
        // The account the ServiceAccounts controller would create: pods need it to be admitted.
        let accounts: Api<k8s_openapi::api::core::v1::ServiceAccount> = Api::namespaced(client.clone(), "default");
        let sa = serde_json::from_value(serde_json::json!({"metadata": {"name": "default"}})).unwrap();
        accounts.create(&Default::default(), &sa).await.unwrap();

        // Creates: 64 clients, `pods` pods in all.
        let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let start = Instant::now();
        let tasks: Vec<_> = (0..CREATORS)
            .map(|_| {
                let (api, next) = (api.clone(), next.clone());
                tokio::spawn(async move {
                    let mut lat = Vec::new();
                    loop {
                        let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        if i >= pods {
                            break;
                        }
                        let t = Instant::now();
                        api.create(&PostParams::default(), &pod(&format!("pod-{i:05}"))).await.unwrap();
                        lat.push(t.elapsed());
                    }
                    lat
                })
            })
            .collect();
        let mut lat = Vec::new();
        for t in tasks {
            lat.extend(t.await.unwrap());
        }
        let took = start.elapsed();
        lat.sort();
        let creates_per_sec = pods as f64 / took.as_secs_f64();
        let (c50, c99) = (percentile(&lat, 0.5), percentile(&lat, 0.99));

        // LIST of every pod, as JSON.
        let mut list_lat = Vec::new();
        for _ in 0..5 {
            let t = Instant::now();
            let l = api.list(&ListParams::default()).await.unwrap();
            list_lat.push(t.elapsed());
            assert_eq!(l.items.len(), pods);
        }
        list_lat.sort();
        let stored = rss_mib(pid);

        // 1,000 watchers; each new pod timed from its create call to its arrival at each.
        let rv = api.list(&ListParams::default().limit(1)).await.unwrap().metadata.resource_version.unwrap();
        let epoch = Instant::now();
        let mut watchers = Vec::new();
        for _ in 0..WATCHERS {
            let api = api.clone();
            let rv = rv.clone();
            watchers.push(tokio::spawn(async move {
                let mut stream = api.watch(&WatchParams::default().labels("app=watched"), &rv).await.unwrap().boxed();
                let mut seen = Vec::new();
                while seen.len() < WATCHED_PODS {
                    match tokio::time::timeout(Duration::from_secs(60), stream.next()).await {
                        Ok(Some(Ok(WatchEvent::Added(p)))) => {
                            let sent: u128 = p.metadata.annotations.unwrap()["sent-ns"].parse().unwrap();
                            seen.push(epoch.elapsed() - Duration::from_nanos(sent as u64));
                        }
                        Ok(Some(Ok(_))) => {}
                        other => panic!("watch failed: {other:?}"),
                    }
                }
                seen
            }));
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
        for i in 0..WATCHED_PODS {
            let mut p = pod(&format!("watched-{i}"));
            p.metadata.labels.as_mut().unwrap().insert("app".into(), "watched".into());
            p.metadata.annotations = Some([("sent-ns".to_string(), epoch.elapsed().as_nanos().to_string())].into());
            api.create(&PostParams::default(), &p).await.unwrap();
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let mut wlat = Vec::new();
        for w in watchers {
            wlat.extend(w.await.unwrap());
        }
        wlat.sort();
        let with_watchers = rss_mib(pid);

        println!();
        println!("API server benchmark ({} backend, {pods} pods, 2 cores)", if std::env::var("RKUBE_BENCH_DATASTORE").is_ok() { "etcd" } else { "SQLite" });
        println!("pod creates, {CREATORS} clients:   {creates_per_sec:.0} creates/s, p50 {c50:.2} ms, p99 {c99:.2} ms");
        println!("LIST of {pods} pods:            p50 {:.1} ms, max {:.1} ms", percentile(&list_lat, 0.5), percentile(&list_lat, 1.0));
        println!("{WATCHERS} watchers, new pod seen:  p50 {:.1} ms, p99 {:.1} ms ({} deliveries)", percentile(&wlat, 0.5), percentile(&wlat, 0.99), wlat.len());
        println!("server RSS: idle {idle:.1} MiB; with {pods} pods {stored:.1} MiB; with {WATCHERS} watchers {with_watchers:.1} MiB");
    });
    let _ = child.kill();
    let _ = child.wait();
}
