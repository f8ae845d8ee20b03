//! Node end-to-end (root, real containerd; skips otherwise, fails under
//! RKUBE_REQUIRE_ALL_TESTS): container garbage collection on its own schedule. A container
//! that keeps exiting is restarted; the pod's worker alone keeps its two newest instances,
//! and the collector (every second here, upstream's default policy otherwise: one dead
//! instance per container) cuts the dead ones to one, while the pod's status keeps its
//! restart count and `lastState`.

mod lab;

use std::time::{Duration, Instant};

use anyhow::{Result, ensure};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{DeleteParams, PostParams};
use kubelet::cri::api;
use kubelet::kuberuntime::LABEL_POD_UID;
use lab::Lab;
use lab::node::{BUSYBOX, TestNode, phase};

fn restarts(p: &Pod) -> i32 {
    p.status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref())
        .and_then(|cs| cs.first())
        .map_or(0, |c| c.restart_count)
}

fn last_state_terminated(p: &Pod) -> bool {
    p.status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref())
        .and_then(|cs| cs.first())
        .and_then(|c| c.last_state.as_ref())
        .is_some_and(|l| l.terminated.is_some())
}

/// The pod's exited containers in the runtime.
async fn dead_instances(node: &TestNode, uid: &str) -> Result<usize> {
    Ok(node
        .cri
        .list_containers(None)
        .await?
        .into_iter()
        .filter(|c| c.labels.get(LABEL_POD_UID).map(String::as_str) == Some(uid))
        .filter(|c| c.state == api::ContainerState::ContainerExited as i32)
        .count())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_instances_are_cut_to_one_per_container() -> Result<()> {
    lab::node::run_in_lab(async |lab: &Lab| {
        let node = TestNode::start_with(lab, false, |c| {
            c.container_gc.period = Duration::from_secs(1);
        })
        .await?;
        let pods = node.pods();
        let pod: Pod = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "crashing"},
            "spec": {"terminationGracePeriodSeconds": 1, "containers": [{
                "name": "c", "image": BUSYBOX, "imagePullPolicy": "Never",
                "command": ["sh", "-c", "exit 3"]}]}}))?;
        let created = pods.create(&PostParams::default(), &pod).await?;
        let uid = created.metadata.uid.unwrap_or_default();

        // Back-off 10 s, then 20 s: the third instance has exited about 35 s in.
        let t = Instant::now();
        let mut seen_dead = Vec::new();
        let settled = loop {
            let p = pods.get("crashing").await?;
            let dead = dead_instances(&node, &uid).await?;
            seen_dead.push(dead);
            // Two restarts with no instance running: the worker alone would keep two dead.
            let running = p
                .status
                .as_ref()
                .and_then(|s| s.container_statuses.as_ref())
                .and_then(|cs| cs.first())
                .and_then(|c| c.state.as_ref())
                .is_some_and(|s| s.running.is_some());
            if restarts(&p) >= 2 && !running && dead == 1 && last_state_terminated(&p) {
                break p;
            }
            ensure!(
                t.elapsed() < Duration::from_secs(90),
                "dead instances not cut to one: restarts {}, dead over time {seen_dead:?}, phase {}",
                restarts(&p),
                phase(&p)
            );
            tokio::time::sleep(Duration::from_millis(500)).await;
        };
        println!(
            "restarts {} with one dead instance kept, {:.1?} in",
            restarts(&settled),
            t.elapsed()
        );
        // And it stays one through the next restart.
        tokio::time::sleep(Duration::from_secs(3)).await;
        let dead = dead_instances(&node, &uid).await?;
        ensure!(dead <= 1, "{dead} dead instances");
        pods.delete("crashing", &DeleteParams::default()).await?;
        node.shutdown(lab).await
    })
    .await
}
