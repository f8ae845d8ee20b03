//! The metrics APIs' types (Kubernetes' `k8s.io/metrics`): `metrics.k8s.io/v1beta1`
//! NodeMetrics and PodMetrics, which rkube's metrics server serves and the HPA and
//! `kubectl top` read, and `custom.metrics.k8s.io/v1beta2` MetricValueList for metrics that
//! workloads expose. k8s-openapi has none of them (they are not in Kubernetes' OpenAPI), so
//! they are here, with k8s-openapi's `Resource` traits so `kube::Api` lists them.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ListMeta, ObjectMeta, Time};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

/// `metrics.k8s.io`.
pub const RESOURCE_GROUP: &str = "metrics.k8s.io";
/// `custom.metrics.k8s.io`.
pub const CUSTOM_GROUP: &str = "custom.metrics.k8s.io";

/// A resource name (`cpu`, `memory`) to its usage.
pub type ResourceList = BTreeMap<String, Quantity>;

/// A node's CPU and memory usage over `window` ending at `timestamp`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NodeMetrics {
    pub metadata: ObjectMeta,
    pub timestamp: Time,
    /// A duration as Go prints it (`20.5s`).
    pub window: String,
    pub usage: ResourceList,
}

/// One container's usage within a [`PodMetrics`].
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ContainerMetrics {
    pub name: String,
    pub usage: ResourceList,
}

/// A pod's containers' usage over `window` ending at `timestamp`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PodMetrics {
    pub metadata: ObjectMeta,
    pub timestamp: Time,
    pub window: String,
    pub containers: Vec<ContainerMetrics>,
}

/// The metric a [`MetricValue`] is of.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct MetricIdentifier {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<LabelSelector>,
}

/// The object a custom metric describes (`core/v1` ObjectReference's fields that matter).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DescribedObject {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_version: Option<String>,
}

/// One object's value of a custom metric (`custom.metrics.k8s.io/v1beta2`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MetricValue {
    pub described_object: DescribedObject,
    pub metric: MetricIdentifier,
    pub timestamp: Time,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window_seconds: Option<i64>,
    pub value: Quantity,
}

/// What a custom metrics query answers: the metric's value for each object asked about.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct MetricValueList {
    #[serde(default)]
    pub metadata: ListMeta,
    pub items: Vec<MetricValue>,
}

// The schemas by hand (as k8s-openapi writes its own), under the definition names
// metrics-server publishes, with the API's field descriptions that `kubectl explain` shows.
// They refer to k8s-openapi's definitions (`#/$defs/...`), which the API server's schema
// table adds (`apiserver::schemas::Table::with_defs`).

const API_VERSION_DOC: &str = "APIVersion defines the versioned schema of this representation of an object. Servers should convert recognized schemas to the latest internal value, and may reject unrecognized values. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#resources";
const KIND_DOC: &str = "Kind is a string value representing the REST resource this object represents. Servers may infer this from the endpoint the client submits requests to. Cannot be updated. In CamelCase. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#types-kinds";
const METADATA_DOC: &str = "Standard object's metadata. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata";
const TIMESTAMP_DOC: &str = "The following fields define time interval from which metrics were collected from the interval [Timestamp-Window, Timestamp].";
const USAGE_DOC: &str = "The memory usage is the memory working set.";
const JSON_SCHEMA: &str = "https://json-schema.org/draft/2020-12/schema";
const CONTAINER_METRICS: &str = "io.k8s.metrics.pkg.apis.metrics.v1beta1.ContainerMetrics";

/// A reference to k8s-openapi's definition `name`, with a description.
fn described(name: &str, d: &str) -> Value {
    json!({"$ref": format!("#/$defs/{name}"), "description": d})
}

/// What both metrics kinds start with: apiVersion, kind, metadata, timestamp, window.
fn metrics_properties() -> Map<String, Value> {
    let mut props = Map::new();
    props.insert(
        "apiVersion".into(),
        json!({"description": API_VERSION_DOC, "type": "string"}),
    );
    props.insert(
        "kind".into(),
        json!({"description": KIND_DOC, "type": "string"}),
    );
    props.insert(
        "metadata".into(),
        described(
            "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta",
            METADATA_DOC,
        ),
    );
    props.insert(
        "timestamp".into(),
        described("io.k8s.apimachinery.pkg.apis.meta.v1.Time", TIMESTAMP_DOC),
    );
    props.insert("window".into(), json!({"type": "string"}));
    props
}

fn usage_schema() -> Value {
    json!({
        "description": USAGE_DOC,
        "type": "object",
        "additionalProperties": {"$ref": "#/$defs/io.k8s.apimachinery.pkg.api.resource.Quantity"},
    })
}

/// NodeMetrics' schema (its root; k8s-openapi's definitions it refers to are not included).
pub fn node_metrics_schema() -> Value {
    let mut props = metrics_properties();
    props.insert("usage".into(), usage_schema());
    json!({
        "description": "NodeMetrics sets resource usage metrics of a node.",
        "type": "object",
        "required": ["timestamp", "window", "usage"],
        "properties": props,
        "title": "io.k8s.metrics.pkg.apis.metrics.v1beta1.NodeMetrics",
        "$schema": JSON_SCHEMA,
    })
}

/// PodMetrics' schema, with ContainerMetrics in its `$defs`.
pub fn pod_metrics_schema() -> Value {
    let mut props = metrics_properties();
    props.insert(
        "containers".into(),
        json!({
            "description": "Metrics for all containers are collected within the same time window.",
            "type": "array",
            "items": {"$ref": format!("#/$defs/{CONTAINER_METRICS}")},
            "x-kubernetes-list-type": "atomic",
        }),
    );
    let container = json!({
        "description": "ContainerMetrics sets resource usage metrics of a container.",
        "type": "object",
        "required": ["name", "usage"],
        "properties": {
            "name": {"description": "Container name corresponding to the one from pod.spec.containers.", "type": "string"},
            "usage": usage_schema(),
        },
    });
    json!({
        "description": "PodMetrics sets resource usage metrics of a pod.",
        "type": "object",
        "required": ["timestamp", "window", "containers"],
        "properties": props,
        "title": "io.k8s.metrics.pkg.apis.metrics.v1beta1.PodMetrics",
        "$schema": JSON_SCHEMA,
        "$defs": {CONTAINER_METRICS: container},
    })
}

/// k8s-openapi's `Resource`, `ListableResource` and `Metadata` for a metrics kind, which give
/// it kube-rs' `Resource` too.
macro_rules! metrics_kind {
    ($ty:ty, $kind:literal, $plural:literal, $scope:ty, $list:literal) => {
        impl k8s_openapi::Resource for $ty {
            const API_VERSION: &'static str = "metrics.k8s.io/v1beta1";
            const GROUP: &'static str = RESOURCE_GROUP;
            const KIND: &'static str = $kind;
            const VERSION: &'static str = "v1beta1";
            const URL_PATH_SEGMENT: &'static str = $plural;
            type Scope = $scope;
        }
        impl k8s_openapi::ListableResource for $ty {
            const LIST_KIND: &'static str = $list;
        }
        impl k8s_openapi::Metadata for $ty {
            type Ty = ObjectMeta;
            fn metadata(&self) -> &ObjectMeta {
                &self.metadata
            }
            fn metadata_mut(&mut self) -> &mut ObjectMeta {
                &mut self.metadata
            }
        }
    };
}

metrics_kind!(
    NodeMetrics,
    "NodeMetrics",
    "nodes",
    k8s_openapi::ClusterResourceScope,
    "NodeMetricsList"
);
metrics_kind!(
    PodMetrics,
    "PodMetrics",
    "pods",
    k8s_openapi::NamespaceResourceScope,
    "PodMetricsList"
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pod_metrics_decode_as_metrics_server_writes_them() {
        let json = r#"{"kind":"PodMetrics","apiVersion":"metrics.k8s.io/v1beta1",
            "metadata":{"name":"web","namespace":"default","creationTimestamp":"2026-12-07T00:00:00Z"},
            "timestamp":"2026-12-07T00:00:00Z","window":"15.02s",
            "containers":[{"name":"httpd","usage":{"cpu":"1234567n","memory":"2048Ki"}}]}"#;
        let m: PodMetrics = serde_json::from_str(json).unwrap();
        assert_eq!(m.containers[0].usage["cpu"], Quantity("1234567n".into()));
        assert_eq!(m.window, "15.02s");
        let list: MetricValueList = serde_json::from_str(
            r#"{"kind":"MetricValueList","apiVersion":"custom.metrics.k8s.io/v1beta2","metadata":{},
            "items":[{"describedObject":{"kind":"Pod","namespace":"default","name":"web","apiVersion":"/v1"},
            "metric":{"name":"http_requests_per_second","selector":null},
            "timestamp":"2026-12-07T00:00:00Z","windowSeconds":15,"value":"7500m"}]}"#,
        )
        .unwrap();
        assert_eq!(list.items[0].value, Quantity("7500m".into()));
        assert_eq!(list.items[0].window_seconds, Some(15));
    }
}
