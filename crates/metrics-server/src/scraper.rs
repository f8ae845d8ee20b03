//! Scraping kubelets (metrics-server's `scraper`): every node's `/metrics/resource` at once
//! (a bounded number in flight), each within a timeout, over the API server's kubelet
//! client; a node that fails is logged and keeps its previous points.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, bail};
use apiserver::kubelet_client::{KubeletClient, node_endpoint};
use futures::StreamExt;
use http_body_util::{BodyExt, Limited};
use k8s_openapi::api::core::v1::Node;
use k8s_openapi::jiff::Timestamp;
use tracing::{debug, warn};

use crate::decode::resource_metrics;
use crate::prom_text;
use crate::storage::{NodeScrape, Storage};

/// Kubelets scraped at once.
const CONCURRENCY: usize = 32;
/// Largest `/metrics/resource` read (a node with 110 pods writes a few hundred KiB).
const MAX_BODY: usize = 16 << 20;

/// Reaches kubelets and files what they report.
pub struct Scraper {
    kubelet: Arc<KubeletClient>,
    /// How long one node's scrape may take (metrics-server's `--kubelet-request-timeout`).
    timeout: Duration,
}

impl Scraper {
    pub fn new(kubelet: Arc<KubeletClient>, timeout: Duration) -> Self {
        Scraper { kubelet, timeout }
    }

    /// How long one scrape may take.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Scrapes every node in `nodes` and files the results.
    pub async fn scrape_all(&self, nodes: &[Arc<Node>], storage: &Storage) {
        let results = futures::stream::iter(nodes.to_vec())
            .map(|node| async move {
                let name = node.metadata.name.clone().unwrap_or_default();
                let got = tokio::time::timeout(self.timeout, self.scrape(&node)).await;
                (name, got)
            })
            .buffer_unordered(CONCURRENCY)
            .collect::<Vec<_>>()
            .await;
        for (name, got) in results {
            match got {
                Ok(Ok(scrape)) => {
                    debug!(node = %name, pods = scrape.pods.len(), "scraped");
                    storage.store(&name, scrape);
                }
                Ok(Err(e)) => {
                    warn!(node = %name, error = %format!("{e:#}"), "scraping the kubelet failed")
                }
                Err(_) => {
                    warn!(node = %name, timeout = ?self.timeout, "scraping the kubelet timed out")
                }
            }
        }
    }

    /// One node's `/metrics/resource`, decoded.
    pub async fn scrape(&self, node: &Node) -> anyhow::Result<NodeScrape> {
        let (host, port) = node_endpoint(node).map_err(|e| anyhow::anyhow!(e.message))?;
        let authority = if host.contains(':') {
            format!("[{host}]:{port}")
        } else {
            format!("{host}:{port}")
        };
        let resp = self
            .kubelet
            .get(&host, port, &authority, "/metrics/resource", false)
            .await?;
        let status = resp.status();
        let body = Limited::new(resp.into_body(), MAX_BODY)
            .collect()
            .await
            .map_err(|e| anyhow::anyhow!("reading the response: {e}"))?
            .to_bytes();
        if !status.is_success() {
            bail!("{status}: {}", String::from_utf8_lossy(&body).trim());
        }
        let text = std::str::from_utf8(&body).context("the response is not UTF-8")?;
        let exposition = prom_text::parse(text).map_err(|e| anyhow::anyhow!("decoding: {e}"))?;
        Ok(resource_metrics(
            &exposition,
            Timestamp::now().as_millisecond(),
        ))
    }
}
