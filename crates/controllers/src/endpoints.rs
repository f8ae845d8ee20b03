//! The Endpoints controller (Kubernetes' `pkg/controller/endpoint`): for every Service with a
//! selector, an Endpoints object of the same name listing the selected pods — ready ones in
//! `addresses`, the others in `notReadyAddresses` (all as ready with
//! `publishNotReadyAddresses`) — grouped into subsets by the ports they serve (a named
//! targetPort can differ per pod). A Service without a selector keeps the Endpoints its user
//! writes; the Endpoints of a deleted Service are deleted with it.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use k8s_openapi::api::core::v1::{
    EndpointAddress, EndpointPort, EndpointSubset, Endpoints, Pod, Service,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{DeleteParams, PostParams};
use kube::{Api, Client};

use crate::endpointutil as util;
use crate::pods;
use client_go::informer::{Change, Informer, key_of};
use client_go::queue::WorkQueue;
use client_go::reconciler::{self, Action, Reconciler};

/// Most addresses an Endpoints object carries (Kubernetes' maxCapacity); the rest are left
/// out and the object is marked truncated.
const MAX_ADDRESSES: usize = 1000;
const OVER_CAPACITY: &str = "endpoints.kubernetes.io/over-capacity";

pub struct EndpointsController {
    client: Client,
    services: Informer<Service>,
    pods: Informer<Pod>,
    endpoints: Informer<Endpoints>,
    queue: Arc<WorkQueue>,
}

impl EndpointsController {
    pub fn new(
        client: Client,
        services: Informer<Service>,
        pods: Informer<Pod>,
        endpoints: Informer<Endpoints>,
    ) -> Arc<Self> {
        let c = Arc::new(EndpointsController {
            client,
            services,
            pods,
            endpoints,
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
        c.endpoints.on_change(move |ch: &Change<Endpoints>| {
            // Someone else changed or deleted an Endpoints object the controller owns.
            if let Some(e) = ch.object() {
                let key = key_of(e.as_ref());
                if me
                    .services
                    .get_key(&key)
                    .is_some_and(|s| util::selector(&s).is_some())
                {
                    me.queue.add(key);
                }
            }
        });
        c
    }

    pub async fn run(self: Arc<Self>, workers: usize) {
        reconciler::run(
            &self,
            &self.queue,
            &[&self.services, &self.pods, &self.endpoints],
            workers,
        )
        .await;
    }
}

impl Reconciler for EndpointsController {
    const NAME: &'static str = "endpoints";

    async fn reconcile(self: &Arc<Self>, key: &str) -> anyhow::Result<Action> {
        let (ns, name) = key.split_once('/').unwrap_or(("", key));
        let api: Api<Endpoints> = Api::namespaced(self.client.clone(), ns);
        let Some(svc) = self.services.get_key(key) else {
            // The Service is gone: so are its Endpoints (also hand-written ones).
            if self.endpoints.get_key(key).is_some() {
                match api.delete(name, &DeleteParams::default()).await {
                    Ok(_) => tracing::info!(
                        endpoints = key,
                        "deleted the endpoints of a deleted service"
                    ),
                    Err(kube::Error::Api(e)) if e.code == 404 => {}
                    Err(e) => return Err(e).context("deleting endpoints"),
                }
            }
            return Ok(Action::Done);
        };
        if util::selector(&svc).is_none() || util::is_external_name(&svc) {
            return Ok(Action::Done);
        }
        let (subsets, truncated) = desired_subsets(&svc, &util::selected_pods(&self.pods, &svc));
        let mut labels = util::endpoint_labels(&svc);
        labels.remove(OVER_CAPACITY);
        let current = self.endpoints.get_key(key);
        let mut annotations = current
            .as_ref()
            .and_then(|e| e.metadata.annotations.clone())
            .unwrap_or_default();
        if truncated {
            annotations.insert(OVER_CAPACITY.into(), "truncated".into());
        } else {
            annotations.remove(OVER_CAPACITY);
        }
        if let Some(cur) = &current {
            let same_subsets = cur.subsets.clone().unwrap_or_default() == subsets;
            let same_labels = cur.metadata.labels.clone().unwrap_or_default() == labels;
            let same_annotations =
                cur.metadata.annotations.clone().unwrap_or_default() == annotations;
            if same_subsets && same_labels && same_annotations {
                return Ok(Action::Done);
            }
        }
        let mut ep = Endpoints {
            metadata: ObjectMeta {
                name: Some(name.to_string()),
                namespace: Some(ns.to_string()),
                labels: Some(labels),
                annotations: (!annotations.is_empty()).then_some(annotations),
                ..Default::default()
            },
            subsets: (!subsets.is_empty()).then_some(subsets),
        };
        match current {
            Some(cur) => {
                // The cached resourceVersion makes a stale cache a conflict (retried) rather
                // than a lost write.
                ep.metadata.resource_version = cur.metadata.resource_version.clone();
                api.replace(name, &PostParams::default(), &ep)
                    .await
                    .context("updating endpoints")?;
            }
            None => match api.create(&PostParams::default(), &ep).await {
                Ok(_) => {}
                // Created meanwhile (a cache behind the server): the next sync updates it.
                Err(kube::Error::Api(e)) if e.code == 409 => {
                    return Ok(Action::RequeueAfter(Duration::from_millis(100)));
                }
                Err(e) => return Err(e).context("creating endpoints"),
            },
        }
        Ok(Action::Done)
    }
}

/// Ports sort by name, then number and protocol (Kubernetes sorts them by a hash; any fixed
/// order keeps repeated syncs from rewriting an unchanged object).
type PortKey = (Option<String>, i32, Option<String>);

fn port_key(p: &EndpointPort) -> PortKey {
    (p.name.clone(), p.port, p.protocol.clone())
}

/// The subsets for the Service's pods, repacked by port set with addresses sorted by IP;
/// `true` when addresses were left out over [`MAX_ADDRESSES`].
pub fn desired_subsets(svc: &Service, pods: &[Arc<Pod>]) -> (Vec<EndpointSubset>, bool) {
    let tolerate_unready = util::publish_not_ready(svc);
    // port set → (ready, not ready) addresses.
    type Group = (Vec<EndpointAddress>, Vec<EndpointAddress>);
    let mut groups: BTreeMap<Vec<PortKey>, (Vec<EndpointPort>, Group)> = BTreeMap::new();
    let mut total = 0usize;
    let mut truncated = false;
    for pod in pods {
        if !util::should_be_in_endpoints(pod, tolerate_unready) {
            continue;
        }
        let Some(ip) = util::pod_ip(pod) else {
            continue;
        };
        let address = EndpointAddress {
            ip: ip.to_string(),
            hostname: util::hostname(pod, svc),
            node_name: pod.spec.as_ref().and_then(|s| s.node_name.clone()),
            target_ref: Some(util::pod_ref(pod)),
        };
        let mut ports: Vec<EndpointPort> = util::ports(svc)
            .iter()
            .filter_map(|sp| {
                let port = util::find_port(pod, sp);
                if port.is_none() {
                    tracing::debug!(pod = %key_of(pod.as_ref()), port = ?sp.name, "pod has no such named port");
                }
                Some(EndpointPort {
                    name: sp.name.clone().filter(|n| !n.is_empty()),
                    port: port?,
                    protocol: Some(sp.protocol.clone().unwrap_or_else(|| "TCP".into())),
                    app_protocol: sp.app_protocol.clone(),
                })
            })
            .collect();
        // A port-less Service only has endpoints when headless (DNS needs the addresses).
        if ports.is_empty() && !(util::ports(svc).is_empty() && util::is_headless(svc)) {
            continue;
        }
        if total >= MAX_ADDRESSES {
            truncated = true;
            continue;
        }
        total += 1;
        ports.sort_by_key(port_key);
        let key: Vec<_> = ports.iter().map(port_key).collect();
        let (_, (ready, not_ready)) = groups
            .entry(key)
            .or_insert_with(|| (ports, Default::default()));
        if tolerate_unready || pods::is_ready(pod) {
            ready.push(address);
        } else {
            not_ready.push(address);
        }
    }
    let subsets = groups
        .into_values()
        .map(|(ports, (mut ready, mut not_ready))| {
            ready.sort_by(|a, b| a.ip.cmp(&b.ip));
            not_ready.sort_by(|a, b| a.ip.cmp(&b.ip));
            EndpointSubset {
                addresses: (!ready.is_empty()).then_some(ready),
                not_ready_addresses: (!not_ready.is_empty()).then_some(not_ready),
                ports: (!ports.is_empty()).then_some(ports),
            }
        })
        .collect();
    (subsets, truncated)
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{
        Container, ContainerPort, PodCondition, PodSpec, PodStatus, ServiceSpec,
    };
    use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

    fn svc(target: IntOrString) -> Service {
        Service {
            metadata: ObjectMeta {
                name: Some("web".into()),
                namespace: Some("default".into()),
                ..Default::default()
            },
            spec: Some(ServiceSpec {
                selector: Some([("app".to_string(), "web".to_string())].into()),
                ports: Some(vec![k8s_openapi::api::core::v1::ServicePort {
                    name: Some("http".into()),
                    port: 80,
                    target_port: Some(target),
                    protocol: Some("TCP".into()),
                    ..Default::default()
                }]),
                ..Default::default()
            }),
            status: None,
        }
    }

    fn pod(name: &str, ip: &str, ready: bool, port: i32) -> Arc<Pod> {
        Arc::new(Pod {
            metadata: ObjectMeta {
                name: Some(name.into()),
                namespace: Some("default".into()),
                uid: Some(format!("uid-{name}")),
                labels: Some([("app".to_string(), "web".to_string())].into()),
                ..Default::default()
            },
            spec: Some(PodSpec {
                node_name: Some("n1".into()),
                containers: vec![Container {
                    name: "c".into(),
                    ports: Some(vec![ContainerPort {
                        name: Some("web".into()),
                        container_port: port,
                        ..Default::default()
                    }]),
                    ..Default::default()
                }],
                ..Default::default()
            }),
            status: Some(PodStatus {
                phase: Some("Running".into()),
                pod_ip: Some(ip.into()),
                conditions: Some(vec![PodCondition {
                    type_: "Ready".into(),
                    status: if ready { "True" } else { "False" }.into(),
                    ..Default::default()
                }]),
                ..Default::default()
            }),
        })
    }

    #[test]
    fn ready_and_not_ready_kept_apart_and_named_ports_group_subsets() {
        let s = svc(IntOrString::String("web".into()));
        let pods = vec![
            pod("b", "10.42.0.3", true, 8080),
            pod("a", "10.42.0.2", true, 8080),
            pod("c", "10.42.0.4", false, 8080),
            pod("d", "10.42.0.5", true, 9090),
        ];
        let (subsets, truncated) = desired_subsets(&s, &pods);
        assert!(!truncated);
        assert_eq!(subsets.len(), 2, "{subsets:#?}");
        let by_port = |p: i32| {
            subsets
                .iter()
                .find(|s| s.ports.as_ref().unwrap()[0].port == p)
                .unwrap()
        };
        let s8080 = by_port(8080);
        let ips: Vec<_> = s8080
            .addresses
            .as_ref()
            .unwrap()
            .iter()
            .map(|a| a.ip.as_str())
            .collect();
        assert_eq!(ips, ["10.42.0.2", "10.42.0.3"]);
        assert_eq!(
            s8080.not_ready_addresses.as_ref().unwrap()[0].ip,
            "10.42.0.4"
        );
        assert_eq!(
            s8080.ports.as_ref().unwrap()[0].name.as_deref(),
            Some("http")
        );
        assert_eq!(by_port(9090).addresses.as_ref().unwrap()[0].ip, "10.42.0.5");
    }

    #[test]
    fn publish_not_ready_and_pods_without_ip_or_ended() {
        let mut s = svc(IntOrString::Int(8080));
        s.spec.as_mut().unwrap().publish_not_ready_addresses = Some(true);
        let mut no_ip = (*pod("x", "", true, 1)).clone();
        no_ip.status.as_mut().unwrap().pod_ip = None;
        let mut done = (*pod("y", "10.42.0.9", false, 1)).clone();
        done.status.as_mut().unwrap().phase = Some("Succeeded".into());
        let pods = vec![
            pod("c", "10.42.0.4", false, 1),
            Arc::new(no_ip),
            Arc::new(done),
        ];
        let (subsets, _) = desired_subsets(&s, &pods);
        assert_eq!(subsets.len(), 1);
        let addrs = subsets[0].addresses.as_ref().unwrap();
        assert_eq!(addrs.len(), 1);
        assert_eq!(addrs[0].ip, "10.42.0.4");
        assert_eq!(subsets[0].ports.as_ref().unwrap()[0].port, 8080);
    }
}
