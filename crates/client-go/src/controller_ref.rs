//! Adoption and release (upstream's `ControllerRefManager`, `pkg/controller/
//! controller_ref_manager.go`): an owner claims the objects its selector matches. An orphan
//! that matches is adopted (a controller reference patched in, with a uid precondition, after
//! one fresh read shows the owner is not being deleted); an object it controls that no longer
//! matches is released (the reference patched out), unless the owner is being deleted; an
//! object another controller owns is left alone. ReplicaSets, StatefulSets, Jobs (pods) and
//! Deployments (ReplicaSets) all claim through this.

use std::fmt::Debug;
use std::future::Future;
use std::sync::Arc;

use anyhow::Context as _;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::api::{Patch, PatchParams};
use kube::{Api, Resource};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use crate::informer::controller_of;

/// What one owner claims with.
pub struct ControllerRefManager<'a> {
    /// The owner's metadata (its uid, whether it is being deleted).
    pub owner: &'a ObjectMeta,
    /// The controller reference adoption writes.
    pub owner_ref: OwnerReference,
    /// Extra `metadata` fields for the adoption patch (the Job's tracking finalizer).
    pub adopt_metadata: Option<Value>,
    /// Extra `metadata` fields for the release patch.
    pub release_metadata: Option<Value>,
}

impl<'a> ControllerRefManager<'a> {
    pub fn new(owner: &'a ObjectMeta, owner_ref: OwnerReference) -> Self {
        ControllerRefManager {
            owner,
            owner_ref,
            adopt_metadata: None,
            release_metadata: None,
        }
    }

    /// The candidates the owner controls after adoption and release. `matches` says whether
    /// the owner's selector (and any other rule of the kind) selects an object;
    /// `owner_still_adoptable` is asked once, before the first adoption (upstream's
    /// `RecheckDeletionTimestamp`: a fresh read of the owner, not the cache's).
    pub async fn claim<K, M, R, Fut>(
        &self,
        api: &Api<K>,
        candidates: Vec<Arc<K>>,
        matches: M,
        owner_still_adoptable: R,
    ) -> anyhow::Result<Vec<Arc<K>>>
    where
        K: Resource + Clone + DeserializeOwned + Debug,
        M: Fn(&K) -> bool,
        R: FnOnce() -> Fut,
        Fut: Future<Output = anyhow::Result<bool>>,
    {
        let uid = self.owner.uid.clone().unwrap_or_default();
        let deleting = self.owner.deletion_timestamp.is_some();
        let mut recheck = Some(owner_still_adoptable);
        let mut may_adopt: Option<bool> = None;
        let mut claimed = Vec::new();
        for obj in candidates {
            match controller_of(obj.as_ref()) {
                Some(r) if r.uid == uid => {
                    if matches(&obj) {
                        claimed.push(obj);
                    } else if !deleting {
                        self.release(api, obj.meta(), &uid).await?;
                    }
                }
                Some(_) => {}
                None if matches(&obj) && !deleting && obj.meta().deletion_timestamp.is_none() => {
                    if may_adopt.is_none()
                        && let Some(check) = recheck.take()
                    {
                        may_adopt = Some(check().await?);
                    }
                    if may_adopt != Some(true) {
                        continue;
                    }
                    if let Some(adopted) = self.adopt(api, obj.meta()).await? {
                        claimed.push(Arc::new(adopted));
                    }
                }
                None => {}
            }
        }
        Ok(claimed)
    }

    /// Makes the owner the controller of an orphan; the uid precondition turns a replaced
    /// object into a conflict. `None` when it is gone or changed meanwhile (the next sync
    /// sees the truth).
    async fn adopt<K>(&self, api: &Api<K>, meta: &ObjectMeta) -> anyhow::Result<Option<K>>
    where
        K: Clone + DeserializeOwned + Debug,
    {
        let mut metadata = json!({"ownerReferences": [&self.owner_ref], "uid": meta.uid});
        merge(&mut metadata, self.adopt_metadata.as_ref());
        patch_metadata(api, meta, metadata, &[404, 409])
            .await
            .context("adopting")
    }

    /// Removes the controller reference to `owner_uid`.
    async fn release<K>(
        &self,
        api: &Api<K>,
        meta: &ObjectMeta,
        owner_uid: &str,
    ) -> anyhow::Result<()>
    where
        K: Clone + DeserializeOwned + Debug,
    {
        let mut metadata = json!({
            "ownerReferences": [{"$patch": "delete", "uid": owner_uid}],
            "uid": meta.uid,
        });
        merge(&mut metadata, self.release_metadata.as_ref());
        patch_metadata(api, meta, metadata, &[404, 409, 422])
            .await
            .context("releasing")?;
        Ok(())
    }
}

/// A strategic merge patch of `metadata` onto the object; `None` for an answer in `gone`
/// (the object is gone or changed meanwhile).
async fn patch_metadata<K>(
    api: &Api<K>,
    meta: &ObjectMeta,
    metadata: Value,
    gone: &[u16],
) -> anyhow::Result<Option<K>>
where
    K: Clone + DeserializeOwned + Debug,
{
    let name = meta.name.as_deref().unwrap_or_default();
    match api
        .patch(
            name,
            &PatchParams::default(),
            &Patch::Strategic(json!({ "metadata": metadata })),
        )
        .await
    {
        Ok(o) => Ok(Some(o)),
        Err(kube::Error::Api(e)) if gone.contains(&e.code) => Ok(None),
        Err(e) => Err(e).with_context(|| format!("patching {name}")),
    }
}

fn merge(into: &mut Value, extra: Option<&Value>) {
    if let (Some(into), Some(Value::Object(extra))) = (into.as_object_mut(), extra) {
        for (k, v) in extra {
            into.insert(k.clone(), v.clone());
        }
    }
}

/// Upstream's `RecheckDeletionTimestamp`: a fresh read of the owner `name` shows it is the
/// same object (`uid`) and not being deleted.
pub async fn owner_not_deleting<K>(api: &Api<K>, name: &str, uid: &str) -> anyhow::Result<bool>
where
    K: Resource + Clone + DeserializeOwned + Debug,
{
    let fresh = api
        .get(name)
        .await
        .with_context(|| format!("rechecking {name}"))?;
    Ok(fresh.meta().uid.as_deref() == Some(uid) && fresh.meta().deletion_timestamp.is_none())
}
