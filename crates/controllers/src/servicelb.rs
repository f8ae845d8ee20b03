//! The service load balancer (k3s' servicelb, on bare metal): a `LoadBalancer` Service
//! without a `loadBalancerClass` gets the addresses of the cluster's ready nodes as
//! `status.loadBalancer.ingress`, and kube-proxy on every node accepts the Service's port on
//! those addresses. A node labelled `node.kubernetes.io/exclude-from-external-load-balancers`
//! is left out; a Service that stops being a LoadBalancer loses the status.

use std::sync::Arc;

use anyhow::Context;
use k8s_openapi::api::core::v1::{LoadBalancerIngress, Node, Service};
use kube::api::{Patch, PatchParams};
use kube::{Api, Client};
use serde_json::json;

use client_go::informer::{Change, Informer, key_of};
use client_go::queue::WorkQueue;
use client_go::reconciler::{self, Action, Reconciler};

const EXCLUDE_LABEL: &str = "node.kubernetes.io/exclude-from-external-load-balancers";

pub struct ServiceLbController {
    client: Client,
    services: Informer<Service>,
    nodes: Informer<Node>,
    queue: Arc<WorkQueue>,
}

fn is_ours(svc: &Service) -> bool {
    svc.spec.as_ref().is_some_and(|s| {
        s.type_.as_deref() == Some("LoadBalancer") && s.load_balancer_class.is_none()
    })
}

fn node_ready(n: &Node) -> bool {
    n.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .and_then(|cs| cs.iter().find(|c| c.type_ == "Ready"))
        .is_some_and(|c| c.status == "True")
}

/// The ingress addresses: each eligible ready node's ExternalIP, else its InternalIP, sorted.
pub fn ingress(nodes: &[Arc<Node>]) -> Vec<LoadBalancerIngress> {
    let mut ips: Vec<String> = nodes
        .iter()
        .filter(|n| node_ready(n))
        .filter(|n| {
            !n.metadata
                .labels
                .as_ref()
                .is_some_and(|l| l.contains_key(EXCLUDE_LABEL))
        })
        .filter_map(|n| {
            let addrs = n.status.as_ref()?.addresses.as_ref()?;
            let of = |t: &str| {
                addrs
                    .iter()
                    .find(|a| a.type_ == t)
                    .map(|a| a.address.clone())
            };
            of("ExternalIP").or_else(|| of("InternalIP"))
        })
        .collect();
    ips.sort();
    ips.dedup();
    ips.into_iter()
        .map(|ip| LoadBalancerIngress {
            ip: Some(ip),
            ip_mode: Some("VIP".into()),
            ..Default::default()
        })
        .collect()
}

impl ServiceLbController {
    pub fn new(client: Client, services: Informer<Service>, nodes: Informer<Node>) -> Arc<Self> {
        let c = Arc::new(ServiceLbController {
            client,
            services,
            nodes,
            queue: WorkQueue::new(),
        });
        let me = c.clone();
        c.services.on_change(move |ch: &Change<Service>| {
            if let Some(s) = &ch.new {
                me.queue.add(key_of(s.as_ref()));
            }
        });
        let me = c.clone();
        c.nodes.on_change(move |ch: &Change<Node>| {
            let addresses = |n: &Option<Arc<Node>>| {
                n.as_ref().map(|n| {
                    (
                        node_ready(n),
                        n.status.as_ref().and_then(|s| s.addresses.clone()),
                        n.metadata
                            .labels
                            .as_ref()
                            .is_some_and(|l| l.contains_key(EXCLUDE_LABEL)),
                    )
                })
            };
            if addresses(&ch.old) != addresses(&ch.new) {
                for s in me.services.list() {
                    if is_ours(&s) {
                        me.queue.add(key_of(s.as_ref()));
                    }
                }
            }
        });
        c
    }

    pub async fn run(self: Arc<Self>, workers: usize) {
        reconciler::run(&self, &self.queue, &[&self.services, &self.nodes], workers).await;
    }
}

impl Reconciler for ServiceLbController {
    const NAME: &'static str = "servicelb";

    async fn reconcile(self: &Arc<Self>, key: &str) -> anyhow::Result<Action> {
        let Some(svc) = self.services.get_key(key) else {
            return Ok(Action::Done);
        };
        let current = svc
            .status
            .as_ref()
            .and_then(|s| s.load_balancer.as_ref())
            .and_then(|lb| lb.ingress.clone())
            .unwrap_or_default();
        let want = if is_ours(&svc) {
            ingress(&self.nodes.list())
        } else if svc.spec.as_ref().and_then(|s| s.type_.as_deref()) != Some("LoadBalancer") {
            // No longer a LoadBalancer: the addresses it had are no longer served.
            Vec::new()
        } else {
            // Another implementation's (loadBalancerClass): not ours to touch.
            return Ok(Action::Done);
        };
        if current == want {
            return Ok(Action::Done);
        }
        let (ns, name) = key.split_once('/').unwrap_or(("", key));
        let api: Api<Service> = Api::namespaced(self.client.clone(), ns);
        let patch = json!({"status": {"loadBalancer": {"ingress": if want.is_empty() { json!(null) } else { json!(want) }}}});
        api.patch_status(name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .context("setting the load balancer status")?;
        tracing::info!(service = key, ingress = ?want.iter().filter_map(|i| i.ip.as_deref()).collect::<Vec<_>>(), "load balancer addresses set");
        Ok(Action::Done)
    }
}
