//! Which pods expose metrics and reading them: a running pod with an IP and the common
//! `prometheus.io/scrape: "true"` annotation, at `prometheus.io/port` (else its first
//! declared container port) and `prometheus.io/path` (default `/metrics`), over plain HTTP.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use anyhow::{Context as _, bail};
use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Limited};
use hyper_util::rt::TokioIo;
use k8s_openapi::api::core::v1::{Container, Pod, PodSpec, PodStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use tokio::net::TcpStream;

const SCRAPE: &str = "prometheus.io/scrape";
const PORT: &str = "prometheus.io/port";
const PATH: &str = "prometheus.io/path";
const SCHEME: &str = "prometheus.io/scheme";
/// Largest metrics page read from a pod.
const MAX_BODY: usize = 4 << 20;

/// Where to read a pod's metrics from, if it asks to be scraped.
#[derive(Clone, Debug, PartialEq)]
pub struct Target {
    pub addr: SocketAddr,
    pub path: String,
}

/// What the metrics server keeps of a pod in its informer: its identity and labels (for the
/// metrics APIs' label selectors), and what [`target`] reads. A full pod is ~12 KiB on the
/// heap; this is a few hundred bytes (`benches/pipeline.rs`).
pub fn trim_pod(pod: Pod) -> Pod {
    let Pod {
        metadata,
        spec,
        status,
        ..
    } = pod;
    let annotations = metadata.annotations.map(|a| {
        a.into_iter()
            .filter(|(k, _)| k.starts_with("prometheus.io/"))
            .collect::<std::collections::BTreeMap<_, _>>()
    });
    let scraped = annotations
        .as_ref()
        .is_some_and(|a| a.get(SCRAPE).map(String::as_str) == Some("true"));
    let spec = spec.filter(|_| scraped).map(|s| PodSpec {
        containers: s
            .containers
            .into_iter()
            .map(|c| Container {
                name: c.name,
                ports: c.ports,
                ..Default::default()
            })
            .collect(),
        ..Default::default()
    });
    Pod {
        metadata: ObjectMeta {
            name: metadata.name,
            namespace: metadata.namespace,
            uid: metadata.uid,
            resource_version: metadata.resource_version,
            labels: metadata.labels,
            annotations: annotations.filter(|a| !a.is_empty()),
            ..Default::default()
        },
        spec,
        status: status.map(|s| PodStatus {
            phase: s.phase,
            pod_ip: s.pod_ip,
            ..Default::default()
        }),
    }
}

/// The pod's metrics endpoint: `None` unless it opts in, runs, has an IP and a port, and
/// asks for plain HTTP.
pub fn target(pod: &Pod) -> Option<Target> {
    let annotations = pod.metadata.annotations.as_ref()?;
    if annotations.get(SCRAPE).map(String::as_str) != Some("true") {
        return None;
    }
    if annotations.get(SCHEME).is_some_and(|s| s != "http") {
        return None;
    }
    let status = pod.status.as_ref()?;
    if status.phase.as_deref() != Some("Running") {
        return None;
    }
    let ip: IpAddr = status.pod_ip.as_deref()?.parse().ok()?;
    let port = match annotations.get(PORT) {
        Some(p) => p.parse::<u16>().ok()?,
        None => pod
            .spec
            .as_ref()?
            .containers
            .iter()
            .flat_map(|c| c.ports.iter().flatten())
            .find(|p| p.protocol.as_deref().unwrap_or("TCP") == "TCP")
            .and_then(|p| u16::try_from(p.container_port).ok())?,
    };
    let path = annotations
        .get(PATH)
        .filter(|p| p.starts_with('/'))
        .cloned()
        .unwrap_or_else(|| "/metrics".into());
    Some(Target {
        addr: SocketAddr::new(ip, port),
        path,
    })
}

/// GETs a target's metrics page, within `timeout`.
pub async fn fetch(t: &Target, timeout: Duration) -> anyhow::Result<String> {
    tokio::time::timeout(timeout, fetch_inner(t))
        .await
        .with_context(|| format!("GET http://{}{}: timed out", t.addr, t.path))?
}

async fn fetch_inner(t: &Target) -> anyhow::Result<String> {
    let url = format!("http://{}{}", t.addr, t.path);
    let tcp = TcpStream::connect(t.addr)
        .await
        .with_context(|| format!("GET {url}"))?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
        .await
        .with_context(|| format!("GET {url}"))?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    let req = http::Request::get(t.path.as_str())
        .header(http::header::HOST, t.addr.to_string())
        .header(http::header::USER_AGENT, crate::USER_AGENT)
        .header(http::header::ACCEPT, "text/plain;version=0.0.4")
        .body(Empty::<Bytes>::new())
        .context("building the request")?;
    let resp = sender
        .send_request(req)
        .await
        .with_context(|| format!("GET {url}"))?;
    let status = resp.status();
    let body = Limited::new(resp.into_body(), MAX_BODY)
        .collect()
        .await
        .map_err(|e| anyhow::anyhow!("GET {url}: reading the body: {e}"))?
        .to_bytes();
    if !status.is_success() {
        bail!("GET {url}: {status}");
    }
    String::from_utf8(body.to_vec()).with_context(|| format!("GET {url}: not UTF-8"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(annotations: &[(&str, &str)], phase: &str) -> Pod {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": "web", "namespace": "default",
                         "annotations": annotations.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect::<std::collections::BTreeMap<_, _>>()},
            "spec": {"containers": [{"name": "c", "ports": [{"containerPort": 8080}]}]},
            "status": {"phase": phase, "podIP": "10.42.0.7"},
        }))
        .unwrap()
    }

    #[test]
    fn a_trimmed_pod_keeps_its_labels_and_its_target() {
        let mut p = pod(
            &[(SCRAPE, "true"), ("kubectl.kubernetes.io/restartedAt", "x")],
            "Running",
        );
        p.metadata.labels = Some([("app".to_string(), "web".to_string())].into());
        p.spec.as_mut().unwrap().containers[0].image = Some("web:1".into());
        let t = trim_pod(p.clone());
        assert_eq!(target(&t), target(&p));
        assert_eq!(t.metadata.labels, p.metadata.labels);
        assert_eq!(t.metadata.annotations.unwrap().len(), 1);
        assert_eq!(t.spec.unwrap().containers[0].image, None);
        // A pod that is not scraped keeps no spec at all.
        let t = trim_pod(pod(&[], "Running"));
        assert!(t.spec.is_none() && t.metadata.annotations.is_none());
        assert_eq!(t.status.unwrap().phase.as_deref(), Some("Running"));
    }

    #[test]
    fn pods_opt_in_by_annotation() {
        let t = target(&pod(&[(SCRAPE, "true")], "Running")).unwrap();
        assert_eq!(
            (t.addr.to_string(), t.path.as_str()),
            ("10.42.0.7:8080".into(), "/metrics")
        );
        let t = target(&pod(
            &[(SCRAPE, "true"), (PORT, "9102"), (PATH, "/stats")],
            "Running",
        ))
        .unwrap();
        assert_eq!((t.addr.port(), t.path.as_str()), (9102, "/stats"));
        assert_eq!(target(&pod(&[], "Running")), None);
        assert_eq!(target(&pod(&[(SCRAPE, "true")], "Pending")), None);
        assert_eq!(
            target(&pod(&[(SCRAPE, "true"), (SCHEME, "https")], "Running")),
            None
        );
        assert_eq!(
            target(&pod(&[(SCRAPE, "true"), (PORT, "x")], "Running")),
            None
        );
    }
}
