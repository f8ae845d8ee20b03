//! Bench, run by hand (ignored by `cargo test`): the seconds from a Deployment's CPU load
//! starting to the HorizontalPodAutoscaler writing its scale-up, with the default settings
//! (the metrics server scrapes every 15 s, the HPA syncs every 15 s), over several runs on a
//! real node (tests/harness). Each run's HPA exists and has read the idle pod's usage before
//! the load starts, so the figure is the pipeline's delay: the first scrape that sees the load
//! (`metrics`), then the HPA's next sync (`scale`); each run starts the load at another point
//! of those periods. Prints one line per run and the median.
//!
//! `cargo build --release -p rkube` then
//! `RKUBE_BIN=$CARGO_TARGET_DIR/release/rkube cargo test -p rkube --test hpa_bench -- --ignored --nocapture`
//! (`RKUBE_BIN`: the server binary, the release build users run; `RKUBE_BENCH_RUNS`, default 5.)
#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed bench step should panic

mod harness;

use std::time::{Duration, Instant};

use harness::Node;

const IMAGE: &str = "rkube.local/busybox:hpa";

/// Idles (blocked on a FIFO: a polling loop's own CPU would move the HPA) until something is
/// written to `/tmp/go`, then burns CPU (capped at its 100m limit, 5 times its
/// 20m request).
fn deployment(name: &str) -> String {
    format!(
        r#"{{"apiVersion": "apps/v1", "kind": "Deployment",
  "metadata": {{"name": "{name}", "namespace": "default"}},
  "spec": {{"replicas": 1, "selector": {{"matchLabels": {{"app": "{name}"}}}},
    "template": {{"metadata": {{"labels": {{"app": "{name}"}}}},
      "spec": {{"terminationGracePeriodSeconds": 0, "containers": [{{
        "name": "burn", "image": "{IMAGE}", "imagePullPolicy": "Never",
        "resources": {{"requests": {{"cpu": "20m"}}, "limits": {{"cpu": "100m"}}}},
        "command": ["sh", "-c", "mkfifo /tmp/go; read x < /tmp/go; while :; do :; done"]}}]}}}}}}}}"#
    )
}

fn hpa(name: &str) -> String {
    format!(
        r#"{{"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
  "metadata": {{"name": "{name}", "namespace": "default"}},
  "spec": {{"scaleTargetRef": {{"apiVersion": "apps/v1", "kind": "Deployment", "name": "{name}"}},
    "minReplicas": 1, "maxReplicas": 3,
    "metrics": [{{"type": "Resource", "resource": {{"name": "cpu",
      "target": {{"type": "Utilization", "averageUtilization": 50}}}}}}]}}}}"#
    )
}

/// The pod's CPU in millicores as the metrics API reports it, if it has a figure.
fn pod_millicores(node: &Node, name: &str) -> Option<f64> {
    let out = node.kubectl(&[
        "get",
        "--raw",
        &format!("/apis/metrics.k8s.io/v1beta1/namespaces/default/pods?labelSelector=app%3D{name}"),
    ]);
    let list: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
    let cpu = list["items"][0]["containers"][0]["usage"]["cpu"].as_str()?;
    Some(common::quantity::parse_scaled(cpu, 1000)? as f64)
}

#[test]
#[ignore = "a bench: run by hand, it prints figures"]
fn hpa_scale_up_latency() {
    assert!(
        harness::root_with(&["/usr/bin/containerd", "/usr/sbin/runc", "/usr/sbin/nft"]),
        "needs root, containerd, runc and nft"
    );
    let runs: usize = std::env::var("RKUBE_BENCH_RUNS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(5);
    let mut node = Node::new("rkube-hpa-bench", "hpa-bench", "warn");
    harness::air_gap_image(node.dir.path(), IMAGE, "busybox.tar", &[]);
    node.start_server();
    eprintln!("binary: {}", harness::server_binary());

    let mut totals = Vec::new();
    for run in 0..runs {
        let name = format!("burn{run}");
        node.apply(&deployment(&name));
        node.apply(&hpa(&name));
        // The HPA has read the idle pod: its next scale-up can only come from the load.
        node.eventually(120, "the HPA reads the idle pod", || {
            let got = node.ok(&[
                "get",
                "hpa",
                &name,
                "-o",
                "jsonpath={.status.currentMetrics[0].resource.current.averageUtilization}",
            ]);
            (!got.is_empty()).then_some(())
        });
        // The load starts at a different point of the 15 s scrape and sync periods in each
        // run (spread evenly over one period), so the runs sample every phase.
        let offset = Duration::from_secs_f64(15.0 * run as f64 / runs as f64);
        std::thread::sleep(offset);
        let pod = node.ok(&[
            "get",
            "pods",
            "-l",
            &format!("app={name}"),
            "-o",
            "jsonpath={.items[*].metadata.name}",
        ]);
        assert!(!pod.contains(' '), "scaled before its load: {pod}");

        let start = Instant::now();
        node.ok(&["exec", &pod, "--", "sh", "-c", "echo > /tmp/go"]);
        let mut seen = None;
        // 20m request at a 50% target with upstream's 10% tolerance: above 11m scales.
        let scaled = harness::wait_until(Duration::from_secs(120), || {
            if seen.is_none() && pod_millicores(&node, &name).is_some_and(|m| m > 11.0) {
                seen = Some(start.elapsed());
            }
            let replicas = node.ok(&["get", "deploy", &name, "-o", "jsonpath={.spec.replicas}"]);
            (replicas != "1").then(|| start.elapsed())
        })
        .expect("scaled up within 120 s");
        let seen = seen.unwrap_or(scaled);
        eprintln!(
            "run {run} (load {:.1} s after the HPA's first reading): load to metrics {:.1} s, to scale-up written {:.1} s",
            offset.as_secs_f64(),
            seen.as_secs_f64(),
            scaled.as_secs_f64()
        );
        totals.push(scaled);
        node.ok(&["delete", "hpa", &name]);
        node.ok(&["delete", "deploy", &name, "--wait=false"]);
    }
    totals.sort();
    eprintln!(
        "scale-up after load start, {runs} runs: median {:.1} s, min {:.1} s, max {:.1} s",
        totals[runs / 2].as_secs_f64(),
        totals[0].as_secs_f64(),
        totals[runs - 1].as_secs_f64()
    );
    node.stop_server();
}
