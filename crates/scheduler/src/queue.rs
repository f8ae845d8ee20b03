//! The scheduling queue (Kubernetes' PriorityQueue): pending pods ordered by priority, then
//! age. A pod that did not fit waits among the unschedulable until the cluster changes (a
//! node added or updated, a pod deleted), then retries after its back-off (1 s doubling to
//! 10 s); none waits longer than 5 minutes. No busy polling.

use std::cmp::Ordering;
use std::collections::{BinaryHeap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Pod;
use tokio::sync::Notify;

use crate::nodeinfo::{pod_key, priority};

const INITIAL_BACKOFF: Duration = Duration::from_secs(1);
const MAX_BACKOFF: Duration = Duration::from_secs(10);
const MAX_UNSCHEDULABLE: Duration = Duration::from_secs(300);

struct Entry {
    priority: i32,
    /// Creation time in seconds; older first among equal priorities.
    created: i64,
    seq: u64,
    key: String,
}

impl PartialEq for Entry {
    fn eq(&self, o: &Self) -> bool {
        self.cmp(o) == Ordering::Equal
    }
}
impl Eq for Entry {}
impl PartialOrd for Entry {
    fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Entry {
    // BinaryHeap pops the greatest: higher priority, then earlier creation, then FIFO.
    fn cmp(&self, o: &Self) -> Ordering {
        self.priority
            .cmp(&o.priority)
            .then(o.created.cmp(&self.created))
            .then(o.seq.cmp(&self.seq))
    }
}

#[derive(PartialEq, Eq, Clone, Copy, Debug)]
enum Where {
    Active,
    InFlight,
    Unschedulable,
    BackingOff,
}

struct Queued {
    pod: Arc<Pod>,
    state: Where,
    attempts: u32,
    since: Instant,
    /// A cluster change arrived while this pod was being scheduled: retry it.
    moved_while_in_flight: bool,
}

#[derive(Default)]
struct Inner {
    heap: BinaryHeap<Entry>,
    pods: HashMap<String, Queued>,
    seq: u64,
}

#[derive(Default)]
pub struct SchedulingQueue {
    inner: Mutex<Inner>,
    ready: Notify,
}

fn backoff(attempts: u32) -> Duration {
    INITIAL_BACKOFF
        .saturating_mul(1 << attempts.saturating_sub(1).min(10))
        .min(MAX_BACKOFF)
}

impl SchedulingQueue {
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn push(inner: &mut Inner, key: &str, pod: &Pod) {
        inner.seq += 1;
        let created = pod
            .metadata
            .creation_timestamp
            .as_ref()
            .map(|t| t.0.as_second())
            .unwrap_or(0);
        inner.heap.push(Entry {
            priority: priority(pod),
            created,
            seq: inner.seq,
            key: key.to_string(),
        });
    }

    /// A pending pod, new or changed: it (re)joins the active queue unless it is being
    /// scheduled or backing off.
    pub fn add(&self, pod: Arc<Pod>) {
        let key = pod_key(&pod);
        let mut q = self.lock();
        match q.pods.get_mut(&key) {
            Some(e) => {
                // Only a change that may affect scheduling retries an unschedulable pod; its
                // own status (the scheduler's PodScheduled condition) does not.
                let relevant = e.pod.spec != pod.spec
                    || e.pod.metadata.labels != pod.metadata.labels
                    || e.pod.metadata.annotations != pod.metadata.annotations;
                e.pod = pod.clone();
                if e.state == Where::Unschedulable && relevant {
                    e.state = Where::Active;
                    Self::push(&mut q, &key, &pod);
                    drop(q);
                    self.ready.notify_one();
                }
            }
            None => {
                q.pods.insert(
                    key.clone(),
                    Queued {
                        pod: pod.clone(),
                        state: Where::Active,
                        attempts: 0,
                        since: Instant::now(),
                        moved_while_in_flight: false,
                    },
                );
                Self::push(&mut q, &key, &pod);
                drop(q);
                self.ready.notify_one();
            }
        }
    }

    /// The pod is no longer pending (bound, deleted).
    pub fn remove(&self, key: &str) {
        self.lock().pods.remove(key);
    }

    /// The next pod to schedule.
    pub async fn pop(&self) -> Arc<Pod> {
        loop {
            let notified = self.ready.notified();
            {
                let mut q = self.lock();
                while let Some(e) = q.heap.pop() {
                    if let Some(p) = q.pods.get_mut(&e.key)
                        && p.state == Where::Active
                    {
                        p.state = Where::InFlight;
                        p.moved_while_in_flight = false;
                        return p.pod.clone();
                    }
                }
            }
            notified.await;
        }
    }

    /// A scheduling attempt failed: the pod waits for a cluster change (or, if one came
    /// while it was being tried, only for its back-off).
    pub fn unschedulable(self: &Arc<Self>, key: &str) {
        let mut q = self.lock();
        let Some(p) = q.pods.get_mut(key) else { return };
        p.attempts += 1;
        p.since = Instant::now();
        if p.moved_while_in_flight {
            p.state = Where::BackingOff;
            let d = backoff(p.attempts);
            drop(q);
            self.retry_after(key.to_string(), d);
        } else {
            p.state = Where::Unschedulable;
        }
    }

    /// An error unrelated to fit (e.g. a failed binding): retry after back-off.
    pub fn retry(self: &Arc<Self>, key: &str) {
        let mut q = self.lock();
        let Some(p) = q.pods.get_mut(key) else { return };
        p.attempts += 1;
        p.state = Where::BackingOff;
        let d = backoff(p.attempts);
        drop(q);
        self.retry_after(key.to_string(), d);
    }

    fn retry_after(self: &Arc<Self>, key: String, d: Duration) {
        let me = self.clone();
        tokio::spawn(async move {
            tokio::time::sleep(d).await;
            let mut q = me.lock();
            let pod = match q.pods.get_mut(&key) {
                Some(p) if p.state == Where::BackingOff => {
                    p.state = Where::Active;
                    p.pod.clone()
                }
                _ => return,
            };
            Self::push(&mut q, &key, &pod);
            drop(q);
            me.ready.notify_one();
        });
    }

    /// The cluster changed so that unschedulable pods may now fit: they retry, each after
    /// what remains of its back-off.
    pub fn move_all_to_active(self: &Arc<Self>) {
        let mut q = self.lock();
        let mut later = Vec::new();
        let mut woke = false;
        let keys: Vec<String> = q.pods.keys().cloned().collect();
        for key in keys {
            let Some(p) = q.pods.get_mut(&key) else {
                continue;
            };
            match p.state {
                Where::InFlight => p.moved_while_in_flight = true,
                Where::Unschedulable => {
                    let remaining = backoff(p.attempts).saturating_sub(p.since.elapsed());
                    if remaining.is_zero() {
                        p.state = Where::Active;
                        let pod = p.pod.clone();
                        Self::push(&mut q, &key, &pod);
                        woke = true;
                    } else {
                        p.state = Where::BackingOff;
                        later.push((key, remaining));
                    }
                }
                _ => {}
            }
        }
        drop(q);
        if woke {
            self.ready.notify_waiters();
            self.ready.notify_one();
        }
        for (key, d) in later {
            self.retry_after(key, d);
        }
    }

    /// Pods unschedulable for longer than 5 minutes are retried anyway (a change the
    /// scheduler cannot see, such as a volume becoming available).
    pub fn flush_stale(self: &Arc<Self>) {
        let mut q = self.lock();
        let stale: Vec<String> = q
            .pods
            .iter()
            .filter(|(_, p)| {
                p.state == Where::Unschedulable && p.since.elapsed() > MAX_UNSCHEDULABLE
            })
            .map(|(k, _)| k.clone())
            .collect();
        for key in &stale {
            if let Some(p) = q.pods.get_mut(key) {
                p.state = Where::Active;
                let pod = p.pod.clone();
                Self::push(&mut q, key, &pod);
            }
        }
        drop(q);
        if !stale.is_empty() {
            self.ready.notify_one();
        }
    }

    pub fn pending(&self) -> usize {
        self.lock().pods.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(name: &str, prio: i32, created: i64) -> Arc<Pod> {
        Arc::new(
            serde_json::from_value(serde_json::json!({
                "metadata": {"name": name, "namespace": "default",
                    "creationTimestamp": k8s_openapi::jiff::Timestamp::from_second(created).unwrap().to_string()},
                "spec": {"containers": [], "priority": prio}
            }))
            .unwrap(),
        )
    }

    #[tokio::test(start_paused = true)]
    async fn priority_then_age_and_waiting_for_a_cluster_change() {
        let q = SchedulingQueue::new();
        q.add(pod("low-old", 0, 100));
        q.add(pod("high", 10, 300));
        q.add(pod("low-new", 0, 200));
        let name = |p: Arc<Pod>| p.metadata.name.clone().unwrap();
        assert_eq!(name(q.pop().await), "high");
        assert_eq!(name(q.pop().await), "low-old");
        // Unschedulable: not retried until the cluster changes.
        q.unschedulable("default/high");
        assert_eq!(name(q.pop().await), "low-new");
        q.unschedulable("default/low-new");
        tokio::time::sleep(Duration::from_secs(30)).await;
        let waiting = tokio::time::timeout(Duration::from_secs(30), q.pop()).await;
        assert!(waiting.is_err(), "retried without a cluster change");
        q.move_all_to_active();
        assert_eq!(name(q.pop().await), "high");
        assert_eq!(name(q.pop().await), "low-new");
    }
}
