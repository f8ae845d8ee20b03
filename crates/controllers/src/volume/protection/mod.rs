//! The storage-object-in-use protection controllers (upstream's `pvcprotection` and
//! `pvprotection`): each object carries its finalizer while it is not being deleted (added
//! here for objects admission did not give it to), and loses it, once deleted, only when
//! nothing uses it any more.

pub mod pv;
pub mod pvc;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

fn has_finalizer(meta: &ObjectMeta, finalizer: &str) -> bool {
    meta.finalizers.iter().flatten().any(|f| f == finalizer)
}

/// Being deleted and still holding `finalizer`: the controller decides whether it may go.
pub fn is_deletion_candidate(meta: &ObjectMeta, finalizer: &str) -> bool {
    meta.deletion_timestamp.is_some() && has_finalizer(meta, finalizer)
}

/// Not being deleted and without `finalizer`: it should get it.
pub fn needs_finalizer(meta: &ObjectMeta, finalizer: &str) -> bool {
    meta.deletion_timestamp.is_none() && !has_finalizer(meta, finalizer)
}

/// `meta`'s finalizers with `finalizer` added or removed.
pub fn with_finalizer(meta: &ObjectMeta, finalizer: &str, present: bool) -> Option<Vec<String>> {
    let mut list: Vec<String> = meta
        .finalizers
        .iter()
        .flatten()
        .filter(|f| *f != finalizer)
        .cloned()
        .collect();
    if present {
        list.push(finalizer.to_string());
    }
    (!list.is_empty()).then_some(list)
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    #[test]
    fn candidates_and_missing_finalizers() {
        let f = "kubernetes.io/pvc-protection";
        let mut meta = ObjectMeta::default();
        assert!(needs_finalizer(&meta, f));
        assert!(!is_deletion_candidate(&meta, f));
        meta.finalizers = with_finalizer(&meta, f, true);
        assert_eq!(meta.finalizers, Some(vec![f.to_string()]));
        assert!(!needs_finalizer(&meta, f));
        meta.deletion_timestamp = Some(Time(k8s_openapi::jiff::Timestamp::now()));
        assert!(is_deletion_candidate(&meta, f));
        assert_eq!(with_finalizer(&meta, f, false), None);
        meta.finalizers = Some(vec!["other".into(), f.into()]);
        assert_eq!(
            with_finalizer(&meta, f, false),
            Some(vec!["other".to_string()])
        );
    }
}
