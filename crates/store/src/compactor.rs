//! Automatic compaction: old history is dropped on a schedule, by age and/or by count, the
//! same way for every backend (the Kubernetes API server compacts etcd itself, too).

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::{Revision, Store};

/// How much history to keep.
#[derive(Clone, Debug)]
pub struct CompactionPolicy {
    /// How often to compact.
    pub interval: Duration,
    /// Keep the history of at least this long ago (a watcher that reconnects within it
    /// resumes without a relist). `None`: no age limit.
    pub retain_age: Option<Duration>,
    /// Keep at most this many revisions of history. `None`: no count limit.
    pub retain_revisions: Option<i64>,
}

impl Default for CompactionPolicy {
    /// Five minutes of history, compacted every minute (the Kubernetes API server's interval
    /// is five minutes, k3s's kine keeps five minutes too).
    fn default() -> Self {
        CompactionPolicy {
            interval: Duration::from_secs(60),
            retain_age: Some(Duration::from_secs(300)),
            retain_revisions: None,
        }
    }
}

/// Runs a [`CompactionPolicy`] against a store.
pub struct Compactor {
    store: Arc<dyn Store>,
    policy: CompactionPolicy,
    /// (when, revision then): to find the revision of `retain_age` ago.
    samples: VecDeque<(Instant, Revision)>,
    compacted: Revision,
}

impl Compactor {
    pub fn new(store: Arc<dyn Store>, policy: CompactionPolicy) -> Self {
        Compactor {
            store,
            policy,
            samples: VecDeque::new(),
            compacted: 0,
        }
    }

    /// Compacts on the policy's interval until the task is aborted.
    pub fn spawn(mut self) -> JoinHandle<()> {
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(self.policy.interval);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                self.run_once().await;
            }
        })
    }

    /// One round: samples the revision and compacts as far as the policy allows.
    pub async fn run_once(&mut self) {
        let now = Instant::now();
        let current = match self.store.current_revision().await {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(error = %e, "compaction: cannot read the current revision");
                return;
            }
        };
        self.samples.push_back((now, current));
        let Some(target) = self.target(now, current) else {
            return;
        };
        if target <= self.compacted {
            return;
        }
        match self.store.compact(target).await {
            Ok(()) => {
                tracing::debug!(revision = target, "compacted store history");
                self.compacted = target;
            }
            Err(e) => tracing::warn!(error = %e, revision = target, "compaction failed"),
        }
    }

    /// The revision history may be compacted to, if any.
    fn target(&mut self, now: Instant, current: Revision) -> Option<Revision> {
        let by_count = self
            .policy
            .retain_revisions
            .map(|keep| current - keep.max(0));
        let by_age = self.policy.retain_age.and_then(|age| {
            let cutoff = now.checked_sub(age)?;
            // The newest sample at or before the cutoff; older ones are no longer needed.
            while self.samples.len() > 1 && self.samples[1].0 <= cutoff {
                self.samples.pop_front();
            }
            self.samples
                .front()
                .filter(|(t, _)| *t <= cutoff)
                .map(|(_, r)| *r)
        });
        if self.policy.retain_age.is_none() {
            self.samples.clear();
        }
        by_count.max(by_age).filter(|r| *r > 0)
    }
}
