//! Node end-to-end (root, real containerd; skips otherwise, fails under
//! RKUBE_REQUIRE_ALL_TESTS): the QoS `oom_score_adj` the kernel sees in each class's
//! containers, and static pods — started from a manifest with no API server, mirrored once it
//! answers, kept when the mirror is deleted, replaced when the manifest changes, stopped when
//! it is removed.

mod lab;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::Api;
use kube::api::{DeleteParams, PostParams};
use kubelet::cri::api;
use kubelet::kuberuntime::LABEL_POD_NAME;
use lab::Lab;
use lab::node::{BUSYBOX, TestNode, container_id, phase, spawn_kubelet, wait_pod};

fn pod(name: &str, resources: serde_json::Value) -> Result<Pod> {
    Ok(serde_json::from_value(serde_json::json!({
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
        "spec": {"terminationGracePeriodSeconds": 1, "containers": [{
            "name": "c", "image": BUSYBOX, "command": ["sleep", "3600"],
            "resources": resources}]}}))?)
}

/// Whether this process may lower oom_score_adj (CAP_SYS_RESOURCE, bit 24 of CapEff).
fn has_cap_sys_resource() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("CapEff:"))
                .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        })
        .is_some_and(|caps| caps & (1 << 24) != 0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn qos_classes_get_upstream_oom_score_adj() -> Result<()> {
    lab::node::run_in_lab(async |lab: &Lab| {
        let node = TestNode::start(lab).await?;
        let pods = node.pods();
        let request = 256i64 << 20;
        let specs = [
            (
                "guaranteed",
                serde_json::json!({"limits": {"cpu": "100m", "memory": "256Mi"}}),
            ),
            (
                "burstable",
                serde_json::json!({"requests": {"memory": "256Mi"}}),
            ),
            ("besteffort", serde_json::json!({})),
        ];
        for (name, resources) in &specs {
            pods.create(&PostParams::default(), &pod(name, resources.clone())?)
                .await?;
        }
        let capacity = Api::<Node>::all(node.client.clone())
            .get(&node.cfg.node_name)
            .await?
            .status
            .and_then(|s| s.capacity)
            .and_then(|c| c.get("memory").cloned())
            .and_then(|q| kubelet::resources::parse_scaled(&q.0, 1))
            .context("node memory capacity")?;
        // Where root lacks CAP_SYS_RESOURCE, containerd (restrict_oom_score_adj) raises a
        // negative score to its own, which it inherited from this process.
        let own: i64 = std::fs::read_to_string("/proc/self/oom_score_adj")?
            .trim()
            .parse()?;
        let guaranteed = if has_cap_sys_resource() {
            -997
        } else {
            own.max(-997)
        };
        let burstable = (1000 - 1000 * request / capacity).clamp(3, 999);
        let want = HashMap::from([
            ("guaranteed", guaranteed),
            ("burstable", burstable),
            ("besteffort", 1000),
        ]);
        for (name, _) in &specs {
            let p = wait_pod(&pods, name, Duration::from_secs(60), "Running", |p| {
                phase(p) == "Running"
            })
            .await?;
            let id = container_id(&p, "c")?;
            let got: i64 = node
                .exec(&id, "cat /proc/1/oom_score_adj")
                .await?
                .trim()
                .parse()?;
            eprintln!("{name}: oom_score_adj {got}");
            ensure!(
                got == want[name],
                "{name}: oom_score_adj {got}, want {}",
                want[name]
            );
        }
        for (name, _) in &specs {
            pods.delete(name, &DeleteParams::default()).await?;
        }
        node.shutdown(lab).await
    })
    .await
}

/// The running containers of the pod named `name` in the runtime.
async fn running_containers(node: &TestNode, name: &str) -> Result<Vec<api::Container>> {
    let filter = api::ContainerFilter {
        label_selector: HashMap::from([(LABEL_POD_NAME.to_owned(), name.to_owned())]),
        ..Default::default()
    };
    Ok(node
        .cri
        .list_containers(Some(filter))
        .await?
        .into_iter()
        .filter(|c| c.state == api::ContainerState::ContainerRunning as i32)
        .collect())
}

/// Waits until the pod `name` runs exactly one container and returns its ID.
async fn wait_running(node: &TestNode, name: &str) -> Result<String> {
    let t = Instant::now();
    loop {
        let running = running_containers(node, name).await?;
        if let [c] = running.as_slice() {
            return Ok(c.id.clone());
        }
        if t.elapsed() > Duration::from_secs(60) {
            bail!("static pod {name}: running containers {running:?}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn manifest(command: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: web\n  labels: {{app: web}}\nspec:\n  \
         hostNetwork: true\n  terminationGracePeriodSeconds: 1\n  containers:\n  - name: c\n    \
         image: {BUSYBOX}\n    command: [sh, -c, '{command}']\n"
    )
}

fn annotation<'a>(p: &'a Pod, key: &str) -> Option<&'a str> {
    p.metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(key))
        .map(String::as_str)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn static_pods_run_from_manifests() -> Result<()> {
    lab::node::run_in_lab(async |lab: &Lab| {
        // The kubelet talks as system:node:<name>: NodeRestriction lets it make mirror pods.
        let mut node = TestNode::start_with(lab, true, |c| {
            c.file_check_frequency = Duration::from_secs(1);
        })
        .await?;
        let name = format!("web-{}", node.cfg.node_name);
        let pods = node.pods();

        // No API server: a kubelet whose server refuses every connection still runs it.
        node.stop_kubelet();
        std::fs::create_dir_all(&node.cfg.pod_manifest_path)?;
        let file = node.cfg.pod_manifest_path.join("web.yaml");
        std::fs::write(&file, manifest("exec sleep 3600"))?;
        let dead = kube::Config::new("https://127.0.0.1:1".parse()?);
        let t = Instant::now();
        let offline = spawn_kubelet(
            node.cfg.clone(),
            kubelet::kubelet::client(dead)?,
            node.cri.clone(),
        );
        let id = wait_running(&node, &name).await?;
        eprintln!(
            "static pod running without an API server after {:?}",
            t.elapsed()
        );
        ensure!(
            pods.get_opt(&name).await?.is_none(),
            "a mirror pod without a kubelet online"
        );
        drop(offline);

        // With the API server: the mirror pod appears, with the static pod's status.
        node.start_kubelet();
        let t = Instant::now();
        let mirror = wait_pod(
            &pods,
            &name,
            Duration::from_secs(60),
            "mirror Running",
            |p| phase(p) == "Running",
        )
        .await?;
        eprintln!(
            "mirror pod Running {:?} after the kubelet came online",
            t.elapsed()
        );
        let hash = annotation(&mirror, "kubernetes.io/config.hash").unwrap_or_default();
        ensure!(hash.len() == 32, "config.hash {hash:?}");
        ensure!(annotation(&mirror, "kubernetes.io/config.mirror") == Some(hash));
        ensure!(annotation(&mirror, "kubernetes.io/config.source") == Some("file"));
        ensure!(annotation(&mirror, "kubernetes.io/config.seen").is_some());
        let owner = mirror.metadata.owner_references.clone().unwrap_or_default();
        ensure!(
            owner.len() == 1 && owner[0].kind == "Node" && owner[0].name == node.cfg.node_name,
            "owner {owner:?}"
        );
        ensure!(
            container_id(&mirror, "c")? == id,
            "the running container was not adopted"
        );

        // Deleting the mirror through the API: a new mirror, the same container.
        let old_uid = mirror.metadata.uid.clone();
        pods.delete(&name, &DeleteParams::default()).await?;
        let again = wait_pod(&pods, &name, Duration::from_secs(30), "a new mirror", |p| {
            p.metadata.uid != old_uid && p.metadata.deletion_timestamp.is_none()
        })
        .await?;
        ensure!(annotation(&again, "kubernetes.io/config.mirror") == Some(hash));
        ensure!(
            wait_running(&node, &name).await? == id,
            "the static pod was restarted"
        );

        // A changed manifest replaces the pod and its mirror.
        std::fs::write(&file, manifest("exec sleep 3601"))?;
        let t = Instant::now();
        let changed = wait_pod(
            &pods,
            &name,
            Duration::from_secs(60),
            "the new version",
            |p| {
                annotation(p, "kubernetes.io/config.mirror").is_some_and(|h| h != hash)
                    && phase(p) == "Running"
            },
        )
        .await?;
        let new_id = container_id(&changed, "c")?;
        ensure!(new_id != id, "the container was not replaced");
        ensure!(wait_running(&node, &name).await? == new_id);
        eprintln!("changed manifest → new pod Running after {:?}", t.elapsed());

        // Removing the manifest stops the pod and deletes its mirror.
        std::fs::remove_file(&file)?;
        let t = Instant::now();
        loop {
            let gone = pods.get_opt(&name).await?.is_none()
                && running_containers(&node, &name).await?.is_empty();
            if gone {
                break;
            }
            ensure!(
                t.elapsed() < Duration::from_secs(60),
                "static pod not stopped"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        eprintln!(
            "manifest removed → pod stopped, mirror gone after {:?}",
            t.elapsed()
        );
        node.shutdown(lab).await
    })
    .await
}
