//! Node lifecycle controller cost at 1,000 hollow nodes (issue 18): an API server (SQLite)
//! in this process, hollow nodes that are only objects (Ready=True status and a
//! `kube-node-lease` Lease each, a few pods bound to them), a heartbeat task renewing every
//! Lease every 10 s as kubelets do, and the node lifecycle controller alone, with its
//! default options (monitor period 5 s, grace 50 s).
//!
//! `cargo bench -p rkube-controllers --bench node_lifecycle` prints, for the steady state
//! (every node healthy):
//! - the controller's CPU per second of wall time: the CPU time of the threads of its own
//!   tokio runtime (a current-thread runtime on a dedicated thread, plus that runtime's
//!   blocking pool), read from `/proc/self/task/<tid>/schedstat` (nanoseconds; `stat` ticks
//!   where there is no schedstat). Its informers, its HTTP client (connections, TLS, JSON
//!   decoding of the watch streams), its event recorder and work queues are all started on
//!   that runtime, so the figure covers all of its client side, not the API server's work
//!   answering it;
//! - the whole process's CPU/s with heartbeats only, then with heartbeats + the controller
//!   (the difference also includes the API server serving the controller's watches);
//! - memory once its informers synced: the heap allocated minus freed on the controller's
//!   threads (the API server shares no heap objects with it: they talk over TCP), the
//!   process's live heap delta (`common::heap`) and its RSS delta; and every 10 s from
//!   the controller's start its threads' heap and the process's open files (the first
//!   pass's 1,000 `RegisteredNode` events, each posted by a task of its own, open about as
//!   many connections, idle in the client's pool for some 90 s after).
//!
//! Then 10% of the nodes stop renewing their Leases: how long until the controller has
//! them NotReady (conditions Unknown) with the `unreachable` NoSchedule taint, how many got
//! the NoExecute taint meanwhile (paced at `--node-eviction-rate` 0.1 nodes/s, so few), and
//! the CPU/s during that.
//!
//! Env: `NODE_LIFECYCLE_BENCH_NODES` (1000), `NODE_LIFECYCLE_BENCH_SECS` (60, each measuring
//! window), `NODE_LIFECYCLE_BENCH_STATUS_SECS` (300: how often each hollow kubelet also
//! posts its node status, as kubelet's `nodeStatusReportFrequency`; 0 for never).
#![allow(clippy::unwrap_used, clippy::expect_used)] // a benchmark: a failed step should panic

use std::alloc::{GlobalAlloc, Layout};
use std::cell::Cell;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicIsize, Ordering};
use std::time::{Duration, Instant};

use apiserver::testing::Cluster;
use client_go::informer::Informer;
use futures::StreamExt;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Node, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use k8s_openapi::jiff::Timestamp;
use kube::Api;
use kube::api::{Patch, PatchParams, PostParams};
use serde_json::{Value, json};

use controllers::nodelifecycle::{NODE_LEASE_NAMESPACE, NodeLifecycleController, Options};

/// The allocator the `rkube` binary runs its servers with, counted twice: every thread
/// through `common::heap`, and the controller's threads (flagged by [`ON_CONTROLLER`]) on
/// their own.
struct ByThread;
static HEAP: common::heap::Counting<mimalloc::MiMalloc> =
    common::heap::Counting(mimalloc::MiMalloc);
static CONTROLLER_HEAP: AtomicIsize = AtomicIsize::new(0);

thread_local! {
    /// This thread runs the controller (a const initializer without a destructor: no
    /// allocation on first use, so it is safe to read from the allocator).
    static ON_CONTROLLER: Cell<bool> = const { Cell::new(false) };
}

fn count(delta: isize) {
    if ON_CONTROLLER.with(Cell::get) {
        CONTROLLER_HEAP.fetch_add(delta, Ordering::Relaxed);
    }
}

// SAFETY: every call goes unchanged to the same wrapped allocator; the counters are a side
// effect only.
unsafe impl GlobalAlloc for ByThread {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        count(l.size() as isize);
        // SAFETY: the caller's contract is passed on as it is.
        unsafe { HEAP.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        count(-(l.size() as isize));
        // SAFETY: as above.
        unsafe { HEAP.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
        count(new as isize - l.size() as isize);
        // SAFETY: as above.
        unsafe { HEAP.realloc(p, l, new) }
    }
}

#[global_allocator]
static ALLOCATOR: ByThread = ByThread;

/// The controller's threads are named with this prefix (at most 15 bytes show in `comm`).
const THREAD: &str = "nlc-ctrl";

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .map(|v| {
            v.parse()
                .unwrap_or_else(|_| panic!("{name}={v} is not a number"))
        })
        .unwrap_or(default)
}

/// Fields after the `)` of a `/proc/.../stat` line.
fn stat_fields(path: &str) -> Vec<u64> {
    let stat = std::fs::read_to_string(path).unwrap_or_default();
    stat.rsplit_once(')')
        .map(|(_, r)| {
            r.split_whitespace()
                .map(|f| f.parse().unwrap_or(0))
                .collect()
        })
        .unwrap_or_default()
}

/// utime + stime (fields 14 and 15; 11 and 12 after the `)`) in seconds.
fn stat_cpu(path: &str) -> f64 {
    let f = stat_fields(path);
    (f.get(11).copied().unwrap_or(0) + f.get(12).copied().unwrap_or(0)) as f64 / 100.0
}

/// The whole process's CPU seconds (user + system).
fn process_cpu() -> f64 {
    stat_cpu("/proc/self/stat")
}

/// CPU seconds of this process's threads named [`THREAD`]…, and whether they came from
/// schedstat (ns) rather than stat (10 ms ticks). Threads that exited are not counted (a
/// blocking-pool thread of the runtime that ended between two readings).
fn controller_cpu() -> (f64, bool) {
    let mut total = 0.0;
    let mut precise = true;
    let Ok(dir) = std::fs::read_dir("/proc/self/task") else {
        return (0.0, false);
    };
    for task in dir.flatten() {
        let p = task.path();
        let comm = std::fs::read_to_string(p.join("comm")).unwrap_or_default();
        if !comm.starts_with(THREAD) {
            continue;
        }
        let schedstat = std::fs::read_to_string(p.join("schedstat")).ok();
        match schedstat
            .as_deref()
            .and_then(|s| s.split_whitespace().next()?.parse::<u64>().ok())
        {
            Some(ns) => total += ns as f64 / 1e9,
            None => {
                precise = false;
                total += stat_cpu(&p.join("stat").display().to_string());
            }
        }
    }
    (total, precise)
}

/// Resident set size in MiB.
fn rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok())
        .unwrap_or(0.0)
        / 1024.0
}

/// Open file descriptors (each loopback connection to the API server is two).
fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").map_or(0, |d| d.count())
}

fn mib(bytes: isize) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

/// CPU of the controller and of the process over a stretch of wall time.
struct Window {
    wall: Instant,
    controller: f64,
    process: f64,
}

impl Window {
    fn start() -> Self {
        Window {
            wall: Instant::now(),
            controller: controller_cpu().0,
            process: process_cpu(),
        }
    }

    /// (wall seconds, controller CPU/s, process CPU/s).
    fn end(&self) -> (f64, f64, f64) {
        let wall = self.wall.elapsed().as_secs_f64();
        (
            wall,
            (controller_cpu().0 - self.controller) / wall,
            (process_cpu() - self.process) / wall,
        )
    }
}

fn node_name(i: usize) -> String {
    format!("hollow-{i:05}")
}

/// Every tenth node goes silent in the last phase.
fn lost(i: usize) -> bool {
    i.is_multiple_of(10)
}

fn healthy_status() -> Value {
    let t = Timestamp::from_second(Timestamp::now().as_second())
        .unwrap()
        .to_string();
    let cond = |type_: &str, status: &str, reason: &str| {
        json!({"type": type_, "status": status, "reason": reason, "message": "",
            "lastHeartbeatTime": t, "lastTransitionTime": t})
    };
    json!({"status": {"conditions": [
        cond("MemoryPressure", "False", "KubeletHasSufficientMemory"),
        cond("DiskPressure", "False", "KubeletHasNoDiskPressure"),
        cond("PIDPressure", "False", "KubeletHasSufficientPID"),
        cond("Ready", "True", "KubeletReady"),
    ]}})
}

/// A node registered and Ready with its Lease and its pods, as a kubelet starts.
async fn register(client: kube::Client, i: usize, pods_on_it: Vec<usize>) {
    let name = node_name(i);
    let nodes: Api<Node> = Api::all(client.clone());
    let n: Node = serde_json::from_value(json!({
        "metadata": {"name": name, "labels": {
            "kubernetes.io/hostname": name, "kubernetes.io/os": "linux",
            "kubernetes.io/arch": "amd64", "beta.kubernetes.io/os": "linux",
            "beta.kubernetes.io/arch": "amd64"}},
    }))
    .unwrap();
    nodes
        .create(&PostParams::default(), &n)
        .await
        .unwrap_or_else(|e| panic!("creating node {name}: {e}"));
    nodes
        .patch_status(
            &name,
            &PatchParams::default(),
            &Patch::Merge(healthy_status()),
        )
        .await
        .unwrap_or_else(|e| panic!("posting the status of node {name}: {e}"));
    let leases: Api<Lease> = Api::namespaced(client.clone(), NODE_LEASE_NAMESPACE);
    let l: Lease = serde_json::from_value(json!({
        "metadata": {"name": name},
        "spec": {"holderIdentity": name, "leaseDurationSeconds": 40,
            "renewTime": MicroTime(Timestamp::now())},
    }))
    .unwrap();
    leases
        .create(&PostParams::default(), &l)
        .await
        .unwrap_or_else(|e| panic!("creating the Lease of node {name}: {e}"));
    let pods: Api<Pod> = Api::namespaced(client, "default");
    for j in pods_on_it {
        let pod = format!("pod-{j:05}");
        let p: Pod = serde_json::from_value(json!({
            "metadata": {"name": pod},
            "spec": {"nodeName": name, "containers": [{"name": "c", "image": "busybox"}]},
        }))
        .unwrap();
        pods.create(&PostParams::default(), &p)
            .await
            .unwrap_or_else(|e| panic!("creating pod {pod}: {e}"));
        let now = Timestamp::now().to_string();
        let status = json!({"status": {"phase": "Running", "conditions": [
            {"type": "Ready", "status": "True", "lastTransitionTime": now}]}});
        pods.patch_status(&pod, &PatchParams::default(), &Patch::Merge(status))
            .await
            .unwrap_or_else(|e| panic!("marking pod {pod} Running: {e}"));
    }
}

/// The hollow kubelets: every node's Lease renewed every 10 s (and its status posted every
/// `status_every`), spread evenly over the interval; the lost nodes' stop once `lose` is
/// set.
async fn heartbeats(
    client: kube::Client,
    nodes: usize,
    status_every: Option<Duration>,
    lose: Arc<AtomicBool>,
) {
    const RENEW: Duration = Duration::from_secs(10);
    let leases: Api<Lease> = Api::namespaced(client.clone(), NODE_LEASE_NAMESPACE);
    let node_api: Api<Node> = Api::all(client);
    let in_flight = Arc::new(tokio::sync::Semaphore::new(32));
    let mut tick = tokio::time::interval(RENEW / nodes as u32);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // Status posts per Lease renewal (e.g. 1 in 30 for 300 s).
    let status_ratio = status_every.map(|s| (s.as_secs_f64() / RENEW.as_secs_f64()).max(1.0));
    let mut round = 0u64;
    loop {
        for i in 0..nodes {
            tick.tick().await;
            if lost(i) && lose.load(Ordering::Relaxed) {
                continue;
            }
            let permit = in_flight.clone().acquire_owned().await.unwrap();
            let name = node_name(i);
            let post_status = status_ratio.is_some_and(|r| {
                let r = r as u64;
                (round + i as u64).is_multiple_of(r)
            });
            let (leases, node_api) = (leases.clone(), node_api.clone());
            tokio::spawn(async move {
                let patch = json!({"spec": {"renewTime": MicroTime(Timestamp::now())}});
                if let Err(e) = leases
                    .patch(&name, &PatchParams::default(), &Patch::Merge(patch))
                    .await
                {
                    eprintln!("renewing the Lease of {name}: {e}");
                }
                if post_status
                    && let Err(e) = node_api
                        .patch_status(
                            &name,
                            &PatchParams::default(),
                            &Patch::Merge(healthy_status()),
                        )
                        .await
                {
                    eprintln!("posting the status of {name}: {e}");
                }
                drop(permit);
            });
        }
        round += 1;
    }
}

fn has_taint(n: &Node, key: &str, effect: &str) -> bool {
    n.spec
        .as_ref()
        .and_then(|s| s.taints.as_ref())
        .is_some_and(|ts| ts.iter().any(|t| t.key == key && t.effect == effect))
}

fn ready_status(n: &Node) -> &str {
    n.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .and_then(|cs| cs.iter().find(|c| c.type_ == "Ready"))
        .map_or("", |c| c.status.as_str())
}

fn pod_ready(p: &Pod) -> bool {
    p.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .and_then(|cs| cs.iter().find(|c| c.type_ == "Ready"))
        .is_some_and(|c| c.status == "True")
}

/// What the controller made of the lost nodes so far.
#[derive(Default, Debug)]
struct LossSeen {
    not_ready: usize,
    no_schedule: usize,
    no_execute: usize,
    pods_not_ready: usize,
    /// Nodes not lost that are not Ready (should stay 0).
    false_positives: usize,
}

fn loss_seen(nodes: &Informer<Node>, pods: &Informer<Pod>) -> LossSeen {
    const UNREACHABLE: &str = "node.kubernetes.io/unreachable";
    let mut s = LossSeen::default();
    let mut lost_names = std::collections::HashSet::new();
    for n in nodes.list() {
        let name = n.metadata.name.clone().unwrap_or_default();
        let i: usize = name
            .strip_prefix("hollow-")
            .and_then(|i| i.parse().ok())
            .unwrap_or(usize::MAX);
        let down = ready_status(&n) != "True";
        if !lost(i) {
            s.false_positives += usize::from(down);
            continue;
        }
        s.not_ready += usize::from(down);
        s.no_schedule += usize::from(has_taint(&n, UNREACHABLE, "NoSchedule"));
        s.no_execute += usize::from(has_taint(&n, UNREACHABLE, "NoExecute"));
        lost_names.insert(name);
    }
    s.pods_not_ready = pods
        .list()
        .iter()
        .filter(|p| {
            p.spec
                .as_ref()
                .and_then(|s| s.node_name.as_ref())
                .is_some_and(|n| lost_names.contains(n))
                && !pod_ready(p)
        })
        .count();
    s
}

fn main() {
    let nodes = env("NODE_LIFECYCLE_BENCH_NODES", 1000) as usize;
    let secs = env("NODE_LIFECYCLE_BENCH_SECS", 60);
    let status_secs = env("NODE_LIFECYCLE_BENCH_STATUS_SECS", 300);
    let status_every = (status_secs > 0).then(|| Duration::from_secs(status_secs));
    let window = Duration::from_secs(secs);
    // 10 pods per 100 nodes; pod j on node 10j + j%10, so one in ten is on a lost node.
    let pod_count = nodes / 10;
    let mut pods_of: Vec<Vec<usize>> = vec![Vec::new(); nodes];
    for j in 0..pod_count {
        pods_of[(j * 10 + j % 10) % nodes].push(j);
    }
    let lost_count = (0..nodes).filter(|&i| lost(i)).count();
    let pods_on_lost: usize = (0..nodes)
        .filter(|&i| lost(i))
        .map(|i| pods_of[i].len())
        .sum();

    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("building the API server's runtime");
    rt.block_on(async move {
        let cluster = Cluster::start(false).await;
        let client = cluster.client().await;
        let setup = Instant::now();
        futures::stream::iter(pods_of.into_iter().enumerate())
            .map(|(i, p)| register(client.clone(), i, p))
            .buffer_unordered(16)
            .collect::<Vec<()>>()
            .await;
        println!(
            "node lifecycle controller at {nodes} hollow nodes ({pod_count} pods, {lost_count} to be lost): API server in this process (SQLite), mimalloc, {} cores; setup {:.1} s",
            std::thread::available_parallelism().map_or(0, |n| n.get()),
            setup.elapsed().as_secs_f64()
        );
        let lose = Arc::new(AtomicBool::new(false));
        tokio::spawn(heartbeats(client.clone(), nodes, status_every, lose.clone()));
        // The bench's own view of the nodes and pods, on this runtime (idle while nothing
        // changes, so in both phases alike).
        let seen_nodes = Informer::<Node>::start(Api::all(client.clone()));
        let seen_pods = Informer::<Pod>::start(Api::all(client.clone()));
        seen_nodes.wait_synced().await;
        seen_pods.wait_synced().await;
        // A full heartbeat round before measuring.
        tokio::time::sleep(Duration::from_secs(12)).await;

        // Phase 1: heartbeats only.
        let (heap_base, rss_base) = (common::heap::live(), rss_mib());
        let w = Window::start();
        tokio::time::sleep(window).await;
        let (wall0, _, process0) = w.end();

        // Phase 2: the controller on its own runtime and thread.
        let heap0 = common::heap::live();
        let rss0 = rss_mib();
        let fds0 = open_fds();
        let config = cluster.config().await;
        let (synced_tx, synced_rx) = tokio::sync::oneshot::channel::<Duration>();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let started = Instant::now();
        let controller = std::thread::Builder::new()
            .name(THREAD.into())
            .spawn(move || {
                ON_CONTROLLER.with(|c| c.set(true));
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .thread_name(format!("{THREAD}-blk"))
                    .on_thread_start(|| ON_CONTROLLER.with(|c| c.set(true)))
                    .build()
                    .expect("building the controller's runtime");
                rt.block_on(async move {
                    let client = controllers::client(config).expect("the controller's client");
                    let nodes = Informer::<Node>::start(Api::all(client.clone()));
                    let leases = Informer::<Lease>::start(Api::namespaced(
                        client.clone(),
                        NODE_LEASE_NAMESPACE,
                    ));
                    let pods = Informer::<Pod>::start(Api::all(client.clone()));
                    let c = NodeLifecycleController::new(
                        client,
                        nodes.clone(),
                        leases.clone(),
                        pods.clone(),
                        Options::default(),
                    );
                    // As `controllers::run_controllers` runs it (4 workers).
                    let run = tokio::spawn(c.run(4));
                    tokio::join!(nodes.wait_synced(), leases.wait_synced(), pods.wait_synced());
                    let _ = synced_tx.send(started.elapsed());
                    let _ = stop_rx.await;
                    run.abort();
                    nodes.stop();
                    leases.stop();
                    pods.stop();
                });
            })
            .expect("starting the controller's thread");
        // The controller threads' heap and the process's open files every 10 s from its
        // start, to see them change.
        let timeline = Arc::new(std::sync::Mutex::new(Vec::new()));
        let sampler = {
            let timeline = timeline.clone();
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(Duration::from_secs(10));
                loop {
                    tick.tick().await;
                    let heap = mib(CONTROLLER_HEAP.load(Ordering::Relaxed));
                    timeline.lock().unwrap().push((heap, open_fds()));
                }
            })
        };
        let synced = synced_rx.await.expect("the controller's informers synced");
        let (sync_cpu, precise) = controller_cpu();
        let heap_synced = common::heap::live();
        let ctrl_heap_synced = CONTROLLER_HEAP.load(Ordering::Relaxed);
        let rss_synced = rss_mib();
        // The first health pass registers every node (an event each): not steady state.
        tokio::time::sleep(Duration::from_secs(15)).await;
        let (startup_cpu, _) = controller_cpu();
        let warm_up = started.elapsed();
        let w = Window::start();
        tokio::time::sleep(window).await;
        let (wall1, ctrl1, process1) = w.end();
        let heap1 = common::heap::live();
        let ctrl_heap1 = CONTROLLER_HEAP.load(Ordering::Relaxed);
        let rss1 = rss_mib();
        let before_loss = loss_seen(&seen_nodes, &seen_pods);

        // Phase 3: a tenth of the nodes go silent.
        lose.store(true, Ordering::Relaxed);
        let w = Window::start();
        let limit = Duration::from_secs(180);
        let (mut first_not_ready, mut all_not_ready) = (None, None);
        let seen = loop {
            tokio::time::sleep(Duration::from_millis(250)).await;
            let s = loss_seen(&seen_nodes, &seen_pods);
            if first_not_ready.is_none() && s.not_ready > 0 {
                first_not_ready = Some(w.wall.elapsed());
            }
            if all_not_ready.is_none() && s.not_ready == lost_count {
                all_not_ready = Some(w.wall.elapsed());
            }
            if (s.not_ready == lost_count && s.no_schedule == lost_count)
                || w.wall.elapsed() > limit
            {
                break s;
            }
        };
        let (wall2, ctrl2, process2) = w.end();
        let ctrl_heap2 = CONTROLLER_HEAP.load(Ordering::Relaxed);
        sampler.abort();
        let _ = stop_tx.send(());
        controller.join().expect("the controller's thread");

        let secs_or = |d: Option<Duration>| {
            d.map_or("never".into(), |d| format!("{:.1} s", d.as_secs_f64()))
        };
        println!();
        println!("| phase | wall s | controller CPU/s | process CPU/s |");
        println!("|---|---:|---:|---:|");
        println!(
            "| heartbeats only ({nodes} Leases / 10 s) | {wall0:.0} | – | {process0:.3} |"
        );
        println!(
            "| start: informers synced in {:.2} s, first passes | {:.0} | {sync_cpu:.2} CPU s to sync, {startup_cpu:.2} CPU s in all | – |",
            synced.as_secs_f64(),
            warm_up.as_secs_f64()
        );
        println!(
            "| steady: heartbeats + controller | {wall1:.0} | {ctrl1:.4} | {process1:.3} |"
        );
        println!(
            "| {lost_count} nodes stop renewing, until all NotReady + NoSchedule | {wall2:.0} | {ctrl2:.4} | {process2:.3} |"
        );
        println!();
        println!(
            "controller CPU: threads `{THREAD}*` of its own runtime, from {} (the controller difference in process CPU/s: {:.3})",
            if precise { "/proc/self/task/<tid>/schedstat (ns)" } else { "/proc/self/task/<tid>/stat (10 ms ticks)" },
            process1 - process0
        );
        println!(
            "memory, controller threads' heap: {:.1} MiB once synced, {:.1} MiB after the steady window, {:.1} MiB after the loss",
            mib(ctrl_heap_synced),
            mib(ctrl_heap1),
            mib(ctrl_heap2),
        );
        let timeline: Vec<String> = timeline
            .lock()
            .unwrap()
            .iter()
            .map(|(m, fds)| format!("{m:.0}/{fds}"))
            .collect();
        println!(
            "every 10 s from the controller's start, its threads' heap MiB / the process's open fds (before it: {fds0}): {}",
            timeline.join(" ")
        );
        println!(
            "memory, process: heap +{:.1} MiB once synced, +{:.1} MiB after the steady window (heartbeats only, same length: {:+.1} MiB); RSS +{:.1} MiB, +{:.1} MiB (heartbeats only: {:+.1} MiB)",
            mib(heap_synced - heap0),
            mib(heap1 - heap0),
            mib(heap0 - heap_base),
            rss_synced - rss0,
            rss1 - rss0,
            rss0 - rss_base
        );
        println!(
            "lost nodes (renewals stopped at 0 s; their last one up to 10 s before): first NotReady after {}, all {} after {}, {}/{} with unreachable:NoSchedule, {}/{} with unreachable:NoExecute (paced at 0.1 node/s), {}/{} of their pods not Ready, {} other nodes NotReady (before the loss: {} NotReady)",
            secs_or(first_not_ready),
            lost_count,
            secs_or(all_not_ready),
            seen.no_schedule,
            lost_count,
            seen.no_execute,
            lost_count,
            seen.pods_not_ready,
            pods_on_lost,
            seen.false_positives,
            before_loss.not_ready + before_loss.false_positives,
        );
        drop(cluster);
    });
}
