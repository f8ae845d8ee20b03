//! Who may use the kubelet API, end to end (root + containerd; skips otherwise, fails under
//! CI): the real API server, scheduler and controller manager, and this kubelet — talking to
//! the API server as `system:node:<name>`, as a joined node does — on a supervised containerd
//! in the lab's network namespace. Callers reach the kubelet's HTTPS port on 127.0.0.1
//! directly: without credentials (401), with a bad token (401), with a ServiceAccount token
//! before and after RBAC grants it `nodes/proxy` (403, then `/pods` and `/run` answer), and
//! through the API server (`kubectl logs`, the node proxy), whose kubelet-client identity
//! stays allowed. Then resource stats: a pod burning CPU shows in `/stats/summary` with a CPU
//! rate and memory, in `/metrics/resource` and `/metrics/cadvisor`, also through the API
//! server's node proxy (as metrics-server reads it).

mod lab;

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use http::{Method, StatusCode};
use http_body_util::BodyExt;
use k8s_openapi::api::core::v1::Node;
use kube::Api;
use lab::node::{TestNode, run_in_lab, wait_pod};

const POD: &str = r#"
apiVersion: v1
kind: Pod
metadata: {name: box}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - {name: box, image: rkube.local/busybox:test, command: ["sh", "-c", "echo started; exec sleep 3600"]}
"#;

const BURN: &str = r#"
apiVersion: v1
kind: Pod
metadata: {name: burn}
spec:
  terminationGracePeriodSeconds: 0
  containers:
  - name: burn
    image: rkube.local/busybox:test
    command: ["sh", "-c", "while :; do :; done"]
    volumeMounts: [{name: scratch, mountPath: /scratch}]
  volumes: [{name: scratch, emptyDir: {}}]
"#;

const GRANT: &str = r#"
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: kubelet-api-user}
rules:
- {apiGroups: [""], resources: ["nodes/proxy"], verbs: ["get", "create"]}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: robot-kubelet-api}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: kubelet-api-user}
subjects:
- {kind: ServiceAccount, name: robot, namespace: default}
"#;

/// An answer of the kubelet: status, content type, body.
#[derive(Debug)]
struct Answer {
    status: StatusCode,
    content_type: Option<String>,
    body: String,
}

/// Sends `method path` to the kubelet as the caller `config` describes.
async fn call(config: &kube::Config, method: Method, path: &str) -> Result<Answer> {
    let client = kube::Client::try_from(config.clone())?;
    let req = http::Request::builder()
        .method(method)
        .uri(path)
        .body(kube::client::Body::from(Vec::new()))?;
    let resp = client.send(req).await.with_context(|| path.to_owned())?;
    let status = resp.status();
    let content_type = resp
        .headers()
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let body = resp.into_body().collect().await?.to_bytes();
    Ok(Answer {
        status,
        content_type,
        body: String::from_utf8_lossy(&body).into_owned(),
    })
}

/// Expects `status` and exactly `body`.
async fn expect(
    config: &kube::Config,
    method: Method,
    path: &str,
    status: StatusCode,
    body: &str,
) -> Result<Answer> {
    let a = call(config, method.clone(), path).await?;
    ensure!(
        a.status == status && a.body == body,
        "{method} {path}: want {status} {body:?}, got {a:?}"
    );
    Ok(a)
}

/// The port the kubelet advertises in its Node's status.
async fn kubelet_port(node: &TestNode) -> Result<i32> {
    let nodes: Api<Node> = Api::all(node.client.clone());
    let t = Instant::now();
    loop {
        let port = nodes
            .get_opt(&node.cfg.node_name)
            .await?
            .and_then(|n| n.status)
            .and_then(|s| s.daemon_endpoints)
            .and_then(|d| d.kubelet_endpoint)
            .map(|e| e.port);
        if let Some(p) = port.filter(|p| *p > 0) {
            return Ok(p);
        }
        ensure!(t.elapsed() < Duration::from_secs(30), "no kubelet endpoint");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubelet_api_authenticates_and_authorizes_through_the_api_server() -> Result<()> {
    run_in_lab(async |lab| {
        // Denials are remembered 30 s by default; the grant below should show sooner.
        // CPU rates come from housekeeping: every second here, not every 10 s.
        let node = TestNode::start_with(lab, true, |c| {
            c.unauthorized_cache_ttl = Duration::from_secs(2);
            c.housekeeping_interval = Duration::from_secs(1);
        })
        .await?;
        let result = scenario(&node).await;
        node.cluster
            .ok(&["delete", "pod", "--all", "--grace-period=1"])
            .await;
        node.shutdown(lab).await?;
        result
    })
    .await
}

async fn scenario(node: &TestNode) -> Result<()> {
    let f = node.cluster.write("pod.yaml", POD);
    node.cluster.ok(&["apply", "-f", &f]).await;
    let pod = wait_pod(
        &node.pods(),
        "box",
        Duration::from_secs(60),
        "Running",
        |p| lab::node::phase(p) == "Running",
    )
    .await?;
    let uid = pod.metadata.uid.clone().unwrap_or_default();
    let port = kubelet_port(node).await?;

    // The admin (cluster CA certificate, system:masters).
    let mut admin = node.cluster.config().await;
    admin.cluster_url = format!("https://127.0.0.1:{port}").parse()?;
    admin.accept_invalid_certs = true;
    let mut anonymous = admin.clone();
    anonymous.auth_info.client_certificate_data = None;
    anonymous.auth_info.client_key_data = None;
    let as_token = |token: &str| {
        let mut c = anonymous.clone();
        c.auth_info.token = Some(token.to_owned().into());
        c
    };

    // No credentials, or a token the API server does not know: 401.
    for (method, path) in [
        (Method::GET, "/pods"),
        (Method::POST, "/run/default/box/box?cmd=id"),
        (Method::GET, "/healthz"),
    ] {
        expect(
            &anonymous,
            method.clone(),
            path,
            StatusCode::UNAUTHORIZED,
            "Unauthorized",
        )
        .await?;
        expect(
            &as_token("not-a-token"),
            method,
            path,
            StatusCode::UNAUTHORIZED,
            "Unauthorized",
        )
        .await?;
    }

    // A ServiceAccount without RBAC on nodes: 403 naming what was asked.
    node.cluster
        .ok(&["create", "serviceaccount", "robot"])
        .await;
    let token = node.cluster.ok(&["create", "token", "robot"]).await;
    let robot = as_token(token.trim());
    let user = "system:serviceaccount:default:robot";
    let forbidden = |verb: &str, subs: &str| {
        format!("Forbidden (user={user}, verb={verb}, resource=nodes, subresource(s)=[{subs}])\n")
    };
    expect(
        &robot,
        Method::GET,
        "/pods",
        StatusCode::FORBIDDEN,
        &forbidden("get", "pods proxy"),
    )
    .await?;
    expect(
        &robot,
        Method::POST,
        "/run/default/box/box?cmd=id",
        StatusCode::FORBIDDEN,
        &forbidden("create", "proxy"),
    )
    .await?;
    expect(
        &robot,
        Method::GET,
        "/healthz",
        StatusCode::FORBIDDEN,
        &forbidden("get", "healthz proxy"),
    )
    .await?;

    // Granted nodes/proxy: the denial expires from the kubelet's cache and the calls pass.
    let f = node.cluster.write("grant.yaml", GRANT);
    node.cluster.ok(&["apply", "-f", &f]).await;
    let granted = Instant::now();
    let pods = loop {
        let a = call(&robot, Method::GET, "/pods").await?;
        if a.status == StatusCode::OK {
            break a;
        }
        ensure!(
            a.status == StatusCode::FORBIDDEN && granted.elapsed() < Duration::from_secs(20),
            "/pods after the grant: {a:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    println!("granted → /pods allowed after {:?}", granted.elapsed());
    ensure!(
        pods.content_type.as_deref() == Some("application/json"),
        "{pods:?}"
    );
    let list: serde_json::Value = serde_json::from_str(&pods.body)?;
    ensure!(
        list["kind"] == "PodList" && list["apiVersion"] == "v1",
        "not a v1 PodList: {}",
        pods.body
    );
    let names: Vec<&str> = list["items"]
        .as_array()
        .context("items")?
        .iter()
        .filter_map(|p| p.pointer("/metadata/name").and_then(|n| n.as_str()))
        .collect();
    ensure!(names == ["box"], "pods of the node: {names:?}");
    expect(&robot, Method::GET, "/healthz", StatusCode::OK, "ok").await?;
    // Other subresources stay closed.
    expect(
        &robot,
        Method::GET,
        "/stats/summary",
        StatusCode::FORBIDDEN,
        &forbidden("get", "stats"),
    )
    .await?;
    expect(
        &robot,
        Method::GET,
        "/metrics/resource",
        StatusCode::FORBIDDEN,
        &forbidden("get", "metrics"),
    )
    .await?;

    // /run: combined output, with or without the pod's uid; upstream's errors.
    let a = expect(
        &robot,
        Method::POST,
        "/run/default/box/box?cmd=echo%20hello%20world",
        StatusCode::OK,
        "hello world\n",
    )
    .await?;
    ensure!(
        a.content_type.as_deref() == Some("application/json"),
        "{a:?}"
    );
    expect(
        &robot,
        Method::POST,
        &format!("/run/default/box/{uid}/box?cmd=cat+/etc/hostname"),
        StatusCode::OK,
        "box\n",
    )
    .await?;
    expect(
        &robot,
        Method::POST,
        "/run/default/box/box?cmd=ls%20/nonexistent",
        StatusCode::INTERNAL_SERVER_ERROR,
        "command 'ls /nonexistent' exited with 1: ls: /nonexistent: No such file or directory\n",
    )
    .await?;
    expect(
        &robot,
        Method::POST,
        "/run/default/nope/box?cmd=id",
        StatusCode::NOT_FOUND,
        "pod does not exist",
    )
    .await?;
    expect(
        &robot,
        Method::POST,
        "/run/default/box/nope?cmd=id",
        StatusCode::INTERNAL_SERVER_ERROR,
        r#"container not found ("nope")"#,
    )
    .await?;
    let a = call(
        &robot,
        Method::POST,
        "/run/default/box/box?cmd=nope-not-a-command",
    )
    .await?;
    ensure!(
        a.status == StatusCode::INTERNAL_SERVER_ERROR
            && a.body.starts_with("rpc error: code = Unknown desc = "),
        "an executable that is missing: {a:?}"
    );
    // GET /run is proxy/get, granted, but not a route.
    expect(
        &robot,
        Method::GET,
        "/run/default/box/box?cmd=id",
        StatusCode::METHOD_NOT_ALLOWED,
        "405: Method Not Allowed",
    )
    .await?;

    // The admin's certificate, and the API server's own kubelet-client identity.
    expect(&admin, Method::GET, "/healthz", StatusCode::OK, "ok").await?;
    let logs = node.cluster.ok(&["logs", "box"]).await;
    ensure!(logs == "started\n", "kubectl logs: {logs:?}");
    let raw = node
        .cluster
        .ok(&[
            "get",
            "--raw",
            &format!("/api/v1/nodes/{}/proxy/pods", node.cfg.node_name),
        ])
        .await;
    let list: serde_json::Value = serde_json::from_str(&raw)?;
    if list["kind"] != "PodList" {
        bail!("the node proxy's /pods: {raw}");
    }
    stats(node, &admin).await
}

/// The stats of a pod that burns a core, as a monitoring user (and metrics-server) sees them.
async fn stats(node: &TestNode, admin: &kube::Config) -> Result<()> {
    let f = node.cluster.write("burn.yaml", BURN);
    node.cluster.ok(&["apply", "-f", &f]).await;
    wait_pod(
        &node.pods(),
        "burn",
        Duration::from_secs(60),
        "Running",
        |p| lab::node::phase(p) == "Running",
    )
    .await?;
    let running = Instant::now();
    // Housekeeping needs two samples of the new container for a rate.
    let (summary, pod) = loop {
        let a = call(admin, Method::GET, "/stats/summary").await?;
        ensure!(
            a.status == StatusCode::OK && a.content_type.as_deref() == Some("application/json"),
            "/stats/summary: {a:?}"
        );
        let v: serde_json::Value = serde_json::from_str(&a.body)?;
        let pod = v["pods"]
            .as_array()
            .and_then(|ps| ps.iter().find(|p| p["podRef"]["name"] == "burn"))
            .cloned();
        let rate = pod
            .as_ref()
            .and_then(|p| p["containers"][0]["cpu"]["usageNanoCores"].as_u64());
        if let Some(pod) = pod.filter(|_| rate.is_some_and(|r| r > 0)) {
            ensure!(
                a.body.starts_with("{\n \"node\": {\n  \"nodeName\""),
                "{}",
                a.body
            );
            break (v, pod);
        }
        ensure!(
            running.elapsed() < Duration::from_secs(20),
            "no CPU rate for the burning pod: {}",
            a.body
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    println!(
        "Running → a CPU rate in /stats/summary after {:?}",
        running.elapsed()
    );
    let n = &summary["node"];
    let num = |v: &serde_json::Value| v.as_u64().unwrap_or(0);
    ensure!(n["nodeName"] == node.cfg.node_name.as_str(), "{n}");
    ensure!(
        num(&n["cpu"]["usageCoreNanoSeconds"]) > 0 && num(&n["cpu"]["usageNanoCores"]) > 0,
        "node cpu: {}",
        n["cpu"]
    );
    ensure!(
        num(&n["memory"]["workingSetBytes"]) > 0 && num(&n["memory"]["availableBytes"]) > 0,
        "node memory: {}",
        n["memory"]
    );
    ensure!(num(&n["fs"]["capacityBytes"]) > 0, "node fs: {}", n["fs"]);
    ensure!(n["runtime"]["imageFs"].is_object(), "imageFs: {n}");
    ensure!(n["systemContainers"][0]["name"] == "pods", "{n}");
    let c = &pod["containers"][0];
    ensure!(c["name"] == "burn", "{pod}");
    // A busy loop on an otherwise quiet pod: most of a core (at least a tenth of one here,
    // where the machine is shared).
    ensure!(
        num(&c["cpu"]["usageNanoCores"]) > 100_000_000,
        "container cpu: {}",
        c["cpu"]
    );
    ensure!(num(&c["memory"]["workingSetBytes"]) > 0, "{}", c["memory"]);
    ensure!(c["rootfs"].is_object() && c["logs"].is_object(), "{c}");
    ensure!(
        num(&pod["cpu"]["usageCoreNanoSeconds"]) >= num(&c["cpu"]["usageCoreNanoSeconds"]),
        "{pod}"
    );
    ensure!(num(&pod["memory"]["workingSetBytes"]) > 0, "{pod}");
    ensure!(
        pod["network"]["name"] == "eth0",
        "pod network: {}",
        pod["network"]
    );
    ensure!(pod["process_stats"]["process_count"] == 1, "{pod}");
    ensure!(pod["ephemeral-storage"].is_object(), "{pod}");
    let volumes: Vec<&str> = pod["volume"]
        .as_array()
        .map(|v| v.iter().filter_map(|v| v["name"].as_str()).collect())
        .unwrap_or_default();
    ensure!(volumes.contains(&"scratch"), "volumes: {volumes:?}");

    // CPU and memory only (what /metrics/resource is made of).
    let a = call(
        admin,
        Method::GET,
        "/stats/summary?only_cpu_and_memory=true",
    )
    .await?;
    let v: serde_json::Value = serde_json::from_str(&a.body)?;
    ensure!(
        v["node"].get("fs").is_none() && v["node"]["cpu"].is_object(),
        "only_cpu_and_memory: {}",
        a.body
    );

    let a = call(admin, Method::GET, "/metrics/resource").await?;
    ensure!(
        a.status == StatusCode::OK
            && a.content_type.as_deref()
                == Some("text/plain; version=0.0.4; charset=utf-8; escaping=underscores"),
        "/metrics/resource: {a:?}"
    );
    for want in [
        "# HELP container_cpu_usage_seconds_total [STABLE] Cumulative cpu time consumed by the container in core-seconds\n# TYPE container_cpu_usage_seconds_total counter\n",
        "\ncontainer_cpu_usage_seconds_total{container=\"burn\",namespace=\"default\",pod=\"burn\"} ",
        "\ncontainer_memory_working_set_bytes{container=\"burn\",namespace=\"default\",pod=\"burn\"} ",
        "\ncontainer_start_time_seconds{container=\"burn\",namespace=\"default\",pod=\"burn\"} ",
        "\npod_cpu_usage_seconds_total{namespace=\"default\",pod=\"burn\"} ",
        "\nnode_cpu_usage_seconds_total ",
        "\nnode_memory_working_set_bytes ",
        "\nresource_scrape_error 0\n",
    ] {
        ensure!(
            a.body.contains(want),
            "/metrics/resource lacks {want:?}:\n{}",
            a.body
        );
    }
    let a = call(admin, Method::GET, "/metrics/cadvisor").await?;
    ensure!(a.status == StatusCode::OK, "/metrics/cadvisor: {a:?}");
    let cpu = a
        .body
        .lines()
        .find(|l| {
            l.starts_with(
                "container_cpu_usage_seconds_total{container=\"burn\",cpu=\"total\",id=\"/",
            ) && l.contains(",namespace=\"default\",pod=\"burn\"}")
        })
        .with_context(|| format!("no burn container in /metrics/cadvisor:\n{}", a.body))?;
    ensure!(
        cpu.contains(",image=\"rkube.local/busybox:test\","),
        "{cpu}"
    );
    ensure!(
        a.body.lines().any(|l| l
            .starts_with("container_network_receive_bytes_total{container=\"\",id=\"/")
            && l.contains(",interface=\"eth0\",")
            && l.contains("pod=\"burn\"}")),
        "no network of the burn pod's sandbox:\n{}",
        a.body
    );
    // The kubelet's own metrics.
    let a = call(admin, Method::GET, "/metrics").await?;
    ensure!(
        a.status == StatusCode::OK
            && a.content_type.as_deref()
                == Some("text/plain; version=0.0.4; charset=utf-8; escaping=underscores"),
        "/metrics: {a:?}"
    );
    let named = format!(
        "# TYPE kubelet_node_name gauge\nkubelet_node_name{{node=\"{}\"}} 1\n",
        node.cfg.node_name
    );
    ensure!(
        a.body.contains(&named),
        "/metrics lacks {named:?}:\n{}",
        a.body
    );
    ensure!(
        a.body
            .contains("\nkubelet_running_containers{container_state=\"running\"} "),
        "/metrics has no running containers:\n{}",
        a.body
    );
    // Through the API server's node proxy, as metrics-server reads it.
    let raw = node
        .cluster
        .ok(&[
            "get",
            "--raw",
            &format!(
                "/api/v1/nodes/{}/proxy/metrics/resource",
                node.cfg.node_name
            ),
        ])
        .await;
    ensure!(
        raw.contains("pod_memory_working_set_bytes{namespace=\"default\",pod=\"burn\"} "),
        "node proxy /metrics/resource: {raw}"
    );
    node.cluster
        .ok(&["delete", "pod", "burn", "--grace-period=1", "--wait=false"])
        .await;
    Ok(())
}
