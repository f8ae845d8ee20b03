//! `metrics.k8s.io/v1beta1`: NodeMetrics (`nodes`) and PodMetrics (`pods`), get and list
//! with label and field selectors, from the [`Storage`], labelled as the node or pod they
//! measure (metrics-server's `pkg/api`). Only objects the API still has are reported.

use std::collections::BTreeMap;

use apiserver::error::{ApiError, ApiResult};
use apiserver::selector::{FieldSelector, LabelSelector};
use client_go::metrics::RESOURCE_GROUP;
use common::duration::format_go;
use common::quantity::{format_binary, format_decimal};
use k8s_openapi::jiff::Timestamp;
use serde_json::{Value, json};

use crate::storage::{Storage, Usage};

const API_VERSION: &str = "metrics.k8s.io/v1beta1";

/// Where labels come from: the node and pod informers the server runs.
pub trait Labels: Send + Sync {
    /// A node's labels, `None` when the API has no such node.
    fn node(&self, name: &str) -> Option<BTreeMap<String, String>>;
    /// A pod's labels, `None` when the API has no such pod.
    fn pod(&self, namespace: &str, name: &str) -> Option<BTreeMap<String, String>>;
}

fn time(ms: i64) -> String {
    Timestamp::from_millisecond(ms)
        .unwrap_or(Timestamp::UNIX_EPOCH)
        .to_string()
}

fn window(ms: i64) -> String {
    format_go(std::time::Duration::from_millis(
        u64::try_from(ms).unwrap_or(0),
    ))
}

fn usage(u: &Usage) -> Value {
    json!({"cpu": format_decimal(u.nano_cores, -9), "memory": format_binary(u.memory_bytes)})
}

fn metadata(name: &str, namespace: Option<&str>, labels: BTreeMap<String, String>) -> Value {
    let mut m = json!({"name": name, "creationTimestamp": Timestamp::now().to_string()});
    if let Some(ns) = namespace {
        m["namespace"] = json!(ns);
    }
    if !labels.is_empty() {
        m["labels"] = json!(labels);
    }
    m
}

/// The selectors of a list request.
pub struct Selectors {
    label: LabelSelector,
    field: FieldSelector,
}

impl Selectors {
    pub fn parse(query: &std::collections::HashMap<String, String>) -> ApiResult<Self> {
        let get = |k: &str| query.get(k).map(String::as_str).unwrap_or("");
        Ok(Selectors {
            label: LabelSelector::parse(get("labelSelector"))?,
            field: FieldSelector::parse(get("fieldSelector"), &[])?,
        })
    }

    fn matches(&self, obj: &Value) -> bool {
        self.label.matches(obj) && self.field.matches(obj)
    }
}

fn not_found(resource: &str, name: &str) -> ApiError {
    let mut e = ApiError::new(
        404,
        "NotFound",
        format!("{resource}.{RESOURCE_GROUP} \"{name}\" not found"),
    );
    e.details = Some(json!({"name": name, "group": RESOURCE_GROUP, "kind": resource}));
    e
}

fn list(kind: &str, items: Vec<Value>) -> Value {
    json!({"kind": kind, "apiVersion": API_VERSION, "metadata": {}, "items": items})
}

fn object(kind: &str, mut v: Value) -> Value {
    if let Value::Object(m) = &mut v {
        m.insert("kind".into(), json!(kind));
        m.insert("apiVersion".into(), json!(API_VERSION));
    }
    v
}

/// Node metrics of every node the API has and the storage has usage for.
pub fn node_metrics(storage: &Storage, labels: &dyn Labels) -> Vec<Value> {
    storage
        .nodes()
        .into_iter()
        .filter_map(|(name, u)| {
            let labels = labels.node(&name)?;
            Some(json!({
                "metadata": metadata(&name, None, labels),
                "timestamp": time(u.timestamp_ms),
                "window": window(u.window_ms),
                "usage": usage(&u),
            }))
        })
        .collect()
}

/// Pod metrics (of `namespace`, or all) of pods the API has.
pub fn pod_metrics(storage: &Storage, labels: &dyn Labels, namespace: Option<&str>) -> Vec<Value> {
    storage
        .pods(namespace)
        .into_iter()
        .filter_map(|p| {
            let labels = labels.pod(&p.namespace, &p.name)?;
            let (ts, window) = p.timestamp_and_window();
            let containers: Vec<Value> = p
                .containers
                .iter()
                .map(|(name, u)| json!({"name": name, "usage": usage(u)}))
                .collect();
            Some(json!({
                "metadata": metadata(&p.name, Some(&p.namespace), labels),
                "timestamp": time(ts),
                "window": self::window(window),
                "containers": containers,
            }))
        })
        .collect()
}

/// Answers a GET of `nodes[/name]` or `[namespaces/ns/]pods[/name]`.
pub fn get(
    storage: &Storage,
    labels: &dyn Labels,
    req: &apiserver::aggregator::ServiceRequest,
) -> ApiResult<Value> {
    if !req.subresource.is_empty() {
        return Err(ApiError::not_found_path());
    }
    let ns = req.namespace.as_deref();
    match (req.resource.as_str(), req.name.as_deref()) {
        ("nodes", _) if ns.is_some() => Err(ApiError::not_found_path()),
        ("nodes", None) => {
            let sel = Selectors::parse(&req.query)?;
            let items = node_metrics(storage, labels)
                .into_iter()
                .filter(|v| sel.matches(v));
            Ok(list("NodeMetricsList", items.collect()))
        }
        ("nodes", Some(name)) => node_metrics(storage, labels)
            .into_iter()
            .find(|v| v.pointer("/metadata/name").and_then(Value::as_str) == Some(name))
            .map(|v| object("NodeMetrics", v))
            .ok_or_else(|| not_found("nodemetrics", name)),
        ("pods", None) => {
            let sel = Selectors::parse(&req.query)?;
            let items = pod_metrics(storage, labels, ns)
                .into_iter()
                .filter(|v| sel.matches(v));
            Ok(list("PodMetricsList", items.collect()))
        }
        ("pods", Some(name)) => {
            let ns = ns.ok_or_else(ApiError::not_found_path)?;
            pod_metrics(storage, labels, Some(ns))
                .into_iter()
                .find(|v| v.pointer("/metadata/name").and_then(Value::as_str) == Some(name))
                .map(|v| object("PodMetrics", v))
                .ok_or_else(|| not_found("podmetrics", &format!("{ns}/{name}")))
        }
        _ => Err(ApiError::not_found_path()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::{NodeScrape, Point};
    use std::sync::Arc;

    struct Known;
    impl Labels for Known {
        fn node(&self, name: &str) -> Option<BTreeMap<String, String>> {
            (name == "n1").then(|| BTreeMap::from([("zone".to_string(), "a".to_string())]))
        }
        fn pod(&self, _: &str, name: &str) -> Option<BTreeMap<String, String>> {
            (name != "gone").then(|| BTreeMap::from([("app".to_string(), name.to_string())]))
        }
    }

    fn filled() -> Arc<Storage> {
        let st = Arc::new(Storage::default());
        for (i, ts) in [1_000, 16_000].into_iter().enumerate() {
            let p = |cpu: f64| Point {
                cpu_seconds: cpu * i as f64,
                memory_bytes: 2048.0 * 1024.0,
                timestamp_ms: ts,
                start_time: None,
            };
            let mut s = NodeScrape {
                node: Some(p(3.0)),
                ..Default::default()
            };
            for pod in ["web", "db", "gone"] {
                s.pods.insert(
                    ("default".into(), pod.into()),
                    [("c".to_string(), p(0.15))].into(),
                );
            }
            st.store("n1", s);
            st.store(
                "n2",
                NodeScrape {
                    node: Some(p(1.0)),
                    ..Default::default()
                },
            );
        }
        st
    }

    fn req(path: &[&str], query: &[(&str, &str)]) -> apiserver::aggregator::ServiceRequest {
        let q = query
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        apiserver::aggregator::parse(http::Method::GET, "v1beta1", path, q).unwrap()
    }

    #[test]
    fn nodes_as_kubectl_top_reads_them() {
        let st = filled();
        let v = get(&st, &Known, &req(&["nodes"], &[])).unwrap();
        assert_eq!(v["kind"], "NodeMetricsList");
        let items = v["items"].as_array().unwrap();
        assert_eq!(items.len(), 1, "n2 is not in the API: {v}");
        assert_eq!(items[0]["usage"], json!({"cpu": "200m", "memory": "2Mi"}));
        assert_eq!(items[0]["window"], "15s");
        assert_eq!(items[0]["metadata"]["labels"]["zone"], "a");
        let one = get(&st, &Known, &req(&["nodes", "n1"], &[])).unwrap();
        assert_eq!(one["kind"], "NodeMetrics");
        let e = get(&st, &Known, &req(&["nodes", "n2"], &[])).unwrap_err();
        assert_eq!(e.message, "nodemetrics.metrics.k8s.io \"n2\" not found");
    }

    #[test]
    fn pods_by_namespace_and_selector() {
        let st = filled();
        let v = get(
            &st,
            &Known,
            &req(
                &["namespaces", "default", "pods"],
                &[("labelSelector", "app=web")],
            ),
        )
        .unwrap();
        let items = v["items"].as_array().unwrap();
        assert_eq!(items.len(), 1);
        assert_eq!(items[0]["containers"][0]["usage"]["cpu"], "10m");
        let all = get(&st, &Known, &req(&["pods"], &[])).unwrap();
        assert_eq!(
            all["items"].as_array().unwrap().len(),
            2,
            "the gone pod is not reported"
        );
        let by_name = get(
            &st,
            &Known,
            &req(&["pods"], &[("fieldSelector", "metadata.name=db")]),
        )
        .unwrap();
        assert_eq!(by_name["items"][0]["metadata"]["name"], "db");
        let e = get(&st, &Known, &req(&["namespaces", "x", "pods", "web"], &[])).unwrap_err();
        assert_eq!(e.message, "podmetrics.metrics.k8s.io \"x/web\" not found");
        assert!(get(&st, &Known, &req(&["pods"], &[("labelSelector", "a in (")])).is_err());
    }
}
