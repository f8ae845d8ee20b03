//! Cost of one resource-stats collection with many real pods (root only): N pods
//! (`RKUBE_BENCH_PODS`, default 100) run through raw CRI on the supervised containerd — a pause
//! sandbox and a `sleep` container each, in pod cgroups, as the kubelet makes them — then the
//! kubelet's stats provider answers `/stats/summary` (full, and `only_cpu_and_memory`),
//! `/metrics/resource` and `/metrics/cadvisor` `RKUBE_BENCH_ROUNDS` times (default 20) each,
//! one after another. Printed: latency (p50/p90/max), CPU time of this process (the provider:
//! CRI client, cgroup and /proc reads, JSON) and of containerd + its shims (the CRI answers)
//! per collection, answer size; one housekeeping round; and the heap the provider keeps (the
//! agent's added memory). Asserts nothing.
//!
//! `cargo bench -p rkube-kubelet --bench stats`

/// The allocator the `rkube` binary runs its servers with (figures mean what users get),
/// counting the bytes live on the heap: what the stats provider keeps is the agent's added
/// memory.
#[global_allocator]
static ALLOCATOR: common::heap::Counting<mimalloc::MiMalloc> =
    common::heap::Counting(mimalloc::MiMalloc);

#[path = "../tests/lab/mod.rs"]
mod lab;

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use futures::StreamExt;
use kubelet::images::busybox_image;
use kubelet::stats::summary::to_json;
use kubelet::stats::{StatsConfig, StatsProvider};
use kubelet::{AgentDirs, ContainerdConfig, Runtime, RuntimeClient, RuntimeEndpoint};
use lab::{Lab, container_config, is_root, ms, pod_config};
use net::cni::BridgeNetwork;

const BUSYBOX: &str = "rkube.local/busybox:bench";
/// Pods started at once (containerd on two cores is the bottleneck either way).
const START_CONCURRENCY: usize = 10;

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// CPU time this process has used (all threads).
fn own_cpu() -> Duration {
    // SAFETY: getrusage fills the zeroed struct.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    let tv = |t: libc::timeval| {
        Duration::from_secs(u64::try_from(t.tv_sec).unwrap_or(0))
            + Duration::from_micros(u64::try_from(t.tv_usec).unwrap_or(0))
    };
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

/// CPU time of these processes (utime + stime of /proc/PID/stat, in 10 ms ticks).
fn cpu_of(pids: &[i32]) -> Duration {
    let ticks: u64 = pids
        .iter()
        .filter_map(|p| std::fs::read_to_string(format!("/proc/{p}/stat")).ok())
        .filter_map(|s| {
            let rest = s.rsplit_once(')')?.1;
            let f: Vec<&str> = rest.split_whitespace().collect();
            Some(f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?)
        })
        .sum();
    Duration::from_millis(ticks * 10)
}

fn summary(name: &str, mut v: Vec<f64>) -> String {
    v.sort_by(f64::total_cmp);
    let at = |q: f64| v[((v.len() - 1) as f64 * q).round() as usize];
    if v.is_empty() {
        return format!("{name}: no samples");
    }
    format!(
        "{name}: p50 {:.1} ms, p90 {:.1} ms, max {:.1} ms",
        at(0.5),
        at(0.9),
        v[v.len() - 1]
    )
}

fn main() -> Result<()> {
    if !is_root() {
        eprintln!("skipping: needs root (containerd, network namespaces, cgroups)");
        return Ok(());
    }
    let n = env("RKUBE_BENCH_PODS", 100);
    let rounds = env("RKUBE_BENCH_ROUNDS", 20).max(1);
    let lab = Lab::new()?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(bench(&lab, n, rounds))
}

async fn start_pods(
    cri: &RuntimeClient,
    lab: &Lab,
    dirs: &AgentDirs,
    n: usize,
) -> Result<Vec<(String, String)>> {
    let pods = futures::stream::iter(0..n)
        .map(|i| {
            let cri = cri.clone();
            let name = format!("stats-{i}");
            let uid = format!("bench-stats-{}-{i}", std::process::id());
            let log_dir = dirs.pod_log_dir("default", &name, &uid);
            let config = pod_config(lab, &name, &log_dir, &uid);
            async move {
                std::fs::create_dir_all(&log_dir)?;
                let sandbox = cri.run_pod_sandbox(config.clone(), "").await?;
                let c = cri
                    .create_container(
                        &sandbox,
                        container_config("c", BUSYBOX, &["sleep", "3600"]),
                        config,
                    )
                    .await?;
                cri.start_container(&c).await?;
                anyhow::Ok((sandbox, uid))
            }
        })
        .buffer_unordered(START_CONCURRENCY)
        .collect::<Vec<_>>()
        .await;
    pods.into_iter().collect()
}

/// Runs `collect` `rounds` times and prints its latency, its CPU and the runtime's.
async fn measure<F, Fut>(what: &str, lab: &Lab, rounds: usize, mut collect: F) -> Result<()>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<usize>>,
{
    let runtime: Vec<i32> = lab.runtime_pids().into_iter().map(|(p, _)| p).collect();
    let (own0, rt0) = (own_cpu(), cpu_of(&runtime));
    let mut lat = Vec::with_capacity(rounds);
    let mut size = 0;
    for _ in 0..rounds {
        let t = Instant::now();
        size = collect().await?;
        lat.push(ms(t.elapsed()));
    }
    let per = |d: Duration| ms(d) / rounds as f64;
    println!(
        "{}; CPU per collection: provider {:.1} ms, containerd + shims {:.1} ms; answer {} kB",
        summary(what, lat),
        per(own_cpu().saturating_sub(own0)),
        per(cpu_of(&runtime).saturating_sub(rt0)),
        size / 1024
    );
    Ok(())
}

async fn bench(lab: &Lab, n: usize, rounds: usize) -> Result<()> {
    let data = lab.data_dir().to_owned();
    let mut cd = ContainerdConfig::new(&data);
    cd.netns = Some(lab.netns());
    let dirs = cd.dirs();
    std::fs::create_dir_all(&dirs.images)?;
    busybox_image(Path::new("/bin/busybox"), BUSYBOX)?
        .build()?
        .write_to(&dirs.images.join("busybox.tar"))?;
    BridgeNetwork::new(&lab.network, "10.42.0.0/24", &dirs.cni_ipam).write(&dirs.cni_conf)?;
    let runtime = Runtime::start(
        RuntimeEndpoint::Supervised(Box::new(cd)),
        Duration::from_secs(30),
    )
    .await
    .context("start containerd")?;
    let cri = runtime.client().clone();
    let agent = AgentDirs::new(&data);

    let t = Instant::now();
    let pods = start_pods(&cri, lab, &agent, n).await;
    let pods = match pods {
        Ok(p) => p,
        Err(e) => {
            runtime.shutdown().await;
            return Err(e);
        }
    };
    println!(
        "{n} pods (pause + sleep) running through raw CRI after {:.1} s",
        t.elapsed().as_secs_f64()
    );

    let root_dir = agent.agent.join("kubelet");
    std::fs::create_dir_all(&root_dir)?;
    let heap_before = common::heap::live();
    let provider: Arc<StatsProvider> = StatsProvider::new(
        StatsConfig {
            node_name: "bench".into(),
            cgroup_root: lab.cgroup_root(),
            dirs: agent.clone(),
            root_dir,
            housekeeping_interval: Duration::from_secs(10),
        },
        cri.clone(),
    );
    // Two housekeeping rounds a second apart: CPU rates for every cgroup.
    let (own0, t) = (own_cpu(), Instant::now());
    let sampled = provider.housekeep();
    println!(
        "housekeeping round ({sampled} cgroups, first: volume walks too): {:.1} ms, CPU {:.1} ms",
        ms(t.elapsed()),
        ms(own_cpu().saturating_sub(own0))
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (own0, t) = (own_cpu(), Instant::now());
    provider.housekeep();
    println!(
        "housekeeping round: {:.1} ms, CPU {:.1} ms",
        ms(t.elapsed()),
        ms(own_cpu().saturating_sub(own0))
    );

    let s = provider.summary(false).await?;
    let with_rate = s
        .pods
        .iter()
        .filter(|p| p.cpu.as_ref().and_then(|c| c.usage_nano_cores).is_some())
        .count();
    println!(
        "summary: {} pods ({} with a CPU rate), {} containers",
        s.pods.len(),
        with_rate,
        s.pods.iter().map(|p| p.containers.len()).sum::<usize>()
    );
    let summarized = s.pods.len();
    drop(s);
    let result = async {
        ensure!(summarized == n, "{summarized} pods in the summary");
        // A full summary reads the container stats housekeeping listed last (each round).
        measure("/stats/summary", lab, rounds, || async {
            Ok(to_json(&provider.summary(false).await?)?.len())
        })
        .await?;
        measure(
            "housekeeping's ListContainerStats (each 10 s round)",
            lab,
            rounds,
            || async {
                provider.refresh_container_stats().await?;
                Ok(0)
            },
        )
        .await?;
        measure(
            "/stats/summary?only_cpu_and_memory=true",
            lab,
            rounds,
            || async { Ok(to_json(&provider.summary(true).await?)?.len()) },
        )
        .await?;
        measure("/metrics/resource", lab, rounds, || async {
            Ok(provider.resource_metrics().await.len())
        })
        .await?;
        measure("/metrics/cadvisor", lab, rounds, || async {
            Ok(provider.cadvisor_metrics().await.len())
        })
        .await?;
        println!(
            "stats provider state kept (rates, cached container stats, volume sizes): {:.0} KiB",
            (common::heap::live() - heap_before) as f64 / 1024.0
        );
        anyhow::Ok(())
    }
    .await;

    let t = Instant::now();
    let removals = futures::stream::iter(pods.iter())
        .map(|(sandbox, uid)| {
            let cri = cri.clone();
            async move {
                cri.stop_pod_sandbox(sandbox).await?;
                cri.remove_pod_sandbox(sandbox).await?;
                lab.remove_pod_cgroup(uid);
                anyhow::Ok(())
            }
        })
        .buffer_unordered(START_CONCURRENCY)
        .collect::<Vec<_>>()
        .await;
    println!("{n} pods removed after {:.1} s", t.elapsed().as_secs_f64());
    runtime.shutdown().await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while !lab.runtime_pids().is_empty() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    result?;
    removals.into_iter().collect::<Result<Vec<()>>>()?;
    Ok(())
}
