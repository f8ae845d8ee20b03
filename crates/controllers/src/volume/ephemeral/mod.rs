//! The ephemeral volume controller (upstream's `pkg/controller/volume/ephemeral`): each generic
//! ephemeral volume of a pod gets its claim `<pod>-<volume>` from the volume's template, owned
//! by the pod (controller reference, blocking its deletion), so the garbage collector removes
//! it with the pod. A claim of that name the pod does not own is an error (FailedBinding),
//! never adopted: it may hold someone else's data.

use std::sync::Arc;

use anyhow::Context;
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod, Volume};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::PostParams;
use kube::{Api, Client};

use crate::volume::pods;
use client_go::events::Recorder;
use client_go::informer::{Change, Informer, key_of};
use client_go::queue::WorkQueue;
use client_go::reconciler::{self, Action, Reconciler};

/// The claim an ephemeral volume's template makes for `pod`; `None` for other volumes.
pub fn claim_for(pod: &Pod, volume: &Volume) -> Option<PersistentVolumeClaim> {
    let template = volume.ephemeral.as_ref()?.volume_claim_template.as_ref()?;
    let meta = template.metadata.clone().unwrap_or_default();
    Some(PersistentVolumeClaim {
        metadata: ObjectMeta {
            name: Some(pods::ephemeral_claim_name(pod, volume)),
            namespace: pod.metadata.namespace.clone(),
            owner_references: Some(vec![crate::pods::controller_ref(
                "v1",
                "Pod",
                &pod.metadata,
            )]),
            annotations: meta.annotations,
            labels: meta.labels,
            ..Default::default()
        },
        spec: Some(template.spec.clone()),
        status: None,
    })
}

fn has_ephemeral(pod: &Pod) -> bool {
    pod.spec
        .iter()
        .flat_map(|s| s.volumes.iter().flatten())
        .any(|v| v.ephemeral.is_some())
}

pub struct EphemeralController {
    client: Client,
    pods: Informer<Pod>,
    claims: Informer<PersistentVolumeClaim>,
    queue: Arc<WorkQueue>,
    recorder: Recorder,
}

impl EphemeralController {
    pub fn new(
        client: Client,
        pods: Informer<Pod>,
        claims: Informer<PersistentVolumeClaim>,
    ) -> Arc<Self> {
        let c = Arc::new(EphemeralController {
            recorder: Recorder::new(client.clone(), "ephemeral_volume"),
            client,
            pods,
            claims,
            queue: WorkQueue::new(),
        });
        // Pod specs are immutable: only new pods need looking at (and a lagging feed's
        // catch-up, which comes as updates).
        let q = c.queue.clone();
        c.pods.on_change(move |ch: &Change<Pod>| {
            if let Some(pod) = &ch.new
                && (ch.old.is_none() || ch.old.as_ref().is_some_and(|o| Arc::ptr_eq(o, pod)))
                && pod.metadata.deletion_timestamp.is_none()
                && has_ephemeral(pod)
            {
                q.add(key_of(pod.as_ref()));
            }
        });
        // A deleted claim a pod still needs is made again.
        let me = Arc::downgrade(&c);
        c.claims
            .on_change(move |ch: &Change<PersistentVolumeClaim>| {
                let (Some(gone), None, Some(me)) = (&ch.old, &ch.new, me.upgrade()) else {
                    return;
                };
                let ns = gone.metadata.namespace.as_deref().unwrap_or_default();
                let name = gone.metadata.name.as_deref().unwrap_or_default();
                for pod in me.pods.list_namespace(ns) {
                    if pod.metadata.deletion_timestamp.is_none()
                        && pods::references_claim(&pod, name)
                    {
                        me.queue.add(key_of(pod.as_ref()));
                    }
                }
            });
        c
    }

    pub async fn run(self: Arc<Self>, workers: usize) {
        reconciler::run(&self, &self.queue, &[&self.pods, &self.claims], workers).await;
    }
}

impl Reconciler for EphemeralController {
    const NAME: &'static str = "ephemeral-volume";

    async fn reconcile(self: &Arc<Self>, key: &str) -> anyhow::Result<Action> {
        let Some(pod) = self.pods.get_key(key) else {
            return Ok(Action::Done);
        };
        if pod.metadata.deletion_timestamp.is_some() {
            return Ok(Action::Done);
        }
        for volume in pod.spec.iter().flat_map(|s| s.volumes.iter().flatten()) {
            if let Err(e) = self.handle_volume(&pod, volume).await {
                self.recorder.record(
                    pod.as_ref(),
                    true,
                    "FailedBinding",
                    format!("ephemeral volume {}: {e:#}", volume.name),
                );
                return Err(e)
                    .with_context(|| format!("pod {key}, ephemeral volume {}", volume.name));
            }
        }
        Ok(Action::Done)
    }
}

impl EphemeralController {
    async fn handle_volume(&self, pod: &Pod, volume: &Volume) -> anyhow::Result<()> {
        let Some(claim) = claim_for(pod, volume) else {
            return Ok(());
        };
        let ns = pod.metadata.namespace.as_deref().unwrap_or_default();
        let name = claim.metadata.name.clone().unwrap_or_default();
        if let Some(existing) = self.claims.get(Some(ns), &name) {
            return pods::ephemeral_claim_is_for_pod(pod, &existing).map_err(anyhow::Error::msg);
        }
        let api: Api<PersistentVolumeClaim> = Api::namespaced(self.client.clone(), ns);
        api.create(&PostParams::default(), &claim)
            .await
            .with_context(|| format!("create PVC {name}"))?;
        tracing::info!(claim = %format!("{ns}/{name}"), "ephemeral volume claim created");
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::json;

    #[test]
    fn the_claim_is_named_after_pod_and_volume_and_owned_by_the_pod() {
        let pod: Pod = serde_json::from_value(json!({
            "metadata": {"name": "web", "namespace": "ns", "uid": "pod-uid"},
            "spec": {"containers": [{"name": "c", "image": "i"}], "volumes": [
                {"name": "scratch", "ephemeral": {"volumeClaimTemplate": {
                    "metadata": {"labels": {"app": "web"}, "annotations": {"a": "b"}},
                    "spec": {"accessModes": ["ReadWriteOnce"], "storageClassName": "local-path",
                             "resources": {"requests": {"storage": "1Gi"}}}}}},
                {"name": "cache", "emptyDir": {}}
            ]}
        }))
        .unwrap();
        let volumes = pod.spec.as_ref().unwrap().volumes.clone().unwrap();
        assert!(claim_for(&pod, &volumes[1]).is_none());
        let claim = claim_for(&pod, &volumes[0]).unwrap();
        let v = serde_json::to_value(&claim).unwrap();
        assert_eq!(v["metadata"]["name"], "web-scratch");
        assert_eq!(v["metadata"]["namespace"], "ns");
        assert_eq!(v["metadata"]["labels"], json!({"app": "web"}));
        assert_eq!(v["metadata"]["annotations"], json!({"a": "b"}));
        assert_eq!(
            v["metadata"]["ownerReferences"],
            json!([{"apiVersion": "v1", "kind": "Pod", "name": "web", "uid": "pod-uid",
                    "controller": true, "blockOwnerDeletion": true}])
        );
        assert_eq!(v["spec"]["storageClassName"], "local-path");
        assert!(pods::ephemeral_claim_is_for_pod(&pod, &claim).is_ok());
        let mut foreign = claim.clone();
        foreign.metadata.owner_references = None;
        assert_eq!(
            pods::ephemeral_claim_is_for_pod(&pod, &foreign).unwrap_err(),
            "PVC ns/web-scratch was not created for pod ns/web (pod is not owner)"
        );
    }
}
