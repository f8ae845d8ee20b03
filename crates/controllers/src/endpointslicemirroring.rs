//! The EndpointSlice mirroring controller (Kubernetes' `pkg/controller/endpointslicemirroring`):
//! a Service without a selector gets its endpoints from an Endpoints object its user writes
//! (the seed's external database); this controller mirrors that object into EndpointSlices
//! (managed by `endpointslicemirroring-controller.k8s.io`, owned by the Endpoints), so
//! kube-proxy and DNS, which read slices, serve such Services too. Endpoints labelled
//! `endpointslice.kubernetes.io/skip-mirror: "true"` are left alone.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Endpoints, Service};
use k8s_openapi::api::discovery::v1::{Endpoint, EndpointConditions, EndpointPort, EndpointSlice};
use kube::Client;

use crate::endpointslice::reconciler::{self, Group, Plan, SliceMeta, Tracker};
use crate::endpointslice::{MANAGED_BY_LABEL, SERVICE_NAME_LABEL, apply, owner_key, slices_of};
use crate::endpointutil as util;
use crate::pods;
use client_go::informer::{Change, Informer, key_of};
use client_go::queue::WorkQueue;
use client_go::reconciler::{Action, Reconciler};

pub const MANAGED_BY: &str = "endpointslicemirroring-controller.k8s.io";
const SKIP_MIRROR: &str = "endpointslice.kubernetes.io/skip-mirror";
/// Most addresses mirrored from one Endpoints object (Kubernetes' default).
const MAX_MIRRORED: usize = 1000;

pub struct MirroringController {
    client: Client,
    services: Informer<Service>,
    endpoints: Informer<Endpoints>,
    slices: Informer<EndpointSlice>,
    tracker: Tracker,
    queue: Arc<WorkQueue>,
}

impl MirroringController {
    pub fn new(
        client: Client,
        services: Informer<Service>,
        endpoints: Informer<Endpoints>,
        slices: Informer<EndpointSlice>,
    ) -> Arc<Self> {
        let c = Arc::new(MirroringController {
            client,
            services,
            endpoints,
            slices,
            tracker: Tracker::default(),
            queue: WorkQueue::new(),
        });
        let me = c.clone();
        c.services.on_change(move |ch: &Change<Service>| {
            if let Some(s) = ch.object() {
                me.queue.add(key_of(s.as_ref()));
            }
        });
        let me = c.clone();
        c.endpoints.on_change(move |ch: &Change<Endpoints>| {
            if let Some(e) = ch.object() {
                me.queue.add(key_of(e.as_ref()));
            }
        });
        let me = c.clone();
        c.slices.on_change(move |ch: &Change<EndpointSlice>| {
            if let Some(key) = ch.object().and_then(|s| owner_key(s, MANAGED_BY)) {
                me.queue.add(key);
            }
        });
        c
    }

    pub async fn run(self: Arc<Self>, workers: usize) {
        client_go::reconciler::run(
            &self,
            &self.queue,
            &[&self.services, &self.endpoints, &self.slices],
            workers,
        )
        .await;
    }
}

impl Reconciler for MirroringController {
    const NAME: &'static str = "endpointslicemirroring";

    async fn reconcile(self: &Arc<Self>, key: &str) -> anyhow::Result<Action> {
        let (ns, name) = key.split_once('/').unwrap_or(("", key));
        let existing = slices_of(&self.slices, ns, name, MANAGED_BY);
        if !self.tracker.caught_up(key, &existing) {
            return Ok(Action::RequeueAfter(Duration::from_millis(50)));
        }
        let svc = self.services.get_key(key);
        let ep = self.endpoints.get_key(key);
        let mirror = match (&svc, &ep) {
            (Some(svc), Some(ep)) => {
                util::selector(svc).is_none()
                    && ep
                        .metadata
                        .labels
                        .as_ref()
                        .and_then(|l| l.get(SKIP_MIRROR))
                        .map(String::as_str)
                        != Some("true")
            }
            _ => false,
        };
        let plan = match (mirror, ep) {
            (true, Some(ep)) => {
                reconciler::reconcile(&existing, groups(&ep), &slice_meta(&ep), false)
            }
            _ => Plan {
                delete: existing,
                ..Default::default()
            },
        };
        if plan.is_empty() {
            return Ok(Action::Done);
        }
        apply(&self.client, ns, key, &self.tracker, plan).await?;
        Ok(Action::Done)
    }
}

fn slice_meta(ep: &Endpoints) -> SliceMeta {
    let name = ep.metadata.name.clone().unwrap_or_default();
    let mut labels: BTreeMap<String, String> = ep.metadata.labels.clone().unwrap_or_default();
    labels.remove(SKIP_MIRROR);
    labels.insert(SERVICE_NAME_LABEL.into(), name.clone());
    labels.insert(MANAGED_BY_LABEL.into(), MANAGED_BY.into());
    SliceMeta {
        namespace: ep.metadata.namespace.clone().unwrap_or_default(),
        generate_name: format!("{name}-"),
        labels,
        owner: pods::controller_ref("v1", "Endpoints", &ep.metadata),
    }
}

/// One group per subset: its addresses ready, its notReadyAddresses not.
fn groups(ep: &Endpoints) -> Vec<Group> {
    let mut left = MAX_MIRRORED;
    let mut out = Vec::new();
    for subset in ep.subsets.iter().flatten() {
        let ports: Vec<EndpointPort> = subset
            .ports
            .iter()
            .flatten()
            .map(|p| EndpointPort {
                name: Some(p.name.clone().unwrap_or_default()),
                port: Some(p.port),
                protocol: Some(p.protocol.clone().unwrap_or_else(|| "TCP".into())),
                app_protocol: p.app_protocol.clone(),
            })
            .collect();
        let ready = subset.addresses.iter().flatten().map(|a| (a, true));
        let not_ready = subset
            .not_ready_addresses
            .iter()
            .flatten()
            .map(|a| (a, false));
        let mut endpoints = Vec::new();
        for (a, ready) in ready.chain(not_ready) {
            if left == 0 {
                break;
            }
            left -= 1;
            endpoints.push(Endpoint {
                addresses: vec![a.ip.clone()],
                conditions: Some(EndpointConditions {
                    ready: Some(ready),
                    serving: Some(ready),
                    terminating: Some(false),
                }),
                hostname: a.hostname.clone(),
                node_name: a.node_name.clone(),
                target_ref: a.target_ref.clone(),
                ..Default::default()
            });
        }
        out.push(Group { ports, endpoints });
    }
    out
}
