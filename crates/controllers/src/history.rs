//! ControllerRevisions (Kubernetes' `pkg/controller/history`), shared by the DaemonSet and
//! StatefulSet controllers: each revision stores a strategic merge patch that puts one pod
//! template back, which is what `kubectl rollout undo` applies and `kubectl rollout history`
//! shows; the newest revision number is the template in force.

use std::sync::Arc;

use anyhow::Context;
use k8s_openapi::api::apps::v1::ControllerRevision;
use k8s_openapi::api::core::v1::PodTemplateSpec;
use kube::Api;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use serde_json::{Value, json};

use client_go::informer::{Informer, controller_of};

/// The label naming a revision on revisions and on the pods made from them.
pub const REVISION_HASH: &str = "controller-revision-hash";

/// FNV-1a (32-bit), as Kubernetes hashes templates and revisions.
fn fnv32a(bytes: &[u8]) -> u32 {
    let mut h: u32 = 0x811c9dc5;
    for b in bytes {
        h ^= u32::from(*b);
        h = h.wrapping_mul(0x01000193);
    }
    h
}

/// A hash of `bytes` as Kubernetes spells it (digits mapped to "safe" characters, so a name
/// never spells words), varied by a collision count.
pub fn safe_hash(bytes: &[u8], collision_count: Option<i32>) -> String {
    let mut bytes = bytes.to_vec();
    if let Some(c) = collision_count {
        bytes.extend_from_slice(c.to_string().as_bytes());
    }
    const SAFE: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    fnv32a(&bytes)
        .to_string()
        .bytes()
        .map(|b| SAFE[usize::from(b) % SAFE.len()] as char)
        .collect()
}

/// What a revision stores: `{"spec": {"template": {..., "$patch": "replace"}}}`, the patch
/// kubectl applies as is to roll back (the directive sits on the template, so only the
/// template is replaced).
pub fn template_patch(template: &PodTemplateSpec) -> Value {
    let mut t = serde_json::to_value(template).unwrap_or_else(|_| json!({}));
    if let Some(m) = t.as_object_mut() {
        m.insert("$patch".into(), json!("replace"));
    }
    json!({"spec": {"template": t}})
}

/// The template a revision stores, if it stores one.
pub fn template_of(rev: &ControllerRevision) -> Option<PodTemplateSpec> {
    let mut t = rev.data.as_ref()?.0.pointer("/spec/template")?.clone();
    t.as_object_mut()?.remove("$patch");
    serde_json::from_value(t).ok()
}

/// The revision's `controller-revision-hash` label.
pub fn hash_of(rev: &ControllerRevision) -> Option<&str> {
    rev.metadata
        .labels
        .as_ref()?
        .get(REVISION_HASH)
        .map(String::as_str)
}

/// The revisions an owner controls, oldest (lowest number) first.
pub fn owned(
    revisions: &Informer<ControllerRevision>,
    namespace: &str,
    owner_uid: &str,
) -> Vec<Arc<ControllerRevision>> {
    let mut v: Vec<Arc<ControllerRevision>> = revisions
        .list_namespace(namespace)
        .into_iter()
        .filter(|r| controller_of(r.as_ref()).is_some_and(|o| o.uid == owner_uid))
        .collect();
    v.sort_by(|a, b| {
        a.revision
            .cmp(&b.revision)
            .then_with(|| a.metadata.name.cmp(&b.metadata.name))
    });
    v
}

/// Makes the revision `want` describes the newest of `owned` (sorted, as `owned` returns
/// them): an equal one (`same`) is returned as is when newest, renumbered past the others
/// otherwise (a rollback); with none, `want` is created with the next number. `None` when
/// `want`'s name is taken by a different revision (retry with a higher collision count).
pub async fn make_newest(
    api: &Api<ControllerRevision>,
    owned: &[Arc<ControllerRevision>],
    owner_uid: &str,
    same: impl Fn(&ControllerRevision) -> bool,
    mut want: ControllerRevision,
) -> anyhow::Result<Option<ControllerRevision>> {
    let next = owned.last().map_or(1, |r| r.revision + 1);
    if let Some(r) = owned.iter().rev().find(|r| same(r)) {
        if r.revision + 1 == next {
            return Ok(Some(r.as_ref().clone()));
        }
        let name = r.metadata.name.clone().unwrap_or_default();
        tracing::debug!(revision = %name, number = next, "renumbering a ControllerRevision");
        let r = api
            .patch(
                &name,
                &PatchParams::default(),
                &Patch::Merge(json!({"revision": next})),
            )
            .await
            .with_context(|| format!("renumbering ControllerRevision {name}"))?;
        return Ok(Some(r));
    }
    want.revision = next;
    match api.create(&PostParams::default(), &want).await {
        Ok(r) => Ok(Some(r)),
        Err(kube::Error::Api(e)) if e.code == 409 => {
            // Ours but not yet in the cache, or a different revision with the same name.
            let name = want.metadata.name.clone().unwrap_or_default();
            let existing = api
                .get(&name)
                .await
                .with_context(|| format!("reading ControllerRevision {name}"))?;
            let ours = controller_of(&existing).is_some_and(|o| o.uid == owner_uid);
            if ours && same(&existing) {
                Ok(Some(existing))
            } else {
                Ok(None)
            }
        }
        Err(e) => Err(e).context("creating a ControllerRevision"),
    }
}

/// Deletes the oldest of `owned` that `live` does not protect, until at most `limit` of
/// those remain.
pub async fn truncate(
    api: &Api<ControllerRevision>,
    owned: &[Arc<ControllerRevision>],
    live: impl Fn(&ControllerRevision) -> bool,
    limit: usize,
) -> anyhow::Result<()> {
    let mut old: Vec<&Arc<ControllerRevision>> = owned.iter().filter(|r| !live(r)).collect();
    if old.len() <= limit {
        return Ok(());
    }
    old.sort_by_key(|r| r.revision);
    for r in &old[..old.len() - limit] {
        let name = r.metadata.name.clone().unwrap_or_default();
        match api.delete(&name, &DeleteParams::default()).await {
            Ok(_) => tracing::debug!(revision = %name, "deleted an old ControllerRevision"),
            Err(kube::Error::Api(e)) if e.code == 404 => {}
            Err(e) => {
                return Err(e).with_context(|| format!("deleting ControllerRevision {name}"));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_are_stable_safe_and_varied_by_collisions() {
        let h = safe_hash(b"abc", None);
        assert_eq!(h, safe_hash(b"abc", None));
        assert_ne!(h, safe_hash(b"abc", Some(1)));
        assert!(h.chars().all(|c| "bcdfghjklmnpqrstvwxz2456789".contains(c)));
    }

    #[test]
    fn a_revision_replaces_only_the_template_and_gives_it_back() {
        let t: PodTemplateSpec = serde_json::from_value(json!({
            "metadata": {"labels": {"app": "web"}},
            "spec": {"containers": [{"name": "c", "image": "nginx:1.27"}]}
        }))
        .unwrap();
        let data = template_patch(&t);
        assert_eq!(data["spec"]["template"]["$patch"], "replace");
        assert!(data["spec"].get("$patch").is_none());
        let rev = ControllerRevision {
            data: Some(k8s_openapi::apimachinery::pkg::runtime::RawExtension(data)),
            ..Default::default()
        };
        assert_eq!(template_of(&rev), Some(t));
    }
}
