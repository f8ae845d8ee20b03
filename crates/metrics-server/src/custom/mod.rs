//! `custom.metrics.k8s.io/v1beta2` for pods: the metrics pods expose themselves
//! ([`scrape`]), served per pod as a custom metrics adapter serves them — gauges as read,
//! counters (`*_total`) as per-second rates (`*_per_second`) — so an HPA can scale on
//! `type: Pods` metrics such as requests per second. Object and external metrics are not
//! served.

pub mod scrape;
pub mod series;

use std::collections::BTreeMap;

use apiserver::aggregator::ServiceRequest;
use apiserver::error::{ApiError, ApiResult};
use apiserver::selector::LabelSelector;
use client_go::metrics::CUSTOM_GROUP;
use common::quantity::format_decimal;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::jiff::Timestamp;
use serde_json::{Value, json};

use series::{PodValue, SeriesStore};

pub const VERSION: &str = "v1beta2";
const API_VERSION: &str = "custom.metrics.k8s.io/v1beta2";

/// The 404 a custom metrics adapter answers for a metric it does not have.
fn metric_not_found(metric: &str, resource: &str, name: Option<&str>) -> ApiError {
    let message = match name {
        Some(n) => format!("the server could not find the metric {metric} for {resource} {n}"),
        None => format!("the server could not find the metric {metric} for {resource}"),
    };
    let mut e = ApiError::new(404, "NotFound", message);
    e.details = Some(json!({"name": metric, "group": CUSTOM_GROUP, "kind": resource}));
    e
}

fn item(ns: &str, pod: &str, metric: &str, v: &PodValue) -> Value {
    let mut item = json!({
        "describedObject": {"kind": "Pod", "namespace": ns, "name": pod, "apiVersion": "/v1"},
        "metric": {"name": metric, "selector": null},
        "timestamp": Timestamp::from_millisecond(v.timestamp_ms).unwrap_or(Timestamp::UNIX_EPOCH).to_string(),
        "value": format_decimal((v.value * 1000.0).round() as i64, -3),
    });
    if let Some(w) = v.window_ms {
        item["windowSeconds"] = json!(w / 1000);
    }
    item
}

/// The resources discovery lists: `pods/<metric>` for every metric some pod reports.
pub fn resource_list(series: &SeriesStore) -> Vec<Value> {
    series
        .metric_names()
        .into_iter()
        .map(|m| json!({"name": format!("pods/{m}"), "singularName": "", "namespaced": true, "kind": "MetricValueList", "verbs": ["get"]}))
        .collect()
}

/// Answers `namespaces/<ns>/pods/<name or *>/<metric>`, from the pods `pods` lists.
pub fn get(
    series: &SeriesStore,
    pods: &[std::sync::Arc<Pod>],
    req: &ServiceRequest,
) -> ApiResult<Value> {
    let [metric] = req.subresource.as_slice() else {
        return Err(ApiError::not_found_path());
    };
    let (Some(ns), Some(name)) = (req.namespace.as_deref(), req.name.as_deref()) else {
        return Err(metric_not_found(metric, &req.resource, None));
    };
    if req.resource != "pods" {
        return Err(metric_not_found(metric, &req.resource, Some(name)));
    }
    let get = |k: &str| req.query.get(k).map(String::as_str).unwrap_or("");
    let selector = LabelSelector::parse(get("labelSelector"))?;
    let metric_selector = LabelSelector::parse(get("metricLabelSelector"))?;
    let select = |labels: &BTreeMap<String, String>| {
        metric_selector.matches(&json!({"metadata": {"labels": labels}}))
    };
    let mut items = Vec::new();
    for pod in pods {
        let pod_name = pod.metadata.name.as_deref().unwrap_or("");
        if pod.metadata.namespace.as_deref() != Some(ns) || (name != "*" && pod_name != name) {
            continue;
        }
        if name == "*" && !selector.matches(&json!({"metadata": {"labels": pod.metadata.labels}})) {
            continue;
        }
        if let Some(v) = series.value(ns, pod_name, metric, &select) {
            items.push(item(ns, pod_name, metric, &v));
        }
    }
    if name != "*" && items.is_empty() {
        return Err(metric_not_found(metric, "pods", Some(name)));
    }
    Ok(
        json!({"kind": "MetricValueList", "apiVersion": API_VERSION, "metadata": {}, "items": items}),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::prom_text::parse;
    use std::sync::Arc;

    fn pod(name: &str, app: &str) -> Arc<Pod> {
        Arc::new(
            serde_json::from_value(
                json!({"metadata": {"name": name, "namespace": "default", "labels": {"app": app}}}),
            )
            .unwrap(),
        )
    }

    fn req(path: &[&str], query: &[(&str, &str)]) -> ServiceRequest {
        let q = query
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        apiserver::aggregator::parse(http::Method::GET, VERSION, path, q).unwrap()
    }

    #[test]
    fn pods_metrics_as_an_hpa_asks_for_them() {
        let st = SeriesStore::default();
        for (at, n) in [(1_000, 10), (16_000, 160)] {
            for p in ["web-1", "web-2", "db"] {
                st.store(
                    "default",
                    p,
                    &parse(&format!("http_requests_total {n}\n")).unwrap(),
                    at,
                );
            }
        }
        let pods = vec![pod("web-1", "web"), pod("web-2", "web"), pod("db", "db")];
        let path = [
            "namespaces",
            "default",
            "pods",
            "*",
            "http_requests_per_second",
        ];
        let v = get(&st, &pods, &req(&path, &[("labelSelector", "app=web")])).unwrap();
        let items = v["items"].as_array().unwrap();
        assert_eq!(items.len(), 2);
        assert_eq!(items[0]["value"], "10");
        assert_eq!(items[0]["windowSeconds"], 15);
        assert_eq!(items[0]["describedObject"]["name"], "web-1");
        let one = [
            "namespaces",
            "default",
            "pods",
            "db",
            "http_requests_per_second",
        ];
        assert_eq!(
            get(&st, &pods, &req(&one, &[])).unwrap()["items"][0]["value"],
            "10"
        );
        let missing = ["namespaces", "default", "pods", "db", "nope"];
        let e = get(&st, &pods, &req(&missing, &[])).unwrap_err();
        assert_eq!(
            e.message,
            "the server could not find the metric nope for pods db"
        );
        let svc = [
            "namespaces",
            "default",
            "services",
            "web",
            "http_requests_per_second",
        ];
        assert_eq!(get(&st, &pods, &req(&svc, &[])).unwrap_err().code, 404);
        assert_eq!(
            resource_list(&st)[0]["name"],
            "pods/http_requests_per_second"
        );
    }
}
