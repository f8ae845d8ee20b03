//! Node end-to-end test of the runtime layer on a real containerd (root only).
//!
//! containerd runs in a network namespace this test creates (so the CNI bridge, the pod IPs and
//! `ip_forward` live there, and nothing can route off the machine); data, sockets, mounts and
//! pod cgroups are the test's own, and the `Lab` guard removes every process and mount it made,
//! also when the test fails.

mod lab;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, ensure};
use kubelet::cri::api;
use kubelet::cri::logs::{Stream, messages};
use kubelet::images::{PAUSE_IMAGE, busybox_image};
use kubelet::{ContainerdConfig, ContainerdState, Runtime, RuntimeClient, RuntimeEndpoint};
use lab::{Lab, container_config, http_get_in_netns, init_tracing, is_root, kill, ms, pod_config};
use net::cni::BridgeNetwork;

const BUSYBOX: &str = "rkube.local/busybox:test";
/// Inside the cluster CIDR 10.42.0.0/16, and only ever present in the test's namespace.
const POD_SUBNET: &str = "10.42.250.0/24";

/// Retries `f` while the runtime is unavailable (right after a containerd restart).
async fn retry<T, F, Fut>(what: &str, mut f: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, kubelet::CriError>>,
{
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match f().await {
            Ok(v) => return Ok(v),
            Err(e) if e.is_unavailable() && Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => return Err(e).context(what.to_owned()),
        }
    }
}

fn zombies(ps: &str) -> Vec<&str> {
    // One /proc/<pid>/stat per line: "pid (comm) S ppid …".
    ps.lines()
        .filter(|l| {
            l.rsplit_once(')')
                .is_some_and(|(_, r)| r.trim_start().starts_with('Z'))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn containerd_runs_a_pod_and_survives_restart() -> Result<()> {
    if !is_root() {
        common::ci::skip("needs root (containerd, network namespaces, cgroups)");
        return Ok(());
    }
    init_tracing();
    let lab = Lab::new()?;
    let result = scenario(&lab).await;
    if result.is_err() {
        let log = lab.data_dir().join("agent/containerd/containerd.log");
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        let tail: Vec<&str> = text.lines().rev().take(40).collect();
        eprintln!("--- end of {}:", log.display());
        for l in tail.iter().rev() {
            eprintln!("{l}");
        }
    }
    result?;
    let left = lab.leftovers();
    ensure!(
        left.is_empty(),
        "left behind after a clean teardown: {left:#?}"
    );
    Ok(())
}

async fn scenario(lab: &Lab) -> Result<()> {
    let data = lab.data_dir().to_owned();
    let mut config = ContainerdConfig::new(&data);
    config.netns = Some(lab.netns());
    let dirs = config.dirs();

    // CNI conflist before containerd starts (containerd would first see a half-written file).
    let network = BridgeNetwork::new(&lab.network, POD_SUBNET, &dirs.cni_ipam);
    network.write(&dirs.cni_conf)?;
    // The busybox image arrives through the air-gap directory, imported at start.
    std::fs::create_dir_all(&dirs.images)?;
    let built = busybox_image(Path::new("/bin/busybox"), BUSYBOX)?.build()?;
    built.write_to(&dirs.images.join("busybox.tar"))?;

    let t = Instant::now();
    let runtime = Runtime::start(
        RuntimeEndpoint::Supervised(Box::new(config.clone())),
        Duration::from_secs(30),
    )
    .await
    .context("start containerd")?;
    println!(
        "timing: containerd start + CRI ready + image imports {:.1} ms",
        ms(t.elapsed())
    );
    let cri = runtime.client().clone();
    let containerd = runtime
        .containerd()
        .ok_or_else(|| anyhow!("no supervised containerd"))?;

    // Runtime and images.
    let v = cri.version().await?;
    ensure!(
        v.runtime_name == "containerd" && v.runtime_api_version == "v1",
        "{v:?}"
    );
    let status = cri.status(false).await?;
    let conditions: HashMap<String, bool> = status
        .status
        .map(|s| {
            s.conditions
                .into_iter()
                .map(|c| (c.r#type, c.status))
                .collect()
        })
        .unwrap_or_default();
    ensure!(
        conditions.get("RuntimeReady") == Some(&true),
        "{conditions:?}"
    );
    ensure!(
        conditions.get("NetworkReady") == Some(&true),
        "{conditions:?}"
    );
    ensure!(
        cri.image_status(PAUSE_IMAGE).await?.is_some(),
        "pause image not imported"
    );
    let bb = cri
        .image_status(BUSYBOX)
        .await?
        .ok_or_else(|| anyhow!("air-gap busybox image not imported"))?;
    ensure!(bb.repo_tags.iter().any(|t| t == BUSYBOX), "{bb:?}");
    let images = cri.list_images(None).await?;
    ensure!(images.len() >= 2, "{images:?}");
    let fs = cri.image_fs_info().await?;
    ensure!(!fs.image_filesystems.is_empty(), "{fs:?}");

    // A pod with a busybox httpd that logs to stdout and stderr.
    let uid = format!("kt-{}", std::process::id());
    let log_dir = dirs.pod_log_dir("default", "web", &uid);
    std::fs::create_dir_all(&log_dir)?;
    let pod = pod_config(lab, "web", &log_dir, &uid);
    let t = Instant::now();
    let sandbox = cri.run_pod_sandbox(pod.clone(), "").await?;
    let t_run = t.elapsed();
    let st = cri
        .pod_sandbox_status(&sandbox, false)
        .await?
        .status
        .ok_or_else(|| anyhow!("no sandbox status"))?;
    ensure!(
        st.state == api::PodSandboxState::SandboxReady as i32,
        "{st:?}"
    );
    let ip = st.network.map(|n| n.ip).unwrap_or_default();
    ensure!(
        ip.starts_with("10.42.250."),
        "pod IP {ip:?} is not from {POD_SUBNET}"
    );

    let t = Instant::now();
    let container = cri
        .create_container(
            &sandbox,
            container_config(
                "web",
                BUSYBOX,
                &[
                    "sh",
                    "-c",
                    "echo hello from rkube; echo oops >&2; exec httpd -f -p 8080 -h /var/www",
                ],
            ),
            pod.clone(),
        )
        .await?;
    let t_create = t.elapsed();
    cri.start_container(&container).await?;
    let t_create_start = t.elapsed();
    println!(
        "timing: RunPodSandbox {:.1} ms, CreateContainer {:.1} ms, CreateContainer+StartContainer {:.1} ms",
        ms(t_run),
        ms(t_create),
        ms(t_create_start)
    );
    let cs = cri.container_status(&container, false).await?;
    ensure!(
        cs.state == api::ContainerState::ContainerRunning as i32,
        "{cs:?}"
    );

    // The log file, in CRI format.
    let log_file = log_dir.join("web/0.log");
    let deadline = Instant::now() + Duration::from_secs(5);
    let logged = loop {
        let text = std::fs::read_to_string(&log_file).unwrap_or_default();
        let msgs = messages(&text);
        if msgs.contains(&(Stream::Stdout, "hello from rkube".to_owned()))
            && msgs.contains(&(Stream::Stderr, "oops".to_owned()))
        {
            break text;
        }
        ensure!(
            Instant::now() < deadline,
            "log file {} has {text:?}",
            log_file.display()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    println!("log file:\n{}", logged.trim_end());

    // ExecSync.
    let t = Instant::now();
    let out = cri
        .exec_sync(
            &container,
            &["cat", "/etc/hostname"],
            Duration::from_secs(5),
        )
        .await?;
    println!("timing: ExecSync {:.1} ms", ms(t.elapsed()));
    ensure!(out.exit_code == 0 && out.stdout == b"web\n", "{out:?}");
    let out = cri
        .exec_sync(
            &container,
            &["sh", "-c", "echo err >&2; exit 3"],
            Duration::from_secs(5),
        )
        .await?;
    ensure!(out.exit_code == 3 && out.stderr == b"err\n", "{out:?}");

    // The pod IP answers from the node's network namespace.
    let addr: SocketAddr = format!("{ip}:8080").parse()?;
    let netns = lab.netns();
    let body = tokio::task::spawn_blocking(move || http_get_in_netns(&netns, addr)).await??;
    ensure!(body.contains("hello from rkube busybox image"), "{body}");

    // pause (PID 1 of the shared PID namespace) reaps orphans: a background child of an exec
    // outlives its parent and must not stay a zombie.
    cri.exec_sync(
        &container,
        &["sh", "-c", "sleep 0.2 </dev/null >/dev/null 2>&1 &"],
        Duration::from_secs(5),
    )
    .await?;
    tokio::time::sleep(Duration::from_millis(700)).await;
    let ps = cri
        .exec_sync(
            &container,
            &[
                "sh",
                "-c",
                "for f in /proc/[0-9]*/stat; do cat $f; echo; done",
            ],
            Duration::from_secs(5),
        )
        .await?;
    let ps = String::from_utf8_lossy(&ps.stdout).into_owned();
    ensure!(
        ps.contains("(pause)"),
        "pause is not in the pod's PID namespace:\n{ps}"
    );
    ensure!(zombies(&ps).is_empty(), "zombies in the pod:\n{ps}");

    // Kill containerd: the supervisor restarts it, and the new one still has the pod.
    let old_pid = containerd
        .pid()
        .ok_or_else(|| anyhow!("no containerd pid"))?;
    let mut states = containerd.subscribe();
    let t = Instant::now();
    kill(i32::try_from(old_pid)?, libc::SIGKILL);
    let restarted = tokio::time::timeout(
        Duration::from_secs(30),
        states.wait_for(|s| matches!(s, ContainerdState::Running { pid, .. } if *pid != old_pid)),
    )
    .await
    .context("containerd was not restarted")??
    .clone();
    println!(
        "timing: containerd SIGKILL -> restarted and serving CRI in {:.1} ms ({restarted:?})",
        ms(t.elapsed())
    );
    ensure!(
        matches!(restarted, ContainerdState::Running { restarts: 1, .. }),
        "{restarted:?}"
    );
    let sandboxes = retry("ListPodSandbox after restart", || {
        cri.list_pod_sandbox(None)
    })
    .await?;
    ensure!(
        sandboxes
            .iter()
            .any(|s| s.id == sandbox && s.state == api::PodSandboxState::SandboxReady as i32),
        "sandbox lost across the restart: {sandboxes:?}"
    );
    let cs = retry("ContainerStatus after restart", || {
        cri.container_status(&container, false)
    })
    .await?;
    ensure!(
        cs.state == api::ContainerState::ContainerRunning as i32,
        "{cs:?}"
    );
    let out = cri
        .exec_sync(
            &container,
            &["cat", "/etc/hostname"],
            Duration::from_secs(5),
        )
        .await?;
    ensure!(out.stdout == b"web\n", "{out:?}");

    // The same socket as an external endpoint: a client, nothing supervised.
    let external = Runtime::start(
        RuntimeEndpoint::External(containerd.socket().to_owned()),
        Duration::from_secs(5),
    )
    .await?;
    ensure!(external.containerd().is_none());
    ensure!(external.client().version().await?.runtime_name == "containerd");
    external.shutdown().await;
    let filtered = cri
        .list_containers(Some(api::ContainerFilter {
            pod_sandbox_id: sandbox.clone(),
            ..Default::default()
        }))
        .await?;
    ensure!(
        filtered.len() == 1 && filtered[0].id == container,
        "{filtered:?}"
    );

    // Agent restart: the supervisor stops containerd, the pod keeps running without it, and a
    // new supervisor on the same data dir finds it again.
    let socket = containerd.socket().to_owned();
    let pod_pids = lab.cgroup_pids();
    runtime.shutdown().await;
    let down = RuntimeClient::lazy(&socket)
        .with_request_timeout(Duration::from_secs(1))
        .version()
        .await;
    ensure!(down.is_err(), "containerd still answers after shutdown");
    ensure!(
        !pod_pids.is_empty() && lab.cgroup_pids() == pod_pids,
        "pod processes changed while containerd was down: {pod_pids:?} -> {:?}",
        lab.cgroup_pids()
    );
    let t = Instant::now();
    let runtime = Runtime::start(
        RuntimeEndpoint::Supervised(Box::new(config.clone())),
        Duration::from_secs(30),
    )
    .await
    .context("start containerd again")?;
    println!(
        "timing: agent restart: containerd start + CRI ready + imports {:.1} ms",
        ms(t.elapsed())
    );
    let cri = runtime.client().clone();
    let containerd = runtime
        .containerd()
        .ok_or_else(|| anyhow!("no supervised containerd"))?;
    let sandboxes = retry("ListPodSandbox after agent restart", || {
        cri.list_pod_sandbox(None)
    })
    .await?;
    ensure!(
        sandboxes
            .iter()
            .any(|s| s.id == sandbox && s.state == api::PodSandboxState::SandboxReady as i32),
        "sandbox lost across the agent restart: {sandboxes:?}"
    );
    let cs = cri.container_status(&container, false).await?;
    ensure!(
        cs.state == api::ContainerState::ContainerRunning as i32,
        "{cs:?}"
    );
    let out = cri
        .exec_sync(
            &container,
            &["cat", "/etc/hostname"],
            Duration::from_secs(5),
        )
        .await?;
    ensure!(out.stdout == b"web\n", "{out:?}");
    let netns = lab.netns();
    let body = tokio::task::spawn_blocking(move || http_get_in_netns(&netns, addr)).await??;
    ensure!(body.contains("hello from rkube busybox image"), "{body}");

    // Teardown through CRI.
    let t = Instant::now();
    cri.stop_container(&container, Duration::from_secs(2))
        .await?;
    let t_stop = t.elapsed();
    let cs = cri.container_status(&container, false).await?;
    ensure!(
        cs.state == api::ContainerState::ContainerExited as i32,
        "{cs:?}"
    );
    cri.remove_container(&container).await?;
    let t = Instant::now();
    cri.stop_pod_sandbox(&sandbox).await?;
    let t_stop_pod = t.elapsed();
    cri.remove_pod_sandbox(&sandbox).await?;
    println!(
        "timing: StopContainer {:.1} ms, StopPodSandbox {:.1} ms",
        ms(t_stop),
        ms(t_stop_pod)
    );
    ensure!(cri.list_pod_sandbox(None).await?.is_empty());
    ensure!(cri.list_containers(None).await?.is_empty());
    let gone = cri.container_status(&container, false).await;
    ensure!(gone.as_ref().is_err_and(|e| e.is_not_found()), "{gone:?}");
    lab.remove_pod_cgroup(&uid);

    cri.remove_image(BUSYBOX).await?;
    ensure!(cri.image_status(BUSYBOX).await?.is_none());

    let lazy = RuntimeClient::lazy(containerd.socket());
    runtime.shutdown().await;
    let after = lazy
        .clone()
        .with_request_timeout(Duration::from_secs(1))
        .version()
        .await;
    ensure!(after.is_err(), "containerd still answers after shutdown");

    // Shims exit shortly after their last container is removed.
    let deadline = Instant::now() + Duration::from_secs(10);
    while !lab.runtime_pids().is_empty() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(())
}
