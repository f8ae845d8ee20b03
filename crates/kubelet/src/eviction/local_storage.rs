//! Local storage limits (upstream's `localStorageEviction`, LocalStorageCapacityIsolation): a
//! pod whose emptyDir outgrows its `sizeLimit`, whose ephemeral storage outgrows the sum of
//! its containers' `ephemeral-storage` limits, or with a container whose writable layer and
//! logs outgrow that container's limit is evicted at once, whatever the node's thresholds.
//! Checked on every round of the eviction manager from the stats summary (volume usage as
//! the stats cache last walked it).

use k8s_openapi::api::core::v1::{Container, Pod};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

use crate::stats::summary::{FsStats, PodStats};

const EPHEMERAL_STORAGE: &str = "ephemeral-storage";

/// A quantity as `resource.Quantity.String()` prints it: binary suffixes stay binary
/// (`1.5Gi` is `1536Mi`), anything else decimal.
fn canonical(q: &Quantity) -> String {
    let v = common::quantity::value(&q.0);
    if q.0.trim_end().ends_with('i') {
        common::quantity::format_binary(v)
    } else {
        common::quantity::format_decimal(v, 0)
    }
}

fn used(fs: Option<&FsStats>) -> u64 {
    fs.and_then(|f| f.used_bytes).unwrap_or(0)
}

fn limit_of(c: &Container) -> Option<&Quantity> {
    c.resources
        .as_ref()?
        .limits
        .as_ref()?
        .get(EPHEMERAL_STORAGE)
}

/// The pod's ephemeral-storage limit as upstream's `PodLimits`: the containers' limits
/// summed, at least the largest init container's, plus the pod overhead; `None` when no
/// container sets one.
fn pod_limit(pod: &Pod) -> Option<i64> {
    let spec = pod.spec.as_ref()?;
    let value = |q: &Quantity| common::quantity::value(&q.0);
    let app: Vec<i64> = spec
        .containers
        .iter()
        .filter_map(limit_of)
        .map(value)
        .collect();
    let init: Vec<i64> = spec
        .init_containers
        .iter()
        .flatten()
        .filter_map(limit_of)
        .map(value)
        .collect();
    if app.is_empty() && init.is_empty() {
        return None;
    }
    let overhead = spec
        .overhead
        .as_ref()
        .and_then(|o| o.get(EPHEMERAL_STORAGE))
        .map_or(0, value);
    let sum: i64 = app.iter().sum();
    Some(sum.max(init.into_iter().max().unwrap_or(0)) + overhead)
}

/// Why the pod must go (upstream's eviction message), if it outgrew a local storage limit.
pub fn violation(pod: &Pod, stats: &PodStats) -> Option<String> {
    let spec = pod.spec.as_ref()?;
    // emptyDirLimitEviction: usage as the stats walked it, against a positive sizeLimit.
    for v in spec.volumes.iter().flatten() {
        let Some(limit) = v.empty_dir.as_ref().and_then(|e| e.size_limit.as_ref()) else {
            continue;
        };
        let size = common::quantity::value(&limit.0);
        let usage = stats
            .volume_stats
            .iter()
            .find(|s| s.name == v.name)
            .and_then(|s| s.fs.used_bytes);
        if let Some(u) = usage
            && size > 0
            && i64::try_from(u).unwrap_or(i64::MAX) > size
        {
            return Some(format!(
                "Usage of EmptyDir volume {:?} exceeds the limit {:?}. ",
                v.name,
                canonical(limit)
            ));
        }
    }
    // podEphemeralStorageLimitEviction: writable layers, logs and local volumes together.
    if let Some(limit) = pod_limit(pod) {
        let usage = used(stats.ephemeral_storage.as_ref());
        if i64::try_from(usage).unwrap_or(i64::MAX) > limit {
            return Some(format!(
                "Pod ephemeral local storage usage exceeds the total limit of containers {}. ",
                common::quantity::format_binary(limit)
            ));
        }
    }
    // containerEphemeralStorageLimitEviction: the container's logs and writable layer (the
    // layer is on the node's filesystem: containerd keeps images and layers under the
    // agent's data dir, no dedicated image filesystem).
    for cs in &stats.containers {
        let Some(c) = spec.containers.iter().find(|c| c.name == cs.name) else {
            continue;
        };
        let Some(limit) = limit_of(c) else { continue };
        let l = common::quantity::value(&limit.0);
        let usage = used(cs.logs.as_ref()) + used(cs.rootfs.as_ref());
        if l != 0 && i64::try_from(usage).unwrap_or(i64::MAX) > l {
            return Some(format!(
                "Container {} exceeded its local ephemeral storage limit {:?}. ",
                cs.name,
                canonical(limit)
            ));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::summary::{ContainerStats, VolumeStats};
    use serde_json::json;

    fn fs(used: u64) -> Option<FsStats> {
        Some(FsStats {
            used_bytes: Some(used),
            ..Default::default()
        })
    }

    fn pod(v: serde_json::Value) -> Pod {
        serde_json::from_value(v).unwrap()
    }

    const MI: u64 = 1 << 20;

    #[test]
    fn an_empty_dir_past_its_size_limit() {
        let p = pod(json!({"spec": {"containers": [{"name": "c"}], "volumes": [
            {"name": "cache", "emptyDir": {"sizeLimit": "1.5Gi"}},
            {"name": "scratch", "emptyDir": {"sizeLimit": "10Mi"}},
            {"name": "free", "emptyDir": {}}]}}));
        let stats = |scratch: u64| PodStats {
            volume_stats: [("cache", 1), ("scratch", scratch), ("free", 100 << 30)]
                .into_iter()
                .map(|(n, u)| VolumeStats {
                    name: n.into(),
                    fs: fs(u).unwrap_or_default(),
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        };
        assert_eq!(violation(&p, &stats(10 * MI)), None, "at the limit is fine");
        assert_eq!(
            violation(&p, &stats(10 * MI + 1)).as_deref(),
            Some("Usage of EmptyDir volume \"scratch\" exceeds the limit \"10Mi\". ")
        );
        // Not walked yet: nothing to go by.
        assert_eq!(violation(&p, &PodStats::default()), None);
        let p = pod(json!({"spec": {"containers": [{"name": "c"}], "volumes": [
            {"name": "scratch", "emptyDir": {"sizeLimit": "1.5Gi"}}]}}));
        assert_eq!(
            violation(&p, &stats(2 << 30)).as_deref(),
            Some("Usage of EmptyDir volume \"scratch\" exceeds the limit \"1536Mi\". ")
        );
    }

    #[test]
    fn pod_and_container_ephemeral_storage_limits() {
        let p = pod(json!({"spec": {"containers": [
            {"name": "a", "resources": {"limits": {"ephemeral-storage": "20Mi"}}},
            {"name": "b", "resources": {"limits": {"ephemeral-storage": "30Mi"}}}]}}));
        let stats = |pod_total: u64, a: u64| PodStats {
            ephemeral_storage: fs(pod_total),
            containers: vec![ContainerStats {
                name: "a".into(),
                rootfs: fs(a),
                logs: fs(1),
                ..Default::default()
            }],
            ..Default::default()
        };
        assert_eq!(violation(&p, &stats(50 * MI, 20 * MI - 1)), None);
        assert_eq!(
            violation(&p, &stats(50 * MI + 1, 0)).as_deref(),
            Some("Pod ephemeral local storage usage exceeds the total limit of containers 50Mi. ")
        );
        assert_eq!(
            violation(&p, &stats(21 * MI, 20 * MI)).as_deref(),
            Some("Container a exceeded its local ephemeral storage limit \"20Mi\". ")
        );
        // No limits at all: never evicted for its size.
        let free = pod(json!({"spec": {"containers": [{"name": "a"}]}}));
        assert_eq!(violation(&free, &stats(100 << 30, 100 << 30)), None);
    }
}
