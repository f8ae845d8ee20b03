//! The controller pattern, written once: a controller says what to do with one key
//! ([`Reconciler::reconcile`], controller-runtime's `Reconcile` and kube-rs' reconciler) and
//! [`run`] does the rest, as every client-go controller's `Run` / `processNextWorkItem` /
//! `handleErr` does: wait for the informers' caches, then N workers take keys off the work
//! queue; a success forgets the key's failures (and may ask to look again after a delay), a
//! failure is logged and the key retried after its back-off.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use crate::informer::{HasSynced, wait_for_cache_sync};
use crate::queue::WorkQueue;

/// What a reconciliation asks for next (controller-runtime's `Result`, kube-rs' `Action`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Action {
    /// Nothing until the key is added again (an informer event, another controller).
    #[default]
    Done,
    /// Look at the key again after this long, e.g. when a deadline or a grace period ends
    /// (controller-runtime's `RequeueAfter`, client-go's `AddAfter`).
    RequeueAfter(Duration),
}

impl From<Option<Duration>> for Action {
    /// `Some(d)`: requeue after `d`; `None`: done.
    fn from(after: Option<Duration>) -> Self {
        after.map_or(Action::Done, Action::RequeueAfter)
    }
}

/// One controller's reconciliation of one key (`namespace/name`, or whatever its queue holds).
pub trait Reconciler: Send + Sync + 'static {
    /// The controller's name in logs (upstream's controller name, e.g. `"replicaset"`).
    const NAME: &'static str;

    /// Brings the object named by `key` to its desired state. An error retries the key with
    /// the queue's per-key back-off; implementations look the object up in their informers'
    /// caches (a key whose object is gone is normally `Ok(Action::Done)`). `self` is the
    /// shared controller (kube-rs hands its reconciler an `Arc` context likewise), which a
    /// reconciliation may hand on to tasks it starts.
    fn reconcile(
        self: &Arc<Self>,
        key: &str,
    ) -> impl Future<Output = anyhow::Result<Action>> + Send;
}

/// Runs `reconciler` on `queue` with `workers` workers once every cache in `caches` has
/// synced (client-go's `WaitForCacheSync`, so no key is judged against a half-listed world).
/// It never returns while the queue is up; the workers are futures of the caller's task, not
/// spawned tasks, so dropping or aborting it (a lost lease) stops them too.
///
/// A key is never reconciled by two workers at once (the queue's processing set); a key added
/// during its reconciliation is reconciled again afterwards.
pub async fn run<R: Reconciler>(
    reconciler: &Arc<R>,
    queue: &Arc<WorkQueue>,
    caches: &[&dyn HasSynced],
    workers: usize,
) {
    wait_for_cache_sync(caches).await;
    process(R::NAME, queue, workers, |key| async move {
        reconciler.reconcile(&key).await
    })
    .await;
}

/// The worker loop under [`run`]: client-go's `processNextWorkItem` and `handleErr`.
async fn process<F, Fut>(name: &str, queue: &Arc<WorkQueue>, workers: usize, sync: F)
where
    F: Fn(String) -> Fut,
    Fut: Future<Output = anyhow::Result<Action>>,
{
    let workers = (0..workers.max(1)).map(|_| async {
        while let Some(key) = queue.get().await {
            match sync(key.clone()).await {
                Ok(action) => {
                    queue.forget(&key);
                    if let Action::RequeueAfter(d) = action {
                        queue.add_after(key.clone(), d);
                    }
                }
                Err(e) => {
                    // No give-up after N retries (upstream's maxRetries): the back-off grows
                    // to 1000 s and the key is retried for as long as it fails.
                    let requeues = queue.num_requeues(&key);
                    tracing::info!(controller = name, %key, requeues, error = %format!("{e:#}"), "sync failed; retrying");
                    queue.add_rate_limited(key.clone());
                }
            }
            queue.done(&key);
        }
    });
    futures::future::join_all(workers).await;
}

#[cfg(test)]
mod tests {
    use std::collections::{HashMap, HashSet};
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use tokio::time::Instant;

    use super::*;

    /// Records when each key was reconciled; fails a key its first `fail` times.
    #[derive(Default)]
    struct Recording {
        fail: HashMap<String, usize>,
        requeue: HashMap<String, (usize, Duration)>,
        calls: Mutex<Vec<(String, Instant)>>,
        in_flight: Mutex<HashSet<String>>,
        overlaps: AtomicUsize,
        busy: Duration,
    }

    impl Recording {
        fn calls_of(&self, key: &str) -> Vec<Instant> {
            let calls = self.calls.lock().unwrap();
            calls
                .iter()
                .filter(|(k, _)| k == key)
                .map(|c| c.1)
                .collect()
        }
    }

    impl Reconciler for Recording {
        const NAME: &'static str = "test";

        async fn reconcile(self: &Arc<Self>, key: &str) -> anyhow::Result<Action> {
            let n = {
                let mut calls = self.calls.lock().unwrap();
                calls.push((key.to_string(), Instant::now()));
                calls.iter().filter(|(k, _)| k == key).count()
            };
            if !self.in_flight.lock().unwrap().insert(key.to_string()) {
                self.overlaps.fetch_add(1, Ordering::SeqCst);
            }
            tokio::time::sleep(self.busy).await;
            self.in_flight.lock().unwrap().remove(key);
            if n <= self.fail.get(key).copied().unwrap_or(0) {
                anyhow::bail!("failure {n} of {key}");
            }
            match self.requeue.get(key) {
                Some(&(times, after)) if n <= times => Ok(Action::RequeueAfter(after)),
                _ => Ok(Action::Done),
            }
        }
    }

    fn start(
        r: &Arc<Recording>,
        q: &Arc<WorkQueue>,
        workers: usize,
    ) -> tokio::task::JoinHandle<()> {
        let (r, q) = (r.clone(), q.clone());
        tokio::spawn(async move { run(&r, &q, &[], workers).await })
    }

    fn gaps(calls: &[Instant]) -> Vec<Duration> {
        calls.windows(2).map(|w| w[1] - w[0]).collect()
    }

    #[tokio::test(start_paused = true)]
    async fn a_failing_key_is_retried_with_backoff_then_forgotten() {
        let r = Arc::new(Recording {
            fail: HashMap::from([("ns/a".to_string(), 3)]),
            ..Default::default()
        });
        let q = WorkQueue::new();
        let task = start(&r, &q, 2);
        q.add("ns/a");
        tokio::time::sleep(Duration::from_secs(1)).await;

        let calls = r.calls_of("ns/a");
        assert_eq!(calls.len(), 4, "three failures, then the success");
        // 5 ms, 10 ms, 20 ms: the back-off doubles with each failure.
        let gaps = gaps(&calls);
        for (gap, want) in gaps.iter().zip([5, 10, 20]) {
            let want = Duration::from_millis(want);
            assert!(
                *gap >= want && *gap < want + Duration::from_millis(2),
                "gaps {gaps:?}"
            );
        }
        // The success forgot the failures: a later failure starts from the first delay.
        assert_eq!(q.num_requeues("ns/a"), 0);
        task.abort();
    }

    #[tokio::test(start_paused = true)]
    async fn requeue_after_runs_the_key_again_after_the_delay() {
        let after = Duration::from_secs(30);
        let r = Arc::new(Recording {
            requeue: HashMap::from([("ns/b".to_string(), (2, after))]),
            ..Default::default()
        });
        let q = WorkQueue::new();
        let task = start(&r, &q, 1);
        q.add("ns/b");
        tokio::time::sleep(Duration::from_secs(29)).await;
        assert_eq!(r.calls_of("ns/b").len(), 1, "not before the delay");
        tokio::time::sleep(Duration::from_secs(120)).await;
        let calls = r.calls_of("ns/b");
        assert_eq!(calls.len(), 3, "twice requeued, then done");
        assert!(
            gaps(&calls)
                .iter()
                .all(|g| *g >= after && *g < after + Duration::from_millis(2))
        );
        task.abort();
    }

    #[tokio::test(start_paused = true)]
    async fn workers_never_reconcile_one_key_at_once() {
        let r = Arc::new(Recording {
            busy: Duration::from_millis(100),
            ..Default::default()
        });
        let q = WorkQueue::new();
        let task = start(&r, &q, 4);
        q.add("ns/c");
        q.add("ns/d");
        tokio::time::sleep(Duration::from_millis(10)).await;
        // Added again while being reconciled: once more, after the first one ends.
        q.add("ns/c");
        q.add("ns/c");
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert_eq!(r.overlaps.load(Ordering::SeqCst), 0);
        let c = r.calls_of("ns/c");
        assert_eq!(c.len(), 2);
        assert!(c[1] - c[0] >= Duration::from_millis(100), "{:?}", gaps(&c));
        // Other keys do run at once on other workers.
        assert_eq!(r.calls_of("ns/d")[0], c[0]);
        task.abort();
    }

    #[tokio::test(start_paused = true)]
    async fn nothing_is_reconciled_before_the_caches_sync() {
        struct Gate(tokio::sync::watch::Sender<bool>);
        impl HasSynced for Gate {
            fn wait_synced(&self) -> futures::future::BoxFuture<'_, ()> {
                let mut rx = self.0.subscribe();
                Box::pin(async move {
                    let _ = rx.wait_for(|s| *s).await;
                })
            }
        }
        let gate = Arc::new(Gate(tokio::sync::watch::Sender::new(false)));
        let r = Arc::new(Recording::default());
        let q = WorkQueue::new();
        q.add("ns/e");
        let task = tokio::spawn({
            let (r, q, gate) = (r.clone(), q.clone(), gate.clone());
            async move { run(&r, &q, &[gate.as_ref()], 1).await }
        });
        tokio::time::sleep(Duration::from_secs(5)).await;
        assert!(r.calls_of("ns/e").is_empty());
        gate.0.send_replace(true);
        tokio::time::sleep(Duration::from_millis(1)).await;
        assert_eq!(r.calls_of("ns/e").len(), 1);
        task.abort();
    }
}
