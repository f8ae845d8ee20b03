//! The tables of the workload kinds, as upstream's printers define them: Deployment,
//! ReplicaSet and ReplicationController (one layout), DaemonSet, StatefulSet and
//! ControllerRevision.

use serde_json::{Value, json};

use super::{
    Column, NAME, Printer, col, containers_and_images, int, int_col, or_none, s, selector_string,
};

/// The wide columns every pod-template owner shows.
fn template_columns() -> [Column; 3] {
    [col("Containers", 1), col("Images", 1), col("Selector", 1)]
}

/// The CONTAINERS, IMAGES and SELECTOR cells.
fn template_cells(obj: &Value) -> [Value; 3] {
    let (c, i) = containers_and_images(obj);
    [
        json!(c),
        json!(i),
        json!(selector_string(obj.pointer("/spec/selector"))),
    ]
}

pub const DEPLOYMENT: Printer = Printer {
    columns: || {
        let mut c = vec![
            NAME,
            col("Ready", 0),
            int_col("Up-to-date", 0),
            int_col("Available", 0),
            col("Age", 0),
        ];
        c.extend(template_columns());
        c
    },
    cells: |obj, name, age| {
        let mut c = vec![
            name,
            json!(format!(
                "{}/{}",
                int(obj, "/status/readyReplicas"),
                int(obj, "/spec/replicas")
            )),
            json!(int(obj, "/status/updatedReplicas")),
            json!(int(obj, "/status/availableReplicas")),
            age,
        ];
        c.extend(template_cells(obj));
        c
    },
};

/// ReplicaSets and ReplicationControllers.
pub const REPLICA_SET: Printer = Printer {
    columns: || {
        let mut c = vec![
            NAME,
            int_col("Desired", 0),
            int_col("Current", 0),
            int_col("Ready", 0),
            col("Age", 0),
        ];
        c.extend(template_columns());
        c
    },
    cells: |obj, name, age| {
        let mut c = vec![
            name,
            json!(int(obj, "/spec/replicas")),
            json!(int(obj, "/status/replicas")),
            json!(int(obj, "/status/readyReplicas")),
            age,
        ];
        c.extend(template_cells(obj));
        c
    },
};

pub const DAEMON_SET: Printer = Printer {
    columns: || {
        let mut c = vec![
            NAME,
            col("Desired", 0),
            col("Current", 0),
            col("Ready", 0),
            col("Up-to-date", 0),
            col("Available", 0),
            col("Node Selector", 0),
            col("Age", 0),
        ];
        c.extend(template_columns());
        c
    },
    cells: daemon_set_cells,
};

fn daemon_set_cells(obj: &Value, name: Value, age: Value) -> Vec<Value> {
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
    let mut c = vec![
        name,
        json!(int(obj, "/status/desiredNumberScheduled")),
        json!(int(obj, "/status/currentNumberScheduled")),
        json!(int(obj, "/status/numberReady")),
        json!(int(obj, "/status/updatedNumberScheduled")),
        json!(int(obj, "/status/numberAvailable")),
        json!(or_none(node_selector)),
        age,
    ];
    c.extend(template_cells(obj));
    c
}

pub const STATEFUL_SET: Printer = Printer {
    columns: || {
        vec![
            NAME,
            col("Ready", 0),
            col("Age", 0),
            col("Containers", 1),
            col("Images", 1),
        ]
    },
    cells: |obj, name, age| {
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
    },
};

pub const CONTROLLER_REVISION: Printer = Printer {
    columns: || {
        vec![
            NAME,
            col("Controller", 0),
            col("Revision", 0),
            col("Age", 0),
        ]
    },
    cells: controller_revision_cells,
};

/// CONTROLLER is the controlling owner as `kind.group/name`.
fn controller_revision_cells(obj: &Value, name: Value, age: Value) -> Vec<Value> {
    let controller = obj
        .pointer("/metadata/ownerReferences")
        .and_then(Value::as_array)
        .and_then(|refs| {
            refs.iter()
                .find(|r| r.get("controller").and_then(Value::as_bool) == Some(true))
        })
        .map_or("<none>".to_string(), |r| {
            let group = s(r.get("apiVersion"))
                .rsplit_once('/')
                .map(|(g, _)| g.to_string())
                .unwrap_or_default();
            let kind = s(r.get("kind")).to_lowercase();
            let kind = if group.is_empty() {
                kind
            } else {
                format!("{kind}.{group}")
            };
            format!("{kind}/{}", s(r.get("name")))
        });
    vec![
        name,
        json!(controller),
        json!(obj.get("revision").and_then(Value::as_i64).unwrap_or(0)),
        age,
    ]
}
