//! Where the autoscaler's measurements come from (upstream's `podautoscaler/metrics`): pods'
//! resource usage from `metrics.k8s.io/v1beta1` PodMetrics, pods' and objects' custom metrics
//! from `custom.metrics.k8s.io/v1beta2`. Behind [`MetricsClient`] so the replica calculation
//! runs against canned metrics in tests.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, anyhow};
use futures::future::BoxFuture;
use k8s_openapi::api::autoscaling::v2::CrossVersionObjectReference;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::jiff::Timestamp;
use kube::api::ListParams;
use kube::{Api, Client};

use client_go::metrics::{MetricValue, MetricValueList, PodMetrics};

use super::mapper::{RestMapper, group_of};
use common::selectors as selector;

/// A window assumed for custom metrics that do not say theirs (upstream's
/// `metricServerDefaultMetricWindow`).
const DEFAULT_WINDOW: Duration = Duration::from_secs(60);

/// One pod's measurement: milli-units (millicores, milli-bytes, milli-requests/s).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PodMetric {
    pub timestamp: Timestamp,
    pub window: Duration,
    pub value: i64,
}

/// Pod name to its measurement.
pub type PodMetricsInfo = HashMap<String, PodMetric>;

/// The measurements the autoscaler asks for. Errors carry upstream's messages (they end up
/// in the HPA's conditions and events).
pub trait MetricsClient: Send + Sync {
    /// `resource` (`cpu`, `memory`) used by each pod `selector` (query syntax) selects in
    /// `namespace`, summed over its containers or of `container` alone; and the time of the
    /// first sample.
    fn resource_metric<'a>(
        &'a self,
        resource: &'a str,
        namespace: &'a str,
        selector: &'a str,
        container: Option<&'a str>,
    ) -> BoxFuture<'a, anyhow::Result<(PodMetricsInfo, Timestamp)>>;

    /// A custom metric of each pod `selector` selects.
    fn raw_metric<'a>(
        &'a self,
        metric: &'a str,
        namespace: &'a str,
        selector: &'a str,
        metric_selector: Option<&'a LabelSelector>,
    ) -> BoxFuture<'a, anyhow::Result<(PodMetricsInfo, Timestamp)>>;

    /// A custom metric of one object (milli-units).
    fn object_metric<'a>(
        &'a self,
        metric: &'a str,
        namespace: &'a str,
        object: &'a CrossVersionObjectReference,
        metric_selector: Option<&'a LabelSelector>,
    ) -> BoxFuture<'a, anyhow::Result<(i64, Timestamp)>>;
}

/// A quantity's milli-value, rounded up as `Quantity.MilliValue()`.
pub fn milli_value(q: &k8s_openapi::apimachinery::pkg::api::resource::Quantity) -> i64 {
    common::quantity::parse_scaled(&q.0, 1000).unwrap_or(0)
}

/// Percent-encodes a query value.
fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Each pod's usage of `resource`, from the metrics server's PodMetrics: the sum over its
/// containers (a pod missing the resource in any container is left out), or `container`'s
/// alone (an error when a pod has no such container).
pub fn pod_usage(
    items: &[PodMetrics],
    resource: &str,
    container: Option<&str>,
) -> anyhow::Result<PodMetricsInfo> {
    let mut res = PodMetricsInfo::new();
    for m in items {
        let name = m.metadata.name.clone().unwrap_or_default();
        let sample = |value| PodMetric {
            timestamp: m.timestamp.0,
            window: common::duration::parse_go(&m.window).unwrap_or_default(),
            value,
        };
        if let Some(container) = container {
            let Some(c) = m.containers.iter().find(|c| c.name == container) else {
                return Err(anyhow!(
                    "container {container} not present in metrics for pod {}/{name}",
                    m.metadata.namespace.as_deref().unwrap_or_default()
                ));
            };
            if let Some(v) = c.usage.get(resource) {
                res.insert(name, sample(milli_value(v)));
            }
            continue;
        }
        if m.containers.is_empty() {
            continue;
        }
        let sum: Option<i64> = m
            .containers
            .iter()
            .map(|c| c.usage.get(resource).map(milli_value))
            .sum();
        match sum {
            Some(sum) => {
                res.insert(name, sample(sum));
            }
            None => {
                tracing::debug!(pod = %name, resource, "missing resource metric");
            }
        }
    }
    Ok(res)
}

/// The metrics APIs through the API server (upstream's REST metrics client).
pub struct RestMetricsClient {
    client: Client,
    mapper: Arc<RestMapper>,
}

impl RestMetricsClient {
    pub fn new(client: Client, mapper: Arc<RestMapper>) -> Self {
        RestMetricsClient { client, mapper }
    }

    /// An object's resource as the custom metrics API names it: `deployments.apps`, or
    /// `services` for the core group.
    async fn group_resource(&self, object: &CrossVersionObjectReference) -> anyhow::Result<String> {
        let group = group_of(object.api_version.as_deref().unwrap_or(""));
        let mapping = self
            .mapper
            .mappings(group, &object.kind)
            .await
            .map_err(|e| {
                let gk = if group.is_empty() {
                    object.kind.clone()
                } else {
                    format!("{}.{group}", object.kind)
                };
                anyhow!(
                    "unable to fetch metrics from custom metrics API: unable to map kind {gk} to resource: {e}"
                )
            })?;
        let plural = mapping
            .first()
            .map(|m| m.plural.clone())
            .unwrap_or_default();
        Ok(if group.is_empty() {
            plural
        } else {
            format!("{plural}.{group}")
        })
    }

    async fn custom(
        &self,
        path: &str,
        metric_selector: Option<&LabelSelector>,
    ) -> anyhow::Result<MetricValueList> {
        let mut url = format!("/apis/{}/v1beta2/{path}", client_go::metrics::CUSTOM_GROUP);
        let metric_query = metric_selector.map(selector::to_query).unwrap_or_default();
        if !metric_query.is_empty() {
            url.push(if url.contains('?') { '&' } else { '?' });
            url.push_str(&format!("metricLabelSelector={}", encode(&metric_query)));
        }
        let req = http::Request::get(url)
            .body(Vec::new())
            .context("building a custom metrics request")?;
        self.client
            .request::<MetricValueList>(req)
            .await
            .map_err(|e| {
                anyhow!(
                    "unable to fetch metrics from custom metrics API: {}",
                    api_message(&e)
                )
            })
    }
}

/// The API's own message for an API error (what client-go's errors print).
pub fn api_message(e: &kube::Error) -> String {
    match e {
        kube::Error::Api(s) => s.message.clone(),
        other => other.to_string(),
    }
}

impl MetricsClient for RestMetricsClient {
    fn resource_metric<'a>(
        &'a self,
        resource: &'a str,
        namespace: &'a str,
        selector: &'a str,
        container: Option<&'a str>,
    ) -> BoxFuture<'a, anyhow::Result<(PodMetricsInfo, Timestamp)>> {
        Box::pin(async move {
            let api: Api<PodMetrics> = Api::namespaced(self.client.clone(), namespace);
            let list = api
                .list(&ListParams::default().labels(selector))
                .await
                .map_err(|e| {
                    anyhow!(
                        "unable to fetch metrics from resource metrics API: {}",
                        api_message(&e)
                    )
                })?;
            let Some(first) = list.items.first() else {
                return Err(anyhow!("no metrics returned from resource metrics API"));
            };
            let timestamp = first.timestamp.0;
            let info = pod_usage(&list.items, resource, container)
                .map_err(|e| anyhow!("failed to get container metrics: {e}"))?;
            Ok((info, timestamp))
        })
    }

    fn raw_metric<'a>(
        &'a self,
        metric: &'a str,
        namespace: &'a str,
        selector: &'a str,
        metric_selector: Option<&'a LabelSelector>,
    ) -> BoxFuture<'a, anyhow::Result<(PodMetricsInfo, Timestamp)>> {
        Box::pin(async move {
            let path = format!(
                "namespaces/{namespace}/pods/*/{metric}?labelSelector={}",
                encode(selector)
            );
            let list = self.custom(&path, metric_selector).await?;
            let Some(first) = list.items.first() else {
                return Err(anyhow!("no metrics returned from custom metrics API"));
            };
            let timestamp = first.timestamp.0;
            let info = list
                .items
                .iter()
                .map(|m: &MetricValue| {
                    let window = m
                        .window_seconds
                        .map_or(DEFAULT_WINDOW, |s| Duration::from_secs(s.max(0) as u64));
                    (
                        m.described_object.name.clone().unwrap_or_default(),
                        PodMetric {
                            timestamp: m.timestamp.0,
                            window,
                            value: milli_value(&m.value),
                        },
                    )
                })
                .collect();
            Ok((info, timestamp))
        })
    }

    fn object_metric<'a>(
        &'a self,
        metric: &'a str,
        namespace: &'a str,
        object: &'a CrossVersionObjectReference,
        metric_selector: Option<&'a LabelSelector>,
    ) -> BoxFuture<'a, anyhow::Result<(i64, Timestamp)>> {
        Box::pin(async move {
            let core = group_of(object.api_version.as_deref().unwrap_or("")).is_empty();
            // A Namespace's metrics are root-scoped, and always of the HPA's own namespace.
            let path = if core && object.kind == "Namespace" {
                format!("namespaces/{namespace}/metrics/{metric}")
            } else {
                format!(
                    "namespaces/{namespace}/{}/{}/{metric}",
                    self.group_resource(object).await?,
                    object.name
                )
            };
            let list = self.custom(&path, metric_selector).await?;
            match list.items.as_slice() {
                [value] => Ok((milli_value(&value.value), value.timestamp.0)),
                items => Err(anyhow!(
                    "unable to fetch metrics from custom metrics API: the custom metrics API server returned {} results when we asked for exactly one",
                    items.len()
                )),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use client_go::metrics::ContainerMetrics;
    use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};

    fn pod(name: &str, containers: &[(&str, &[(&str, &str)])]) -> PodMetrics {
        PodMetrics {
            metadata: ObjectMeta {
                name: Some(name.into()),
                namespace: Some("default".into()),
                ..Default::default()
            },
            timestamp: Time(Timestamp::UNIX_EPOCH),
            window: "15.5s".into(),
            containers: containers
                .iter()
                .map(|(n, usage)| ContainerMetrics {
                    name: n.to_string(),
                    usage: usage
                        .iter()
                        .map(|(r, q)| (r.to_string(), Quantity(q.to_string())))
                        .collect(),
                })
                .collect(),
        }
    }

    #[test]
    fn pod_usage_sums_containers_and_skips_incomplete_pods() {
        let items = vec![
            pod(
                "a",
                &[("app", &[("cpu", "100m")]), ("side", &[("cpu", "0.05")])],
            ),
            pod(
                "b",
                &[("app", &[("cpu", "1")]), ("side", &[("memory", "1Mi")])],
            ),
            pod("c", &[]),
        ];
        let all = pod_usage(&items, "cpu", None).unwrap();
        assert_eq!(all.len(), 1);
        assert_eq!(all["a"].value, 150);
        assert_eq!(all["a"].window, Duration::from_millis(15500));
        let app = pod_usage(&items[..2], "cpu", Some("app")).unwrap();
        assert_eq!((app["a"].value, app["b"].value), (100, 1000));
        let err = pod_usage(&items, "cpu", Some("app")).unwrap_err();
        assert_eq!(
            err.to_string(),
            "container app not present in metrics for pod default/c"
        );
    }

    #[test]
    fn go_durations_and_query_encoding() {
        assert_eq!(encode("app=web,x in (a)"), "app%3Dweb%2Cx%20in%20%28a%29");
    }
}
