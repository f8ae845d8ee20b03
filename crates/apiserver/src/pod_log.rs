//! `GET /api/v1/namespaces/{ns}/pods/{name}/log`: Kubernetes' `pods/log` subresource
//! (`pkg/registry/core/pod/rest/log.go`, `LogLocation`, the generic `LocationStreamer`).
//!
//! The options are validated here, the container defaulted, the node's kubelet found
//! (`status.addresses`, InternalIP first, port from `daemonEndpoints`), and the kubelet's
//! `/containerLogs` answer streamed through over TLS with the API server's kubelet-client
//! certificate. The kubelet's serving certificate is not verified (upstream's default when
//! no `--kubelet-certificate-authority` is given).

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Arc;

use common::params::query_bool;
use futures::StreamExt;
use http::{Response, StatusCode, header};
use http_body_util::{BodyExt, BodyStream, Empty, Limited, StreamBody};
use hyper::body::Frame;
use serde_json::{Value, json};

use crate::error::{ApiError, ApiResult};
use crate::handler::{ApiState, Body};

/// Most of an error answer read from a kubelet (upstream's maxReadLength).
const MAX_ERROR_BODY: usize = 50000;

/// `PodLogOptions` as the parameter codec decodes them from a query.
#[derive(Clone, Debug, Default)]
struct LogOptions {
    container: Option<String>,
    follow: bool,
    previous: bool,
    timestamps: bool,
    since_seconds: Option<i64>,
    /// As given (RFC 3339), re-sent to the kubelet at second precision.
    since_time: Option<time::OffsetDateTime>,
    tail_lines: Option<i64>,
    limit_bytes: Option<i64>,
    /// Skip verifying the kubelet's serving certificate for this request.
    insecure_skip_tls_verify_backend: bool,
}

impl LogOptions {
    fn decode(q: &HashMap<String, String>) -> ApiResult<Self> {
        let int = |k: &str| -> ApiResult<Option<i64>> {
            match q.get(k).map(String::as_str) {
                None | Some("") => Ok(None),
                Some(v) => v.parse::<i64>().map(Some).map_err(|_| {
                    ApiError::bad_request(format!(
                        "strconv.ParseInt: parsing {v:?}: invalid syntax"
                    ))
                }),
            }
        };
        let since_time = match q.get("sinceTime").map(String::as_str) {
            None | Some("") => None,
            Some(v) => Some(
                time::OffsetDateTime::parse(v, &time::format_description::well_known::Rfc3339)
                    .map_err(|_| {
                        ApiError::bad_request(format!(
                            "parsing time {v:?} as \"2006-01-02T15:04:05Z07:00\": cannot parse {v:?} as \"2006\""
                        ))
                    })?,
            ),
        };
        Ok(LogOptions {
            container: q.get("container").filter(|c| !c.is_empty()).cloned(),
            follow: query_bool(q.get("follow").map(String::as_str)),
            previous: query_bool(q.get("previous").map(String::as_str)),
            timestamps: query_bool(q.get("timestamps").map(String::as_str)),
            since_seconds: int("sinceSeconds")?,
            since_time,
            tail_lines: int("tailLines")?,
            limit_bytes: int("limitBytes")?,
            insecure_skip_tls_verify_backend: query_bool(
                q.get("insecureSkipTLSVerifyBackend").map(String::as_str),
            ),
        })
    }

    /// Upstream's `ValidatePodLogOptions`, as a 422 naming `PodLogOptions "<pod>"`.
    fn validate(&self, pod: &str) -> ApiResult<()> {
        let mut causes: Vec<(&str, &str, String)> = Vec::new();
        let invalid = |v: i64, detail: &str| format!("Invalid value: {v}: {detail}");
        if let Some(t) = self.tail_lines.filter(|t| *t < 0) {
            causes.push((
                "FieldValueInvalid",
                "tailLines",
                invalid(t, "must be greater than or equal to 0"),
            ));
        }
        if let Some(b) = self.limit_bytes.filter(|b| *b < 1) {
            causes.push((
                "FieldValueInvalid",
                "limitBytes",
                invalid(b, "must be greater than 0"),
            ));
        }
        match (self.since_seconds, self.since_time) {
            (Some(_), Some(_)) => causes.push((
                "FieldValueForbidden",
                "",
                "Forbidden: at most one of `sinceTime` or `sinceSeconds` may be specified".into(),
            )),
            (Some(s), None) if s < 1 => causes.push((
                "FieldValueInvalid",
                "sinceSeconds",
                invalid(s, "must be greater than 0"),
            )),
            _ => {}
        }
        if causes.is_empty() {
            return Ok(());
        }
        let summary: Vec<String> = causes.iter().map(|(_, f, m)| format!("{f}: {m}")).collect();
        let message = match summary.as_slice() {
            [one] => format!("PodLogOptions {pod:?} is invalid: {one}"),
            many => format!("PodLogOptions {pod:?} is invalid: [{}]", many.join(", ")),
        };
        let causes: Vec<Value> = causes
            .iter()
            .map(|(r, f, m)| json!({"reason": r, "message": m, "field": f}))
            .collect();
        Err(ApiError {
            code: 422,
            reason: "Invalid",
            message,
            details: Some(
                json!({"name": pod, "group": "", "kind": "PodLogOptions", "causes": causes}),
            ),
        })
    }

    /// The kubelet's query (upstream's `url.Values.Encode`: sorted by key).
    fn kubelet_query(&self) -> String {
        let mut params: Vec<(&str, String)> = Vec::new();
        if self.follow {
            params.push(("follow", "true".into()));
        }
        if let Some(b) = self.limit_bytes {
            params.push(("limitBytes", b.to_string()));
        }
        if self.previous {
            params.push(("previous", "true".into()));
        }
        if let Some(s) = self.since_seconds {
            params.push(("sinceSeconds", s.to_string()));
        }
        if let Some(t) = self.since_time {
            let t = t.replace_nanosecond(0).unwrap_or(t);
            let s = t
                .format(&time::format_description::well_known::Rfc3339)
                .unwrap_or_default();
            params.push(("sinceTime", s.replace(':', "%3A").replace('+', "%2B")));
        }
        if let Some(t) = self.tail_lines {
            params.push(("tailLines", t.to_string()));
        }
        if self.timestamps {
            params.push(("timestamps", "true".into()));
        }
        params
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("&")
    }
}

/// Names of the pod's containers in upstream's visiting order: init, regular, ephemeral.
fn container_names(pod: &Value) -> Vec<String> {
    ["initContainers", "containers", "ephemeralContainers"]
        .iter()
        .flat_map(|k| {
            pod.pointer(&format!("/spec/{k}"))
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default()
        })
        .filter_map(|c| c.get("name").and_then(Value::as_str).map(str::to_owned))
        .collect()
}

/// Upstream's `validateContainer`: the container given (it must exist), else the only one.
pub(crate) fn container_for(pod: &Value, name: &str, given: Option<&str>) -> ApiResult<String> {
    let all = container_names(pod);
    match given {
        Some(c) if all.iter().any(|n| n == c) => Ok(c.to_owned()),
        Some(c) => Err(ApiError::bad_request(format!(
            "container {c} is not valid for pod {name}"
        ))),
        None => {
            let regular = pod
                .pointer("/spec/containers")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            match regular.as_slice() {
                [one] => Ok(one
                    .get("name")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned()),
                [] => Err(ApiError::bad_request(format!(
                    "a container name must be specified for pod {name}"
                ))),
                _ => Err(ApiError::bad_request(format!(
                    "a container name must be specified for pod {name}, choose one of: [{}]",
                    all.join(" ")
                ))),
            }
        }
    }
}

/// The error a kubelet's non-2xx answer becomes (upstream's `GenericHttpResponseChecker`).
fn kubelet_error(code: u16, body: &str, pod: &str) -> ApiError {
    match code {
        500 => ApiError {
            details: Some(json!({"causes": [{"message": body}]})),
            ..ApiError::new(
                500,
                "InternalError",
                format!("Internal error occurred: {body}"),
            )
        },
        400 => ApiError::bad_request(body),
        _ => {
            let (reason, message) = match code {
                401 => (
                    "Unauthorized",
                    "the server has asked for the client to provide credentials".to_owned(),
                ),
                403 => ("Forbidden", body.to_owned()),
                404 => (
                    "NotFound",
                    "the server could not find the requested resource".to_owned(),
                ),
                405 => (
                    "MethodNotAllowed",
                    "the server does not allow this method on the requested resource".to_owned(),
                ),
                409 => ("Conflict", "the server reported a conflict".to_owned()),
                422 => (
                    "Invalid",
                    "the server rejected our request due to an error in our request".to_owned(),
                ),
                c if c >= 500 => (
                    "InternalError",
                    format!(
                        "an error on the server ({body:?}) has prevented the request from succeeding"
                    ),
                ),
                c => (
                    "",
                    format!(
                        "the server responded with the status code {c} but did not return more information"
                    ),
                ),
            };
            ApiError {
                details: Some(json!({"name": pod, "group": "", "kind": "pods/log"})),
                ..ApiError::new(code, reason, format!("{message} ( pods/log {pod})"))
            }
        }
    }
}

/// Serves `pods/{name}/log`.
pub async fn get(
    state: &Arc<ApiState>,
    ns: Option<&str>,
    name: &str,
    query: &HashMap<String, String>,
) -> ApiResult<Response<Body>> {
    let opts = LogOptions::decode(query)?;
    opts.validate(name)?;
    let pods = state
        .catalog
        .find("", "v1", "pods")
        .ok_or_else(ApiError::not_found_path)?;
    let pod = state.registry.get(pods, ns, name).await?;
    let container = container_for(&pod, name, opts.container.as_deref())?;
    let node_name = pod
        .pointer("/spec/nodeName")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if node_name.is_empty() {
        // Upstream's LogLocation has no location for an unscheduled pod: an empty answer.
        let mut resp = Response::new(Empty::new().boxed());
        *resp.status_mut() = StatusCode::NO_CONTENT;
        return Ok(resp);
    }
    let (client, host, port) = crate::kubelet_client::for_node(state, node_name).await?;
    let namespace = ns.unwrap_or_default();
    let path = format!("/containerLogs/{namespace}/{name}/{container}");
    let q = opts.kubelet_query();
    let path_and_query = if q.is_empty() {
        path
    } else {
        format!("{path}?{q}")
    };
    let authority = if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    };
    let url = format!("https://{authority}{path_and_query}");
    let fail = |e: String| ApiError::new(500, "", format!("Get {url:?}: {e}"));
    let resp = client
        .get(
            &host,
            port,
            &authority,
            &path_and_query,
            opts.insecure_skip_tls_verify_backend,
        )
        .await
        .map_err(|e| fail(format!("{e:#}")))?;
    let code = resp.status().as_u16();
    if !(200..=206).contains(&code) {
        let body = Limited::new(resp.into_body(), MAX_ERROR_BODY)
            .collect()
            .await
            .map(|b| b.to_bytes())
            .unwrap_or_default();
        return Err(kubelet_error(code, &String::from_utf8_lossy(&body), name));
    }
    tracing::debug!(pod = %format!("{namespace}/{name}"), %container, node = %node_name, follow = opts.follow, "streaming logs from the kubelet");
    // Each chunk is passed on as it comes (hyper writes every frame out), so a follower sees
    // lines as they are written; a dropped client drops the kubelet connection with it.
    let stream = BodyStream::new(resp.into_body())
        .take_while(|r| futures::future::ready(r.is_ok()))
        .filter_map(|r| {
            futures::future::ready(
                r.ok()
                    .and_then(|f| f.into_data().ok())
                    .map(|d| Ok::<_, Infallible>(Frame::data(d))),
            )
        });
    let mut out = Response::new(BodyExt::boxed(StreamBody::new(stream)));
    out.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("text/plain"),
    );
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(s: &str) -> HashMap<String, String> {
        s.split('&')
            .filter_map(|p| p.split_once('='))
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect()
    }

    #[test]
    fn options_validate_like_upstream() {
        let e = LogOptions::decode(&q("tailLines=-1"))
            .and_then(|o| o.validate("p"))
            .err()
            .map(|e| (e.code, e.message));
        assert_eq!(
            e,
            Some((
                422,
                "PodLogOptions \"p\" is invalid: tailLines: Invalid value: -1: must be greater than or equal to 0".to_owned()
            ))
        );
        assert_eq!(
            LogOptions::decode(&q("tailLines=x")).err().map(|e| e.code),
            Some(400)
        );
        let o = LogOptions::decode(&q(
            "follow=true&tailLines=2&timestamps=true&sinceTime=2024-01-01T00:00:00.5Z&limitBytes=9",
        ))
        .unwrap_or_default();
        assert_eq!(
            o.kubelet_query(),
            "follow=true&limitBytes=9&sinceTime=2024-01-01T00%3A00%3A00Z&tailLines=2&timestamps=true"
        );
    }

    #[test]
    fn containers_default_like_upstream() {
        let pod = json!({"spec": {"initContainers": [{"name": "i"}], "containers": [{"name": "a"}, {"name": "b"}]}});
        let msg = |r: ApiResult<String>| r.map_err(|e| e.message);
        assert_eq!(
            msg(container_for(&pod, "p", None)),
            Err("a container name must be specified for pod p, choose one of: [i a b]".into())
        );
        assert_eq!(
            msg(container_for(&pod, "p", Some("c"))),
            Err("container c is not valid for pod p".into())
        );
        assert_eq!(msg(container_for(&pod, "p", Some("i"))), Ok("i".into()));
        let one = json!({"spec": {"containers": [{"name": "a"}]}});
        assert_eq!(msg(container_for(&one, "p", None)), Ok("a".into()));
        let e = kubelet_error(404, "pod \"p\" does not exist", "p");
        assert_eq!(
            e.message,
            "the server could not find the requested resource ( pods/log p)"
        );
    }
}
