//! Indexed completion mode: completion indexes and their text form, failed indexes with
//! `backoffLimitPerIndex`, and per-index back-off.

use super::*;

/// Annotations on an index's pods with the failures of that index before them (upstream's
/// JobIndexFailureCountAnnotation / JobIndexIgnoredFailureCountAnnotation).
pub const INDEX_FAILURE_COUNT: &str = "batch.kubernetes.io/job-index-failure-count";
pub const INDEX_IGNORED_FAILURE_COUNT: &str = "batch.kubernetes.io/job-index-ignored-failure-count";

pub(super) fn has_backoff_limit_per_index(job: &Job) -> bool {
    job.spec
        .as_ref()
        .and_then(|s| s.backoff_limit_per_index)
        .is_some()
}

pub(super) fn annotation_count(pod: &Pod, key: &str) -> i32 {
    pod.metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(key))
        .and_then(|v| v.parse::<i32>().ok())
        .filter(|n| *n >= 0)
        .unwrap_or(0)
}

/// Failures and ignored failures of the pod's index before it.
pub(super) fn index_absolute_failure_count(pod: &Pod) -> i32 {
    annotation_count(pod, INDEX_FAILURE_COUNT) + annotation_count(pod, INDEX_IGNORED_FAILURE_COUNT)
}

/// Whether this failed pod fails its index: a FailIndex rule, or a counted failure past
/// backoffLimitPerIndex.
pub(super) fn is_index_failed(job: &Job, pod: &Pod) -> bool {
    if !pod_failed(pod, only_replace_failed(job)) {
        return false;
    }
    let (_, counts, action) = match_pod_failure_policy(job, pod);
    if action == Some(PolicyAction::FailIndex) {
        return true;
    }
    let limit = spec(job).backoff_limit_per_index.unwrap_or(0);
    counts && annotation_count(pod, INDEX_FAILURE_COUNT) >= limit
}

/// `status.failedIndexes` with the indexes the pods now fail added.
pub(super) fn failed_indexes(job: &Job, all: &[Arc<Pod>], completions: usize) -> Intervals {
    let prev = Intervals::parse(
        job.status
            .as_ref()
            .and_then(|s| s.failed_indexes.as_deref())
            .unwrap_or_default(),
        completions,
    );
    let mut new: Vec<usize> = all
        .iter()
        .filter(|p| is_index_failed(job, p))
        .filter_map(|p| completion_index(p))
        .filter(|ix| *ix < completions && !prev.has(*ix))
        .collect();
    new.sort_unstable();
    new.dedup();
    prev.with(&new)
}

/// Per index still to be retried, its last failed pod: kept (with its finalizer) until the
/// replacement exists, which takes its failure counts from it.
pub(super) fn pods_with_delayed_deletion(
    job: &Job,
    all: &[Arc<Pod>],
    active: &[Arc<Pod>],
    succeeded: &Intervals,
    failed: &Intervals,
    completions: usize,
) -> BTreeMap<usize, Arc<Pod>> {
    let only_failed = only_replace_failed(job);
    let active_ix: HashSet<usize> = active.iter().filter_map(|p| completion_index(p)).collect();
    let mut out: BTreeMap<usize, Arc<Pod>> = BTreeMap::new();
    for p in all.iter().filter(|p| pod_failed(p, only_failed)) {
        let Some(ix) = completion_index(p).filter(|ix| *ix < completions) else {
            continue;
        };
        if succeeded.has(ix) || failed.has(ix) || active_ix.contains(&ix) {
            continue;
        }
        let replace = out.get(&ix).is_none_or(|last| {
            index_absolute_failure_count(last) <= index_absolute_failure_count(p)
                && finished_time(p) >= finished_time(last)
        });
        if replace {
            out.insert(ix, p.clone());
        }
    }
    out
}

/// The failure counts a replacement of `replaced` (the index's last failed pod) starts
/// with.
pub(super) fn new_index_failure_counts(job: &Job, replaced: Option<&Pod>) -> (i32, i32) {
    let Some(p) = replaced else {
        return (0, 0);
    };
    let (mut failures, mut ignored) = (
        annotation_count(p, INDEX_FAILURE_COUNT),
        annotation_count(p, INDEX_IGNORED_FAILURE_COUNT),
    );
    if match_pod_failure_policy(job, p).1 {
        failures += 1;
    } else {
        ignored += 1;
    }
    (failures, ignored)
}

/// Back-off left before an index whose last pod failed is retried: 10 s doubling per
/// failure of the index, capped.
pub(super) fn index_backoff_remaining(last_failed: Option<&Pod>, now: Timestamp) -> Duration {
    let Some(p) = last_failed else {
        return Duration::ZERO;
    };
    Backoff {
        failures: (index_absolute_failure_count(p) + 1) as u32,
        last_failure: Some(finished_time(p)),
    }
    .remaining(now)
}

/// Completion indexes as `status.completedIndexes` writes them: "1,3-5,7" (runs of three or
/// more as ranges).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Intervals(pub(super) Vec<(usize, usize)>);

impl Intervals {
    /// Parses the text form, ignoring what is corrupt and what is not below `completions`.
    pub fn parse(s: &str, completions: usize) -> Intervals {
        let mut out: Vec<(usize, usize)> = Vec::new();
        for part in s.split(',').filter(|p| !p.is_empty()) {
            let (first, last) = match part.split_once('-') {
                Some((a, b)) => (a.parse::<usize>(), b.parse::<usize>()),
                None => (part.parse(), part.parse()),
            };
            let (Ok(first), Ok(last)) = (first, last) else {
                tracing::info!(interval = part, "corrupted indexes interval, ignoring");
                continue;
            };
            if first >= completions {
                break;
            }
            let last = last.min(completions - 1);
            match out.last_mut() {
                Some(prev) if prev.1 + 1 == first => prev.1 = last,
                _ => out.push((first, last)),
            }
        }
        Intervals(out)
    }

    /// These intervals with `indexes` (in increasing order) added.
    pub fn with(&self, indexes: &[usize]) -> Intervals {
        self.merge(&Intervals(indexes.iter().map(|i| (*i, *i)).collect()))
    }

    pub(super) fn merge(&self, other: &Intervals) -> Intervals {
        let mut all: Vec<(usize, usize)> = self.0.iter().chain(other.0.iter()).copied().collect();
        all.sort();
        let mut out: Vec<(usize, usize)> = Vec::new();
        for (first, last) in all {
            match out.last_mut() {
                Some(prev) if first <= prev.1 + 1 => prev.1 = prev.1.max(last),
                _ => out.push((first, last)),
            }
        }
        Intervals(out)
    }

    pub fn total(&self) -> usize {
        self.0.iter().map(|(a, b)| b - a + 1).sum()
    }

    pub fn has(&self, ix: usize) -> bool {
        self.0.iter().any(|(a, b)| *a <= ix && ix <= *b)
    }

    /// How many indexes the two have in common.
    pub(super) fn overlap(&self, other: &Intervals) -> usize {
        let mut n = 0;
        for (a, b) in &self.0 {
            for (c, d) in &other.0 {
                let (lo, hi) = ((*a).max(*c), (*b).min(*d));
                if lo <= hi {
                    n += hi - lo + 1;
                }
            }
        }
        n
    }
}

impl fmt::Display for Intervals {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, (first, last)) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{first}")?;
            if last > first {
                let sep = if *last == first + 1 { "," } else { "-" };
                write!(f, "{sep}{last}")?;
            }
        }
        Ok(())
    }
}
