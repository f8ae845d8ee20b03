//! The watch cache (Kubernetes' "cacher"): one in-memory copy of everything under
//! `/registry/`, fed by a single store watch, from which LIST and WATCH are served.
//!
//! It holds the latest value of every key and a window of recent events. A consistent LIST
//! (no resourceVersion) first waits until the cache has seen the store's current revision,
//! so it never returns older data than the store would. A WATCH from a revision inside the
//! window replays from memory; one from an older revision is the caller's to serve from the
//! store. One watch on the whole prefix (not one per resource) is what makes "the cache has
//! seen revision R" meaningful: every write is under `/registry/`.

use std::collections::{BTreeMap, VecDeque};
use std::ops::Bound;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use futures::StreamExt;
use store::{EventType, KeyValue, ListOptions, Store};
use tokio::sync::{broadcast, watch};

/// Everything the API server stores lives under this prefix.
pub const ROOT: &str = "/registry/";

/// Recent events kept for watches that resume from a revision.
const HISTORY: usize = 8192;
/// Live events queued per watcher before it counts as lagging (it then catches up from the
/// history window, or ends so its client resumes).
const FANOUT: usize = 1024;
/// How long a consistent read waits for the cache before reading the store instead.
const FRESHNESS_WAIT: Duration = Duration::from_secs(3);

/// What the cache sends its watchers.
#[derive(Clone)]
pub enum Msg {
    Event(Arc<store::Event>),
    /// The cache was rebuilt from a new list: every watcher ends, its client resumes.
    Reset,
}

struct Inner {
    objects: BTreeMap<String, KeyValue>,
    /// Events with revision > `oldest`, in order.
    history: VecDeque<Arc<store::Event>>,
    oldest: i64,
    rev: i64,
    ready: bool,
}

pub struct WatchCache {
    store: Arc<dyn Store>,
    /// How many recent events are kept.
    history: usize,
    inner: RwLock<Inner>,
    rev: watch::Sender<i64>,
    /// The live feed, one channel per watched prefix, so an event wakes only the watchers
    /// of its own kind (upstream keeps a cacher per resource for the same reason). Locked
    /// after `inner`, never before.
    fanout: std::sync::Mutex<Fanout>,
}

/// Live-feed channels by the prefix their watchers watch (each ends in `/`).
#[derive(Default)]
struct Fanout {
    channels: std::collections::HashMap<String, broadcast::Sender<Msg>>,
}

impl Fanout {
    /// A receiver of every event under `prefix` (a watcher filters what is under its own
    /// prefix when that is not a whole path segment).
    fn subscribe(&mut self, prefix: &str) -> broadcast::Receiver<Msg> {
        let channel = match prefix.rfind('/') {
            Some(i) => &prefix[..=i],
            None => "",
        };
        self.channels
            .entry(channel.to_string())
            .or_insert_with(|| broadcast::channel(FANOUT).0)
            .subscribe()
    }

    /// Sends an event to the channels of every prefix of its key; drops channels whose
    /// watchers are all gone.
    fn send(&mut self, ev: &Arc<store::Event>) {
        if self.channels.is_empty() {
            return;
        }
        let key = &ev.kv.key;
        let ends = std::iter::once(0).chain(key.match_indices('/').map(|(i, _)| i + 1));
        for end in ends {
            let prefix = &key[..end];
            let Some(tx) = self.channels.get(prefix) else {
                continue;
            };
            if tx.send(Msg::Event(ev.clone())).is_err() {
                self.channels.remove(prefix);
            }
        }
    }

    /// Ends every watcher.
    fn reset(&mut self) {
        for tx in self.channels.values() {
            let _ = tx.send(Msg::Reset);
        }
        self.channels.clear();
    }
}

/// Where a watcher starts.
pub enum Start {
    /// With the current objects (sent as ADDED), then what follows.
    Now,
    /// With every event after this revision.
    After(i64),
}

/// A watcher's view: the objects it starts with, the events to replay, and the live feed.
pub struct Subscription {
    pub initial: Vec<KeyValue>,
    pub replay: Vec<Arc<store::Event>>,
    /// The cache revision the initial objects and replay reach.
    pub rev: i64,
    pub live: broadcast::Receiver<Msg>,
}

/// A snapshot of one prefix, for a LIST.
pub struct Snapshot {
    pub kvs: Vec<KeyValue>,
    pub rev: i64,
}

impl WatchCache {
    /// Creates the cache and starts filling it in the background.
    pub fn start(store: Arc<dyn Store>) -> Arc<Self> {
        Self::with_history(store, HISTORY)
    }

    /// A cache keeping `history` recent events.
    pub fn with_history(store: Arc<dyn Store>, history: usize) -> Arc<Self> {
        let cache = Arc::new(WatchCache {
            store,
            history,
            inner: RwLock::new(Inner {
                objects: BTreeMap::new(),
                history: VecDeque::new(),
                oldest: 0,
                rev: 0,
                ready: false,
            }),
            rev: watch::channel(0).0,
            fanout: Default::default(),
        });
        let weak = Arc::downgrade(&cache);
        tokio::spawn(async move {
            // The task ends with the cache: it holds it only while handling one step.
            loop {
                let Some(cache) = weak.upgrade() else { return };
                if let Err(e) = cache.run().await {
                    tracing::warn!(error = %e, "watch cache: store watch ended; resuming");
                }
                drop(cache);
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        });
        cache
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Inner> {
        self.inner.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Inner> {
        self.inner.write().unwrap_or_else(|e| e.into_inner())
    }

    fn fanout(&self) -> std::sync::MutexGuard<'_, Fanout> {
        self.fanout.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The revision the cache has caught up to.
    pub fn revision(&self) -> i64 {
        *self.rev.borrow()
    }

    /// Follows the store: resumes the watch after the cache's revision, or relists when that
    /// is impossible (first start, or the revision was compacted).
    async fn run(&self) -> store::Result<()> {
        let (ready, rev) = {
            let i = self.read();
            (i.ready, i.rev)
        };
        let mut stream = match ready {
            true => match self.store.watch(ROOT, rev + 1).await {
                Ok(s) => s,
                Err(store::Error::Compacted { .. }) => self.relist().await?,
                Err(e) => return Err(e),
            },
            false => self.relist().await?,
        };
        while let Some(ev) = stream.next().await {
            match ev {
                Ok(ev) => self.apply(ev),
                Err(store::Error::Compacted { .. }) => {
                    // Fell behind compaction: start over from a fresh list.
                    self.write().ready = false;
                    return Ok(());
                }
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Loads every object at one revision and starts watching after it.
    async fn relist(&self) -> store::Result<store::WatchStream> {
        let mut objects = BTreeMap::new();
        let (mut revision, mut start) = (None, None);
        loop {
            let page = self
                .store
                .list(
                    ROOT,
                    ListOptions {
                        revision,
                        limit: Some(1000),
                        start_key: start.take(),
                    },
                )
                .await?;
            revision = Some(page.revision);
            start = page.kvs.last().map(|kv| format!("{}\0", kv.key));
            for kv in page.kvs {
                objects.insert(kv.key.clone(), kv);
            }
            if !page.more {
                break;
            }
        }
        let rev = revision.unwrap_or(0);
        let stream = self.store.watch(ROOT, rev + 1).await?;
        {
            let mut i = self.write();
            i.objects = objects;
            i.history.clear();
            i.oldest = rev;
            i.rev = rev;
            i.ready = true;
            // Watchers of the old contents end; on first load there are none.
            self.fanout().reset();
        }
        self.rev.send_replace(rev);
        tracing::debug!(rev, "watch cache loaded");
        Ok(stream)
    }

    fn apply(&self, ev: store::Event) {
        let ev = Arc::new(ev);
        let rev = ev.revision();
        {
            let mut i = self.write();
            if rev <= i.rev {
                return; // already seen (a resumed watch may repeat its first revision)
            }
            match ev.event_type {
                EventType::Put => {
                    i.objects.insert(ev.kv.key.clone(), ev.kv.clone());
                }
                EventType::Delete => {
                    i.objects.remove(&ev.kv.key);
                }
            }
            i.history.push_back(ev.clone());
            while i.history.len() > self.history {
                if let Some(old) = i.history.pop_front() {
                    i.oldest = old.revision();
                }
            }
            i.rev = rev;
            // Sent under the lock, so a subscriber sees each event exactly once: either in
            // its snapshot or on its receiver.
            self.fanout().send(&ev);
        }
        self.rev.send_replace(rev);
    }

    /// Waits until the cache has seen `min` (or, when `None`, the store's current revision:
    /// a consistent read). False when it does not get there in time; the caller then reads
    /// the store.
    pub async fn wait_fresh(&self, min: Option<i64>) -> bool {
        let min = match min {
            Some(m) => m,
            None => match self.store.current_revision().await {
                Ok(r) => r,
                Err(_) => return false,
            },
        };
        let mut rx = self.rev.subscribe();
        let reached = tokio::time::timeout(FRESHNESS_WAIT, async {
            loop {
                if *rx.borrow_and_update() >= min && self.read().ready {
                    return true;
                }
                if rx.changed().await.is_err() {
                    return false;
                }
            }
        })
        .await;
        reached.unwrap_or(false)
    }

    /// One object as the cache has it now (no waiting: a lister's read); `None` when the
    /// cache is not ready or does not hold it.
    pub fn get(&self, key: &str) -> Option<KeyValue> {
        let i = self.read();
        if !i.ready {
            return None;
        }
        i.objects.get(key).cloned()
    }

    /// The objects under `prefix` from `start` (inclusive), if the cache is at `at` (or at
    /// any revision when `at` is `None`).
    pub fn snapshot(&self, prefix: &str, start: Option<&str>, at: Option<i64>) -> Option<Snapshot> {
        let i = self.read();
        if !i.ready || at.is_some_and(|a| a != i.rev) {
            return None;
        }
        let from = start.unwrap_or(prefix);
        let kvs = i
            .objects
            .range::<str, _>((Bound::Included(from), Bound::Unbounded))
            .take_while(|(k, _)| k.starts_with(prefix))
            .map(|(_, kv)| kv.clone())
            .collect();
        Some(Snapshot { kvs, rev: i.rev })
    }

    /// Subscribes a watcher to `prefix`; `None` when `start` is older than the window.
    pub fn subscribe(&self, prefix: &str, start: Start) -> Option<Subscription> {
        let i = self.read();
        if !i.ready {
            return None;
        }
        let (initial, replay) = match start {
            Start::Now => (
                i.objects
                    .range::<str, _>((Bound::Included(prefix), Bound::Unbounded))
                    .take_while(|(k, _)| k.starts_with(prefix))
                    .map(|(_, kv)| kv.clone())
                    .collect(),
                Vec::new(),
            ),
            Start::After(rev) if rev >= i.oldest && rev <= i.rev => {
                (Vec::new(), Self::events_after(&i, prefix, rev))
            }
            Start::After(_) => return None,
        };
        Some(Subscription {
            initial,
            replay,
            rev: i.rev,
            live: self.fanout().subscribe(prefix),
        })
    }

    /// The window's events under `prefix` after `rev`; `None` if some have left the window.
    pub fn catch_up(&self, prefix: &str, rev: i64) -> Option<Vec<Arc<store::Event>>> {
        let i = self.read();
        (i.ready && rev >= i.oldest).then(|| Self::events_after(&i, prefix, rev))
    }

    fn events_after(i: &Inner, prefix: &str, rev: i64) -> Vec<Arc<store::Event>> {
        // History is ordered by revision: skip what the watcher has.
        let skip = i.history.partition_point(|e| e.revision() <= rev);
        i.history
            .iter()
            .skip(skip)
            .filter(|e| e.kv.key.starts_with(prefix))
            .cloned()
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn put(store: &Arc<dyn Store>, key: &str) -> i64 {
        store
            .create(key, bytes::Bytes::from_static(b"{}"), None)
            .await
            .unwrap()
    }

    async fn next(rx: &mut broadcast::Receiver<Msg>) -> Msg {
        tokio::time::timeout(Duration::from_secs(5), rx.recv())
            .await
            .unwrap()
            .unwrap()
    }

    #[tokio::test]
    async fn serves_fresh_lists_and_resumes_inside_its_window() {
        let dir = tempfile::tempdir().unwrap();
        let store = store::open(&store::DatastoreConfig::Sqlite {
            path: dir.path().join("s.db"),
        })
        .await
        .unwrap();
        let first = put(&store, "/registry/core/pods/a/p0").await;
        let cache = WatchCache::with_history(store.clone(), 3);
        assert!(cache.wait_fresh(None).await);
        let snap = cache.snapshot("/registry/core/pods/", None, None).unwrap();
        assert_eq!(snap.kvs.len(), 1);
        assert_eq!(snap.rev, first);

        for i in 1..=4 {
            put(&store, &format!("/registry/core/pods/a/p{i}")).await;
        }
        put(&store, "/registry/core/configmaps/a/c").await;
        // A consistent read waits for what the store has acknowledged.
        assert!(cache.wait_fresh(None).await);
        let snap = cache.snapshot("/registry/core/pods/", None, None).unwrap();
        assert_eq!(snap.kvs.len(), 5);
        // A continuation at an older revision is not the cache's to serve.
        assert!(
            cache
                .snapshot("/registry/core/pods/", None, Some(first))
                .is_none()
        );
        // Three events are kept: a resume from before them is refused, one inside replays
        // only its own prefix.
        assert!(
            cache
                .subscribe("/registry/core/pods/", Start::After(first))
                .is_none()
        );
        let sub = cache
            .subscribe("/registry/core/pods/", Start::After(snap.rev - 3))
            .unwrap();
        let keys: Vec<_> = sub.replay.iter().map(|e| e.kv.key.as_str()).collect();
        assert_eq!(
            keys,
            ["/registry/core/pods/a/p3", "/registry/core/pods/a/p4"]
        );

        // Live events follow the snapshot, each once.
        let mut live = sub.live;
        let rev = put(&store, "/registry/core/pods/a/p5").await;
        match next(&mut live).await {
            Msg::Event(ev) => assert_eq!(ev.revision(), rev),
            Msg::Reset => panic!("unexpected reset"),
        }
        store
            .delete("/registry/core/pods/a/p5", None)
            .await
            .unwrap();
        match next(&mut live).await {
            Msg::Event(ev) => assert_eq!(ev.event_type, EventType::Delete),
            Msg::Reset => panic!("unexpected reset"),
        }
        // Other kinds' writes do not reach this watcher; a namespace's watcher gets only
        // its namespace.
        let mut in_b = cache
            .subscribe("/registry/core/pods/b/", Start::Now)
            .unwrap()
            .live;
        put(&store, "/registry/core/configmaps/a/c2").await;
        put(&store, "/registry/core/pods/a/p6").await;
        let rev = put(&store, "/registry/core/pods/b/p0").await;
        match next(&mut live).await {
            Msg::Event(ev) => assert_eq!(ev.kv.key, "/registry/core/pods/a/p6"),
            Msg::Reset => panic!("unexpected reset"),
        }
        match next(&mut in_b).await {
            Msg::Event(ev) => assert_eq!(ev.revision(), rev),
            Msg::Reset => panic!("unexpected reset"),
        }
        assert!(cache.wait_fresh(None).await);
        assert_eq!(
            cache
                .snapshot("/registry/core/pods/", None, None)
                .unwrap()
                .kvs
                .len(),
            7
        );
    }
}
