//! `pods/{name}/exec`, `/attach` and `/portforward` (upstream's `ExecREST`, `AttachREST`,
//! `PortForwardREST` and `streamLocation`): the pod and container are checked here, then the
//! client's upgrade request goes to the kubelet of the pod's node (`/exec`, `/attach`,
//! `/portForward`), which passes it on to the runtime's stream server; the switched
//! connection is spliced through both hops ([`streaming::proxy`]).
//!
//! The protocol is mostly whatever the client and the runtime agree on: SPDY/3.1 with
//! remotecommand v1–v4 or port-forward, or their WebSocket forms (v4 and older). Two the
//! runtime does not speak are terminated here, as upstream does: remotecommand over WebSocket
//! v5 (kubectl 1.30+, kube-rs), spoken as SPDY to the kubelet ([`translator`]), and
//! port-forward tunnelled in WebSocket (kubectl 1.31+, [`tunnel`]).

use std::sync::Arc;

use common::params::query_bool;
use common::query::{Query, escape};
use http::{Request, Response};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use serde_json::Value;
use streaming::remotecommand::StreamOptions;
use streaming::{translator, tunnel, websocket};

use crate::error::{ApiError, ApiResult};
use crate::handler::{ApiState, Body};

/// The kubelet path for the request: upstream's `streamLocation` with the stream options as
/// the kubelet names them (`input`, `output`, `error`, `tty`), in `url.Values.Encode` order.
fn kubelet_path(sub: &str, ns: &str, name: &str, container: Option<&str>, query: &Query) -> String {
    if sub == "portforward" {
        let ports: Vec<String> = query
            .all("ports")
            .iter()
            .flat_map(|v| v.split(','))
            .map(|p| p.trim().to_string())
            .filter(|p| !p.is_empty())
            .collect();
        let mut path = format!("/portForward/{ns}/{name}");
        if !ports.is_empty() {
            path.push_str(&format!("?port={}", escape(&ports.join(","))));
        }
        return path;
    }
    let mut params: Vec<String> = Vec::new();
    if sub == "exec" {
        for c in query.all("command") {
            params.push(format!("command={}", escape(&c)));
        }
    }
    for (ours, theirs) in [
        ("stderr", "error"),
        ("stdin", "input"),
        ("stdout", "output"),
        ("tty", "tty"),
    ] {
        if query_bool(query.get(ours)) {
            params.push(format!("{theirs}=1"));
        }
    }
    let verb = if sub == "exec" { "exec" } else { "attach" };
    let mut path = format!("/{verb}/{ns}/{name}/{}", container.unwrap_or_default());
    if !params.is_empty() {
        path.push('?');
        path.push_str(&params.join("&"));
    }
    path
}

/// Serves `sub` (`exec`, `attach` or `portforward`) of pod `ns/name`.
pub async fn serve(
    state: &Arc<ApiState>,
    ns: Option<&str>,
    name: &str,
    sub: &str,
    req: Request<Incoming>,
) -> ApiResult<Response<Body>> {
    let pods = state
        .catalog
        .find("", "v1", "pods")
        .ok_or_else(ApiError::not_found_path)?;
    let pod = state.registry.get(pods, ns, name).await?;
    let query = Query::parse(req.uri().query());
    let container = if sub == "portforward" {
        None
    } else {
        let given = query.get("container").filter(|c| !c.is_empty());
        Some(crate::pod_log::container_for(&pod, name, given)?)
    };
    let node_name = pod
        .pointer("/spec/nodeName")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if node_name.is_empty() {
        return Err(ApiError::bad_request(format!(
            "pod {name} does not have a host assigned"
        )));
    }
    if !streaming::is_upgrade_request(&req) {
        return Err(ApiError::bad_request("Upgrade request required"));
    }
    let (client, host, port) = crate::kubelet_client::for_node(state, node_name).await?;
    let namespace = ns.unwrap_or_default();
    let path = kubelet_path(sub, namespace, name, container.as_deref(), &query);
    let authority = if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    };
    let tls = client
        .dial(&host, port)
        .await
        .map_err(|e| ApiError::internal(format!("error dialing backend: {e:#}")))?;
    tracing::debug!(pod = %format!("{namespace}/{name}"), %sub, node = %node_name, "proxying a stream to the kubelet");
    let proxy_error = |e: &dyn std::fmt::Display| {
        ApiError::internal(format!("error proxying to the kubelet: {e}"))
    };
    // WebSocket v5 and the port-forward tunnel are terminated here (the runtime speaks
    // neither); everything else is negotiated end to end with the runtime.
    let resp = if sub != "portforward" && websocket::offers(&req, websocket::REMOTE_COMMAND_V5) {
        let on = |k: &str| query_bool(query.get(k));
        let opts = StreamOptions {
            stdin: on("stdin"),
            stdout: on("stdout"),
            stderr: on("stderr"),
            tty: on("tty"),
        };
        translator::translate(req, tls, &authority, &path, opts).map_err(ApiError::bad_request)?
    } else if sub == "portforward" && websocket::offers(&req, websocket::PORT_FORWARD_TUNNEL) {
        tunnel::tunnel(req, tls, &authority, &path)
            .await
            .map_err(|e| proxy_error(&e))?
    } else {
        streaming::proxy(req, tls, &authority, &path)
            .await
            .map_err(|e| proxy_error(&e))?
    };
    Ok(resp.map(|b| b.map_err(|never| match never {}).boxed()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kubelet_paths_as_upstream_stream_location() {
        let q = Query::parse(Some(
            "command=sh&command=-c&command=echo+hi%3B+exit+3&container=app&stdin=true&stdout=True&stderr=false&tty=1",
        ));
        assert_eq!(
            kubelet_path("exec", "default", "web", Some("app"), &q),
            "/exec/default/web/app?command=sh&command=-c&command=echo+hi%3B+exit+3&input=1&output=1&tty=1"
        );
        assert_eq!(
            kubelet_path(
                "attach",
                "default",
                "web",
                Some("app"),
                &Query::parse(Some("stdout=1&stderr=1"))
            ),
            "/attach/default/web/app?error=1&output=1"
        );
        assert_eq!(
            kubelet_path(
                "portforward",
                "ns",
                "web",
                None,
                &Query::parse(Some("ports=80%2C8080&ports=9000"))
            ),
            "/portForward/ns/web?port=80%2C8080%2C9000"
        );
        assert_eq!(
            kubelet_path("portforward", "ns", "web", None, &Query::default()),
            "/portForward/ns/web"
        );
    }
}
