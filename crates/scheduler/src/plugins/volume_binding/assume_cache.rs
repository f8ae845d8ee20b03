//! The scheduler's view of volumes and claims (upstream's AssumeCache): the API's objects as
//! the informer delivers them, overlaid by versions the scheduler assumed for pods it reserved
//! (a volume pre-bound to a claim, a claim given a selected node) until the API catches up —
//! a newer object from the informer replaces the assumption — or the reservation is undone.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use client_go::informer::key_of;
use kube::Resource;

struct Entry<K> {
    api: Arc<K>,
    latest: Arc<K>,
}

pub struct AssumeCache<K> {
    entries: RwLock<HashMap<String, Entry<K>>>,
}

impl<K> Default for AssumeCache<K> {
    fn default() -> Self {
        AssumeCache {
            entries: RwLock::new(HashMap::new()),
        }
    }
}

/// A resourceVersion as a number; rkube's (and etcd's) are integers.
fn version<K: Resource>(obj: &K) -> Option<u64> {
    obj.meta().resource_version.as_deref()?.parse().ok()
}

/// Whether `a` is newer than `b` (an unparsable version counts as newer, so the cache never
/// sticks on an old object).
pub fn newer<K: Resource>(a: &K, b: &K) -> bool {
    match (version(a), version(b)) {
        (Some(x), Some(y)) => x > y,
        _ => true,
    }
}

impl<K: Resource> AssumeCache<K> {
    fn read(&self) -> std::sync::RwLockReadGuard<'_, HashMap<String, Entry<K>>> {
        self.entries.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<String, Entry<K>>> {
        self.entries.write().unwrap_or_else(|e| e.into_inner())
    }

    /// An object from the API (informer add or update): kept unless not newer than what
    /// the cache holds, assumed versions included (a resync must not undo an assumption).
    pub fn update(&self, obj: Arc<K>) {
        let key = key_of(obj.as_ref());
        let mut entries = self.write();
        if let Some(e) = entries.get(&key)
            && !newer(obj.as_ref(), e.latest.as_ref())
        {
            return;
        }
        entries.insert(
            key,
            Entry {
                api: obj.clone(),
                latest: obj,
            },
        );
    }

    pub fn delete(&self, key: &str) {
        self.write().remove(key);
    }

    /// The object as the scheduler sees it (assumed when it is).
    pub fn get(&self, key: &str) -> Option<Arc<K>> {
        self.read().get(key).map(|e| e.latest.clone())
    }

    /// The object as the API last reported it.
    pub fn get_api(&self, key: &str) -> Option<Arc<K>> {
        self.read().get(key).map(|e| e.api.clone())
    }

    /// Every object as the scheduler sees it.
    pub fn list(&self) -> Vec<Arc<K>> {
        self.read().values().map(|e| e.latest.clone()).collect()
    }

    /// Assumes a changed version of a cached object; refused when the object is unknown or
    /// the change was made from an outdated version.
    pub fn assume(&self, obj: Arc<K>) -> Result<(), String> {
        let key = key_of(obj.as_ref());
        let mut entries = self.write();
        let Some(e) = entries.get_mut(&key) else {
            return Err(format!("{key:?} not found in the assume cache"));
        };
        if version(obj.as_ref()) != version(e.latest.as_ref()) {
            return Err(format!(
                "{key:?} is out of sync with the assume cache (version {:?}, cached {:?})",
                obj.meta().resource_version,
                e.latest.meta().resource_version
            ));
        }
        e.latest = obj;
        Ok(())
    }

    /// Drops an assumption: the API's version is seen again.
    pub fn restore(&self, key: &str) {
        if let Some(e) = self.write().get_mut(key) {
            e.latest = e.api.clone();
        }
    }
}
