//! Node end-to-end (root, real containerd; skips otherwise, fails under
//! RKUBE_REQUIRE_ALL_TESTS): image garbage collection on its own schedule. With a policy no
//! disk can satisfy (collect from 1 % used down to 0 %, every second, no minimum age) an image
//! a container uses stays, the shortfall is reported as upstream's `FreeDiskSpaceFailed`
//! event on the Node (and, failing again, `ImageGCFailed`), and once the pod is gone its
//! image goes; the pause image stays. With `--image-maximum-gc-age` and thresholds the disk
//! is far from, an image goes once unused for that long, and not while a container uses it.

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

/// The message of the first event `reason` on the test's Node, waiting up to `wait`.
async fn node_event(node: &TestNode, reason: &str, wait: Duration) -> Result<String> {
    let events: Api<Event> = Api::namespaced(node.client.clone(), "default");
    let t = Instant::now();
    loop {
        let found = events
            .list(&Default::default())
            .await?
            .items
            .into_iter()
            .find(|e| {
                e.reason.as_deref() == Some(reason)
                    && e.involved_object.kind.as_deref() == Some("Node")
                    && e.involved_object.name.as_deref() == Some(node.cfg.node_name.as_str())
            });
        if let Some(e) = found {
            return Ok(e.message.unwrap_or_default());
        }
        ensure!(t.elapsed() < wait, "no {reason} event");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
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
            max_age: Duration::ZERO,
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
        // Failing twice in a row (a round a second): the kubelet's ImageGCFailed, the same error.
        let failed = node_event(&node, "ImageGCFailed", Duration::from_secs(30)).await?;
        // The amount differs from round to round as the disk's usage moves.
        ensure!(
            failed.starts_with(
                "Failed to garbage collect required amount of images. Attempted to free "
            ) && failed.ends_with(" bytes eligible to free."),
            "ImageGCFailed {failed:?}"
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn images_unused_past_the_maximum_age_are_collected() -> Result<()> {
    lab::node::run_in_lab(async |lab: &Lab| {
        const MAX_AGE: Duration = Duration::from_secs(4);
        // Thresholds no test disk reaches: only the age can collect anything.
        let node = TestNode::start_with(lab, false, |c| {
            c.image_gc = ImageGcPolicy {
                high_threshold_percent: 99,
                low_threshold_percent: 98,
                min_age: Duration::ZERO,
                max_age: MAX_AGE,
                period: Duration::from_secs(1),
            };
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
        // Rounds go by past the maximum age (and the kubelet's own): in use, it stays.
        tokio::time::sleep(3 * MAX_AGE).await;
        ensure!(
            has_image(&node, BUSYBOX).await?,
            "an image in use was collected for its age"
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
        let gone = Instant::now();
        while has_image(&node, BUSYBOX).await? {
            ensure!(
                gone.elapsed() < Duration::from_secs(30),
                "the image unused for longer than the maximum age was not collected"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        eprintln!(
            "image collected {:?} after its pod was gone (maximum age {MAX_AGE:?})",
            gone.elapsed()
        );
        ensure!(
            has_image(&node, kubelet::images::PAUSE_IMAGE).await?,
            "the pause image was collected"
        );
        node.shutdown(lab).await
    })
    .await
}
