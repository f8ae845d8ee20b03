//! The controller's writes (upstream's bind, unbindVolume, updateClaimStatus,
//! updateVolumePhase): each a PUT with the version read, so a racing writer makes it fail and
//! the next sync decide again; what was written goes straight into the controller's cache.

use std::sync::Arc;

use anyhow::Context;
use k8s_openapi::api::core::v1::{PersistentVolume, PersistentVolumeClaim};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use kube::api::PostParams;

use super::PersistentVolumeController;
use crate::volume::annotations::{self, BIND_COMPLETED, BOUND_BY_CONTROLLER};
use crate::volume::claims;

impl PersistentVolumeController {
    /// Sets the claim's phase, and its access modes and capacity from `volume` (cleared
    /// without one). Capacity is copied only when the claim becomes bound: a later difference
    /// may be a resize in progress.
    pub(super) async fn update_claim_status(
        &self,
        claim: &Arc<PersistentVolumeClaim>,
        phase: &str,
        volume: Option<&PersistentVolume>,
    ) -> anyhow::Result<Arc<PersistentVolumeClaim>> {
        let phase_changes = claims::claim_phase(claim) != phase;
        let mut clone = (**claim).clone();
        let status = clone.status.get_or_insert_with(Default::default);
        let mut dirty = phase_changes;
        status.phase = Some(phase.to_string());
        match volume {
            None => {
                dirty |= status.access_modes.take().is_some();
                dirty |= status.capacity.take().is_some();
            }
            Some(v) => {
                let spec = v.spec.clone().unwrap_or_default();
                if status.access_modes != spec.access_modes {
                    status.access_modes = spec.access_modes.clone();
                    dirty = true;
                }
                if phase_changes {
                    let Some(capacity) = spec.capacity.filter(|c| c.contains_key("storage")) else {
                        anyhow::bail!(
                            "PersistentVolume {:?} is without a storage capacity",
                            claims::name(&v.metadata)
                        );
                    };
                    if let Some(pre) =
                        annotations::get(&v.metadata, annotations::PRE_RESIZE_CAPACITY)
                    {
                        // The filesystem still has its old size: report that.
                        let size = if common::quantity::parse_scaled(pre, 1).is_some() {
                            Quantity(pre.to_string())
                        } else {
                            capacity.get("storage").cloned().unwrap_or_default()
                        };
                        status.capacity = Some([("storage".to_string(), size)].into());
                        dirty = true;
                    } else if !claims::same_storage(Some(&capacity), status.capacity.as_ref()) {
                        status.capacity = Some(capacity);
                        dirty = true;
                    }
                }
            }
        }
        if !dirty {
            return Ok(claim.clone());
        }
        let name = claims::name(&claim.metadata);
        let updated = self
            .claims_api(claim)
            .replace_status(name, &PostParams::default(), &clone)
            .await
            .with_context(|| format!("setting claim {} to {phase}", claims::claim_key(claim)))?;
        let updated = Arc::new(updated);
        self.lock_claims().store(updated.clone());
        if phase_changes {
            tracing::info!(claim = %claims::claim_key(claim), phase, "claim entered phase");
        }
        Ok(updated)
    }

    /// [`Self::update_claim_status`] with an event, both only when the phase changes.
    pub(super) async fn update_claim_status_with_event(
        &self,
        claim: &Arc<PersistentVolumeClaim>,
        phase: &str,
        volume: Option<&PersistentVolume>,
        reason: &str,
        message: &str,
    ) -> anyhow::Result<()> {
        if claims::claim_phase(claim) == phase {
            return Ok(());
        }
        let updated = self.update_claim_status(claim, phase, volume).await?;
        self.recorder
            .record(updated.as_ref(), true, reason, message.to_string());
        Ok(())
    }

    /// Sets the volume's phase (and status message) when it differs.
    pub(super) async fn update_volume_phase(
        &self,
        volume: &Arc<PersistentVolume>,
        phase: &str,
        message: Option<String>,
    ) -> anyhow::Result<Arc<PersistentVolume>> {
        if claims::volume_phase(volume) == phase {
            return Ok(volume.clone());
        }
        let mut clone = (**volume).clone();
        let status = clone.status.get_or_insert_with(Default::default);
        status.phase = Some(phase.to_string());
        status.message = message;
        let name = claims::name(&volume.metadata);
        let updated = self
            .volumes_api()
            .replace_status(name, &PostParams::default(), &clone)
            .await
            .with_context(|| format!("setting volume {name} to {phase}"))?;
        let updated = Arc::new(updated);
        self.lock_volumes().store(updated.clone());
        tracing::info!(volume = name, phase, "volume entered phase");
        Ok(updated)
    }

    /// [`Self::update_volume_phase`] with a warning event carrying `message`, both only when
    /// the phase changes.
    pub(super) async fn update_volume_phase_with_event(
        &self,
        volume: &Arc<PersistentVolume>,
        phase: &str,
        reason: &str,
        message: &str,
    ) -> anyhow::Result<()> {
        if claims::volume_phase(volume) == phase {
            return Ok(());
        }
        let updated = self
            .update_volume_phase(volume, phase, Some(message.to_string()))
            .await?;
        self.recorder
            .record(updated.as_ref(), true, reason, message.to_string());
        Ok(())
    }

    /// Points the volume's claimRef at the claim (with its uid), marking the binding as the
    /// controller's unless the volume was pre-bound to this claim.
    async fn bind_volume_to_claim(
        &self,
        volume: &Arc<PersistentVolume>,
        claim: &PersistentVolumeClaim,
    ) -> anyhow::Result<Arc<PersistentVolume>> {
        let mark = !super::matching::is_volume_bound_to_claim(volume, claim);
        let mut clone = (**volume).clone();
        let spec = clone.spec.get_or_insert_with(Default::default);
        let mut dirty = false;
        let same = spec.claim_ref.as_ref().is_some_and(|r| {
            r.name == claim.metadata.name
                && r.namespace == claim.metadata.namespace
                && r.uid == claim.metadata.uid
        });
        if !same {
            spec.claim_ref = Some(claims::reference_to(claim));
            dirty = true;
        }
        if mark && !annotations::has(&clone.metadata, BOUND_BY_CONTROLLER) {
            annotations::set(&mut clone.metadata, BOUND_BY_CONTROLLER, "yes");
            dirty = true;
        }
        if !dirty {
            return Ok(volume.clone());
        }
        let name = claims::name(&volume.metadata);
        let updated = self
            .volumes_api()
            .replace(name, &PostParams::default(), &clone)
            .await
            .with_context(|| format!("binding volume {name} to {}", claims::claim_key(claim)))?;
        tracing::info!(volume = name, claim = %claims::claim_key(claim), "claim bound to volume");
        let updated = Arc::new(updated);
        self.lock_volumes().store(updated.clone());
        Ok(updated)
    }

    /// Sets the claim's volumeName (marking the binding as the controller's when it sets it)
    /// and its bind-completed annotation.
    async fn bind_claim_to_volume(
        &self,
        claim: &Arc<PersistentVolumeClaim>,
        volume: &PersistentVolume,
    ) -> anyhow::Result<Arc<PersistentVolumeClaim>> {
        let volume_name = claims::name(&volume.metadata);
        let mut clone = (**claim).clone();
        let mut dirty = false;
        if claims::volume_name(claim) != volume_name {
            clone.spec.get_or_insert_with(Default::default).volume_name =
                Some(volume_name.to_string());
            if !annotations::has(&clone.metadata, BOUND_BY_CONTROLLER) {
                annotations::set(&mut clone.metadata, BOUND_BY_CONTROLLER, "yes");
            }
            dirty = true;
        }
        if !annotations::has(&clone.metadata, BIND_COMPLETED) {
            annotations::set(&mut clone.metadata, BIND_COMPLETED, "yes");
            dirty = true;
        }
        if !dirty {
            return Ok(claim.clone());
        }
        let updated = self
            .claims_api(claim)
            .replace(
                claims::name(&claim.metadata),
                &PostParams::default(),
                &clone,
            )
            .await
            .with_context(|| {
                format!(
                    "binding claim {} to volume {volume_name}",
                    claims::claim_key(claim)
                )
            })?;
        tracing::info!(claim = %claims::claim_key(claim), volume = volume_name, "volume bound to claim");
        let updated = Arc::new(updated);
        self.lock_claims().store(updated.clone());
        Ok(updated)
    }

    /// Binds both ways and marks both Bound, volume first; stops at the first failure (the
    /// next sync carries on from what was saved).
    pub(super) async fn bind(
        &self,
        volume: &Arc<PersistentVolume>,
        claim: &Arc<PersistentVolumeClaim>,
    ) -> anyhow::Result<()> {
        let volume = self.bind_volume_to_claim(volume, claim).await?;
        let volume = self
            .update_volume_phase(&volume, claims::PHASE_BOUND, None)
            .await?;
        let claim = self.bind_claim_to_volume(claim, &volume).await?;
        self.update_claim_status(&claim, claims::PHASE_BOUND, Some(&volume))
            .await?;
        Ok(())
    }

    /// Undoes a binding the controller made (claimRef dropped), or, for a volume the user
    /// pre-bound, only the claim's uid (it stays reserved for that claim); Available again.
    pub(super) async fn unbind_volume(&self, volume: &Arc<PersistentVolume>) -> anyhow::Result<()> {
        let mut clone = (**volume).clone();
        let spec = clone.spec.get_or_insert_with(Default::default);
        if annotations::has(&volume.metadata, BOUND_BY_CONTROLLER) {
            spec.claim_ref = None;
            if let Some(a) = clone.metadata.annotations.as_mut() {
                a.remove(BOUND_BY_CONTROLLER);
                if a.is_empty() {
                    clone.metadata.annotations = None;
                }
            }
        } else if let Some(r) = spec.claim_ref.as_mut() {
            r.uid = None;
        }
        let name = claims::name(&volume.metadata);
        let updated = self
            .volumes_api()
            .replace(name, &PostParams::default(), &clone)
            .await
            .with_context(|| format!("unbinding volume {name}"))?;
        let updated = Arc::new(updated);
        self.lock_volumes().store(updated.clone());
        tracing::info!(volume = name, "volume unbound");
        self.update_volume_phase(&updated, claims::PHASE_AVAILABLE, None)
            .await?;
        Ok(())
    }
}
