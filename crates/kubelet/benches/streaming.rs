//! What streaming costs (issue 15's targets), with the real kubectl through the API server and
//! the kubelet to containerd, next to the direct path in the same run. Root only; prints its
//! figures and asserts nothing.
//!
//! `cargo bench -p rkube-kubelet --bench streaming`:
//! - `kubectl exec web -- true`, `RKUBE_BENCH_EXECS` (100) in a row, p50/p99: kubectl as it
//!   comes (WebSocket v5, terminated in the API server) and over SPDY; beside CRI `ExecSync`
//!   of the same command and `kubectl get pod web` (kubectl's own start-up and one API round
//!   trip);
//! - port-forward throughput for `RKUBE_BENCH_PF_MB` (1024) MiB served by busybox httpd,
//!   through `kubectl port-forward` (WebSocket tunnel, and SPDY) and straight to the pod IP
//!   from the lab's namespace, with the CPU each process used during the transfer;
//! - `RKUBE_BENCH_SESSIONS` (100) concurrent `kubectl exec` sessions: failures and this
//!   process's memory (it holds the API server and the kubelet).

/// The allocator the `rkube` binary runs its servers with (figures mean what users get).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[path = "../tests/lab/mod.rs"]
mod lab;

use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use lab::node::{TestNode, wait_pod};
use lab::{Lab, is_root, ms};

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted
        .get(i.min(sorted.len().saturating_sub(1)))
        .copied()
        .unwrap_or(0.0)
}

fn summary(name: &str, mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    let p50 = percentile(&v, 0.5);
    println!(
        "{name}: n={} p50 {p50:.1} ms, p99 {:.1} ms",
        v.len(),
        percentile(&v, 0.99)
    );
    p50
}

/// This process's resident memory now and at its peak, in MiB.
fn rss() -> (f64, f64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |k: &str| {
        status
            .lines()
            .find(|l| l.starts_with(k))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
            / 1024.0
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// CPU seconds (user + system) used so far by each command name, this process counted as
/// "rkube" (it holds the API server and the kubelet).
fn cpu_by_command() -> std::collections::HashMap<String, f64> {
    let me = std::process::id().to_string();
    let mut out = std::collections::HashMap::new();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return out;
    };
    for e in dir.flatten() {
        let pid = e.file_name().to_string_lossy().into_owned();
        if !pid.bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // comm is in parentheses and may hold spaces; the fields after it are numbered
        // from 3 (state): utime is field 14, stime 15.
        let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else {
            continue;
        };
        let comm = if pid == me {
            "rkube".to_owned()
        } else {
            stat[open + 1..close].to_owned()
        };
        let f: Vec<&str> = stat[close + 2..].split(' ').collect();
        let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
        *out.entry(comm).or_insert(0.0) += (ticks(11) + ticks(12)) / 100.0;
    }
    out
}

fn main() -> Result<()> {
    if !is_root() {
        eprintln!("skipping: needs root (containerd, network namespaces, cgroups)");
        return Ok(());
    }
    let lab = Lab::new()?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(async {
        let node = TestNode::start(&lab).await?;
        let result = bench(&lab, &node).await;
        node.cluster
            .ok(&["delete", "pod", "--all", "--grace-period=1"])
            .await;
        node.shutdown(&lab).await?;
        result
    })
}

async fn kubectl(node: &TestNode, args: &[&str], env: &[(&str, &str)]) -> Result<()> {
    let mut cmd = tokio::process::Command::new("kubectl");
    cmd.arg("--kubeconfig")
        .arg(node.cluster.kubeconfig())
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().await?;
    if !out.status.success() {
        bail!("kubectl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(())
}

async fn bench(lab: &Lab, node: &TestNode) -> Result<()> {
    let mb = env_or("RKUBE_BENCH_PF_MB", 1024);
    let pod = format!(
        r#"{{"apiVersion": "v1", "kind": "Pod", "metadata": {{"name": "web"}},
  "spec": {{"terminationGracePeriodSeconds": 1, "containers": [{{"name": "app",
  "image": "rkube.local/busybox:test", "command": ["sh", "-c",
  "mkdir -p /www && dd if=/dev/zero of=/www/big bs=1M count={mb} 2>/dev/null && exec httpd -f -p 8080 -h /www"],
  "readinessProbe": {{"tcpSocket": {{"port": 8080}}, "periodSeconds": 1}}}}]}}}}"#
    );
    let f = node.cluster.write("web.json", &pod);
    node.cluster.ok(&["apply", "-f", &f]).await;
    let pods = node.pods();
    let p = wait_pod(&pods, "web", Duration::from_secs(300), "ready", |p| {
        p.status
            .as_ref()
            .and_then(|s| s.container_statuses.as_ref())
            .is_some_and(|cs| cs.iter().all(|c| c.ready))
    })
    .await?;
    let ip = p
        .status
        .and_then(|s| s.pod_ip)
        .context("the pod has no IP")?;
    let id = lab::node::container_id(&pods.get("web").await?, "app")?;

    // Exec round trips.
    let n = env_or("RKUBE_BENCH_EXECS", 100);
    let mut cri = Vec::with_capacity(n);
    for _ in 0..n {
        let t = Instant::now();
        node.cri
            .exec_sync(&id, &["true"], Duration::from_secs(10))
            .await?;
        cri.push(ms(t.elapsed()));
    }
    let cri50 = summary("CRI ExecSync true", cri);
    let mut get = Vec::with_capacity(n);
    for _ in 0..n {
        let t = Instant::now();
        kubectl(node, &["get", "pod", "web"], &[]).await?;
        get.push(ms(t.elapsed()));
    }
    let get50 = summary("kubectl get pod web (kubectl start-up + one GET)", get);
    for (label, env) in [
        (
            "kubectl exec web -- true (WebSocket v5, kubectl's default)",
            &[][..],
        ),
        (
            "kubectl exec web -- true (SPDY)",
            &[("KUBECTL_REMOTE_COMMAND_WEBSOCKETS", "false")][..],
        ),
    ] {
        let mut v = Vec::with_capacity(n);
        for _ in 0..n {
            let t = Instant::now();
            kubectl(node, &["exec", "web", "--", "true"], env).await?;
            v.push(ms(t.elapsed()));
        }
        let p50 = summary(label, v);
        println!(
            "  over kubectl get: {:+.1} ms at p50; over CRI ExecSync: {:+.1} ms",
            p50 - get50,
            p50 - cri50
        );
    }

    // Port-forward throughput against the direct path.
    let url_direct = format!("http://{ip}:8080/big");
    let netns = lab.netns();
    let t = Instant::now();
    let direct = tokio::process::Command::new("nsenter")
        .arg(format!("--net={}", netns.display()))
        .args([
            "curl",
            "-s",
            "-o",
            "/dev/null",
            "-w",
            "%{size_download}",
            &url_direct,
        ])
        .output()
        .await?;
    let direct_s = t.elapsed().as_secs_f64();
    let direct_bytes: f64 = String::from_utf8_lossy(&direct.stdout)
        .parse()
        .unwrap_or(0.0);
    let mib = |b: f64, s: f64| b / s / (1024.0 * 1024.0);
    for (label, env) in [
        ("WebSocket tunnel", &[][..]),
        ("SPDY", &[("KUBECTL_PORT_FORWARD_WEBSOCKETS", "false")][..]),
    ] {
        let (mut child, port) =
            lab::node::port_forward(&node.cluster.kubeconfig(), "web", 8080, env, &[]).await?;
        let cpu_before = cpu_by_command();
        let t = Instant::now();
        let through = tokio::process::Command::new("curl")
            .args([
                "-s",
                "-o",
                "/dev/null",
                "-w",
                "%{size_download}",
                &format!("http://127.0.0.1:{port}/big"),
            ])
            .output()
            .await?;
        let pf_s = t.elapsed().as_secs_f64();
        let cpu_after = cpu_by_command();
        let pf_bytes: f64 = String::from_utf8_lossy(&through.stdout)
            .parse()
            .unwrap_or(0.0);
        child.kill().await?;
        println!(
            "port-forward {:.0} MiB ({label}): {:.0} MiB/s through kubectl port-forward, {:.0} MiB/s straight to the pod ({:.0}% of direct)",
            pf_bytes / (1024.0 * 1024.0),
            mib(pf_bytes, pf_s),
            mib(direct_bytes, direct_s),
            100.0 * mib(pf_bytes, pf_s) / mib(direct_bytes, direct_s).max(f64::MIN_POSITIVE)
        );
        // Where the CPU went during the transfer (curl's own is gone with it: its process
        // ended, so it is measured from the total).
        let mut spent: Vec<(String, f64)> = cpu_after
            .iter()
            .map(|(k, v)| (k.clone(), v - cpu_before.get(k).copied().unwrap_or(0.0)))
            .filter(|(_, v)| *v >= 0.05)
            .collect();
        spent.sort_by(|a, b| b.1.total_cmp(&a.1));
        let parts: Vec<String> = spent.iter().map(|(k, v)| format!("{k} {v:.1} s")).collect();
        println!(
            "  CPU during it ({pf_s:.1} s, 2 cores): {}",
            parts.join(", ")
        );
    }

    // Concurrent sessions. The port-forward's file (written in the container) is flushed to
    // disk first: its write-back would otherwise land in these figures (runc and containerd
    // sync their state on every exec).
    let t = Instant::now();
    tokio::process::Command::new("sync").status().await?;
    println!(
        "sync before the sessions: {:.1} s",
        t.elapsed().as_secs_f64()
    );
    let sessions = env_or("RKUBE_BENCH_SESSIONS", 100);
    let before = rss();
    let sampler = tokio::spawn(async {
        let mut peak = 0.0f64;
        for _ in 0..600 {
            peak = peak.max(rss().0);
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        peak
    });
    let t = Instant::now();
    let runs = (0..sessions).map(|_| {
        kubectl(
            node,
            &["exec", "web", "--", "sh", "-c", "sleep 2; echo ok"],
            &[],
        )
    });
    let results = futures::future::join_all(runs).await;
    let failed: Vec<String> = results
        .iter()
        .filter_map(|r| r.as_ref().err().map(|e| format!("{e:#}")))
        .collect();
    let elapsed = t.elapsed();
    sampler.abort();
    let after = rss();
    println!(
        "{sessions} concurrent kubectl exec sessions (sleep 2): {} failed, all done in {:.1} s; API server + kubelet RSS {:.0} MiB before, {:.0} MiB after (peak of the process so far {:.0} MiB)",
        failed.len(),
        elapsed.as_secs_f64(),
        before.0,
        after.0,
        after.1
    );
    if let Some(e) = failed.first() {
        println!("  first failure: {e}");
    }
    Ok(())
}
