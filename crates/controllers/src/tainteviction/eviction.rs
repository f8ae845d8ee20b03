//! Deleting one pod for a NoExecute taint (upstream's deletePodHandler): a
//! `TaintManagerEviction` event, the `DisruptionTarget` condition (so Jobs' pod failure
//! policies and `kubectl describe` tell why), then an ordinary delete: the pod's own grace
//! period applies, nothing is forced.

use std::time::Duration;

use k8s_openapi::api::core::v1::{ObjectReference, Pod, PodCondition};
use kube::api::{DeleteParams, Patch, PatchParams};
use kube::{Api, Client};
use serde_json::json;

use client_go::events::Recorder;

use crate::nodelifecycle::pod_status::update_pod_condition;

/// Attempts at the condition and the delete (upstream's `retries`).
const ATTEMPTS: usize = 5;
const RETRY_DELAY: Duration = Duration::from_millis(10);

pub const REASON: &str = "TaintManagerEviction";

/// An event about the pod `ns/name` (by name: it may be gone).
pub fn record(recorder: &Recorder, key: &str, message: String) {
    let (ns, name) = key.split_once('/').unwrap_or(("", key));
    let pod = ObjectReference {
        api_version: Some("v1".into()),
        kind: Some("Pod".into()),
        namespace: Some(ns.into()),
        name: Some(name.into()),
        ..Default::default()
    };
    recorder.record_ref(pod, false, REASON, message);
}

async fn add_condition_and_delete(api: &Api<Pod>, name: &str) -> Result<(), kube::Error> {
    let mut pod = api.get(name).await?;
    let status = pod.status.get_or_insert_with(Default::default);
    let target = PodCondition {
        type_: "DisruptionTarget".into(),
        status: "True".into(),
        reason: Some("DeletionByTaintManager".into()),
        message: Some("Taint manager: deleting due to NoExecute taint".into()),
        ..Default::default()
    };
    if update_pod_condition(status, target) {
        let cond = status
            .conditions
            .as_ref()
            .and_then(|cs| cs.iter().find(|c| c.type_ == "DisruptionTarget"));
        let patch = json!({
            "metadata": {"uid": pod.metadata.uid},
            "status": {"conditions": [cond]},
        });
        api.patch_status(name, &PatchParams::default(), &Patch::Strategic(patch))
            .await?;
    }
    api.delete(name, &DeleteParams::default()).await?;
    Ok(())
}

/// Marks and deletes the pod `ns/name`.
pub async fn evict(client: Client, recorder: Recorder, key: String) {
    tracing::info!(pod = %key, "deleting pod for a NoExecute taint");
    record(&recorder, &key, format!("Marking for deletion Pod {key}"));
    let (ns, name) = key.split_once('/').unwrap_or(("", &key));
    let api: Api<Pod> = Api::namespaced(client, ns);
    let mut last = None;
    for _ in 0..ATTEMPTS {
        match add_condition_and_delete(&api, name).await {
            Ok(()) => return,
            Err(kube::Error::Api(e)) if e.code == 404 => return,
            Err(e) => last = Some(e),
        }
        tokio::time::sleep(RETRY_DELAY).await;
    }
    if let Some(e) = last {
        let e = anyhow::Error::from(e).context(format!("deleting pod {key}"));
        tracing::warn!(error = %format!("{e:#}"), "taint eviction failed");
    }
}
