//! `kubectl logs` end to end (root + containerd; skips otherwise): the real API server, the
//! scheduler and the kubelet (its HTTPS server on 127.0.0.1 and an ephemeral port) on a
//! supervised containerd in the lab's network namespace, driven by the real kubectl.
//!
//! Every connection goes to loopback: the API server and the kubelet listen on 127.0.0.1 (the
//! node IP is set to it), and pods live in the lab's namespace.

mod lab;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail, ensure};
use apiserver::testing::Cluster;
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::Api;
use kubelet::images::busybox_image;
use kubelet::{ContainerdConfig, Kubelet, KubeletConfig, Runtime, RuntimeEndpoint};
use lab::{Lab, init_tracing, is_root};
use tokio::task::JoinHandle;

const BUSYBOX: &str = "rkube.local/busybox:test";

struct Task(JoinHandle<()>);

impl Drop for Task {
    fn drop(&mut self) {
        self.0.abort();
    }
}

async fn wait_pod(
    pods: &Api<Pod>,
    name: &str,
    what: &str,
    mut done: impl FnMut(&Pod) -> bool,
) -> Result<Pod> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let p = pods.get_opt(name).await?;
        if let Some(p) = &p
            && done(p)
        {
            return Ok(p.clone());
        }
        if Instant::now() > deadline {
            bail!(
                "pod {name}: timed out waiting for {what}; last seen: {:#?}",
                p.map(|p| p.status)
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn status_of(p: &Pod, c: &str) -> Option<k8s_openapi::api::core::v1::ContainerStatus> {
    p.status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref())
        .and_then(|cs| cs.iter().find(|s| s.name == c))
        .cloned()
}

fn running(p: &Pod, c: &str) -> bool {
    status_of(p, c)
        .and_then(|s| s.state)
        .is_some_and(|s| s.running.is_some())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_logs_reads_container_logs_through_the_kubelet() -> Result<()> {
    if !is_root() || !Path::new("/usr/bin/containerd").exists() {
        common::ci::skip("needs root and containerd");
        return Ok(());
    }
    init_tracing();
    let lab = Lab::new()?;
    scenario(&lab).await
}

async fn scenario(lab: &Lab) -> Result<()> {
    let cluster = Cluster::start(false).await;
    let config = cluster.config().await;
    let _scheduler = Task(tokio::spawn(scheduler::run(
        scheduler::client(config.clone())?,
        "test-scheduler".into(),
    )));
    // Only the node IPAM controller (the node's pod CIDR): the Deployment below must stay
    // without pods of its own, so `kubectl logs deployment/dep` finds the bare pod it selects.
    let _node_ipam = Task(tokio::spawn(controllers::nodeipam::run(
        controllers::client(config.clone())?,
    )));
    let data = lab.data_dir().to_owned();
    let mut cd = ContainerdConfig::new(&data);
    cd.netns = Some(lab.netns());
    let dirs = cd.dirs();
    std::fs::create_dir_all(&dirs.images)?;
    busybox_image(Path::new("/bin/busybox"), BUSYBOX)?
        .build()?
        .write_to(&dirs.images.join("busybox.tar"))?;
    let runtime = Runtime::start(
        RuntimeEndpoint::Supervised(Box::new(cd)),
        Duration::from_secs(30),
    )
    .await
    .context("start containerd")?;
    let cri = runtime.client().clone();

    let node_name = format!("kl-node-{}", std::process::id());
    let mut cfg = KubeletConfig::new(Some(&node_name), &data);
    cfg.cni_network = lab.network.clone();
    cfg.cgroup_root = lab.cgroup_root();
    cfg.pod_netns = Some(lab.netns());
    cfg.node_ip = Some("127.0.0.1".parse()?);
    cfg.kubelet_port = 0;
    cfg.client_ca = config.root_cert.clone().unwrap_or_default();
    ensure!(!cfg.client_ca.is_empty(), "the kubeconfig has no CA");
    let client = kubelet::kubelet::client(config.clone())?;
    let kcfg = cfg.clone();
    let kcri = cri.clone();
    let _kubelet = Task(tokio::spawn(async move {
        if let Err(e) = Kubelet::new(kcfg, client, kcri).run().await {
            eprintln!("kubelet failed: {e:#}");
        }
    }));

    // The node advertises the port actually bound.
    let admin = cluster.client().await;
    let nodes: Api<Node> = Api::all(admin.clone());
    let t = Instant::now();
    let port = loop {
        let port = nodes
            .get_opt(&node_name)
            .await?
            .and_then(|n| n.status)
            .and_then(|s| s.daemon_endpoints)
            .and_then(|d| d.kubelet_endpoint)
            .map(|e| e.port);
        if let Some(p) = port.filter(|p| *p > 0) {
            break p;
        }
        ensure!(t.elapsed() < Duration::from_secs(30), "no kubelet endpoint");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    ensure!(
        port != 10250,
        "port 0 should bind an ephemeral port, got {port}"
    );
    let kubelet_url = format!("https://127.0.0.1:{port}");

    // Callers: the admin (cluster CA, system:masters) is served; no certificate → 401; a
    // certificate of another CA → refused at the handshake.
    let healthz = |cfg: kube::Config| async move {
        let c = kube::Client::try_from(cfg)?;
        c.request_text(http::Request::get("/healthz").body(Vec::new())?)
            .await
            .map_err(anyhow::Error::from)
    };
    let mut as_admin = config.clone();
    as_admin.cluster_url = kubelet_url.parse()?;
    as_admin.accept_invalid_certs = true;
    ensure!(healthz(as_admin.clone()).await? == "ok", "admin /healthz");
    let mut anonymous = as_admin.clone();
    anonymous.auth_info.client_certificate_data = None;
    anonymous.auth_info.client_key_data = None;
    match healthz(anonymous).await {
        Err(e) if format!("{e:#}").contains("401") => {}
        other => bail!("an anonymous caller got {other:?}"),
    }
    let key = rcgen::KeyPair::generate()?;
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new())?;
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "intruder");
    params
        .distinguished_name
        .push(rcgen::DnType::OrganizationName, "system:masters");
    let foreign = params.self_signed(&key)?;
    let mut intruder = as_admin.clone();
    use base64::Engine as _;
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    intruder.auth_info.client_certificate_data = Some(b64(&foreign.pem()));
    intruder.auth_info.client_key_data = Some(b64(&key.serialize_pem()).into());
    match healthz(intruder).await {
        Ok(body) => bail!("a caller with a foreign CA's certificate was served: {body}"),
        Err(e) => {
            let e = format!("{e:#}");
            ensure!(!e.contains("200"), "{e}");
            println!("foreign client certificate refused: {e}");
        }
    }

    let pods: Api<Pod> = Api::namespaced(admin.clone(), "default");
    let manifest = cluster.write(
        "pods.yaml",
        r#"apiVersion: v1
kind: Pod
metadata:
  name: multi
  labels: {app: dep}
  annotations: {kubectl.kubernetes.io/default-container: b}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - {name: a, image: rkube.local/busybox:test, command: ["sh", "-c", "echo a1; echo a2; echo a3; exec sleep 3600"]}
  - {name: b, image: rkube.local/busybox:test, command: ["sh", "-c", "echo b-line; exec sleep 3600"]}
---
apiVersion: v1
kind: Pod
metadata: {name: crash}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - {name: c, image: rkube.local/busybox:test, command: ["sh", "-c", "echo run $(date +%s%N); sleep 3; exit 1"]}
---
apiVersion: v1
kind: Pod
metadata: {name: waiting}
spec:
  containers:
  - {name: c, image: "rkube.local/missing:1", imagePullPolicy: Never}
---
apiVersion: v1
kind: Pod
metadata: {name: pending}
spec:
  nodeSelector: {no-such: node}
  containers:
  - {name: c, image: rkube.local/busybox:test}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: dep}
spec:
  replicas: 1
  selector: {matchLabels: {app: dep}}
  template:
    metadata: {labels: {app: dep}}
    spec:
      containers:
      - {name: b, image: rkube.local/busybox:test}
"#,
    );
    cluster.ok(&["apply", "-f", &manifest]).await;
    wait_pod(&pods, "multi", "both containers running", |p| {
        running(p, "a") && running(p, "b")
    })
    .await?;
    // The lines are written right after start; give the runtime's log copier a moment.
    let t = Instant::now();
    loop {
        let out = cluster.kubectl(&["logs", "multi", "-c", "a"]).await;
        if String::from_utf8_lossy(&out.stdout) == "a1\na2\na3\n" {
            break;
        }
        ensure!(
            t.elapsed() < Duration::from_secs(10),
            "kubectl logs multi -c a: {out:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let kubectl = |args: &'static [&'static str]| {
        let cluster = &cluster;
        async move { cluster.ok(args).await }
    };
    // The default container comes from the annotation (kubectl reads it).
    ensure!(kubectl(&["logs", "multi"]).await == "b-line\n");
    ensure!(kubectl(&["logs", "pod/multi", "-c", "b"]).await == "b-line\n");
    ensure!(kubectl(&["logs", "multi", "-c", "a", "--tail=2"]).await == "a2\na3\n");
    ensure!(
        kubectl(&["logs", "multi", "-c", "a", "--tail=0"])
            .await
            .is_empty()
    );
    ensure!(kubectl(&["logs", "multi", "-c", "a", "--limit-bytes=4"]).await == "a1\na");
    ensure!(kubectl(&["logs", "multi", "-c", "a", "--since=1h"]).await == "a1\na2\na3\n");
    ensure!(
        kubectl(&[
            "logs",
            "multi",
            "-c",
            "a",
            "--since-time=2099-01-01T00:00:00Z"
        ])
        .await
        .is_empty()
    );
    let stamped = kubectl(&["logs", "multi", "-c", "a", "--timestamps"]).await;
    let lines: Vec<&str> = stamped.lines().collect();
    ensure!(lines.len() == 3, "{stamped}");
    for (line, want) in lines.iter().zip(["a1", "a2", "a3"]) {
        let (ts, text) = line.split_once(' ').ok_or_else(|| anyhow!("{line}"))?;
        ensure!(text == want, "{stamped}");
        ensure!(
            ts.parse::<k8s_openapi::jiff::Timestamp>().is_ok(),
            "timestamp {ts:?} in {stamped}"
        );
    }
    // kubectl logs deployment/dep: kubectl finds a pod by the Deployment's selector.
    ensure!(kubectl(&["logs", "deployment/dep"]).await == "b-line\n");

    // Errors as upstream words them.
    // kubectl checks the name itself; the API server's answer is the same sentence.
    let err = cluster.fails(&["logs", "multi", "-c", "nope"]).await;
    ensure!(
        err.contains("container nope is not valid for pod multi"),
        "{err}"
    );
    let err = cluster
        .fails(&["logs", "multi", "-c", "a", "--previous"])
        .await;
    ensure!(
        err.contains(r#"previous terminated container "a" in pod "multi" not found"#),
        "{err}"
    );
    let raw = |path: &str| {
        let admin = admin.clone();
        let path = path.to_owned();
        async move {
            admin
                .request_text(http::Request::get(path).body(Vec::new())?)
                .await
                .map_err(anyhow::Error::from)
        }
    };
    match raw("/api/v1/namespaces/default/pods/multi/log").await {
        Err(e) => ensure!(
            format!("{e:#}")
                .contains("a container name must be specified for pod multi, choose one of: [a b]"),
            "{e:#}"
        ),
        Ok(body) => bail!("no container, answered {body:?}"),
    }
    match raw("/api/v1/namespaces/default/pods/multi/log?container=nope").await {
        Err(e) => ensure!(
            format!("{e:#}").contains("container nope is not valid for pod multi")
                && format!("{e:#}").contains("400"),
            "{e:#}"
        ),
        Ok(body) => bail!("unknown container, answered {body:?}"),
    }
    match raw("/api/v1/namespaces/default/pods/multi/log?container=a&tailLines=-1").await {
        Err(e) => {
            let e = format!("{e:#}");
            ensure!(
                e.contains("422")
                    && e.contains(
                        r#"PodLogOptions "multi" is invalid: tailLines: Invalid value: -1: must be greater than or equal to 0"#
                    ),
                "{e}"
            );
        }
        Ok(body) => bail!("negative tailLines answered {body:?}"),
    }
    ensure!(
        raw("/api/v1/namespaces/default/pods/multi/log?container=a&tailLines=1").await? == "a3\n"
    );
    wait_pod(&pods, "waiting", "ErrImageNeverPull", |p| {
        status_of(p, "c")
            .and_then(|s| s.state)
            .and_then(|s| s.waiting)
            .and_then(|w| w.reason)
            .as_deref()
            == Some("ErrImageNeverPull")
    })
    .await?;
    let err = cluster.fails(&["logs", "waiting"]).await;
    ensure!(
        err.contains(
            r#"Error from server (BadRequest): container "c" in pod "waiting" is waiting to start: ErrImageNeverPull"#
        ),
        "{err}"
    );
    // Not scheduled: upstream answers 204, nothing to show.
    ensure!(kubectl(&["logs", "pending"]).await.is_empty());
    let err = cluster.fails(&["logs", "missing"]).await;
    ensure!(err.contains(r#"pods "missing" not found"#), "{err}");

    // --previous after a restart: the previous instance's own output.
    let crashed = wait_pod(&pods, "crash", "restarted and running", |p| {
        status_of(p, "c").is_some_and(|s| s.restart_count == 1) && running(p, "c")
    })
    .await?;
    let _ = crashed;
    let previous = kubectl(&["logs", "crash", "--previous"]).await;
    let current = kubectl(&["logs", "crash"]).await;
    ensure!(
        previous.starts_with("run ") && current.starts_with("run ") && previous != current,
        "previous {previous:?}, current {current:?}"
    );

    // -f: a line written after kubectl started arrives, and kubectl ends when the container
    // exits.
    let follow = cluster.write(
        "follow.yaml",
        r#"apiVersion: v1
kind: Pod
metadata: {name: follow}
spec:
  restartPolicy: Never
  containers:
  - name: c
    image: rkube.local/busybox:test
    command: ["sh", "-c", "echo first; while [ ! -f /tmp/go ]; do sleep 0.1; done; echo second; sleep 1; echo bye"]
"#,
    );
    cluster.ok(&["apply", "-f", &follow]).await;
    let p = wait_pod(&pods, "follow", "running", |p| running(p, "c")).await?;
    let id = status_of(&p, "c")
        .and_then(|s| s.container_id)
        .and_then(|id| id.strip_prefix("containerd://").map(str::to_owned))
        .ok_or_else(|| anyhow!("no container id"))?;
    let mut child = Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(cluster.kubeconfig())
        .args(["logs", "-f", "follow"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("kubectl logs -f")?;
    let stdout = child.stdout.take().ok_or_else(|| anyhow!("no stdout"))?;
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(String, Instant)>();
    async fn next(
        rx: &mut tokio::sync::mpsc::UnboundedReceiver<(String, Instant)>,
    ) -> Option<(String, Instant)> {
        tokio::time::timeout(Duration::from_secs(15), rx.recv())
            .await
            .ok()
            .flatten()
    }
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(|l| l.ok()) {
            if tx.send((line, Instant::now())).is_err() {
                break;
            }
        }
    });
    let first = next(&mut rx).await;
    ensure!(
        first.as_ref().map(|l| l.0.as_str()) == Some("first"),
        "{first:?}"
    );
    let written = Instant::now();
    cri.exec_sync(&id, &["touch", "/tmp/go"], Duration::from_secs(5))
        .await?;
    let second = next(&mut rx).await;
    ensure!(
        second.as_ref().map(|l| l.0.as_str()) == Some("second"),
        "{second:?}"
    );
    if let Some((_, at)) = &second {
        println!(
            "timing: line written -> seen by kubectl logs -f {:.0} ms",
            at.duration_since(written).as_secs_f64() * 1000.0
        );
    }
    let bye = next(&mut rx).await;
    ensure!(bye.as_ref().map(|l| l.0.as_str()) == Some("bye"), "{bye:?}");
    let t = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait()? {
            break s;
        }
        if t.elapsed() > Duration::from_secs(15) {
            let _ = child.kill();
            bail!("kubectl logs -f did not end after the container exited");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    ensure!(status.success(), "kubectl logs -f: {status}");
    println!(
        "timing: container exit -> kubectl logs -f ended within {:.0} ms of the last line",
        t.elapsed().as_secs_f64() * 1000.0
    );
    let _ = reader.join();

    // A follower that goes away ends its stream (the kubelet stops reading for it).
    let mut quitter = Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(cluster.kubeconfig())
        .args(["logs", "-f", "multi", "-c", "a"])
        .stdout(Stdio::null())
        .spawn()?;
    tokio::time::sleep(Duration::from_millis(700)).await;
    let _ = quitter.kill();
    let _ = quitter.wait();
    ensure!(healthz(as_admin).await? == "ok", "the kubelet still serves");

    cluster
        .ok(&[
            "delete", "pod", "multi", "crash", "waiting", "pending", "follow",
        ])
        .await;
    let t = Instant::now();
    loop {
        if cri.list_pod_sandbox(None).await?.is_empty()
            && cri.list_containers(None).await?.is_empty()
        {
            break;
        }
        ensure!(
            t.elapsed() < Duration::from_secs(30),
            "pods left in the runtime"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    drop(_kubelet);
    runtime.shutdown().await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while !lab.runtime_pids().is_empty() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(())
}
