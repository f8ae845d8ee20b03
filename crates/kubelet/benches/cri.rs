//! Raw CRI latency through `RuntimeClient` on the supervised containerd (root only):
//! RunPodSandbox, CreateContainer+StartContainer, StopPodSandbox, RemovePodSandbox, for pods
//! started one after another and all at once. Prints its figures; asserts nothing.
//!
//! `cargo bench -p rkube-kubelet --bench cri` (`RKUBE_BENCH_PODS`, default 10).

/// The allocator the `rkube` binary runs its servers with (figures mean what users get).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[path = "../tests/lab/mod.rs"]
mod lab;

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use kubelet::images::busybox_image;
use kubelet::{ContainerdConfig, Runtime, RuntimeClient, RuntimeEndpoint};
use lab::{Lab, container_config, is_root, ms, pod_config};
use net::cni::BridgeNetwork;

const BUSYBOX: &str = "rkube.local/busybox:bench";

struct PodTimes {
    run: Duration,
    create_start: Duration,
}

fn summary(name: &str, mut v: Vec<f64>) -> String {
    v.sort_by(f64::total_cmp);
    if v.is_empty() {
        return format!("{name}: no samples");
    }
    let at = |q: f64| v[((v.len() - 1) as f64 * q).round() as usize];
    format!(
        "{name}: median {:.1} ms, p90 {:.1} ms, min {:.1} ms, max {:.1} ms (n={})",
        at(0.5),
        at(0.9),
        v[0],
        v[v.len() - 1],
        v.len()
    )
}

async fn start_pod(
    cri: &RuntimeClient,
    lab: &Lab,
    logs: &Path,
    name: &str,
) -> Result<(String, PodTimes)> {
    let uid = format!("bench-{name}-{}", std::process::id());
    let log_dir = logs.join(format!("default_{name}_{uid}"));
    std::fs::create_dir_all(&log_dir)?;
    let pod = pod_config(lab, name, &log_dir, &uid);
    let t = Instant::now();
    let sandbox = cri.run_pod_sandbox(pod.clone(), "").await?;
    let run = t.elapsed();
    let t = Instant::now();
    let c = cri
        .create_container(
            &sandbox,
            container_config("c", BUSYBOX, &["sleep", "3600"]),
            pod,
        )
        .await?;
    cri.start_container(&c).await?;
    Ok((
        sandbox,
        PodTimes {
            run,
            create_start: t.elapsed(),
        },
    ))
}

async fn remove_pod(cri: &RuntimeClient, sandbox: &str) -> Result<(Duration, Duration)> {
    let t = Instant::now();
    cri.stop_pod_sandbox(sandbox).await?;
    let stop = t.elapsed();
    let t = Instant::now();
    cri.remove_pod_sandbox(sandbox).await?;
    Ok((stop, t.elapsed()))
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<()> {
    if !is_root() {
        eprintln!("skipping: needs root (containerd, network namespaces, cgroups)");
        return Ok(());
    }
    let n: usize = std::env::var("RKUBE_BENCH_PODS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10);
    let lab = Lab::new()?;
    let mut config = ContainerdConfig::new(lab.data_dir());
    config.netns = Some(lab.netns());
    let dirs = config.dirs();
    BridgeNetwork::new(&lab.network, "10.42.251.0/24", &dirs.cni_ipam).write(&dirs.cni_conf)?;
    std::fs::create_dir_all(&dirs.images)?;
    busybox_image(Path::new("/bin/busybox"), BUSYBOX)?
        .build()?
        .write_to(&dirs.images.join("busybox.tar"))?;
    let t = Instant::now();
    let runtime = Runtime::start(
        RuntimeEndpoint::Supervised(Box::new(config)),
        Duration::from_secs(30),
    )
    .await
    .context("start containerd")?;
    println!(
        "containerd start + CRI ready + imports (pause, busybox): {:.1} ms",
        ms(t.elapsed())
    );
    let cri = runtime.client().clone();

    // The first pod of a fresh containerd is slower (first netns, bridge creation).
    let (first, times) = start_pod(&cri, &lab, &dirs.pod_logs, "first").await?;
    println!(
        "first pod: RunPodSandbox {:.1} ms, CreateContainer+StartContainer {:.1} ms",
        ms(times.run),
        ms(times.create_start)
    );
    remove_pod(&cri, &first).await?;

    let (mut run, mut cs, mut stop, mut rm) = (vec![], vec![], vec![], vec![]);
    for i in 0..n {
        let (sandbox, times) = start_pod(&cri, &lab, &dirs.pod_logs, &format!("seq{i}")).await?;
        run.push(ms(times.run));
        cs.push(ms(times.create_start));
        let (s, r) = remove_pod(&cri, &sandbox).await?;
        stop.push(ms(s));
        rm.push(ms(r));
    }
    println!("sequential, {n} pods:");
    println!("  {}", summary("RunPodSandbox", run));
    println!("  {}", summary("CreateContainer+StartContainer", cs));
    println!("  {}", summary("StopPodSandbox", stop));
    println!("  {}", summary("RemovePodSandbox", rm));

    let t = Instant::now();
    let tasks: Vec<_> = (0..n)
        .map(|i| {
            let cri = cri.clone();
            let lab_logs = dirs.pod_logs.clone();
            let lab = &lab;
            async move { start_pod(&cri, lab, &lab_logs, &format!("par{i}")).await }
        })
        .collect();
    let results = futures::future::join_all(tasks).await;
    let wall = t.elapsed();
    let mut sandboxes = Vec::new();
    let (mut run, mut cs) = (vec![], vec![]);
    for r in results {
        let (sandbox, times) = r?;
        sandboxes.push(sandbox);
        run.push(ms(times.run));
        cs.push(ms(times.create_start));
    }
    println!(
        "concurrent, {n} pods at once: all running after {:.1} ms",
        ms(wall)
    );
    println!("  {}", summary("RunPodSandbox", run));
    println!("  {}", summary("CreateContainer+StartContainer", cs));
    for s in sandboxes {
        remove_pod(&cri, &s).await?;
    }
    runtime.shutdown().await;
    Ok(())
}
