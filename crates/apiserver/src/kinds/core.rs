//! core/v1 (the legacy group, `/api/v1`), with the store hooks of its kinds: a Pod's graceful
//! deletion, a Namespace's finalization, a Service's IP and port allocation, a
//! ReplicationController's orphaning default, an Event's time to live.

use std::sync::Arc;

use k8s_openapi::api::core::v1 as core;
use serde_json::{Value, json};
use store::Store;

use super::KindRegistration;
use crate::error::{ApiError, ApiResult};
use crate::meta;
use crate::registry::hooks::StoreHooks;
use crate::service_alloc;
use crate::strategy::{
    Generic, claim::ClaimStrategy, namespace::NamespaceStrategy, pod::PodStrategy,
    secret::SecretStrategy, service::ServiceStrategy, settings::LimitRangeStrategy,
    volume::VolumeStrategy, workload::WorkloadStrategy,
};
use crate::table;

/// The namespaces every cluster has; none of them may be deleted.
pub(crate) const SYSTEM_NAMESPACES: [&str; 4] =
    ["default", "kube-system", "kube-public", "kube-node-lease"];

/// What a field selector on core/v1 Events may use.
const EVENT_FIELDS: &[&str] = &[
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
];

pub(super) fn kinds() -> Vec<KindRegistration> {
    vec![
        KindRegistration::of::<core::Pod>()
            .short(&["po"])
            .all()
            .subresources(&[
                "status",
                "binding",
                "log",
                "exec",
                "attach",
                "portforward",
                "ephemeralcontainers",
                "proxy",
                "eviction",
            ])
            .with_strategy(PodStrategy)
            .with_printer(table::pod::PRINTER)
            .with_hooks(PodHooks),
        KindRegistration::of::<core::ReplicationController>()
            .short(&["rc"])
            .all()
            .subresources(&["status", "scale"])
            .with_strategy(WorkloadStrategy {
                kind: "ReplicationController",
            })
            .with_printer(table::apps::REPLICA_SET)
            .with_hooks(ReplicationControllerHooks),
        KindRegistration::of::<core::Service>()
            .short(&["svc"])
            .all()
            .subresources(&["status", "proxy"])
            .with_strategy(ServiceStrategy)
            .with_printer(table::service::PRINTER)
            .with_hooks(ServiceHooks),
        KindRegistration::of::<core::Endpoints>()
            .short(&["ep"])
            .with_printer(table::core::ENDPOINTS),
        KindRegistration::of::<core::Node>()
            .short(&["no"])
            .subresources(&["status", "proxy"])
            .with_strategy(Generic::with_field_selectors(&["spec.unschedulable"]))
            .with_printer(table::node::PRINTER),
        KindRegistration::of::<core::Namespace>()
            .short(&["ns"])
            .subresources(&["status", "finalize"])
            .with_strategy(NamespaceStrategy)
            .with_printer(table::core::NAMESPACE)
            .with_hooks(NamespaceHooks),
        KindRegistration::of::<core::Secret>()
            .with_strategy(SecretStrategy)
            .with_printer(table::core::SECRET),
        KindRegistration::of::<core::ConfigMap>()
            .short(&["cm"])
            .with_printer(table::core::CONFIG_MAP),
        KindRegistration::of::<core::ServiceAccount>()
            .short(&["sa"])
            .subresources(&["token"])
            .with_printer(table::core::SERVICE_ACCOUNT),
        KindRegistration::of::<core::PersistentVolume>()
            .short(&["pv"])
            .subresources(&["status"])
            .with_strategy(VolumeStrategy)
            .with_printer(table::storage::PERSISTENT_VOLUME),
        KindRegistration::of::<core::PersistentVolumeClaim>()
            .short(&["pvc"])
            .subresources(&["status"])
            .with_strategy(ClaimStrategy)
            .with_printer(table::storage::PERSISTENT_VOLUME_CLAIM),
        KindRegistration::of::<core::LimitRange>()
            .short(&["limits"])
            .with_strategy(LimitRangeStrategy),
        KindRegistration::of::<core::ResourceQuota>()
            .short(&["quota"])
            .subresources(&["status"])
            .with_printer(table::core::RESOURCE_QUOTA),
        KindRegistration::of::<core::Event>()
            .short(&["ev"])
            .with_strategy(Generic::with_field_selectors(EVENT_FIELDS))
            .with_printer(table::core::EVENT)
            .with_hooks(EventHooks),
        KindRegistration::of::<core::PodTemplate>().with_printer(table::core::POD_TEMPLATE),
    ]
}

/// A pod bound to a node waits for its kubelet to stop it; the DELETE answers with the pod.
struct PodHooks;

impl StoreHooks for PodHooks {
    /// The request's grace period, else the pod's `terminationGracePeriodSeconds`, else 30
    /// seconds; none for a pod no kubelet runs or one that has finished.
    fn grace_period(&self, obj: &Value, requested: Option<i64>) -> i64 {
        let bound = obj
            .pointer("/spec/nodeName")
            .and_then(Value::as_str)
            .is_some_and(|n| !n.is_empty());
        let finished = matches!(
            meta::str_at(obj, "/status/phase"),
            Some("Succeeded" | "Failed")
        );
        if !bound || finished {
            return 0;
        }
        requested
            .or_else(|| {
                obj.pointer("/spec/terminationGracePeriodSeconds")
                    .and_then(Value::as_i64)
            })
            .unwrap_or(30)
            .max(0)
    }

    fn return_deleted_object(&self) -> bool {
        true
    }
}

/// A namespace is emptied and finalized by the namespace controller: `spec.finalizers`
/// holds its deletion, and it is `Terminating` meanwhile.
struct NamespaceHooks;

impl StoreHooks for NamespaceHooks {
    fn check_delete(&self, name: &str) -> ApiResult<()> {
        if SYSTEM_NAMESPACES.contains(&name) {
            return Err(ApiError::forbidden(format!(
                "namespaces \"{name}\" is forbidden: this namespace may not be deleted"
            )));
        }
        Ok(())
    }

    fn holds_deletion(&self, obj: &Value) -> bool {
        obj.pointer("/spec/finalizers")
            .and_then(Value::as_array)
            .is_some_and(|f| !f.is_empty())
    }

    fn mark_deleting(&self, obj: &mut Value) {
        obj["status"]["phase"] = json!("Terminating");
    }
}

/// A core/v1 ReplicationController deleted without a policy orphans its pods, as Kubernetes
/// keeps for compatibility.
struct ReplicationControllerHooks;

impl StoreHooks for ReplicationControllerHooks {
    fn default_gc_policy(&self) -> Option<&'static str> {
        Some("Orphan")
    }
}

/// A Service's cluster IP and node ports are claimed in the store as it is written, and
/// given back when the write fails or the Service is deleted.
struct ServiceHooks;

#[async_trait::async_trait]
impl StoreHooks for ServiceHooks {
    async fn begin_create(&self, store: &Arc<dyn Store>, obj: &mut Value) -> ApiResult<()> {
        service_alloc::allocate(store, obj).await
    }

    async fn finish_create(&self, store: &Arc<dyn Store>, obj: &Value, success: bool) {
        if !success {
            service_alloc::release_all(store, obj).await;
        }
    }

    async fn begin_update(
        &self,
        store: &Arc<dyn Store>,
        new: &mut Value,
        old: &Value,
    ) -> ApiResult<()> {
        service_alloc::reallocate(store, new, old).await
    }

    async fn finish_update(&self, store: &Arc<dyn Store>, new: &Value, old: &Value, success: bool) {
        if !success {
            service_alloc::release_added(store, new, old).await;
        }
    }

    async fn after_delete(&self, store: &Arc<dyn Store>, obj: &Value) {
        service_alloc::release_all(store, obj).await;
    }
}

/// Events expire after the server's `--event-ttl` (both core/v1 and events.k8s.io/v1).
pub(super) struct EventHooks;

impl StoreHooks for EventHooks {
    fn expires(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use crate::kinds::by_kind;
    use crate::registry::hooks::StoreHooks;

    fn hooks(group: &str, kind: &str) -> &'static dyn StoreHooks {
        by_kind(group, kind).unwrap().hooks()
    }

    #[test]
    fn a_bound_pod_waits_for_its_kubelet() {
        let pod = hooks("", "Pod");
        let running = json!({"spec": {"nodeName": "n1"}, "status": {"phase": "Running"}});
        assert_eq!(pod.grace_period(&running, None), 30);
        assert_eq!(pod.grace_period(&running, Some(5)), 5);
        assert_eq!(pod.grace_period(&running, Some(-1)), 0);
        let own = json!({"spec": {"nodeName": "n1", "terminationGracePeriodSeconds": 7}});
        assert_eq!(pod.grace_period(&own, None), 7);
        assert_eq!(pod.grace_period(&json!({"spec": {}}), Some(5)), 0);
        let done = json!({"spec": {"nodeName": "n1"}, "status": {"phase": "Succeeded"}});
        assert_eq!(pod.grace_period(&done, None), 0);
        assert!(pod.return_deleted_object());
        // Other kinds go at once and answer with a Status.
        let cm = hooks("", "ConfigMap");
        assert_eq!(cm.grace_period(&running, Some(5)), 0);
        assert!(!cm.return_deleted_object());
    }

    #[test]
    fn namespaces_wait_for_their_finalizers_and_system_ones_stay() {
        let ns = hooks("", "Namespace");
        let err = ns.check_delete("kube-system").unwrap_err();
        assert_eq!(err.code, 403);
        assert!(
            err.message.contains("may not be deleted"),
            "{}",
            err.message
        );
        assert!(ns.check_delete("team-a").is_ok());
        assert!(ns.holds_deletion(&json!({"spec": {"finalizers": ["kubernetes"]}})));
        assert!(!ns.holds_deletion(&json!({"spec": {"finalizers": []}})));
        let mut marked = json!({"status": {"phase": "Active"}});
        ns.mark_deleting(&mut marked);
        assert_eq!(marked["status"]["phase"], "Terminating");
        // A ConfigMap with such a spec is not held by it.
        assert!(!hooks("", "ConfigMap").holds_deletion(&json!({"spec": {"finalizers": ["x"]}})));
    }

    #[test]
    fn only_replication_controllers_orphan_by_default_and_only_events_expire() {
        assert_eq!(
            hooks("", "ReplicationController").default_gc_policy(),
            Some("Orphan")
        );
        assert_eq!(hooks("apps", "ReplicaSet").default_gc_policy(), None);
        assert!(hooks("", "Event").expires());
        assert!(hooks("events.k8s.io", "Event").expires());
        assert!(!hooks("", "ConfigMap").expires());
    }
}
