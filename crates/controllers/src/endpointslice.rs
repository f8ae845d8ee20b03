//! The EndpointSlice controller (Kubernetes' `pkg/controller/endpointslice`): for every
//! Service with a selector, EndpointSlices (`discovery.k8s.io/v1`, at most 100 endpoints each)
//! listing the selected pods with their ready/serving/terminating conditions, hostname,
//! node and the ports their named targetPorts resolve to. Slices carry
//! `kubernetes.io/service-name`, are managed by `endpointslice-controller.k8s.io` and owned by
//! the Service, so the garbage collector removes them with it. This is what kube-proxy and
//! DNS read.

pub mod reconciler;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use k8s_openapi::api::core::v1::{Pod, Service};
use k8s_openapi::api::discovery::v1::{Endpoint, EndpointConditions, EndpointPort, EndpointSlice};
use kube::api::{DeleteParams, PostParams};
use kube::{Api, Client};

use crate::endpointutil as util;
use crate::pods;
use client_go::informer::{Change, Informer, key_of};
use client_go::queue::WorkQueue;
use client_go::reconciler::{Action, Reconciler};
use reconciler::{Group, Plan, SliceMeta, Tracker};

pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";
pub const MANAGED_BY_LABEL: &str = "endpointslice.kubernetes.io/managed-by";
pub const MANAGED_BY: &str = "endpointslice-controller.k8s.io";

pub struct EndpointSliceController {
    client: Client,
    services: Informer<Service>,
    pods: Informer<Pod>,
    slices: Informer<EndpointSlice>,
    tracker: Tracker,
    queue: Arc<WorkQueue>,
}

/// The slices in `namespace` that `manager` keeps for the Service `service`.
pub fn slices_of(
    slices: &Informer<EndpointSlice>,
    namespace: &str,
    service: &str,
    manager: &str,
) -> Vec<Arc<EndpointSlice>> {
    slices
        .list_namespace(namespace)
        .into_iter()
        .filter(|s| {
            let labels = s.metadata.labels.as_ref();
            labels
                .and_then(|l| l.get(SERVICE_NAME_LABEL))
                .map(String::as_str)
                == Some(service)
                && labels
                    .and_then(|l| l.get(MANAGED_BY_LABEL))
                    .map(String::as_str)
                    == Some(manager)
        })
        .collect()
}

/// The owner key (`namespace/service`) of a slice `manager` keeps.
pub fn owner_key(s: &EndpointSlice, manager: &str) -> Option<String> {
    let labels = s.metadata.labels.as_ref()?;
    (labels.get(MANAGED_BY_LABEL).map(String::as_str) == Some(manager)).then_some(())?;
    Some(format!(
        "{}/{}",
        s.metadata.namespace.as_deref().unwrap_or_default(),
        labels.get(SERVICE_NAME_LABEL)?
    ))
}

/// Writes a plan for `owner`, recording each write in the tracker.
pub async fn apply(
    client: &Client,
    namespace: &str,
    owner: &str,
    tracker: &Tracker,
    plan: Plan,
) -> anyhow::Result<()> {
    let api: Api<EndpointSlice> = Api::namespaced(client.clone(), namespace);
    // Creates before deletes, so consumers never see a Service without endpoints in between.
    for s in plan.create {
        let made = api
            .create(&PostParams::default(), &s)
            .await
            .context("creating an EndpointSlice")?;
        tracker.wrote(owner, &made);
    }
    for s in plan.update {
        let name = s.metadata.name.clone().unwrap_or_default();
        let made = api
            .replace(&name, &PostParams::default(), &s)
            .await
            .context("updating an EndpointSlice")?;
        tracker.wrote(owner, &made);
    }
    for s in plan.delete {
        let name = s.metadata.name.clone().unwrap_or_default();
        match api.delete(&name, &DeleteParams::default()).await {
            Ok(_) => {}
            Err(kube::Error::Api(e)) if e.code == 404 => {}
            Err(e) => return Err(e).context("deleting an EndpointSlice"),
        }
        tracker.deleted(owner, &name);
    }
    Ok(())
}

impl EndpointSliceController {
    pub fn new(
        client: Client,
        services: Informer<Service>,
        pods: Informer<Pod>,
        slices: Informer<EndpointSlice>,
    ) -> Arc<Self> {
        let c = Arc::new(EndpointSliceController {
            client,
            services,
            pods,
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
        c.pods.on_change(move |ch: &Change<Pod>| {
            util::queue_services_of(&me.services, &me.queue, ch)
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
            &[&self.services, &self.pods, &self.slices],
            workers,
        )
        .await;
    }
}

impl Reconciler for EndpointSliceController {
    const NAME: &'static str = "endpointslice";

    async fn reconcile(self: &Arc<Self>, key: &str) -> anyhow::Result<Action> {
        let (ns, name) = key.split_once('/').unwrap_or(("", key));
        let existing = slices_of(&self.slices, ns, name, MANAGED_BY);
        let Some(svc) = self.services.get_key(key) else {
            // The garbage collector deletes the slices of a deleted Service (they are owned).
            self.tracker.forget(key);
            return Ok(Action::Done);
        };
        if !self.tracker.caught_up(key, &existing) {
            return Ok(Action::RequeueAfter(Duration::from_millis(50)));
        }
        if util::selector(&svc).is_none() {
            // Not (or no longer) ours to keep: the mirroring controller or the user's.
            return Ok(Action::Done);
        }
        let desired = if util::is_external_name(&svc) {
            None
        } else {
            Some(desired_groups(&svc, &util::selected_pods(&self.pods, &svc)))
        };
        let meta = slice_meta(&svc);
        let plan = match desired {
            Some(groups) => reconciler::reconcile(&existing, groups, &meta, true),
            // An ExternalName Service has no endpoints, not even a placeholder.
            None => Plan {
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

fn slice_meta(svc: &Service) -> SliceMeta {
    let mut labels: BTreeMap<String, String> = util::endpoint_labels(svc);
    let name = svc.metadata.name.clone().unwrap_or_default();
    labels.insert(SERVICE_NAME_LABEL.into(), name.clone());
    labels.insert(MANAGED_BY_LABEL.into(), MANAGED_BY.into());
    SliceMeta {
        namespace: svc.metadata.namespace.clone().unwrap_or_default(),
        generate_name: format!("{name}-"),
        labels,
        owner: pods::controller_ref("v1", "Service", &svc.metadata),
    }
}

/// The selected pods as endpoints, grouped by the ports they serve. Terminating pods stay
/// (serving, not ready), as Kubernetes keeps them for graceful connection draining.
pub fn desired_groups(svc: &Service, pods: &[Arc<Pod>]) -> Vec<Group> {
    let publish = util::publish_not_ready(svc);
    let mut groups: BTreeMap<String, Group> = BTreeMap::new();
    for pod in pods {
        if !util::should_be_in_endpoints(pod, true) {
            continue;
        }
        let Some(ip) = util::pod_ip(pod) else {
            continue;
        };
        let ports: Vec<EndpointPort> = util::ports(svc)
            .iter()
            .filter_map(|sp| {
                Some(EndpointPort {
                    name: Some(sp.name.clone().unwrap_or_default()),
                    port: Some(util::find_port(pod, sp)?),
                    protocol: Some(sp.protocol.clone().unwrap_or_else(|| "TCP".into())),
                    app_protocol: sp.app_protocol.clone(),
                })
            })
            .collect();
        if ports.is_empty() && !util::ports(svc).is_empty() {
            continue;
        }
        let serving = publish || pods::is_ready(pod);
        let terminating = pod.metadata.deletion_timestamp.is_some();
        let endpoint = Endpoint {
            addresses: vec![ip.to_string()],
            conditions: Some(EndpointConditions {
                ready: Some(publish || (serving && !terminating)),
                serving: Some(serving),
                terminating: Some(terminating),
            }),
            hostname: util::hostname(pod, svc),
            node_name: pod.spec.as_ref().and_then(|s| s.node_name.clone()),
            target_ref: Some(util::pod_ref(pod)),
            ..Default::default()
        };
        let key = serde_json::to_string(&ports).unwrap_or_default();
        groups
            .entry(key)
            .or_insert_with(|| Group {
                ports,
                endpoints: Vec::new(),
            })
            .endpoints
            .push(endpoint);
    }
    groups.into_values().collect()
}
