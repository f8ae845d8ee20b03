//! The PVC protection controller: a deleted claim keeps `kubernetes.io/pvc-protection` while a
//! pod object that uses it exists on a node (the kubelet will not start a pod whose claim is
//! being deleted, so unscheduled pods do not count; nor do shut-down pods for their ephemeral
//! claims, which would otherwise wait for each other).

use std::sync::Arc;

use anyhow::Context;
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod};
use kube::api::{ListParams, PostParams};
use kube::{Api, Client};

use super::{is_deletion_candidate, needs_finalizer, with_finalizer};
use crate::volume::annotations::PVC_PROTECTION_FINALIZER;
use crate::volume::{claims, pods};
use client_go::informer::{Change, Informer, key_of};
use client_go::queue::WorkQueue;
use client_go::reconciler::{self, Action, Reconciler};

/// Whether `pod` uses `claim` in a way that must keep it.
pub fn pod_uses_claim(pod: &Pod, claim: &PersistentVolumeClaim) -> bool {
    if pods::node_name(pod).is_empty() {
        return false;
    }
    let name = claims::name(&claim.metadata);
    pod.spec
        .iter()
        .flat_map(|s| s.volumes.iter().flatten())
        .any(|v| {
            if let Some(c) = &v.persistent_volume_claim {
                return c.claim_name == name;
            }
            v.ephemeral.is_some()
                && !pods::is_shut_down(pod)
                && pods::ephemeral_claim_name(pod, v) == name
                && pods::ephemeral_claim_is_for_pod(pod, claim).is_ok()
        })
}

pub struct PvcProtectionController {
    client: Client,
    claims: Informer<PersistentVolumeClaim>,
    pods: Informer<Pod>,
    queue: Arc<WorkQueue>,
}

impl PvcProtectionController {
    pub fn new(
        client: Client,
        claims: Informer<PersistentVolumeClaim>,
        pods: Informer<Pod>,
    ) -> Arc<Self> {
        let c = Arc::new(PvcProtectionController {
            client,
            claims,
            pods,
            queue: WorkQueue::new(),
        });
        let q = c.queue.clone();
        c.claims
            .on_change(move |ch: &Change<PersistentVolumeClaim>| {
                if let Some(claim) = &ch.new
                    && (needs_finalizer(&claim.metadata, PVC_PROTECTION_FINALIZER)
                        || is_deletion_candidate(&claim.metadata, PVC_PROTECTION_FINALIZER))
                {
                    q.add(key_of(claim.as_ref()));
                }
            });
        let q = c.queue.clone();
        c.pods.on_change(move |ch: &Change<Pod>| {
            match (&ch.old, &ch.new) {
                (old, Some(new)) => {
                    enqueue_claims(&q, new, false);
                    // An update may hide the deletion of a pod and the creation of another
                    // of the same name: the first one's claims may be free now.
                    if let Some(old) = old
                        && old.metadata.uid != new.metadata.uid
                    {
                        enqueue_claims(&q, old, true);
                    }
                }
                (Some(old), None) => enqueue_claims(&q, old, true),
                (None, None) => {}
            }
        });
        c
    }

    pub async fn run(self: Arc<Self>, workers: usize) {
        reconciler::run(&self, &self.queue, &[&self.claims, &self.pods], workers).await;
    }
}

impl Reconciler for PvcProtectionController {
    const NAME: &'static str = "pvc-protection";

    async fn reconcile(self: &Arc<Self>, key: &str) -> anyhow::Result<Action> {
        let Some(claim) = self.claims.get_key(key) else {
            return Ok(Action::Done);
        };
        if is_deletion_candidate(&claim.metadata, PVC_PROTECTION_FINALIZER) {
            if !self.is_being_used(&claim).await? {
                self.set_finalizer(&claim, false).await?;
                return Ok(Action::Done);
            }
            tracing::debug!(claim = key, "keeping the claim: a pod uses it");
        }
        if needs_finalizer(&claim.metadata, PVC_PROTECTION_FINALIZER) {
            // Admission gives new claims the finalizer; this covers those it did not.
            self.set_finalizer(&claim, true).await?;
            return Ok(Action::Done);
        }
        Ok(Action::Done)
    }
}

impl PvcProtectionController {
    /// A pod in the cache using the claim settles it; otherwise a live list does, as the
    /// cache may not have a pod created just now.
    async fn is_being_used(&self, claim: &PersistentVolumeClaim) -> anyhow::Result<bool> {
        let ns = claim.metadata.namespace.as_deref().unwrap_or_default();
        if self
            .pods
            .list_namespace(ns)
            .iter()
            .any(|p| pod_uses_claim(p, claim))
        {
            return Ok(true);
        }
        let api: Api<Pod> = Api::namespaced(self.client.clone(), ns);
        let live = api
            .list(&ListParams::default())
            .await
            .with_context(|| format!("live list of pods in {ns}"))?;
        Ok(live.items.iter().any(|p| pod_uses_claim(p, claim)))
    }

    async fn set_finalizer(
        &self,
        claim: &PersistentVolumeClaim,
        present: bool,
    ) -> anyhow::Result<()> {
        let mut clone = claim.clone();
        clone.metadata.finalizers =
            with_finalizer(&claim.metadata, PVC_PROTECTION_FINALIZER, present);
        let ns = claim.metadata.namespace.as_deref().unwrap_or_default();
        let name = claims::name(&claim.metadata);
        let api: Api<PersistentVolumeClaim> = Api::namespaced(self.client.clone(), ns);
        match api.replace(name, &PostParams::default(), &clone).await {
            Ok(_) => {
                tracing::debug!(claim = %claims::claim_key(claim), present, "protection finalizer updated");
                Ok(())
            }
            Err(kube::Error::Api(e)) if e.code == 404 => Ok(()),
            Err(e) => Err(e).with_context(|| {
                format!(
                    "updating the protection finalizer of claim {}",
                    claims::claim_key(claim)
                )
            }),
        }
    }
}

/// Queues the claims of a pod that may let go of them: deleted, terminated or unscheduled.
fn enqueue_claims(queue: &WorkQueue, pod: &Pod, deleted: bool) {
    if !deleted && !pods::is_terminated(pod) && !pods::node_name(pod).is_empty() {
        return;
    }
    let ns = pod.metadata.namespace.as_deref().unwrap_or_default();
    for name in pods::claim_names(pod) {
        queue.add(format!("{ns}/{name}"));
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::json;

    fn pod(node: Option<&str>, extra: serde_json::Value) -> Pod {
        let mut p = json!({
            "metadata": {"name": "p", "namespace": "ns", "uid": "pod-uid"},
            "spec": {"containers": [{"name": "c", "image": "i"}], "volumes": [
                {"name": "data", "persistentVolumeClaim": {"claimName": "data"}},
                {"name": "tmp", "ephemeral": {"volumeClaimTemplate": {"spec": {}}}}
            ]},
            "status": {"phase": "Running"}
        });
        if let Some(n) = node {
            p["spec"]["nodeName"] = json!(n);
        }
        if let Some(e) = extra.as_object() {
            for (k, v) in e {
                p["metadata"][k] = v.clone();
            }
        }
        serde_json::from_value(p).unwrap()
    }

    fn claim(name: &str, owner: Option<&str>) -> PersistentVolumeClaim {
        let mut c = json!({"metadata": {"name": name, "namespace": "ns"}});
        if let Some(uid) = owner {
            c["metadata"]["ownerReferences"] = json!([{"apiVersion": "v1", "kind": "Pod",
                "name": "p", "uid": uid, "controller": true}]);
        }
        serde_json::from_value(c).unwrap()
    }

    #[test]
    fn which_pods_keep_a_claim() {
        let data = claim("data", None);
        assert!(pod_uses_claim(&pod(Some("n1"), json!({})), &data));
        // Unscheduled pods never started, so they do not hold it.
        assert!(!pod_uses_claim(&pod(None, json!({})), &data));
        // A pod that finished still exists and still holds it (upstream: the pod object).
        let mut done = pod(Some("n1"), json!({}));
        done.status.as_mut().unwrap().phase = Some("Succeeded".into());
        assert!(pod_uses_claim(&done, &data));
        assert!(!pod_uses_claim(
            &pod(Some("n1"), json!({})),
            &claim("other", None)
        ));
        // Ephemeral claims: only the pod's own, and not once the pod is shut down.
        let mine = claim("p-tmp", Some("pod-uid"));
        assert!(pod_uses_claim(&pod(Some("n1"), json!({})), &mine));
        assert!(!pod_uses_claim(
            &pod(Some("n1"), json!({})),
            &claim("p-tmp", Some("x"))
        ));
        let shut = pod(
            Some("n1"),
            json!({"deletionTimestamp": "2025-01-01T00:00:00Z", "deletionGracePeriodSeconds": 0}),
        );
        assert!(!pod_uses_claim(&shut, &mine));
        assert!(pod_uses_claim(&shut, &data));
    }
}
