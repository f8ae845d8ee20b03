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
use http::{Request, Response};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use serde_json::Value;
use streaming::remotecommand::StreamOptions;
use streaming::{translator, tunnel, websocket};

use crate::error::{ApiError, ApiResult};
use crate::handler::{ApiState, Body};

/// Every value of every query parameter, in order (`command` repeats).
fn query_pairs(q: Option<&str>) -> Vec<(String, String)> {
    q.unwrap_or("")
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (decode(k), decode(v))
        })
        .collect()
}

fn decode(s: &str) -> String {
    let s = s.replace('+', " ");
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let Some(b) = s
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        {
            out.push(b);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Go's `url.QueryEscape`.
fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// The kubelet path for the request: upstream's `streamLocation` with the stream options as
/// the kubelet names them (`input`, `output`, `error`, `tty`), in `url.Values.Encode` order.
fn kubelet_path(
    sub: &str,
    ns: &str,
    name: &str,
    container: Option<&str>,
    query: &[(String, String)],
) -> String {
    let get = |k: &str| query.iter().find(|(q, _)| q == k).map(|(_, v)| v.as_str());
    if sub == "portforward" {
        let ports: Vec<String> = query
            .iter()
            .filter(|(k, _)| k == "ports")
            .flat_map(|(_, v)| v.split(','))
            .map(|p| p.trim().to_string())
            .filter(|p| !p.is_empty())
            .collect();
        let mut path = format!("/portForward/{ns}/{name}");
        if !ports.is_empty() {
            path.push_str(&format!("?port={}", encode(&ports.join(","))));
        }
        return path;
    }
    let mut params: Vec<String> = Vec::new();
    if sub == "exec" {
        for (_, c) in query.iter().filter(|(k, _)| k == "command") {
            params.push(format!("command={}", encode(c)));
        }
    }
    for (ours, theirs) in [
        ("stderr", "error"),
        ("stdin", "input"),
        ("stdout", "output"),
        ("tty", "tty"),
    ] {
        if query_bool(get(ours)) {
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
    let query = query_pairs(req.uri().query());
    let container = if sub == "portforward" {
        None
    } else {
        let given = query
            .iter()
            .find(|(k, _)| k == "container")
            .map(|(_, v)| v.as_str())
            .filter(|c| !c.is_empty());
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
        let on = |k: &str| query_bool(query.iter().find(|(q, _)| q == k).map(|(_, v)| v.as_str()));
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
        let q = query_pairs(Some(
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
                &query_pairs(Some("stdout=1&stderr=1"))
            ),
            "/attach/default/web/app?error=1&output=1"
        );
        assert_eq!(
            kubelet_path(
                "portforward",
                "ns",
                "web",
                None,
                &query_pairs(Some("ports=80%2C8080&ports=9000"))
            ),
            "/portForward/ns/web?port=80%2C8080%2C9000"
        );
        assert_eq!(
            kubelet_path("portforward", "ns", "web", None, &[]),
            "/portForward/ns/web"
        );
    }
}
