//! VolumeBinding (upstream's `plugins/volumebinding`): a pod's claims decide where it may run.
//!
//! - PreFilter: every claim the pod uses must exist (an ephemeral one made for this pod) and
//!   not be going away; claims of Immediate classes must already be bound.
//! - Filter: a bound claim's volume must admit the node (`nodeAffinity`, as `local` volumes
//!   have); each unbound WaitForFirstConsumer claim needs an Available volume that matches it
//!   and admits the node (the PV controller's own matcher, `common::storage::matching`) or a
//!   class whose provisioner can provision for the node (`allowedTopologies`).
//! - Reserve: the chosen volumes are assumed pre-bound to their claims and the claims to
//!   provision assumed annotated with the node, so the next pods' cycles do not take them.
//! - PreBind: as upstream's binder, the scheduler writes those API changes itself — the
//!   volume's `claimRef` (the PV controller then completes the binding) and the claim's
//!   `volume.kubernetes.io/selected-node` (the provisioner then makes its volume) — and waits,
//!   at most the bind timeout, until every claim is bound before the pod is.
//!
//! `assume_cache.rs` holds the scheduler's view of volumes and claims, `binder.rs` the node
//! checks and the binding writes.

mod assume_cache;
mod binder;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use client_go::informer::{Change, Informer, key_of};
use common::storage::{annotations, claims, classes, pods};
use futures::future::BoxFuture;
use k8s_openapi::api::core::v1::{PersistentVolume, PersistentVolumeClaim, Pod};
use k8s_openapi::api::storage::v1::StorageClass;
use kube::Client;

pub use assume_cache::AssumeCache;

use crate::framework::{BindContext, CycleState, Plugin, Requeue, Snapshot, Status};
use crate::nodeinfo::NodeInfo;

pub const NAME: &str = "VolumeBinding";
pub const ERR_BIND_CONFLICT: &str = "node(s) didn't find available persistent volumes to bind";
pub const ERR_NODE_CONFLICT: &str = "node(s) had volume node affinity conflict";
pub const ERR_PV_NOT_EXIST: &str =
    "node(s) unavailable due to one or more pvc(s) bound to non-existent pv(s)";
pub const ERR_UNBOUND_IMMEDIATE: &str = "pod has unbound immediate PersistentVolumeClaims";
/// Upstream's VolumeBindingArgs `bindTimeoutSeconds` default.
pub const DEFAULT_BIND_TIMEOUT: Duration = Duration::from_secs(600);

const KEY: &str = NAME;

/// What one pod needs on one node: volumes to pre-bind to claims, claims to provision.
#[derive(Clone, Default)]
struct PodVolumes {
    node: String,
    static_bindings: Vec<(Arc<PersistentVolume>, Arc<PersistentVolumeClaim>)>,
    provisions: Vec<Arc<PersistentVolumeClaim>>,
    node_labels: BTreeMap<String, String>,
}

/// The cycle's state: the pod's claims by kind, and what each feasible node would need.
struct State {
    bound: Vec<Arc<PersistentVolumeClaim>>,
    /// Unbound claims of WaitForFirstConsumer classes, smallest request first.
    delay: Vec<Arc<PersistentVolumeClaim>>,
    /// The volumes of those claims' classes, as the cycle began.
    candidates: Vec<Arc<PersistentVolume>>,
    by_node: Mutex<HashMap<String, PodVolumes>>,
    /// What Reserve assumed (None: nothing to bind).
    reserved: Mutex<Option<PodVolumes>>,
}

pub struct VolumeBinding {
    client: Option<Client>,
    bind_timeout: Duration,
    claims: AssumeCache<PersistentVolumeClaim>,
    volumes: AssumeCache<PersistentVolume>,
    classes: RwLock<HashMap<String, Arc<StorageClass>>>,
    /// Bumped on every claim, volume or class change (PreBind waits on it).
    changed: tokio::sync::watch::Sender<u64>,
    requeue: Mutex<Option<Requeue>>,
}

/// The informers the plugin follows.
#[derive(Clone)]
pub struct Sources {
    pub claims: Informer<PersistentVolumeClaim>,
    pub volumes: Informer<PersistentVolume>,
    pub classes: Informer<StorageClass>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl VolumeBinding {
    /// A plugin writing through `client` (None: PreBind fails, for tests of the filters).
    pub fn new(client: Option<Client>, bind_timeout: Duration) -> Arc<Self> {
        Arc::new(VolumeBinding {
            client,
            bind_timeout,
            claims: AssumeCache::default(),
            volumes: AssumeCache::default(),
            classes: RwLock::new(HashMap::new()),
            changed: tokio::sync::watch::channel(0).0,
            requeue: Mutex::new(None),
        })
    }

    /// Follows the informers: their objects feed the plugin's caches, and every change may
    /// make a waiting pod schedulable.
    pub fn watch(self: &Arc<Self>, src: &Sources) {
        let me = self.clone();
        src.claims
            .on_change(move |ch: &Change<PersistentVolumeClaim>| match &ch.new {
                Some(c) => me.set_claim(c.clone()),
                None => {
                    if let Some(old) = &ch.old {
                        me.claims.delete(&key_of(old.as_ref()));
                        me.notify();
                    }
                }
            });
        let me = self.clone();
        src.volumes
            .on_change(move |ch: &Change<PersistentVolume>| match &ch.new {
                Some(v) => me.set_volume(v.clone()),
                None => {
                    if let Some(old) = &ch.old {
                        me.volumes.delete(&key_of(old.as_ref()));
                        me.notify();
                    }
                }
            });
        let me = self.clone();
        src.classes.on_change(move |ch: &Change<StorageClass>| {
            match (&ch.new, &ch.old) {
                (Some(c), _) => me.set_class(c.clone()),
                (None, Some(old)) => {
                    me.write_classes().remove(claims::name(&old.metadata));
                }
                _ => {}
            }
            me.notify();
        });
    }

    pub fn set_claim(&self, claim: Arc<PersistentVolumeClaim>) {
        self.claims.update(claim);
        self.notify();
    }

    pub fn set_volume(&self, volume: Arc<PersistentVolume>) {
        self.volumes.update(volume);
        self.notify();
    }

    pub fn set_class(&self, class: Arc<StorageClass>) {
        let name = claims::name(&class.metadata).to_string();
        self.write_classes().insert(name, class);
        self.notify();
    }

    fn write_classes(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<String, Arc<StorageClass>>> {
        self.classes.write().unwrap_or_else(|e| e.into_inner())
    }

    fn class(&self, name: &str) -> Option<Arc<StorageClass>> {
        self.classes
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(name)
            .cloned()
    }

    fn notify(&self) {
        self.changed.send_modify(|n| *n = n.wrapping_add(1));
        if let Some(requeue) = lock(&self.requeue).clone() {
            requeue();
        }
    }

    /// The pod's claims, checked as upstream's PreFilter checks them; `Ok(None)` when the
    /// pod uses none.
    fn pod_claims(&self, pod: &Pod) -> Result<Option<State>, String> {
        let ns = pod.metadata.namespace.as_deref().unwrap_or_default();
        let mut state = State {
            bound: Vec::new(),
            delay: Vec::new(),
            candidates: Vec::new(),
            by_node: Mutex::new(HashMap::new()),
            reserved: Mutex::new(None),
        };
        let mut any = false;
        let mut immediate = false;
        for v in pod.spec.iter().flat_map(|s| s.volumes.iter().flatten()) {
            let (name, ephemeral) = match (&v.persistent_volume_claim, &v.ephemeral) {
                (Some(c), _) => (c.claim_name.clone(), false),
                (None, Some(_)) => (pods::ephemeral_claim_name(pod, v), true),
                _ => continue,
            };
            any = true;
            let Some(claim) = self.claims.get(&format!("{ns}/{name}")) else {
                return Err(if ephemeral {
                    format!(
                        "waiting for ephemeral volume controller to create the persistentvolumeclaim {name:?}"
                    )
                } else {
                    format!("persistentvolumeclaim {name:?} not found")
                });
            };
            if claims::claim_phase(&claim) == claims::PHASE_LOST {
                return Err(format!(
                    "persistentvolumeclaim {name:?} bound to non-existent persistentvolume {:?}",
                    claims::volume_name(&claim)
                ));
            }
            if claim.metadata.deletion_timestamp.is_some() {
                return Err(format!("persistentvolumeclaim {name:?} is being deleted"));
            }
            if ephemeral {
                pods::ephemeral_claim_is_for_pod(pod, &claim)?;
            }
            if fully_bound(&claim) {
                state.bound.push(claim);
                continue;
            }
            let class = self.class(claims::claim_class(&claim));
            // A pre-bound claim is the PV controller's to bind, as an Immediate one.
            if classes::is_delay_binding(class.as_deref()) && claims::volume_name(&claim).is_empty()
            {
                state.delay.push(claim);
            } else {
                immediate = true;
            }
        }
        if !any {
            return Ok(None);
        }
        if immediate {
            return Err(ERR_UNBOUND_IMMEDIATE.to_string());
        }
        state
            .delay
            .sort_by_key(|c| claims::bytes(claims::requested_storage(c)));
        if !state.delay.is_empty() {
            let wanted: Vec<&str> = state.delay.iter().map(|c| claims::claim_class(c)).collect();
            state.candidates = self
                .volumes
                .list()
                .into_iter()
                .filter(|v| wanted.contains(&claims::volume_class(v)))
                .collect();
        }
        Ok(Some(state))
    }
}

/// Bound, and the binding completed by the PV controller (upstream's isPVCFullyBound).
fn fully_bound(claim: &PersistentVolumeClaim) -> bool {
    !claims::volume_name(claim).is_empty()
        && annotations::has(&claim.metadata, annotations::BIND_COMPLETED)
}

impl Plugin for VolumeBinding {
    fn name(&self) -> &'static str {
        NAME
    }

    fn pre_filter(&self, state: &mut CycleState, _snapshot: &Snapshot<'_>) -> Status {
        match self.pod_claims(&state.pod.pod) {
            Ok(Some(s)) => {
                state.write(KEY, s);
                Status::Success
            }
            Ok(None) => Status::Success,
            Err(reason) => Status::unresolvable(reason),
        }
    }

    fn filter(&self, state: &CycleState, node: &NodeInfo) -> Status {
        let Some(s) = state.read::<State>(KEY) else {
            return Status::Success;
        };
        match self.find_pod_volumes(s, node) {
            Ok((volumes, reasons)) if reasons.is_empty() => {
                lock(&s.by_node).insert(node.name().to_string(), volumes);
                Status::Success
            }
            Ok((_, reasons)) => {
                Status::Unresolvable(reasons.into_iter().map(String::from).collect())
            }
            Err(e) => Status::unresolvable(e),
        }
    }

    fn reserve(&self, state: &mut CycleState, node: &str) -> Status {
        let Some(s) = state.read::<State>(KEY) else {
            return Status::Success;
        };
        if s.delay.is_empty() {
            return Status::Success;
        }
        let Some(volumes) = lock(&s.by_node).get(node).cloned() else {
            return Status::unschedulable(format!("no pod volumes found for node {node:?}"));
        };
        match self.assume(volumes) {
            Ok(assumed) => {
                *lock(&s.reserved) = Some(assumed);
                Status::Success
            }
            Err(e) => Status::unschedulable(e),
        }
    }

    fn unreserve(&self, state: &CycleState, _node: &str) {
        if let Some(s) = state.read::<State>(KEY)
            && let Some(assumed) = lock(&s.reserved).take()
        {
            self.revert(&assumed.static_bindings, &assumed.provisions);
        }
    }

    fn pre_bind<'a>(&'a self, ctx: &'a BindContext<'a>) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(async move {
            let Some(s) = ctx.state.read::<State>(KEY) else {
                return Ok(());
            };
            let Some(assumed) = lock(&s.reserved).clone() else {
                return Ok(());
            };
            self.bind_pod_volumes(ctx, assumed).await
        })
    }

    fn register_events(&self, requeue: Requeue) {
        *lock(&self.requeue) = Some(requeue);
    }
}
