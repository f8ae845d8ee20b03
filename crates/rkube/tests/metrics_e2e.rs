//! Metrics and autoscaling on a real node (tests/harness: `rkube server` with its agent and
//! containerd in a network namespace of the test's own): `kubectl top node|pod` from the
//! metrics server, a CPU-bound Deployment that `kubectl autoscale` grows and that shrinks
//! once its load stops, and an HPA on a pod metric the pods expose themselves. The metrics
//! server scrapes every 5 s here (15 s by default; `RKUBE_METRIC_RESOLUTION` sets it) to keep
//! the test short. Needs root,
//! containerd, runc, nft and the CNI plugins.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed test step should panic

mod harness;

use std::time::Instant;

use harness::Node;

const IMAGE: &str = "rkube.local/busybox:metrics";

/// Burns CPU (capped at 100m by its limit, 5 times its 20m request) until `/tmp/stop`
/// exists.
const BURN: &str = r#"{"apiVersion": "apps/v1", "kind": "Deployment",
  "metadata": {"name": "burn", "namespace": "default"},
  "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "burn"}},
    "template": {"metadata": {"labels": {"app": "burn"}},
      "spec": {"terminationGracePeriodSeconds": 0, "containers": [{
        "name": "burn", "image": "rkube.local/busybox:metrics", "imagePullPolicy": "Never",
        "resources": {"requests": {"cpu": "20m"}, "limits": {"cpu": "100m"}},
        "command": ["sh", "-c", "while [ ! -f /tmp/stop ]; do :; done; exec sleep 3600"]}]}}}}"#;

/// Serves a request counter that grows by 100 a second, for the custom metrics API to
/// read as `http_requests_per_second`.
const QPS: &str = r#"{"apiVersion": "apps/v1", "kind": "Deployment",
  "metadata": {"name": "qps", "namespace": "default"},
  "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "qps"}},
    "template": {"metadata": {"labels": {"app": "qps"},
        "annotations": {"prometheus.io/scrape": "true", "prometheus.io/port": "8080"}},
      "spec": {"terminationGracePeriodSeconds": 0, "containers": [{
        "name": "web", "image": "rkube.local/busybox:metrics", "imagePullPolicy": "Never",
        "ports": [{"containerPort": 8080}],
        "command": ["sh", "-c", "mkdir -p /www; i=0; (while :; do i=$((i+100)); printf '# TYPE http_requests_total counter\nhttp_requests_total %d\n' $i > /www/m; mv /www/m /www/metrics; sleep 1; done) & exec httpd -f -p 8080 -h /www"]}]}}}}"#;

const QPS_HPA: &str = r#"{"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
  "metadata": {"name": "qps", "namespace": "default"},
  "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "qps"},
    "minReplicas": 1, "maxReplicas": 2,
    "metrics": [{"type": "Pods", "pods": {"metric": {"name": "http_requests_per_second"},
      "target": {"type": "AverageValue", "averageValue": "50"}}}]}}"#;

fn replicas(node: &Node, deploy: &str) -> String {
    node.ok(&["get", "deploy", deploy, "-o", "jsonpath={.spec.replicas}"])
}

/// The millicores of a `kubectl top` CPU cell (`12m`, `1`).
fn millicores(cell: &str) -> i64 {
    match cell.strip_suffix('m') {
        Some(m) => m.parse().unwrap(),
        None => cell.parse::<i64>().unwrap() * 1000,
    }
}

#[test]
fn top_and_autoscaling_on_cpu_and_a_pod_metric() {
    if !harness::can_run_node(&[]) {
        common::ci::skip("needs root, containerd, runc, nft and the CNI plugins");
        return;
    }
    let mut node = Node::new("rkube-metrics", "metrics", "warn");
    harness::air_gap_image(node.dir.path(), IMAGE, "busybox.tar", &[]);
    // `RKUBE_METRIC_RESOLUTION=15s` measures the default's time to scale up.
    let resolution = std::env::var("RKUBE_METRIC_RESOLUTION").unwrap_or_else(|_| "5s".into());
    node.start_server_with(&["--metric-resolution", &resolution]);

    // Discovery lists the group, as kubectl top needs.
    let resources = node.ok(&["api-resources", "--api-group=metrics.k8s.io", "-o", "name"]);
    assert_eq!(resources, "nodes.metrics.k8s.io\npods.metrics.k8s.io\n");
    // And OpenAPI describes the kinds, as metrics-server publishes them.
    let explain = node.ok(&["explain", "podmetrics.containers"]);
    assert!(
        explain.contains("Container name corresponding to the one from pod.spec.containers"),
        "{explain}"
    );

    node.apply(BURN);
    node.eventually(90, "a burn pod Running", || {
        let out = node.ok(&[
            "get",
            "pods",
            "-l",
            "app=burn",
            "-o",
            "jsonpath={.items[*].status.phase}",
        ]);
        (out == "Running").then_some(())
    });
    let load_started = Instant::now();

    // kubectl top: the node's usage, then the pod's, within two scrapes of its start.
    let top_node = node.eventually(60, "kubectl top node", || {
        let out = node.kubectl(&["top", "node", "--no-headers"]);
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
    });
    let cells: Vec<&str> = top_node.split_whitespace().collect();
    assert_eq!(cells[0], "metrics", "{top_node}");
    assert!(
        millicores(cells[1]) > 0 && cells[3].ends_with("Mi"),
        "{top_node}"
    );
    let burn_cpu = node.eventually(60, "kubectl top pod shows the burner", || {
        let out = node.kubectl(&["top", "pod", "-l", "app=burn", "--no-headers"]);
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let cpu = millicores(text.split_whitespace().nth(1)?);
        (cpu > 20).then_some(cpu)
    });
    assert!(burn_cpu <= 130, "capped at its 100m limit: {burn_cpu}m");
    let containers = node.ok(&[
        "top",
        "pod",
        "-A",
        "--containers",
        "--sort-by=cpu",
        "--no-headers",
    ]);
    let first: Vec<&str> = containers
        .lines()
        .next()
        .unwrap()
        .split_whitespace()
        .collect();
    assert_eq!(
        (first[0], first[2]),
        ("default", "burn"),
        "busiest first:\n{containers}"
    );
    assert!(first[1].starts_with("burn-"), "{containers}");

    // Autoscaling on CPU: 5 times the request against a 50% target grows to the maximum.
    node.ok(&[
        "autoscale",
        "deploy",
        "burn",
        "--cpu-percent=50",
        "--min=1",
        "--max=3",
    ]);
    node.eventually(90, "burn scaled to 3", || {
        (replicas(&node, "burn") == "3").then_some(())
    });
    eprintln!(
        "burn: scale-up written {:?} after its load started",
        load_started.elapsed()
    );
    let hpa = node.ok(&["get", "hpa", "burn", "--no-headers"]);
    let targets = hpa
        .split_whitespace()
        .nth(2)
        .unwrap_or_default()
        .to_string();
    let targets = if targets == "cpu:" {
        format!("cpu: {}", hpa.split_whitespace().nth(3).unwrap_or_default())
    } else {
        targets
    };
    assert!(
        targets.starts_with("cpu: ") && targets.ends_with("%/50%"),
        "{hpa}"
    );
    let events = node.ok(&[
        "get",
        "events",
        "--field-selector",
        "involvedObject.name=burn,reason=SuccessfulRescale",
        "-o",
        "jsonpath={.items[*].message}",
    ]);
    assert!(
        events.contains(
            "New size: 3; reason: cpu resource utilization (percentage of request) above target"
        ),
        "{events}"
    );

    // The load stops; without a stabilization window the HPA shrinks the Deployment back.
    node.ok(&[
        "patch",
        "hpa",
        "burn",
        "--type=merge",
        "-p",
        r#"{"spec":{"behavior":{"scaleDown":{"stabilizationWindowSeconds":0}}}}"#,
    ]);
    node.eventually(60, "three burn pods Running", || {
        let out = node.ok(&[
            "get",
            "pods",
            "-l",
            "app=burn",
            "-o",
            "jsonpath={.items[*].status.phase}",
        ]);
        (out == "Running Running Running").then_some(())
    });
    for pod in node
        .ok(&["get", "pods", "-l", "app=burn", "-o", "name"])
        .lines()
    {
        node.ok(&["exec", pod, "--", "touch", "/tmp/stop"]);
    }
    node.eventually(150, "burn scaled back to 1", || {
        (replicas(&node, "burn") == "1").then_some(())
    });

    // A pod metric: each pod counts 100 requests a second; a target of 50 a pod needs two.
    node.apply(QPS);
    node.apply(QPS_HPA);
    let raw = node.eventually(60, "the custom metric", || {
        let out = node.kubectl(&["get", "--raw", "/apis/custom.metrics.k8s.io/v1beta2/namespaces/default/pods/*/http_requests_per_second?labelSelector=app%3Dqps"]);
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        text.contains("\"value\"").then_some(text)
    });
    let list: serde_json::Value = serde_json::from_str(&raw).unwrap();
    let value =
        common::quantity::parse_scaled(list["items"][0]["value"].as_str().unwrap(), 1).unwrap();
    assert!((80..=120).contains(&value), "about 100 a second: {raw}");
    node.eventually(90, "qps scaled to 2", || {
        (replicas(&node, "qps") == "2").then_some(())
    });
    node.stop_server();
}
