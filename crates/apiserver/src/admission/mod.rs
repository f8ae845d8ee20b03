//! Admission (Kubernetes' admission chain): mutating plugins run on a write after defaulting,
//! validating plugins after the kind's own validation, both before the store. One plugin per
//! module; [`Chain`] calls them in Kubernetes' order. The registry defines what it needs
//! ([`crate::registry::Admit`]) and the handler hands it the chain with each write, so the
//! registry never calls up here. Plugins see the cluster only through [`Lister`] (reads
//! from the watch cache) and ResourceQuota through [`QuotaWriter`] (its charges), as
//! upstream's plugins get listers and a quota accessor; `registry_lister.rs` is the one
//! module that implements them over the registry.

use std::collections::HashSet;
use std::sync::{Arc, OnceLock};

use serde_json::Value;

use crate::authz::Authorizer;
use crate::error::ApiResult;
use crate::registry::Admit;

// The attributes are the registry's (what it passes); plugins name them from here.
pub use crate::registry::{Attributes, Operation};
pub use lister::{Lister, QuotaWriter};

pub mod default_ingress_class;
pub mod default_storage_class;
pub mod default_toleration_seconds;
pub mod limit_ranger;
pub mod lister;
mod matching;
pub mod namespace_lifecycle;
pub mod node_restriction;
pub mod persistent_volume_claim_resize;
pub mod pod_preset;
pub mod pod_security;
pub mod priority;
mod registry_lister;
pub mod resource_quota;
pub mod service_account;
pub mod storage_object_in_use_protection;
pub mod support;
pub mod validating_admission_policy;
pub mod webhook;

/// The configured plugins (upstream's admission chain as built from the server's flags).
pub struct Chain {
    /// What the plugins read.
    lister: Arc<dyn Lister>,
    /// What ResourceQuota charges.
    quotas: Arc<dyn QuotaWriter>,
    /// `--disable-admission-plugins`.
    disabled: HashSet<String>,
    /// For the RBAC escalation check; unset: authorization is off (or not started yet: the
    /// bootstrap policy is written before the authorizer exists).
    authorizer: OnceLock<Arc<Authorizer>>,
}

impl Chain {
    /// The chain reading through `lister`, charging quotas through `quotas` (the registry
    /// is both), with the plugins `disabled` off.
    pub fn new(
        lister: Arc<dyn Lister>,
        quotas: Arc<dyn QuotaWriter>,
        disabled: HashSet<String>,
    ) -> Self {
        Chain {
            lister,
            quotas,
            disabled,
            authorizer: OnceLock::new(),
        }
    }

    /// Turns on the RBAC escalation check, once authorization has started.
    pub fn set_authorizer(&self, authorizer: Arc<Authorizer>) {
        // Set once at start; a second call would be the same authorizer.
        let _ = self.authorizer.set(authorizer);
    }

    /// Whether `--disable-admission-plugins` left `plugin` on.
    fn enabled(&self, plugin: &str) -> bool {
        !self.disabled.contains(plugin)
    }
}

#[async_trait::async_trait]
impl Admit for Chain {
    /// The mutating plugins, in order; each may change `obj` or refuse the write.
    async fn mutate(&self, a: &Attributes<'_>, obj: &mut Value) -> ApiResult<()> {
        let lister = &*self.lister;
        let on = |plugin: &str| self.enabled(plugin);
        if on("NamespaceLifecycle") {
            namespace_lifecycle::admit(lister, a, obj).await?;
        }
        if on("LimitRanger") {
            limit_ranger::admit(lister, a, obj).await?;
        }
        if on("ServiceAccount") {
            service_account::admit(lister, a, obj).await?;
        }
        if on("PodPreset") {
            pod_preset::admit(lister, a, obj).await?;
        }
        if on("Priority") && a.operation == Operation::Create && a.is_core("Pod") {
            priority::admit_pod(lister, obj).await?;
        }
        if on("DefaultTolerationSeconds") {
            default_toleration_seconds::admit(a, obj);
        }
        if on("DefaultStorageClass") {
            default_storage_class::admit(lister, a, obj).await?;
        }
        if on("StorageObjectInUseProtection") {
            storage_object_in_use_protection::admit(a, obj);
        }
        if on("DefaultIngressClass") {
            default_ingress_class::admit(lister, a, obj).await?;
        }
        // Last: webhooks see what the built-in plugins made of the object.
        if on("MutatingAdmissionWebhook") {
            webhook::mutate(lister, a, obj).await?;
        }
        Ok(())
    }

    /// The validating plugins, in order; each may refuse the write.
    async fn validate(&self, a: &Attributes<'_>, obj: &Value) -> ApiResult<()> {
        let lister = &*self.lister;
        let on = |plugin: &str| self.enabled(plugin);
        if on("LimitRanger") {
            limit_ranger::validate(lister, a, obj).await?;
        }
        if on("PodSecurity") {
            pod_security::validate(lister, a, obj).await?;
        }
        if on("NodeRestriction") {
            node_restriction::validate(a, obj)?;
        }
        if on("PersistentVolumeClaimResize") {
            persistent_volume_claim_resize::validate(lister, a, obj).await?;
        }
        // RBAC's escalation check (upstream runs it in the RBAC registry's strategy, just
        // before storage, so it is no plugin to disable).
        if let Some(authz) = self.authorizer.get() {
            crate::authz::escalation::check(authz, a, obj)?;
        }
        if on("ValidatingAdmissionPolicy") {
            validating_admission_policy::validate(lister, a, obj).await?;
        }
        if on("ValidatingAdmissionWebhook") {
            webhook::validate(lister, a, obj).await?;
        }
        // Last: it charges quotas, so only writes every other plugin let through. Its
        // charges are writes of their own, through this same chain.
        if on("ResourceQuota") {
            resource_quota::validate(lister, &*self.quotas, self, a, obj).await?;
        }
        Ok(())
    }

    /// The validating plugins of a delete (`a.old` is the object deleted): only the
    /// policies and webhooks, as the built-in plugins here judge only creates and updates.
    async fn validate_delete(&self, a: &Attributes<'_>) -> ApiResult<()> {
        if self.enabled("ValidatingAdmissionPolicy") {
            validating_admission_policy::validate(&*self.lister, a, &Value::Null).await?;
        }
        if self.enabled("ValidatingAdmissionWebhook") {
            webhook::validate(&*self.lister, a, &Value::Null).await?;
        }
        Ok(())
    }
}

/// Every plugin's name, as `--disable-admission-plugins` takes them.
pub const PLUGINS: &[&str] = &[
    "NamespaceLifecycle",
    "LimitRanger",
    "ServiceAccount",
    "PodPreset",
    "Priority",
    "DefaultTolerationSeconds",
    "DefaultStorageClass",
    "StorageObjectInUseProtection",
    "DefaultIngressClass",
    "MutatingAdmissionWebhook",
    "PodSecurity",
    "NodeRestriction",
    "PersistentVolumeClaimResize",
    "ValidatingAdmissionPolicy",
    "ValidatingAdmissionWebhook",
    "ResourceQuota",
];
