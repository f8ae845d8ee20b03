//! Per-kind behaviour the generic registry calls: defaults, validation, what a write may
//! change, and which fields can be selected on. Kinds without special rules use
//! [`Generic`]; each special kind has its own module.

mod admissionregistration;
mod autoscaling;
mod certificates;
mod job;
mod namespace;
mod pod;
mod rbac;
mod secret;
mod service;
mod settings;
mod volume;
mod workload;

use serde_json::Value;

use crate::error::Cause;
use crate::meta;
use crate::resources::ResourceInfo;
use crate::user::UserInfo;

pub trait Strategy: Send + Sync {
    /// Kubernetes' defaulting, applied to every object written (create and update), as
    /// Kubernetes defaults every object it decodes.
    fn defaults(&self, _obj: &mut Value) {}

    /// Resets what clients may not set on create (e.g. status), after defaults. `user` is
    /// the requester (none for the server's own writes), as upstream's request context.
    fn prepare_for_create(&self, _obj: &mut Value, _user: Option<&UserInfo>) {}

    /// Keeps what an update of the main resource may not change (before defaults).
    fn prepare_for_update(&self, _new: &mut Value, _old: &Value) {}

    /// Kind-specific validation of a whole object, after defaults.
    fn validate(&self, _obj: &Value) -> Vec<Cause> {
        Vec::new()
    }

    /// Kind-specific checks of an update against the stored object (immutable fields).
    fn validate_update(&self, _new: &Value, _old: &Value) -> Vec<Cause> {
        Vec::new()
    }

    /// Whether object names are DNS labels rather than subdomains.
    fn name_is_label(&self) -> bool {
        false
    }

    /// A kind's own name rule, replacing the DNS one (RBAC names are path segments).
    fn validate_name(&self, _name: &str) -> Option<Cause> {
        None
    }

    /// Whether the kind has its own name rule ([`Strategy::validate_name`]).
    fn own_name_rule(&self) -> bool {
        false
    }

    /// Whether `metadata.generation` counts spec changes for this kind.
    fn tracks_generation(&self) -> bool {
        false
    }

    /// Fields a field selector may use besides `metadata.name` and `metadata.namespace`.
    fn field_selectors(&self) -> &'static [&'static str] {
        &[]
    }
}

/// The rules every kind follows.
pub struct Generic {
    generation: bool,
    label_names: bool,
    fields: &'static [&'static str],
}

impl Strategy for Generic {
    fn tracks_generation(&self) -> bool {
        self.generation
    }
    fn name_is_label(&self) -> bool {
        self.label_names
    }
    fn field_selectors(&self) -> &'static [&'static str] {
        self.fields
    }
}

/// The strategy for a resource.
pub fn for_resource(info: &ResourceInfo) -> Box<dyn Strategy> {
    let generic = |generation: bool, label_names: bool, fields: &'static [&'static str]| {
        Box::new(Generic {
            generation,
            label_names,
            fields,
        }) as Box<dyn Strategy>
    };
    match (info.group, info.kind) {
        ("", "Pod") => Box::new(pod::PodStrategy),
        ("", "Namespace") => Box::new(namespace::NamespaceStrategy),
        ("", "Service") => Box::new(service::ServiceStrategy),
        ("", "ReplicationController") => Box::new(workload::WorkloadStrategy {
            kind: "ReplicationController",
        }),
        ("", "Secret") => Box::new(secret::SecretStrategy),
        ("", "LimitRange") => Box::new(settings::LimitRangeStrategy),
        ("settings.k8s.io", "PodPreset") => Box::new(settings::PodPresetStrategy),
        ("admissionregistration.k8s.io", _) => Box::new(admissionregistration::WebhookStrategy {
            mutating: info.kind == "MutatingWebhookConfiguration",
        }),
        ("", "PersistentVolume" | "PersistentVolumeClaim") => Box::new(volume::VolumeStrategy),
        ("", "Node") => generic(false, false, &["spec.unschedulable"]),
        ("", "Event") => generic(
            false,
            false,
            &[
                "involvedObject.kind",
                "involvedObject.namespace",
                "involvedObject.name",
                "involvedObject.uid",
                "involvedObject.apiVersion",
                "involvedObject.resourceVersion",
                "involvedObject.fieldPath",
                "reason",
                "reportingComponent",
                "source",
                "type",
            ],
        ),
        ("apps", kind @ ("ReplicaSet" | "Deployment" | "DaemonSet" | "StatefulSet"))
        | ("batch", kind @ ("Job" | "CronJob")) => Box::new(workload::WorkloadStrategy { kind }),
        ("certificates.k8s.io", "CertificateSigningRequest") => Box::new(certificates::CsrStrategy),
        ("rbac.authorization.k8s.io", kind) => Box::new(rbac::RbacStrategy {
            kind: match kind {
                "Role" => "Role",
                "ClusterRole" => "ClusterRole",
                "RoleBinding" => "RoleBinding",
                _ => "ClusterRoleBinding",
            },
        }),
        ("autoscaling", "HorizontalPodAutoscaler") => Box::new(autoscaling::HpaStrategy {
            v1: info.version == "v1",
        }),
        ("autoscaling", _) | ("networking.k8s.io", "Ingress" | "NetworkPolicy") | ("policy", _) => {
            generic(true, false, &[])
        }
        _ => generic(false, false, &[]),
    }
}

pub(crate) use namespace::validate_finalizers as validate_namespace_finalizers;
pub(crate) use pod::update_ephemeral as update_pod_ephemeral_containers;
pub(crate) use settings::with_defaults as limit_range_defaults;

/// Sets `key` in a JSON object if it is absent or null.
pub(crate) fn set_default(obj: &mut Value, key: &str, value: Value) {
    if let Some(m) = obj.as_object_mut()
        && m.get(key).is_none_or(Value::is_null)
    {
        m.insert(key.to_string(), value);
    }
}

/// Checks the name of a new object by the kind's rule.
pub fn validate_name(strategy: &dyn Strategy, name: &str) -> Option<Cause> {
    if name.is_empty() {
        return Some(Cause::required("metadata.name"));
    }
    if strategy.own_name_rule() {
        strategy.validate_name(name)
    } else if strategy.name_is_label() {
        meta::check_label("metadata.name", name)
    } else {
        meta::check_subdomain("metadata.name", name)
    }
}
