//! Server-side printing: `kubectl get` asks for a `meta.k8s.io/v1` Table and prints the
//! columns the server defines, so each kind shows what Kubernetes shows for it.

use serde_json::{Value, json};

use crate::meta::{self, human_age};
use crate::resources::ResourceInfo;

mod hpa;
mod less_common;
mod node;

/// What each row carries besides its cells (`includeObject`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum IncludeObject {
    None,
    Metadata,
    Object,
}

impl IncludeObject {
    pub fn parse(s: Option<&str>) -> Self {
        match s {
            Some("None") => IncludeObject::None,
            Some("Object") => IncludeObject::Object,
            _ => IncludeObject::Metadata,
        }
    }
}

struct Column {
    name: &'static str,
    kind: &'static str,
    format: &'static str,
    priority: u8,
}

const fn col(name: &'static str, priority: u8) -> Column {
    Column {
        name,
        kind: "string",
        format: "",
        priority,
    }
}

const NAME: Column = Column {
    name: "Name",
    kind: "string",
    format: "name",
    priority: 0,
};

fn columns(info: &ResourceInfo) -> Vec<Column> {
    if let Some(columns) = less_common::columns(info) {
        return columns;
    }
    match (info.group, info.kind) {
        ("", "Pod") => vec![
            NAME,
            col("Ready", 0),
            col("Status", 0),
            Column {
                kind: "integer",
                ..col("Restarts", 0)
            },
            col("Age", 0),
            col("IP", 1),
            col("Node", 1),
            col("Nominated Node", 1),
            col("Readiness Gates", 1),
        ],
        ("", "Namespace") => vec![NAME, col("Status", 0), col("Age", 0)],
        ("", "ConfigMap") => vec![
            NAME,
            Column {
                kind: "integer",
                ..col("Data", 0)
            },
            col("Age", 0),
        ],
        ("", "Secret") => vec![
            NAME,
            col("Type", 0),
            Column {
                kind: "integer",
                ..col("Data", 0)
            },
            col("Age", 0),
        ],
        ("", "Service") => vec![
            NAME,
            col("Type", 0),
            col("Cluster-IP", 0),
            col("External-IP", 0),
            col("Port(s)", 0),
            col("Age", 0),
            col("Selector", 1),
        ],
        ("", "Node") => vec![
            NAME,
            col("Status", 0),
            col("Roles", 0),
            col("Age", 0),
            col("Version", 0),
            col("Internal-IP", 1),
            col("External-IP", 1),
            col("OS-Image", 1),
            col("Kernel-Version", 1),
            col("Container-Runtime", 1),
        ],
        ("apps", "Deployment") => vec![
            NAME,
            col("Ready", 0),
            Column {
                kind: "integer",
                ..col("Up-to-date", 0)
            },
            Column {
                kind: "integer",
                ..col("Available", 0)
            },
            col("Age", 0),
            col("Containers", 1),
            col("Images", 1),
            col("Selector", 1),
        ],
        ("apps", "ReplicaSet") | ("", "ReplicationController") => vec![
            NAME,
            Column {
                kind: "integer",
                ..col("Desired", 0)
            },
            Column {
                kind: "integer",
                ..col("Current", 0)
            },
            Column {
                kind: "integer",
                ..col("Ready", 0)
            },
            col("Age", 0),
            col("Containers", 1),
            col("Images", 1),
            col("Selector", 1),
        ],
        ("batch", "Job") => vec![
            NAME,
            col("Status", 0),
            col("Completions", 0),
            col("Duration", 0),
            col("Age", 0),
            col("Containers", 1),
            col("Images", 1),
            col("Selector", 1),
        ],
        ("batch", "CronJob") => vec![
            NAME,
            col("Schedule", 0),
            col("Timezone", 0),
            col("Suspend", 0),
            col("Active", 0),
            col("Last Schedule", 0),
            col("Age", 0),
            col("Containers", 1),
            col("Images", 1),
            col("Selector", 1),
        ],
        ("apps", "DaemonSet") => vec![
            NAME,
            col("Desired", 0),
            col("Current", 0),
            col("Ready", 0),
            col("Up-to-date", 0),
            col("Available", 0),
            col("Node Selector", 0),
            col("Age", 0),
            col("Containers", 1),
            col("Images", 1),
            col("Selector", 1),
        ],
        ("apps", "StatefulSet") => vec![
            NAME,
            col("Ready", 0),
            col("Age", 0),
            col("Containers", 1),
            col("Images", 1),
        ],
        ("", "Endpoints") => vec![NAME, col("Endpoints", 0), col("Age", 0)],
        ("", "ServiceAccount") => vec![NAME, col("Secrets", 0), col("Age", 0)],
        ("admissionregistration.k8s.io", _) => vec![
            NAME,
            Column {
                kind: "integer",
                ..col("Webhooks", 0)
            },
            col("Age", 0),
        ],
        ("", "ResourceQuota") => vec![NAME, col("Age", 0), col("Request", 0), col("Limit", 0)],
        ("", "PersistentVolumeClaim") => vec![
            NAME,
            col("Status", 0),
            col("Volume", 0),
            col("Capacity", 0),
            col("Access Modes", 0),
            col("StorageClass", 0),
            col("VolumeAttributesClass", 0),
            col("Age", 0),
            col("VolumeMode", 1),
        ],
        ("", "PersistentVolume") => vec![
            NAME,
            col("Capacity", 0),
            col("Access Modes", 0),
            col("Reclaim Policy", 0),
            col("Status", 0),
            col("Claim", 0),
            col("StorageClass", 0),
            col("VolumeAttributesClass", 0),
            col("Reason", 0),
            col("Age", 0),
            col("VolumeMode", 1),
        ],
        ("", "Event") => vec![
            col("Last Seen", 0),
            col("Type", 0),
            col("Reason", 0),
            col("Object", 0),
            col("Message", 0),
        ],
        ("networking.k8s.io", "Ingress") => vec![
            NAME,
            col("Class", 0),
            col("Hosts", 0),
            col("Address", 0),
            col("Ports", 0),
            col("Age", 0),
        ],
        ("coordination.k8s.io", "Lease") => vec![NAME, col("Holder", 0), col("Age", 0)],
        ("scheduling.k8s.io", "PriorityClass") => vec![
            NAME,
            col("Value", 0),
            col("Global-Default", 0),
            col("Age", 0),
            col("PreemptionPolicy", 0),
        ],
        ("rbac.authorization.k8s.io", "RoleBinding" | "ClusterRoleBinding") => vec![
            NAME,
            col("Role", 0),
            col("Age", 0),
            col("Users", 1),
            col("Groups", 1),
            col("ServiceAccounts", 1),
        ],
        ("autoscaling", "HorizontalPodAutoscaler") => vec![
            NAME,
            col("Reference", 0),
            col("Targets", 0),
            col("MinPods", 0),
            col("MaxPods", 0),
            col("Replicas", 0),
            col("Age", 0),
        ],
        _ => vec![
            NAME,
            Column {
                kind: "string",
                format: "date",
                ..col("Created At", 0)
            },
        ],
    }
}

fn strs(obj: &Value, ptr: &str, field: &str) -> Vec<String> {
    obj.pointer(ptr)
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .map(|x| s(x.get(field)))
                .filter(|x| !x.is_empty())
                .collect()
        })
        .unwrap_or_default()
}

fn job_status(obj: &Value) -> String {
    let conds = obj
        .pointer("/status/conditions")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let has = |t: &str| {
        conds.iter().any(|c| {
            c.get("type").and_then(Value::as_str) == Some(t)
                && c.get("status").and_then(Value::as_str) == Some("True")
        })
    };
    if has("Complete") {
        "Complete".into()
    } else if has("Failed") {
        "Failed".into()
    } else if obj.pointer("/metadata/deletionTimestamp").is_some() {
        "Terminating".into()
    } else if has("Suspended") {
        "Suspended".into()
    } else {
        "Running".into()
    }
}

fn s(v: Option<&Value>) -> String {
    match v {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        _ => String::new(),
    }
}

fn int(obj: &Value, ptr: &str) -> i64 {
    obj.pointer(ptr).and_then(Value::as_i64).unwrap_or(0)
}

fn or_none(v: String) -> String {
    if v.is_empty() { "<none>".into() } else { v }
}

fn len_of(obj: &Value, key: &str) -> usize {
    obj.get(key)
        .and_then(Value::as_object)
        .map_or(0, |m| m.len())
}

fn access_modes(modes: Option<&Value>) -> String {
    modes
        .and_then(Value::as_array)
        .map(|m| {
            m.iter()
                .filter_map(Value::as_str)
                .map(|x| match x {
                    "ReadWriteOnce" => "RWO",
                    "ReadOnlyMany" => "ROX",
                    "ReadWriteMany" => "RWX",
                    "ReadWriteOncePod" => "RWOP",
                    other => other,
                })
                .collect::<Vec<_>>()
                .join(",")
        })
        .unwrap_or_default()
}

fn selector_string(sel: Option<&Value>) -> String {
    or_none(crate::selector::selector_string(sel))
}

fn containers_and_images(obj: &Value) -> (String, String) {
    let cs = obj
        .pointer("/spec/template/spec/containers")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let names: Vec<String> = cs.iter().map(|c| s(c.get("name"))).collect();
    let images: Vec<String> = cs.iter().map(|c| s(c.get("image"))).collect();
    (names.join(","), images.join(","))
}

/// The STATUS column of a pod, as kubectl's printer derives it.
fn pod_status(obj: &Value) -> (String, i64, usize, usize) {
    let status = &obj["status"];
    let mut reason = s(status.get("reason"));
    if reason.is_empty() {
        reason = s(status.get("phase"));
    }
    let statuses = status
        .get("containerStatuses")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let total = obj
        .pointer("/spec/containers")
        .and_then(Value::as_array)
        .map_or(0, Vec::len);
    let mut ready = 0;
    let mut restarts = 0;
    for c in statuses.iter().rev() {
        restarts += c.get("restartCount").and_then(Value::as_i64).unwrap_or(0);
        if let Some(r) = c.pointer("/state/waiting/reason").and_then(Value::as_str) {
            reason = r.into();
        } else if let Some(t) = c.pointer("/state/terminated") {
            reason = match t.get("reason").and_then(Value::as_str) {
                Some(r) => r.into(),
                None => format!("ExitCode:{}", s(t.get("exitCode"))),
            };
        } else if c.get("ready").and_then(Value::as_bool) == Some(true) {
            ready += 1;
        }
    }
    if obj.pointer("/metadata/deletionTimestamp").is_some() {
        reason = "Terminating".into();
    }
    (reason, restarts, ready, total)
}

fn cells(info: &ResourceInfo, obj: &Value) -> Vec<Value> {
    let name = json!(meta::name(obj));
    let age = json!(human_age(meta::str_at(obj, "/metadata/creationTimestamp")));
    if let Some(cells) = less_common::cells(info, obj, &name, &age) {
        return cells;
    }
    match (info.group, info.kind) {
        ("", "Pod") => {
            let (status, restarts, ready, total) = pod_status(obj);
            vec![
                name,
                json!(format!("{ready}/{total}")),
                json!(status),
                json!(restarts),
                age,
                json!(or_none(s(obj.pointer("/status/podIP")))),
                json!(or_none(s(obj.pointer("/spec/nodeName")))),
                json!(or_none(s(obj.pointer("/status/nominatedNodeName")))),
                json!("<none>"),
            ]
        }
        ("", "Namespace") => vec![name, json!(s(obj.pointer("/status/phase"))), age],
        ("", "ConfigMap") => vec![
            name,
            json!(len_of(obj, "data") + len_of(obj, "binaryData")),
            age,
        ],
        ("", "Secret") => vec![
            name,
            json!(s(obj.get("type"))),
            json!(len_of(obj, "data")),
            age,
        ],
        ("", "Service") => {
            let ports: Vec<String> = obj
                .pointer("/spec/ports")
                .and_then(Value::as_array)
                .map(|ps| {
                    ps.iter()
                        .map(|p| {
                            let proto = p.get("protocol").and_then(Value::as_str).unwrap_or("TCP");
                            match p.get("nodePort") {
                                Some(np) => format!("{}:{}/{proto}", s(p.get("port")), s(Some(np))),
                                None => format!("{}/{proto}", s(p.get("port"))),
                            }
                        })
                        .collect()
                })
                .unwrap_or_default();
            let external: Vec<String> = obj
                .pointer("/status/loadBalancer/ingress")
                .and_then(Value::as_array)
                .map(|i| i.iter().map(|x| s(x.get("ip"))).collect())
                .unwrap_or_default();
            let typ = s(obj.pointer("/spec/type"));
            let external = match (external.is_empty(), typ.as_str()) {
                (false, _) => external.join(","),
                (true, "LoadBalancer") => "<pending>".into(),
                _ => "<none>".into(),
            };
            vec![
                name,
                json!(typ),
                json!(or_none(s(obj.pointer("/spec/clusterIP")))),
                json!(external),
                json!(or_none(ports.join(","))),
                age,
                json!(selector_string(obj.pointer("/spec/selector"))),
            ]
        }
        ("", "Node") => {
            let status = node::status(obj);
            let roles: Vec<String> = obj
                .pointer("/metadata/labels")
                .and_then(Value::as_object)
                .map(|l| {
                    l.keys()
                        .filter_map(|k| {
                            k.strip_prefix("node-role.kubernetes.io/")
                                .map(str::to_string)
                        })
                        .collect()
                })
                .unwrap_or_default();
            let addr = |t: &str| {
                obj.pointer("/status/addresses")
                    .and_then(Value::as_array)
                    .and_then(|a| {
                        a.iter()
                            .find(|x| x.get("type").and_then(Value::as_str) == Some(t))
                    })
                    .map(|x| s(x.get("address")))
                    .unwrap_or_default()
            };
            vec![
                name,
                json!(status),
                json!(or_none(roles.join(","))),
                age,
                json!(s(obj.pointer("/status/nodeInfo/kubeletVersion"))),
                json!(or_none(addr("InternalIP"))),
                json!(or_none(addr("ExternalIP"))),
                json!(s(obj.pointer("/status/nodeInfo/osImage"))),
                json!(s(obj.pointer("/status/nodeInfo/kernelVersion"))),
                json!(s(obj.pointer("/status/nodeInfo/containerRuntimeVersion"))),
            ]
        }
        ("apps", "Deployment") => {
            let (c, i) = containers_and_images(obj);
            vec![
                name,
                json!(format!(
                    "{}/{}",
                    int(obj, "/status/readyReplicas"),
                    int(obj, "/spec/replicas")
                )),
                json!(int(obj, "/status/updatedReplicas")),
                json!(int(obj, "/status/availableReplicas")),
                age,
                json!(c),
                json!(i),
                json!(selector_string(obj.pointer("/spec/selector"))),
            ]
        }
        ("apps", "ReplicaSet") | ("", "ReplicationController") => {
            let (c, i) = containers_and_images(obj);
            vec![
                name,
                json!(int(obj, "/spec/replicas")),
                json!(int(obj, "/status/replicas")),
                json!(int(obj, "/status/readyReplicas")),
                age,
                json!(c),
                json!(i),
                json!(selector_string(obj.pointer("/spec/selector"))),
            ]
        }
        ("batch", "Job") => {
            let (c, i) = containers_and_images(obj);
            let completions = match obj.pointer("/spec/completions").and_then(Value::as_i64) {
                Some(n) => format!("{}/{n}", int(obj, "/status/succeeded")),
                None => format!(
                    "{}/1 of {}",
                    int(obj, "/status/succeeded"),
                    int(obj, "/spec/parallelism").max(1)
                ),
            };
            let duration = match (
                meta::str_at(obj, "/status/startTime").and_then(meta::age_seconds),
                meta::str_at(obj, "/status/completionTime").and_then(meta::age_seconds),
            ) {
                (Some(start), Some(end)) => format!("{}s", start - end),
                (Some(start), None) => format!("{start}s"),
                _ => String::new(),
            };
            vec![
                name,
                json!(job_status(obj)),
                json!(completions),
                json!(duration),
                age,
                json!(c),
                json!(i),
                json!(selector_string(obj.pointer("/spec/selector"))),
            ]
        }
        ("batch", "CronJob") => {
            let t = obj
                .pointer("/spec/jobTemplate")
                .cloned()
                .unwrap_or_default();
            let (c, i) =
                containers_and_images(&json!({"spec": t.get("spec").cloned().unwrap_or_default()}));
            vec![
                name,
                json!(s(obj.pointer("/spec/schedule"))),
                json!(or_none(s(obj.pointer("/spec/timeZone")))),
                json!(
                    obj.pointer("/spec/suspend")
                        .and_then(Value::as_bool)
                        .unwrap_or(false)
                        .to_string()
                        .replace("true", "True")
                        .replace("false", "False")
                ),
                json!(
                    obj.pointer("/status/active")
                        .and_then(Value::as_array)
                        .map_or(0, Vec::len)
                ),
                json!(
                    meta::str_at(obj, "/status/lastScheduleTime")
                        .map_or("<none>".to_string(), |t| human_age(Some(t)))
                ),
                age,
                json!(c),
                json!(i),
                json!("<none>"),
            ]
        }
        ("apps", "DaemonSet") => {
            let (c, i) = containers_and_images(obj);
            let node_selector = obj
                .pointer("/spec/template/spec/nodeSelector")
                .and_then(Value::as_object)
                .map(|m| {
                    m.iter()
                        .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
                        .collect::<Vec<_>>()
                        .join(",")
                })
                .unwrap_or_default();
            vec![
                name,
                json!(int(obj, "/status/desiredNumberScheduled")),
                json!(int(obj, "/status/currentNumberScheduled")),
                json!(int(obj, "/status/numberReady")),
                json!(int(obj, "/status/updatedNumberScheduled")),
                json!(int(obj, "/status/numberAvailable")),
                json!(or_none(node_selector)),
                age,
                json!(c),
                json!(i),
                json!(selector_string(obj.pointer("/spec/selector"))),
            ]
        }
        ("apps", "StatefulSet") => {
            let (c, i) = containers_and_images(obj);
            vec![
                name,
                json!(format!(
                    "{}/{}",
                    int(obj, "/status/readyReplicas"),
                    int(obj, "/spec/replicas")
                )),
                age,
                json!(c),
                json!(i),
            ]
        }
        ("", "Endpoints") => {
            let mut eps = Vec::new();
            for subset in obj
                .get("subsets")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                let ports: Vec<String> = strs(subset, "/ports", "port");
                for ip in strs(subset, "/addresses", "ip") {
                    if ports.is_empty() {
                        eps.push(ip.clone());
                    }
                    for p in &ports {
                        eps.push(format!("{ip}:{p}"));
                    }
                }
            }
            let shown = if eps.len() > 3 {
                format!("{} + {} more...", eps[..3].join(","), eps.len() - 3)
            } else {
                eps.join(",")
            };
            vec![name, json!(or_none(shown)), age]
        }
        ("", "ResourceQuota") => {
            // `resource: used/hard` for each hard limit, `limits.*` in their own column.
            let hard = common::quota::parse_list(obj.pointer("/status/hard"));
            let used = common::quota::parse_list(obj.pointer("/status/used"));
            let (mut request, mut limit) = (Vec::new(), Vec::new());
            for (r, h) in &hard {
                let u = used
                    .get(r)
                    .copied()
                    .unwrap_or(common::quota::Quantity::ZERO);
                let column = if r.split('.').next() == Some("limits") && r.contains('.') {
                    &mut limit
                } else {
                    &mut request
                };
                column.push(format!("{r}: {u}/{h}"));
            }
            vec![
                name,
                age,
                json!(request.join(", ")),
                json!(limit.join(", ")),
            ]
        }
        ("admissionregistration.k8s.io", _) => vec![
            name,
            json!(
                obj.get("webhooks")
                    .and_then(Value::as_array)
                    .map_or(0, Vec::len)
            ),
            age,
        ],
        ("", "ServiceAccount") => vec![
            name,
            json!(
                obj.get("secrets")
                    .and_then(Value::as_array)
                    .map_or(0, Vec::len)
            ),
            age,
        ],
        ("", "PersistentVolumeClaim") => vec![
            name,
            json!(s(obj.pointer("/status/phase"))),
            json!(s(obj.pointer("/spec/volumeName"))),
            json!(s(obj.pointer("/status/capacity/storage"))),
            json!(access_modes(obj.pointer("/status/accessModes"))),
            json!(or_none(s(obj.pointer("/spec/storageClassName")))),
            json!("<unset>"),
            age,
            json!(s(obj.pointer("/spec/volumeMode"))),
        ],
        ("", "PersistentVolume") => {
            let claim = match (
                meta::str_at(obj, "/spec/claimRef/namespace"),
                meta::str_at(obj, "/spec/claimRef/name"),
            ) {
                (Some(ns), Some(n)) => format!("{ns}/{n}"),
                _ => String::new(),
            };
            vec![
                name,
                json!(s(obj.pointer("/spec/capacity/storage"))),
                json!(access_modes(obj.pointer("/spec/accessModes"))),
                json!(s(obj.pointer("/spec/persistentVolumeReclaimPolicy"))),
                json!(s(obj.pointer("/status/phase"))),
                json!(claim),
                json!(s(obj.pointer("/spec/storageClassName"))),
                json!("<unset>"),
                json!(s(obj.pointer("/status/reason"))),
                age,
                json!(s(obj.pointer("/spec/volumeMode"))),
            ]
        }
        ("", "Event") => {
            let last = meta::str_at(obj, "/lastTimestamp")
                .or_else(|| meta::str_at(obj, "/eventTime"))
                .or_else(|| meta::str_at(obj, "/metadata/creationTimestamp"));
            let object = format!(
                "{}/{}",
                s(obj.pointer("/involvedObject/kind")).to_ascii_lowercase(),
                s(obj.pointer("/involvedObject/name"))
            );
            vec![
                json!(human_age(last)),
                json!(s(obj.get("type"))),
                json!(s(obj.get("reason"))),
                json!(object),
                json!(s(obj.get("message")).trim().to_string()),
            ]
        }
        ("networking.k8s.io", "Ingress") => {
            let hosts = strs(obj, "/spec/rules", "host");
            let addr = strs(obj, "/status/loadBalancer/ingress", "ip");
            let tls = obj
                .pointer("/spec/tls")
                .and_then(Value::as_array)
                .is_some_and(|t| !t.is_empty());
            vec![
                name,
                json!(or_none(s(obj.pointer("/spec/ingressClassName")))),
                json!(if hosts.is_empty() {
                    "*".to_string()
                } else {
                    hosts.join(",")
                }),
                json!(addr.join(",")),
                json!(if tls { "80, 443" } else { "80" }),
                age,
            ]
        }
        ("coordination.k8s.io", "Lease") => {
            vec![name, json!(s(obj.pointer("/spec/holderIdentity"))), age]
        }
        ("scheduling.k8s.io", "PriorityClass") => vec![
            name,
            json!(int(obj, "/value")),
            json!(
                obj.get("globalDefault")
                    .and_then(Value::as_bool)
                    .unwrap_or(false)
            ),
            age,
            json!(s(obj.get("preemptionPolicy"))),
        ],
        ("rbac.authorization.k8s.io", "RoleBinding" | "ClusterRoleBinding") => {
            let of_kind = |k: &str| -> String {
                obj.get("subjects")
                    .and_then(Value::as_array)
                    .map(|ss| {
                        ss.iter()
                            .filter(|x| x.get("kind").and_then(Value::as_str) == Some(k))
                            .map(|x| match (k, x.get("namespace").and_then(Value::as_str)) {
                                ("ServiceAccount", Some(ns)) => {
                                    format!("{ns}/{}", s(x.get("name")))
                                }
                                _ => s(x.get("name")),
                            })
                            .collect::<Vec<_>>()
                            .join(", ")
                    })
                    .unwrap_or_default()
            };
            vec![
                name,
                json!(format!(
                    "{}/{}",
                    s(obj.pointer("/roleRef/kind")),
                    s(obj.pointer("/roleRef/name"))
                )),
                age,
                json!(of_kind("User")),
                json!(of_kind("Group")),
                json!(of_kind("ServiceAccount")),
            ]
        }
        ("autoscaling", "HorizontalPodAutoscaler") => vec![
            name,
            json!(format!(
                "{}/{}",
                s(obj.pointer("/spec/scaleTargetRef/kind")),
                s(obj.pointer("/spec/scaleTargetRef/name"))
            )),
            json!(hpa::targets(obj)),
            json!(hpa::min_pods(obj)),
            json!(int(obj, "/spec/maxReplicas")),
            json!(int(obj, "/status/currentReplicas")),
            age,
        ],
        _ => vec![name, json!(s(obj.pointer("/metadata/creationTimestamp")))],
    }
}

fn row(info: &ResourceInfo, obj: &Value, include: IncludeObject) -> Value {
    let mut r = json!({"cells": cells(info, obj)});
    match include {
        IncludeObject::None => {}
        IncludeObject::Metadata => {
            r["object"] = json!({
                "kind": "PartialObjectMetadata",
                "apiVersion": "meta.k8s.io/v1",
                "metadata": obj.get("metadata").cloned().unwrap_or_default(),
            });
        }
        IncludeObject::Object => r["object"] = obj.clone(),
    }
    r
}

/// A Table of `objects`, with `list_metadata` (resourceVersion, continue).
pub fn table(
    info: &ResourceInfo,
    objects: &[Value],
    list_metadata: Value,
    include: IncludeObject,
) -> Value {
    let defs: Vec<Value> = columns(info)
        .iter()
        .map(|c| {
            json!({
                "name": c.name,
                "type": c.kind,
                "format": c.format,
                "description": format!("{} of the {}", c.name, info.kind),
                "priority": c.priority,
            })
        })
        .collect();
    let rows: Vec<Value> = objects.iter().map(|o| row(info, o, include)).collect();
    json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": list_metadata,
        "columnDefinitions": defs,
        "rows": rows,
    })
}
