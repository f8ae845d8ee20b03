//! gRPC probes: the standard health check (`grpc.health.v1.Health/Check`) against the pod's
//! IP and port, as upstream's prober/grpc: healthy only when the answer is `SERVING`.
//!
//! The two messages are declared here (two fields in all) rather than generated from the
//! health proto, so the kubelet needs no extra build step.

use std::time::Duration;

use hyper_util::rt::TokioIo;
use tonic::transport::{Endpoint, Uri};

#[derive(Clone, PartialEq, prost::Message)]
struct HealthCheckRequest {
    #[prost(string, tag = "1")]
    service: String,
}

#[derive(Clone, PartialEq, prost::Message)]
struct HealthCheckResponse {
    #[prost(int32, tag = "1")]
    status: i32,
}

/// `ServingStatus` of grpc.health.v1, by number.
fn status_name(status: i32) -> &'static str {
    match status {
        1 => "SERVING",
        2 => "NOT_SERVING",
        3 => "SERVICE_UNKNOWN",
        _ => "UNKNOWN",
    }
}

/// Checks `service` at `addr` over a connection `connect` makes (so probes from another
/// network namespace work). The error is upstream's probe output.
pub async fn check<F, Fut, S>(
    addr: &str,
    service: &str,
    timeout: Duration,
    connect: F,
) -> Result<(), String>
where
    F: Fn() -> Fut + Send + Sync + Clone + 'static,
    Fut: std::future::Future<Output = Result<S, String>> + Send,
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let endpoint = Endpoint::from_shared(format!("http://{addr}"))
        .map_err(|e| e.to_string())?
        .connect_timeout(timeout)
        .timeout(timeout);
    let channel = endpoint
        .connect_with_connector(tower::service_fn(move |_: Uri| {
            let connect = connect.clone();
            async move {
                connect()
                    .await
                    .map(TokioIo::new)
                    .map_err(std::io::Error::other)
            }
        }))
        .await
        .map_err(|_| {
            format!(
                "timeout: failed to connect service {:?} within {}s",
                addr,
                timeout.as_secs()
            )
        })?;
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready()
        .await
        .map_err(|e| format!("error: health rpc failed: {e}"))?;
    let path = tonic::codegen::http::uri::PathAndQuery::from_static("/grpc.health.v1.Health/Check");
    let request = tonic::Request::new(HealthCheckRequest {
        service: service.to_owned(),
    });
    let codec = tonic_prost::ProstCodec::<HealthCheckRequest, HealthCheckResponse>::default();
    let response = match tokio::time::timeout(timeout, grpc.unary(request, path, codec)).await {
        Err(_) => {
            return Err(format!(
                "timeout: health rpc did not complete within {}s",
                timeout.as_secs()
            ));
        }
        Ok(Err(status)) if status.code() == tonic::Code::Unimplemented => {
            return Err(
                "error: this server does not implement the grpc health protocol \
                 (grpc.health.v1.Health): "
                    .to_owned()
                    + status.message(),
            );
        }
        Ok(Err(status)) => {
            return Err(format!(
                "error: health rpc probe failed: {:?}: {}",
                status.code(),
                status.message()
            ));
        }
        Ok(Ok(r)) => r.into_inner(),
    };
    match response.status {
        1 => Ok(()),
        s => Err(format!(
            "service unhealthy (responded with {:?})",
            status_name(s)
        )),
    }
}
