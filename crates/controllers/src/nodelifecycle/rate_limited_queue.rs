//! The per-zone queue of nodes waiting for a NoExecute taint (upstream's
//! RateLimitedTimedQueue): each node at most once until removed, processed in order of when
//! it is due, no faster than a token bucket allows (burst 1).

use std::collections::HashSet;
use std::time::Duration;

use tokio::time::Instant;

/// The burst of every zone's limiter: one node at once.
const BURST: f64 = 1.0;

/// A token bucket as client-go's (golang.org/x/time/rate): starts full, refills at `qps`;
/// a rate of zero or less never lets anything through once swapped in.
#[derive(Debug)]
pub enum Limiter {
    Bucket {
        qps: f32,
        tokens: f64,
        last: Instant,
    },
    Never,
}

impl Limiter {
    pub fn new(qps: f32, now: Instant) -> Self {
        Limiter::Bucket {
            qps,
            tokens: BURST,
            last: now,
        }
    }

    pub fn qps(&self) -> f32 {
        match self {
            Limiter::Bucket { qps, .. } => *qps,
            Limiter::Never => 0.0,
        }
    }

    /// Takes a token if there is one.
    pub fn try_accept(&mut self, now: Instant) -> bool {
        let Limiter::Bucket { qps, tokens, last } = self else {
            return false;
        };
        let elapsed = now.saturating_duration_since(*last).as_secs_f64();
        *tokens = (*tokens + elapsed * f64::from(qps.max(0.0))).min(BURST);
        *last = now.max(*last);
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// A node waiting in the queue.
#[derive(Clone, Debug, PartialEq)]
pub struct TimedValue {
    /// The node's name.
    pub value: String,
    /// The node's uid when queued.
    pub uid: String,
    pub added_at: Instant,
    pub process_at: Instant,
}

#[derive(Debug)]
pub struct RateLimitedTimedQueue {
    /// Waiting values (a handful per zone: a scan is cheaper than a heap's bookkeeping).
    queue: Vec<TimedValue>,
    /// Values added and not removed, processed or not: a processed node is not queued
    /// again until [`RateLimitedTimedQueue::remove`] (it is healthy again).
    set: HashSet<String>,
    limiter: Limiter,
}

impl RateLimitedTimedQueue {
    pub fn new(qps: f32, now: Instant) -> Self {
        RateLimitedTimedQueue {
            queue: Vec::new(),
            set: HashSet::new(),
            limiter: Limiter::new(qps, now),
        }
    }

    /// Queues `value` to be processed now; false when it was added before and not removed.
    pub fn add(&mut self, value: &str, uid: &str, now: Instant) -> bool {
        if !self.set.insert(value.to_string()) {
            return false;
        }
        self.queue.push(TimedValue {
            value: value.into(),
            uid: uid.into(),
            added_at: now,
            process_at: now,
        });
        true
    }

    /// Forgets `value`, so it may be added again; false when it was not there.
    pub fn remove(&mut self, value: &str) -> bool {
        if !self.set.remove(value) {
            return false;
        }
        self.queue.retain(|v| v.value != value);
        true
    }

    fn head_index(&self) -> Option<usize> {
        let mut best: Option<usize> = None;
        for (i, v) in self.queue.iter().enumerate() {
            if best.is_none_or(|b| v.process_at < self.queue[b].process_at) {
                best = Some(i);
            }
        }
        best
    }

    /// The value due first.
    pub fn head(&self) -> Option<&TimedValue> {
        self.head_index().map(|i| &self.queue[i])
    }

    /// The value to process now, if any is due and the limiter allows. As upstream's Try,
    /// a token is spent before the head's time is looked at.
    pub fn next_due(&mut self, now: Instant) -> Option<TimedValue> {
        let head = self.head()?.clone();
        if !self.limiter.try_accept(now) || now < head.process_at {
            return None;
        }
        Some(head)
    }

    /// Records the outcome of processing `value`: done (kept out until removed), or to be
    /// tried again `retry_after` from now.
    pub fn finish(&mut self, value: &TimedValue, retry_after: Option<Duration>, now: Instant) {
        match retry_after {
            None => self.queue.retain(|v| v.value != value.value),
            Some(wait) => {
                // Only if still queued: it may have been removed meanwhile.
                if let Some(v) = self.queue.iter_mut().find(|v| v.value == value.value) {
                    v.process_at = now + wait + Duration::from_nanos(1);
                }
            }
        }
    }

    /// Changes the rate; a waiting limiter's emptiness carries over (burst 1).
    pub fn swap_limiter(&mut self, qps: f32, now: Instant) {
        if self.limiter.qps() == qps {
            return;
        }
        let mut new = if qps <= 0.0 {
            Limiter::Never
        } else {
            Limiter::new(qps, now)
        };
        if !matches!(new, Limiter::Never) && !self.limiter.try_accept(now) {
            new.try_accept(now);
        }
        self.limiter = new;
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.queue.len()
    }

    #[cfg(test)]
    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    const S: Duration = Duration::from_secs(1);

    #[test]
    fn one_node_per_ten_seconds_at_the_default_rate() {
        let t0 = Instant::now();
        let mut q = RateLimitedTimedQueue::new(0.1, t0);
        assert!(q.add("a", "ua", t0));
        assert!(q.add("b", "ub", t0));
        assert!(!q.add("a", "ua", t0), "queued once");
        // The bucket starts full: one right away.
        let a = q.next_due(t0).unwrap();
        assert_eq!(a.value, "a");
        q.finish(&a, None, t0);
        assert_eq!(q.next_due(t0 + 5 * S), None, "no token yet");
        let b = q.next_due(t0 + 10 * S).unwrap();
        assert_eq!(b.value, "b");
        q.finish(&b, None, t0 + 10 * S);
        assert!(q.is_empty());
        // Processed values stay out until removed (the node was healthy again).
        assert!(!q.add("a", "ua", t0 + 20 * S));
        assert!(q.remove("a"));
        assert!(q.add("a", "ua", t0 + 20 * S));
        assert_eq!(q.len(), 1);
    }

    #[test]
    fn a_failed_attempt_is_retried_after_its_wait() {
        let t0 = Instant::now();
        let mut q = RateLimitedTimedQueue::new(10.0, t0);
        q.add("a", "ua", t0);
        let a = q.next_due(t0).unwrap();
        q.finish(&a, Some(Duration::from_millis(50)), t0);
        assert_eq!(q.head().unwrap().value, "a");
        assert_eq!(q.next_due(t0 + Duration::from_millis(40)), None);
        assert!(q.next_due(t0 + S).is_some());
        // Removed while being processed: the outcome changes nothing.
        q.remove("a");
        q.finish(&a, Some(Duration::ZERO), t0 + S);
        assert!(q.is_empty());
    }

    #[test]
    fn a_zero_rate_stops_and_a_new_rate_starts_drained_when_the_old_was() {
        let t0 = Instant::now();
        let mut q = RateLimitedTimedQueue::new(0.1, t0);
        q.add("a", "ua", t0);
        q.add("b", "ub", t0);
        q.swap_limiter(0.0, t0);
        assert_eq!(q.next_due(t0 + 100 * S), None, "stopped");
        // The stopped limiter never had a token: the new one starts drained.
        q.swap_limiter(0.1, t0 + 100 * S);
        assert_eq!(q.next_due(t0 + 100 * S), None);
        assert!(q.next_due(t0 + 110 * S).is_some());
        // That token was just spent: a new rate starts drained too.
        q.swap_limiter(1.0, t0 + 110 * S);
        assert_eq!(q.next_due(t0 + 110 * S), None);
        assert!(q.next_due(t0 + 111 * S).is_some());
        // The same rate again changes nothing.
        q.swap_limiter(1.0, t0 + 111 * S);
        assert!(q.next_due(t0 + 112 * S).is_some());
    }
}
