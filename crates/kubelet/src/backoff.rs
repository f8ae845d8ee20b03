//! Restart back-off (CrashLoopBackOff, ImagePullBackOff), with upstream's semantics: the first
//! restart is immediate, each later one waits twice as long (10 s up to 5 min) counted from the
//! container's exit, and an entry not used for twice the cap (10 min of running) starts over.

use std::collections::HashMap;
use std::time::{Duration, SystemTime};

#[derive(Debug)]
struct Entry {
    delay: Duration,
    /// The event (exit) time of the restart that set `delay`.
    last: SystemTime,
}

#[derive(Debug)]
pub struct Backoff {
    initial: Duration,
    max: Duration,
    entries: HashMap<String, Entry>,
}

impl Backoff {
    pub fn new(initial: Duration, max: Duration) -> Self {
        Backoff {
            initial,
            max,
            entries: HashMap::new(),
        }
    }

    fn expired(&self, e: &Entry, event: SystemTime) -> bool {
        event.duration_since(e.last).is_ok_and(|d| d > self.max * 2)
    }

    /// How much longer `key` must wait after an event (exit) at `event`; `None` when it may
    /// restart now.
    pub fn remaining(&self, key: &str, event: SystemTime, now: SystemTime) -> Option<Duration> {
        let e = self.entries.get(key)?;
        if self.expired(e, event) {
            return None;
        }
        let since = now.duration_since(event).unwrap_or_default();
        e.delay.checked_sub(since).filter(|d| !d.is_zero())
    }

    /// The current delay of `key` (for messages).
    pub fn delay(&self, key: &str) -> Duration {
        self.entries.get(key).map_or(self.initial, |e| e.delay)
    }

    /// Records a restart after an event at `event`: the next one waits longer.
    pub fn next(&mut self, key: &str, event: SystemTime) {
        let delay = match self.entries.get(key) {
            Some(e) if !self.expired(e, event) => (e.delay * 2).min(self.max),
            _ => self.initial,
        };
        self.entries
            .insert(key.to_owned(), Entry { delay, last: event });
    }

    pub fn reset(&mut self, key: &str) {
        self.entries.remove(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_from_the_exit_and_resets() {
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let s = Duration::from_secs;
        let mut b = Backoff::new(s(10), s(300));
        // First exit: restart at once.
        assert_eq!(b.remaining("c", t0, t0), None);
        b.next("c", t0);
        // Second exit at t0+1: wait 10 s from it.
        let t1 = t0 + s(1);
        assert_eq!(b.remaining("c", t1, t1 + s(4)), Some(s(6)));
        assert_eq!(b.remaining("c", t1, t1 + s(10)), None);
        b.next("c", t1);
        assert_eq!(b.delay("c"), s(20));
        for _ in 0..10 {
            b.next("c", t1);
        }
        assert_eq!(b.delay("c"), s(300));
        // An exit long after the last restart (it ran for > 10 min) starts over.
        let late = t1 + s(601);
        assert_eq!(b.remaining("c", late, late), None);
        b.next("c", late);
        assert_eq!(b.delay("c"), s(10));
    }
}
