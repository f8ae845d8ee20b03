//! `exec`, `attach` and `portForward` on the kubelet API (upstream's `getExec`, `getAttach`,
//! `getPortForward` and `proxyStream`): the kubelet asks the runtime (CRI `Exec`, `Attach`,
//! `PortForward`) for a one-time URL on its stream server and passes the client's upgraded
//! connection through to it. The runtime's stream server speaks the protocols (SPDY/3.1
//! remotecommand v1–v4 and port-forward, and their WebSocket forms); the kubelet never reads
//! the frames.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use http::{Request, Response, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use tokio::net::{TcpSocket, TcpStream};
use tracing::debug;

use common::query::Query;

use crate::cri::{RuntimeClient, api};
use crate::kuberuntime::{LABEL_CONTAINER_NAME, LABEL_POD_UID};
use crate::server::{Body, ServerState, text};
use ::streaming::NetnsDialer;

/// How long dialing the runtime's stream server may take.
const DIAL_TIMEOUT: Duration = Duration::from_secs(10);

/// Which streams a remote command wants (`input`, `output`, `error`, `tty` as the API server
/// names them for the kubelet, each `1` when wanted).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct StreamOptions {
    pub stdin: bool,
    pub stdout: bool,
    pub stderr: bool,
    pub tty: bool,
}

impl StreamOptions {
    /// Upstream's `NewOptions`: at least one stream, and no separate stderr with a TTY.
    pub fn from_query(q: &Query) -> Result<Self, String> {
        let on = |k: &str| q.get(k) == Some("1");
        let mut o = StreamOptions {
            stdin: on("input"),
            stdout: on("output"),
            stderr: on("error"),
            tty: on("tty"),
        };
        if o.tty && o.stderr {
            o.stderr = false;
        }
        if !(o.stdin || o.stdout || o.stderr) {
            return Err("you must specify at least 1 of stdin, stdout, stderr".into());
        }
        Ok(o)
    }
}

/// What a stream request is for.
pub enum Target<'a> {
    Exec { container: &'a str },
    Attach { container: &'a str },
    PortForward,
}

/// Serves `/exec`, `/attach` and `/portForward` for pod `ns/name` (and `uid`, when the path
/// names one).
pub async fn serve(
    state: &ServerState,
    ns: &str,
    name: &str,
    uid: Option<&str>,
    target: Target<'_>,
    req: Request<Incoming>,
) -> Response<Body> {
    let query = Query::parse(req.uri().query());
    let Some(pod) = state.workers.pod(ns, name) else {
        return text(StatusCode::NOT_FOUND, "pod does not exist");
    };
    let pod_uid = pod.metadata.uid.clone().unwrap_or_default();
    if uid.is_some_and(|u| u != pod_uid) {
        return text(StatusCode::NOT_FOUND, "pod not found");
    }
    let url = match &target {
        Target::Exec { container } | Target::Attach { container } => {
            let opts = match StreamOptions::from_query(&query) {
                Ok(o) => o,
                Err(e) => return text(StatusCode::BAD_REQUEST, e),
            };
            let Some(id) = running_container(&state.cri, &pod_uid, container).await else {
                return text(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    format!("container not found ({container:?})"),
                );
            };
            if let Target::Exec { .. } = target {
                let cmd = query.all("command");
                state
                    .cri
                    .exec(api::ExecRequest {
                        container_id: id,
                        cmd,
                        tty: opts.tty,
                        stdin: opts.stdin,
                        stdout: opts.stdout,
                        stderr: opts.stderr,
                    })
                    .await
            } else {
                state
                    .cri
                    .attach(api::AttachRequest {
                        container_id: id,
                        stdin: opts.stdin,
                        tty: opts.tty,
                        stdout: opts.stdout,
                        stderr: opts.stderr,
                    })
                    .await
            }
        }
        Target::PortForward => {
            let Some(sandbox) = ready_sandbox(&state.cri, &pod_uid).await else {
                return text(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    format!("failed to find sandboxID for pod {name}_{ns}({pod_uid})"),
                );
            };
            // WebSocket clients name the ports in the query; SPDY clients per stream.
            let ports: Vec<i32> = query
                .all("port")
                .iter()
                .flat_map(|p| p.split(','))
                .filter_map(|p| p.trim().parse().ok())
                .collect();
            state.cri.port_forward(&sandbox, &ports).await
        }
    };
    let url = match url {
        Ok(u) => u,
        Err(e) if e.is_not_found() => return text(StatusCode::NOT_FOUND, e.to_string()),
        Err(e) => return text(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    };
    let Some((addr, path)) = split_url(&url) else {
        return text(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("the runtime answered a stream URL this kubelet cannot reach: {url}"),
        );
    };
    let backend = match dial(state.dialer.as_deref(), addr).await {
        Ok(s) => s,
        Err(e) => {
            return text(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("error dialing backend: {e}"),
            );
        }
    };
    debug!(pod = %format!("{ns}/{name}"), %url, "proxying a stream to the runtime");
    match ::streaming::proxy(req, backend, &addr.to_string(), &path).await {
        Ok(resp) => resp.map(|b| b.map_err(|never| match never {}).boxed()),
        Err(e) => text(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

/// The running container `name` of pod `uid`, by the runtime's own record.
pub(crate) async fn running_container(
    cri: &RuntimeClient,
    uid: &str,
    name: &str,
) -> Option<String> {
    let filter = api::ContainerFilter {
        state: Some(api::ContainerStateValue {
            state: api::ContainerState::ContainerRunning as i32,
        }),
        label_selector: HashMap::from([
            (LABEL_POD_UID.to_owned(), uid.to_owned()),
            (LABEL_CONTAINER_NAME.to_owned(), name.to_owned()),
        ]),
        ..Default::default()
    };
    let mut found = cri.list_containers(Some(filter)).await.ok()?;
    found.sort_by_key(|c| std::cmp::Reverse(c.created_at));
    found.into_iter().next().map(|c| c.id)
}

/// The pod's ready sandbox.
async fn ready_sandbox(cri: &RuntimeClient, uid: &str) -> Option<String> {
    let filter = api::PodSandboxFilter {
        state: Some(api::PodSandboxStateValue {
            state: api::PodSandboxState::SandboxReady as i32,
        }),
        label_selector: HashMap::from([(LABEL_POD_UID.to_owned(), uid.to_owned())]),
        ..Default::default()
    };
    let mut found = cri.list_pod_sandbox(Some(filter)).await.ok()?;
    found.sort_by_key(|s| std::cmp::Reverse(s.created_at));
    found.into_iter().next().map(|s| s.id)
}

/// `http://127.0.0.1:39915/exec/AbCd` → (address, `/exec/AbCd`). Only plain HTTP to an IP:
/// the runtime's stream server is configured to listen on loopback.
fn split_url(url: &str) -> Option<(SocketAddr, String)> {
    let rest = url.strip_prefix("http://")?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    Some((authority.parse().ok()?, path.to_owned()))
}

/// Connects to the stream server from the network namespace the runtime runs in.
async fn dial(dialer: Option<&NetnsDialer>, addr: SocketAddr) -> std::io::Result<TcpStream> {
    let socket = match dialer {
        Some(d) => d.socket(addr.is_ipv6()).await?,
        None if addr.is_ipv6() => TcpSocket::new_v6()?,
        None => TcpSocket::new_v4()?,
    };
    let stream = tokio::time::timeout(DIAL_TIMEOUT, socket.connect(addr))
        .await
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "i/o timeout"))??;
    let _ = stream.set_nodelay(true);
    Ok(stream)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_options_as_upstream() {
        let q = Query::parse(Some(
            "command=sh&command=-c&command=echo%20hi&output=1&error=1&tty=1",
        ));
        assert_eq!(q.all("command"), ["sh", "-c", "echo hi"]);
        let o = StreamOptions::from_query(&q).unwrap();
        assert_eq!(
            o,
            StreamOptions {
                stdin: false,
                stdout: true,
                stderr: false,
                tty: true
            },
            "a TTY has no separate stderr"
        );
        assert_eq!(
            StreamOptions::from_query(&Query::parse(Some("command=ls"))).unwrap_err(),
            "you must specify at least 1 of stdin, stdout, stderr"
        );
    }

    #[test]
    fn stream_urls() {
        assert_eq!(
            split_url("http://127.0.0.1:39915/exec/AbCd"),
            Some(("127.0.0.1:39915".parse().unwrap(), "/exec/AbCd".into()))
        );
        assert_eq!(split_url("https://x/exec"), None);
    }
}
