//! A shared informer (client-go's SharedIndexInformer): one list+watch per kind, an
//! in-memory copy of every object, and a feed of changes carrying both the old and the new
//! object, which every controller interested in the kind subscribes to.
//!
//! Each subscriber has its own unbounded queue, as client-go's processorListener has its
//! growing buffer: memory follows what a subscriber has yet to handle, not a fixed ring per
//! informer (a 16,384-slot ring cost ~650 KiB per informer even when idle, and the garbage
//! collector runs one informer per resource), and a slow subscriber never misses a change.

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::sync::{Arc, Mutex, RwLock};

use futures::StreamExt;
use futures::future::BoxFuture;
use futures::stream::BoxStream;
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};
use kube::{Api, Resource, ResourceExt};
use serde::de::DeserializeOwned;
use tokio::sync::{mpsc, watch};

/// One change: `old` is `None` for an addition, `new` is `None` for a deletion.
pub struct Change<K> {
    pub old: Option<Arc<K>>,
    pub new: Option<Arc<K>>,
}

impl<K> Clone for Change<K> {
    fn clone(&self) -> Self {
        Change {
            old: self.old.clone(),
            new: self.new.clone(),
        }
    }
}

impl<K> Change<K> {
    /// The object as it now is, or as it was when deleted.
    pub fn object(&self) -> Option<&Arc<K>> {
        self.new.as_ref().or(self.old.as_ref())
    }
}

struct Shared<K> {
    /// Keyed `namespace/name` (or `name`), so one namespace is a range.
    objects: RwLock<BTreeMap<String, Arc<K>>>,
    /// Every subscriber's queue; fed under the cache's write lock, so each sees the
    /// changes in cache order.
    subscribers: Mutex<Vec<mpsc::UnboundedSender<Change<K>>>>,
    synced: watch::Sender<bool>,
    /// The watch and subscriber tasks, stopped by [`Informer::stop`]. (They hold the
    /// informer themselves, so dropping the handles would not end them.)
    tasks: Mutex<Vec<tokio::task::AbortHandle>>,
}

/// The informer of one kind; cheap to clone.
pub struct Informer<K> {
    shared: Arc<Shared<K>>,
}

impl<K> Clone for Informer<K> {
    fn clone(&self) -> Self {
        Informer {
            shared: self.shared.clone(),
        }
    }
}

/// The cache key of an object: `namespace/name`, or `name` when cluster-scoped.
pub fn key_of<K: Resource>(obj: &K) -> String {
    let name = obj.meta().name.clone().unwrap_or_default();
    match obj.meta().namespace.as_deref() {
        Some(ns) if !ns.is_empty() => format!("{ns}/{name}"),
        _ => name,
    }
}

impl<K> Informer<K>
where
    K: Resource + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
    K::DynamicType: Default,
{
    /// Starts listing and watching `api` in the background.
    pub fn start(api: Api<K>) -> Self {
        Self::start_with(api, watcher::Config::default())
    }

    /// [`Informer::start`] for the objects `config` selects (label and field selectors: a
    /// kubelet watches `spec.nodeName=<node>`).
    pub fn start_with(api: Api<K>, config: watcher::Config) -> Self {
        let events = watcher::watcher(api, config).default_backoff().boxed();
        Self::follow(events, K::kind(&Default::default()).into_owned(), None)
    }

    /// [`Informer::start_with`] keeping each object as `transform` trims it (client-go's
    /// `SetTransform`): a cache that needs a few fields of many objects (metrics-server's
    /// pods) keeps only those.
    pub fn start_transformed(
        api: Api<K>,
        config: watcher::Config,
        transform: impl Fn(K) -> K + Send + Sync + 'static,
    ) -> Self {
        let events = watcher::watcher(api, config).default_backoff().boxed();
        let kind = K::kind(&Default::default()).into_owned();
        Self::follow(events, kind, Some(Box::new(transform)))
    }
}

impl<K> Informer<K>
where
    K: Resource + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
{
    /// [`Informer::start_with`] for a kind known only at run time: an `Api` made from
    /// discovery's `ApiResource` (`Api<PartialObjectMeta<_>>` asks for metadata only, as the
    /// garbage collector's informers do). `kind` names it in logs.
    pub fn start_dynamic(api: Api<K>, config: watcher::Config, kind: &str) -> Self {
        let events = watcher::watcher(api, config).default_backoff().boxed();
        Self::follow(events, kind.to_string(), None)
    }

    /// Keeps the cache and feed in step with a watcher's events, in the background.
    fn follow(
        mut events: BoxStream<'static, watcher::Result<Event<K>>>,
        kind: String,
        transform: Option<Transform<K>>,
    ) -> Self {
        let shared = Arc::new(Shared {
            objects: RwLock::new(BTreeMap::new()),
            subscribers: Mutex::new(Vec::new()),
            synced: watch::channel(false).0,
            tasks: Mutex::new(Vec::new()),
        });
        let s = shared.clone();
        let task = tokio::spawn(async move {
            let mut fresh: Option<BTreeMap<String, Arc<K>>> = None;
            while let Some(ev) = events.next().await {
                match ev {
                    Ok(Event::Init) => fresh = Some(BTreeMap::new()),
                    Ok(Event::InitApply(obj)) => {
                        if let Some(f) = fresh.as_mut() {
                            let obj = trim(&transform, obj);
                            f.insert(key_of(&obj), Arc::new(obj));
                        }
                    }
                    Ok(Event::InitDone) => {
                        if let Some(f) = fresh.take() {
                            s.replace_all(f);
                        }
                        s.synced.send_replace(true);
                    }
                    Ok(Event::Apply(obj)) => s.apply(Arc::new(trim(&transform, obj))),
                    Ok(Event::Delete(obj)) => s.delete(&key_of(&obj)),
                    Err(e) => {
                        tracing::debug!(kind, error = %e, "informer watch error; retrying")
                    }
                }
            }
        });
        shared.track(task.abort_handle());
        Informer { shared }
    }
}

/// What [`Informer::start_transformed`] keeps of each object.
type Transform<K> = Box<dyn Fn(K) -> K + Send + Sync>;

fn trim<K>(transform: &Option<Transform<K>>, obj: K) -> K {
    match transform {
        Some(t) => t(obj),
        None => obj,
    }
}

impl<K> Shared<K> {
    fn track(&self, task: tokio::task::AbortHandle) {
        let mut tasks = self.tasks.lock().unwrap_or_else(|e| e.into_inner());
        tasks.retain(|t| !t.is_finished());
        tasks.push(task);
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, BTreeMap<String, Arc<K>>> {
        self.objects.write().unwrap_or_else(|e| e.into_inner())
    }

    fn subscribers(&self) -> std::sync::MutexGuard<'_, Vec<mpsc::UnboundedSender<Change<K>>>> {
        self.subscribers.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queues `change` for every subscriber (called under the cache's write lock); a
    /// stopped subscriber is forgotten.
    fn send(&self, change: Change<K>) {
        self.subscribers()
            .retain(|tx| tx.send(change.clone()).is_ok());
    }

    fn apply(&self, obj: Arc<K>)
    where
        K: Resource,
    {
        let mut objects = self.write();
        let old = objects.insert(key_of(obj.as_ref()), obj.clone());
        // Sent under the lock so subscribers see changes in cache order.
        self.send(Change {
            old,
            new: Some(obj),
        });
    }

    fn delete(&self, key: &str) {
        let mut objects = self.write();
        if let Some(old) = objects.remove(key) {
            self.send(Change {
                old: Some(old),
                new: None,
            });
        }
    }

    /// A relist: what changed while the watch was down becomes ordinary changes.
    fn replace_all(&self, fresh: BTreeMap<String, Arc<K>>)
    where
        K: Resource,
    {
        let mut objects = self.write();
        let old = std::mem::replace(&mut *objects, fresh);
        for (k, o) in &old {
            if !objects.contains_key(k) {
                self.send(Change {
                    old: Some(o.clone()),
                    new: None,
                });
            }
        }
        for (k, n) in objects.iter() {
            let prev = old.get(k).cloned();
            let same = prev.as_ref().is_some_and(|p| {
                p.meta().resource_version.is_some()
                    && p.meta().resource_version == n.meta().resource_version
            });
            if !same {
                self.send(Change {
                    old: prev,
                    new: Some(n.clone()),
                });
            }
        }
    }
}

/// A cache that can be waited on until its first list is in (client-go's
/// `cache.InformerSynced`), whatever its kind: what [`wait_for_cache_sync`] and
/// [`crate::reconciler::run`] take.
pub trait HasSynced: Send + Sync {
    fn wait_synced(&self) -> BoxFuture<'_, ()>;
}

impl<K: Resource + Send + Sync + 'static> HasSynced for Informer<K> {
    fn wait_synced(&self) -> BoxFuture<'_, ()> {
        Box::pin(Informer::wait_synced(self))
    }
}

/// Waits until every cache has its first complete list (client-go's `WaitForCacheSync`).
pub async fn wait_for_cache_sync(caches: &[&dyn HasSynced]) {
    futures::future::join_all(caches.iter().map(|c| c.wait_synced())).await;
}

impl<K: Resource> Informer<K> {
    fn read(&self) -> std::sync::RwLockReadGuard<'_, BTreeMap<String, Arc<K>>> {
        self.shared
            .objects
            .read()
            .unwrap_or_else(|e| e.into_inner())
    }

    /// Whether the first complete list is in (client-go's `HasSynced`), without waiting.
    pub fn has_synced(&self) -> bool {
        *self.shared.synced.borrow()
    }

    /// Waits for the first complete list.
    pub async fn wait_synced(&self) {
        let mut rx = self.shared.synced.subscribe();
        let _ = rx.wait_for(|s| *s).await;
    }

    pub fn get(&self, namespace: Option<&str>, name: &str) -> Option<Arc<K>> {
        let key = match namespace {
            Some(ns) if !ns.is_empty() => format!("{ns}/{name}"),
            _ => name.to_string(),
        };
        self.read().get(&key).cloned()
    }

    pub fn get_key(&self, key: &str) -> Option<Arc<K>> {
        self.read().get(key).cloned()
    }

    /// Every object of one namespace.
    pub fn list_namespace(&self, namespace: &str) -> Vec<Arc<K>> {
        let from = format!("{namespace}/");
        self.read()
            .range(from.clone()..)
            .take_while(|(k, _)| k.starts_with(&from))
            .map(|(_, v)| v.clone())
            .collect()
    }

    pub fn list(&self) -> Vec<Arc<K>> {
        self.read().values().cloned().collect()
    }

    /// Calls `f` for every object already cached (as an addition, before this returns: after
    /// [`Informer::wait_synced`] the caller has seen the whole first list), then for every
    /// change, in cache order; none is ever dropped (the subscriber's queue grows instead).
    pub fn on_change<F>(&self, mut f: F)
    where
        F: FnMut(&Change<K>) + Send + 'static,
        K: Send + Sync + 'static,
    {
        // Subscribe and snapshot under the cache's lock (changes are sent under it too), so
        // a subscriber that arrives after the first list still sees every object once.
        let (mut rx, present) = {
            let objects = self.read();
            let (tx, rx) = mpsc::unbounded_channel();
            self.shared.subscribers().push(tx);
            (rx, objects.values().cloned().collect::<Vec<_>>())
        };
        for obj in present {
            f(&Change {
                old: None,
                new: Some(obj),
            });
        }
        let task = tokio::spawn(async move {
            while let Some(change) = rx.recv().await {
                f(&change);
            }
        });
        self.shared.track(task.abort_handle());
    }

    /// Stops the watch and every subscriber (a controller manager that lost its lease stops
    /// watching; the cache stays readable but no longer changes).
    pub fn stop(&self) {
        let tasks =
            std::mem::take(&mut *self.shared.tasks.lock().unwrap_or_else(|e| e.into_inner()));
        for t in tasks {
            t.abort();
        }
    }

    /// A handle that stops this informer, whatever its kind.
    pub fn stopper(&self) -> Box<dyn Fn() + Send + Sync>
    where
        K: Send + Sync + 'static,
    {
        let me = self.clone();
        Box::new(move || me.stop())
    }
}

/// Stops informers when dropped: held by the future that runs their controllers, so losing
/// the lease (which drops that future) stops the watches too.
pub struct StopOnDrop(pub Vec<Box<dyn Fn() + Send + Sync>>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        for stop in &self.0 {
            stop();
        }
    }
}

/// The owning controller's reference, if any (`ownerReferences[].controller == true`).
pub fn controller_of<K: Resource>(
    obj: &K,
) -> Option<&k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference> {
    obj.meta()
        .owner_references
        .as_ref()?
        .iter()
        .find(|r| r.controller == Some(true))
}

/// The object's uid (empty when unset).
pub fn uid_of<K: Resource>(obj: &K) -> String {
    obj.uid().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::ConfigMap;

    fn cm(name: &str) -> Arc<ConfigMap> {
        let mut c = ConfigMap::default();
        c.metadata.name = Some(name.into());
        c.metadata.namespace = Some("default".into());
        Arc::new(c)
    }

    /// An informer with no watch, fed by hand.
    fn detached() -> Informer<ConfigMap> {
        Informer {
            shared: Arc::new(Shared {
                objects: RwLock::new(BTreeMap::new()),
                subscribers: Mutex::new(Vec::new()),
                synced: watch::channel(true).0,
                tasks: Mutex::new(Vec::new()),
            }),
        }
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_busy_subscriber_misses_no_change() {
        let informer = detached();
        informer.shared.apply(cm("first"));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let s = seen.clone();
        informer.on_change(move |c: &Change<ConfigMap>| {
            let name =
                |o: &Option<Arc<ConfigMap>>| o.as_ref().and_then(|o| o.metadata.name.clone());
            s.lock().unwrap().push((name(&c.old), name(&c.new)));
        });
        // More changes than any fixed ring would hold, all queued before the subscriber's
        // task first runs (this runtime has one thread and it has not yielded).
        for i in 0..20_000 {
            informer.shared.apply(cm(&format!("cm-{}", i % 100)));
        }
        informer.shared.delete("default/first");
        let all_delivered = async {
            while seen.lock().unwrap().len() < 20_002 {
                tokio::task::yield_now().await;
            }
        };
        tokio::time::timeout(std::time::Duration::from_secs(10), all_delivered)
            .await
            .expect("every change delivered");
        let seen = seen.lock().unwrap();
        assert_eq!(seen[0], (None, Some("first".into())));
        assert_eq!(seen[1], (None, Some("cm-0".into())));
        // The 101st change is cm-0's first update: old and new, in order.
        assert_eq!(seen[101], (Some("cm-0".into()), Some("cm-0".into())));
        assert_eq!(seen[20_001], (Some("first".into()), None));
        assert_eq!(seen.len(), 20_002);
    }
}
