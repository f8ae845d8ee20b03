//! Reclaim operations (delete, recycle) named per volume and uid, each retried after a failure
//! only once its exponential back-off has passed (upstream's goroutinemap with
//! exponentialbackoff: 500 ms doubling to 2 min 2 s), however often the volume is synced.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

const INITIAL: Duration = Duration::from_millis(500);
const MAX: Duration = Duration::from_secs(122);

struct Failed {
    backoff: Duration,
    retry_at: Instant,
}

#[derive(Default)]
pub struct Operations {
    failed: Mutex<HashMap<String, Failed>>,
}

impl Operations {
    /// `None` when `name` may run now; otherwise how long until it may.
    pub fn wait(&self, name: &str) -> Option<Duration> {
        let failed = self.failed.lock().unwrap_or_else(|e| e.into_inner());
        let f = failed.get(name)?;
        let now = Instant::now();
        (f.retry_at > now).then(|| f.retry_at - now)
    }

    /// Records how the operation ended: a success forgets it, a failure doubles its back-off.
    pub fn finished(&self, name: &str, ok: bool) {
        let mut failed = self.failed.lock().unwrap_or_else(|e| e.into_inner());
        if ok {
            failed.remove(name);
            return;
        }
        let backoff = failed
            .get(name)
            .map_or(INITIAL, |f| (f.backoff * 2).min(MAX));
        failed.insert(
            name.to_string(),
            Failed {
                backoff,
                retry_at: Instant::now() + backoff,
            },
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_back_off_and_success_forgets() {
        let ops = Operations::default();
        assert_eq!(ops.wait("delete-a"), None);
        ops.finished("delete-a", false);
        let w = ops.wait("delete-a");
        assert!(w.is_some_and(|w| w <= INITIAL), "{w:?}");
        ops.finished("delete-a", false);
        assert!(ops.wait("delete-a").is_some_and(|w| w > INITIAL));
        assert_eq!(ops.wait("delete-b"), None);
        ops.finished("delete-a", true);
        assert_eq!(ops.wait("delete-a"), None);
    }
}
