//! What to do with a claim (upstream's syncClaim, syncUnboundClaim, syncBoundClaim): a claim
//! that never completed binding is matched, provisioned for or left Pending; one that did is
//! kept Bound, or marked Lost when its volume is gone or bound elsewhere.

use std::sync::Arc;

use k8s_openapi::api::core::v1::{PersistentVolume, PersistentVolumeClaim};

use super::{PersistentVolumeController, matching};
use crate::volume::annotations::{self, BIND_COMPLETED, BOUND_BY_CONTROLLER};
use crate::volume::claims;

/// Why a requested volume does not suit a claim (upstream's checkVolumeSatisfyClaim).
pub fn check_volume_satisfies_claim(
    volume: &PersistentVolume,
    claim: &PersistentVolumeClaim,
) -> Result<(), String> {
    if volume.metadata.deletion_timestamp.is_some() {
        return Err(format!(
            "the volume is marked for deletion {:?}",
            claims::name(&volume.metadata)
        ));
    }
    if claims::bytes(claims::volume_storage(volume))
        < claims::bytes(claims::requested_storage(claim))
    {
        return Err("requested PV is too small".into());
    }
    if claims::volume_class(volume) != claims::claim_class(claim) {
        return Err("storageClassName does not match".into());
    }
    if matching::volume_mode_mismatch(claim, volume) {
        return Err("incompatible volumeMode".into());
    }
    if !matching::check_access_modes(claim, volume) {
        return Err("incompatible accessMode".into());
    }
    Ok(())
}

impl PersistentVolumeController {
    pub(super) async fn sync_claim(&self, claim: Arc<PersistentVolumeClaim>) -> anyhow::Result<()> {
        if annotations::has(&claim.metadata, BIND_COMPLETED) {
            self.sync_bound_claim(claim).await
        } else {
            self.sync_unbound_claim(claim).await
        }
    }

    async fn sync_unbound_claim(&self, claim: Arc<PersistentVolumeClaim>) -> anyhow::Result<()> {
        let requested = claims::volume_name(&claim).to_string();
        if requested.is_empty() {
            return self.sync_unrequesting_claim(claim).await;
        }
        // The user asked for a specific volume.
        let Some(volume) = self.lock_volumes().get(&requested) else {
            // Not there (yet): Pending, looked at again later.
            self.update_claim_status(&claim, claims::PHASE_PENDING, None)
                .await?;
            return Ok(());
        };
        if claims::claim_ref(&volume).is_none() {
            if let Err(why) = check_volume_satisfies_claim(&volume, &claim) {
                self.recorder.record(
                    claim.as_ref(),
                    true,
                    "VolumeMismatch",
                    format!("Cannot bind to requested volume {requested:?}: {why}"),
                );
                self.update_claim_status(&claim, claims::PHASE_PENDING, None)
                    .await?;
                return Ok(());
            }
            return self.bind(&volume, &claim).await;
        }
        if matching::is_volume_bound_to_claim(&volume, &claim) {
            // Pre-bound the other way too: finish the binding (the claim's uid).
            return self.bind(&volume, &claim).await;
        }
        let message = format!("volume {requested:?} already bound to a different claim.");
        self.recorder
            .record(claim.as_ref(), true, "FailedBinding", message);
        if !annotations::has(&claim.metadata, BOUND_BY_CONTROLLER) {
            // The user's choice is taken: wait until it is free.
            self.update_claim_status(&claim, claims::PHASE_PENDING, None)
                .await?;
            return Ok(());
        }
        // Only someone removing bind-completed by hand gets here.
        anyhow::bail!(
            "invalid binding of claim {} to volume {requested:?}: volume already claimed by {}",
            claims::claim_key(&claim),
            claims::claim_ref(&volume)
                .map(claims::claim_ref_key)
                .unwrap_or_default()
        )
    }

    /// An unbound claim that does not name a volume: the best match, else provisioning.
    async fn sync_unrequesting_claim(
        &self,
        claim: Arc<PersistentVolumeClaim>,
    ) -> anyhow::Result<()> {
        let delay_binding = self.is_delay_binding_mode(&claim)?;
        let found = self.lock_volumes().find_best_match(&claim, delay_binding);
        if let Some(volume) = found {
            return self.bind(&volume, &claim).await;
        }
        if self.assign_default_storage_class(&claim).await? {
            // The update brings the claim back with its class.
            return Ok(());
        }
        let provisioning_requested = annotations::has(&claim.metadata, annotations::SELECTED_NODE);
        if delay_binding && !provisioning_requested {
            // No pod using the claim has been scheduled yet.
            self.emit_waiting_for_first_consumer(&claim);
        } else if !claims::claim_class(&claim).is_empty() {
            // The provisioner's volume, once made, brings the claim back.
            return self.provision_claim(&claim).await;
        } else {
            self.recorder.record(
                claim.as_ref(),
                false,
                "FailedBinding",
                "no persistent volumes available for this claim and no storage class is set".into(),
            );
        }
        self.update_claim_status(&claim, claims::PHASE_PENDING, None)
            .await?;
        Ok(())
    }

    async fn sync_bound_claim(&self, claim: Arc<PersistentVolumeClaim>) -> anyhow::Result<()> {
        let volume_name = claims::volume_name(&claim).to_string();
        if volume_name.is_empty() {
            return self
                .update_claim_status_with_event(
                    &claim,
                    claims::PHASE_LOST,
                    None,
                    "ClaimLost",
                    "Bound claim has lost reference to PersistentVolume. Data on the volume is lost!",
                )
                .await;
        }
        let Some(volume) = self.lock_volumes().get(&volume_name) else {
            return self
                .update_claim_status_with_event(
                    &claim,
                    claims::PHASE_LOST,
                    None,
                    "ClaimLost",
                    "Bound claim has lost its PersistentVolume. Data on the volume is lost!",
                )
                .await;
        };
        match claims::claim_ref(&volume) {
            // Unbound since, or the volume's update not seen yet: bind it again either way.
            None => self.bind(&volume, &claim).await,
            Some(r) if r.uid.as_deref().unwrap_or_default() == claims::uid(&claim.metadata) => {
                // All is well; bind() only fills in what may be missing.
                self.bind(&volume, &claim).await
            }
            Some(_) => {
                self.update_claim_status_with_event(
                    &claim,
                    claims::PHASE_LOST,
                    None,
                    "ClaimMisbound",
                    "Two claims are bound to the same volume, this one is bound incorrectly",
                )
                .await
            }
        }
    }
}
