//! Which pod goes first, as upstream's `rankMemoryPressure`, `rankDiskPressure` and
//! `rankPIDPressure`: pods using more than they requested first (those without stats before
//! all), then lower priority, then the largest usage over the request (most processes for
//! PIDs).

use std::cmp::Ordering;
use std::collections::HashMap;

use k8s_openapi::api::core::v1::Pod;

use super::thresholds::Signal;
use crate::resources::{ContainerResources, parse_scaled};
use crate::stats::summary::PodStats;

/// A pod's usage of the resource being reclaimed, from its stats.
pub fn usage(signal: Signal, stats: &PodStats) -> Option<i64> {
    let v = match signal {
        Signal::MemoryAvailable => stats.memory.as_ref()?.working_set_bytes?,
        Signal::NodeFsAvailable => stats.ephemeral_storage.as_ref()?.used_bytes?,
        Signal::NodeFsInodesFree => stats.ephemeral_storage.as_ref()?.inodes_used?,
        // The image filesystem holds the containers' writable layers.
        Signal::ImageFsAvailable => stats
            .containers
            .iter()
            .filter_map(|c| c.rootfs.as_ref()?.used_bytes)
            .sum(),
        Signal::PidAvailable => stats.process_stats.as_ref()?.process_count?,
    };
    Some(i64::try_from(v).unwrap_or(i64::MAX))
}

/// The pod's request of the resource (sum over its containers; none for inodes and PIDs).
pub fn request(signal: Signal, pod: &Pod) -> i64 {
    let Some(spec) = pod.spec.as_ref() else {
        return 0;
    };
    match signal {
        Signal::MemoryAvailable => spec
            .containers
            .iter()
            .filter_map(|c| ContainerResources::of(c).memory_request)
            .sum(),
        Signal::NodeFsAvailable | Signal::ImageFsAvailable => spec
            .containers
            .iter()
            .filter_map(|c| {
                let r = c.resources.as_ref()?;
                let q = r
                    .requests
                    .as_ref()
                    .and_then(|m| m.get("ephemeral-storage"))
                    .or_else(|| r.limits.as_ref()?.get("ephemeral-storage"))?;
                parse_scaled(&q.0, 1)
            })
            .sum(),
        Signal::NodeFsInodesFree | Signal::PidAvailable => 0,
    }
}

fn priority(pod: &Pod) -> i32 {
    pod.spec.as_ref().and_then(|s| s.priority).unwrap_or(0)
}

/// Orders `pods` (with their stats by UID) so the first is the one to evict for `signal`.
pub fn rank(signal: Signal, pods: &mut [std::sync::Arc<Pod>], stats: &HashMap<String, PodStats>) {
    let usage_of = |p: &Pod| {
        let uid = p.metadata.uid.as_deref().unwrap_or_default();
        stats.get(uid).and_then(|s| usage(signal, s))
    };
    pods.sort_by(|a, b| {
        let (ua, ub) = (usage_of(a), usage_of(b));
        let by_usage = || match signal {
            Signal::PidAvailable => ub.cmp(&ua),
            _ => {
                let over = |p: &Pod, u: Option<i64>| u.unwrap_or(0) - request(signal, p);
                over(b, ub).cmp(&over(a, ua))
            }
        };
        // Pods without stats go first, as upstream (not for PIDs: that ranking has no
        // usage-over-request step).
        let no_stats = match (signal, ua.is_none(), ub.is_none()) {
            (Signal::PidAvailable, _, _) => Ordering::Equal,
            (_, true, false) => Ordering::Less,
            (_, false, true) => Ordering::Greater,
            _ => Ordering::Equal,
        };
        let exceeds = |p: &Pod, u: Option<i64>| u.is_some_and(|u| u > request(signal, p));
        let by_exceeding = if signal == Signal::PidAvailable {
            Ordering::Equal
        } else {
            exceeds(b, ub).cmp(&exceeds(a, ua))
        };
        no_stats
            .then(by_exceeding)
            .then(priority(a).cmp(&priority(b)))
            .then_with(by_usage)
    });
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::stats::summary::{MemoryStats, PodReference};
    use serde_json::json;

    fn pod(name: &str, priority: i32, memory_request: Option<&str>) -> Arc<Pod> {
        let resources = match memory_request {
            Some(m) => json!({"requests": {"memory": m}}),
            None => json!({}),
        };
        Arc::new(
            serde_json::from_value(json!({
                "metadata": {"name": name, "uid": name},
                "spec": {"priority": priority,
                    "containers": [{"name": "c", "resources": resources}]}}))
            .unwrap(),
        )
    }

    fn stats(name: &str, working_set: u64) -> (String, PodStats) {
        (
            name.to_owned(),
            PodStats {
                pod_ref: PodReference {
                    name: name.into(),
                    ..Default::default()
                },
                memory: Some(MemoryStats {
                    working_set_bytes: Some(working_set),
                    ..Default::default()
                }),
                ..Default::default()
            },
        )
    }

    fn names(pods: &[Arc<Pod>]) -> Vec<&str> {
        pods.iter()
            .map(|p| p.metadata.name.as_deref().unwrap_or_default())
            .collect()
    }

    #[test]
    fn memory_pressure_evicts_overusers_then_low_priority_then_the_largest() {
        let mut pods = vec![
            pod("guaranteed", 0, Some("100Mi")),
            pod("burstable-under", 0, Some("500Mi")),
            pod("besteffort-small", 0, None),
            pod("besteffort-big", 0, None),
            pod("besteffort-important", 1000, None),
            pod("no-stats", 1000, Some("1Gi")),
        ];
        let stats: HashMap<_, _> = [
            stats("guaranteed", 90 << 20),
            stats("burstable-under", 400 << 20),
            stats("besteffort-small", 10 << 20),
            stats("besteffort-big", 50 << 20),
            stats("besteffort-important", 500 << 20),
        ]
        .into_iter()
        .collect();
        rank(Signal::MemoryAvailable, &mut pods, &stats);
        assert_eq!(
            names(&pods),
            [
                "no-stats",
                "besteffort-big",
                "besteffort-small",
                "besteffort-important",
                "guaranteed",
                "burstable-under",
            ]
        );
    }
}
