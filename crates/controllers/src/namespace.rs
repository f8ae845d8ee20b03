//! The namespace controller (upstream's `pkg/controller/namespace`): a namespace with a
//! deletionTimestamp is `Terminating`; everything in it is deleted (every namespaced resource
//! that API discovery says supports delete), the namespace's status conditions say what is
//! left and why, and once it is empty the `kubernetes` entry of `spec.finalizers` is removed
//! through the `finalize` subresource, upon which the API server removes the namespace.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use k8s_openapi::api::core::v1::{Namespace, NamespaceCondition, NamespaceStatus, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{APIResourceList, Time};
use k8s_openapi::jiff::Timestamp;
use kube::api::{
    ApiResource, DeleteParams, DynamicObject, ListParams, PostParams, PropagationPolicy,
};
use kube::{Api, Client};

use client_go::informer::{Change, Informer, key_of};
use client_go::queue::WorkQueue;
use client_go::reconciler::{self, Action, Reconciler};

/// The finalizer this controller owns in `spec.finalizers`.
pub const FINALIZER: &str = "kubernetes";

/// Upstream waits this long after seeing a deleted namespace before acting, so caches that
/// admit new content (namespace lifecycle admission) have seen the deletion.
const DELETION_GRACE: Duration = Duration::from_secs(5);

/// Assumed time for finalizers on remaining content to finish (upstream's estimate).
const FINALIZER_ESTIMATE_SECONDS: i64 = 15;

/// The condition types this controller maintains, in upstream's order, with the reason and
/// message each has when all is well.
const CONDITIONS: [(&str, &str, &str); 5] = [
    (
        "NamespaceDeletionDiscoveryFailure",
        "ResourcesDiscovered",
        "All resources successfully discovered",
    ),
    (
        "NamespaceDeletionGroupVersionParsingFailure",
        "ParsedGroupVersions",
        "All legacy kube types successfully parsed",
    ),
    (
        "NamespaceDeletionContentFailure",
        "ContentDeleted",
        "All content successfully deleted, may be waiting on finalization",
    ),
    (
        "NamespaceContentRemaining",
        "ContentRemoved",
        "All content successfully removed",
    ),
    (
        "NamespaceFinalizersRemaining",
        "ContentHasNoFinalizers",
        "All content-preserving finalizers finished",
    ),
];

pub struct NamespaceController {
    client: Client,
    namespaces: Informer<Namespace>,
    queue: Arc<WorkQueue>,
}

/// A namespaced resource that discovery says can be deleted.
#[derive(Clone, Debug)]
struct Deletable {
    ar: ApiResource,
    list: bool,
    delete_collection: bool,
}

impl Deletable {
    /// As Go prints a GroupVersionResource.
    fn gvr(&self) -> String {
        format!(
            "{}/{}, Resource={}",
            self.ar.group, self.ar.version, self.ar.plural
        )
    }
}

/// What discovery found, and how it failed.
#[derive(Default)]
struct Discovered {
    resources: Vec<Deletable>,
    discovery_error: Option<String>,
    group_version_error: Option<String>,
}

/// What is left of one resource after a deletion pass.
#[derive(Default)]
struct Remaining {
    estimate: i64,
    count: usize,
    finalizers: BTreeMap<String, usize>,
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
                && ns.metadata.deletion_timestamp.is_some()
            {
                me.queue.add_after(key_of(ns.as_ref()), DELETION_GRACE);
            }
        });
        c
    }

    pub async fn run(self: Arc<Self>, workers: usize) {
        reconciler::run(&self, &self.queue, &[&self.namespaces], workers).await;
    }
}

impl Reconciler for NamespaceController {
    const NAME: &'static str = "namespace";

    async fn reconcile(self: &Arc<Self>, key: &str) -> anyhow::Result<Action> {
        let Some(ns) = self.namespaces.get_key(key) else {
            return Ok(Action::Done);
        };
        if ns.metadata.deletion_timestamp.is_none() {
            return Ok(Action::Done);
        }
        Ok(self.delete(key).await?.into())
    }
}

impl NamespaceController {
    /// One pass of upstream's NamespacedResourcesDeleter. `Ok(Some(d))`: content remains,
    /// look again after `d`.
    async fn delete(&self, name: &str) -> anyhow::Result<Option<Duration>> {
        let api: Api<Namespace> = Api::all(self.client.clone());
        // Several writers edit a terminating namespace: start from its latest state.
        let Some(ns) = api.get_opt(name).await.context("reading the namespace")? else {
            return Ok(None);
        };
        if ns.metadata.deletion_timestamp.is_none() {
            return Ok(None);
        }
        let Some(ns) = self.retry_on_conflict(ns, Self::mark_terminating).await? else {
            return Ok(None);
        };
        let Some(deleted_at) = ns.metadata.deletion_timestamp.clone() else {
            return Ok(None);
        };
        if finalizers(&ns).is_empty() {
            return Ok(None);
        }
        let estimate = self.delete_all_content(ns.clone(), deleted_at).await?;
        if estimate > 0 {
            tracing::debug!(
                namespace = name,
                estimate,
                "content remains in the terminating namespace"
            );
            return Ok(Some(Duration::from_secs((estimate / 2 + 1) as u64)));
        }
        // Another controller sharing the finalizer may have finished first: not found is fine.
        self.retry_on_conflict(ns, Self::finalize).await?;
        tracing::info!(namespace = name, "namespace finalized");
        Ok(None)
    }

    /// Runs `f` on the namespace, again on its latest state after a conflict (never on a
    /// namespace of the same name with another uid). `None`: the namespace is gone.
    async fn retry_on_conflict<'a, F, Fut>(
        &'a self,
        mut ns: Namespace,
        f: F,
    ) -> anyhow::Result<Option<Namespace>>
    where
        F: Fn(&'a Self, Namespace) -> Fut,
        Fut: std::future::Future<Output = Result<Namespace, kube::Error>> + 'a,
    {
        let api: Api<Namespace> = Api::all(self.client.clone());
        let name = ns.metadata.name.clone().unwrap_or_default();
        loop {
            match f(self, ns.clone()).await {
                Ok(n) => return Ok(Some(n)),
                Err(kube::Error::Api(e)) if e.code == 404 => return Ok(None),
                Err(kube::Error::Api(e)) if e.code == 409 => {
                    let Some(latest) = api.get_opt(&name).await.context("reading the namespace")?
                    else {
                        return Ok(None);
                    };
                    if latest.metadata.uid != ns.metadata.uid {
                        anyhow::bail!("namespace uid has changed across retries");
                    }
                    ns = latest;
                }
                Err(e) => return Err(e).context("updating the namespace"),
            }
        }
    }

    /// Sets phase Terminating if the API server has not.
    async fn mark_terminating(&self, mut ns: Namespace) -> Result<Namespace, kube::Error> {
        let status = ns.status.get_or_insert_with(Default::default);
        if status.phase.as_deref() == Some("Terminating") {
            return Ok(ns);
        }
        status.phase = Some("Terminating".into());
        let api: Api<Namespace> = Api::all(self.client.clone());
        let name = ns.metadata.name.clone().unwrap_or_default();
        api.replace_status(&name, &PostParams::default(), &ns).await
    }

    /// Removes this controller's finalizer through the `finalize` subresource (the rest kept
    /// as a sorted set, as upstream).
    async fn finalize(&self, mut ns: Namespace) -> Result<Namespace, kube::Error> {
        let kept: BTreeSet<String> = finalizers(&ns)
            .into_iter()
            .filter(|f| f != FINALIZER)
            .collect();
        ns.spec.get_or_insert_with(Default::default).finalizers = Some(kept.into_iter().collect());
        let api: Api<Namespace> = Api::all(self.client.clone());
        let name = ns.metadata.name.clone().unwrap_or_default();
        api.replace_subresource("finalize", &name, &PostParams::default(), &ns)
            .await
    }

    /// Deletes everything in the namespace and records what is left in its conditions.
    /// Returns the seconds the rest should take to go; an error if some deletion failed.
    async fn delete_all_content(&self, mut ns: Namespace, deleted_at: Time) -> anyhow::Result<i64> {
        let name = ns.metadata.name.clone().unwrap_or_default();
        let discovered = discover(&self.client).await;
        let mut errors: Vec<String> = Vec::new();
        let mut conditions: Vec<NamespaceCondition> = Vec::new();
        if let Some(e) = &discovered.discovery_error {
            errors.push(e.clone());
            conditions.push(failure(
                "NamespaceDeletionDiscoveryFailure",
                "DiscoveryFailed",
                e.clone(),
            ));
        }
        if let Some(e) = &discovered.group_version_error {
            errors.push(e.clone());
            conditions.push(failure(
                "NamespaceDeletionGroupVersionParsingFailure",
                "GroupVersionParsingFailed",
                e.clone(),
            ));
        }
        let mut estimate = 0;
        let mut content_errors: Vec<String> = Vec::new();
        // Keyed "resource.group", as upstream prints them.
        let mut remaining: BTreeMap<String, usize> = BTreeMap::new();
        let mut finalizers: BTreeMap<String, usize> = BTreeMap::new();
        for r in &discovered.resources {
            let (left, err) = self.delete_resource(r, &name, &deleted_at).await;
            if let Some(e) = err {
                content_errors.push(e);
            }
            estimate = estimate.max(left.estimate);
            if left.count > 0 {
                remaining.insert(format!("{}.{}", r.ar.plural, r.ar.group), left.count);
                for (f, n) in left.finalizers {
                    *finalizers.entry(f).or_default() += n;
                }
            }
        }
        errors.extend(content_errors.iter().cloned());
        if !remaining.is_empty() {
            let list: Vec<String> = remaining
                .iter()
                .map(|(r, n)| format!("{r} has {n} resource instances"))
                .collect();
            conditions.push(failure(
                "NamespaceContentRemaining",
                "SomeResourcesRemain",
                format!("Some resources are remaining: {}", list.join(", ")),
            ));
        }
        if !finalizers.is_empty() {
            let list: Vec<String> = finalizers
                .iter()
                .map(|(f, n)| format!("{f} in {n} resource instances"))
                .collect();
            conditions.push(failure(
                "NamespaceFinalizersRemaining",
                "SomeFinalizersRemain",
                format!(
                    "Some content in the namespace has finalizers remaining: {}",
                    list.join(", ")
                ),
            ));
        }
        if !content_errors.is_empty() {
            content_errors.sort();
            conditions.push(failure(
                "NamespaceDeletionContentFailure",
                "ContentDeletionFailed",
                format!(
                    "Failed to delete all resource types, {} remaining: {}",
                    content_errors.len(),
                    content_errors.join(", ")
                ),
            ));
        }
        // Always written when changed: a condition that turned good must say so.
        if update_conditions(ns.status.get_or_insert_with(Default::default), &conditions) {
            let api: Api<Namespace> = Api::all(self.client.clone());
            if let Err(e) = api.replace_status(&name, &PostParams::default(), &ns).await {
                tracing::info!(namespace = %name, error = %e, "couldn't update the namespace's status conditions");
            }
        }
        match errors.len() {
            0 => Ok(estimate),
            1 => Err(anyhow::anyhow!("{}", errors[0])),
            _ => Err(anyhow::anyhow!("[{}]", errors.join(", "))),
        }
    }

    /// Deletes every object of one resource in the namespace; reports what is left.
    async fn delete_resource(
        &self,
        r: &Deletable,
        ns: &str,
        deleted_at: &Time,
    ) -> (Remaining, Option<String>) {
        let mut estimate = 0;
        if r.ar.group.is_empty() && r.ar.plural == "pods" {
            match self.pods_grace_estimate(ns).await {
                Ok(e) => estimate = e,
                Err(e) => return (Remaining::default(), Some(api_message(&e))),
            }
            // Pods deleted long enough ago should be gone by now.
            let since = Timestamp::now().duration_since(deleted_at.0);
            if since.as_secs() >= estimate {
                estimate = 0;
            }
        }
        let with_estimate = |estimate| Remaining {
            estimate,
            ..Default::default()
        };
        let api: Api<DynamicObject> = Api::namespaced_with(self.client.clone(), ns, &r.ar);
        // The namespace goes as a whole: dependents are not orphaned.
        let dp = DeleteParams {
            propagation_policy: Some(PropagationPolicy::Background),
            ..Default::default()
        };
        let mut collection_deleted = false;
        if r.delete_collection {
            match api.delete_collection(&dp, &ListParams::default()).await {
                Ok(_) => collection_deleted = true,
                Err(kube::Error::Api(e)) if e.code == 404 || e.code == 405 => {}
                Err(e) => return (with_estimate(estimate), Some(api_message(&e))),
            }
        }
        if !collection_deleted && r.list {
            match list_supported(api.list_metadata(&ListParams::default()).await) {
                Ok(Some(items)) => {
                    for item in items {
                        let item_name = item.metadata.name.unwrap_or_default();
                        match api.delete(&item_name, &dp).await {
                            Ok(_) => {}
                            Err(kube::Error::Api(e)) if e.code == 404 || e.code == 405 => {}
                            Err(e) => return (with_estimate(estimate), Some(api_message(&e))),
                        }
                    }
                }
                Ok(None) => {}
                Err(e) => return (with_estimate(estimate), Some(api_message(&e))),
            }
        }
        if !r.list {
            return (with_estimate(estimate), None);
        }
        let items = match list_supported(api.list_metadata(&ListParams::default()).await) {
            Ok(Some(items)) => items,
            Ok(None) => return (with_estimate(estimate), None),
            Err(e) => return (with_estimate(estimate), Some(api_message(&e))),
        };
        if items.is_empty() {
            return (Remaining::default(), None);
        }
        let mut finalizers: BTreeMap<String, usize> = BTreeMap::new();
        for item in &items {
            for f in item.metadata.finalizers.iter().flatten() {
                *finalizers.entry(f.clone()).or_default() += 1;
            }
        }
        let count = items.len();
        if estimate != 0 {
            return (
                Remaining {
                    estimate,
                    count,
                    finalizers,
                },
                None,
            );
        }
        // Finalizers on what is left are normal: give them time.
        if !finalizers.is_empty() {
            return (
                Remaining {
                    estimate: FINALIZER_ESTIMATE_SECONDS,
                    count,
                    finalizers,
                },
                None,
            );
        }
        (
            Remaining {
                estimate,
                count,
                finalizers,
            },
            Some(format!(
                "unexpected items still remain in namespace: {ns} for gvr: {}",
                r.gvr()
            )),
        )
    }

    /// The longest termination grace period of the namespace's pods still running.
    async fn pods_grace_estimate(&self, ns: &str) -> Result<i64, kube::Error> {
        let pods: Api<Pod> = Api::namespaced(self.client.clone(), ns);
        let mut estimate = 0;
        for pod in pods.list(&ListParams::default()).await? {
            let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
            if matches!(phase, Some("Succeeded" | "Failed")) {
                continue;
            }
            if let Some(grace) = pod
                .spec
                .as_ref()
                .and_then(|s| s.termination_grace_period_seconds)
            {
                estimate = estimate.max(grace);
            }
        }
        Ok(estimate)
    }
}

/// A list's items, `None` when the server does not list this resource.
fn list_supported<T: Clone>(
    r: Result<kube::core::ObjectList<T>, kube::Error>,
) -> Result<Option<Vec<T>>, kube::Error> {
    match r {
        Ok(list) => Ok(Some(list.items)),
        Err(kube::Error::Api(e)) if e.code == 404 || e.code == 405 => Ok(None),
        Err(e) => Err(e),
    }
}

/// An error as the API server worded it.
fn api_message(e: &kube::Error) -> String {
    match e {
        kube::Error::Api(s) if !s.message.is_empty() => s.message.clone(),
        e => e.to_string(),
    }
}

fn finalizers(ns: &Namespace) -> Vec<String> {
    ns.spec
        .as_ref()
        .and_then(|s| s.finalizers.clone())
        .unwrap_or_default()
}

fn failure(type_: &str, reason: &str, message: String) -> NamespaceCondition {
    NamespaceCondition {
        type_: type_.into(),
        status: "True".into(),
        reason: Some(reason.into()),
        message: Some(message),
        last_transition_time: Some(Time(Timestamp::now())),
    }
}

/// Sets every condition this controller maintains: the failures given, the rest to their
/// good (False) variant. Returns whether anything changed.
fn update_conditions(status: &mut NamespaceStatus, failures: &[NamespaceCondition]) -> bool {
    let mut changed = false;
    let conditions = status.conditions.get_or_insert_with(Vec::new);
    for (type_, reason, message) in CONDITIONS {
        let want = failures
            .iter()
            .find(|c| c.type_ == type_)
            .cloned()
            .unwrap_or_else(|| NamespaceCondition {
                type_: type_.into(),
                status: "False".into(),
                reason: Some(reason.into()),
                message: Some(message.into()),
                last_transition_time: Some(Time(Timestamp::now())),
            });
        match conditions.iter_mut().find(|c| c.type_ == type_) {
            None => {
                conditions.push(want);
                changed = true;
            }
            Some(old)
                if old.status != want.status
                    || old.reason != want.reason
                    || old.message != want.message =>
            {
                if old.status != want.status {
                    old.last_transition_time = Some(Time(Timestamp::now()));
                }
                old.status = want.status;
                old.reason = want.reason;
                old.message = want.message;
                changed = true;
            }
            Some(_) => {}
        }
    }
    changed
}

/// Upstream's ServerPreferredNamespacedResources: every namespaced resource (no
/// subresources) once per group, in the group's preferred version where it has it; then only
/// those that support delete. A group that fails is named in the error; the rest are used.
async fn discover(client: &Client) -> Discovered {
    let mut out = Discovered::default();
    // (group, preferred version, every version)
    let mut groups: Vec<(String, String, Vec<String>)> = Vec::new();
    match client.list_core_api_versions().await {
        Ok(v) => {
            let preferred = v.versions.first().cloned().unwrap_or_default();
            groups.push((String::new(), preferred, v.versions));
        }
        Err(e) => {
            out.discovery_error = Some(api_message(&e));
            return out;
        }
    }
    match client.list_api_groups().await {
        Ok(list) => {
            for g in list.groups {
                let preferred = g
                    .preferred_version
                    .as_ref()
                    .map(|p| p.version.clone())
                    .unwrap_or_default();
                let versions = g.versions.iter().map(|v| v.version.clone()).collect();
                groups.push((g.name, preferred, versions));
            }
        }
        Err(e) => {
            out.discovery_error = Some(api_message(&e));
            return out;
        }
    }
    let mut failed: BTreeMap<String, String> = BTreeMap::new();
    let mut gv_errors: Vec<String> = Vec::new();
    for (group, preferred, versions) in groups {
        // resource name -> what its chosen version offers (the preferred version wins;
        // the delete filter applies to the chosen one, as upstream).
        let mut chosen: HashMap<String, Option<Deletable>> = HashMap::new();
        let mut order: Vec<String> = Vec::new();
        for version in versions {
            let gv = if group.is_empty() {
                version.clone()
            } else {
                format!("{group}/{version}")
            };
            let list: Result<APIResourceList, kube::Error> = if group.is_empty() {
                client.list_core_api_resources(&version).await
            } else {
                client.list_api_group_resources(&gv).await
            };
            let list = match list {
                Ok(l) => l,
                Err(e) => {
                    failed.insert(gv, api_message(&e));
                    continue;
                }
            };
            let (g, v) = match parse_group_version(&list.group_version) {
                Ok(gv) => gv,
                Err(e) => {
                    gv_errors.push(e);
                    continue;
                }
            };
            for r in list.resources {
                if r.name.contains('/') || !r.namespaced {
                    continue;
                }
                if chosen.contains_key(&r.name) && version != preferred {
                    continue;
                }
                let verbs: BTreeSet<&str> = r.verbs.iter().map(String::as_str).collect();
                let d = verbs.contains("delete").then(|| Deletable {
                    ar: ApiResource {
                        group: g.clone(),
                        version: v.clone(),
                        api_version: list.group_version.clone(),
                        kind: r.kind.clone(),
                        plural: r.name.clone(),
                    },
                    list: verbs.contains("list"),
                    delete_collection: verbs.contains("deletecollection"),
                });
                if !order.contains(&r.name) {
                    order.push(r.name.clone());
                }
                chosen.insert(r.name.clone(), d);
            }
        }
        for name in order {
            if let Some(Some(d)) = chosen.remove(&name) {
                out.resources.push(d);
            }
        }
    }
    if !failed.is_empty() {
        let groups: Vec<String> = failed.iter().map(|(gv, e)| format!("{gv}: {e}")).collect();
        out.discovery_error = Some(format!(
            "Discovery failed for some groups, {} failing: unable to retrieve the complete list of server APIs: {}",
            failed.len(),
            groups.join(", ")
        ));
    }
    if !gv_errors.is_empty() {
        out.group_version_error = Some(gv_errors.join(", "));
    }
    out
}

/// Splits "group/version" (or a core "version"), as Go's schema.ParseGroupVersion.
fn parse_group_version(gv: &str) -> Result<(String, String), String> {
    if gv.is_empty() || gv == "/" {
        return Ok((String::new(), String::new()));
    }
    match gv.split('/').collect::<Vec<_>>().as_slice() {
        [v] => Ok((String::new(), v.to_string())),
        [g, v] => Ok((g.to_string(), v.to_string())),
        _ => Err(format!("unexpected GroupVersion string: {gv}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conditions_turn_good_and_keep_transition_times() {
        let mut status = NamespaceStatus::default();
        let remaining = failure(
            "NamespaceContentRemaining",
            "SomeResourcesRemain",
            "Some resources are remaining: pods. has 2 resource instances".into(),
        );
        assert!(update_conditions(
            &mut status,
            std::slice::from_ref(&remaining)
        ));
        let conds = status.conditions.clone().unwrap_or_default();
        assert_eq!(conds.len(), 5);
        let c = conds
            .iter()
            .find(|c| c.type_ == "NamespaceContentRemaining")
            .unwrap();
        assert_eq!(c.status, "True");
        let d = conds
            .iter()
            .find(|c| c.type_ == "NamespaceDeletionDiscoveryFailure")
            .unwrap();
        assert_eq!(
            (d.status.as_str(), d.reason.as_deref()),
            ("False", Some("ResourcesDiscovered"))
        );
        // The same failures again change nothing.
        assert!(!update_conditions(&mut status, &[remaining]));
        assert!(update_conditions(&mut status, &[]));
        let c = status
            .conditions
            .iter()
            .flatten()
            .find(|c| c.type_ == "NamespaceContentRemaining")
            .unwrap();
        assert_eq!(
            (c.status.as_str(), c.message.as_deref()),
            ("False", Some("All content successfully removed"))
        );
    }

    #[test]
    fn group_versions_parse_as_go_does() {
        assert_eq!(
            parse_group_version("v1"),
            Ok((String::new(), "v1".to_string()))
        );
        assert_eq!(
            parse_group_version("apps/v1"),
            Ok(("apps".to_string(), "v1".to_string()))
        );
        assert!(parse_group_version("a/b/c").is_err());
    }
}
