//! How long a pod may stay on a node with NoExecute taints: not at all unless every taint is
//! tolerated, then for the shortest `tolerationSeconds` of the tolerations used (forever
//! when none has one).

use std::time::Duration;

use k8s_openapi::api::core::v1::{Taint, Toleration};

use common::scheduling::tolerates;

pub fn no_execute_taints(taints: &[Taint]) -> Vec<Taint> {
    taints
        .iter()
        .filter(|t| t.effect == "NoExecute")
        .cloned()
        .collect()
}

/// For each taint the first toleration that tolerates it; `None` when some taint is not
/// tolerated (upstream's GetMatchingTolerations).
pub fn matching_tolerations<'a>(
    taints: &[Taint],
    tolerations: &'a [Toleration],
) -> Option<Vec<&'a Toleration>> {
    taints
        .iter()
        .map(|taint| tolerations.iter().find(|t| tolerates(t, taint)))
        .collect()
}

/// How long the pod may stay: `Some(ZERO)` when it must go now, `None` when it may stay
/// forever.
pub fn min_toleration_time(used: &[&Toleration]) -> Option<Duration> {
    if used.is_empty() {
        return Some(Duration::ZERO);
    }
    let min = used.iter().filter_map(|t| t.toleration_seconds).min()?;
    Some(Duration::from_secs(u64::try_from(min).unwrap_or(0)))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn taint(key: &str) -> Taint {
        Taint {
            key: key.into(),
            effect: "NoExecute".into(),
            ..Default::default()
        }
    }

    fn tol(key: &str, secs: Option<i64>) -> Toleration {
        Toleration {
            key: Some(key.into()),
            operator: Some("Exists".into()),
            effect: Some("NoExecute".into()),
            toleration_seconds: secs,
            ..Default::default()
        }
    }

    fn time_for(taints: &[Taint], tolerations: &[Toleration]) -> Option<Option<Duration>> {
        matching_tolerations(taints, tolerations).map(|used| min_toleration_time(&used))
    }

    #[test]
    fn toleration_timing() {
        let unreachable = taint("node.kubernetes.io/unreachable");
        let other = taint("dedicated");
        let secs = Duration::from_secs;
        let just = std::slice::from_ref(&unreachable);
        // Untolerated: evicted now.
        assert_eq!(time_for(just, &[]), None);
        assert_eq!(
            time_for(
                &[unreachable.clone(), other.clone()],
                &[tol("dedicated", None)]
            ),
            None
        );
        // Tolerated for a while, or forever.
        assert_eq!(
            time_for(just, &[tol("node.kubernetes.io/unreachable", Some(2))]),
            Some(Some(secs(2)))
        );
        assert_eq!(
            time_for(just, &[tol("node.kubernetes.io/unreachable", None)]),
            Some(None)
        );
        // The shortest of the tolerations used; a forever toleration does not extend it.
        assert_eq!(
            time_for(
                &[unreachable.clone(), other.clone()],
                &[
                    tol("node.kubernetes.io/unreachable", Some(300)),
                    tol("dedicated", Some(20)),
                ]
            ),
            Some(Some(secs(20)))
        );
        assert_eq!(
            time_for(
                &[unreachable.clone(), other],
                &[
                    tol("node.kubernetes.io/unreachable", Some(30)),
                    tol("dedicated", None)
                ]
            ),
            Some(Some(secs(30)))
        );
        // Zero or negative seconds: now. Only the first matching toleration counts.
        assert_eq!(
            time_for(just, &[tol("node.kubernetes.io/unreachable", Some(-5))]),
            Some(Some(Duration::ZERO))
        );
        assert_eq!(
            time_for(
                &[unreachable],
                &[
                    tol("node.kubernetes.io/unreachable", None),
                    tol("node.kubernetes.io/unreachable", Some(1)),
                ]
            ),
            Some(None)
        );
        let mixed = [
            taint("a"),
            Taint {
                effect: "NoSchedule".into(),
                ..taint("b")
            },
        ];
        assert_eq!(no_execute_taints(&mixed), vec![taint("a")]);
    }
}
