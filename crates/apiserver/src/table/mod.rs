//! Server-side printing: `kubectl get` asks for a `meta.k8s.io/v1` Table and prints the
//! columns the server defines, so each kind shows what Kubernetes shows for it. Each kind's
//! columns and cells are its own [`TablePrinter`] (one module per kind, or per group where
//! they are small, as upstream's `pkg/printers/internalversion`), held by the kind's
//! registration ([`crate::kinds`]); this module builds the Table around them.

use serde_json::{Value, json};

use crate::meta::{self, human_age};
use crate::resources::ResourceInfo;

pub(crate) mod admissionregistration;
pub(crate) mod apiservice;
pub(crate) mod apps;
pub(crate) mod batch;
pub(crate) mod certificates;
pub(crate) mod coordination;
pub(crate) mod core;
pub(crate) mod hpa;
pub(crate) mod networking;
pub(crate) mod node;
pub(crate) mod pod;
pub(crate) mod policy;
pub(crate) mod rbac;
pub(crate) mod scheduling;
pub(crate) mod service;
pub(crate) mod storage;

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

/// One column definition (`metav1.TableColumnDefinition` without its description, which is
/// derived from the name and kind).
pub struct Column {
    pub name: &'static str,
    pub kind: &'static str,
    pub format: &'static str,
    pub priority: u8,
}

/// A string column.
pub(crate) const fn col(name: &'static str, priority: u8) -> Column {
    Column {
        name,
        kind: "string",
        format: "",
        priority,
    }
}

/// An integer column.
pub(crate) const fn int_col(name: &'static str, priority: u8) -> Column {
    Column {
        kind: "integer",
        ..col(name, priority)
    }
}

pub(crate) const NAME: Column = Column {
    name: "Name",
    kind: "string",
    format: "name",
    priority: 0,
};

/// A kind's table: its columns, and the cells of one object. `name` and `age` are the
/// NAME and AGE cells most printers show.
pub trait TablePrinter: Send + Sync {
    fn columns(&self) -> Vec<Column>;
    fn cells(&self, obj: &Value, name: Value, age: Value) -> Vec<Value>;
}

/// A printer from two functions (every built-in kind's).
pub struct Printer {
    pub columns: fn() -> Vec<Column>,
    pub cells: fn(&Value, Value, Value) -> Vec<Value>,
}

impl TablePrinter for Printer {
    fn columns(&self) -> Vec<Column> {
        (self.columns)()
    }
    fn cells(&self, obj: &Value, name: Value, age: Value) -> Vec<Value> {
        (self.cells)(obj, name, age)
    }
}

/// Kinds without a printer of their own: the name and the creation time, as upstream's
/// default table convertor.
pub const DEFAULT: Printer = Printer {
    columns: || {
        vec![
            NAME,
            Column {
                kind: "string",
                format: "date",
                ..col("Created At", 0)
            },
        ]
    },
    cells: |obj, name, _| vec![name, json!(s(obj.pointer("/metadata/creationTimestamp")))],
};

/// The `field` of each element of the array at `ptr`, empty ones left out.
pub(crate) fn strs(obj: &Value, ptr: &str, field: &str) -> Vec<String> {
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

/// A string or number as text; anything else empty.
pub(crate) fn s(v: Option<&Value>) -> String {
    match v {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        _ => String::new(),
    }
}

pub(crate) fn int(obj: &Value, ptr: &str) -> i64 {
    obj.pointer(ptr).and_then(Value::as_i64).unwrap_or(0)
}

pub(crate) fn or_none(v: String) -> String {
    if v.is_empty() { "<none>".into() } else { v }
}

/// `Kind/name` of the reference at `ptr` (a scale target, a role).
pub(crate) fn kind_and_name(obj: &Value, ptr: &str) -> String {
    let r = obj.pointer(ptr);
    format!(
        "{}/{}",
        s(r.and_then(|r| r.get("kind"))),
        s(r.and_then(|r| r.get("name")))
    )
}

/// How many entries the map at `key` has.
pub(crate) fn len_of(obj: &Value, key: &str) -> usize {
    obj.get(key)
        .and_then(Value::as_object)
        .map_or(0, |m| m.len())
}

/// The length of the array at `key`.
pub(crate) fn count(obj: &Value, key: &str) -> usize {
    obj.get(key).and_then(Value::as_array).map_or(0, Vec::len)
}

pub(crate) fn selector_string(sel: Option<&Value>) -> String {
    or_none(crate::selector::selector_string(sel))
}

/// The CONTAINERS and IMAGES cells of a pod template's owner.
pub(crate) fn containers_and_images(obj: &Value) -> (String, String) {
    let cs = obj
        .pointer("/spec/template/spec/containers")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let names: Vec<String> = cs.iter().map(|c| s(c.get("name"))).collect();
    let images: Vec<String> = cs.iter().map(|c| s(c.get("image"))).collect();
    (names.join(","), images.join(","))
}

fn row(printer: &dyn TablePrinter, obj: &Value, include: IncludeObject) -> Value {
    let name = json!(meta::name(obj));
    let age = json!(human_age(meta::str_at(obj, "/metadata/creationTimestamp")));
    let mut r = json!({"cells": printer.cells(obj, name, age)});
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
    let printer = crate::kinds::of(info).printer();
    let defs: Vec<Value> = printer
        .columns()
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
    let rows: Vec<Value> = objects.iter().map(|o| row(printer, o, include)).collect();
    json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": list_metadata,
        "columnDefinitions": defs,
        "rows": rows,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table_of(group: &str, kind: &str, obj: Value) -> Value {
        let info = &crate::kinds::by_kind(group, kind).unwrap().info;
        table(info, &[obj], json!({}), IncludeObject::None)
    }

    fn column_names(t: &Value) -> Vec<&str> {
        t["columnDefinitions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["name"].as_str().unwrap())
            .collect()
    }

    #[test]
    fn each_kind_prints_its_own_columns() {
        let hpa = table_of(
            "autoscaling",
            "HorizontalPodAutoscaler",
            json!({"metadata": {"name": "web"}, "spec": {"scaleTargetRef": {"kind": "Deployment", "name": "web"}, "maxReplicas": 5}}),
        );
        assert_eq!(
            column_names(&hpa),
            [
                "Name",
                "Reference",
                "Targets",
                "MinPods",
                "MaxPods",
                "Replicas",
                "Age"
            ]
        );
        assert_eq!(hpa["rows"][0]["cells"][1], "Deployment/web");
        assert_eq!(hpa["rows"][0]["cells"][4], 5);
        let binding = table_of(
            "rbac.authorization.k8s.io",
            "RoleBinding",
            json!({"metadata": {"name": "b"}, "roleRef": {"kind": "ClusterRole", "name": "view"},
                "subjects": [{"kind": "ServiceAccount", "name": "robot", "namespace": "ci"}]}),
        );
        assert_eq!(binding["rows"][0]["cells"][1], "ClusterRole/view");
        assert_eq!(binding["rows"][0]["cells"][5], "ci/robot");
        let pod = table_of(
            "",
            "Pod",
            json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c"}]}}),
        );
        assert_eq!(pod["columnDefinitions"][3]["type"], "integer");
        assert_eq!(pod["rows"][0]["cells"][1], "0/1");
    }

    #[test]
    fn kinds_without_a_printer_show_name_and_creation_time() {
        let role = table_of(
            "rbac.authorization.k8s.io",
            "Role",
            json!({"metadata": {"name": "r", "creationTimestamp": "2024-01-01T00:00:00Z"}}),
        );
        assert_eq!(column_names(&role), ["Name", "Created At"]);
        assert_eq!(
            role["rows"][0]["cells"],
            json!(["r", "2024-01-01T00:00:00Z"])
        );
    }
}
