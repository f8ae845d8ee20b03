//! Turning desired endpoints into EndpointSlice writes (Kubernetes'
//! `staging/.../endpointslice/reconciler.go`), shared by the EndpointSlice and mirroring
//! controllers: endpoints that still exist stay in the slice they are in (so one pod's change
//! rewrites one slice, not all), new ones fill slices with room before new slices are made,
//! a slice left empty is deleted, and a Service with no endpoints keeps one empty placeholder
//! slice (the EndpointSlice controller's, not the mirroring one's).

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use k8s_openapi::api::discovery::v1::{Endpoint, EndpointPort, EndpointSlice};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};

/// Endpoints per slice (Kubernetes' --max-endpoints-per-slice default).
pub const MAX_ENDPOINTS_PER_SLICE: usize = 100;

/// Endpoints that share one port set.
pub struct Group {
    pub ports: Vec<EndpointPort>,
    pub endpoints: Vec<Endpoint>,
}

/// What every slice of one owner carries.
pub struct SliceMeta {
    pub namespace: String,
    pub generate_name: String,
    pub labels: BTreeMap<String, String>,
    pub owner: OwnerReference,
}

#[derive(Default, Debug)]
pub struct Plan {
    pub create: Vec<EndpointSlice>,
    pub update: Vec<EndpointSlice>,
    pub delete: Vec<Arc<EndpointSlice>>,
}

impl Plan {
    pub fn is_empty(&self) -> bool {
        self.create.is_empty() && self.update.is_empty() && self.delete.is_empty()
    }
}

type PortKey = Vec<(Option<String>, Option<i32>, Option<String>)>;

fn port_key(ports: &[EndpointPort]) -> PortKey {
    let mut k: PortKey = ports
        .iter()
        .map(|p| (p.name.clone(), p.port, p.protocol.clone()))
        .collect();
    k.sort();
    k
}

fn endpoint_key(e: &Endpoint) -> String {
    e.addresses.first().cloned().unwrap_or_default()
}

fn new_slice(meta: &SliceMeta, ports: &[EndpointPort], endpoints: Vec<Endpoint>) -> EndpointSlice {
    EndpointSlice {
        metadata: ObjectMeta {
            generate_name: Some(meta.generate_name.clone()),
            namespace: Some(meta.namespace.clone()),
            labels: Some(meta.labels.clone()),
            owner_references: Some(vec![meta.owner.clone()]),
            ..Default::default()
        },
        address_type: "IPv4".into(),
        endpoints,
        ports: (!ports.is_empty()).then(|| ports.to_vec()),
    }
}

fn same_meta(s: &EndpointSlice, meta: &SliceMeta) -> bool {
    s.metadata.labels.as_ref() == Some(&meta.labels)
        && s.metadata.owner_references.as_deref() == Some(std::slice::from_ref(&meta.owner))
}

/// The writes that take `existing` (the owner's slices) to `desired`.
pub fn reconcile(
    existing: &[Arc<EndpointSlice>],
    desired: Vec<Group>,
    meta: &SliceMeta,
    placeholder: bool,
) -> Plan {
    let mut plan = Plan::default();
    let mut existing: Vec<&Arc<EndpointSlice>> = existing.iter().collect();
    existing.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
    // port set → (ports, address → endpoint), still to place.
    let mut wanted: BTreeMap<PortKey, (Vec<EndpointPort>, BTreeMap<String, Endpoint>)> =
        BTreeMap::new();
    for g in desired {
        let entry = wanted
            .entry(port_key(&g.ports))
            .or_insert_with(|| (g.ports.clone(), BTreeMap::new()));
        for e in g.endpoints {
            entry.1.insert(endpoint_key(&e), e);
        }
    }
    let total: usize = wanted.values().map(|(_, e)| e.len()).sum();

    // Existing slices keep the endpoints they hold that are still wanted, updated.
    let mut kept: Vec<(&Arc<EndpointSlice>, PortKey, Vec<Endpoint>)> = Vec::new();
    for s in existing {
        if s.address_type != "IPv4" {
            plan.delete.push(s.clone());
            continue;
        }
        let key = port_key(s.ports.as_deref().unwrap_or_default());
        let Some((_, eps)) = wanted.get_mut(&key) else {
            // An empty port-less slice may stay as the placeholder (decided below).
            if s.endpoints.is_empty() && s.ports.is_none() {
                kept.push((s, key, Vec::new()));
            } else {
                plan.delete.push(s.clone());
            }
            continue;
        };
        let holds: Vec<Endpoint> = s
            .endpoints
            .iter()
            .filter_map(|e| eps.remove(&endpoint_key(e)))
            .collect();
        kept.push((s, key, holds));
    }
    // The rest fill slices with room, then new slices.
    for (key, (ports, eps)) in wanted {
        let mut rest = eps.into_values();
        for (_, k, holds) in kept.iter_mut().filter(|(_, k, _)| *k == key) {
            let _ = k;
            while holds.len() < MAX_ENDPOINTS_PER_SLICE {
                match rest.next() {
                    Some(e) => holds.push(e),
                    None => break,
                }
            }
        }
        let rest: Vec<Endpoint> = rest.collect();
        for chunk in rest.chunks(MAX_ENDPOINTS_PER_SLICE) {
            plan.create.push(new_slice(meta, &ports, chunk.to_vec()));
        }
    }
    let mut have_placeholder = false;
    for (s, _, holds) in kept {
        let is_placeholder =
            total == 0 && placeholder && !have_placeholder && holds.is_empty() && s.ports.is_none();
        if holds.is_empty() && !is_placeholder {
            plan.delete.push(s.clone());
            continue;
        }
        have_placeholder |= is_placeholder;
        if holds != s.endpoints || !same_meta(s, meta) {
            let mut updated = (**s).clone();
            updated.endpoints = holds;
            updated.metadata.labels = Some(meta.labels.clone());
            updated.metadata.owner_references = Some(vec![meta.owner.clone()]);
            plan.update.push(updated);
        }
    }
    if total == 0 && placeholder && !have_placeholder {
        plan.create.push(new_slice(meta, &[], Vec::new()));
    }
    plan
}

/// Slices an owner's writes produced that the informer has not shown yet (Kubernetes'
/// endpointSliceTracker): until it has, a sync would act on a stale cache and create
/// duplicates, so it waits.
#[derive(Default)]
pub struct Tracker {
    /// owner key → slice name → resourceVersion written (`None`: deleted).
    written: Mutex<HashMap<String, HashMap<String, Option<String>>>>,
}

fn rv_at_least(have: Option<&str>, want: &str) -> bool {
    match (
        have.and_then(|h| h.parse::<u64>().ok()),
        want.parse::<u64>(),
    ) {
        (Some(h), Ok(w)) => h >= w,
        _ => have == Some(want),
    }
}

impl Tracker {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, HashMap<String, Option<String>>>> {
        self.written.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn wrote(&self, owner: &str, slice: &EndpointSlice) {
        if let Some(name) = &slice.metadata.name {
            self.lock().entry(owner.to_string()).or_default().insert(
                name.clone(),
                Some(slice.metadata.resource_version.clone().unwrap_or_default()),
            );
        }
    }

    pub fn deleted(&self, owner: &str, name: &str) {
        self.lock()
            .entry(owner.to_string())
            .or_default()
            .insert(name.to_string(), None);
    }

    /// Whether the cached slices show every write made for `owner`; forgets them when so.
    pub fn caught_up(&self, owner: &str, cached: &[Arc<EndpointSlice>]) -> bool {
        let mut all = self.lock();
        let Some(written) = all.get(owner) else {
            return true;
        };
        let by_name: HashMap<&str, &EndpointSlice> = cached
            .iter()
            .filter_map(|s| Some((s.metadata.name.as_deref()?, s.as_ref())))
            .collect();
        let fresh = written.iter().all(|(name, rv)| match rv {
            None => !by_name.contains_key(name.as_str()),
            Some(rv) => by_name
                .get(name.as_str())
                .is_some_and(|s| rv_at_least(s.metadata.resource_version.as_deref(), rv)),
        });
        if fresh {
            all.remove(owner);
        }
        fresh
    }

    pub fn forget(&self, owner: &str) {
        self.lock().remove(owner);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::discovery::v1::EndpointConditions;
    use std::collections::HashSet;

    fn meta() -> SliceMeta {
        SliceMeta {
            namespace: "default".into(),
            generate_name: "web-".into(),
            labels: [("kubernetes.io/service-name".to_string(), "web".to_string())].into(),
            owner: OwnerReference {
                api_version: "v1".into(),
                kind: "Service".into(),
                name: "web".into(),
                uid: "u".into(),
                controller: Some(true),
                block_owner_deletion: Some(true),
            },
        }
    }

    fn ep(ip: &str, ready: bool) -> Endpoint {
        Endpoint {
            addresses: vec![ip.into()],
            conditions: Some(EndpointConditions {
                ready: Some(ready),
                serving: Some(ready),
                terminating: Some(false),
            }),
            ..Default::default()
        }
    }

    fn port(n: i32) -> Vec<EndpointPort> {
        vec![EndpointPort {
            name: Some("http".into()),
            port: Some(n),
            protocol: Some("TCP".into()),
            app_protocol: None,
        }]
    }

    fn applied(plan: Plan, existing: Vec<Arc<EndpointSlice>>) -> Vec<Arc<EndpointSlice>> {
        let gone: HashSet<_> = plan
            .delete
            .iter()
            .filter_map(|s| s.metadata.name.clone())
            .collect();
        let updated: HashMap<_, _> = plan
            .update
            .into_iter()
            .map(|s| (s.metadata.name.clone().unwrap(), s))
            .collect();
        let mut out: Vec<Arc<EndpointSlice>> = existing
            .into_iter()
            .filter(|s| !gone.contains(s.metadata.name.as_ref().unwrap()))
            .map(|s| match updated.get(s.metadata.name.as_ref().unwrap()) {
                Some(u) => Arc::new(u.clone()),
                None => s,
            })
            .collect();
        for (i, mut s) in plan.create.into_iter().enumerate() {
            s.metadata.name = Some(format!("web-new{}-{i}", out.len()));
            out.push(Arc::new(s));
        }
        out
    }

    #[test]
    fn placeholder_then_endpoints_then_chunks_and_stable_placement() {
        let m = meta();
        // No endpoints: one placeholder.
        let plan = reconcile(&[], vec![], &m, true);
        assert_eq!(plan.create.len(), 1);
        assert!(plan.create[0].endpoints.is_empty() && plan.create[0].ports.is_none());
        let s = applied(plan, vec![]);
        // Same again: nothing to do.
        assert!(reconcile(&s, vec![], &m, true).is_empty());
        // 250 endpoints: three slices, the placeholder goes.
        let eps: Vec<Endpoint> = (0..250)
            .map(|i| ep(&format!("10.42.{}.{}", i / 200, i % 200), true))
            .collect();
        let plan = reconcile(
            &s,
            vec![Group {
                ports: port(80),
                endpoints: eps.clone(),
            }],
            &m,
            true,
        );
        assert_eq!(plan.create.len(), 3);
        assert_eq!(plan.delete.len(), 1);
        let s = applied(plan, s);
        assert_eq!(s.iter().map(|s| s.endpoints.len()).sum::<usize>(), 250);
        // One endpoint turns not ready: exactly one slice is rewritten.
        let mut changed = eps.clone();
        changed[7] = ep(&changed[7].addresses[0].clone(), false);
        let plan = reconcile(
            &s,
            vec![Group {
                ports: port(80),
                endpoints: changed,
            }],
            &m,
            true,
        );
        assert_eq!(
            (plan.create.len(), plan.update.len(), plan.delete.len()),
            (0, 1, 0)
        );
        // The port changes: new slices, old ones deleted.
        let plan = reconcile(
            &s,
            vec![Group {
                ports: port(81),
                endpoints: eps,
            }],
            &m,
            true,
        );
        assert_eq!((plan.create.len(), plan.delete.len()), (3, 3));
    }

    #[test]
    fn tracker_waits_for_the_cache() {
        let t = Tracker::default();
        let mut s = EndpointSlice::default();
        s.metadata.name = Some("web-abc".into());
        s.metadata.resource_version = Some("12".into());
        t.wrote("default/web", &s);
        assert!(!t.caught_up("default/web", &[]));
        let mut old = s.clone();
        old.metadata.resource_version = Some("11".into());
        assert!(!t.caught_up("default/web", &[Arc::new(old)]));
        assert!(t.caught_up("default/web", &[Arc::new(s)]));
        t.deleted("default/web", "web-abc");
        assert!(t.caught_up("default/web", &[]));
        assert!(t.caught_up("default/other", &[]));
    }
}
