//! The Summary API's types (`k8s.io/kubelet/pkg/apis/stats/v1alpha1`), serialized as upstream's
//! JSON: the same field names, optional fields left out when unset, times as `metav1.Time`
//! (RFC 3339 in UTC to the second, `null` for the zero time).

use k8s_openapi::jiff::Timestamp;
use k8s_openapi::serde::{Serialize, Serializer};

/// `metav1.Time`. Kept to the nanosecond in memory (the Prometheus endpoints use it); the JSON
/// form has seconds, as Go's.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct Time(pub Option<Timestamp>);

impl Time {
    pub fn now() -> Self {
        Time(Some(Timestamp::now()))
    }

    /// Go's `time.Unix(0, ns)` (so 0 is 1970, not the zero time).
    pub fn from_unix_nanos(ns: i64) -> Self {
        Time(Timestamp::from_nanosecond(i128::from(ns)).ok())
    }

    pub fn from_system(t: std::time::SystemTime) -> Self {
        Time(Timestamp::try_from(t).ok())
    }

    /// Milliseconds since the epoch (Prometheus sample timestamps); 0 for the zero time.
    pub fn unix_millis(&self) -> i64 {
        self.0.map_or(0, |t| t.as_millisecond())
    }

    /// Seconds since the epoch with the fraction (Go's `float64(t.UnixNano()) / 1e9`).
    pub fn unix_seconds_f64(&self) -> f64 {
        self.0.map_or(0.0, |t| t.as_nanosecond() as f64 / 1e9)
    }

    pub fn is_zero(&self) -> bool {
        self.0.is_none()
    }
}

impl Serialize for Time {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.0 {
            Some(t) => s.serialize_str(&t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()),
            None => s.serialize_none(),
        }
    }
}

/// The node and its pods.
#[derive(Serialize, Clone, Debug, Default, PartialEq)]
#[serde(crate = "k8s_openapi::serde")]
pub struct Summary {
    pub node: NodeStats,
    pub pods: Vec<PodStats>,
}

#[derive(Serialize, Clone, Debug, Default, PartialEq)]
#[serde(crate = "k8s_openapi::serde", rename_all = "camelCase")]
pub struct NodeStats {
    pub node_name: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub system_containers: Vec<ContainerStats>,
    pub start_time: Time,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpu: Option<CpuStats>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub memory: Option<MemoryStats>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub network: Option<NetworkStats>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fs: Option<FsStats>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub runtime: Option<RuntimeStats>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rlimit: Option<RlimitStats>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub swap: Option<SwapStats>,
}

#[derive(Serialize, Clone, Debug, Default, PartialEq)]
#[serde(crate = "k8s_openapi::serde")]
pub struct RlimitStats {
    pub time: Time,
    #[serde(rename = "maxpid", skip_serializing_if = "Option::is_none")]
    pub max_pid: Option<i64>,
    #[serde(rename = "curproc", skip_serializing_if = "Option::is_none")]
    pub num_of_running_processes: Option<i64>,
}

#[derive(Serialize, Clone, Debug, Default, PartialEq)]
#[serde(crate = "k8s_openapi::serde", rename_all = "camelCase")]
pub struct RuntimeStats {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image_fs: Option<FsStats>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub container_fs: Option<FsStats>,
}

#[derive(Serialize, Clone, Debug, Default, PartialEq)]
#[serde(crate = "k8s_openapi::serde")]
pub struct ProcessStats {
    #[serde(rename = "process_count", skip_serializing_if = "Option::is_none")]
    pub process_count: Option<u64>,
}

#[derive(Serialize, Clone, Debug, Default, PartialEq)]
#[serde(crate = "k8s_openapi::serde", rename_all = "camelCase")]
pub struct PodStats {
    pub pod_ref: PodReference,
    pub start_time: Time,
    pub containers: Vec<ContainerStats>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpu: Option<CpuStats>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub memory: Option<MemoryStats>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub network: Option<NetworkStats>,
    #[serde(rename = "volume", skip_serializing_if = "Vec::is_empty")]
    pub volume_stats: Vec<VolumeStats>,
    #[serde(rename = "ephemeral-storage", skip_serializing_if = "Option::is_none")]
    pub ephemeral_storage: Option<FsStats>,
    #[serde(rename = "process_stats", skip_serializing_if = "Option::is_none")]
    pub process_stats: Option<ProcessStats>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub swap: Option<SwapStats>,
}

#[derive(Serialize, Clone, Debug, Default, PartialEq)]
#[serde(crate = "k8s_openapi::serde", rename_all = "camelCase")]
pub struct ContainerStats {
    pub name: String,
    pub start_time: Time,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpu: Option<CpuStats>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub memory: Option<MemoryStats>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rootfs: Option<FsStats>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub logs: Option<FsStats>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub swap: Option<SwapStats>,
}

#[derive(Serialize, Clone, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[serde(crate = "k8s_openapi::serde")]
pub struct PodReference {
    pub name: String,
    pub namespace: String,
    pub uid: String,
}

#[derive(Serialize, Clone, Debug, Default, PartialEq)]
#[serde(crate = "k8s_openapi::serde", rename_all = "camelCase")]
pub struct InterfaceStats {
    /// Not optional upstream: an empty name when no default interface was found.
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rx_bytes: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rx_errors: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tx_bytes: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tx_errors: Option<u64>,
}

#[derive(Serialize, Clone, Debug, Default, PartialEq)]
#[serde(crate = "k8s_openapi::serde")]
pub struct NetworkStats {
    pub time: Time,
    /// The default interface (`eth0`), inlined as upstream's embedded struct.
    #[serde(flatten)]
    pub default: InterfaceStats,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub interfaces: Vec<InterfaceStats>,
}

#[derive(Serialize, Clone, Debug, Default, PartialEq)]
#[serde(crate = "k8s_openapi::serde", rename_all = "camelCase")]
pub struct CpuStats {
    pub time: Time,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub usage_nano_cores: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub usage_core_nano_seconds: Option<u64>,
}

#[derive(Serialize, Clone, Debug, Default, PartialEq)]
#[serde(crate = "k8s_openapi::serde", rename_all = "camelCase")]
pub struct MemoryStats {
    pub time: Time,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub available_bytes: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub usage_bytes: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub working_set_bytes: Option<u64>,
    #[serde(rename = "rssBytes", skip_serializing_if = "Option::is_none")]
    pub rss_bytes: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub page_faults: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub major_page_faults: Option<u64>,
}

#[derive(Serialize, Clone, Debug, Default, PartialEq)]
#[serde(crate = "k8s_openapi::serde", rename_all = "camelCase")]
pub struct SwapStats {
    pub time: Time,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub swap_available_bytes: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub swap_usage_bytes: Option<u64>,
}

#[derive(Serialize, Clone, Debug, Default, PartialEq)]
#[serde(crate = "k8s_openapi::serde", rename_all = "camelCase")]
pub struct VolumeStats {
    #[serde(flatten)]
    pub fs: FsStats,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pvc_ref: Option<PvcReference>,
}

#[derive(Serialize, Clone, Debug, Default, PartialEq)]
#[serde(crate = "k8s_openapi::serde")]
pub struct PvcReference {
    pub name: String,
    pub namespace: String,
}

#[derive(Serialize, Clone, Debug, Default, PartialEq)]
#[serde(crate = "k8s_openapi::serde", rename_all = "camelCase")]
pub struct FsStats {
    pub time: Time,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub available_bytes: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub capacity_bytes: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub used_bytes: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub inodes_free: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub inodes: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub inodes_used: Option<u64>,
}

/// The JSON body upstream writes (go-restful's pretty printing: one-space indent, no
/// trailing newline).
pub fn to_json(summary: &Summary) -> serde_json::Result<Vec<u8>> {
    let mut out = Vec::with_capacity(4096 + summary.pods.len() * 4096);
    let fmt = serde_json::ser::PrettyFormatter::with_indent(b" ");
    let mut ser = serde_json::Serializer::with_formatter(&mut out, fmt);
    summary.serialize(&mut ser)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn json(v: &impl Serialize) -> serde_json::Value {
        serde_json::to_value(v).unwrap_or_default()
    }

    #[test]
    fn field_names_are_upstreams() {
        let t = Time::from_unix_nanos(1_700_000_000_123_456_789);
        let fs = FsStats {
            time: t,
            available_bytes: Some(1),
            capacity_bytes: Some(2),
            used_bytes: Some(3),
            inodes_free: Some(4),
            inodes: Some(5),
            inodes_used: Some(6),
        };
        let summary = Summary {
            node: NodeStats {
                node_name: "n1".into(),
                system_containers: vec![ContainerStats {
                    name: "pods".into(),
                    start_time: t,
                    ..Default::default()
                }],
                start_time: t,
                cpu: Some(CpuStats {
                    time: t,
                    usage_nano_cores: Some(7),
                    usage_core_nano_seconds: Some(8),
                }),
                memory: Some(MemoryStats {
                    time: t,
                    available_bytes: Some(1),
                    usage_bytes: Some(2),
                    working_set_bytes: Some(3),
                    rss_bytes: Some(4),
                    page_faults: Some(5),
                    major_page_faults: Some(6),
                }),
                network: Some(NetworkStats {
                    time: t,
                    default: InterfaceStats {
                        name: "eth0".into(),
                        rx_bytes: Some(1),
                        rx_errors: Some(0),
                        tx_bytes: Some(2),
                        tx_errors: Some(0),
                    },
                    interfaces: vec![InterfaceStats {
                        name: "eth0".into(),
                        ..Default::default()
                    }],
                }),
                fs: Some(fs.clone()),
                runtime: Some(RuntimeStats {
                    image_fs: Some(fs.clone()),
                    container_fs: Some(fs.clone()),
                }),
                rlimit: Some(RlimitStats {
                    time: t,
                    max_pid: Some(4_194_304),
                    num_of_running_processes: Some(300),
                }),
                swap: Some(SwapStats {
                    time: t,
                    swap_available_bytes: Some(0),
                    swap_usage_bytes: Some(0),
                }),
            },
            pods: vec![PodStats {
                pod_ref: PodReference {
                    name: "p".into(),
                    namespace: "default".into(),
                    uid: "u".into(),
                },
                start_time: t,
                containers: vec![ContainerStats {
                    name: "c".into(),
                    start_time: t,
                    rootfs: Some(fs.clone()),
                    logs: Some(fs.clone()),
                    ..Default::default()
                }],
                volume_stats: vec![VolumeStats {
                    fs: fs.clone(),
                    name: "data".into(),
                    pvc_ref: None,
                }],
                ephemeral_storage: Some(fs.clone()),
                process_stats: Some(ProcessStats {
                    process_count: Some(1),
                }),
                ..Default::default()
            }],
        };
        let v = json(&summary);
        let node = &v["node"];
        let keys = |v: &serde_json::Value| -> Vec<String> {
            v.as_object()
                .map(|o| o.keys().cloned().collect())
                .unwrap_or_default()
        };
        assert_eq!(
            keys(node),
            [
                "nodeName",
                "systemContainers",
                "startTime",
                "cpu",
                "memory",
                "network",
                "fs",
                "runtime",
                "rlimit",
                "swap"
            ]
        );
        assert_eq!(node["startTime"], "2023-11-14T22:13:20Z");
        assert_eq!(
            keys(&node["cpu"]),
            ["time", "usageNanoCores", "usageCoreNanoSeconds"]
        );
        assert_eq!(
            keys(&node["memory"]),
            [
                "time",
                "availableBytes",
                "usageBytes",
                "workingSetBytes",
                "rssBytes",
                "pageFaults",
                "majorPageFaults"
            ]
        );
        assert_eq!(
            keys(&node["network"]),
            [
                "time",
                "name",
                "rxBytes",
                "rxErrors",
                "txBytes",
                "txErrors",
                "interfaces"
            ]
        );
        assert_eq!(
            keys(&node["fs"]),
            [
                "time",
                "availableBytes",
                "capacityBytes",
                "usedBytes",
                "inodesFree",
                "inodes",
                "inodesUsed"
            ]
        );
        assert_eq!(keys(&node["runtime"]), ["imageFs", "containerFs"]);
        assert_eq!(keys(&node["rlimit"]), ["time", "maxpid", "curproc"]);
        assert_eq!(
            keys(&node["swap"]),
            ["time", "swapAvailableBytes", "swapUsageBytes"]
        );
        // Unset optional fields are left out, as Go's omitempty does.
        assert_eq!(keys(&node["systemContainers"][0]), ["name", "startTime"]);
        let pod = &v["pods"][0];
        assert_eq!(
            keys(pod),
            [
                "podRef",
                "startTime",
                "containers",
                "volume",
                "ephemeral-storage",
                "process_stats"
            ]
        );
        assert_eq!(keys(&pod["podRef"]), ["name", "namespace", "uid"]);
        assert_eq!(pod["process_stats"]["process_count"], 1);
        assert_eq!(
            keys(&pod["containers"][0]),
            ["name", "startTime", "rootfs", "logs"]
        );
        assert_eq!(
            keys(&pod["volume"][0]),
            [
                "time",
                "availableBytes",
                "capacityBytes",
                "usedBytes",
                "inodesFree",
                "inodes",
                "inodesUsed",
                "name"
            ]
        );
    }

    #[test]
    fn times_are_metav1_times() {
        assert_eq!(json(&Time::default()), serde_json::Value::Null);
        assert_eq!(json(&Time::from_unix_nanos(0)), "1970-01-01T00:00:00Z");
        let t = Time::from_unix_nanos(1_500_000_000_999_000_000);
        assert_eq!(json(&t), "2017-07-14T02:40:00Z");
        assert_eq!(t.unix_millis(), 1_500_000_000_999);
    }

    #[test]
    fn json_is_indented_like_go_restful() {
        let body = to_json(&Summary::default()).unwrap_or_default();
        let text = String::from_utf8(body).unwrap_or_default();
        assert!(
            text.starts_with("{\n \"node\": {\n  \"nodeName\": \"\",\n  \"startTime\": null"),
            "{text}"
        );
        assert!(text.ends_with("\n \"pods\": []\n}"), "{text}");
    }
}
