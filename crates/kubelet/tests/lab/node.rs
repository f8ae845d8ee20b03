//! A whole node for end-to-end tests: the real API server (`apiserver::testing::Cluster`), the
//! scheduler and this kubelet on a supervised containerd inside the lab's network namespace,
//! with busybox (built from the host's busybox-static) in the air-gap directory; plus the pod
//! helpers the node tests share.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail, ensure};
use apiserver::testing::Cluster;
use k8s_openapi::api::core::v1::{ContainerStatus, Node, Pod};
use kube::Api;
use kubelet::images::busybox_image;
use kubelet::{ContainerdConfig, Kubelet, KubeletConfig, Runtime, RuntimeClient, RuntimeEndpoint};
use tokio::task::JoinHandle;

use super::Lab;

pub const BUSYBOX: &str = "rkube.local/busybox:test";

/// Aborts a task when dropped (the kubelet and scheduler must not outlive a failed test).
pub struct Task(pub JoinHandle<()>);

impl Drop for Task {
    fn drop(&mut self) {
        self.0.abort();
    }
}

pub fn spawn_kubelet(cfg: KubeletConfig, client: kube::Client, cri: RuntimeClient) -> Task {
    Task(tokio::spawn(async move {
        if let Err(e) = Kubelet::new(cfg, client, cri).run().await {
            eprintln!("kubelet failed: {e:#}");
        }
    }))
}

pub fn phase(p: &Pod) -> &str {
    p.status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .unwrap_or("")
}

pub fn condition(p: &Pod, type_: &str) -> Option<String> {
    p.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .and_then(|cs| cs.iter().find(|c| c.type_ == type_))
        .map(|c| c.status.clone())
}

/// The status of the pod's first container.
pub fn container_status(p: &Pod) -> Result<ContainerStatus> {
    p.status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref())
        .and_then(|cs| cs.first())
        .cloned()
        .ok_or_else(|| anyhow!("no container status: {:?}", p.status))
}

/// The status of the pod's container `name`.
pub fn named_status(p: &Pod, name: &str) -> Result<ContainerStatus> {
    p.status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref())
        .and_then(|cs| cs.iter().find(|c| c.name == name))
        .cloned()
        .ok_or_else(|| anyhow!("no status of container {name}: {:?}", p.status))
}

/// The runtime ID of container `name` (without `containerd://`).
pub fn container_id(p: &Pod, name: &str) -> Result<String> {
    named_status(p, name)?
        .container_id
        .and_then(|id| id.strip_prefix("containerd://").map(str::to_owned))
        .ok_or_else(|| anyhow!("container {name} has no ID"))
}

/// Polls the pod until `done` says so (or the time is up).
pub async fn wait_pod(
    pods: &Api<Pod>,
    name: &str,
    timeout: Duration,
    what: &str,
    mut done: impl FnMut(&Pod) -> bool,
) -> Result<Pod> {
    let deadline = Instant::now() + timeout;
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
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// Runs a node test's `scenario` in a fresh lab (skipped without root and containerd): on a
/// failure it prints containerd's log, and after a pass nothing may be left behind.
pub async fn run_in_lab(scenario: impl AsyncFnOnce(&Lab) -> Result<()>) -> Result<()> {
    if !super::is_root() || !std::path::Path::new("/usr/bin/containerd").exists() {
        common::ci::skip("needs root and containerd");
        return Ok(());
    }
    // Labs in one test binary run one at a time: they share the host (the node name is the
    // process's, cgroup hierarchies, mounts), and two at once tore down each other's pods.
    static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    let _turn = ONE_AT_A_TIME.lock().await;
    super::init_tracing();
    let lab = Lab::new()?;
    let result = scenario(&lab).await;
    if result.is_err() {
        print_containerd_log(&lab);
    }
    result?;
    // Killed processes may take a moment to exit on a loaded machine: a leak is what is
    // still there after 5 s.
    let mut left = lab.leftovers();
    for i in 0..50 {
        if left.is_empty() {
            break;
        }
        if i == 0 {
            eprintln!("lab: waiting for {left:?} to go");
        }
        std::thread::sleep(Duration::from_millis(100));
        left = lab.leftovers();
    }
    anyhow::ensure!(
        left.is_empty(),
        "left behind after a clean teardown: {left:#?}"
    );
    Ok(())
}

/// Prints the end of containerd's log (for a failed test).
pub fn print_containerd_log(lab: &Lab) {
    let log = lab.data_dir().join("agent/containerd/containerd.log");
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    let tail: Vec<&str> = text.lines().rev().take(30).collect();
    eprintln!("--- end of {}:", log.display());
    for l in tail.iter().rev() {
        eprintln!("{l}");
    }
}

/// API server + scheduler + containerd + kubelet.
pub struct TestNode {
    pub cluster: Cluster,
    pub client: kube::Client,
    pub kubelet_client: kube::Client,
    pub cri: RuntimeClient,
    pub cfg: KubeletConfig,
    pub kubelet: Option<Task>,
    runtime: Option<Runtime>,
    _scheduler: Task,
    _controller_manager: Task,
}

impl TestNode {
    /// Starts everything and waits until the Node is Ready.
    pub async fn start(lab: &Lab) -> Result<Self> {
        Self::start_with(lab, false, |_| {}).await
    }

    /// [`TestNode::start`] with the kubelet's config adjusted by `tweak`; `as_node`: the
    /// kubelet talks to the API server as `system:node:<name>` in `system:nodes` (as the
    /// node of `rkube server` does) instead of as the admin.
    pub async fn start_with(
        lab: &Lab,
        as_node: bool,
        tweak: impl FnOnce(&mut KubeletConfig),
    ) -> Result<Self> {
        // The API server's pod and service proxies dial pods in the lab's namespace.
        let netns = lab.netns();
        // Events kept for the API server's default hour (the test cluster's is 3 s, for its
        // TTL test): a node test checks a pod's events after waiting on others.
        let cluster = Cluster::start_configured(false, |c| {
            c.pod_netns = Some(netns);
            c.event_ttl = Duration::from_secs(3600);
        })
        .await;
        let config = cluster.config().await;
        let scheduler = {
            let client = scheduler::client(config.clone())?;
            Task(tokio::spawn(scheduler::run(
                client,
                "test-scheduler".into(),
            )))
        };
        // The controller manager: its node IPAM controller gives the node its pod CIDR.
        let controller_manager = Task(tokio::spawn(controllers::run(
            controllers::client(config.clone())?,
            "test-cm".into(),
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
        let node_name = format!("kt-node-{}", std::process::id());
        let mut cfg = KubeletConfig::new(Some(&node_name), &data);
        cfg.cni_network = lab.network.clone();
        cfg.cgroup_root = lab.cgroup_root();
        cfg.pod_netns = Some(lab.netns());
        // The API server reaches the kubelet (logs, exec, port-forward) on loopback only.
        cfg.node_ip = Some("127.0.0.1".parse()?);
        cfg.kubelet_port = 0;
        cfg.client_ca = config.root_cert.clone().unwrap_or_default();
        tweak(&mut cfg);
        let kubelet_config = if as_node {
            let path =
                cluster.kubeconfig_as(&format!("system:node:{node_name}"), &["system:nodes"]);
            let kc = kube::config::Kubeconfig::read_from(path)?;
            kube::Config::from_custom_kubeconfig(kc, &Default::default()).await?
        } else {
            config
        };
        let kubelet_client = kubelet::kubelet::client(kubelet_config)?;
        let client = cluster.client().await;
        let mut node = TestNode {
            kubelet: None,
            cluster,
            client,
            kubelet_client,
            cri,
            cfg,
            runtime: Some(runtime),
            _scheduler: scheduler,
            _controller_manager: controller_manager,
        };
        node.start_kubelet();
        node.wait_ready().await?;
        Ok(node)
    }

    pub fn start_kubelet(&mut self) {
        self.kubelet = Some(spawn_kubelet(
            self.cfg.clone(),
            self.kubelet_client.clone(),
            self.cri.clone(),
        ));
    }

    pub fn stop_kubelet(&mut self) {
        self.kubelet = None;
    }

    pub async fn wait_ready(&self) -> Result<Node> {
        let nodes: Api<Node> = Api::all(self.client.clone());
        let t = Instant::now();
        loop {
            let n = nodes.get_opt(&self.cfg.node_name).await?;
            if let Some(n) = n
                && n.status
                    .as_ref()
                    .and_then(|s| s.conditions.as_ref())
                    .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
            {
                return Ok(n);
            }
            ensure!(
                t.elapsed() < Duration::from_secs(30),
                "node never became Ready"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub fn pods(&self) -> Api<Pod> {
        Api::namespaced(self.client.clone(), "default")
    }

    /// Runs `sh -c script` in container `id`; stdout on exit 0.
    pub async fn exec(&self, id: &str, script: &str) -> Result<String> {
        let out = self
            .cri
            .exec_sync(id, &["sh", "-c", script], Duration::from_secs(10))
            .await?;
        ensure!(
            out.exit_code == 0,
            "{script:?} exited {}: {}{}",
            out.exit_code,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Waits until the runtime has nothing left and the pods' directories are gone, stops the
    /// kubelet and containerd, and waits for the shims to go.
    pub async fn shutdown(mut self, lab: &Lab) -> Result<()> {
        let t = Instant::now();
        loop {
            let sandboxes = self.cri.list_pod_sandbox(None).await?;
            let containers = self.cri.list_containers(None).await?;
            if sandboxes.is_empty() && containers.is_empty() {
                break;
            }
            ensure!(
                t.elapsed() < Duration::from_secs(30),
                "left in the runtime: {sandboxes:?} {containers:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        // A deleted pod's worker unmounts and removes its directory after the runtime let go
        // of it: stopping the kubelet before then would leave its volumes mounted. (Not an
        // error here: the lab's leftover check names whatever stays.)
        let pods_dir = self.cfg.dirs().kubelet_pods;
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::fs::read_dir(&pods_dir).is_ok_and(|mut d| d.next().is_some())
            && Instant::now() < deadline
        {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        self.kubelet = None;
        if let Some(r) = self.runtime.take() {
            r.shutdown().await;
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while !lab.runtime_pids().is_empty() && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Ok(())
    }
}

/// Starts `kubectl port-forward pod/<pod> :<port>` on 127.0.0.1 with `env`, and returns the
/// process (killed when dropped) and the local port kubectl chose ("Forwarding from
/// 127.0.0.1:40123 -> 8080").
pub async fn port_forward(
    kubeconfig: &Path,
    pod: &str,
    port: u16,
    env: &[(&str, &str)],
    args: &[&str],
) -> Result<(tokio::process::Child, u16)> {
    use tokio::io::AsyncReadExt;
    let mut cmd = tokio::process::Command::new("kubectl");
    cmd.arg("--kubeconfig")
        .arg(kubeconfig)
        .args(["port-forward", &format!("pod/{pod}"), &format!(":{port}")])
        .args(["--address", "127.0.0.1"])
        .args(args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn()?;
    let mut stdout = child.stdout.take().ok_or_else(|| anyhow!("no stdout"))?;
    let mut seen = String::new();
    let t = Instant::now();
    loop {
        let mut buf = [0u8; 256];
        let n = tokio::time::timeout(Duration::from_secs(20), stdout.read(&mut buf)).await??;
        if n == 0 {
            let mut err = String::new();
            if let Some(mut e) = child.stderr.take() {
                e.read_to_string(&mut err).await?;
            }
            bail!("port-forward ended: {seen} {err}");
        }
        seen.push_str(&String::from_utf8_lossy(&buf[..n]));
        if let Some(p) = seen
            .split("127.0.0.1:")
            .nth(1)
            .and_then(|r| r.split(' ').next())
            .and_then(|p| p.parse().ok())
        {
            // kubectl goes on writing a line per connection: its stdout must stay open (a
            // closed pipe kills it at the first connection).
            child.stdout = Some(stdout);
            return Ok((child, p));
        }
        ensure!(
            t.elapsed() < Duration::from_secs(20),
            "no forwarding line: {seen}"
        );
    }
}
