//! Node end-to-end (root, real containerd; skips otherwise, fails under
//! RKUBE_REQUIRE_ALL_TESTS): image garbage collection on its own schedule. With a policy no
//! disk can satisfy (collect from 1 % used down to 0 %, every second, no minimum age) an image
//! a container uses stays, the shortfall is reported as upstream's `FreeDiskSpaceFailed`
//! event on the Node, and once the pod is gone its image goes; the pause image stays.

mod lab;

use std::time::{Duration, Instant};

use anyhow::{Result, ensure};
use k8s_openapi::api::core::v1::{Event, Pod};
use kube::Api;
use kube::api::{DeleteParams, PostParams};
use kubelet::image_gc::ImageGcPolicy;
use lab::Lab;
use lab::node::{BUSYBOX, TestNode, phase, wait_pod};

async fn has_image(node: &TestNode, tag: &str) -> Result<bool> {
    Ok(node
        .cri
        .list_images(None)
        .await?
        .iter()
        .any(|i| i.repo_tags.iter().any(|t| t == tag)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unused_images_are_collected_on_schedule() -> Result<()> {
    lab::node::run_in_lab(async |lab: &Lab| {
        // Collection off while the pod starts: its image must not go before it runs.
        let mut node = TestNode::start_with(lab, false, |c| {
            c.image_gc.high_threshold_percent = 100;
        })
        .await?;
        let pods = node.pods();
        let pod: Pod = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "user"},
            "spec": {"terminationGracePeriodSeconds": 1, "containers": [{
                "name": "c", "image": BUSYBOX, "imagePullPolicy": "Never",
                "command": ["sleep", "3600"]}]}}))?;
        pods.create(&PostParams::default(), &pod).await?;
        wait_pod(&pods, "user", Duration::from_secs(60), "Running", |p| {
            phase(p) == "Running"
        })
        .await?;

        node.stop_kubelet();
        node.cfg.image_gc = ImageGcPolicy {
            high_threshold_percent: 1,
            low_threshold_percent: 0,
            min_age: Duration::ZERO,
            period: Duration::from_secs(1),
        };
        node.start_kubelet();
        let events: Api<Event> = Api::namespaced(node.client.clone(), "default");
        let t = Instant::now();
        let message = loop {
            let found = events
                .list(&Default::default())
                .await?
                .items
                .into_iter()
                .find(|e| {
                    e.reason.as_deref() == Some("FreeDiskSpaceFailed")
                        && e.involved_object.kind.as_deref() == Some("Node")
                        && e.involved_object.name.as_deref() == Some(node.cfg.node_name.as_str())
                });
            if let Some(e) = found {
                break e.message.unwrap_or_default();
            }
            ensure!(
                t.elapsed() < Duration::from_secs(30),
                "no FreeDiskSpaceFailed event"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        };
        ensure!(
            message.starts_with(
                "Failed to garbage collect required amount of images. Attempted to free "
            ) && message.ends_with(" bytes eligible to free."),
            "{message:?}"
        );
        ensure!(
            has_image(&node, BUSYBOX).await?,
            "an image in use was collected"
        );

        pods.delete("user", &DeleteParams::default()).await?;
        let t = Instant::now();
        while pods.get_opt("user").await?.is_some() {
            ensure!(
                t.elapsed() < Duration::from_secs(30),
                "the pod was not deleted"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let t = Instant::now();
        while has_image(&node, BUSYBOX).await? {
            ensure!(
                t.elapsed() < Duration::from_secs(30),
                "the unused image was not collected"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        eprintln!(
            "unused image collected {:?} after its pod was gone",
            t.elapsed()
        );
        ensure!(
            has_image(&node, kubelet::images::PAUSE_IMAGE).await?,
            "the pause image was collected"
        );
        node.shutdown(lab).await
    })
    .await
}
