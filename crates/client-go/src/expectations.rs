//! Controller expectations (Kubernetes' `ControllerExpectations`): after a controller asks
//! for pods to be created or deleted, it does not act on that owner again until its informer
//! has seen those changes (or a timeout passes), so a stale cache never makes it create or
//! delete twice.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// After this long, expectations are assumed lost (a missed watch event) and dropped.
const TIMEOUT: Duration = Duration::from_secs(300);

struct Expected {
    adds: i64,
    /// uids of pods whose deletion was asked for.
    deletes: HashSet<String>,
    at: Instant,
}

#[derive(Default)]
pub struct Expectations {
    by_owner: Mutex<HashMap<String, Expected>>,
}

impl Expectations {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Expected>> {
        self.by_owner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether the owner's last requests have all been observed.
    pub fn satisfied(&self, owner: &str) -> bool {
        match self.lock().get(owner) {
            None => true,
            Some(e) => (e.adds <= 0 && e.deletes.is_empty()) || e.at.elapsed() > TIMEOUT,
        }
    }

    /// Records that `adds` creations and the deletion of `deletes` are under way.
    pub fn expect(&self, owner: &str, adds: i64, deletes: impl IntoIterator<Item = String>) {
        self.lock().insert(
            owner.to_string(),
            Expected {
                adds,
                deletes: deletes.into_iter().collect(),
                at: Instant::now(),
            },
        );
    }

    /// Adds to what the owner waits for (a fresh start when it waited for nothing), for a
    /// controller that asks for changes one at a time within a sync.
    pub fn raise(&self, owner: &str, adds: i64, deletes: impl IntoIterator<Item = String>) {
        let mut m = self.lock();
        let e = m.entry(owner.to_string()).or_insert_with(|| Expected {
            adds: 0,
            deletes: HashSet::new(),
            at: Instant::now(),
        });
        if (e.adds <= 0 && e.deletes.is_empty()) || e.at.elapsed() > TIMEOUT {
            // Surplus observations (a relist) must not pay for future requests.
            e.adds = 0;
            e.deletes.clear();
        }
        e.adds += adds;
        e.deletes.extend(deletes);
        e.at = Instant::now();
    }

    /// A creation was seen (or failed, so it will never be seen).
    pub fn creation_observed(&self, owner: &str) {
        if let Some(e) = self.lock().get_mut(owner) {
            e.adds -= 1;
        }
    }

    /// A deletion was seen (or failed).
    pub fn deletion_observed(&self, owner: &str, uid: &str) {
        if let Some(e) = self.lock().get_mut(owner) {
            e.deletes.remove(uid);
        }
    }

    pub fn forget(&self, owner: &str) {
        self.lock().remove(owner);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn satisfied_once_everything_is_observed() {
        let e = Expectations::default();
        assert!(e.satisfied("ns/rs"));
        e.expect("ns/rs", 2, ["u1".to_string()]);
        assert!(!e.satisfied("ns/rs"));
        e.creation_observed("ns/rs");
        e.creation_observed("ns/rs");
        assert!(!e.satisfied("ns/rs"));
        e.deletion_observed("ns/rs", "u1");
        assert!(e.satisfied("ns/rs"));
    }

    #[test]
    fn raised_expectations_add_up_and_surplus_observations_do_not_count() {
        let e = Expectations::default();
        // An unexpected creation (a relist) leaves a negative count behind...
        e.creation_observed("ns/sts");
        e.expect("ns/sts", 0, []);
        e.creation_observed("ns/sts");
        // ...which must not satisfy the next request early.
        e.raise("ns/sts", 1, []);
        assert!(!e.satisfied("ns/sts"));
        e.raise("ns/sts", 0, ["u1".to_string()]);
        e.creation_observed("ns/sts");
        assert!(!e.satisfied("ns/sts"));
        e.deletion_observed("ns/sts", "u1");
        assert!(e.satisfied("ns/sts"));
    }
}
