//! Controller manager benchmark: an API server (SQLite) in this process, the controller
//! manager in a child process (so its CPU time and memory are its own), and a kubelet
//! stand-in here that marks every new pod Running and Ready.
//!
//! `cargo bench -p rkube-controllers --bench controllers_perf`
//! 1. A Deployment of 1,000 replicas: time from the create to 1,000 pods existing.
//! 2. 100 Deployments of 10 replicas, all rolled to a new image at once: time until every
//!    rollout is complete, and the controller manager's CPU seconds and peak RSS.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a benchmark: a failed step should panic

/// The allocator the `rkube` binary runs its servers with (figures mean what users get).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use apiserver::testing::Cluster;
use futures::StreamExt;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::api::{ListParams, Patch, PatchParams, PostParams, WatchEvent, WatchParams};
use serde_json::json;

const CHILD: &str = "RKUBE_BENCH_CONTROLLER_MANAGER_KUBECONFIG";

fn deployment(name: &str, replicas: i32) -> Deployment {
    serde_json::from_value(json!({
        "metadata": {"name": name},
        "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "c", "image": "nginx:1.26"}]}}}
    }))
    .unwrap()
}

/// CPU seconds (user + system) and current RSS (KiB) of a process.
fn usage(pid: u32) -> (f64, u64) {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, r)| r.split_whitespace().collect())
        .unwrap_or_default();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // utime and stime are fields 14 and 15 (1-based), 11 and 12 after the ')'.
    let cpu = (ticks(11) + ticks(12)) / 100.0;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let rss = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0);
    (cpu, rss)
}

/// Marks every pod Running and Ready once, as a kubelet would when its containers start.
async fn kubelet(client: kube::Client, stop: Arc<AtomicBool>) {
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let mut w = pods
        .watch(&WatchParams::default(), "0")
        .await
        .unwrap()
        .boxed();
    let sem = Arc::new(tokio::sync::Semaphore::new(16));
    while let Some(ev) = w.next().await {
        if stop.load(Ordering::Relaxed) {
            return;
        }
        let Ok(WatchEvent::Added(p)) = ev else {
            continue;
        };
        let api = pods.clone();
        let permit = sem.clone().acquire_owned().await.unwrap();
        tokio::spawn(async move {
            let now = k8s_openapi::jiff::Timestamp::now().to_string();
            let _ = api
                .patch_status(
                    p.metadata.name.as_deref().unwrap(),
                    &PatchParams::default(),
                    &Patch::Merge(json!({"status": {"phase": "Running", "conditions": [
                        {"type": "Ready", "status": "True", "lastTransitionTime": now}]}})),
                )
                .await;
            drop(permit);
        });
    }
}

async fn pod_count(client: &kube::Client) -> usize {
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    pods.list_metadata(&ListParams::default())
        .await
        .map(|l| l.items.len())
        .unwrap_or(0)
}

fn rolled(d: &Deployment, image: &str) -> bool {
    let want = d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
    let s = d.status.clone().unwrap_or_default();
    let image_now = d
        .spec
        .as_ref()
        .and_then(|s| s.template.spec.as_ref())
        .and_then(|p| p.containers.first())
        .and_then(|c| c.image.as_deref());
    image_now == Some(image)
        && s.observed_generation >= d.metadata.generation
        && s.updated_replicas == Some(want)
        && s.replicas == Some(want)
        && s.available_replicas == Some(want)
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    // The child: just the controller manager.
    if let Ok(kubeconfig) = std::env::var(CHILD) {
        rt.block_on(async move {
            let kc = kube::config::Kubeconfig::read_from(kubeconfig).unwrap();
            let cfg = kube::Config::from_custom_kubeconfig(kc, &Default::default())
                .await
                .unwrap();
            controllers::run(controllers::client(cfg).unwrap(), "bench".into()).await;
        });
        return;
    }
    rt.block_on(async move {
        let c = Cluster::start(false).await;
        let client = c.client().await;
        let kubeconfig: PathBuf = c.server.kubeconfig.clone();
        let mut child = std::process::Command::new(std::env::current_exe().unwrap())
            .env(CHILD, &kubeconfig)
            .spawn()
            .unwrap();
        let pid = child.id();
        let stop = Arc::new(AtomicBool::new(false));
        tokio::spawn(kubelet(client.clone(), stop.clone()));
        tokio::time::sleep(Duration::from_secs(1)).await;
        println!("controller manager benchmark (API server here, controller manager in a child process, SQLite, 2 cores)");

        let deployments: Api<Deployment> = Api::namespaced(client.clone(), "default");
        let start = Instant::now();
        deployments
            .create(&PostParams::default(), &deployment("big", 1000))
            .await
            .unwrap();
        while pod_count(&client).await < 1000 && start.elapsed() < Duration::from_secs(120) {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        println!(
            "Deployment of 1000 replicas: {} pods created {:.2} s after the create",
            pod_count(&client).await,
            start.elapsed().as_secs_f64()
        );
        deployments.delete("big", &Default::default()).await.unwrap();
        while pod_count(&client).await > 0 && start.elapsed() < Duration::from_secs(240) {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }

        for i in 0..100 {
            deployments
                .create(&PostParams::default(), &deployment(&format!("d{i}"), 10))
                .await
                .unwrap();
        }
        let deadline = Instant::now() + Duration::from_secs(300);
        loop {
            let list = deployments.list(&ListParams::default()).await.unwrap();
            if list.items.iter().filter(|d| rolled(d, "nginx:1.26")).count() == 100
                || Instant::now() > deadline
            {
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let (cpu0, _) = usage(pid);
        let start = Instant::now();
        for i in 0..100 {
            let patch = json!({"spec": {"template": {"spec": {"containers": [{"name": "c", "image": "nginx:1.27"}]}}}});
            deployments
                .patch(&format!("d{i}"), &PatchParams::default(), &Patch::Strategic(patch))
                .await
                .unwrap();
        }
        let mut peak_rss = 0;
        let done = loop {
            let list = deployments.list(&ListParams::default()).await.unwrap();
            let done = list.items.iter().filter(|d| rolled(d, "nginx:1.27")).count();
            peak_rss = peak_rss.max(usage(pid).1);
            if done == 100 || Instant::now() > deadline + Duration::from_secs(300) {
                break done;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        };
        let took = start.elapsed();
        let (cpu1, rss) = usage(pid);
        println!(
            "100 Deployments x 10 replicas rolled at once: {done}/100 complete in {:.2} s; controller manager {:.2} CPU s during the rollout, RSS {:.1} MiB (peak {:.1} MiB)",
            took.as_secs_f64(),
            cpu1 - cpu0,
            rss as f64 / 1024.0,
            peak_rss as f64 / 1024.0
        );
        stop.store(true, Ordering::Relaxed);
        let _ = child.kill();
        let _ = child.wait();
    });
}
