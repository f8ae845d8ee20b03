//! `GET /pods` and `POST /run/...` (upstream's `getPods` and `getRun`).
//!
//! `/pods` is a v1 PodList of the pods bound to this kubelet, as it last saw them. `/run`
//! runs `cmd` (split on single spaces, as upstream's `strings.Split`) in a running container
//! through CRI ExecSync and answers stdout then stderr; a command that exits non-zero, or
//! fails to start, is a 500 with upstream's message and no output.

use std::time::Duration;

use bytes::Bytes;
use http::{Response, StatusCode, header};
use http_body_util::{BodyExt, Full};
use k8s_openapi::serde_json::json;

use super::{Body, ServerState, text};
use crate::cri::CriError;

/// The pods this kubelet runs.
pub(super) fn pods(state: &ServerState) -> Response<Body> {
    let pods = state.workers.pods();
    let items: Vec<&k8s_openapi::api::core::v1::Pod> = pods.iter().map(|p| p.as_ref()).collect();
    let list = json!({"kind": "PodList", "apiVersion": "v1", "metadata": {}, "items": items});
    match k8s_openapi::serde_json::to_vec(&list) {
        Ok(body) => json_response(body),
        Err(e) => text(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

/// Upstream's `writeJSONResponse`: a JSON content type on whatever the body is, and no
/// body (nor type) when there is nothing to write.
fn json_response(body: Vec<u8>) -> Response<Body> {
    let empty = body.is_empty();
    let mut resp = Response::new(Full::new(Bytes::from(body)).boxed());
    if !empty {
        resp.headers_mut().insert(
            header::CONTENT_TYPE,
            header::HeaderValue::from_static("application/json"),
        );
    }
    resp
}

/// `cmd` as upstream splits it: on every single space.
pub fn split_cmd(cmd: &str) -> Vec<&str> {
    cmd.split(' ').collect()
}

/// Runs `cmd` in `container` of pod `ns/name` (the pod with `uid` when the path names one).
pub(super) async fn run(
    state: &ServerState,
    ns: &str,
    name: &str,
    uid: Option<&str>,
    container: &str,
    cmd: &str,
) -> Response<Body> {
    let Some(pod) = state.workers.pod(ns, name) else {
        return text(StatusCode::NOT_FOUND, "pod does not exist");
    };
    let pod_uid = uid.map_or_else(
        || pod.metadata.uid.clone().unwrap_or_default(),
        str::to_owned,
    );
    let Some(id) = crate::streaming::running_container(&state.cri, &pod_uid, container).await
    else {
        return text(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("container not found ({container:?})"),
        );
    };
    let argv = split_cmd(cmd);
    // No timeout of its own, as upstream's RunInContainer (the CRI call's deadline remains).
    match state.cri.exec_sync(&id, &argv, Duration::ZERO).await {
        Ok(out) if out.exit_code == 0 => {
            let mut body = out.stdout;
            body.extend_from_slice(&out.stderr);
            json_response(body)
        }
        Ok(out) => text(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!(
                "command '{}' exited with {}: {}",
                argv.join(" "),
                out.exit_code,
                String::from_utf8_lossy(&out.stderr)
            ),
        ),
        Err(e) => text(StatusCode::INTERNAL_SERVER_ERROR, exec_error(&e, &argv)),
    }
}

/// A failed ExecSync as the Go CRI client reports it.
fn exec_error(e: &CriError, argv: &[&str]) -> String {
    match e {
        CriError::Rpc { status, .. } if status.code() == tonic::Code::DeadlineExceeded => {
            format!("command {:?} timed out", argv.join(" "))
        }
        CriError::Rpc { status, .. } => format!(
            "rpc error: code = {} desc = {}",
            go_code(status.code()),
            status.message()
        ),
        other => other.to_string(),
    }
}

/// grpc-go's name of a status code.
fn go_code(code: tonic::Code) -> String {
    match code {
        tonic::Code::Ok => "OK".into(),
        tonic::Code::Cancelled => "Canceled".into(),
        other => format!("{other:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_split_on_single_spaces() {
        assert_eq!(split_cmd("echo hi"), ["echo", "hi"]);
        assert_eq!(split_cmd("echo  hi"), ["echo", "", "hi"]);
        assert_eq!(split_cmd(""), [""]);
    }

    #[test]
    fn exec_errors_read_as_go_writes_them() {
        let rpc = |code| CriError::rpc("ExecSync", "id", tonic::Status::new(code, "boom"));
        assert_eq!(
            exec_error(&rpc(tonic::Code::Unknown), &["nope"]),
            "rpc error: code = Unknown desc = boom"
        );
        assert_eq!(
            exec_error(&rpc(tonic::Code::Cancelled), &["x"]),
            "rpc error: code = Canceled desc = boom"
        );
        assert_eq!(
            exec_error(&rpc(tonic::Code::DeadlineExceeded), &["sleep", "9"]),
            r#"command "sleep 9" timed out"#
        );
    }
}
