//! What to do with a volume (upstream's syncVolume): Available while unclaimed or only
//! reserved, Bound while its claim points back, Released and reclaimed once its claim is gone,
//! unbound again when the controller's binding lost a race.

use std::sync::Arc;

use anyhow::Context;
use k8s_openapi::api::core::v1::{PersistentVolume, PersistentVolumeClaim};

use super::{PersistentVolumeController, matching};
use crate::volume::annotations::{self, BOUND_BY_CONTROLLER, PROVISIONED_BY};
use crate::volume::claims;

impl PersistentVolumeController {
    pub(super) async fn sync_volume(&self, volume: Arc<PersistentVolume>) -> anyhow::Result<()> {
        let Some(claim_ref) = claims::claim_ref(&volume).cloned() else {
            self.update_volume_phase(&volume, claims::PHASE_AVAILABLE, None)
                .await?;
            return Ok(());
        };
        if claim_ref.uid.as_deref().unwrap_or_default().is_empty() {
            // Reserved for a claim that has not bound yet: the claim's sync does that.
            self.update_volume_phase(&volume, claims::PHASE_AVAILABLE, None)
                .await?;
            return Ok(());
        }
        let claim = self.claim_for(&volume, &claim_ref).await?;
        let Some(claim) = claim else {
            // The claim was deleted: Released (a Failed phase is kept for the user to see)
            // and reclaimed.
            let phase = claims::volume_phase(&volume);
            let volume = if phase != claims::PHASE_RELEASED && phase != claims::PHASE_FAILED {
                tracing::info!(
                    volume = claims::name(&volume.metadata),
                    policy = claims::reclaim_policy(&volume),
                    "volume is released and its reclaim policy will be executed"
                );
                self.update_volume_phase(&volume, claims::PHASE_RELEASED, None)
                    .await?
            } else {
                volume
            };
            return self.reclaim_volume(&volume).await;
        };
        let bound_to = claims::volume_name(&claim);
        let volume_name = claims::name(&volume.metadata);
        if bound_to.is_empty() {
            if matching::volume_mode_mismatch(&claim, &volume) {
                // The claim's sync would never pick this volume: say why, once per sync.
                self.recorder.record(
                    volume.as_ref(),
                    true,
                    "VolumeMismatch",
                    format!(
                        "Cannot bind PersistentVolume to requested PersistentVolumeClaim {:?} due to incompatible volumeMode.",
                        claims::name(&claim.metadata)
                    ),
                );
                self.recorder.record(
                    claim.as_ref(),
                    true,
                    "VolumeMismatch",
                    format!(
                        "Cannot bind PersistentVolume {volume_name:?} to requested PersistentVolumeClaim due to incompatible volumeMode."
                    ),
                );
                return Ok(());
            }
            // Bound (by us, or by a provisioner or the scheduler) while the claim is still
            // Pending: the claim's sync finishes it; queued now to be quick about it.
            self.claim_queue.add(claims::claim_key(&claim));
            return Ok(());
        }
        if bound_to == volume_name {
            self.update_volume_phase(&volume, claims::PHASE_BOUND, None)
                .await?;
            return Ok(());
        }
        // The claim is bound to another volume.
        if annotations::has(&volume.metadata, PROVISIONED_BY)
            && claims::reclaim_policy(&volume) == "Delete"
        {
            // Provisioned for this claim and no longer needed: released and deleted.
            let phase = claims::volume_phase(&volume);
            let volume = if phase != claims::PHASE_RELEASED && phase != claims::PHASE_FAILED {
                self.update_volume_phase(&volume, claims::PHASE_RELEASED, None)
                    .await?
            } else {
                volume
            };
            return self.reclaim_volume(&volume).await;
        }
        // Ours: a lost race, undone. The user's: the uid is cleared, the reservation kept.
        if !annotations::has(&volume.metadata, BOUND_BY_CONTROLLER) {
            tracing::debug!(
                volume = volume_name,
                "volume pre-bound by the user to a claim bound elsewhere"
            );
        }
        self.unbind_volume(&volume).await
    }

    /// The claim a volume's claimRef names, if it still exists with that uid. A claim not in
    /// the caches is looked up in the API server before the volume is taken as released (a
    /// provisioner or the scheduler may have bound a claim not yet seen here).
    async fn claim_for(
        &self,
        volume: &PersistentVolume,
        claim_ref: &k8s_openapi::api::core::v1::ObjectReference,
    ) -> anyhow::Result<Option<Arc<PersistentVolumeClaim>>> {
        let key = claims::claim_ref_key(claim_ref);
        let ns = claim_ref.namespace.as_deref().unwrap_or_default();
        let name = claim_ref.name.as_deref().unwrap_or_default();
        let ref_uid = claim_ref.uid.as_deref().unwrap_or_default();
        let mut claim = self.lock_claims().get(&key);
        let phase = claims::volume_phase(volume);
        if claim.is_none() && phase != claims::PHASE_RELEASED && phase != claims::PHASE_FAILED {
            claim = self.src.claims.get_key(&key);
            if claim.is_none() {
                claim = self.get_claim(ns, name).await?;
            }
        }
        let Some(found) = claim else {
            return Ok(None);
        };
        if claims::uid(&found.metadata) == ref_uid {
            return Ok(Some(found));
        }
        // Perhaps deleted and made again under the same name, perhaps only a stale cache.
        Ok(self
            .get_claim(ns, name)
            .await?
            .filter(|c| claims::uid(&c.metadata) == ref_uid))
    }

    async fn get_claim(
        &self,
        ns: &str,
        name: &str,
    ) -> anyhow::Result<Option<Arc<PersistentVolumeClaim>>> {
        let api: kube::Api<PersistentVolumeClaim> = kube::Api::namespaced(self.client.clone(), ns);
        api.get_opt(name)
            .await
            .with_context(|| format!("reading claim {ns}/{name}"))
            .map(|c| c.map(Arc::new))
    }
}
