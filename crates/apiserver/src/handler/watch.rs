//! WATCH over HTTP (upstream's `endpoints/handlers/watch.go`): the registry's events as
//! newline-delimited JSON over a chunked response, as Tables or metadata when asked.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use common::params::query_bool;
use futures::StreamExt;
use http::{Response, header};
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;
use serde_json::{Value, json};

use super::negotiation::{Accept, partial_metadata};
use super::{ApiState, Body, list_query};
use crate::error::ApiResult;
use crate::registry::WatchEvent;
use crate::resources::ResourceInfo;
use crate::table::{self, IncludeObject};

/// A watch: newline-delimited JSON events over a chunked response, until the client goes,
/// `timeoutSeconds` passes or the store fails (then an ERROR event with the Status).
pub(super) async fn watch_response(
    state: &Arc<ApiState>,
    info: &ResourceInfo,
    ns: Option<&str>,
    query: &HashMap<String, String>,
    accept: &Accept,
) -> ApiResult<Response<Body>> {
    let q = list_query(info, query)?;
    let send_initial =
        common::params::query_opt_bool(query.get("sendInitialEvents").map(String::as_str));
    let events = state
        .registry
        .watch(
            info,
            ns,
            q.label,
            q.field,
            q.resource_version.as_deref(),
            send_initial,
        )
        .await;
    let (events, progress) = match events {
        Ok(w) => (w.events, w.progress),
        // A too-old resourceVersion is reported inside the stream, as Kubernetes does.
        Err(e) if e.code == 410 => (futures::stream::iter(vec![Err(e)]).boxed(), Arc::default()),
        Err(e) => return Err(e),
    };
    let timeout = query
        .get("timeoutSeconds")
        .and_then(|t| t.parse::<u64>().ok())
        .map(Duration::from_secs)
        .unwrap_or(Duration::from_secs(1800));
    let bookmarks = query
        .get("allowWatchBookmarks")
        .is_some_and(|v| query_bool(Some(v)));
    let table = accept.table;
    let metadata_only = accept.metadata_only && !table;
    let include = IncludeObject::parse(query.get("includeObject").map(String::as_str));
    let info = info.clone();
    let deadline = tokio::time::sleep(timeout);
    let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(64);
    tokio::spawn(async move {
        let mut events = events;
        tokio::pin!(deadline);
        let mut tick = tokio::time::interval(Duration::from_secs(60));
        tick.tick().await;
        let mut first_table = true;
        loop {
            let ev = tokio::select! {
                _ = &mut deadline => break,
                _ = tick.tick(), if bookmarks => {
                    // Only a revision everything before which was sent.
                    let rev = progress.load(std::sync::atomic::Ordering::Relaxed);
                    if rev == 0 {
                        continue;
                    }
                    WatchEvent {
                        kind: "BOOKMARK",
                        object: json!({"kind": info.kind, "apiVersion": info.api_version(), "metadata": {"resourceVersion": rev.to_string()}}),
                    }
                }
                ev = events.next() => match ev {
                    Some(Ok(ev)) => ev,
                    Some(Err(e)) => {
                        let line = json!({"type": "ERROR", "object": e.to_status()});
                        let _ = tx.send(line_bytes(&line)).await;
                        break;
                    }
                    None => break,
                },
            };
            let object = if table && ev.kind != "BOOKMARK" {
                let rv = ev
                    .object
                    .pointer("/metadata/resourceVersion")
                    .cloned()
                    .unwrap_or_default();
                let mut t = table::table(
                    &info,
                    std::slice::from_ref(&ev.object),
                    json!({"resourceVersion": rv}),
                    include,
                );
                if !first_table {
                    t["columnDefinitions"] = json!([]);
                }
                first_table = false;
                t
            } else if metadata_only && ev.kind != "BOOKMARK" && ev.kind != "ERROR" {
                partial_metadata(&ev.object)
            } else {
                ev.object
            };
            if tx
                .send(line_bytes(&json!({"type": ev.kind, "object": object})))
                .await
                .is_err()
            {
                break;
            }
        }
    });
    let stream = tokio_stream_from(rx).map(|b| Ok::<_, Infallible>(Frame::data(b)));
    let mut resp = Response::new(BodyExt::boxed(StreamBody::new(stream)));
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json"),
    );
    Ok(resp)
}

fn line_bytes(v: &Value) -> Bytes {
    let mut b = serde_json::to_vec(v).unwrap_or_default();
    b.push(b'\n');
    Bytes::from(b)
}

fn tokio_stream_from(
    mut rx: tokio::sync::mpsc::Receiver<Bytes>,
) -> impl futures::Stream<Item = Bytes> {
    futures::stream::poll_fn(move |cx| rx.poll_recv(cx))
}
