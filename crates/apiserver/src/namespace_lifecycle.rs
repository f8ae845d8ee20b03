//! Namespace deletion: a deleted namespace turns `Terminating`, everything in it is deleted,
//! then its `kubernetes` finalizer is removed and it goes.
//!
//! This is the namespace controller's job in Kubernetes (kube-controller-manager). It lives
//! here, driving the registry directly, until rkube's controllers crate exists; it then moves
//! there and talks to the API like every other controller.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};

use crate::handler::ApiState;
use crate::meta;
use crate::registry::{DeleteOptions, ListQuery};

/// Finalizes `namespace` in the background, retrying until its content is gone.
pub fn spawn(state: Arc<ApiState>, namespace: String) {
    tokio::spawn(async move {
        let mut delay = Duration::from_millis(100);
        loop {
            match finalize(&state, &namespace).await {
                Ok(true) => return,
                Ok(false) => {}
                Err(e) => {
                    tracing::warn!(namespace, error = %e, "namespace finalization failed; retrying")
                }
            }
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(Duration::from_secs(5));
        }
    });
}

/// One pass: deletes what is left; once nothing is, drops the `kubernetes` finalizer.
/// Returns whether the namespace is finished.
async fn finalize(state: &ApiState, namespace: &str) -> Result<bool, crate::error::ApiError> {
    let ns_info = crate::resources::namespace_info();
    let ns = match state.registry.get(&ns_info, None, namespace).await {
        Ok(ns) => ns,
        Err(e) if e.code == 404 => return Ok(true),
        Err(e) => return Err(e),
    };
    if ns.pointer("/metadata/deletionTimestamp").is_none() {
        return Ok(true);
    }
    let mut remaining = 0;
    for info in state.catalog.resources.iter().filter(|r| r.namespaced) {
        let list = state
            .registry
            .list(info, Some(namespace), &ListQuery::default())
            .await?;
        for item in list
            .get("items")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            remaining += 1;
            if item.pointer("/metadata/deletionTimestamp").is_some() {
                continue;
            }
            match state
                .registry
                .delete(
                    info,
                    Some(namespace),
                    meta::name(item),
                    &DeleteOptions::default(),
                    false,
                )
                .await
            {
                Ok((_, true)) => remaining -= 1,
                Ok((_, false)) => {}
                Err(e) if e.code == 404 => remaining -= 1,
                Err(e) => return Err(e),
            }
        }
    }
    if remaining > 0 {
        return Ok(false);
    }
    state
        .registry
        .update_with(&ns_info, None, namespace, false, |old| {
            let mut new = old.clone();
            let kept: Vec<Value> = old
                .pointer("/spec/finalizers")
                .and_then(Value::as_array)
                .map(|f| {
                    f.iter()
                        .filter(|x| x.as_str() != Some("kubernetes"))
                        .cloned()
                        .collect()
                })
                .unwrap_or_default();
            new["spec"]["finalizers"] = json!(kept);
            Ok(new)
        })
        .await?;
    tracing::info!(namespace, "namespace finalized");
    Ok(true)
}
