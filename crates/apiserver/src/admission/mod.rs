//! Admission (Kubernetes' admission chain): mutating plugins run on a write after defaulting,
//! validating plugins after the kind's own validation, both before the store. One plugin per
//! module; [`mutate`] and [`validate`] call them in Kubernetes' order.

use serde_json::Value;

use crate::authn::UserInfo;
use crate::error::ApiResult;
use crate::registry::Registry;
use crate::resources::ResourceInfo;

pub mod default_toleration_seconds;
pub mod limit_ranger;
pub mod namespace_lifecycle;
pub mod node_restriction;
pub mod pod_preset;
pub mod pod_security;
pub mod priority;
pub mod resource_quota;
pub mod service_account;
pub mod support;
pub mod webhook;

/// What a write does (admission's `Operation`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Operation {
    Create,
    Update,
    Delete,
}

impl Operation {
    /// As AdmissionReview and audit spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            Operation::Create => "CREATE",
            Operation::Update => "UPDATE",
            Operation::Delete => "DELETE",
        }
    }
}

/// What a plugin knows of the write (Kubernetes' `admission.Attributes`).
pub struct Attributes<'a> {
    pub operation: Operation,
    pub info: &'a ResourceInfo,
    /// Empty for cluster-scoped objects.
    pub namespace: &'a str,
    pub name: &'a str,
    pub subresource: Option<&'a str>,
    /// The stored object, on update and delete.
    pub old: Option<&'a Value>,
    /// Who writes; `None` for the API server's own writes.
    pub user: Option<UserInfo>,
    pub dry_run: bool,
}

impl Attributes<'_> {
    /// Whether the write is to a core/v1 object of `kind` itself (not a subresource).
    pub fn is_core(&self, kind: &str) -> bool {
        self.info.group.is_empty() && self.info.kind == kind && self.subresource.is_none()
    }
}

/// Whether `--disable-admission-plugins` left `plugin` on.
fn enabled(registry: &Registry, plugin: &str) -> bool {
    !registry.disabled_admission.contains(plugin)
}

/// The mutating plugins, in order; each may change `obj` or refuse the write.
pub async fn mutate(registry: &Registry, a: &Attributes<'_>, obj: &mut Value) -> ApiResult<()> {
    let on = |plugin: &str| enabled(registry, plugin);
    if on("NamespaceLifecycle") {
        namespace_lifecycle::admit(registry, a, obj).await?;
    }
    if on("LimitRanger") {
        limit_ranger::admit(registry, a, obj).await?;
    }
    if on("ServiceAccount") {
        service_account::admit(registry, a, obj).await?;
    }
    if on("PodPreset") {
        pod_preset::admit(registry, a, obj).await?;
    }
    if on("Priority") && a.operation == Operation::Create && a.is_core("Pod") {
        priority::admit_pod(registry, obj).await?;
    }
    if on("DefaultTolerationSeconds") {
        default_toleration_seconds::admit(a, obj);
    }
    // Last: webhooks see what the built-in plugins made of the object.
    if on("MutatingAdmissionWebhook") {
        webhook::mutate(registry, a, obj).await?;
    }
    Ok(())
}

/// The validating plugins, in order; each may refuse the write.
pub async fn validate(registry: &Registry, a: &Attributes<'_>, obj: &Value) -> ApiResult<()> {
    let on = |plugin: &str| enabled(registry, plugin);
    if on("LimitRanger") {
        limit_ranger::validate(registry, a, obj).await?;
    }
    if on("PodSecurity") {
        pod_security::validate(registry, a, obj).await?;
    }
    if on("NodeRestriction") {
        node_restriction::validate(a, obj)?;
    }
    // RBAC's escalation check (upstream runs it in the RBAC registry's strategy, just
    // before storage, so it is no plugin to disable).
    if let Some(authz) = registry.authorizer.get() {
        crate::authz::escalation::check(authz, a, obj)?;
    }
    if on("ValidatingAdmissionWebhook") {
        webhook::validate(registry, a, obj).await?;
    }
    // Last: it charges quotas, so only writes every other plugin let through.
    if on("ResourceQuota") {
        resource_quota::validate(registry, a, obj).await?;
    }
    Ok(())
}

/// The validating plugins of a delete (`a.old` is the object deleted): only the webhooks, as
/// the built-in plugins here judge only creates and updates.
pub async fn validate_delete(registry: &Registry, a: &Attributes<'_>) -> ApiResult<()> {
    if !enabled(registry, "ValidatingAdmissionWebhook") {
        return Ok(());
    }
    webhook::validate(registry, a, &Value::Null).await
}

/// Every plugin's name, as `--disable-admission-plugins` takes them.
pub const PLUGINS: &[&str] = &[
    "NamespaceLifecycle",
    "LimitRanger",
    "ServiceAccount",
    "PodPreset",
    "Priority",
    "DefaultTolerationSeconds",
    "MutatingAdmissionWebhook",
    "PodSecurity",
    "NodeRestriction",
    "ValidatingAdmissionWebhook",
    "ResourceQuota",
];
