//! Work scheduled for a time, cancellable until it starts (upstream's TimedWorkerQueue):
//! one piece of work per key; work due now starts at once and can no longer be cancelled.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use futures::future::BoxFuture;
use tokio::task::AbortHandle;
use tokio::time::Instant;

/// The work: given the key, a future that does it.
pub type Work = Arc<dyn Fn(String) -> BoxFuture<'static, ()> + Send + Sync>;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Phase {
    Waiting,
    Running,
    Cancelled,
}

struct Timer {
    created_at: Instant,
    phase: Arc<Mutex<Phase>>,
    abort: AbortHandle,
}

impl Timer {
    /// Stops the work unless it started already.
    fn cancel(&self) {
        let mut phase = lock(&self.phase);
        if *phase == Phase::Waiting {
            *phase = Phase::Cancelled;
            self.abort.abort();
        }
    }
}

struct Slot {
    id: u64,
    /// `None` for work that started at once.
    timer: Option<Timer>,
}

#[derive(Default)]
struct Slots {
    by_key: HashMap<String, Slot>,
    next_id: u64,
}

pub struct TimedWorkerQueue {
    slots: Arc<Mutex<Slots>>,
    work: Work,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl TimedWorkerQueue {
    pub fn new(work: Work) -> Self {
        TimedWorkerQueue {
            slots: Arc::new(Mutex::new(Slots::default())),
            work,
        }
    }

    /// Schedules the work for `key` at `fire_at`, unless some is already scheduled or
    /// running for it.
    pub fn add_work(&self, key: &str, created_at: Instant, fire_at: Instant) {
        let mut slots = lock(&self.slots);
        if slots.by_key.contains_key(key) {
            return;
        }
        slots.next_id += 1;
        let id = slots.next_id;
        let phase = Arc::new(Mutex::new(Phase::Waiting));
        let task_phase = phase.clone();
        let all = self.slots.clone();
        let work = self.work.clone();
        let owned_key = key.to_string();
        let immediate = fire_at <= created_at;
        let task = tokio::spawn(async move {
            if !immediate {
                tokio::time::sleep_until(fire_at).await;
            }
            {
                let mut p = lock(&task_phase);
                if *p == Phase::Cancelled {
                    return;
                }
                *p = Phase::Running;
            }
            work(owned_key.clone()).await;
            // Done: forget it, unless it was replaced meanwhile.
            let mut slots = lock(&all);
            if slots.by_key.get(&owned_key).is_some_and(|s| s.id == id) {
                slots.by_key.remove(&owned_key);
            }
        });
        let timer = (!immediate).then(|| Timer {
            created_at,
            phase,
            abort: task.abort_handle(),
        });
        slots.by_key.insert(key.to_string(), Slot { id, timer });
    }

    /// Forgets the work for `key`; true when it was waiting and so will not run.
    pub fn cancel_work(&self, key: &str) -> bool {
        let Some(slot) = lock(&self.slots).by_key.remove(key) else {
            return false;
        };
        let Some(timer) = slot.timer else {
            return false;
        };
        timer.cancel();
        // A timer that fired is running the work: as upstream, it still counts as cancelled.
        true
    }

    /// When the waiting work for `key` was scheduled (`None`: none, or already running).
    pub fn created_at(&self, key: &str) -> Option<Instant> {
        lock(&self.slots)
            .by_key
            .get(key)
            .and_then(|s| s.timer.as_ref())
            .map(|t| t.created_at)
    }
}

/// Scheduled work dies with its queue: a controller manager that lost its lease (and so its
/// controllers) must not delete pods later.
impl Drop for TimedWorkerQueue {
    fn drop(&mut self) {
        let slots = std::mem::take(&mut lock(&self.slots).by_key);
        for timer in slots.into_values().filter_map(|s| s.timer) {
            timer.cancel();
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use std::time::Duration;

    fn recording() -> (TimedWorkerQueue, Arc<Mutex<Vec<String>>>) {
        let done = Arc::new(Mutex::new(Vec::new()));
        let d = done.clone();
        let q = TimedWorkerQueue::new(Arc::new(move |key: String| {
            let d = d.clone();
            Box::pin(async move { d.lock().unwrap().push(key) }) as BoxFuture<'static, ()>
        }));
        (q, done)
    }

    #[tokio::test(start_paused = true)]
    async fn work_runs_when_due_unless_cancelled() {
        let (q, done) = recording();
        let now = Instant::now();
        q.add_work("ns/now", now, now);
        q.add_work("ns/later", now, now + Duration::from_secs(2));
        q.add_work("ns/cancelled", now, now + Duration::from_secs(2));
        // Only the first schedule of a key counts.
        q.add_work("ns/later", now, now + Duration::from_secs(100));
        assert_eq!(q.created_at("ns/later"), Some(now));
        assert_eq!(q.created_at("ns/now"), None, "already started");
        assert!(q.cancel_work("ns/cancelled"));
        assert!(!q.cancel_work("ns/cancelled"), "nothing left to cancel");
        tokio::time::sleep(Duration::from_millis(1900)).await;
        assert_eq!(*done.lock().unwrap(), ["ns/now"]);
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(*done.lock().unwrap(), ["ns/now", "ns/later"]);
        // Finished work is forgotten: the key can be scheduled again.
        assert_eq!(q.created_at("ns/later"), None);
        q.add_work(
            "ns/later",
            Instant::now(),
            Instant::now() + Duration::from_secs(1),
        );
        assert!(q.created_at("ns/later").is_some());
        // Dropping the queue drops what still waits.
        drop(q);
        tokio::time::sleep(Duration::from_secs(5)).await;
        assert_eq!(*done.lock().unwrap(), ["ns/now", "ns/later"]);
    }
}
