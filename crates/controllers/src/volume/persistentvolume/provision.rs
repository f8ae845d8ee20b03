//! Claims no existing volume fits: a default class for claims without one, waiting for the
//! first consumer (WaitForFirstConsumer classes), and provisioning. rkube has no in-tree
//! provisioning plugin, so every provisioner is external (the built-in local-path one
//! included): the claim is annotated with the provisioner's name and the provisioner's volume,
//! made pre-bound to the claim, is bound by the next sync.

use std::sync::Arc;

use anyhow::Context;
use k8s_openapi::api::core::v1::PersistentVolumeClaim;
use kube::api::PostParams;

use super::PersistentVolumeController;
use crate::volume::annotations::{self, BETA_STORAGE_PROVISIONER, STORAGE_PROVISIONER};
use crate::volume::{claims, pods};

pub use common::storage::classes::default_class;

/// The event a pending WaitForFirstConsumer claim gets: upstream's words, naming the pods
/// that use it and wait for the scheduler, if any.
pub fn waiting_event(unscheduled_pods: &[String]) -> (&'static str, String) {
    match unscheduled_pods {
        [] => (
            "WaitForFirstConsumer",
            "waiting for first consumer to be created before binding".into(),
        ),
        [one] => (
            "WaitForPodScheduled",
            format!("waiting for pod {one} to be scheduled"),
        ),
        many => (
            "WaitForPodScheduled",
            format!("waiting for pods {} to be scheduled", many.join(",")),
        ),
    }
}

impl PersistentVolumeController {
    /// Whether the claim's class binds only once a pod using it is scheduled. A class that
    /// does not exist binds at once; one without a binding mode too (the API's default).
    pub(super) fn is_delay_binding_mode(
        &self,
        claim: &PersistentVolumeClaim,
    ) -> anyhow::Result<bool> {
        let class = claims::claim_class(claim);
        if class.is_empty() {
            return Ok(false);
        }
        Ok(common::storage::classes::is_delay_binding(
            self.src.classes.get(None, class).as_deref(),
        ))
    }

    pub(super) fn emit_waiting_for_first_consumer(&self, claim: &PersistentVolumeClaim) {
        let ns = claim.metadata.namespace.as_deref().unwrap_or_default();
        let name = claims::name(&claim.metadata);
        let mut waiting: Vec<String> = self
            .src
            .pods
            .list_namespace(ns)
            .iter()
            .filter(|p| pods::references_claim(p, name))
            .filter(|p| !pods::is_terminated(p) && pods::node_name(p).is_empty())
            .map(|p| claims::name(&p.metadata).to_string())
            .collect();
        waiting.sort();
        let (reason, message) = waiting_event(&waiting);
        self.recorder.record(claim, false, reason, message);
    }

    /// Gives a claim without any class the default class (upstream's retroactive default
    /// StorageClass assignment); `true` when the claim was updated.
    pub(super) async fn assign_default_storage_class(
        &self,
        claim: &Arc<PersistentVolumeClaim>,
    ) -> anyhow::Result<bool> {
        if claims::claim_has_class(claim) {
            return Ok(false);
        }
        let classes = self.src.classes.list();
        let Some(class) = default_class(&classes) else {
            return Ok(false);
        };
        let class_name = claims::name(&class.metadata).to_string();
        let mut clone = (**claim).clone();
        clone
            .spec
            .get_or_insert_with(Default::default)
            .storage_class_name = Some(class_name.clone());
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
                    "giving claim {} the default class {class_name}",
                    claims::claim_key(claim)
                )
            })?;
        tracing::info!(claim = %claims::claim_key(claim), class = class_name, "default storage class assigned");
        self.lock_claims().store(Arc::new(updated));
        Ok(true)
    }

    /// Asks the class's provisioner for a volume: external ones through the claim's
    /// storage-provisioner annotations (and an ExternalProvisioning event each sync while it
    /// waits); in-tree names (`kubernetes.io/...`) fail, rkube has none of those plugins.
    pub(super) async fn provision_claim(
        &self,
        claim: &Arc<PersistentVolumeClaim>,
    ) -> anyhow::Result<()> {
        let class_name = claims::claim_class(claim);
        let Some(class) = self.src.classes.get(None, class_name) else {
            self.recorder.record(
                claim.as_ref(),
                true,
                "ProvisioningFailed",
                format!("storageclass.storage.k8s.io {class_name:?} not found"),
            );
            return Ok(());
        };
        let provisioner = class.provisioner.as_str();
        if let Some(failure) = in_tree_failure(provisioner) {
            self.recorder
                .record(claim.as_ref(), true, "ProvisioningFailed", failure);
            return Ok(());
        }
        let claim = self.set_claim_provisioner(claim, provisioner).await?;
        self.recorder.record(
            claim.as_ref(),
            false,
            "ExternalProvisioning",
            format!(
                "Waiting for a volume to be created either by the external provisioner '{provisioner}' or manually by the system administrator. If volume creation is delayed, please verify that the provisioner is running and correctly registered."
            ),
        );
        Ok(())
    }

    /// Annotates the claim with the provisioner expected to make its volume.
    async fn set_claim_provisioner(
        &self,
        claim: &Arc<PersistentVolumeClaim>,
        provisioner: &str,
    ) -> anyhow::Result<Arc<PersistentVolumeClaim>> {
        if annotations::get(&claim.metadata, STORAGE_PROVISIONER) == Some(provisioner) {
            return Ok(claim.clone());
        }
        let mut clone = (**claim).clone();
        annotations::set(&mut clone.metadata, BETA_STORAGE_PROVISIONER, provisioner);
        annotations::set(&mut clone.metadata, STORAGE_PROVISIONER, provisioner);
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
                    "annotating claim {} for provisioner {provisioner}",
                    claims::claim_key(claim)
                )
            })?;
        let updated = Arc::new(updated);
        self.lock_claims().store(updated.clone());
        Ok(updated)
    }
}

/// The ProvisioningFailed message upstream gives for an in-tree provisioner name rkube has no
/// plugin for; `None` for an external provisioner.
pub fn in_tree_failure(provisioner: &str) -> Option<String> {
    if !provisioner.starts_with("kubernetes.io/") {
        return None;
    }
    Some(if provisioner == "kubernetes.io/host-path" {
        // Upstream has the plugin but provisioning with it is off by default.
        "Failed to create provisioner: provisioning in volume plugin \"kubernetes.io/host-path\" is disabled".into()
    } else {
        format!("no volume plugin matched name: {provisioner}")
    })
}
