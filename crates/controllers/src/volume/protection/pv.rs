//! The PV protection controller: a deleted volume keeps `kubernetes.io/pv-protection` while it
//! is Bound (the PersistentVolume controller's status says so).

use std::sync::Arc;

use anyhow::Context;
use k8s_openapi::api::core::v1::PersistentVolume;
use kube::api::PostParams;
use kube::{Api, Client};

use super::{is_deletion_candidate, needs_finalizer, with_finalizer};
use crate::volume::annotations::PV_PROTECTION_FINALIZER;
use crate::volume::claims;
use client_go::informer::{Change, Informer, key_of};
use client_go::queue::WorkQueue;
use client_go::reconciler::{self, Action, Reconciler};

pub struct PvProtectionController {
    client: Client,
    volumes: Informer<PersistentVolume>,
    queue: Arc<WorkQueue>,
}

impl PvProtectionController {
    pub fn new(client: Client, volumes: Informer<PersistentVolume>) -> Arc<Self> {
        let c = Arc::new(PvProtectionController {
            client,
            volumes,
            queue: WorkQueue::new(),
        });
        let q = c.queue.clone();
        c.volumes.on_change(move |ch: &Change<PersistentVolume>| {
            if let Some(pv) = &ch.new
                && (needs_finalizer(&pv.metadata, PV_PROTECTION_FINALIZER)
                    || is_deletion_candidate(&pv.metadata, PV_PROTECTION_FINALIZER))
            {
                q.add(key_of(pv.as_ref()));
            }
        });
        c
    }

    pub async fn run(self: Arc<Self>, workers: usize) {
        reconciler::run(&self, &self.queue, &[&self.volumes], workers).await;
    }
}

impl Reconciler for PvProtectionController {
    const NAME: &'static str = "pv-protection";

    async fn reconcile(self: &Arc<Self>, key: &str) -> anyhow::Result<Action> {
        let Some(pv) = self.volumes.get_key(key) else {
            return Ok(Action::Done);
        };
        if is_deletion_candidate(&pv.metadata, PV_PROTECTION_FINALIZER) {
            if claims::volume_phase(&pv) != claims::PHASE_BOUND {
                self.set_finalizer(&pv, false).await?;
                return Ok(Action::Done);
            }
            tracing::debug!(volume = key, "keeping the volume: it is bound");
        }
        if needs_finalizer(&pv.metadata, PV_PROTECTION_FINALIZER) {
            self.set_finalizer(&pv, true).await?;
            return Ok(Action::Done);
        }
        Ok(Action::Done)
    }
}

impl PvProtectionController {
    async fn set_finalizer(&self, pv: &PersistentVolume, present: bool) -> anyhow::Result<()> {
        let mut clone = pv.clone();
        clone.metadata.finalizers = with_finalizer(&pv.metadata, PV_PROTECTION_FINALIZER, present);
        let name = claims::name(&pv.metadata);
        let api: Api<PersistentVolume> = Api::all(self.client.clone());
        match api.replace(name, &PostParams::default(), &clone).await {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(e)) if e.code == 404 => Ok(()),
            Err(e) => Err(e)
                .with_context(|| format!("updating the protection finalizer of volume {name}")),
        }
    }
}
