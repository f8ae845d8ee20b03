//! The tables of the small core/v1 kinds, as upstream's printers define them: Namespace,
//! ConfigMap, Secret, Endpoints, ServiceAccount, ResourceQuota, Event and PodTemplate.

use serde_json::{Value, json};

use super::{NAME, Printer, col, count, int_col, len_of, or_none, s, strs};
use crate::meta::{self, human_age};

pub const NAMESPACE: Printer = Printer {
    columns: || vec![NAME, col("Status", 0), col("Age", 0)],
    cells: |obj, name, age| vec![name, json!(s(obj.pointer("/status/phase"))), age],
};

pub const CONFIG_MAP: Printer = Printer {
    columns: || vec![NAME, int_col("Data", 0), col("Age", 0)],
    cells: |obj, name, age| {
        vec![
            name,
            json!(len_of(obj, "data") + len_of(obj, "binaryData")),
            age,
        ]
    },
};

pub const SECRET: Printer = Printer {
    columns: || vec![NAME, col("Type", 0), int_col("Data", 0), col("Age", 0)],
    cells: |obj, name, age| {
        vec![
            name,
            json!(s(obj.get("type"))),
            json!(len_of(obj, "data")),
            age,
        ]
    },
};

pub const SERVICE_ACCOUNT: Printer = Printer {
    columns: || vec![NAME, col("Secrets", 0), col("Age", 0)],
    cells: |obj, name, age| vec![name, json!(count(obj, "secrets")), age],
};

pub const ENDPOINTS: Printer = Printer {
    columns: || vec![NAME, col("Endpoints", 0), col("Age", 0)],
    cells: endpoints_cells,
};

/// `ip:port` for each address and port, the first three then `+ N more...`.
fn endpoints_cells(obj: &Value, name: Value, age: Value) -> Vec<Value> {
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

pub const RESOURCE_QUOTA: Printer = Printer {
    columns: || vec![NAME, col("Age", 0), col("Request", 0), col("Limit", 0)],
    cells: resource_quota_cells,
};

/// `resource: used/hard` for each hard limit, `limits.*` in their own column.
fn resource_quota_cells(obj: &Value, name: Value, age: Value) -> Vec<Value> {
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

/// core/v1 Events (events.k8s.io has the default table, as upstream).
pub const EVENT: Printer = Printer {
    columns: || {
        vec![
            col("Last Seen", 0),
            col("Type", 0),
            col("Reason", 0),
            col("Object", 0),
            col("Message", 0),
        ]
    },
    cells: event_cells,
};

fn event_cells(obj: &Value, _name: Value, _age: Value) -> Vec<Value> {
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

pub const POD_TEMPLATE: Printer = Printer {
    columns: || {
        vec![
            NAME,
            col("Containers", 0),
            col("Images", 0),
            col("Pod Labels", 0),
        ]
    },
    cells: pod_template_cells,
};

fn pod_template_cells(obj: &Value, name: Value, _age: Value) -> Vec<Value> {
    let cs = obj
        .pointer("/template/spec/containers")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let names: Vec<String> = cs.iter().map(|c| s(c.get("name"))).collect();
    let images: Vec<String> = cs.iter().map(|c| s(c.get("image"))).collect();
    let mut labels: Vec<String> = obj
        .pointer("/template/metadata/labels")
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .map(|(k, v)| format!("{k}={}", s(Some(v))))
                .collect()
        })
        .unwrap_or_default();
    labels.sort();
    vec![
        name,
        json!(names.join(",")),
        json!(images.join(",")),
        json!(or_none(labels.join(","))),
    ]
}
