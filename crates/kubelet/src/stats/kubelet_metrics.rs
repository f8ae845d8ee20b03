//! `/metrics`: the kubelet's own registry, for the figures rkube has — upstream's volume stats
//! collector (each claim mounted here once, by its namespace and name) over the pods the
//! summary would list, their volumes as housekeeping last measured them (upstream's
//! fsResourceAnalyzer cache), the PLEG's `kubelet_running_pods` and
//! `kubelet_running_containers` (counted from CRI's sandbox and container lists), and
//! `kubelet_node_name`. A scrape builds no summary: no cgroup, log or filesystem is read.
//! HELP texts carry component-base's stability prefix.

use std::collections::{BTreeMap, HashSet};

use super::collect::RuntimeView;
use super::prometheus::{Family, Kind, render as render_families};
use super::summary::VolumeStats;
use crate::cri::api;

/// What the runtime runs, as upstream's PLEG counts it at each relist.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RuntimeCounts {
    /// Pods (by UID) with a ready sandbox.
    pub running_pods: u64,
    /// Every container by upstream's state name (`created`, `running`, `exited`, `unknown`).
    pub containers: BTreeMap<&'static str, u64>,
}

/// kubecontainer's state name of a CRI container state (`toKubeContainerState`).
fn state_name(state: i32) -> &'static str {
    match api::ContainerState::try_from(state) {
        Ok(api::ContainerState::ContainerCreated) => "created",
        Ok(api::ContainerState::ContainerRunning) => "running",
        Ok(api::ContainerState::ContainerExited) => "exited",
        _ => "unknown",
    }
}

impl RuntimeCounts {
    pub fn of(view: &RuntimeView) -> Self {
        let ready = api::PodSandboxState::SandboxReady as i32;
        let pods: HashSet<&str> = view
            .sandboxes
            .iter()
            .filter(|s| s.state == ready)
            .filter_map(|s| Some(s.metadata.as_ref()?.uid.as_str()))
            .collect();
        let mut containers = BTreeMap::new();
        for (state, n) in &view.container_states {
            *containers.entry(state_name(*state)).or_default() += n;
        }
        RuntimeCounts {
            running_pods: pods.len() as u64,
            containers,
        }
    }
}

/// The UIDs of the pods the summary lists (a live sandbox with a running container), by
/// namespace, name and UID (for the pods of one claim, all in its namespace, the summary's
/// own order): whose claims `/metrics` reports, the first pod's figures for
/// a claim several mount.
pub fn summary_pods(view: &RuntimeView) -> Vec<&str> {
    let with_containers: HashSet<&str> = view
        .containers
        .iter()
        .map(|c| c.pod_sandbox_id.as_str())
        .collect();
    let mut pods: Vec<(&str, &str, &str)> = view
        .sandboxes
        .iter()
        .filter(|s| with_containers.contains(s.id.as_str()))
        .filter_map(|s| {
            let m = s.metadata.as_ref()?;
            Some((m.namespace.as_str(), m.name.as_str(), m.uid.as_str()))
        })
        .collect();
    pods.sort_unstable();
    pods.dedup();
    pods.into_iter().map(|(_, _, uid)| uid).collect()
}

/// The exposition; a `None` part (its source failed) leaves its families out, as upstream's
/// volume collector does when ListPodStats fails. `claims` are the claim volumes of
/// [`summary_pods`], in that order.
pub fn render(
    node_name: &str,
    claims: Option<&[VolumeStats]>,
    runtime: Option<&RuntimeCounts>,
) -> String {
    let mut node = Family::new(
        "kubelet_node_name",
        "[ALPHA] The node's name. The count is always 1.",
        Kind::Gauge,
    );
    node.push(vec![("node", node_name.to_owned())], 1.0, None);
    let mut families = vec![node];
    if let Some(rt) = runtime {
        let mut pods = Family::new(
            "kubelet_running_pods",
            "[ALPHA] Number of pods that have a running pod sandbox",
            Kind::Gauge,
        );
        pods.push(Vec::new(), rt.running_pods as f64, None);
        let mut containers = Family::new(
            "kubelet_running_containers",
            "[ALPHA] Number of containers currently running",
            Kind::Gauge,
        );
        for (state, n) in &rt.containers {
            containers.push(
                vec![("container_state", (*state).to_owned())],
                *n as f64,
                None,
            );
        }
        families.extend([pods, containers]);
    }
    if let Some(claims) = claims {
        families.extend(volume_families(claims));
    }
    render_families(families)
}

/// Upstream's `volumeStatsCollector`: the volumes with a claim, the first pod's figures for
/// a claim several pods mount.
fn volume_families(volumes: &[VolumeStats]) -> Vec<Family> {
    let gauge = |name, help: &str| Family::new(name, format!("[ALPHA] {help}"), Kind::Gauge);
    let mut f = [
        gauge(
            "kubelet_volume_stats_capacity_bytes",
            "Capacity in bytes of the volume",
        ),
        gauge(
            "kubelet_volume_stats_available_bytes",
            "Number of available bytes in the volume",
        ),
        gauge(
            "kubelet_volume_stats_used_bytes",
            "Number of used bytes in the volume",
        ),
        gauge(
            "kubelet_volume_stats_inodes",
            "Maximum number of inodes in the volume",
        ),
        gauge(
            "kubelet_volume_stats_inodes_free",
            "Number of free inodes in the volume",
        ),
        gauge(
            "kubelet_volume_stats_inodes_used",
            "Number of used inodes in the volume",
        ),
        gauge(
            "kubelet_volume_stats_health_status_abnormal",
            "Abnormal volume health status. The count is either 1 or 0. 1 indicates the volume is unhealthy, 0 indicates volume is healthy",
        ),
    ];
    let mut seen = HashSet::new();
    for v in volumes {
        let Some(pvc) = &v.pvc_ref else {
            continue;
        };
        if !seen.insert((pvc.namespace.as_str(), pvc.name.as_str())) {
            continue;
        }
        let labels = || {
            vec![
                ("namespace", pvc.namespace.clone()),
                ("persistentvolumeclaim", pvc.name.clone()),
            ]
        };
        let fs = &v.fs;
        let values = [
            fs.capacity_bytes,
            fs.available_bytes,
            fs.used_bytes,
            fs.inodes,
            fs.inodes_free,
            fs.inodes_used,
            // No volume health source (CSI's NodeGetVolumeStats condition): a measured
            // volume is reported healthy.
            Some(0),
        ];
        for (family, value) in f.iter_mut().zip(values) {
            if let Some(value) = value {
                family.push(labels(), value as f64, None);
            }
        }
    }
    f.into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::summary::{FsStats, PvcReference, VolumeStats};

    fn claim_volume(name: &str, ns: &str, claim: Option<&str>, capacity: u64) -> VolumeStats {
        VolumeStats {
            fs: FsStats {
                capacity_bytes: Some(capacity),
                available_bytes: Some(capacity / 2),
                used_bytes: Some(capacity / 4),
                inodes: Some(100),
                inodes_free: Some(90),
                inodes_used: Some(10),
                ..Default::default()
            },
            name: name.into(),
            pvc_ref: claim.map(|c| PvcReference {
                name: c.into(),
                namespace: ns.into(),
            }),
        }
    }

    #[test]
    fn claims_node_and_runtime_as_upstream_prints_them() {
        let claims = [
            claim_volume("cache", "shop", None, 1 << 20),
            claim_volume("www", "shop", Some("www-web-0"), 8 << 20),
            // The same claim in a second pod: reported once, with the first's figures.
            claim_volume("www", "shop", Some("www-web-0"), 4 << 20),
        ];
        let rt = RuntimeCounts {
            running_pods: 2,
            containers: BTreeMap::from([("exited", 1), ("running", 3)]),
        };
        let text = render("n1", Some(&claims), Some(&rt));
        let labels = "{namespace=\"shop\",persistentvolumeclaim=\"www-web-0\"}";
        assert_eq!(
            text,
            format!(
                "# HELP kubelet_node_name [ALPHA] The node's name. The count is always 1.\n\
                 # TYPE kubelet_node_name gauge\n\
                 kubelet_node_name{{node=\"n1\"}} 1\n\
                 # HELP kubelet_running_containers [ALPHA] Number of containers currently running\n\
                 # TYPE kubelet_running_containers gauge\n\
                 kubelet_running_containers{{container_state=\"exited\"}} 1\n\
                 kubelet_running_containers{{container_state=\"running\"}} 3\n\
                 # HELP kubelet_running_pods [ALPHA] Number of pods that have a running pod sandbox\n\
                 # TYPE kubelet_running_pods gauge\n\
                 kubelet_running_pods 2\n\
                 # HELP kubelet_volume_stats_available_bytes [ALPHA] Number of available bytes in the volume\n\
                 # TYPE kubelet_volume_stats_available_bytes gauge\n\
                 kubelet_volume_stats_available_bytes{labels} 4.194304e+06\n\
                 # HELP kubelet_volume_stats_capacity_bytes [ALPHA] Capacity in bytes of the volume\n\
                 # TYPE kubelet_volume_stats_capacity_bytes gauge\n\
                 kubelet_volume_stats_capacity_bytes{labels} 8.388608e+06\n\
                 # HELP kubelet_volume_stats_health_status_abnormal [ALPHA] Abnormal volume health status. The count is either 1 or 0. 1 indicates the volume is unhealthy, 0 indicates volume is healthy\n\
                 # TYPE kubelet_volume_stats_health_status_abnormal gauge\n\
                 kubelet_volume_stats_health_status_abnormal{labels} 0\n\
                 # HELP kubelet_volume_stats_inodes [ALPHA] Maximum number of inodes in the volume\n\
                 # TYPE kubelet_volume_stats_inodes gauge\n\
                 kubelet_volume_stats_inodes{labels} 100\n\
                 # HELP kubelet_volume_stats_inodes_free [ALPHA] Number of free inodes in the volume\n\
                 # TYPE kubelet_volume_stats_inodes_free gauge\n\
                 kubelet_volume_stats_inodes_free{labels} 90\n\
                 # HELP kubelet_volume_stats_inodes_used [ALPHA] Number of used inodes in the volume\n\
                 # TYPE kubelet_volume_stats_inodes_used gauge\n\
                 kubelet_volume_stats_inodes_used{labels} 10\n\
                 # HELP kubelet_volume_stats_used_bytes [ALPHA] Number of used bytes in the volume\n\
                 # TYPE kubelet_volume_stats_used_bytes gauge\n\
                 kubelet_volume_stats_used_bytes{labels} 2.097152e+06\n"
            )
        );
        // Without the runtime's lists: the node's name alone.
        assert_eq!(
            render("n1", None, None),
            "# HELP kubelet_node_name [ALPHA] The node's name. The count is always 1.\n\
             # TYPE kubelet_node_name gauge\n\
             kubelet_node_name{node=\"n1\"} 1\n"
        );
    }

    #[test]
    fn claims_are_of_the_pods_the_summary_lists_in_its_order() {
        let sandbox = |id: &str, ns: &str, name: &str, uid: &str| api::PodSandbox {
            id: id.into(),
            metadata: Some(api::PodSandboxMetadata {
                name: name.into(),
                uid: uid.into(),
                namespace: ns.into(),
                attempt: 0,
            }),
            state: api::PodSandboxState::SandboxReady as i32,
            ..Default::default()
        };
        let container = |sandbox: &str| api::Container {
            id: format!("c-{sandbox}"),
            pod_sandbox_id: sandbox.into(),
            state: api::ContainerState::ContainerRunning as i32,
            ..Default::default()
        };
        let view = RuntimeView {
            sandboxes: vec![
                sandbox("s1", "shop", "web-1", "a"),
                sandbox("s2", "shop", "reader", "z"),
                sandbox("s3", "default", "web-0", "m"),
                // No running container: not in the summary, nor its claims.
                sandbox("s4", "default", "idle", "b"),
            ],
            containers: vec![container("s1"), container("s2"), container("s3")],
            container_states: BTreeMap::new(),
            stats: None,
            image_fs: None,
        };
        assert_eq!(summary_pods(&view), ["m", "z", "a"]);
    }

    #[test]
    fn container_states_are_kubecontainers_names() {
        let c = |s: api::ContainerState| s as i32;
        let view = RuntimeView {
            sandboxes: Vec::new(),
            containers: Vec::new(),
            container_states: BTreeMap::from([
                (c(api::ContainerState::ContainerCreated), 1),
                (c(api::ContainerState::ContainerRunning), 2),
                (c(api::ContainerState::ContainerExited), 3),
                (c(api::ContainerState::ContainerUnknown), 4),
                (42, 1),
            ]),
            stats: None,
            image_fs: None,
        };
        let counts = RuntimeCounts::of(&view);
        assert_eq!(
            counts.containers,
            BTreeMap::from([
                ("created", 1),
                ("exited", 3),
                ("running", 2),
                ("unknown", 5)
            ])
        );
        assert_eq!(counts.running_pods, 0);
    }
}
