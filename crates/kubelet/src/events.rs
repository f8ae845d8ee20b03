//! Events the kubelet posts about pods (core/v1 Events, as upstream's event recorder with the
//! `kubelet` source), for now only `FailedMount`. A recurring event is one object whose `count`
//! and `lastTimestamp` are patched (upstream's correlator), at most as often as a doubling
//! interval allows (upstream's mount retries back off the same way).

use std::time::Duration;

use k8s_openapi::api::core::v1::{Event, EventSource, ObjectReference, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use k8s_openapi::jiff::Timestamp;
use kube::Api;
use kube::api::{Patch, PatchParams, PostParams};
use tracing::debug;

pub const WARNING: &str = "Warning";

const FIRST_REPEAT: Duration = Duration::from_secs(2);
const MAX_REPEAT: Duration = Duration::from_secs(128);

/// One recurring event of a pod.
pub struct Series {
    name: Option<String>,
    count: i32,
    next: tokio::time::Instant,
    interval: Duration,
}

impl Default for Series {
    fn default() -> Self {
        Series {
            name: None,
            count: 0,
            next: tokio::time::Instant::now(),
            interval: FIRST_REPEAT,
        }
    }
}

impl Series {
    /// Records one more occurrence: posts the event the first time, then (when due) bumps its
    /// count, or posts it again if it expired meanwhile.
    pub async fn occurred(
        &mut self,
        client: &kube::Client,
        node: &str,
        pod: &Pod,
        type_: &str,
        reason: &str,
        message: &str,
    ) {
        let now = tokio::time::Instant::now();
        if now < self.next {
            return;
        }
        self.next = now + self.interval;
        self.interval = (self.interval * 2).min(MAX_REPEAT);
        self.count += 1;
        if let Some(name) = &self.name {
            let ns = pod.metadata.namespace.as_deref().unwrap_or("default");
            let api: Api<Event> = Api::namespaced(client.clone(), ns);
            let patch = serde_json::json!({
                "count": self.count,
                "lastTimestamp": Time(Timestamp::now()),
            });
            match api
                .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
                .await
            {
                Ok(_) => return,
                Err(e) => debug!(error = %e, "cannot update an event; posting it again"),
            }
        }
        self.count = 1;
        self.name = pod_event(client, node, pod, type_, reason, message).await;
    }
}

/// Posts an Event about `pod`, returning its name; failures are only logged (events are best
/// effort).
pub async fn pod_event(
    client: &kube::Client,
    node: &str,
    pod: &Pod,
    type_: &str,
    reason: &str,
    message: &str,
) -> Option<String> {
    let ns = pod
        .metadata
        .namespace
        .clone()
        .unwrap_or_else(|| "default".into());
    let name = pod.metadata.name.clone().unwrap_or_default();
    let now = Timestamp::now();
    let ev = Event {
        metadata: ObjectMeta {
            name: Some(format!("{name}.{:x}", now.as_nanosecond())),
            namespace: Some(ns.clone()),
            ..Default::default()
        },
        involved_object: ObjectReference {
            api_version: Some("v1".into()),
            kind: Some("Pod".into()),
            name: Some(name),
            namespace: Some(ns.clone()),
            uid: pod.metadata.uid.clone(),
            resource_version: pod.metadata.resource_version.clone(),
            ..Default::default()
        },
        reason: Some(reason.into()),
        message: Some(message.into()),
        type_: Some(type_.into()),
        source: Some(EventSource {
            component: Some("kubelet".into()),
            host: Some(node.into()),
        }),
        first_timestamp: Some(Time(now)),
        last_timestamp: Some(Time(now)),
        count: Some(1),
        reporting_component: Some("kubelet".into()),
        reporting_instance: Some(node.into()),
        ..Default::default()
    };
    let api: Api<Event> = Api::namespaced(client.clone(), &ns);
    match api.create(&PostParams::default(), &ev).await {
        Ok(e) => e.metadata.name,
        Err(e) => {
            debug!(error = %e, reason, "cannot post an event");
            None
        }
    }
}
