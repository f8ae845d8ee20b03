//! ServiceAffinity: the seed's CheckServiceAffinity predicate (removed from upstream in
//! 1.24, kept here as an addition, off unless configured): the pods of one Service land on
//! nodes with the same values of the given labels as the Service's first scheduled pod
//! (e.g. all in one zone).

use std::collections::BTreeMap;

use client_go::informer::Informer;
use k8s_openapi::api::core::v1::Service;

use crate::framework::{CycleState, Plugin, Snapshot, Status};
use crate::nodeinfo::NodeInfo;

pub const ERR: &str = "node(s) didn't match service affinity";

pub struct ServiceAffinity {
    pub labels: Vec<String>,
    pub services: Informer<Service>,
}

const KEY: &str = "ServiceAffinity";

impl Plugin for ServiceAffinity {
    fn name(&self) -> &'static str {
        "ServiceAffinity"
    }
    fn pre_filter(&self, state: &mut CycleState, snapshot: &Snapshot<'_>) -> Status {
        let pod = state.pod.pod.clone();
        let ns = pod.metadata.namespace.as_deref().unwrap_or_default();
        let labels = pod.metadata.labels.clone().unwrap_or_default();
        let selectors: Vec<BTreeMap<String, String>> = self
            .services
            .list_namespace(ns)
            .iter()
            .filter_map(|s| s.spec.as_ref()?.selector.clone())
            .filter(|sel| !sel.is_empty() && sel.iter().all(|(k, v)| labels.get(k) == Some(v)))
            .collect();
        let mut wanted: BTreeMap<String, String> = BTreeMap::new();
        let peer = snapshot.pods().find(|(_, p)| {
            p.pod.metadata.namespace.as_deref() == Some(ns)
                && p.pod.metadata.name != pod.metadata.name
                && selectors.iter().any(|sel| {
                    let l = p.pod.metadata.labels.clone().unwrap_or_default();
                    sel.iter().all(|(k, v)| l.get(k) == Some(v))
                })
        });
        if let Some((node, _)) = peer {
            for l in &self.labels {
                if let Some(v) = node.labels().get(l) {
                    wanted.insert(l.clone(), v.clone());
                }
            }
        }
        state.write(KEY, wanted);
        Status::Success
    }
    fn filter(&self, state: &CycleState, node: &NodeInfo) -> Status {
        let Some(wanted) = state.read::<BTreeMap<String, String>>(KEY) else {
            return Status::Success;
        };
        let labels = node.labels();
        let ok = self.labels.iter().all(|l| match wanted.get(l) {
            Some(v) => labels.get(l) == Some(v),
            None => labels.contains_key(l),
        });
        if ok {
            Status::Success
        } else {
            Status::unresolvable(ERR)
        }
    }
}
