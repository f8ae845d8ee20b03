//! Server-side printing: `kubectl get` asks for a `meta.k8s.io/v1` Table and prints the
//! columns the server defines, so each kind shows what Kubernetes shows for it.

use serde_json::{Value, json};

use crate::meta::{self, human_age};
use crate::resources::ResourceInfo;

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

fn selector_string(sel: Option<&Value>) -> String {
    let Some(sel) = sel.and_then(Value::as_object) else {
        return "<none>".into();
    };
    let map = sel
        .get("matchLabels")
        .and_then(Value::as_object)
        .unwrap_or(sel);
    let parts: Vec<String> = map
        .iter()
        .filter_map(|(k, v)| v.as_str().map(|v| format!("{k}={v}")))
        .collect();
    or_none(parts.join(","))
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
            let ready = obj
                .pointer("/status/conditions")
                .and_then(Value::as_array)
                .and_then(|cs| {
                    cs.iter()
                        .find(|c| c.get("type").and_then(Value::as_str) == Some("Ready"))
                })
                .and_then(|c| c.get("status").and_then(Value::as_str))
                == Some("True");
            let mut status = if ready {
                "Ready".to_string()
            } else {
                "NotReady".to_string()
            };
            if obj.pointer("/spec/unschedulable").and_then(Value::as_bool) == Some(true) {
                status.push_str(",SchedulingDisabled");
            }
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
