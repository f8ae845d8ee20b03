//! The namespace controller (Kubernetes' `pkg/controller/namespace`): a deleted namespace is
//! `Terminating` until everything in it is gone; then this controller removes its
//! `kubernetes` finalizer through the `finalize` subresource and the API server deletes it.
//!
//! Each pass discovers the namespaced resources that can be listed and deleted, deletes what
//! is left in the namespace (Background propagation, as upstream), and reports progress in the
//! namespace's status conditions with upstream's types, reasons and messages, so
//! `kubectl describe ns` shows why a namespace is stuck (say, a finalizer nobody removes).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use k8s_openapi::api::core::v1::{Namespace, NamespaceCondition};
use kube::Client;
use kube::api::{
    Api, DeleteParams, DynamicObject, ListParams, Patch, PatchParams, PostParams, PropagationPolicy,
};
use kube::discovery::{ApiResource, Discovery, Scope};

use crate::informer::{Change, Informer};
use crate::queue::{WorkQueue, run_workers};

/// The finalizer this controller owns on `spec.finalizers`.
pub const FINALIZER: &str = "kubernetes";

/// How soon a namespace whose content is still going is looked at again.
const RECHECK: Duration = Duration::from_secs(1);

pub struct NamespaceController {
    client: Client,
    namespaces: Informer<Namespace>,
    queue: Arc<WorkQueue>,
}

/// Whether the namespace waits on this controller.
fn needs_finalizing(ns: &Namespace) -> bool {
    ns.metadata.deletion_timestamp.is_some()
        && ns
            .spec
            .as_ref()
            .and_then(|s| s.finalizers.as_ref())
            .is_some_and(|f| f.iter().any(|x| x == FINALIZER))
}

/// What one deletion pass found.
#[derive(Default, Debug)]
struct Pass {
    /// Groups whose discovery failed (upstream's NamespaceDeletionDiscoveryFailure).
    discovery_errors: Vec<String>,
    /// Errors deleting content (NamespaceDeletionContentFailure).
    delete_errors: Vec<String>,
    /// Instances left per resource (NamespaceContentRemaining).
    remaining: BTreeMap<String, usize>,
    /// Instances left per finalizer (NamespaceFinalizersRemaining).
    finalizers: BTreeMap<String, usize>,
}

impl Pass {
    fn done(&self) -> bool {
        self.discovery_errors.is_empty()
            && self.delete_errors.is_empty()
            && self.remaining.is_empty()
    }

    /// Upstream's five deletion conditions, in its order.
    fn conditions(
        &self,
        now: &k8s_openapi::apimachinery::pkg::apis::meta::v1::Time,
    ) -> Vec<NamespaceCondition> {
        let cond = |type_: &str, failed: bool, ok: (&str, String), bad: (&str, String)| {
            let (reason, message) = if failed { bad } else { ok };
            NamespaceCondition {
                type_: type_.into(),
                status: if failed { "True" } else { "False" }.into(),
                reason: Some(reason.into()),
                message: Some(message),
                last_transition_time: Some(now.clone()),
            }
        };
        let list = |m: &BTreeMap<String, usize>, what: &str| {
            m.iter()
                .map(|(k, n)| format!("{k} {what} {n} resource instances"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        vec![
            cond(
                "NamespaceDeletionDiscoveryFailure",
                !self.discovery_errors.is_empty(),
                (
                    "ResourcesDiscovered",
                    "All resources successfully discovered".into(),
                ),
                (
                    "DiscoveryFailed",
                    format!(
                        "Discovery failed for some groups, {} failing: {}",
                        self.discovery_errors.len(),
                        self.discovery_errors.join(", ")
                    ),
                ),
            ),
            cond(
                "NamespaceDeletionGroupVersionParsingFailure",
                false,
                (
                    "ParsedGroupVersions",
                    "All legacy kube types successfully parsed".into(),
                ),
                ("GroupVersionParsingFailed", String::new()),
            ),
            cond(
                "NamespaceDeletionContentFailure",
                !self.delete_errors.is_empty(),
                (
                    "ContentDeleted",
                    "All content successfully deleted, may be waiting on finalization".into(),
                ),
                (
                    "ContentDeletionFailed",
                    format!(
                        "Failed to delete all resource types, {} remaining: {}",
                        self.delete_errors.len(),
                        self.delete_errors.join(", ")
                    ),
                ),
            ),
            cond(
                "NamespaceContentRemaining",
                !self.remaining.is_empty(),
                ("ContentRemoved", "All content successfully removed".into()),
                (
                    "SomeResourcesRemain",
                    format!(
                        "Some resources are remaining: {}",
                        list(&self.remaining, "has")
                    ),
                ),
            ),
            cond(
                "NamespaceFinalizersRemaining",
                !self.finalizers.is_empty(),
                (
                    "ContentHasNoFinalizers",
                    "All content-preserving finalizers finished".into(),
                ),
                (
                    "SomeFinalizersRemain",
                    format!(
                        "Some content in the namespace has finalizers remaining: {}",
                        list(&self.finalizers, "in")
                    ),
                ),
            ),
        ]
    }
}

impl NamespaceController {
    pub fn new(client: Client, namespaces: Informer<Namespace>) -> Arc<Self> {
        let c = Arc::new(NamespaceController {
            client,
            namespaces,
            queue: WorkQueue::new(),
        });
        let me = c.clone();
        c.namespaces.on_change(move |ch: &Change<Namespace>| {
            if let Some(ns) = &ch.new
                && needs_finalizing(ns)
            {
                me.queue.add(ns.metadata.name.clone().unwrap_or_default());
            }
        });
        c
    }

    pub async fn run(self: Arc<Self>, workers: usize) {
        self.namespaces.wait_synced().await;
        let me = self.clone();
        run_workers("namespace", self.queue.clone(), workers, move |name| {
            let me = me.clone();
            async move { me.sync(&name).await }
        })
        .await;
    }

    async fn sync(&self, name: &str) -> anyhow::Result<Option<Duration>> {
        let api: Api<Namespace> = Api::all(self.client.clone());
        // Decide on a fresh read: the cache may still show a namespace already finalized.
        let ns = match api.get(name).await {
            Ok(ns) => ns,
            Err(kube::Error::Api(e)) if e.code == 404 => return Ok(None),
            Err(e) => return Err(e).context("reading the namespace"),
        };
        if !needs_finalizing(&ns) {
            return Ok(None);
        }
        let pass = self.delete_content(name).await;
        self.report(&api, &ns, &pass).await?;
        if !pass.done() {
            return Ok(Some(RECHECK));
        }
        let mut finalized = ns.clone();
        if let Some(spec) = finalized.spec.as_mut() {
            spec.finalizers = Some(
                spec.finalizers
                    .take()
                    .unwrap_or_default()
                    .into_iter()
                    .filter(|f| f != FINALIZER)
                    .collect(),
            );
        }
        match api
            .replace_subresource("finalize", name, &PostParams::default(), &finalized)
            .await
        {
            Ok(_) => {
                tracing::info!(namespace = name, "namespace content removed; finalized");
                Ok(None)
            }
            Err(kube::Error::Api(e)) if e.code == 404 => Ok(None),
            Err(kube::Error::Api(e)) if e.code == 409 => Ok(Some(Duration::ZERO)),
            Err(e) => Err(e).context("finalizing the namespace"),
        }
    }

    /// Deletes what is left in the namespace and counts what remains.
    async fn delete_content(&self, namespace: &str) -> Pass {
        let mut pass = Pass::default();
        let discovery = match Discovery::new(self.client.clone()).run().await {
            Ok(d) => d,
            Err(e) => {
                pass.discovery_errors.push(e.to_string());
                return pass;
            }
        };
        for group in discovery.groups() {
            for (ar, caps) in group.recommended_resources() {
                if !matches!(caps.scope, Scope::Namespaced)
                    || !["list", "delete"]
                        .iter()
                        .all(|op| caps.supports_operation(op))
                {
                    continue;
                }
                if let Err(e) = self.delete_resource(&ar, namespace, &mut pass).await {
                    pass.delete_errors
                        .push(format!("{}: {e}", resource_name(&ar)));
                }
            }
        }
        pass
    }

    async fn delete_resource(
        &self,
        ar: &ApiResource,
        namespace: &str,
        pass: &mut Pass,
    ) -> Result<(), kube::Error> {
        let api: Api<DynamicObject> = Api::namespaced_with(self.client.clone(), namespace, ar);
        let items = api.list(&ListParams::default()).await?.items;
        if items.is_empty() {
            return Ok(());
        }
        let dp = DeleteParams {
            propagation_policy: Some(PropagationPolicy::Background),
            ..Default::default()
        };
        let mut left = 0;
        for item in &items {
            for f in item.metadata.finalizers.iter().flatten() {
                *pass.finalizers.entry(f.clone()).or_default() += 1;
            }
            let name = item.metadata.name.as_deref().unwrap_or_default();
            if item.metadata.deletion_timestamp.is_some() {
                left += 1;
                continue;
            }
            match api.delete(name, &dp).await {
                // Gone at once.
                Ok(either) if either.is_right() => {}
                // Deletion started (graceful, or finalizers): still there for now.
                Ok(_) => left += 1,
                Err(kube::Error::Api(e)) if e.code == 404 => {}
                Err(e) => return Err(e),
            }
        }
        if left > 0 {
            pass.remaining.insert(resource_name(ar), left);
        }
        Ok(())
    }

    /// Writes the deletion conditions when they changed (transition times kept while a
    /// condition's status stays the same, as upstream).
    async fn report(
        &self,
        api: &Api<Namespace>,
        ns: &Namespace,
        pass: &Pass,
    ) -> anyhow::Result<()> {
        let now = crate::pods::now();
        let old = ns
            .status
            .as_ref()
            .and_then(|s| s.conditions.clone())
            .unwrap_or_default();
        let mut conditions = pass.conditions(&now);
        for c in &mut conditions {
            if let Some(o) = old.iter().find(|o| o.type_ == c.type_)
                && o.status == c.status
            {
                c.last_transition_time = o.last_transition_time.clone();
            }
        }
        let same = conditions.iter().all(|c| {
            old.iter().any(|o| {
                o.type_ == c.type_
                    && o.status == c.status
                    && o.reason == c.reason
                    && o.message == c.message
            })
        });
        if same {
            return Ok(());
        }
        let patch =
            serde_json::json!({"status": {"phase": "Terminating", "conditions": conditions}});
        match api
            .patch_status(
                ns.metadata.name.as_deref().unwrap_or_default(),
                &PatchParams::default(),
                &Patch::Merge(&patch),
            )
            .await
        {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(e)) if e.code == 404 => Ok(()),
            Err(e) => Err(e).context("writing the namespace's conditions"),
        }
    }
}

/// `plural.group` as upstream names resources in its messages (`pods.` for the core group).
fn resource_name(ar: &ApiResource) -> String {
    format!("{}.{}", ar.plural, ar.group)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_upstreams() {
        let mut pass = Pass::default();
        pass.remaining.insert("pods.".into(), 2);
        pass.finalizers.insert("example.com/hold".into(), 1);
        let now = crate::pods::now();
        let c = pass.conditions(&now);
        let get = |t: &str| c.iter().find(|c| c.type_ == t).cloned().unwrap_or_default();
        assert_eq!(
            get("NamespaceContentRemaining").message.as_deref(),
            Some("Some resources are remaining: pods. has 2 resource instances")
        );
        assert_eq!(get("NamespaceContentRemaining").status, "True");
        assert_eq!(
            get("NamespaceFinalizersRemaining").message.as_deref(),
            Some(
                "Some content in the namespace has finalizers remaining: example.com/hold in 1 resource instances"
            )
        );
        assert_eq!(get("NamespaceDeletionContentFailure").status, "False");
        assert!(!pass.done());
        assert!(Pass::default().done());
    }
}
