//! Pod startup latency through the whole path — API create → scheduler → kubelet → containerd →
//! status Running — for pods created all at once, next to raw CRI doing the same work
//! (RunPodSandbox + CreateContainer + StartContainer) on the same containerd. Root only;
//! prints its figures and asserts nothing.
//!
//! `cargo bench -p rkube-kubelet --bench pods` (`RKUBE_BENCH_PODS`, default 30).

/// The allocator the `rkube` binary runs its servers with (figures mean what users get).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[path = "../tests/lab/mod.rs"]
mod lab;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use apiserver::testing::Cluster;
use futures::StreamExt;
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::Api;
use kube::runtime::watcher;
use kubelet::images::busybox_image;
use kubelet::{ContainerdConfig, Kubelet, KubeletConfig, Runtime, RuntimeEndpoint};
use lab::{Lab, container_config, is_root, ms, pod_config};
use net::cni::BridgeNetwork;

const BUSYBOX: &str = "rkube.local/busybox:bench";

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn summary(name: &str, mut v: Vec<f64>) -> (f64, f64) {
    v.sort_by(f64::total_cmp);
    let (p50, p99) = (percentile(&v, 0.5), percentile(&v, 0.99));
    println!(
        "{name}: n={} p50 {p50:.0} ms, p99 {p99:.0} ms, max {:.0} ms",
        v.len(),
        v.last().copied().unwrap_or(0.0)
    );
    (p50, p99)
}

/// The environment variable that makes this binary the kubelet process of the bench (its own
/// process, so its memory is measured apart from the API server's).
const KUBELET_ROLE: &str = "RKUBE_BENCH_KUBELET";

fn main() -> Result<()> {
    if std::env::var_os(KUBELET_ROLE).is_some() {
        return kubelet_process();
    }
    if !is_root() {
        eprintln!("skipping: needs root (containerd, network namespaces, cgroups)");
        return Ok(());
    }
    let n: usize = std::env::var("RKUBE_BENCH_PODS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(30);
    let lab = Lab::new()?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(bench(&lab, n))
}

async fn bench(lab: &Lab, n: usize) -> Result<()> {
    let cluster = Cluster::start(false).await;
    let config = cluster.config().await;
    let scheduler = tokio::spawn(scheduler::run(
        scheduler::client(config.clone())?,
        "bench".into(),
    ));
    // The controller manager: its node IPAM controller gives the node its pod CIDR.
    let controller_manager = tokio::spawn(controllers::run(
        controllers::client(config.clone())?,
        "bench".into(),
    ));

    let data = lab.data_dir().to_owned();
    let mut cd = ContainerdConfig::new(&data);
    cd.netns = Some(lab.netns());
    let dirs = cd.dirs();
    std::fs::create_dir_all(&dirs.images)?;
    busybox_image(Path::new("/bin/busybox"), BUSYBOX)?
        .build()?
        .write_to(&dirs.images.join("busybox.tar"))?;
    // The kubelet writes this conflist itself once registered (a fresh cluster gives the first
    // node 10.42.0.0/24); the raw CRI part runs before it.
    BridgeNetwork::new(&lab.network, "10.42.0.0/24", &dirs.cni_ipam).write(&dirs.cni_conf)?;
    let runtime = Runtime::start(
        RuntimeEndpoint::Supervised(Box::new(cd)),
        Duration::from_secs(30),
    )
    .await
    .context("start containerd")?;
    let cri = runtime.client().clone();
    // Raw CRI first, the same work for as many pods at once, on the same containerd (before the
    // kubelet runs: it would remove these sandboxes of pods it does not know). The first pod
    // warms up the image and snapshotter.
    let raw_pods = |range: std::ops::Range<usize>| {
        range.map(|i| {
            let cri = cri.clone();
            let uid = format!("bench-raw-{}-{i}", std::process::id());
            let log_dir = dirs.pod_log_dir("default", &format!("raw-{i}"), &uid);
            let config = pod_config(lab, &format!("raw-{i}"), &log_dir, &uid);
            async move {
                std::fs::create_dir_all(&log_dir)?;
                let t = Instant::now();
                let sandbox = cri.run_pod_sandbox(config.clone(), "").await?;
                let c = cri
                    .create_container(
                        &sandbox,
                        container_config("c", BUSYBOX, &["sleep", "3600"]),
                        config,
                    )
                    .await?;
                cri.start_container(&c).await?;
                anyhow::Ok((ms(t.elapsed()), sandbox, uid))
            }
        })
    };
    let mut raw = futures::future::try_join_all(raw_pods(n..n + 1)).await?;
    let t0 = Instant::now();
    let measured = futures::future::try_join_all(raw_pods(0..n)).await?;
    println!(
        "raw CRI: {n} pods at once all running after {:.0} ms",
        ms(t0.elapsed())
    );
    let (raw50, raw99) = summary(
        "raw CRI: RunPodSandbox + CreateContainer + StartContainer",
        measured.iter().map(|r| r.0).collect(),
    );
    raw.extend(measured);
    for (_, sandbox, uid) in &raw {
        cri.stop_pod_sandbox(sandbox).await?;
        cri.remove_pod_sandbox(sandbox).await?;
        lab.remove_pod_cgroup(uid);
    }

    // The kubelet in a process of its own (this binary again), on the same containerd.
    let node_name = format!("bench-node-{}", std::process::id());
    let mut kubelet = KillOnDrop(
        std::process::Command::new(std::env::current_exe()?)
            .env(KUBELET_ROLE, "1")
            .env("BENCH_KUBECONFIG", cluster.kubeconfig())
            .env("BENCH_NODE", &node_name)
            .env("BENCH_DATA", &data)
            .env("BENCH_NETWORK", &lab.network)
            .env("BENCH_CGROUP_ROOT", lab.cgroup_root())
            .env("BENCH_NETNS", lab.netns())
            .env("BENCH_SOCKET", runtime_socket(&data))
            .spawn()
            .context("starting the kubelet process")?,
    );

    let admin = cluster.client().await;
    let nodes: Api<Node> = Api::all(admin.clone());
    let t = Instant::now();
    loop {
        let ready = nodes.get_opt(&node_name).await?.is_some_and(|n| {
            n.status
                .and_then(|s| s.conditions)
                .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
        });
        if ready {
            break;
        }
        if t.elapsed() > Duration::from_secs(30) {
            bail!("node never became Ready");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // When each pod is first seen Running, from a watch.
    let pods: Api<Pod> = Api::namespaced(admin.clone(), "default");
    let running: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    let seen = running.clone();
    let watch = tokio::spawn({
        let pods = pods.clone();
        async move {
            let mut events = watcher::watcher(pods, watcher::Config::default()).boxed();
            while let Some(ev) = events.next().await {
                if let Ok(watcher::Event::Apply(p) | watcher::Event::InitApply(p)) = ev
                    && p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running")
                {
                    let name = p.metadata.name.unwrap_or_default();
                    let mut m = seen.lock().unwrap_or_else(|e| e.into_inner());
                    m.entry(name).or_insert_with(Instant::now);
                }
            }
        }
    });

    let pod = |name: &str| -> Result<Pod> {
        Ok(serde_json::from_value(serde_json::json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name},
            "spec": {"terminationGracePeriodSeconds": 0,
                "containers": [{"name": "c", "image": BUSYBOX, "command": ["sleep", "3600"]}]}
        }))?)
    };
    // Warm-up (first sandbox, image unpack, client connections).
    pods.create(&Default::default(), &pod("warmup")?).await?;
    let t = Instant::now();
    while !running
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .contains_key("warmup")
    {
        if t.elapsed() > Duration::from_secs(30) {
            bail!("warm-up pod never ran");
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    let names: Vec<String> = (0..n).map(|i| format!("bench-{i}")).collect();
    let start = Instant::now();
    let creates = names.iter().map(|name| {
        let pods = pods.clone();
        let p = pod(name);
        async move {
            let t = Instant::now();
            pods.create(&Default::default(), &p?).await?;
            anyhow::Ok(t)
        }
    });
    let created: Vec<Instant> = futures::future::try_join_all(creates).await?;
    loop {
        let done = {
            let m = running.lock().unwrap_or_else(|e| e.into_inner());
            names.iter().all(|n| m.contains_key(n))
        };
        if done {
            break;
        }
        if start.elapsed() > Duration::from_secs(120) {
            bail!("not every pod became Running");
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let all = start.elapsed();
    let latencies: Vec<f64> = {
        let m = running.lock().unwrap_or_else(|e| e.into_inner());
        names
            .iter()
            .zip(&created)
            .filter_map(|(n, t)| m.get(n).map(|r| ms(r.duration_since(*t))))
            .collect()
    };
    println!(
        "{n} pods created at once; all Running after {:.0} ms",
        ms(all)
    );
    let (p50, p99) = summary("rkube: API create -> Running", latencies);
    println!(
        "ratio rkube / raw CRI: p50 {:.2}, p99 {:.2}",
        p50 / raw50.max(1.0),
        p99 / raw99.max(1.0)
    );
    println!(
        "kubelet process resident memory with {} pods running: {} kB (peak {} kB); \
         API server + scheduler process: {} kB",
        n + 1,
        proc_status(kubelet.0.id(), "VmRSS"),
        proc_status(kubelet.0.id(), "VmHWM"),
        proc_status(std::process::id(), "VmRSS"),
    );

    // Clean up through the API: the kubelet removes everything.
    let t = Instant::now();
    for name in names.iter().chain(std::iter::once(&"warmup".to_owned())) {
        pods.delete(name, &Default::default()).await?;
    }
    loop {
        let left = cri.list_pod_sandbox(None).await?.len();
        if left == 0 && pods.list(&Default::default()).await?.items.is_empty() {
            break;
        }
        if t.elapsed() > Duration::from_secs(120) {
            bail!("{left} sandboxes left after deleting every pod");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    println!(
        "deleting {} pods: all gone after {:.0} ms",
        n + 1,
        ms(t.elapsed())
    );
    watch.abort();
    let _ = kubelet.0.kill();
    scheduler.abort();
    controller_manager.abort();
    runtime.shutdown().await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while !lab.runtime_pids().is_empty() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(())
}

/// A child process killed when dropped (the bench failing early leaves no kubelet behind).
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A field of /proc/PID/status in kB, or "?".
fn proc_status(pid: u32, field: &str) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .unwrap_or("?")
        .to_owned()
}

fn runtime_socket(data: &Path) -> PathBuf {
    ContainerdConfig::new(data).dirs().containerd_socket
}

/// The kubelet process: the kubelet of the bench's node against the bench's API server and
/// containerd, until killed.
fn kubelet_process() -> Result<()> {
    let var = |k: &str| std::env::var(k).with_context(|| format!("{k} is not set"));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(async {
        let kubeconfig = kube::config::Kubeconfig::read_from(var("BENCH_KUBECONFIG")?)?;
        let config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default()).await?;
        let runtime = Runtime::start(
            RuntimeEndpoint::External(PathBuf::from(var("BENCH_SOCKET")?)),
            Duration::from_secs(30),
        )
        .await?;
        let mut cfg = KubeletConfig::new(Some(&var("BENCH_NODE")?), var("BENCH_DATA")?);
        cfg.cni_network = var("BENCH_NETWORK")?;
        cfg.cgroup_root = var("BENCH_CGROUP_ROOT")?;
        cfg.pod_netns = Some(PathBuf::from(var("BENCH_NETNS")?));
        let client = kubelet::kubelet::client(config)?;
        Kubelet::new(cfg, client, runtime.client().clone())
            .run()
            .await
    })
}
