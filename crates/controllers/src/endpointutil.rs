//! What the Endpoints and EndpointSlice controllers share (Kubernetes'
//! `pkg/controller/util/endpoint` and `pkg/api/v1/pod`): which Services select a pod, whether
//! a pod belongs in endpoints at all, its hostname under a Service, and the pod port a
//! Service port's targetPort names.

use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::api::core::v1::{ObjectReference, Pod, Service, ServicePort};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use client_go::informer::{Change, Informer, key_of};
use client_go::queue::WorkQueue;

/// The Service's selector, `None` for a Service without one (whose endpoints the user
/// writes). An empty map counts as none, as Kubernetes treats it.
pub fn selector(svc: &Service) -> Option<&BTreeMap<String, String>> {
    svc.spec
        .as_ref()?
        .selector
        .as_ref()
        .filter(|s| !s.is_empty())
}

pub fn is_external_name(svc: &Service) -> bool {
    svc.spec.as_ref().and_then(|s| s.type_.as_deref()) == Some("ExternalName")
}

pub fn is_headless(svc: &Service) -> bool {
    svc.spec.as_ref().and_then(|s| s.cluster_ip.as_deref()) == Some("None")
}

pub fn publish_not_ready(svc: &Service) -> bool {
    svc.spec
        .as_ref()
        .and_then(|s| s.publish_not_ready_addresses)
        .unwrap_or(false)
}

pub fn ports(svc: &Service) -> &[ServicePort] {
    svc.spec
        .as_ref()
        .and_then(|s| s.ports.as_deref())
        .unwrap_or_default()
}

fn selects(selector: &BTreeMap<String, String>, labels: Option<&BTreeMap<String, String>>) -> bool {
    selector
        .iter()
        .all(|(k, v)| labels.and_then(|l| l.get(k)) == Some(v))
}

/// The keys of the Services in the pod's namespace whose selector picks the pod.
pub fn services_for_pod(services: &Informer<Service>, pod: &Pod) -> Vec<String> {
    let ns = pod.metadata.namespace.as_deref().unwrap_or_default();
    services
        .list_namespace(ns)
        .iter()
        .filter(|s| selector(s).is_some_and(|sel| selects(sel, pod.metadata.labels.as_ref())))
        .map(|s| key_of(s.as_ref()))
        .collect()
}

/// Queues the Services that select a changed pod, now or before the change (what both
/// endpoints controllers do on a pod event).
pub fn queue_services_of(services: &Informer<Service>, queue: &WorkQueue, ch: &Change<Pod>) {
    for p in [&ch.old, &ch.new].into_iter().flatten() {
        for key in services_for_pod(services, p) {
            queue.add(key);
        }
    }
}

/// The pods of the Service's namespace its selector picks.
pub fn selected_pods(pods: &Informer<Pod>, svc: &Service) -> Vec<Arc<Pod>> {
    let Some(sel) = selector(svc) else {
        return Vec::new();
    };
    let ns = svc.metadata.namespace.as_deref().unwrap_or_default();
    pods.list_namespace(ns)
        .into_iter()
        .filter(|p| selects(sel, p.metadata.labels.as_ref()))
        .collect()
}

pub fn pod_ip(pod: &Pod) -> Option<&str> {
    let status = pod.status.as_ref()?;
    status
        .pod_ip
        .as_deref()
        .filter(|ip| !ip.is_empty())
        .or_else(|| status.pod_ips.as_ref()?.first().map(|i| i.ip.as_str()))
}

/// Kubernetes' ShouldPodBeInEndpoints: a pod with an IP that has not ended; one being
/// deleted only when `include_terminating`.
pub fn should_be_in_endpoints(pod: &Pod, include_terminating: bool) -> bool {
    if pod_ip(pod).is_none() {
        return false;
    }
    if !include_terminating && pod.metadata.deletion_timestamp.is_some() {
        return false;
    }
    let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
    !matches!(phase, Some("Succeeded" | "Failed"))
}

/// The pod's DNS hostname under the Service: set when the pod names a hostname and the
/// Service as its subdomain (a StatefulSet's pods under its governing Service).
pub fn hostname(pod: &Pod, svc: &Service) -> Option<String> {
    let spec = pod.spec.as_ref()?;
    let hostname = spec.hostname.as_deref().filter(|h| !h.is_empty())?;
    (spec.subdomain.as_deref() == svc.metadata.name.as_deref()
        && pod.metadata.namespace == svc.metadata.namespace)
        .then(|| hostname.to_string())
}

/// The pod port a Service port sends to (Kubernetes' FindPort): a number as it is, a name
/// looked up among the pod's container ports of the same protocol. `None` when the pod has
/// no such named port (it is then left out for that port).
pub fn find_port(pod: &Pod, port: &ServicePort) -> Option<i32> {
    match &port.target_port {
        None => Some(port.port),
        Some(IntOrString::Int(n)) if *n == 0 => Some(port.port),
        Some(IntOrString::Int(n)) => Some(*n),
        Some(IntOrString::String(name)) => {
            if let Ok(n) = name.parse::<i32>() {
                return Some(n);
            }
            let protocol = port.protocol.as_deref().unwrap_or("TCP");
            pod.spec
                .as_ref()?
                .containers
                .iter()
                .flat_map(|c| c.ports.iter().flatten())
                .find(|p| {
                    p.name.as_deref() == Some(name.as_str())
                        && p.protocol.as_deref().unwrap_or("TCP") == protocol
                })
                .map(|p| p.container_port)
        }
    }
}

pub fn pod_ref(pod: &Pod) -> ObjectReference {
    ObjectReference {
        kind: Some("Pod".into()),
        namespace: pod.metadata.namespace.clone(),
        name: pod.metadata.name.clone(),
        uid: pod.metadata.uid.clone(),
        ..Default::default()
    }
}

/// The labels a Service passes to its endpoints objects: its own, plus
/// `service.kubernetes.io/headless` for a headless one.
pub fn endpoint_labels(svc: &Service) -> BTreeMap<String, String> {
    let mut labels = svc.metadata.labels.clone().unwrap_or_default();
    if is_headless(svc) {
        labels.insert("service.kubernetes.io/headless".into(), String::new());
    } else {
        labels.remove("service.kubernetes.io/headless");
    }
    labels
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{Container, ContainerPort, PodSpec};

    fn pod_with_port(name: &str, port: i32, protocol: &str) -> Pod {
        Pod {
            spec: Some(PodSpec {
                containers: vec![Container {
                    name: "c".into(),
                    ports: Some(vec![ContainerPort {
                        name: Some(name.into()),
                        container_port: port,
                        protocol: Some(protocol.into()),
                        ..Default::default()
                    }]),
                    ..Default::default()
                }],
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn named_target_ports_resolve_per_pod_and_protocol() {
        let sp = |t: IntOrString, proto: &str| ServicePort {
            port: 80,
            target_port: Some(t),
            protocol: Some(proto.into()),
            ..Default::default()
        };
        let a = pod_with_port("http", 8080, "TCP");
        let b = pod_with_port("http", 9090, "TCP");
        let named = sp(IntOrString::String("http".into()), "TCP");
        assert_eq!(find_port(&a, &named), Some(8080));
        assert_eq!(find_port(&b, &named), Some(9090));
        // Same name, other protocol: not a match.
        assert_eq!(
            find_port(&a, &sp(IntOrString::String("http".into()), "UDP")),
            None
        );
        assert_eq!(find_port(&a, &sp(IntOrString::Int(7), "TCP")), Some(7));
        assert_eq!(
            find_port(
                &a,
                &ServicePort {
                    port: 80,
                    ..Default::default()
                }
            ),
            Some(80)
        );
    }
}
