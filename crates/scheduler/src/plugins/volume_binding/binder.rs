//! The node checks of VolumeBinding's Filter, and the volume binding its Reserve assumes and
//! its PreBind writes and waits for (upstream's `binder.go`).

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Instant;

use common::storage::annotations::{self, BOUND_BY_CONTROLLER, SELECTED_NODE};
use common::storage::matching::{self, NodeInfo as VolumeNode};
use common::storage::{claims, classes};
use k8s_openapi::api::core::v1::{PersistentVolume, PersistentVolumeClaim};
use kube::Api;
use kube::api::PostParams;

use super::assume_cache::newer;
use super::{
    ERR_BIND_CONFLICT, ERR_NODE_CONFLICT, ERR_PV_NOT_EXIST, PodVolumes, State, VolumeBinding,
    fully_bound,
};
use crate::framework::BindContext;
use crate::nodeinfo::NodeInfo;

/// How often PreBind looks again without a change seen (upstream polls every second).
const POLL: std::time::Duration = std::time::Duration::from_secs(1);

fn claim_key(c: &PersistentVolumeClaim) -> String {
    claims::claim_key(c)
}

/// The volume bound to the claim (upstream's GetBindVolumeToClaim): its claimRef names the
/// claim with its uid, marked bound by the controller when the scheduler chose it; `false`
/// when nothing had to change.
fn bind_volume_to_claim(
    volume: &PersistentVolume,
    claim: &PersistentVolumeClaim,
) -> (PersistentVolume, bool) {
    let mut v = volume.clone();
    let mut dirty = false;
    let should_set = claims::claim_ref(volume).is_none_or(|r| {
        r.name != claim.metadata.name
            || r.namespace != claim.metadata.namespace
            || r.uid != claim.metadata.uid
    });
    if should_set {
        let spec = v.spec.get_or_insert_with(Default::default);
        if spec.claim_ref.is_none() {
            annotations::set(&mut v.metadata, BOUND_BY_CONTROLLER, "yes");
        }
        spec.claim_ref = Some(claims::reference_to(claim));
        dirty = true;
    }
    (v, dirty)
}

impl VolumeBinding {
    /// What the pod needs on `node`, or why it cannot have it there (upstream's
    /// FindPodVolumes): the reasons are its ConflictReasons, an `Err` a broken class.
    pub(super) fn find_pod_volumes(
        &self,
        s: &State,
        node: &NodeInfo,
    ) -> Result<(PodVolumes, Vec<&'static str>), String> {
        let labels = node.labels();
        let here = VolumeNode {
            name: node.name(),
            labels,
        };
        let mut out = PodVolumes {
            node: node.name().to_string(),
            node_labels: labels.clone(),
            ..Default::default()
        };
        let mut reasons = Vec::new();
        for c in &s.bound {
            match self.volumes.get(claims::volume_name(c)) {
                None => {
                    reasons.push(ERR_PV_NOT_EXIST);
                    break;
                }
                Some(v) if !matching::check_node_affinity(&v, here) => {
                    reasons.push(ERR_NODE_CONFLICT);
                    break;
                }
                Some(_) => {}
            }
        }
        let mut to_find = Vec::new();
        let mut to_provision = Vec::new();
        for c in &s.delay {
            match annotations::get(&c.metadata, SELECTED_NODE) {
                // Already being provisioned for another node.
                Some(n) if n != node.name() => {
                    reasons.push(ERR_BIND_CONFLICT);
                    return Ok((out, reasons));
                }
                Some(_) => to_provision.push(c.clone()),
                None => to_find.push(c.clone()),
            }
        }
        let mut chosen = HashSet::new();
        for c in to_find {
            match matching::find_matching_volume(&c, &s.candidates, Some(here), Some(&chosen), true)
            {
                Some(v) => {
                    chosen.insert(claims::name(&v.metadata).to_string());
                    out.static_bindings.push((v.clone(), c));
                }
                None => to_provision.push(c),
            }
        }
        for c in to_provision {
            let class_name = claims::claim_class(&c);
            if class_name.is_empty() {
                return Err(format!("no class for claim {:?}", claim_key(&c)));
            }
            let Some(class) = self.class(class_name) else {
                return Err(format!("failed to find storage class {class_name:?}"));
            };
            if !classes::can_provision_for(&class, labels) {
                reasons.push(ERR_BIND_CONFLICT);
                break;
            }
            out.provisions.push(c);
        }
        Ok((out, reasons))
    }

    /// Assumes the node's bindings in the caches (upstream's AssumePodVolumes); returns them
    /// as assumed. On failure nothing stays assumed.
    pub(super) fn assume(&self, volumes: PodVolumes) -> Result<PodVolumes, String> {
        let mut out = PodVolumes {
            node: volumes.node.clone(),
            node_labels: volumes.node_labels.clone(),
            ..Default::default()
        };
        for (v, c) in &volumes.static_bindings {
            let (bound, dirty) = bind_volume_to_claim(v, c);
            let bound = Arc::new(bound);
            if dirty && let Err(e) = self.volumes.assume(bound.clone()) {
                self.revert(&out.static_bindings, &[]);
                return Err(e);
            }
            out.static_bindings.push((bound, c.clone()));
        }
        for c in &volumes.provisions {
            let mut claim = (**c).clone();
            annotations::set(&mut claim.metadata, SELECTED_NODE, &volumes.node);
            let claim = Arc::new(claim);
            if let Err(e) = self.claims.assume(claim.clone()) {
                self.revert(&out.static_bindings, &out.provisions);
                return Err(e);
            }
            out.provisions.push(claim);
        }
        Ok(out)
    }

    pub(super) fn revert(
        &self,
        bindings: &[(Arc<PersistentVolume>, Arc<PersistentVolumeClaim>)],
        provisions: &[Arc<PersistentVolumeClaim>],
    ) {
        for (v, _) in bindings {
            self.volumes.restore(claims::name(&v.metadata));
        }
        for c in provisions {
            self.claims.restore(&claim_key(c));
        }
    }

    /// Writes the assumed bindings and waits until the PV controller (and provisioner)
    /// have bound every claim (upstream's BindPodVolumes).
    pub(super) async fn bind_pod_volumes(
        &self,
        ctx: &BindContext<'_>,
        assumed: PodVolumes,
    ) -> Result<(), String> {
        let Some(client) = self.client.clone() else {
            return Err("no API client to bind volumes with".into());
        };
        let mut bindings = Vec::new();
        for (v, c) in &assumed.static_bindings {
            let api: Api<PersistentVolume> = Api::all(client.clone());
            let name = claims::name(&v.metadata);
            tracing::debug!(volume = name, claim = %claim_key(c), "pre-binding volume to claim");
            let written = api
                .replace(name, &PostParams::default(), v)
                .await
                .map_err(|e| format!("binding volume {name:?} to its claim: {e}"))?;
            bindings.push((Arc::new(written), c.clone()));
        }
        let mut provisions = Vec::new();
        for c in &assumed.provisions {
            let ns = c.metadata.namespace.as_deref().unwrap_or_default();
            let api: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), ns);
            let name = claims::name(&c.metadata);
            tracing::debug!(claim = %claim_key(c), node = ctx.node, "asking for provisioning");
            let written = api
                .replace(name, &PostParams::default(), c)
                .await
                .map_err(|e| format!("selecting node for claim {:?}: {e}", claim_key(c)))?;
            provisions.push(Arc::new(written));
        }
        let deadline = Instant::now() + self.bind_timeout;
        let mut changed = self.changed.subscribe();
        loop {
            if !(ctx.pod_exists)() {
                return Err("binding volumes: pod does not exist any more".into());
            }
            match self.check_bindings(&bindings, &provisions, ctx.node, &assumed) {
                Ok(true) => return Ok(()),
                Ok(false) => {}
                Err(e) => return Err(format!("binding volumes: {e}")),
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err("binding volumes: context deadline exceeded".into());
            }
            let _ = tokio::time::timeout(left.min(POLL), changed.changed()).await;
        }
    }

    /// Whether every claim is bound now, or an error when binding was undone and scheduling
    /// must start over (upstream's checkBindings; on the API's objects, not assumptions).
    fn check_bindings(
        &self,
        bindings: &[(Arc<PersistentVolume>, Arc<PersistentVolumeClaim>)],
        provisions: &[Arc<PersistentVolumeClaim>],
        node: &str,
        assumed: &PodVolumes,
    ) -> Result<bool, String> {
        let here = VolumeNode {
            name: node,
            labels: &assumed.node_labels,
        };
        for (written, claim) in bindings {
            let name = claims::name(&written.metadata);
            let key = claim_key(claim);
            let pv = self
                .volumes
                .get_api(name)
                .ok_or_else(|| format!("failed to check binding: pv {name:?} not found"))?;
            let pvc = self
                .claims
                .get_api(&key)
                .ok_or_else(|| format!("failed to check binding: pvc {key:?} not found"))?;
            // Our write has not come back through the watch yet.
            if newer(written.as_ref(), pv.as_ref()) {
                return Ok(false);
            }
            if !matching::check_node_affinity(&pv, here) {
                return Err(format!(
                    "pv {name:?} node affinity doesn't match node {node:?}"
                ));
            }
            if claims::claim_ref(&pv)
                .is_none_or(|r| r.uid.as_deref().unwrap_or_default().is_empty())
            {
                return Err(format!("ClaimRef got reset for pv {name:?}"));
            }
            if !fully_bound(&pvc) {
                return Ok(false);
            }
        }
        for written in provisions {
            let key = claim_key(written);
            let pvc = self
                .claims
                .get_api(&key)
                .ok_or_else(|| format!("failed to check provisioning pvc: {key:?} not found"))?;
            if newer(written.as_ref(), pvc.as_ref()) {
                return Ok(false);
            }
            let name = claims::name(&pvc.metadata);
            // A provisioner that gives up removes the annotation to send the pod back.
            match annotations::get(&pvc.metadata, SELECTED_NODE) {
                None if pvc.metadata.annotations.is_none() => {
                    return Err(format!("selectedNode annotation reset for PVC {name:?}"));
                }
                Some(n) if n == node => {}
                _ => return Err(format!("provisioning failed for PVC {name:?}")),
            }
            let volume = claims::volume_name(&pvc);
            if !volume.is_empty() {
                let Some(pv) = self.volumes.get_api(volume) else {
                    return Ok(false);
                };
                if !matching::check_node_affinity(&pv, here) {
                    return Err(format!(
                        "pv {volume:?} node affinity doesn't match node {node:?}"
                    ));
                }
            }
            if !fully_bound(&pvc) {
                return Ok(false);
            }
        }
        Ok(true)
    }
}
