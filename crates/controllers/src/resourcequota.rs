//! The resource quota controller (Kubernetes' `pkg/controller/resourcequota`): keeps every
//! ResourceQuota's `status.hard` equal to its `spec.hard` and `status.used` equal to what
//! the namespace's objects use, measured with `common::quota` as admission charges it.
//!
//! A quota is recalculated when it is created or its limits change, when usage is released
//! (a pod finishes or goes, a Service changes type, a claim shrinks, any counted object is
//! deleted) and every five minutes (upstream's `--resource-quota-sync-period`), which also
//! takes back charges admission made for writes that then failed. Creations are not
//! watched: admission already charged them, and recalculating from a cache that has not
//! seen them yet would give usage back that is in fact taken.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use anyhow::Context;
use common::quota::{self, Evaluator};
use futures::StreamExt;
use k8s_openapi::api::core::v1::{
    ConfigMap, PersistentVolumeClaim, Pod, ReplicationController, ResourceQuota, Secret, Service,
};
use kube::api::{ApiResource, DynamicObject, ListParams, PostParams};
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher;
use kube::{Api, Client, Resource};
use serde::Serialize;
use serde_json::{Value, json};

use client_go::informer::{Change, HasSynced, Informer, key_of, wait_for_cache_sync};
use client_go::queue::WorkQueue;
use client_go::reconciler::{self, Action, Reconciler};

/// Full recalculation period (upstream's default `--resource-quota-sync-period`).
pub const RESYNC: Duration = Duration::from_secs(5 * 60);

/// The caches the controller measures from; kinds without one are listed from the API.
#[derive(Clone)]
pub struct Sources {
    pub quotas: Informer<ResourceQuota>,
    pub pods: Informer<Pod>,
    pub services: Informer<Service>,
    pub claims: Informer<PersistentVolumeClaim>,
    pub config_maps: Informer<ConfigMap>,
    pub secrets: Informer<Secret>,
    pub rcs: Informer<ReplicationController>,
}

pub struct ResourceQuotaController {
    client: Client,
    src: Sources,
    queue: Arc<WorkQueue>,
    resync: Duration,
    /// Kinds without a cache that some quota counts, by (group, resource): how to reach
    /// them, and the watch that recalculates on their deletions (upstream watches every
    /// quotable kind).
    others: Mutex<HashMap<(String, String), Other>>,
}

struct Other {
    resource: ApiResource,
    watch: tokio::task::AbortHandle,
}

impl Drop for ResourceQuotaController {
    fn drop(&mut self) {
        for o in self
            .others
            .get_mut()
            .unwrap_or_else(|e| e.into_inner())
            .values()
        {
            o.watch.abort();
        }
    }
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

fn json_of<K: Serialize>(obj: &K) -> Option<Value> {
    serde_json::to_value(obj).ok()
}

fn namespace_of<K: Resource>(obj: &K) -> String {
    obj.meta().namespace.clone().unwrap_or_default()
}

impl ResourceQuotaController {
    pub fn new(client: Client, src: Sources) -> Arc<Self> {
        Self::with_resync(client, src, RESYNC)
    }

    /// [`new`](Self::new) with another full recalculation period.
    pub fn with_resync(client: Client, src: Sources, resync: Duration) -> Arc<Self> {
        let c = Arc::new(ResourceQuotaController {
            client,
            src,
            queue: WorkQueue::new(),
            resync,
            others: Mutex::new(HashMap::new()),
        });
        let me = c.clone();
        c.src
            .quotas
            .on_change(move |ch: &Change<ResourceQuota>| match (&ch.old, &ch.new) {
                (_, Some(new)) if me.needs_sync(ch.old.as_deref(), new) => {
                    me.queue.add(key_of(new.as_ref()))
                }
                // A quota gone is a `resourcequotas` object released.
                (Some(old), None) => me.replenish(&namespace_of(old.as_ref())),
                _ => {}
            });
        let me = c.clone();
        c.src.pods.on_change(move |ch: &Change<Pod>| {
            let released = match (&ch.old, &ch.new) {
                (Some(_), None) => true,
                (Some(old), Some(new)) => pod_counts(old) && !pod_counts(new),
                _ => false,
            };
            if released && let Some(p) = ch.object() {
                me.replenish(&namespace_of(p.as_ref()));
            }
        });
        let me = c.clone();
        c.src.services.on_change(move |ch: &Change<Service>| {
            let released = match (&ch.old, &ch.new) {
                (Some(_), None) => true,
                (Some(old), Some(new)) => {
                    let shape = |s: &Service| {
                        s.spec.as_ref().map(|s| {
                            (
                                s.type_.clone(),
                                s.ports.as_ref().map_or(0, Vec::len),
                                s.allocate_load_balancer_node_ports,
                            )
                        })
                    };
                    shape(old) != shape(new)
                }
                _ => false,
            };
            if released && let Some(s) = ch.object() {
                me.replenish(&namespace_of(s.as_ref()));
            }
        });
        let me = c.clone();
        c.src
            .claims
            .on_change(move |ch: &Change<PersistentVolumeClaim>| {
                let released = match (&ch.old, &ch.new) {
                    (Some(_), None) => true,
                    (Some(old), Some(new)) => {
                        let size = |p: &PersistentVolumeClaim| {
                            (
                                p.spec.as_ref().and_then(|s| s.resources.clone()),
                                p.status
                                    .as_ref()
                                    .and_then(|s| s.allocated_resources.clone()),
                            )
                        };
                        size(old) != size(new)
                    }
                    _ => false,
                };
                if released && let Some(p) = ch.object() {
                    me.replenish(&namespace_of(p.as_ref()));
                }
            });
        fn on_delete<K>(me: &Arc<ResourceQuotaController>, informer: &Informer<K>)
        where
            K: Resource + Send + Sync + 'static,
        {
            let me = me.clone();
            informer.on_change(move |ch: &Change<K>| {
                if let (Some(old), None) = (&ch.old, &ch.new) {
                    me.replenish(&namespace_of(old.as_ref()));
                }
            });
        }
        on_delete(&c, &c.src.config_maps);
        on_delete(&c, &c.src.secrets);
        on_delete(&c, &c.src.rcs);
        c
    }

    /// A new quota, one whose limits or scopes changed, or one without usage yet.
    fn needs_sync(&self, old: Option<&ResourceQuota>, new: &ResourceQuota) -> bool {
        let hard = |q: &ResourceQuota| {
            quota::parse_list(json_of(&q.spec).as_ref().and_then(|s| s.get("hard")))
        };
        let status = new.status.as_ref();
        let status_hard =
            quota::parse_list(json_of(&new.status).as_ref().and_then(|s| s.get("hard")));
        old.is_none_or(|o| o.spec != new.spec)
            || status.is_none_or(|s| s.hard.is_none() || s.used.is_none())
            || status_hard != hard(new)
    }

    /// Recalculates every quota of the namespace (some usage there was released).
    fn replenish(&self, namespace: &str) {
        for q in self.src.quotas.list_namespace(namespace) {
            self.queue.add(key_of(q.as_ref()));
        }
    }

    pub async fn run(self: Arc<Self>, workers: usize) {
        let s = &self.src;
        let caches: [&dyn HasSynced; 7] = [
            &s.quotas,
            &s.pods,
            &s.services,
            &s.claims,
            &s.config_maps,
            &s.secrets,
            &s.rcs,
        ];
        let resync = async {
            wait_for_cache_sync(&caches).await;
            let mut tick = tokio::time::interval(self.resync);
            tick.tick().await;
            loop {
                tick.tick().await;
                for q in s.quotas.list() {
                    self.queue.add(key_of(q.as_ref()));
                }
            }
        };
        let workers = reconciler::run(&self, &self.queue, &caches, workers);
        futures::future::join(workers, resync).await;
    }
}

impl Reconciler for ResourceQuotaController {
    const NAME: &'static str = "resourcequota";

    async fn reconcile(self: &Arc<Self>, key: &str) -> anyhow::Result<Action> {
        let Some(rq) = self.src.quotas.get_key(key) else {
            return Ok(Action::Done);
        };
        let ns = namespace_of(rq.as_ref());
        let name = rq.metadata.name.clone().unwrap_or_default();
        let q = serde_json::to_value(rq.as_ref()).context("encoding the quota")?;
        let hard = quota::parse_list(q.pointer("/spec/hard"));

        // Kinds without a cache here are listed from the API (count/<resource>.<group>).
        let mut listed: HashMap<(String, String), Result<Vec<Value>, String>> = HashMap::new();
        for ev in Evaluator::for_quota(&hard) {
            if !Self::has_cache(&ev) && !ev.matching_resources(hard.keys()).is_empty() {
                let items = self
                    .list_from_api(&ev, &ns)
                    .await
                    .map_err(|e| format!("{e:#}"));
                listed.insert((ev.group.clone(), ev.resource.clone()), items);
            }
        }
        let (observed, errors) =
            quota::calculate_usage(&q, now(), |ev| match self.cached(ev, &ns) {
                Some(items) => Ok(items),
                None => listed
                    .get(&(ev.group.clone(), ev.resource.clone()))
                    .cloned()
                    .unwrap_or_else(|| Ok(Vec::new())),
            });

        // What could not be measured keeps its last value; only limited resources stay.
        let old_used = quota::parse_list(q.pointer("/status/used"));
        let mut used = old_used.clone();
        used.extend(observed);
        let used = quota::mask(&used, &quota::names(&hard));
        let old_hard = q.pointer("/status/hard");
        let dirty = old_hard.is_none()
            || q.pointer("/status/used").is_none()
            || quota::parse_list(old_hard) != hard
            || used != old_used
            // Canonical spelling too, so status.hard reads as Kubernetes prints it.
            || old_hard != Some(&quota::to_json(&hard));
        if dirty {
            let mut updated = q.clone();
            updated["status"] = json!({
                "hard": quota::to_json(&hard),
                "used": quota::to_json(&used),
            });
            let body: ResourceQuota =
                serde_json::from_value(updated).context("decoding the new quota status")?;
            let api: Api<ResourceQuota> = Api::namespaced(self.client.clone(), &ns);
            match api
                .replace_status(&name, &PostParams::default(), &body)
                .await
            {
                Ok(_) => {
                    tracing::debug!(namespace = %ns, quota = %name, used = %quota::pretty_print(&used), "quota usage updated")
                }
                Err(kube::Error::Api(e)) if e.code == 404 => return Ok(Action::Done),
                // Admission charged it meanwhile (or the cache is behind): measure again.
                Err(e) => return Err(e).context("updating the quota status"),
            }
        }
        if !errors.is_empty() {
            anyhow::bail!("measuring usage: {}", errors.join("; "));
        }
        Ok(Action::Done)
    }
}

impl ResourceQuotaController {
    /// Whether the evaluator's kind is one the controller caches.
    fn has_cache(ev: &Evaluator) -> bool {
        ev.group.is_empty()
            && matches!(
                ev.resource.as_str(),
                "pods"
                    | "services"
                    | "persistentvolumeclaims"
                    | "configmaps"
                    | "secrets"
                    | "replicationcontrollers"
                    | "resourcequotas"
            )
    }

    /// The namespace's objects of the evaluator's kind, when a cache holds them.
    fn cached(&self, ev: &Evaluator, ns: &str) -> Option<Vec<Value>> {
        fn all<K: Serialize + Resource>(i: &Informer<K>, ns: &str) -> Vec<Value> {
            i.list_namespace(ns)
                .iter()
                .filter_map(|o| json_of(o.as_ref()))
                .collect()
        }
        if !ev.group.is_empty() {
            return None;
        }
        let s = &self.src;
        Some(match ev.resource.as_str() {
            "pods" => all(&s.pods, ns),
            "services" => all(&s.services, ns),
            "persistentvolumeclaims" => all(&s.claims, ns),
            "configmaps" => all(&s.config_maps, ns),
            "secrets" => all(&s.secrets, ns),
            "replicationcontrollers" => all(&s.rcs, ns),
            "resourcequotas" => all(&s.quotas, ns),
            _ => return None,
        })
    }

    /// Lists a kind the controller has no cache of (found by discovery once, then watched
    /// for deletions).
    async fn list_from_api(
        self: &Arc<Self>,
        ev: &Evaluator,
        ns: &str,
    ) -> anyhow::Result<Vec<Value>> {
        let ar = self.resource_of(ev).await?;
        let api: Api<DynamicObject> = Api::namespaced_with(self.client.clone(), ns, &ar);
        let list = api
            .list(&ListParams::default())
            .await
            .with_context(|| format!("listing {}.{}", ev.resource, ev.group))?;
        Ok(list.items.iter().filter_map(json_of).collect())
    }

    async fn resource_of(self: &Arc<Self>, ev: &Evaluator) -> anyhow::Result<ApiResource> {
        let key = (ev.group.clone(), ev.resource.clone());
        if let Some(o) = self.lock_others().get(&key) {
            return Ok(o.resource.clone());
        }
        let group = kube::discovery::group(&self.client, &ev.group)
            .await
            .with_context(|| format!("discovering API group {:?}", ev.group))?;
        let (ar, _) = group
            .recommended_resources()
            .into_iter()
            .find(|(ar, _)| ar.plural == ev.resource)
            .with_context(|| format!("{}.{} is not served", ev.resource, ev.group))?;
        let mut others = self.lock_others();
        if let Some(o) = others.get(&key) {
            return Ok(o.resource.clone());
        }
        // Weak: the watch must not keep a stopped controller alive.
        let me = Arc::downgrade(self);
        let api: Api<DynamicObject> = Api::all_with(self.client.clone(), &ar);
        let watch = tokio::spawn(watch_deletions(me, api)).abort_handle();
        others.insert(
            key,
            Other {
                resource: ar.clone(),
                watch,
            },
        );
        Ok(ar)
    }

    fn lock_others(&self) -> std::sync::MutexGuard<'_, HashMap<(String, String), Other>> {
        self.others.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Recalculates a namespace's quotas when an object of a watched kind there is deleted.
async fn watch_deletions(me: Weak<ResourceQuotaController>, api: Api<DynamicObject>) {
    let mut events = watcher::watcher(api, watcher::Config::default())
        .default_backoff()
        .boxed();
    while let Some(ev) = events.next().await {
        let Some(c) = me.upgrade() else { return };
        match ev {
            Ok(watcher::Event::Delete(obj)) => {
                c.replenish(&obj.metadata.namespace.unwrap_or_default())
            }
            Ok(_) => {}
            Err(e) => tracing::debug!(error = %e, "quota watch error; retrying"),
        }
    }
}

/// Whether a pod still uses compute quota (`common::quota::pod_counts` without encoding
/// the whole pod on every update).
fn pod_counts(pod: &Pod) -> bool {
    if matches!(
        pod.status.as_ref().and_then(|s| s.phase.as_deref()),
        Some("Succeeded" | "Failed")
    ) {
        return false;
    }
    let deleted = pod
        .metadata
        .deletion_timestamp
        .as_ref()
        .and_then(json_of)
        .and_then(|t| t.as_str().and_then(quota::parse_rfc3339));
    match (deleted, pod.metadata.deletion_grace_period_seconds) {
        (Some(at), Some(grace)) => now() <= at + grace,
        _ => true,
    }
}
