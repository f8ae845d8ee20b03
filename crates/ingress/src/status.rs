//! `status.loadBalancer.ingress` of the Ingresses: this node's addresses in every served
//! one, and out of those it no longer serves. Each node adds only its own addresses (other
//! nodes' entries are kept), so several nodes running the controller list all of them.

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::sync::Arc;

use client_go::informer::{Informer, key_of};
use k8s_openapi::api::networking::v1::{
    Ingress, IngressLoadBalancerIngress, IngressLoadBalancerStatus, IngressStatus,
};
use kube::api::PostParams;
use kube::{Api, Client};
use tokio::sync::watch;

/// The entries `ing` should have: its current ones with ours added (`serve`) or removed.
/// `None` when nothing changes.
pub fn desired(
    ing: &Ingress,
    ours: &[IpAddr],
    serve: bool,
) -> Option<Vec<IngressLoadBalancerIngress>> {
    let current: Vec<IngressLoadBalancerIngress> = ing
        .status
        .as_ref()
        .and_then(|s| s.load_balancer.as_ref())
        .and_then(|lb| lb.ingress.clone())
        .unwrap_or_default();
    let ours_str: BTreeSet<String> = ours.iter().map(IpAddr::to_string).collect();
    let mut next: Vec<IngressLoadBalancerIngress> = current
        .iter()
        .filter(|e| !e.ip.as_ref().is_some_and(|ip| ours_str.contains(ip)))
        .cloned()
        .collect();
    if serve {
        next.extend(ours_str.iter().map(|ip| IngressLoadBalancerIngress {
            ip: Some(ip.clone()),
            ..Default::default()
        }));
    }
    next.sort_by(|a, b| (&a.ip, &a.hostname).cmp(&(&b.ip, &b.hostname)));
    let mut sorted_current = current.clone();
    sorted_current.sort_by(|a, b| (&a.ip, &a.hostname).cmp(&(&b.ip, &b.hostname)));
    (next != sorted_current).then_some(next)
}

/// Keeps the statuses in step with the served set it is sent (keys `namespace/name`).
pub async fn run(
    client: Client,
    ingresses: Informer<Ingress>,
    ours: Vec<IpAddr>,
    mut served: watch::Receiver<Arc<BTreeSet<String>>>,
) {
    if ours.is_empty() {
        return;
    }
    while served.changed().await.is_ok() {
        let set = served.borrow_and_update().clone();
        for ing in ingresses.list() {
            let key = key_of(ing.as_ref());
            let Some(entries) = desired(&ing, &ours, set.contains(&key)) else {
                continue;
            };
            let mut updated = (*ing).clone();
            updated
                .status
                .get_or_insert_with(IngressStatus::default)
                .load_balancer = Some(IngressLoadBalancerStatus {
                ingress: (!entries.is_empty()).then_some(entries),
            });
            let ns = ing.metadata.namespace.as_deref().unwrap_or("default");
            let name = ing.metadata.name.as_deref().unwrap_or_default();
            let api: Api<Ingress> = Api::namespaced(client.clone(), ns);
            // The object's resourceVersion goes with it: a concurrent writer (another node)
            // makes this a conflict, retried when the informer brings the new version.
            match api
                .replace_status(name, &PostParams::default(), &updated)
                .await
            {
                Ok(_) => tracing::debug!(ingress = %key, "status.loadBalancer updated"),
                Err(kube::Error::Api(e)) if e.code == 409 || e.code == 404 => {}
                Err(e) => {
                    tracing::warn!(ingress = %key, error = %e, "updating the Ingress status failed")
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(ips: &[&str]) -> Ingress {
        Ingress {
            status: Some(IngressStatus {
                load_balancer: Some(IngressLoadBalancerStatus {
                    ingress: Some(
                        ips.iter()
                            .map(|ip| IngressLoadBalancerIngress {
                                ip: Some(ip.to_string()),
                                ..Default::default()
                            })
                            .collect(),
                    ),
                }),
            }),
            ..Default::default()
        }
    }

    fn ips(v: Option<Vec<IngressLoadBalancerIngress>>) -> Option<Vec<String>> {
        v.map(|v| v.into_iter().filter_map(|e| e.ip).collect())
    }

    #[test]
    fn adds_and_removes_only_our_addresses() {
        let me: Vec<IpAddr> = vec![IpAddr::from([10, 0, 0, 1])];
        assert_eq!(
            ips(desired(&Ingress::default(), &me, true)),
            Some(vec!["10.0.0.1".into()])
        );
        assert_eq!(ips(desired(&with(&["10.0.0.1"]), &me, true)), None);
        assert_eq!(
            ips(desired(&with(&["10.0.0.2"]), &me, true)),
            Some(vec!["10.0.0.1".into(), "10.0.0.2".into()]),
            "another node's entry stays"
        );
        assert_eq!(
            ips(desired(&with(&["10.0.0.2", "10.0.0.1"]), &me, false)),
            Some(vec!["10.0.0.2".into()])
        );
        assert_eq!(ips(desired(&with(&["10.0.0.2"]), &me, false)), None);
    }
}
