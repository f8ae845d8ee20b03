//! Node end-to-end (root, real containerd; skips otherwise, fails under
//! RKUBE_REQUIRE_ALL_TESTS): the eviction manager under real memory pressure. A hard
//! `memory.available` threshold 1 GiB below what the node has is crossed by a BestEffort pod
//! filling 2 GiB of a memory-backed emptyDir: MemoryPressure (and the controller's
//! `node.kubernetes.io/memory-pressure` taint) appear, the BestEffort pod is evicted and left
//! Failed/Evicted, the Guaranteed pod keeps running, and the condition and taint clear. And
//! while the node has MemoryPressure, a new BestEffort pod is refused (Failed/Evicted). Pods
//! past an emptyDir `sizeLimit` or their `ephemeral-storage` limits are evicted.

mod lab;

use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use k8s_openapi::api::core::v1::{Event, Node, Pod};
use kube::Api;
use kube::api::{DeleteParams, PostParams};
use kubelet::eviction::thresholds::parse_thresholds;
use kubelet::stats::{StatsConfig, StatsProvider};
use lab::Lab;
use lab::node::{BUSYBOX, TestNode, container_status, phase, wait_pod};

fn condition(n: &Node, type_: &str) -> String {
    n.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .and_then(|cs| cs.iter().find(|c| c.type_ == type_))
        .map(|c| c.status.clone())
        .unwrap_or_default()
}

fn tainted(n: &Node) -> bool {
    n.spec
        .as_ref()
        .and_then(|s| s.taints.as_ref())
        .is_some_and(|ts| {
            ts.iter()
                .any(|t| t.key == "node.kubernetes.io/memory-pressure")
        })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_pressure_evicts_best_effort_first() -> Result<()> {
    lab::node::run_in_lab(async |lab: &Lab| {
        let mut node = TestNode::start_with(lab, false, |c| {
            c.node_status_update_frequency = Duration::from_secs(1);
            // Pod stats (for the ranking and the message) within a second of the pod.
            c.housekeeping_interval = Duration::from_secs(1);
            c.eviction.monitoring_interval = Duration::from_secs(1);
            c.eviction.pressure_transition_period = Duration::from_secs(3);
            c.eviction.hard = Vec::new();
        })
        .await?;
        let pods = node.pods();
        let guaranteed: Pod = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "guaranteed"},
            "spec": {"terminationGracePeriodSeconds": 1, "containers": [{
                "name": "c", "image": BUSYBOX, "command": ["sleep", "3600"],
                "resources": {"limits": {"cpu": "100m", "memory": "64Mi"}}}]}}))?;
        pods.create(&PostParams::default(), &guaranteed).await?;
        wait_pod(
            &pods,
            "guaranteed",
            Duration::from_secs(60),
            "Running",
            |p| phase(p) == "Running",
        )
        .await?;

        // The threshold: 1 GiB below what the kubelet's own stats say is available now.
        let stats = StatsProvider::new(StatsConfig::from_kubelet(&node.cfg), node.cri.clone());
        let available = stats
            .summary(true)
            .await?
            .node
            .memory
            .and_then(|m| m.available_bytes)
            .context("node memory.available")?;
        let threshold = available.saturating_sub(1 << 30);
        eprintln!("memory.available {available}, threshold {threshold}");
        node.stop_kubelet();
        node.cfg.eviction.hard = parse_thresholds(&format!("memory.available<{threshold}"))?;
        node.start_kubelet();

        // The hog waits until its stats are collected (1 s housekeeping), so the ranking and
        // the message see its usage rather than no stats at all.
        let hog: Pod = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "besteffort"},
            "spec": {"terminationGracePeriodSeconds": 1,
                "volumes": [{"name": "m", "emptyDir": {"medium": "Memory", "sizeLimit": "3Gi"}}],
                "containers": [{
                "name": "hog", "image": BUSYBOX,
                "command": ["sh", "-c",
                    "sleep 3; dd if=/dev/zero of=/m/fill bs=1M count=2048 2>/dev/null; exec sleep 3600"],
                "volumeMounts": [{"name": "m", "mountPath": "/m"}]}]}}))?;
        let created = Instant::now();
        pods.create(&PostParams::default(), &hog).await?;

        let nodes: Api<Node> = Api::all(node.client.clone());
        let (mut pressure_seen, mut taint_seen) = (None, false);
        let evicted = loop {
            let n = nodes.get(&node.cfg.node_name).await?;
            if condition(&n, "MemoryPressure") == "True" && pressure_seen.is_none() {
                pressure_seen = Some(created.elapsed());
            }
            taint_seen |= tainted(&n);
            let p = pods.get("besteffort").await?;
            let reason = p.status.as_ref().and_then(|s| s.reason.clone());
            if phase(&p) == "Failed" && reason.as_deref() == Some("Evicted") {
                break p;
            }
            ensure!(
                created.elapsed() < Duration::from_secs(90),
                "not evicted: {:?}",
                p.status
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        eprintln!(
            "BestEffort pod evicted {:?} after creation (MemoryPressure seen at {pressure_seen:?})",
            created.elapsed()
        );
        let message = evicted
            .status
            .as_ref()
            .and_then(|s| s.message.clone())
            .unwrap_or_default();
        ensure!(
            message.starts_with("The node was low on resource: memory. Threshold quantity: ")
                && message.contains("Container hog was using "),
            "eviction message {message:?}"
        );
        let target = evicted
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .and_then(|cs| cs.iter().find(|c| c.type_ == "DisruptionTarget"))
            .map(|c| (c.status.clone(), c.reason.clone()));
        ensure!(
            target == Some(("True".into(), Some("TerminationByKubelet".into()))),
            "DisruptionTarget {target:?}"
        );
        // Killed at once (a hard threshold: no grace), its final state reported.
        wait_pod(
            &pods,
            "besteffort",
            Duration::from_secs(10),
            "terminated",
            |p| container_status(p).is_ok_and(|c| c.state.and_then(|s| s.terminated).is_some()),
        )
        .await?;
        let events: Api<Event> = Api::namespaced(node.client.clone(), "default");
        let evicted_event = events
            .list(&Default::default())
            .await?
            .items
            .into_iter()
            .any(|e| {
                e.reason.as_deref() == Some("Evicted")
                    && e.involved_object.name.as_deref() == Some("besteffort")
            });
        ensure!(evicted_event, "no Evicted event");

        // The memory came back: the condition (after the transition period) and taint clear.
        let t = Instant::now();
        loop {
            let n = nodes.get(&node.cfg.node_name).await?;
            if condition(&n, "MemoryPressure") == "True" && pressure_seen.is_none() {
                pressure_seen = Some(created.elapsed());
            }
            taint_seen |= tainted(&n);
            if pressure_seen.is_some() && condition(&n, "MemoryPressure") == "False" && !tainted(&n)
            {
                break;
            }
            ensure!(
                t.elapsed() < Duration::from_secs(60),
                "MemoryPressure seen at {pressure_seen:?}, not cleared"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        eprintln!(
            "MemoryPressure True {pressure_seen:?} after the pod's creation, cleared {:?} after \
             the eviction",
            t.elapsed()
        );
        ensure!(taint_seen, "the memory-pressure taint never appeared");
        let g = pods.get("guaranteed").await?;
        ensure!(phase(&g) == "Running", "the Guaranteed pod: {:?}", g.status);
        ensure!(container_status(&g)?.restart_count == 0);

        for name in ["guaranteed", "besteffort"] {
            pods.delete(name, &DeleteParams::default()).await?;
        }
        node.shutdown(lab).await
    })
    .await
}

/// While the node has MemoryPressure (a hard threshold every node meets: less than all of its
/// memory available), a BestEffort pod bound to it by name (no scheduler to heed the taint) is
/// refused by the kubelet — Failed, `Evicted`, upstream's message — and never started; a
/// Burstable pod is let in (and then evicted for the threshold, as any pod would be).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_pressure_refuses_new_best_effort_pods() -> Result<()> {
    lab::node::run_in_lab(async |lab: &Lab| {
        let node = TestNode::start_with(lab, false, |c| {
            c.node_status_update_frequency = Duration::from_secs(1);
            c.eviction.monitoring_interval = Duration::from_secs(1);
            c.eviction.hard = parse_thresholds("memory.available<100%").unwrap_or_default();
        })
        .await?;
        let nodes: Api<Node> = Api::all(node.client.clone());
        let t = Instant::now();
        while condition(&nodes.get(&node.cfg.node_name).await?, "MemoryPressure") != "True" {
            ensure!(t.elapsed() < Duration::from_secs(30), "no MemoryPressure");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let pods = node.pods();
        let pod = |name: &str, resources: serde_json::Value| -> Result<Pod> {
            Ok(serde_json::from_value(serde_json::json!({
                "metadata": {"name": name},
                "spec": {"nodeName": node.cfg.node_name, "terminationGracePeriodSeconds": 1,
                    "containers": [{"name": "c", "image": BUSYBOX,
                        "command": ["sleep", "3600"], "resources": resources}]}}))?)
        };
        pods.create(
            &PostParams::default(),
            &pod("besteffort", serde_json::json!({}))?,
        )
        .await?;
        let refused = wait_pod(
            &pods,
            "besteffort",
            Duration::from_secs(30),
            "Failed",
            |p| phase(p) == "Failed",
        )
        .await?;
        let status = refused.status.clone().unwrap_or_default();
        ensure!(
            status.reason.as_deref() == Some("Evicted")
                && status.message.as_deref()
                    == Some("Pod was rejected: The node had condition: [MemoryPressure]. ")
                && status.qos_class.as_deref() == Some("BestEffort"),
            "refused pod's status {status:?}"
        );
        ensure!(
            status.container_statuses.is_none(),
            "a refused pod's containers: {:?}",
            status.container_statuses
        );
        let events: Api<Event> = Api::namespaced(node.client.clone(), "default");
        let event = events
            .list(&Default::default())
            .await?
            .items
            .into_iter()
            .any(|e| {
                e.reason.as_deref() == Some("Evicted")
                    && e.involved_object.name.as_deref() == Some("besteffort")
                    && e.message.as_deref() == Some("The node had condition: [MemoryPressure]. ")
            });
        ensure!(event, "no Evicted event for the refused pod");

        let burstable = serde_json::json!({"requests": {"memory": "16Mi"}});
        pods.create(&PostParams::default(), &pod("burstable", burstable)?)
            .await?;
        let admitted = wait_pod(&pods, "burstable", Duration::from_secs(60), "Failed", |p| {
            phase(p) == "Failed"
        })
        .await?;
        let message = admitted.status.and_then(|s| s.message).unwrap_or_default();
        ensure!(
            message.starts_with("The node was low on resource: memory."),
            "the Burstable pod was not admitted then evicted: {message:?}"
        );
        for name in ["besteffort", "burstable"] {
            pods.delete(name, &DeleteParams::default()).await?;
        }
        node.shutdown(lab).await
    })
    .await
}

/// Local storage limits, whatever the node's thresholds (none here), as upstream's
/// `localStorageEviction`: a pod writing 8 MiB into an emptyDir with `sizeLimit: 4Mi`, a pod
/// writing 8 MiB into a plain emptyDir past its containers' `ephemeral-storage` limits
/// (4Mi), and a pod whose container writes 8 MiB into its writable layer past that
/// container's 4Mi limit (its sidecar's 100Mi keeps the pod's total above the usage) are
/// each evicted — Failed, `Evicted`, upstream's message, an `Evicted` event, no
/// DisruptionTarget condition — once the kubelet's stats see the usage (volumes walked when
/// the pod's stats first appear, then once a minute, as upstream's); a pod within its limits
/// keeps running.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_storage_limits_evict_their_pod() -> Result<()> {
    lab::node::run_in_lab(async |lab: &Lab| {
        let node = TestNode::start_with(lab, false, |c| {
            c.housekeeping_interval = Duration::from_secs(1);
            c.eviction.monitoring_interval = Duration::from_secs(1);
            c.eviction.hard = Vec::new();
        })
        .await?;
        let pods = node.pods();
        // The first container writes 8 MiB to `target` and sleeps (the file stays); the
        // optional second only sleeps.
        let pod = |name: &str,
                   target: &str,
                   empty_dir: serde_json::Value,
                   limit: Option<&str>,
                   sidecar_limit: Option<&str>| {
            let limits = |l: Option<&str>| match l {
                Some(l) => serde_json::json!({"limits": {"ephemeral-storage": l}}),
                None => serde_json::json!({}),
            };
            let mut containers = vec![serde_json::json!({"name": "c", "image": BUSYBOX,
                "command": ["sh", "-c", format!(
                    "dd if=/dev/zero of={target}/fill bs=1M count=8 2>/dev/null; exec sleep 3600")],
                "resources": limits(limit),
                "volumeMounts": [{"name": "scratch", "mountPath": "/scratch"}]})];
            if sidecar_limit.is_some() {
                containers.push(serde_json::json!({"name": "sidecar", "image": BUSYBOX,
                    "command": ["sleep", "3600"], "resources": limits(sidecar_limit)}));
            }
            serde_json::from_value::<Pod>(serde_json::json!({
                "metadata": {"name": name},
                "spec": {"terminationGracePeriodSeconds": 1,
                    "volumes": [{"name": "scratch", "emptyDir": empty_dir}],
                    "containers": containers}}))
        };
        let cases = [
            (
                "over-sizelimit",
                pod(
                    "over-sizelimit",
                    "/scratch",
                    serde_json::json!({"sizeLimit": "4Mi"}),
                    None,
                    None,
                )?,
                "Usage of EmptyDir volume \"scratch\" exceeds the limit \"4Mi\". ",
            ),
            (
                "over-pod-limit",
                pod(
                    "over-pod-limit",
                    "/scratch",
                    serde_json::json!({}),
                    Some("4Mi"),
                    None,
                )?,
                "Pod ephemeral local storage usage exceeds the total limit of containers 4Mi. ",
            ),
            (
                "over-container-limit",
                pod(
                    "over-container-limit",
                    "/tmp",
                    serde_json::json!({}),
                    Some("4Mi"),
                    Some("100Mi"),
                )?,
                "Container c exceeded its local ephemeral storage limit \"4Mi\". ",
            ),
        ];
        let within = pod(
            "within",
            "/scratch",
            serde_json::json!({"sizeLimit": "16Mi"}),
            Some("64Mi"),
            None,
        )?;
        pods.create(&PostParams::default(), &within).await?;
        let created = Instant::now();
        for (_, p, _) in &cases {
            pods.create(&PostParams::default(), p).await?;
        }
        let events: Api<Event> = Api::namespaced(node.client.clone(), "default");
        for (name, _, expected) in &cases {
            let p = wait_pod(&pods, name, Duration::from_secs(150), "Evicted", |p| {
                phase(p) == "Failed"
            })
            .await?;
            eprintln!("{name} evicted {:?} after creation", created.elapsed());
            let status = p.status.clone().unwrap_or_default();
            ensure!(
                status.reason.as_deref() == Some("Evicted")
                    && status.message.as_deref() == Some(*expected),
                "{name}'s status {status:?}"
            );
            ensure!(
                !status
                    .conditions
                    .iter()
                    .flatten()
                    .any(|c| c.type_ == "DisruptionTarget"),
                "{name}: a DisruptionTarget condition {:?}",
                status.conditions
            );
            wait_pod(&pods, name, Duration::from_secs(10), "terminated", |p| {
                container_status(p).is_ok_and(|c| c.state.and_then(|s| s.terminated).is_some())
            })
            .await?;
            // Events are written in the background (client-go's recorder too): the pod's
            // status may be read before its event is there.
            let waited = Instant::now();
            let (event, evicted) = loop {
                let evicted: Vec<(Option<String>, Option<String>)> = events
                    .list(&Default::default())
                    .await?
                    .items
                    .into_iter()
                    .filter(|e| e.reason.as_deref() == Some("Evicted"))
                    .map(|e| (e.involved_object.name, e.message))
                    .collect();
                let found = evicted
                    .iter()
                    .any(|(n, m)| n.as_deref() == Some(*name) && m.as_deref() == Some(*expected));
                if found || waited.elapsed() > Duration::from_secs(30) {
                    break (found, evicted);
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            };
            ensure!(
                event,
                "no Evicted event for {name}; Evicted events: {evicted:?}"
            );
        }
        let w = pods.get("within").await?;
        ensure!(
            phase(&w) == "Running",
            "the pod within its limits: {:?}",
            w.status
        );
        ensure!(container_status(&w)?.restart_count == 0);
        for name in [
            "over-sizelimit",
            "over-pod-limit",
            "over-container-limit",
            "within",
        ] {
            pods.delete(name, &DeleteParams::default()).await?;
        }
        node.shutdown(lab).await
    })
    .await
}
