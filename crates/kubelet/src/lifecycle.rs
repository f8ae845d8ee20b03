//! Container lifecycle hooks (upstream's pkg/kubelet/lifecycle): `postStart` runs right after
//! a container starts (a failure kills it, to be restarted by policy), `preStop` before it is
//! stopped, within its grace period.
//!
//! exec and httpGet handlers run exactly as probes do (same exec and HTTP client, same rule
//! that only the pod's own IP is dialled), so they are run through the [`Prober`]; `sleep`
//! waits here.

use std::net::IpAddr;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Container, LifecycleHandler, Probe};

use crate::prober::{ProbeResult, Prober};

/// Which hook, for messages.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Hook {
    PostStart,
    PreStop,
}

/// Runs `handler` for container `c` (runtime ID `id`) of the pod `pod` ("name_namespace(uid)"),
/// giving up after `limit`. The error is upstream's event message.
pub async fn run(
    prober: &Prober,
    handler: &LifecycleHandler,
    c: &Container,
    id: &str,
    pod_ip: Option<IpAddr>,
    pod: &str,
    limit: Duration,
) -> Result<(), String> {
    if let Some(sleep) = &handler.sleep {
        let secs = u64::try_from(sleep.seconds).unwrap_or(0);
        tokio::time::sleep(Duration::from_secs(secs).min(limit)).await;
        return Ok(());
    }
    let probe = Probe {
        exec: handler.exec.clone(),
        http_get: handler.http_get.clone(),
        tcp_socket: handler.tcp_socket.clone(),
        timeout_seconds: Some(i32::try_from(limit.as_secs().max(1)).unwrap_or(i32::MAX)),
        ..Default::default()
    };
    let why = match prober.run(&probe, c, id, pod_ip).await {
        ProbeResult::Success => return Ok(()),
        ProbeResult::Failure(why) => why,
    };
    Err(if let Some(exec) = &handler.exec {
        // Go's %v of the command: [sh -c echo hi].
        format!(
            "Exec lifecycle hook ([{}]) for Container {:?} in Pod {:?} failed - error: {why}",
            exec.command.clone().unwrap_or_default().join(" "),
            c.name,
            pod
        )
    } else if let Some(http) = &handler.http_get {
        format!(
            "HTTP lifecycle hook ({}) for Container {:?} in Pod {:?} failed - error: {why}",
            http.path.as_deref().unwrap_or("/"),
            c.name,
            pod
        )
    } else {
        format!(
            "lifecycle hook for Container {:?} in Pod {:?} failed - error: {why}",
            c.name, pod
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::SleepAction;

    #[tokio::test]
    async fn sleep_is_capped_by_the_limit() {
        let prober = Prober::new(crate::cri::RuntimeClient::lazy("/nonexistent.sock"), None);
        let handler = LifecycleHandler {
            sleep: Some(SleepAction { seconds: 30 }),
            ..Default::default()
        };
        let t = std::time::Instant::now();
        let r = run(
            &prober,
            &handler,
            &Container::default(),
            "id",
            None,
            "p_ns(u)",
            Duration::from_millis(50),
        )
        .await;
        assert_eq!(r, Ok(()));
        assert!(t.elapsed() < Duration::from_secs(5));
    }

    #[tokio::test]
    async fn an_http_hook_without_a_pod_ip_fails_with_upstreams_message() {
        let prober = Prober::new(crate::cri::RuntimeClient::lazy("/nonexistent.sock"), None);
        let handler: LifecycleHandler = serde_json::from_value(serde_json::json!({
            "httpGet": {"path": "/bye", "port": 80}
        }))
        .unwrap_or_default();
        let c = Container {
            name: "web".into(),
            ..Default::default()
        };
        let r = run(
            &prober,
            &handler,
            &c,
            "id",
            None,
            "p_ns(u)",
            Duration::from_secs(1),
        )
        .await;
        assert_eq!(
            r,
            Err(
                "HTTP lifecycle hook (/bye) for Container \"web\" in Pod \"p_ns(u)\" failed - \
                 error: the pod has no IP yet"
                    .into()
            )
        );
    }
}
