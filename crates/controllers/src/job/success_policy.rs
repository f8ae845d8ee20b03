//! `spec.successPolicy` (upstream's matchSuccessPolicy).

use super::*;

/// Upstream's matchSuccessPolicy: the message of the first rule the succeeded indexes meet.
pub(super) fn match_success_policy(
    job: &Job,
    completions: usize,
    succeeded: &Intervals,
) -> Option<String> {
    let policy = job.spec.as_ref()?.success_policy.as_ref()?;
    if succeeded.0.is_empty() {
        return None;
    }
    for (i, rule) in policy.rules.iter().enumerate() {
        let met = match (&rule.succeeded_indexes, rule.succeeded_count) {
            (Some(ixs), count) => {
                let required = Intervals::parse(ixs, completions);
                if required.0.is_empty() {
                    continue;
                }
                let contained = required.overlap(succeeded);
                contained == required.total()
                    || count.is_some_and(|c| contained >= c.max(0) as usize)
            }
            (None, Some(count)) => succeeded.total() >= count.max(0) as usize,
            (None, None) => false,
        };
        if met {
            return Some(format!("Matched rules at index {i}"));
        }
    }
    None
}
