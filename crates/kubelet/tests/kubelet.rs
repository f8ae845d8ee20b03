//! Node end-to-end: the real API server, the scheduler and this kubelet on a real containerd
//! (root only; skips otherwise).
//!
//! As in `tests/runtime.rs`, containerd and so the pod network live in a network namespace the
//! test creates: pod IPs exist only there, probes and the test's HTTP request reach them from
//! there, and the API server listens on loopback. Images come from the air-gap directory
//! (busybox built from the host's busybox-static); nothing is pulled. The `Lab` guard removes
//! every process, mount, cgroup and the namespace, also when the test fails.

mod lab;

use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail, ensure};
use apiserver::testing::Cluster;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Event, Node, Pod, Service};
use kube::Api;
use kubelet::cri::api;
use kubelet::cri::logs::{Stream, messages};
use kubelet::images::busybox_image;
use kubelet::kuberuntime::LABEL_POD_UID;
use kubelet::{ContainerdConfig, KubeletConfig, Runtime, RuntimeClient, RuntimeEndpoint};
use lab::node::{BUSYBOX, Task, condition, container_status, phase, spawn_kubelet, wait_pod};
use lab::{Lab, http_get_in_netns, ms, pod_config};

type EventLine = (String, String, String, String, i32);

/// Whether `events` has one of type `ty` and `reason` whose message contains `msg`.
fn has_event(events: &[EventLine], ty: &str, reason: &str, msg: &str) -> bool {
    events
        .iter()
        .any(|(t, r, m, _, _)| t == ty && r == reason && m.contains(msg))
}

/// The events about pod `name`: (type, reason, message, fieldPath, count), oldest first.
async fn events_of(client: &kube::Client, name: &str) -> Result<Vec<EventLine>> {
    let api: Api<Event> = Api::namespaced(client.clone(), "default");
    let mut list: Vec<Event> = api
        .list(&Default::default())
        .await?
        .items
        .into_iter()
        .filter(|e| e.involved_object.name.as_deref() == Some(name))
        .collect();
    list.sort_by(|a, b| a.first_timestamp.cmp(&b.first_timestamp));
    Ok(list
        .into_iter()
        .map(|e| {
            (
                e.type_.unwrap_or_default(),
                e.reason.unwrap_or_default(),
                e.message.unwrap_or_default(),
                e.involved_object.field_path.unwrap_or_default(),
                e.count.unwrap_or(0),
            )
        })
        .collect())
}

fn in_cidr(ip: &str, cidr: &str) -> Result<bool> {
    let (net, len) = net::cni::parse_cidr(cidr)?;
    let ip: std::net::Ipv4Addr = ip.parse().context("pod IP")?;
    let mask = u32::MAX << (32 - u32::from(len));
    Ok(u32::from(ip) & mask == u32::from(net))
}

/// Sandboxes and containers the runtime has for pod `uid`.
async fn runtime_objects(cri: &RuntimeClient, uid: &str) -> Result<usize> {
    let labels = std::collections::HashMap::from([(LABEL_POD_UID.to_owned(), uid.to_owned())]);
    let s = cri
        .list_pod_sandbox(Some(api::PodSandboxFilter {
            label_selector: labels.clone(),
            ..Default::default()
        }))
        .await?;
    let c = cri
        .list_containers(Some(api::ContainerFilter {
            label_selector: labels,
            ..Default::default()
        }))
        .await?;
    Ok(s.len() + c.len())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pods_bound_to_the_node_run_as_containers() -> Result<()> {
    lab::node::run_in_lab(scenario).await
}

async fn scenario(lab: &Lab) -> Result<()> {
    let cluster = Cluster::start_with(false, Duration::from_secs(3600)).await;
    let config = cluster.config().await;
    let _scheduler = {
        let client = scheduler::client(config.clone())?;
        Task(tokio::spawn(scheduler::run(
            client,
            "test-scheduler".into(),
        )))
    };
    // The controller manager: its node IPAM controller gives the node its pod CIDR.
    let _controller_manager = Task(tokio::spawn(controllers::run(
        controllers::client(config.clone())?,
        "test-cm".into(),
    )));

    // containerd in the lab's network namespace, the busybox image in the air-gap directory.
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

    let node_name = format!("kt-node-{}", std::process::id());
    let mut cfg = KubeletConfig::new(Some(&node_name), &data);
    cfg.cni_network = lab.network.clone();
    cfg.cgroup_root = lab.cgroup_root();
    cfg.pod_netns = Some(lab.netns());
    // The kubelet server listens on loopback only, on a free port.
    cfg.node_ip = Some("127.0.0.1".parse()?);
    cfg.kubelet_port = 0;
    cfg.client_ca = config.root_cert.clone().unwrap_or_default();
    let kubelet_client = kubelet::kubelet::client(config.clone())?;
    let t = Instant::now();
    let mut kubelet_task = spawn_kubelet(cfg.clone(), kubelet_client.clone(), cri.clone());

    // The Node: registered, Ready, with a pod CIDR, capacity, nodeInfo, and a Lease.
    let client = cluster.client().await;
    let nodes: Api<Node> = Api::all(client.clone());
    let node = loop {
        let n = nodes.get_opt(&node_name).await?;
        let ready = n.as_ref().is_some_and(|n| {
            n.status
                .as_ref()
                .and_then(|s| s.conditions.as_ref())
                .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
        });
        if let Some(n) = n
            && ready
        {
            break n;
        }
        ensure!(
            t.elapsed() < Duration::from_secs(30),
            "node never became Ready"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    println!(
        "timing: kubelet start -> node Ready {:.0} ms",
        ms(t.elapsed())
    );
    let pod_cidr = node
        .spec
        .as_ref()
        .and_then(|s| s.pod_cidr.clone())
        .ok_or_else(|| anyhow!("node has no podCIDR"))?;
    let cidr_net = pod_cidr.split('/').next().unwrap_or_default();
    ensure!(
        pod_cidr.ends_with("/24") && in_cidr(cidr_net, "10.42.0.0/16")?,
        "pod CIDR {pod_cidr}"
    );
    let labels = node.metadata.labels.clone().unwrap_or_default();
    ensure!(
        labels.get("kubernetes.io/hostname") == Some(&node_name)
            && labels.get("kubernetes.io/os").map(String::as_str) == Some("linux")
            && labels.contains_key("kubernetes.io/arch"),
        "{labels:?}"
    );
    let status = node.status.clone().unwrap_or_default();
    let cap = status.capacity.clone().unwrap_or_default();
    for r in ["cpu", "memory", "pods", "ephemeral-storage"] {
        ensure!(cap.contains_key(r), "capacity lacks {r}: {cap:?}");
    }
    let info = status.node_info.clone().unwrap_or_default();
    ensure!(info.kubelet_version == "v1.33.0", "{info:?}");
    ensure!(
        info.container_runtime_version.starts_with("containerd://"),
        "{info:?}"
    );
    let addresses = status.addresses.clone().unwrap_or_default();
    ensure!(
        addresses.iter().any(|a| a.type_ == "InternalIP")
            && addresses.iter().any(|a| a.type_ == "Hostname"),
        "{addresses:?}"
    );
    // The Service CIDR goes into the sink device in the node's network namespace.
    let routes = std::process::Command::new("nsenter")
        .arg(format!("--net={}", lab.netns().display()))
        .args(["--", "ip", "route", "show", "10.43.0.0/16"])
        .output()?;
    let routes = String::from_utf8_lossy(&routes.stdout);
    ensure!(
        routes.contains("dev rkube-svc"),
        "Service CIDR route: {routes}"
    );
    let leases: Api<Lease> = Api::namespaced(client.clone(), "kube-node-lease");
    let lease = leases.get(&node_name).await.context("node lease")?;
    ensure!(
        lease.spec.and_then(|s| s.holder_identity) == Some(node_name.clone()),
        "lease holder"
    );
    let wide = cluster.ok(&["get", "nodes", "-o", "wide"]).await;
    println!("{wide}");
    ensure!(
        wide.contains(&node_name) && wide.contains("Ready"),
        "{wide}"
    );

    // A web server: env from the downward API, a readiness probe over HTTP and a liveness
    // probe over TCP (from the node's namespace to the pod IP), requests and limits.
    let web = cluster.write(
        "web.yaml",
        r#"apiVersion: v1
kind: Pod
metadata:
  name: web
  labels: {app: web}
spec:
  terminationGracePeriodSeconds: 3
  containers:
  - name: web
    image: rkube.local/busybox:test
    command: ["sh", "-c", "echo hello from rkube $POD_NAME; exec httpd -f -p 8080 -h /var/www"]
    ports: [{containerPort: 8080, name: http}]
    env:
    - {name: POD_NAME, valueFrom: {fieldRef: {fieldPath: metadata.name}}}
    - {name: POD_NAMESPACE, valueFrom: {fieldRef: {fieldPath: metadata.namespace}}}
    - {name: POD_IP, valueFrom: {fieldRef: {fieldPath: status.podIP}}}
    - {name: GREETING, value: "hi $(POD_NAME)"}
    - {name: API, value: "$(KUBERNETES_SERVICE_HOST):$(KUBERNETES_SERVICE_PORT)"}
    workingDir: /var/www
    resources:
      requests: {cpu: 100m, memory: 32Mi}
      limits: {cpu: 500m, memory: 64Mi}
    readinessProbe:
      httpGet: {path: /index.html, port: http}
      periodSeconds: 1
    livenessProbe:
      tcpSocket: {port: 8080}
      periodSeconds: 2
"#,
    );
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let t = Instant::now();
    cluster.ok(&["apply", "-f", &web]).await;
    let running = wait_pod(&pods, "web", Duration::from_secs(60), "Running", |p| {
        phase(p) == "Running"
    })
    .await?;
    let t_running = t.elapsed();
    let ready = wait_pod(&pods, "web", Duration::from_secs(30), "Ready", |p| {
        condition(p, "Ready").as_deref() == Some("True")
    })
    .await?;
    let t_ready = t.elapsed();
    println!(
        "timing: kubectl apply -> pod Running {:.0} ms, -> Ready (readiness probe) {:.0} ms",
        ms(t_running),
        ms(t_ready)
    );
    let _ = running;
    let st = ready.status.clone().unwrap_or_default();
    let pod_ip = st.pod_ip.clone().ok_or_else(|| anyhow!("no pod IP"))?;
    ensure!(
        in_cidr(&pod_ip, &pod_cidr)?,
        "pod IP {pod_ip} is not in the node's {pod_cidr}"
    );
    ensure!(
        st.pod_ips.as_ref().is_some_and(|ips| ips[0].ip == pod_ip),
        "{st:?}"
    );
    ensure!(st.host_ip.is_some() && st.start_time.is_some(), "{st:?}");
    for c in [
        "PodScheduled",
        "Initialized",
        "ContainersReady",
        "Ready",
        "PodReadyToStartContainers",
    ] {
        ensure!(
            condition(&ready, c).as_deref() == Some("True"),
            "{c}: {st:?}"
        );
    }
    let cs = container_status(&ready)?;
    ensure!(
        cs.ready && cs.started == Some(true) && cs.restart_count == 0,
        "{cs:?}"
    );
    // The kubelet's events (`kubectl describe pod`), naming the container by field path.
    let events = events_of(&client, "web").await?;
    for (ty, reason, msg) in [
        (
            "Normal",
            "Pulled",
            "Container image \"rkube.local/busybox:test\" already present on machine",
        ),
        ("Normal", "Created", "Created container: web"),
        ("Normal", "Started", "Started container web"),
    ] {
        ensure!(
            has_event(&events, ty, reason, msg),
            "no {reason} event: {events:?}"
        );
    }
    ensure!(
        events
            .iter()
            .filter(|e| e.1 == "Started")
            .all(|e| e.3 == "spec.containers{web}"),
        "{events:?}"
    );
    ensure!(cs.image == BUSYBOX && !cs.image_id.is_empty(), "{cs:?}");
    let container_id = cs
        .container_id
        .clone()
        .and_then(|id| id.strip_prefix("containerd://").map(str::to_owned))
        .ok_or_else(|| anyhow!("container ID {:?}", cs.container_id))?;
    ensure!(
        cs.state.as_ref().and_then(|s| s.running.as_ref()).is_some(),
        "{cs:?}"
    );
    let wide = cluster.ok(&["get", "pod", "web", "-o", "wide"]).await;
    println!("{wide}");
    ensure!(
        wide.contains(&node_name) && wide.contains(&pod_ip) && wide.contains("Running"),
        "{wide}"
    );

    // The container's environment and working directory.
    let out = cri
        .exec_sync(
            &container_id,
            &[
                "sh",
                "-c",
                "echo $POD_NAME $POD_NAMESPACE $POD_IP $GREETING; pwd",
            ],
            Duration::from_secs(5),
        )
        .await?;
    let out = String::from_utf8_lossy(&out.stdout).into_owned();
    ensure!(
        out == format!("web default {pod_ip} hi web\n/var/www\n"),
        "env: {out:?}"
    );
    // The Service variables: the API server's always (in-cluster clients find it by them),
    // in `$(VAR)` expansion too.
    let api_ip = Api::<Service>::namespaced(client.clone(), "default")
        .get("kubernetes")
        .await?
        .spec
        .and_then(|s| s.cluster_ip)
        .unwrap_or_default();
    let out = cri
        .exec_sync(
            &container_id,
            &[
                "sh",
                "-c",
                "echo $KUBERNETES_SERVICE_HOST $KUBERNETES_SERVICE_PORT $KUBERNETES_PORT $API",
            ],
            Duration::from_secs(5),
        )
        .await?;
    let out = String::from_utf8_lossy(&out.stdout).into_owned();
    ensure!(
        out == format!("{api_ip} 443 tcp://{api_ip}:443 {api_ip}:443\n"),
        "service env: {out:?}"
    );
    // The pod answers at its IP from the node's network namespace.
    let addr = SocketAddr::new(pod_ip.parse::<IpAddr>()?, 8080);
    let netns = lab.netns();
    let body = tokio::task::spawn_blocking(move || http_get_in_netns(&netns, addr)).await??;
    ensure!(body.contains("hello from rkube busybox image"), "{body}");
    // Its log file, in CRI format under the data dir.
    let uid = ready.metadata.uid.clone().unwrap_or_default();
    let log_file = dirs.pod_log_dir("default", "web", &uid).join("web/0.log");
    let text = std::fs::read_to_string(&log_file)
        .with_context(|| format!("reading {}", log_file.display()))?;
    ensure!(
        messages(&text).contains(&(Stream::Stdout, "hello from rkube web".to_owned())),
        "{text:?}"
    );

    // Pod startup latency without kubectl: the API create to phase Running.
    let quick: Pod = serde_json::from_value(serde_json::json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "quick"},
        "spec": {"terminationGracePeriodSeconds": 1,
            "containers": [{"name": "c", "image": BUSYBOX, "command": ["sleep", "3600"]}]}
    }))?;
    let t = Instant::now();
    pods.create(&Default::default(), &quick).await?;
    let quick = wait_pod(&pods, "quick", Duration::from_secs(30), "Running", |p| {
        phase(p) == "Running"
    })
    .await?;
    println!(
        "timing: API create -> pod Running {:.0} ms (scheduling, sandbox, container, status)",
        ms(t.elapsed())
    );
    let quick_uid = quick.metadata.uid.clone().unwrap_or_default();

    // Kubelet restart: the running pod is adopted (same container, no restart), and a sandbox
    // whose pod does not exist is removed.
    drop(kubelet_task);
    let orphan_uid = format!("orphan-{}", std::process::id());
    let orphan_logs = dirs.pod_log_dir("default", "orphan", &orphan_uid);
    std::fs::create_dir_all(&orphan_logs)?;
    let orphan = cri
        .run_pod_sandbox(pod_config(lab, "orphan", &orphan_logs, &orphan_uid), "")
        .await?;
    let t = Instant::now();
    kubelet_task = spawn_kubelet(cfg.clone(), kubelet_client.clone(), cri.clone());
    loop {
        let left = runtime_objects(&cri, &orphan_uid).await?;
        if left == 0 {
            break;
        }
        ensure!(
            t.elapsed() < Duration::from_secs(30),
            "orphan sandbox {orphan} was not removed"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    println!(
        "timing: kubelet restart -> orphan sandbox removed {:.0} ms",
        ms(t.elapsed())
    );
    // Readiness starts over with the new kubelet (as upstream's prober does); the container
    // itself is the same one.
    let want_id = format!("containerd://{container_id}");
    let adopted = wait_pod(
        &pods,
        "web",
        Duration::from_secs(10),
        "adopted and Ready",
        |p| container_status(p).is_ok_and(|cs| cs.ready),
    )
    .await?;
    let cs = container_status(&adopted)?;
    ensure!(
        cs.container_id.as_deref() == Some(want_id.as_str()) && cs.restart_count == 0,
        "the restarted kubelet did not adopt the running container: {cs:?}"
    );

    // A container that keeps exiting under restartPolicy Always: restarted, then backing off.
    let t = Instant::now();
    cluster
        .ok(&[
            "run",
            "crash",
            "--image",
            BUSYBOX,
            "--",
            "sh",
            "-c",
            "echo crashing; exit 3",
        ])
        .await;
    let mut saw_backoff = false;
    let crashed = wait_pod(
        &pods,
        "crash",
        Duration::from_secs(60),
        "restartCount >= 2 after CrashLoopBackOff",
        |p| {
            let Ok(cs) = container_status(p) else {
                return false;
            };
            let waiting = cs
                .state
                .as_ref()
                .and_then(|s| s.waiting.as_ref())
                .and_then(|w| w.reason.clone());
            if waiting.as_deref() == Some("CrashLoopBackOff") {
                saw_backoff = true;
                let last = cs.last_state.as_ref().and_then(|s| s.terminated.as_ref());
                if last.map(|t| t.exit_code) != Some(3) {
                    return false;
                }
            }
            saw_backoff && cs.restart_count >= 2
        },
    )
    .await?;
    println!(
        "crash loop: restartCount {} after {:.1} s",
        container_status(&crashed)?.restart_count,
        t.elapsed().as_secs_f64()
    );
    ensure!(phase(&crashed) == "Running", "{:?}", crashed.status);
    // One BackOff event, counted up, not one per sync.
    let events = events_of(&client, "crash").await?;
    let backoff: Vec<_> = events
        .iter()
        .filter(|e| e.0 == "Warning" && e.1 == "BackOff")
        .collect();
    ensure!(
        backoff.len() == 1
            && backoff[0]
                .2
                .starts_with("Back-off restarting failed container crash in pod crash_default("),
        "{events:?}"
    );
    let described = cluster.ok(&["describe", "pod", "crash"]).await;
    ensure!(
        described.contains("Back-off restarting failed container crash"),
        "{described}"
    );

    // Exec probes: readiness follows a file, a failing liveness probe restarts the container.
    let probed = cluster.write(
        "probed.yaml",
        r#"apiVersion: v1
kind: Pod
metadata: {name: probed}
spec:
  terminationGracePeriodSeconds: 2
  containers:
  - name: c
    image: rkube.local/busybox:test
    command: ["sh", "-c", "trap 'exit 0' TERM; while true; do sleep 0.2; done"]
    readinessProbe: {exec: {command: ["test", "-f", "/tmp/ready"]}, periodSeconds: 1}
    livenessProbe:
      exec: {command: ["test", "!", "-f", "/tmp/die"]}
      periodSeconds: 1
      failureThreshold: 2
"#,
    );
    cluster.ok(&["apply", "-f", &probed]).await;
    let p = wait_pod(&pods, "probed", Duration::from_secs(30), "Running", |p| {
        phase(p) == "Running"
    })
    .await?;
    ensure!(
        condition(&p, "Ready").as_deref() == Some("False"),
        "ready before its readiness probe passed: {:?}",
        p.status
    );
    let probed_id = |p: &Pod| -> Result<String> {
        container_status(p)?
            .container_id
            .and_then(|id| id.strip_prefix("containerd://").map(str::to_owned))
            .ok_or_else(|| anyhow!("no container ID"))
    };
    let id = probed_id(&p)?;
    let exec = |id: String, cmd: &'static str| {
        let cri = cri.clone();
        async move {
            cri.exec_sync(&id, &["sh", "-c", cmd], Duration::from_secs(5))
                .await
                .map(|_| ())
        }
    };
    exec(id.clone(), "touch /tmp/ready").await?;
    wait_pod(&pods, "probed", Duration::from_secs(10), "Ready", |p| {
        condition(p, "Ready").as_deref() == Some("True")
    })
    .await?;
    exec(id.clone(), "rm /tmp/ready").await?;
    wait_pod(&pods, "probed", Duration::from_secs(10), "not Ready", |p| {
        condition(p, "Ready").as_deref() == Some("False")
            && container_status(p).is_ok_and(|c| !c.ready)
    })
    .await?;
    let t = Instant::now();
    exec(id.clone(), "touch /tmp/die").await?;
    let restarted = wait_pod(
        &pods,
        "probed",
        Duration::from_secs(30),
        "restart after liveness failure",
        |p| {
            container_status(p).is_ok_and(|c| {
                c.restart_count == 1 && c.state.as_ref().and_then(|s| s.running.as_ref()).is_some()
            })
        },
    )
    .await?;
    ensure!(probed_id(&restarted)? != id, "same container after restart");
    println!(
        "timing: liveness failure -> container restarted {:.0} ms",
        ms(t.elapsed())
    );
    let probed_uid = restarted.metadata.uid.clone().unwrap_or_default();
    let events = events_of(&client, "probed").await?;
    ensure!(
        has_event(&events, "Warning", "Unhealthy", "Liveness probe failed")
            && has_event(
                &events,
                "Normal",
                "Killing",
                "Container c failed liveness probe, will be restarted"
            ),
        "{events:?}"
    );

    // Images that are not there: Never → ErrImageNeverPull; a registry that does not answer
    // (loopback inside the lab's namespace) → ErrImagePull, then ImagePullBackOff.
    let images = cluster.write(
        "images.yaml",
        r#"apiVersion: v1
kind: Pod
metadata: {name: never}
spec:
  containers:
  - {name: c, image: "rkube.local/missing:1", imagePullPolicy: Never}
---
apiVersion: v1
kind: Pod
metadata: {name: nopull}
spec:
  containers:
  - {name: c, image: "127.0.0.1:9/rkube/missing:1", imagePullPolicy: IfNotPresent}
---
apiVersion: v1
kind: Pod
metadata: {name: remote}
spec:
  containers:
  - {name: c, image: "registry.example/app:1"}
"#,
    );
    cluster.ok(&["apply", "-f", &images]).await;
    let waiting_reason = |p: &Pod| {
        container_status(p)
            .ok()
            .and_then(|c| c.state)
            .and_then(|s| s.waiting)
            .and_then(|w| w.reason)
            .unwrap_or_default()
    };
    wait_pod(
        &pods,
        "never",
        Duration::from_secs(30),
        "ErrImageNeverPull",
        |p| waiting_reason(p) == "ErrImageNeverPull",
    )
    .await?;
    let mut pull_errors = std::collections::BTreeSet::new();
    let nopull = wait_pod(
        &pods,
        "nopull",
        Duration::from_secs(30),
        "ImagePullBackOff",
        |p| {
            let r = waiting_reason(p);
            pull_errors.insert(r.clone());
            r == "ImagePullBackOff"
        },
    )
    .await?;
    ensure!(pull_errors.contains("ErrImagePull"), "{pull_errors:?}");
    ensure!(phase(&nopull) == "Pending", "{:?}", nopull.status);
    // A registry off the machine is never contacted: the pull is refused, saying why.
    let remote = wait_pod(
        &pods,
        "remote",
        Duration::from_secs(30),
        "refused pull",
        |p| waiting_reason(p) == "ErrImagePull",
    )
    .await?;
    let message = container_status(&remote)?
        .state
        .and_then(|s| s.waiting)
        .and_then(|w| w.message)
        .unwrap_or_default();
    ensure!(
        message.contains("\"registry.example\" off this machine")
            && message.contains("--allow-remote-image-pulls"),
        "{message}"
    );
    let events = events_of(&client, "remote").await?;
    ensure!(
        has_event(
            &events,
            "Warning",
            "Failed",
            "Failed to pull image \"registry.example/app:1\""
        ) && has_event(&events, "Warning", "Failed", "Error: ErrImagePull"),
        "{events:?}"
    );

    // A local registry (Debian's docker-registry, on the node's loopback) that wants a
    // password: the image is pushed with skopeo; a pod with an imagePullSecret pulls it and
    // runs, one without the secret gets ErrImagePull.
    let _registry = Registry::start(lab, 5000)?;
    let web_image = busybox_image(Path::new("/bin/busybox"), "127.0.0.1:5000/rkube/web:1")?
        .cmd(["httpd", "-f", "-p", "8080", "-h", "/var/www"])
        .build()?;
    let tar = lab.data_dir().join("web-image.tar");
    web_image.write_to(&tar)?;
    let push = std::process::Command::new("nsenter")
        .arg(format!("--net={}", lab.netns().display()))
        .args(["--", "skopeo", "copy", "--quiet", "--preserve-digests"])
        .arg("--dest-tls-verify=false")
        .args(["--dest-creds", "alice:s3cret"])
        .arg(format!("oci-archive:{}", tar.display()))
        .arg("docker://127.0.0.1:5000/rkube/web:1")
        .output()
        .context("skopeo (Debian's skopeo)")?;
    ensure!(
        push.status.success(),
        "push: {}",
        String::from_utf8_lossy(&push.stderr)
    );
    cluster
        .ok(&[
            "create",
            "secret",
            "docker-registry",
            "regcred",
            "--docker-server=127.0.0.1:5000",
            "--docker-username=alice",
            "--docker-password=s3cret",
        ])
        .await;
    let pulled = cluster.write(
        "pulled.yaml",
        r#"apiVersion: v1
kind: Pod
metadata: {name: pulled}
spec:
  terminationGracePeriodSeconds: 1
  imagePullSecrets: [{name: regcred}]
  containers:
  - {name: web, image: "127.0.0.1:5000/rkube/web:1"}
---
apiVersion: v1
kind: Pod
metadata: {name: nocreds}
spec:
  containers:
  - {name: web, image: "127.0.0.1:5000/rkube/web:1", imagePullPolicy: Always}
"#,
    );
    let t = Instant::now();
    cluster.ok(&["apply", "-f", &pulled]).await;
    let running = wait_pod(&pods, "pulled", Duration::from_secs(60), "Running", |p| {
        phase(p) == "Running"
    })
    .await?;
    println!(
        "timing: pod with an image pulled from the local registry -> Running {:.0} ms",
        ms(t.elapsed())
    );
    let cs = container_status(&running)?;
    ensure!(
        cs.image_id.contains(&web_image.manifest_digest),
        "pulled image {} is not the pushed {}",
        cs.image_id,
        web_image.manifest_digest
    );
    let events = events_of(&client, "pulled").await?;
    ensure!(
        has_event(
            &events,
            "Normal",
            "Pulling",
            "Pulling image \"127.0.0.1:5000/rkube/web:1\""
        ) && has_event(
            &events,
            "Normal",
            "Pulled",
            "Successfully pulled image \"127.0.0.1:5000/rkube/web:1\" in "
        ),
        "{events:?}"
    );
    let nocreds = wait_pod(
        &pods,
        "nocreds",
        Duration::from_secs(30),
        "ErrImagePull",
        |p| {
            matches!(
                waiting_reason(p).as_str(),
                "ErrImagePull" | "ImagePullBackOff"
            )
        },
    )
    .await?;
    let message = container_status(&nocreds)?
        .state
        .and_then(|s| s.waiting)
        .and_then(|w| w.message)
        .unwrap_or_default();
    // The registry's refusal is in the ErrImagePull message, or (once the status moved on to
    // ImagePullBackOff) in the Failed event.
    let refused = |m: &str| m.contains("401") || m.to_lowercase().contains("unauthorized");
    let events = events_of(&client, "nocreds").await?;
    ensure!(
        refused(&message)
            || events.iter().any(|e| e.1 == "Failed"
                && e.2.starts_with("Failed to pull image")
                && refused(&e.2)),
        "{message} {events:?}"
    );
    cluster
        .ok(&["delete", "pod", "pulled", "nocreds", "--grace-period=1"])
        .await;

    // restartPolicy Never, an init container, exit 0: Succeeded, and its sandbox stopped.
    let done = cluster.write(
        "done.yaml",
        r#"apiVersion: v1
kind: Pod
metadata: {name: done}
spec:
  restartPolicy: Never
  initContainers:
  - {name: init, image: rkube.local/busybox:test, command: ["sh", "-c", "echo init > /dev/null"]}
  containers:
  - {name: main, image: rkube.local/busybox:test, command: ["sh", "-c", "echo done"]}
"#,
    );
    cluster.ok(&["apply", "-f", &done]).await;
    let done = wait_pod(&pods, "done", Duration::from_secs(60), "Succeeded", |p| {
        phase(p) == "Succeeded"
    })
    .await?;
    let st = done.status.clone().unwrap_or_default();
    let init = st
        .init_container_statuses
        .as_ref()
        .and_then(|s| s.first())
        .and_then(|s| s.state.as_ref())
        .and_then(|s| s.terminated.as_ref())
        .ok_or_else(|| anyhow!("init container not terminated: {st:?}"))?;
    ensure!(init.exit_code == 0, "{init:?}");
    let main = container_status(&done)?;
    let term = main
        .state
        .as_ref()
        .and_then(|s| s.terminated.as_ref())
        .ok_or_else(|| anyhow!("{main:?}"))?;
    ensure!(
        term.exit_code == 0 && term.reason.as_deref() == Some("Completed"),
        "{term:?}"
    );
    let done_uid = done.metadata.uid.clone().unwrap_or_default();

    // A hostPort through portmap (reached at the node's loopback), a hostNetwork pod on the
    // node's own stack, and a container over its memory limit: OOMKilled.
    let net = cluster.write(
        "net.yaml",
        r#"apiVersion: v1
kind: Pod
metadata: {name: hostport}
spec:
  terminationGracePeriodSeconds: 2
  containers:
  - name: web
    image: rkube.local/busybox:test
    command: ["httpd", "-f", "-p", "8080", "-h", "/var/www"]
    ports: [{containerPort: 8080, hostPort: 30080}]
---
apiVersion: v1
kind: Pod
metadata: {name: hostnet}
spec:
  hostNetwork: true
  terminationGracePeriodSeconds: 2
  containers:
  - name: web
    image: rkube.local/busybox:test
    command: ["httpd", "-f", "-p", "8081", "-h", "/var/www"]
---
apiVersion: v1
kind: Pod
metadata: {name: oom}
spec:
  restartPolicy: Never
  containers:
  - name: hog
    image: rkube.local/busybox:test
    command: ["sh", "-c", "tail /dev/zero"]
    resources:
      limits: {memory: 24Mi}
"#,
    );
    cluster.ok(&["apply", "-f", &net]).await;
    for name in ["hostport", "hostnet"] {
        wait_pod(&pods, name, Duration::from_secs(30), "Running", |p| {
            phase(p) == "Running"
        })
        .await?;
    }
    for port in [30080, 8081] {
        let netns = lab.netns();
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        // httpd may take a moment to listen after the container started.
        let mut body = Err(anyhow!("not tried"));
        for _ in 0..50 {
            let ns = netns.clone();
            body = tokio::task::spawn_blocking(move || http_get_in_netns(&ns, addr)).await?;
            if body.is_ok() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let body = body.with_context(|| format!("GET 127.0.0.1:{port} in the node"))?;
        ensure!(body.contains("hello from rkube busybox image"), "{body}");
    }
    let hostnet = pods.get("hostnet").await?;
    let st = hostnet.status.clone().unwrap_or_default();
    ensure!(
        st.pod_ip.is_some() && st.pod_ip == st.host_ip,
        "a hostNetwork pod has the node's IP: {st:?}"
    );
    let oom = wait_pod(&pods, "oom", Duration::from_secs(60), "Failed", |p| {
        phase(p) == "Failed"
    })
    .await?;
    let term = container_status(&oom)?
        .state
        .and_then(|s| s.terminated)
        .ok_or_else(|| anyhow!("oom: not terminated"))?;
    ensure!(
        term.reason.as_deref() == Some("OOMKilled") && term.exit_code == 137,
        "{term:?}"
    );
    cluster
        .ok(&[
            "delete",
            "pod",
            "hostport",
            "hostnet",
            "oom",
            "--grace-period=1",
        ])
        .await;

    // gRPC probes: the health check itself against a real gRPC server (containerd serves
    // grpc.health.v1), and a readiness probe on a port that does not speak gRPC keeps a pod
    // not Ready, with the prober's reason in an Unhealthy event.
    let socket = dirs.containerd_socket.clone();
    let connect = move || {
        let socket = socket.clone();
        async move {
            tokio::net::UnixStream::connect(socket)
                .await
                .map_err(|e| e.to_string())
        }
    };
    kubelet::grpc_probe::check("localhost", "", Duration::from_secs(3), connect)
        .await
        .map_err(|e| anyhow!("containerd's health service: {e}"))?;
    let grpc = cluster.write(
        "grpc.yaml",
        r#"apiVersion: v1
kind: Pod
metadata: {name: grpcprobe}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: web
    image: rkube.local/busybox:test
    command: ["httpd", "-f", "-p", "8080", "-h", "/var/www"]
    readinessProbe: {grpc: {port: 8080}, periodSeconds: 1}
"#,
    );
    cluster.ok(&["apply", "-f", &grpc]).await;
    let mut unhealthy = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !has_event(
        &unhealthy,
        "Warning",
        "Unhealthy",
        "Readiness probe failed: ",
    ) {
        ensure!(
            Instant::now() < deadline,
            "no Unhealthy event: {unhealthy:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
        unhealthy = events_of(&client, "grpcprobe").await?;
    }
    let p = pods.get("grpcprobe").await?;
    ensure!(
        phase(&p) == "Running" && condition(&p, "Ready").as_deref() == Some("False"),
        "{:?}",
        p.status
    );
    cluster
        .ok(&["delete", "pod", "grpcprobe", "--grace-period=1"])
        .await;

    // Lifecycle hooks: postStart runs right after the start; a failing one kills the
    // container; preStop runs before SIGTERM and its time counts against the grace period.
    let hooks = cluster.write(
        "hooks.yaml",
        r#"apiVersion: v1
kind: Pod
metadata: {name: hooks}
spec:
  terminationGracePeriodSeconds: 20
  containers:
  - name: c
    image: rkube.local/busybox:test
    command: ["sh", "-c", "trap 'exit 0' TERM; while true; do sleep 0.2; done"]
    lifecycle:
      postStart: {exec: {command: ["sh", "-c", "echo started > /tmp/poststart"]}}
      preStop: {sleep: {seconds: 2}}
---
apiVersion: v1
kind: Pod
metadata: {name: badhook}
spec:
  restartPolicy: Never
  terminationGracePeriodSeconds: 2
  containers:
  - name: c
    image: rkube.local/busybox:test
    command: ["sleep", "3600"]
    lifecycle:
      postStart: {exec: {command: ["false"]}}
"#,
    );
    cluster.ok(&["apply", "-f", &hooks]).await;
    let running = wait_pod(&pods, "hooks", Duration::from_secs(30), "Running", |p| {
        phase(p) == "Running"
    })
    .await?;
    let hooked_id = container_status(&running)?
        .container_id
        .unwrap_or_default()
        .trim_start_matches("containerd://")
        .to_owned();
    let out = cri
        .exec_sync(
            &hooked_id,
            &["cat", "/tmp/poststart"],
            Duration::from_secs(5),
        )
        .await?;
    ensure!(
        String::from_utf8_lossy(&out.stdout).trim() == "started",
        "postStart did not run: {out:?}"
    );
    wait_pod(
        &pods,
        "badhook",
        Duration::from_secs(30),
        "killed by its hook",
        |p| phase(p) == "Failed",
    )
    .await?;
    let events = events_of(&client, "badhook").await?;
    ensure!(
        has_event(
            &events,
            "Warning",
            "FailedPostStartHook",
            "Exec lifecycle hook ([false]) for Container \"c\" in Pod \"badhook_default("
        ),
        "{events:?}"
    );
    let t = Instant::now();
    cluster.ok(&["delete", "pod", "hooks", "badhook"]).await;
    let took = t.elapsed();
    ensure!(
        took >= Duration::from_secs(2) && took < Duration::from_secs(15),
        "deleting a pod with a 2 s preStop sleep took {took:?}"
    );
    println!(
        "timing: kubectl delete of a pod with a 2 s preStop hook {:.0} ms",
        ms(took)
    );

    // Deletion: containers stopped within the grace period, sandbox removed, object gone.
    let t = Instant::now();
    cluster.ok(&["delete", "pod", "web"]).await;
    let t_delete = t.elapsed();
    ensure!(pods.get_opt("web").await?.is_none(), "web still exists");
    ensure!(
        runtime_objects(&cri, &uid).await? == 0,
        "the runtime still has web's sandbox or containers"
    );
    println!(
        "timing: kubectl delete pod web (grace 3 s, httpd ignores SIGTERM) {:.0} ms",
        ms(t_delete)
    );
    cluster
        .ok(&[
            "delete", "pod", "crash", "done", "quick", "probed", "never", "nopull", "remote",
        ])
        .await;
    let t = Instant::now();
    loop {
        let sandboxes = cri.list_pod_sandbox(None).await?;
        let containers = cri.list_containers(None).await?;
        if sandboxes.is_empty() && containers.is_empty() {
            break;
        }
        if t.elapsed() > Duration::from_secs(30) {
            let pods = cluster.kubectl(&["get", "pods", "-o", "yaml"]).await;
            bail!(
                "left in the runtime: {sandboxes:?} {containers:?}\npods: {}",
                String::from_utf8_lossy(&pods.stdout)
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for u in [&done_uid, &quick_uid, &probed_uid] {
        ensure!(
            runtime_objects(&cri, u).await? == 0,
            "a sandbox of {u} is left"
        );
    }
    let out = cluster.ok(&["get", "pods"]).await;
    ensure!(
        ![
            "crash", "done", "quick", "probed", "never", "nopull", "remote"
        ]
        .iter()
        .any(|p| out.contains(p)),
        "{out}"
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while dirs.pod_log_dir("default", "web", &uid).exists() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    ensure!(
        !dirs.pod_log_dir("default", "web", &uid).exists(),
        "web's log directory is left"
    );

    drop(kubelet_task);
    runtime.shutdown().await;
    // Shims exit shortly after their last container is removed.
    let deadline = Instant::now() + Duration::from_secs(10);
    while !lab.runtime_pids().is_empty() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(())
}

/// Debian's docker-registry serving on `127.0.0.1:port` inside the lab's network namespace,
/// with htpasswd auth (alice / s3cret); stopped on drop.
struct Registry(std::process::Child);

impl Registry {
    fn start(lab: &Lab, port: u16) -> Result<Self> {
        let dir = lab.data_dir().join("registry");
        std::fs::create_dir_all(dir.join("data"))?;
        let htpasswd = std::process::Command::new("htpasswd")
            .args(["-Bbn", "alice", "s3cret"])
            .output()
            .context("htpasswd (Debian's apache2-utils)")?;
        ensure!(htpasswd.status.success(), "htpasswd failed");
        std::fs::write(dir.join("htpasswd"), &htpasswd.stdout)?;
        let config = dir.join("config.yml");
        std::fs::write(
            &config,
            format!(
                "version: 0.1\nlog: {{level: warn}}\nstorage: {{filesystem: {{rootdirectory: {}}}}}\n\
                 http: {{addr: 127.0.0.1:{port}}}\nauth: {{htpasswd: {{realm: rkube-test, path: {}}}}}\n",
                dir.join("data").display(),
                dir.join("htpasswd").display()
            ),
        )?;
        let child = std::process::Command::new("nsenter")
            .arg(format!("--net={}", lab.netns().display()))
            .args(["--", "docker-registry", "serve"])
            .arg(&config)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .context("docker-registry (Debian's docker-registry)")?;
        let registry = Registry(child);
        // Ready when it answers (401 without credentials).
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let addr = SocketAddr::from(([127, 0, 0, 1], port));
            if http_get_in_netns(&lab.netns(), addr).is_ok() {
                return Ok(registry);
            }
            ensure!(Instant::now() < deadline, "the registry did not start");
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
