//! CPU rates (`usageNanoCores`) from cAdvisor-style housekeeping: every cgroup's cumulative
//! CPU time is sampled on a fixed period by one task, and the rate between its last two
//! samples is what every reader gets — concurrent `/stats/summary` callers neither shorten each
//! other's window nor see a rate over a few milliseconds.

use std::collections::HashMap;
use std::time::Instant;

#[derive(Debug, Default)]
pub struct Rates {
    /// Last sample per cgroup: when, and the cumulative nanoseconds then.
    last: HashMap<String, (Instant, u64)>,
    /// Nanocores between the last two samples.
    rate: HashMap<String, u64>,
}

impl Rates {
    /// Records one housekeeping round taken at `at`; cgroups not in it are forgotten.
    pub fn record(&mut self, at: Instant, samples: impl IntoIterator<Item = (String, u64)>) {
        let mut last = HashMap::new();
        let mut rate = HashMap::new();
        for (name, usage) in samples {
            if let Some((t, prev)) = self.last.get(&name) {
                let dt = at.saturating_duration_since(*t).as_nanos();
                // A counter that went back is a new cgroup under an old name: no rate yet.
                if dt > 0 && usage >= *prev {
                    let r = u128::from(usage - prev) * 1_000_000_000 / dt;
                    rate.insert(name.clone(), u64::try_from(r).unwrap_or(u64::MAX));
                }
            }
            last.insert(name, (at, usage));
        }
        self.last = last;
        self.rate = rate;
    }

    /// The cgroup's latest rate; `None` before it has two samples.
    pub fn get(&self, name: &str) -> Option<u64> {
        self.rate.get(name).copied()
    }

    pub fn len(&self) -> usize {
        self.last.len()
    }

    pub fn is_empty(&self) -> bool {
        self.last.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn rate_is_between_the_last_two_samples() {
        let mut r = Rates::default();
        let t0 = Instant::now();
        r.record(t0, [("/a".to_owned(), 1_000), ("/b".to_owned(), 0)]);
        assert_eq!(r.get("/a"), None);
        // Half a core over 10 s.
        let t1 = t0 + Duration::from_secs(10);
        r.record(t1, [("/a".to_owned(), 1_000 + 5_000_000_000)]);
        assert_eq!(r.get("/a"), Some(500_000_000));
        assert_eq!(r.len(), 1, "/b is gone");
        // Idle since: 0, not absent.
        r.record(
            t1 + Duration::from_secs(10),
            [("/a".to_owned(), 5_000_001_000)],
        );
        assert_eq!(r.get("/a"), Some(0));
        // Reset counter: no rate.
        r.record(t1 + Duration::from_secs(20), [("/a".to_owned(), 10)]);
        assert_eq!(r.get("/a"), None);
    }
}
