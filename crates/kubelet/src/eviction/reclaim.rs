//! Node-level reclaim before evicting pods for disk pressure, as upstream's
//! `DeleteAllUnusedContainers` and image GC's `DeleteUnusedImages`: exited containers nobody
//! needs, then images no container uses.

use std::collections::HashSet;

use tracing::{debug, info};

use crate::cri::{RuntimeClient, api};
use crate::images::PAUSE_IMAGE;

/// Removes exited containers of sandboxes that are no longer ready, and in ready sandboxes
/// every exited instance but the newest of each container (kept for `lastState` and
/// `kubectl logs --previous`). Returns how many went.
pub async fn delete_dead_containers(cri: &RuntimeClient) -> anyhow::Result<usize> {
    let ready: HashSet<String> = cri
        .list_pod_sandbox(None)
        .await?
        .into_iter()
        .filter(|s| s.state == api::PodSandboxState::SandboxReady as i32)
        .map(|s| s.id)
        .collect();
    let mut exited: Vec<api::Container> = cri
        .list_containers(None)
        .await?
        .into_iter()
        .filter(|c| c.state == api::ContainerState::ContainerExited as i32)
        .collect();
    exited.sort_by_key(|c| std::cmp::Reverse(c.created_at));
    let mut kept: HashSet<(String, String)> = HashSet::new();
    let mut removed = 0;
    for c in exited {
        let name = c
            .metadata
            .as_ref()
            .map(|m| m.name.clone())
            .unwrap_or_default();
        let keep =
            ready.contains(&c.pod_sandbox_id) && kept.insert((c.pod_sandbox_id.clone(), name));
        if keep {
            continue;
        }
        match cri.remove_container(&c.id).await {
            Ok(()) => removed += 1,
            Err(e) => debug!(container = %c.id, error = %e, "cannot remove a dead container"),
        }
    }
    if removed > 0 {
        info!(removed, "removed dead containers to reclaim disk");
    }
    Ok(removed)
}

/// Removes images no container (running or not) uses, except pinned ones and the pause
/// image. Returns how many went.
pub async fn delete_unused_images(cri: &RuntimeClient) -> anyhow::Result<usize> {
    let used: HashSet<String> = cri
        .list_containers(None)
        .await?
        .into_iter()
        .flat_map(|c| [c.image_ref, c.image.map(|i| i.image).unwrap_or_default()])
        .filter(|s| !s.is_empty())
        .collect();
    let mut removed = 0;
    for image in cri.list_images(None).await? {
        let names = std::iter::once(&image.id)
            .chain(&image.repo_tags)
            .chain(&image.repo_digests);
        let in_use = names.clone().any(|n| used.contains(n));
        let pause = image.repo_tags.iter().any(|t| t == PAUSE_IMAGE);
        if in_use || pause || image.pinned {
            continue;
        }
        match cri.remove_image(&image.id).await {
            Ok(()) => removed += 1,
            Err(e) => debug!(image = %image.id, error = %e, "cannot remove an unused image"),
        }
    }
    if removed > 0 {
        info!(removed, "removed unused images to reclaim disk");
    }
    Ok(removed)
}
