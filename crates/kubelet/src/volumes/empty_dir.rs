//! `emptyDir` (pkg/volume/emptydir): a directory of the pod (mode 0777), or with
//! `medium: Memory` a tmpfs whose size is the smallest of `sizeLimit`, the pod's memory limit
//! and the node's allocatable memory (upstream's `calculateEmptyDirMemorySize`).

use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;

use futures::future::BoxFuture;
use k8s_openapi::api::core::v1::{Pod, Volume};

use super::{
    VolumeHost, VolumePlugin, fs_group, go_error, is_mount_point, mount_tmpfs, set_volume_ownership,
};
use crate::resources::{ContainerResources, parse_scaled};

pub struct EmptyDirPlugin;

impl VolumePlugin for EmptyDirPlugin {
    fn name(&self) -> &'static str {
        "kubernetes.io/empty-dir"
    }

    fn can_support(&self, v: &Volume) -> bool {
        v.empty_dir.is_some()
    }

    fn set_up<'a>(
        &'a self,
        host: &'a VolumeHost,
        pod: &'a Pod,
        v: &'a Volume,
        dir: &'a Path,
    ) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(async move {
            let src = v.empty_dir.clone().unwrap_or_default();
            let memory = src.medium.as_deref() == Some("Memory");
            // Set up once (later syncs find it in place); only then does fsGroup apply.
            let fresh = !dir.exists() || (memory && !is_mount_point(dir));
            match src.medium.as_deref().unwrap_or("") {
                "" => make_dir(dir)?,
                "Memory" => {
                    let limit = src.size_limit.as_ref().and_then(|q| parse_scaled(&q.0, 1));
                    let size = memory_size(pod, host.node_memory, limit);
                    mount_tmpfs(dir, Some(size)).map_err(|e| {
                        format!("mounting tmpfs at {}: {}", dir.display(), go_error(&e))
                    })?;
                }
                m if m.starts_with("HugePages") => {
                    return Err(format!(
                        "storage medium {m:?} is not supported on this node"
                    ));
                }
                other => return Err(format!("unknown storage medium {other:?}")),
            }
            if fresh && let Some(gid) = fs_group(pod) {
                set_volume_ownership(dir, gid, false);
            }
            Ok(())
        })
    }
}

/// Creates `dir` with permission bits 0777 (upstream's `setupDir`: chmod because of the
/// umask, and only when those bits differ, so fsGroup's setgid stays).
pub(crate) fn make_dir(dir: &Path) -> Result<(), String> {
    use std::os::unix::fs::MetadataExt as _;
    std::fs::create_dir_all(dir)
        .and_then(|()| std::fs::metadata(dir))
        .and_then(|m| {
            if m.mode() & 0o777 == 0o777 {
                Ok(())
            } else {
                let mode = m.mode() & 0o7000 | 0o777;
                std::fs::set_permissions(dir, std::fs::Permissions::from_mode(mode))
            }
        })
        .map_err(|e| format!("mkdir {}: {}", dir.display(), go_error(&e)))
}

/// The pod's memory limit as its cgroup gets it: the sum of its containers' limits (at least
/// the largest init container's), only when every container declares one.
fn pod_memory_limit(pod: &Pod) -> Option<i64> {
    let spec = pod.spec.as_ref()?;
    let mut sum = 0i64;
    for c in &spec.containers {
        sum = sum.saturating_add(ContainerResources::of(c).memory_limit?);
    }
    for c in spec.init_containers.iter().flatten() {
        sum = sum.max(ContainerResources::of(c).memory_limit?);
    }
    Some(sum)
}

/// The size of a memory-backed volume: node allocatable, lowered to the pod's memory limit,
/// lowered to the volume's own `sizeLimit` (each only when positive and smaller).
pub(crate) fn memory_size(pod: &Pod, node_memory: i64, size_limit: Option<i64>) -> i64 {
    let mut size = node_memory;
    for limit in [pod_memory_limit(pod), size_limit].into_iter().flatten() {
        if limit > 0 && limit <= size {
            size = limit;
        }
    }
    size
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn memory_volume_size() {
        let pod = |v: serde_json::Value| -> Pod { serde_json::from_value(v).unwrap_or_default() };
        let limited = pod(json!({"spec": {"containers": [
            {"name": "a", "resources": {"limits": {"memory": "64Mi"}}},
            {"name": "b", "resources": {"limits": {"memory": "64Mi"}}}]}}));
        let partial = pod(json!({"spec": {"containers": [
            {"name": "a", "resources": {"limits": {"memory": "64Mi"}}}, {"name": "b"}]}}));
        let gi = 1 << 30;
        assert_eq!(memory_size(&limited, gi, None), 128 << 20);
        assert_eq!(memory_size(&limited, gi, Some(1 << 20)), 1 << 20);
        assert_eq!(memory_size(&limited, gi, Some(2 * gi)), 128 << 20);
        assert_eq!(memory_size(&partial, gi, None), gi);
    }
}
