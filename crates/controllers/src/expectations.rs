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
}
