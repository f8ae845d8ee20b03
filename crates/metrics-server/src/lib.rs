//! rkube's metrics-server: scrapes every kubelet's `/metrics/resource` on an interval (15 s
//! by default, as metrics-server's `--metric-resolution`), keeps the last two points of
//! each node and container ([`storage`]), and serves `metrics.k8s.io/v1beta1` NodeMetrics
//! and PodMetrics ([`api`]), which is what `kubectl top` and the HorizontalPodAutoscaler
//! read. On the same interval it reads the metrics pods expose themselves and serves them
//! as `custom.metrics.k8s.io/v1beta2` ([`custom`]), a custom metrics adapter's job.
//!
//! Both groups are local API services of the API server in the same process: it
//! authenticates and authorizes each request before it gets here, as kube-aggregator does
//! before proxying to an APIService. Kubelets are reached with the API server's
//! kubelet-client certificate.

pub mod api;
pub mod custom;
pub mod decode;
pub mod prom_text;
pub mod scraper;
pub mod storage;

use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use apiserver::aggregator::{LocalApiService, ServiceRequest};
use apiserver::error::{ApiError, ApiResult};
use apiserver::resources::ResourceInfo;
use async_trait::async_trait;
use client_go::informer::Informer;
use client_go::metrics::{CUSTOM_GROUP, RESOURCE_GROUP};
use futures::StreamExt;
use k8s_openapi::api::core::v1::{Node, Pod};
use k8s_openapi::jiff::Timestamp;
use kube::{Api, Client};
use serde_json::Value;
use tracing::debug;

use custom::series::SeriesStore;
pub use scraper::Scraper;
use storage::Storage;

/// metrics-server's default `--metric-resolution`.
pub const DEFAULT_RESOLUTION: Duration = Duration::from_secs(15);
/// metrics-server's default `--kubelet-request-timeout`.
pub const SCRAPE_TIMEOUT: Duration = Duration::from_secs(10);
/// How it names itself to the API server and to pods.
pub const USER_AGENT: &str = "metrics-server/v0.7.2 (linux) rkube";
/// Pods' metrics endpoints read at once.
const POD_CONCURRENCY: usize = 32;

/// The node and pod informers: which objects exist, their labels, and pods' endpoints.
struct Sources {
    nodes: Informer<Node>,
    pods: Informer<Pod>,
}

impl api::Labels for Sources {
    fn node(&self, name: &str) -> Option<BTreeMap<String, String>> {
        let node = self.nodes.get(None, name)?;
        Some(node.metadata.labels.clone().unwrap_or_default())
    }
    fn pod(&self, namespace: &str, name: &str) -> Option<BTreeMap<String, String>> {
        let pod = self.pods.get(Some(namespace), name)?;
        Some(pod.metadata.labels.clone().unwrap_or_default())
    }
}

/// Before [`MetricsServer::run`] has its informers: nothing is known to exist.
struct NoSources;
impl api::Labels for NoSources {
    fn node(&self, _: &str) -> Option<BTreeMap<String, String>> {
        None
    }
    fn pod(&self, _: &str, _: &str) -> Option<BTreeMap<String, String>> {
        None
    }
}

#[derive(Default)]
struct Shared {
    storage: Storage,
    series: SeriesStore,
    sources: OnceLock<Sources>,
}

impl Shared {
    /// Drops what was scraped of nodes and pods the API no longer has; returns those it
    /// has. (Not async: its closures borrow the informers.)
    fn forget_gone(&self) -> (Vec<Arc<Node>>, Vec<Arc<Pod>>) {
        let Some(sources) = self.sources.get() else {
            return Default::default();
        };
        let nodes = sources.nodes.list();
        self.storage
            .retain_nodes(|n| nodes.iter().any(|x| x.metadata.name.as_deref() == Some(n)));
        self.series
            .retain(|ns, name| sources.pods.get(Some(ns), name).is_some());
        (nodes, sources.pods.list())
    }
}

/// The metrics server: what it scraped and, once running, its informers.
pub struct MetricsServer {
    shared: Arc<Shared>,
}

impl MetricsServer {
    pub fn new() -> Arc<Self> {
        Arc::new(MetricsServer {
            shared: Arc::default(),
        })
    }

    /// The API groups it serves, for the API server to register.
    pub fn services(&self) -> Vec<Arc<dyn LocalApiService>> {
        vec![
            Arc::new(ResourceMetricsApi(self.shared.clone())),
            Arc::new(CustomMetricsApi(self.shared.clone())),
        ]
    }

    /// Watches nodes and pods through `client` and scrapes every node and opted-in pod
    /// each `resolution`, until the process ends.
    pub async fn run(self: Arc<Self>, client: Client, scraper: Scraper, resolution: Duration) {
        let nodes = Informer::<Node>::start(Api::all(client.clone()));
        let pods = Informer::<Pod>::start_transformed(
            Api::all(client),
            kube::runtime::watcher::Config::default(),
            custom::scrape::trim_pod,
        );
        nodes.wait_synced().await;
        pods.wait_synced().await;
        let _ = self.shared.sources.set(Sources { nodes, pods });
        let mut tick = tokio::time::interval(resolution);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let (nodes, pods) = self.shared.forget_gone();
            tokio::join!(
                scraper.scrape_all(&nodes, &self.shared.storage),
                scrape_pods(&pods, &self.shared.series, scraper.timeout()),
            );
        }
    }
}

/// Reads every opted-in pod's metrics endpoint and files what it says.
async fn scrape_pods(pods: &[Arc<Pod>], series: &SeriesStore, timeout: Duration) {
    // Owned, so the stream below holds no borrow of `pods` (spawned futures must be Send
    // for every lifetime).
    let targets: Vec<(Arc<Pod>, custom::scrape::Target)> = pods
        .iter()
        .filter_map(|p| Some((p.clone(), custom::scrape::target(p)?)))
        .collect();
    let results = futures::stream::iter(targets)
        .map(|(pod, t)| async move { (pod, custom::scrape::fetch(&t, timeout).await) })
        .buffer_unordered(POD_CONCURRENCY)
        .collect::<Vec<_>>()
        .await;
    let now = Timestamp::now().as_millisecond();
    for (pod, got) in results {
        let (ns, name) = (
            pod.metadata.namespace.as_deref().unwrap_or(""),
            pod.metadata.name.as_deref().unwrap_or(""),
        );
        match got.and_then(|text| prom_text::parse(&text).map_err(anyhow::Error::msg)) {
            Ok(e) => series.store(ns, name, &e, now),
            Err(e) => {
                debug!(pod = %format!("{ns}/{name}"), error = %format!("{e:#}"), "reading the pod's metrics failed")
            }
        }
    }
}

/// `metrics.k8s.io`.
struct ResourceMetricsApi(Arc<Shared>);

#[async_trait]
impl LocalApiService for ResourceMetricsApi {
    fn group(&self) -> &'static str {
        RESOURCE_GROUP
    }

    fn versions(&self) -> &'static [&'static str] {
        &["v1beta1"]
    }

    fn resources(&self) -> Vec<ResourceInfo> {
        vec![
            ResourceInfo::local(RESOURCE_GROUP, "v1beta1", "NodeMetrics", "nodes", false),
            ResourceInfo::local(RESOURCE_GROUP, "v1beta1", "PodMetrics", "pods", true),
        ]
    }

    fn schema(&self, _version: &str, kind: &str) -> Option<Value> {
        match kind {
            "NodeMetrics" => Some(
                apiserver::schemas::table().with_defs(client_go::metrics::node_metrics_schema()),
            ),
            "PodMetrics" => Some(
                apiserver::schemas::table().with_defs(client_go::metrics::pod_metrics_schema()),
            ),
            _ => None,
        }
    }

    async fn get(&self, req: ServiceRequest) -> ApiResult<Value> {
        match self.0.sources.get() {
            Some(sources) => api::get(&self.0.storage, sources, &req),
            None => api::get(&self.0.storage, &NoSources, &req),
        }
    }
}

/// `custom.metrics.k8s.io`.
struct CustomMetricsApi(Arc<Shared>);

#[async_trait]
impl LocalApiService for CustomMetricsApi {
    fn group(&self) -> &'static str {
        CUSTOM_GROUP
    }

    fn versions(&self) -> &'static [&'static str] {
        &[custom::VERSION]
    }

    fn resources(&self) -> Vec<ResourceInfo> {
        Vec::new()
    }

    fn resource_list(&self, _version: &str) -> Option<Vec<Value>> {
        Some(custom::resource_list(&self.0.series))
    }

    async fn get(&self, req: ServiceRequest) -> ApiResult<Value> {
        let sources = self.0.sources.get().ok_or_else(|| {
            ApiError::new(503, "ServiceUnavailable", "the metrics server is starting")
        })?;
        custom::get(&self.0.series, &sources.pods.list(), &req)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    /// `kubectl explain podmetrics` needs the kind's schema and every definition it refers
    /// to, k8s-openapi's (from the API server's table) and the metrics API's own.
    #[test]
    fn metrics_schemas_carry_the_definitions_they_refer_to() {
        let table = apiserver::schemas::table();
        let pod = table.with_defs(client_go::metrics::pod_metrics_schema());
        let defs = pod["$defs"].as_object().unwrap();
        for name in [
            "io.k8s.metrics.pkg.apis.metrics.v1beta1.ContainerMetrics",
            "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta",
            "io.k8s.apimachinery.pkg.apis.meta.v1.Time",
            // Only ContainerMetrics refers to it: definitions' own references are followed.
            "io.k8s.apimachinery.pkg.api.resource.Quantity",
            // ObjectMeta's.
            "io.k8s.apimachinery.pkg.apis.meta.v1.ManagedFieldsEntry",
        ] {
            assert!(defs.contains_key(name), "{name} missing: {:?}", defs.keys());
        }
        let node = table.with_defs(client_go::metrics::node_metrics_schema());
        assert_eq!(
            node["title"],
            "io.k8s.metrics.pkg.apis.metrics.v1beta1.NodeMetrics"
        );
        assert!(node["$defs"]["io.k8s.apimachinery.pkg.api.resource.Quantity"].is_object());
    }
}
