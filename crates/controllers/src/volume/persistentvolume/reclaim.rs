//! A released volume's reclaim policy (upstream's reclaimVolume): Retain keeps it Released;
//! Delete deletes it — a provisioned volume's own provisioner does that, in-tree only hostPath
//! volumes under /tmp can be deleted here (upstream's hostPath deleter), anything else fails;
//! Recycle fails (rkube has no recycler, and upstream deprecates the policy).

use std::sync::Arc;

use anyhow::Context;
use k8s_openapi::api::core::v1::PersistentVolume;
use kube::api::DeleteParams;

use super::PersistentVolumeController;
use crate::volume::annotations::{self, MIGRATED_TO, PROVISIONED_BY};
use crate::volume::{claims, pods};

/// The message of the Recycle failure: upstream's (no recycler plugin for the volume) and why.
pub const NO_RECYCLER: &str = "No recycler plugin found for the volume! Recycle is deprecated: use dynamic provisioning instead";

/// Who deletes a released volume: `Ok(true)` deleted here (the object is to be removed),
/// `Ok(false)` its external provisioner, `Err` nobody (upstream's messages).
pub fn delete_storage(volume: &PersistentVolume) -> Result<bool, String> {
    let spec = volume.spec.as_ref();
    if let Some(by) = annotations::get(&volume.metadata, PROVISIONED_BY).filter(|p| !p.is_empty()) {
        if by == "kubernetes.io/host-path" {
            return delete_host_path(volume);
        }
        if !by.starts_with("kubernetes.io/") {
            return Ok(false);
        }
        return Err(format!("no volume plugin matched name: {by}"));
    }
    if annotations::has(&volume.metadata, MIGRATED_TO) || spec.is_some_and(|s| s.csi.is_some()) {
        return Ok(false);
    }
    if spec.is_some_and(|s| s.host_path.is_some()) {
        return delete_host_path(volume);
    }
    Err(format!(
        "error getting deleter volume plugin for volume {:?}: no deletable volume plugin matched",
        claims::name(&volume.metadata)
    ))
}

/// Upstream's hostPath deleter accepts only paths under /tmp. It removes the directory in
/// the controller manager's own filesystem; rkube's controllers never touch a filesystem, so
/// the directory is left to the node that has it.
fn delete_host_path(volume: &PersistentVolume) -> Result<bool, String> {
    let Some(hp) = volume.spec.as_ref().and_then(|s| s.host_path.as_ref()) else {
        return Err("spec.PersistentVolumeSource.HostPath is nil".into());
    };
    match hp.path.strip_prefix("/tmp/") {
        Some(rest) if !rest.is_empty() && !rest.contains('\n') => Ok(true),
        _ => Err(format!(
            "host_path deleter only supports /tmp/.+ but received provided {}",
            hp.path
        )),
    }
}

impl PersistentVolumeController {
    pub(super) async fn reclaim_volume(
        &self,
        volume: &Arc<PersistentVolume>,
    ) -> anyhow::Result<()> {
        if annotations::get(&volume.metadata, MIGRATED_TO).is_some_and(|m| !m.is_empty()) {
            // A CSI driver's provisioner handles it.
            return Ok(());
        }
        let name = claims::name(&volume.metadata);
        let op = |kind: &str| format!("{kind}-{name}[{}]", claims::uid(&volume.metadata));
        match claims::reclaim_policy(volume) {
            "Retain" => {
                tracing::debug!(volume = name, "reclaim policy Retain: nothing to do");
                Ok(())
            }
            "Recycle" => {
                self.recycle_volume(volume).await;
                Ok(())
            }
            "Delete" => {
                let op = op("delete");
                if let Some(wait) = self.operations.wait(&op) {
                    // Backing off after a failure: looked at again once it may run.
                    self.volume_queue.add_after(name.to_string(), wait);
                    return Ok(());
                }
                let result = self.delete_volume_operation(volume).await;
                if let Err(e) = &result {
                    tracing::info!(volume = name, error = %format!("{e:#}"), "deleting the volume failed");
                }
                self.operations.finished(&op, result.is_ok());
                Ok(())
            }
            _ => {
                self.update_volume_phase_with_event(
                    volume,
                    claims::PHASE_FAILED,
                    "VolumeUnknownReclaimPolicy",
                    "Volume has unrecognized PersistentVolumeReclaimPolicy",
                )
                .await
            }
        }
    }

    /// Whether the volume is still released on a fresh read: its claim gone (or another claim
    /// of that name), or bound to another volume.
    fn is_volume_released(&self, volume: &PersistentVolume) -> bool {
        let Some(r) = claims::claim_ref(volume) else {
            return false;
        };
        let ref_uid = r.uid.as_deref().unwrap_or_default();
        if ref_uid.is_empty() {
            return false;
        }
        let Some(claim) = self.lock_claims().get(&claims::claim_ref_key(r)) else {
            return true;
        };
        if claims::uid(&claim.metadata) != ref_uid {
            return true;
        }
        let bound_to = claims::volume_name(&claim);
        !bound_to.is_empty() && bound_to != claims::name(&volume.metadata)
    }

    async fn fresh_volume(
        &self,
        volume: &PersistentVolume,
    ) -> anyhow::Result<Arc<PersistentVolume>> {
        let name = claims::name(&volume.metadata);
        self.volumes_api()
            .get(name)
            .await
            .map(Arc::new)
            .with_context(|| format!("reading volume {name}"))
    }

    /// Deletes a released volume: a failure marks it Failed (VolumeFailedDelete) and is
    /// retried after a back-off.
    async fn delete_volume_operation(&self, volume: &PersistentVolume) -> anyhow::Result<()> {
        // The cache may be behind an earlier deletion attempt's writes.
        let fresh = match self.fresh_volume(volume).await {
            Ok(v) => v,
            Err(e) => {
                tracing::debug!(error = %format!("{e:#}"), "deleting a volume");
                return Ok(());
            }
        };
        if !self.is_volume_released(&fresh) {
            return Ok(());
        }
        let name = claims::name(&fresh.metadata);
        match delete_storage(&fresh) {
            Ok(false) => Ok(()),
            Ok(true) => {
                if let Err(e) = self
                    .volumes_api()
                    .delete(name, &DeleteParams::default())
                    .await
                {
                    // Tried again at the next sync.
                    tracing::info!(volume = name, error = %e, "deleting the volume object failed");
                }
                Ok(())
            }
            Err(why) => {
                self.update_volume_phase_with_event(
                    &fresh,
                    claims::PHASE_FAILED,
                    "VolumeFailedDelete",
                    &why,
                )
                .await?;
                anyhow::bail!(why)
            }
        }
    }

    /// Recycling: refused (no recycler), unless pods still use the volume, which is said
    /// instead; the controller tries again every sync, as upstream.
    async fn recycle_volume(&self, volume: &PersistentVolume) {
        let fresh = match self.fresh_volume(volume).await {
            Ok(v) => v,
            Err(e) => {
                tracing::debug!(error = %format!("{e:#}"), "recycling a volume");
                return;
            }
        };
        if !self.is_volume_released(&fresh) {
            return;
        }
        let users = self.pods_using(&fresh);
        let claim_cached = claims::claim_ref(&fresh)
            .is_some_and(|r| self.lock_claims().get(&claims::claim_ref_key(r)).is_some());
        if !users.is_empty() && !claim_cached {
            self.recorder.record(
                fresh.as_ref(),
                false,
                "VolumeFailedRecycle",
                format!("Volume is used by pods: {}", users.join(",")),
            );
            return;
        }
        if let Err(e) = self
            .update_volume_phase_with_event(
                &fresh,
                claims::PHASE_FAILED,
                "VolumeFailedRecycle",
                NO_RECYCLER,
            )
            .await
        {
            tracing::info!(error = %format!("{e:#}"), "marking a volume Failed");
        }
    }

    /// The running pods (`namespace/name`) using the volume's claim.
    fn pods_using(&self, volume: &PersistentVolume) -> Vec<String> {
        let Some(r) = claims::claim_ref(volume) else {
            return Vec::new();
        };
        let ns = r.namespace.as_deref().unwrap_or_default();
        let claim = r.name.as_deref().unwrap_or_default();
        let mut names: Vec<String> = self
            .src
            .pods
            .list_namespace(ns)
            .iter()
            .filter(|p| pods::references_claim(p, claim) && !pods::is_terminated(p))
            .map(|p| format!("{ns}/{}", claims::name(&p.metadata)))
            .collect();
        names.sort();
        names
    }
}
