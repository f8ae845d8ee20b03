//! Bench, run by hand (ignored by `cargo test`): pod creates/s through the highly available
//! control plane against one server, side by side in one run, each case on a fresh lab
//! (tests/harness/ha_lab.rs: network namespaces on one bridge, `rkube server
//! --disable-agent`, so the pods stay Pending and the figure is the API server and its
//! store):
//! (a) one `rkube server` on SQLite (the default datastore);
//! (b) one `rkube server --cluster-init` (managed etcd, a single member);
//! (c) three servers, `--cluster-init` and two `--server https://10.99.0.1:6443 --token`
//!     joins (a 3-member etcd), the clients spread round-robin over the three API servers.
//! The load, as crates/apiserver/benches/api.rs: N concurrent kube-rs clients creating M
//! pods in all in `default`, timed from the first create to the last acknowledgement. It
//! runs in this process, on a thread that joined (setns) a fourth namespace on the bridge
//! (10.99.0.4), so every case's requests cross the same veths. Prints per case and run
//! creates/s, p50/p99 create latency, and the ratios (c)/(a) and (c)/(b); asserts only that
//! every create was acknowledged and that each server lists all the pods. All servers and
//! etcd members share this machine's CPUs and disk: (c) is three servers and three members
//! on one host, not three hosts.
//!
//! `cargo build --release -p rkube` then
//! `RKUBE_BIN=$CARGO_TARGET_DIR/release/rkube cargo test -p rkube --test ha_bench -- --ignored --nocapture`
//! (`RKUBE_BIN`: the server binary, the release build users run; `RKUBE_BENCH_CLIENTS`,
//! default 64; `RKUBE_BENCH_PODS`, default 3000; `RKUBE_BENCH_RUNS`, default 1.) Needs root,
//! etcd (Debian's etcd-server) and kubectl.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed bench step should panic

mod harness;

use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::process::{Child, Command};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use harness::ha_lab::{FIRST, Server, attach, kubeconfig_for, lab};
use harness::wait_until;
use k8s_openapi::api::core::v1::{Pod, ServiceAccount};
use kube::api::{Api, ListParams, PostParams};

/// The load generator's namespace: its address on the lab's bridge (port 3).
const CLIENT_IP: &str = "10.99.0.4";

/// One case of the bench.
#[derive(Clone, Copy)]
struct Case {
    label: &'static str,
    servers: usize,
    etcd: bool,
}

const CASES: [Case; 3] = [
    Case {
        label: "(a) 1 server, SQLite",
        servers: 1,
        etcd: false,
    },
    Case {
        label: "(b) 1 server, etcd (1 member)",
        servers: 1,
        etcd: true,
    },
    Case {
        label: "(c) 3 servers, etcd (3 members)",
        servers: 3,
        etcd: true,
    },
];

/// What one case measured.
struct Figures {
    took: Duration,
    pods: usize,
    /// Create latencies, sorted.
    latencies: Vec<Duration>,
}

impl Figures {
    fn rate(&self) -> f64 {
        self.pods as f64 / self.took.as_secs_f64()
    }
}

/// The latency at fraction `p` of `sorted`, in ms.
fn percentile(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i].as_secs_f64() * 1000.0
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
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

/// The load generator's network namespace (held by a sleeping process), gone on drop.
struct ClientNetns(Child);

impl Drop for ClientNetns {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Runs `f` on a thread in the network namespace of process `pid`; the threads it starts
/// (the tokio runtime's) are created in that namespace too, and so are their sockets.
fn in_netns<T: Send>(pid: u32, f: impl FnOnce() -> T + Send) -> T {
    std::thread::scope(|scope| {
        scope
            .spawn(move || {
                let ns = std::fs::File::open(format!("/proc/{pid}/ns/net")).unwrap();
                // SAFETY: setns(2) on a descriptor this thread owns; it changes only the
                // calling thread's network namespace.
                let rc = unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) };
                assert_eq!(rc, 0, "setns: {}", std::io::Error::last_os_error());
                f()
            })
            .join()
            .unwrap()
    })
}

/// `clients` concurrent clients, client k on server k mod the number of `kubeconfigs`,
/// create `pods` pods in `default`; then every server must list them all.
fn load(kubeconfigs: &[PathBuf], clients: usize, pods: usize) -> Figures {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let mut apis: Vec<Api<Pod>> = Vec::new();
        for path in kubeconfigs {
            let kc = kube::config::Kubeconfig::read_from(path).unwrap();
            let cfg = kube::Config::from_custom_kubeconfig(kc, &Default::default())
                .await
                .unwrap();
            apis.push(Api::namespaced(
                kube::Client::try_from(cfg).unwrap(),
                "default",
            ));
        }
        // The account pods are admitted with (the ServiceAccounts controller may have made it).
        let accounts: Api<ServiceAccount> =
            Api::namespaced(apis[0].clone().into_client(), "default");
        let sa =
            serde_json::from_value(serde_json::json!({"metadata": {"name": "default"}})).unwrap();
        match accounts.create(&PostParams::default(), &sa).await {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.code == 409 => {}
            Err(e) => panic!("creating the default ServiceAccount: {e}"),
        }

        let next = Arc::new(AtomicUsize::new(0));
        // Every client has its connection open (a LIST) before the clock starts.
        let barrier = Arc::new(tokio::sync::Barrier::new(clients + 1));
        let tasks: Vec<_> = (0..clients)
            .map(|k| {
                let api = apis[k % apis.len()].clone();
                let (next, barrier) = (next.clone(), barrier.clone());
                tokio::spawn(async move {
                    api.list(&ListParams::default().limit(1)).await.unwrap();
                    barrier.wait().await;
                    let mut lat = Vec::new();
                    let mut failed = Vec::new();
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        if i >= pods {
                            break;
                        }
                        let t = Instant::now();
                        match api
                            .create(&PostParams::default(), &pod(&format!("pod-{i:05}")))
                            .await
                        {
                            Ok(_) => lat.push(t.elapsed()),
                            Err(e) => failed.push(format!("pod-{i:05}: {e}")),
                        }
                    }
                    (lat, failed)
                })
            })
            .collect();
        barrier.wait().await;
        let start = Instant::now();
        let mut latencies = Vec::new();
        let mut failed = Vec::new();
        for t in tasks {
            let (lat, f) = t.await.unwrap();
            latencies.extend(lat);
            failed.extend(f);
        }
        let took = start.elapsed();
        assert!(
            failed.is_empty(),
            "{} of {pods} creates failed, e.g. {:?}",
            failed.len(),
            &failed[..failed.len().min(5)]
        );
        latencies.sort();
        for (n, api) in apis.iter().enumerate() {
            let listed = api.list(&ListParams::default()).await.unwrap().items.len();
            assert_eq!(listed, pods, "server {} lists {listed} pods", n + 1);
        }
        Figures {
            took,
            pods,
            latencies,
        }
    })
}

/// Waits until the first server lets `token` join: it has published the bootstrap bundle
/// (its banner says so, after the API serves) and its RBAC index lets the token's user read
/// it (a join started earlier is refused with a 403 and exits).
fn wait_joinable(first: &Server, token: &str) {
    let published = wait_until(Duration::from_secs(60), || {
        let out = std::fs::read_to_string(first.dir.path().join("server.out")).ok()?;
        out.contains("server token (joins servers").then_some(())
    });
    assert!(
        published.is_some(),
        "the first server never published its bootstrap bundle:\n{}",
        first.log_tail()
    );
    let id = token
        .split_once("::")
        .and_then(|(_, t)| t.split_once('.'))
        .map(|(id, _)| id)
        .unwrap_or_else(|| panic!("not a K10 token: {token}"));
    let user = format!("system:bootstrap:{id}");
    let allowed = wait_until(Duration::from_secs(60), || {
        let answer = first.get(&[
            "auth",
            "can-i",
            "get",
            "secret/rkube-server-bootstrap",
            "-n",
            "kube-system",
            "--as",
            &user,
            "--as-group",
            "system:bootstrappers",
            "--as-group",
            "system:bootstrappers:rkube:servers",
        ]);
        (answer == "yes").then_some(())
    });
    assert!(
        allowed.is_some(),
        "the server token's user never could read the bootstrap bundle"
    );
}

/// One case on a fresh lab: its servers started (and joined), then the load.
fn run_case(case: Case, clients: usize, pods: usize) -> Figures {
    let (switch, mut servers) = lab();
    let started = Instant::now();
    servers[0].start(if case.etcd { &["--cluster-init"] } else { &[] });
    if case.servers > 1 {
        let token = std::fs::read_to_string(servers[0].dir.path().join("token")).unwrap();
        let token = token.trim();
        wait_joinable(&servers[0], token);
        // One after the other: etcd takes one learner at a time.
        for s in &mut servers[1..case.servers] {
            s.start(&["--server", FIRST, "--token", token]);
        }
    }
    eprintln!(
        "{}: {} serving after {:.1?}",
        case.label,
        if case.servers > 1 {
            "all servers"
        } else {
            "the server"
        },
        started.elapsed()
    );
    let client = ClientNetns(attach(&switch.0, 3, CLIENT_IP));
    // Each server's admin kubeconfig, pointed at its address on the bridge.
    let kubeconfigs: Vec<PathBuf> = servers[..case.servers]
        .iter()
        .map(|s: &Server| {
            let to = s.dir.path().join("kubeconfig-bench.yaml");
            kubeconfig_for(
                &s.dir.path().join("kubeconfig.yaml"),
                &to,
                &format!("https://{}:6443", s.ip),
            );
            to
        })
        .collect();
    let figures = in_netns(client.0.id(), || load(&kubeconfigs, clients, pods));
    // Every server is still up after the load (a crash under load would show here).
    for s in &mut servers[..case.servers] {
        if let Some(Ok(Some(status))) = s.process.as_mut().map(Child::try_wait) {
            panic!("server {} exited ({status}):\n{}", s.ip, s.log_tail());
        }
    }
    figures
}

#[test]
#[ignore = "a bench: run by hand, it prints figures"]
fn pod_creates_ha_vs_single() {
    assert!(
        harness::root_with(&["/usr/bin/etcd", "/usr/bin/unshare", "/usr/bin/nsenter"])
            && Command::new("kubectl")
                .arg("version")
                .arg("--client")
                .output()
                .is_ok(),
        "needs root, etcd (Debian's etcd-server) and kubectl"
    );
    let clients = env_or("RKUBE_BENCH_CLIENTS", 64);
    let pods = env_or("RKUBE_BENCH_PODS", 3000);
    let runs = env_or("RKUBE_BENCH_RUNS", 1).max(1);
    println!(
        "binary: {}; {clients} clients, {pods} pods per case, {runs} run(s)",
        harness::server_binary()
    );
    let mut rates: Vec<[f64; 3]> = Vec::new();
    for run in 1..=runs {
        let mut r = [0.0; 3];
        for (n, case) in CASES.iter().enumerate() {
            let f = run_case(*case, clients, pods);
            r[n] = f.rate();
            println!(
                "run {run} {:<32} {:>7.0} creates/s, p50 {:.1} ms, p99 {:.1} ms ({} pods in {:.2} s)",
                case.label,
                f.rate(),
                percentile(&f.latencies, 0.5),
                percentile(&f.latencies, 0.99),
                f.pods,
                f.took.as_secs_f64()
            );
        }
        println!(
            "run {run} ratios: (c)/(a) {:.2}, (c)/(b) {:.2}",
            r[2] / r[0],
            r[2] / r[1]
        );
        rates.push(r);
    }
    if runs > 1 {
        for (n, case) in CASES.iter().enumerate() {
            println!(
                "median of {runs} runs {:<32} {:>7.0} creates/s",
                case.label,
                median(rates.iter().map(|r| r[n]).collect())
            );
        }
        println!(
            "median ratios: (c)/(a) {:.2}, (c)/(b) {:.2}",
            median(rates.iter().map(|r| r[2] / r[0]).collect()),
            median(rates.iter().map(|r| r[2] / r[1]).collect())
        );
    }
}
