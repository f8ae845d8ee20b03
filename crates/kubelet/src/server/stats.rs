//! `GET|POST /stats/summary` (upstream's stats handler: the Summary API as indented JSON,
//! `?only_cpu_and_memory=true` for CPU and memory only), `/metrics/resource` and
//! `/metrics/cadvisor` (Prometheus text) — all from [`crate::stats::StatsProvider`].

use bytes::Bytes;
use http::{Response, StatusCode, header};
use http_body_util::{BodyExt, Full};
use tracing::error;

use super::{Body, ServerState, text};
use crate::stats::prometheus::CONTENT_TYPE;
use crate::stats::summary::to_json;

fn body(content_type: &'static str, bytes: impl Into<Bytes>) -> Response<Body> {
    let mut resp = Response::new(Full::new(bytes.into()).boxed());
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static(content_type),
    );
    resp
}

/// Whether the query asks for CPU and memory only: exactly one `only_cpu_and_memory`, `true`.
pub fn only_cpu_and_memory(query: Option<&str>) -> bool {
    common::query::Query::parse(query).all("only_cpu_and_memory") == ["true"]
}

pub(super) async fn summary(state: &ServerState, query: Option<&str>) -> Response<Body> {
    let result = state
        .stats
        .summary(only_cpu_and_memory(query))
        .await
        .and_then(|s| Ok(to_json(&s)?));
    match result {
        Ok(json) => body("application/json", json),
        Err(e) => {
            let msg = format!("Internal Error: {e:#}");
            error!(request = "/stats/summary", %msg, "HTTP InternalServerError");
            text(StatusCode::INTERNAL_SERVER_ERROR, msg)
        }
    }
}

pub(super) async fn resource_metrics(state: &ServerState) -> Response<Body> {
    body(CONTENT_TYPE, state.stats.resource_metrics().await)
}

pub(super) async fn cadvisor_metrics(state: &ServerState) -> Response<Body> {
    body(CONTENT_TYPE, state.stats.cadvisor_metrics().await)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_cpu_and_memory_as_upstream_reads_it() {
        assert!(only_cpu_and_memory(Some("only_cpu_and_memory=true")));
        assert!(!only_cpu_and_memory(Some("only_cpu_and_memory=1")));
        assert!(!only_cpu_and_memory(Some(
            "only_cpu_and_memory=true&only_cpu_and_memory=true"
        )));
        assert!(!only_cpu_and_memory(None));
    }
}
