//! A bounded map whose entries expire: the kubelet server's memory of TokenReview and
//! SubjectAccessReview answers (upstream keeps them in size-bounded caches with a time to
//! live per entry).

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

pub struct TtlCache<V> {
    entries: Mutex<HashMap<String, (Instant, V)>>,
    capacity: usize,
}

impl<V: Clone> TtlCache<V> {
    pub fn new(capacity: usize) -> Self {
        TtlCache {
            entries: Mutex::new(HashMap::new()),
            capacity: capacity.max(1),
        }
    }

    /// The live value under `key`.
    pub fn get(&self, key: &str) -> Option<V> {
        self.get_at(key, Instant::now())
    }

    /// Keeps `value` under `key` for `ttl` (a zero `ttl` keeps nothing).
    pub fn insert(&self, key: String, value: V, ttl: Duration) {
        self.insert_at(key, value, ttl, Instant::now());
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<String, (Instant, V)>> {
        // A panic elsewhere while holding the lock leaves only whole entries behind.
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn get_at(&self, key: &str, now: Instant) -> Option<V> {
        let mut map = self.lock();
        match map.get(key) {
            Some((until, v)) if *until > now => Some(v.clone()),
            Some(_) => {
                map.remove(key);
                None
            }
            None => None,
        }
    }

    fn insert_at(&self, key: String, value: V, ttl: Duration, now: Instant) {
        if ttl.is_zero() {
            return;
        }
        let mut map = self.lock();
        if map.len() >= self.capacity && !map.contains_key(&key) {
            map.retain(|_, (until, _)| *until > now);
            // Still full of live answers: the one closest to expiring makes room.
            if map.len() >= self.capacity
                && let Some(oldest) = map
                    .iter()
                    .min_by_key(|(_, (until, _))| *until)
                    .map(|(k, _)| k.clone())
            {
                map.remove(&oldest);
            }
        }
        map.insert(key, (now + ttl, value));
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.lock().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_expire_and_the_cache_stays_bounded() {
        let cache = TtlCache::new(2);
        let t0 = Instant::now();
        let s = Duration::from_secs;
        cache.insert_at("a".into(), 1, s(10), t0);
        cache.insert_at("b".into(), 2, s(5), t0);
        assert_eq!(cache.get_at("a", t0 + s(4)), Some(1));
        assert_eq!(cache.get_at("b", t0 + s(4)), Some(2));
        assert_eq!(cache.get_at("b", t0 + s(5)), None, "expired at its TTL");
        // Full of live entries: the one expiring first goes.
        cache.insert_at("b".into(), 2, s(5), t0);
        cache.insert_at("c".into(), 3, s(20), t0);
        assert_eq!(cache.len(), 2);
        assert_eq!(cache.get_at("b", t0), None);
        assert_eq!(cache.get_at("a", t0), Some(1));
        assert_eq!(cache.get_at("c", t0), Some(3));
        // Expired entries make room before live ones are dropped.
        cache.insert_at("d".into(), 4, s(1), t0 + s(15));
        assert_eq!(cache.get_at("c", t0 + s(15)), Some(3));
        assert_eq!(cache.get_at("d", t0 + s(15)), Some(4));
        cache.insert_at("e".into(), 5, Duration::ZERO, t0);
        assert_eq!(cache.get_at("e", t0), None, "a zero TTL keeps nothing");
    }
}
