//! Authorization: may this user do this? The chain, as `--authorization-mode=Node,RBAC`
//! with `system:masters` allowed everything first: the [`node`] authorizer decides what
//! kubelets may read, then [`rbac`]. A denial is a 403 in Kubernetes' words.

use std::sync::Arc;

use serde_json::{Value, json};

use crate::authn::{MASTERS, UserInfo};
use crate::error::ApiError;
use crate::registry::Registry;
use crate::request_info::RequestInfo;

pub mod bootstrap_policy;
pub mod escalation;
pub mod node;
pub mod rbac;
pub mod review;

/// A cache fed by [`follow`]: the full list, then each change.
pub trait Follower: Send + Sync {
    fn replace(&self, kind: &str, items: Vec<Value>);
    fn apply(&self, kind: &str, event: &str, obj: Value);
    /// Which events of `kind` can matter, judged on the stored bytes before decoding
    /// (false only for objects the follower would ignore); `None` when all can.
    fn prefilter(&self, _kind: &str) -> Option<fn(&[u8]) -> bool> {
        None
    }
}

/// Lists then watches one kind into `cache`, forever (listing again if the watch ends);
/// bumps `synced` once the first list is in.
pub async fn follow(
    registry: Arc<Registry>,
    info: crate::resources::ResourceInfo,
    cache: Arc<dyn Follower>,
    synced: tokio::sync::watch::Sender<u8>,
) {
    use futures::StreamExt;
    let mut first = true;
    loop {
        let listed = registry
            .list(&info, None, &crate::registry::ListQuery::default())
            .await;
        let list = match listed {
            Ok(l) => l,
            Err(e) => {
                tracing::warn!(kind = info.kind, error = %e, "authorizer list failed; retrying");
                tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                continue;
            }
        };
        let rv = crate::meta::str_at(&list, "/metadata/resourceVersion")
            .unwrap_or("0")
            .to_string();
        let items = list
            .get("items")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        cache.replace(info.kind, items);
        if first {
            first = false;
            synced.send_modify(|n| *n += 1);
        }
        let watch = match cache.prefilter(info.kind) {
            Some(keep) => registry.watch_prefiltered(&info, Some(&rv), keep).await,
            None => {
                registry
                    .watch(
                        &info,
                        None,
                        Default::default(),
                        Default::default(),
                        Some(&rv),
                        None,
                    )
                    .await
            }
        };
        let mut events = match watch {
            Ok(w) => w.events,
            Err(e) => {
                tracing::warn!(kind = info.kind, error = %e, "authorizer watch failed; listing again");
                tokio::time::sleep(std::time::Duration::from_millis(200)).await;
                continue;
            }
        };
        while let Some(ev) = events.next().await {
            match ev {
                Ok(ev) if matches!(ev.kind, "ADDED" | "MODIFIED" | "DELETED") => {
                    cache.apply(info.kind, ev.kind, ev.object)
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(kind = info.kind, error = %e, "authorizer watch error");
                    break;
                }
            }
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

/// What is asked, by whom (Kubernetes' `authorizer.Attributes`).
#[derive(Clone, Debug, Default)]
pub struct Attributes {
    pub user: UserInfo,
    pub verb: String,
    pub is_resource_request: bool,
    pub api_group: String,
    pub resource: String,
    pub subresource: String,
    pub namespace: String,
    pub name: String,
    pub path: String,
}

impl Attributes {
    pub fn new(user: UserInfo, info: &RequestInfo) -> Attributes {
        Attributes {
            user,
            verb: info.verb.clone(),
            is_resource_request: info.is_resource_request,
            api_group: info.api_group.clone(),
            resource: info.resource.clone(),
            subresource: info.subresource.clone(),
            namespace: info.namespace.clone(),
            name: info.name.clone(),
            path: info.path.clone(),
        }
    }
}

/// One authorizer's answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    Allow,
    /// Denied outright, with a reason; later authorizers are not asked.
    Deny(String),
    NoOpinion,
}

pub struct Authorizer {
    pub rbac: Arc<rbac::Rbac>,
    pub node: Arc<node::NodeAuthorizer>,
    /// The tasks keeping the caches current.
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Authorizer {
    /// Starts the authorizers' caches over `registry`; returns when they are loaded.
    pub async fn start(registry: Arc<Registry>) -> Arc<Authorizer> {
        let (rbac, mut tasks) = rbac::Rbac::start(registry.clone()).await;
        let (node, more) = node::NodeAuthorizer::start(registry).await;
        tasks.extend(more);
        Arc::new(Authorizer { rbac, node, tasks })
    }

    /// Stops following the store (the server is stopping).
    pub fn stop(&self) {
        for t in &self.tasks {
            t.abort();
        }
    }

    pub fn authorize(&self, a: &Attributes) -> Decision {
        if a.user.in_group(MASTERS) {
            return Decision::Allow;
        }
        match self.node.authorize(a) {
            Decision::NoOpinion => {}
            d => return d,
        }
        if self.rbac.allows(a) {
            return Decision::Allow;
        }
        Decision::NoOpinion
    }

    /// Authorizes, as the 403 a client gets when denied.
    pub fn check(&self, a: &Attributes) -> Result<(), ApiError> {
        match self.authorize(a) {
            Decision::Allow => Ok(()),
            Decision::Deny(reason) => Err(forbidden(a, &reason)),
            Decision::NoOpinion => Err(forbidden(a, "")),
        }
    }
}

/// Kubernetes' 403 for a denied request: `pods "x" is forbidden: User "u" cannot get
/// resource "pods" in API group "" in the namespace "ns"`.
pub fn forbidden(a: &Attributes, reason: &str) -> ApiError {
    let user = &a.user.name;
    let what = if !a.is_resource_request {
        format!("User {user:?} cannot {} path {:?}", a.verb, a.path)
    } else {
        let resource = if a.subresource.is_empty() {
            a.resource.clone()
        } else {
            format!("{}/{}", a.resource, a.subresource)
        };
        if a.namespace.is_empty() {
            format!(
                "User {user:?} cannot {} resource {resource:?} in API group {:?} at the cluster scope",
                a.verb, a.api_group
            )
        } else {
            format!(
                "User {user:?} cannot {} resource {resource:?} in API group {:?} in the namespace {:?}",
                a.verb, a.api_group, a.namespace
            )
        }
    };
    let what = if reason.is_empty() {
        what
    } else {
        format!("{what}: {reason}")
    };
    if !a.is_resource_request {
        return ApiError::forbidden(format!("forbidden: {what}"));
    }
    let qualified = if a.api_group.is_empty() {
        a.resource.clone()
    } else {
        format!("{}.{}", a.resource, a.api_group)
    };
    let message = if a.name.is_empty() {
        format!("{qualified} is forbidden: {what}")
    } else {
        format!("{qualified} {:?} is forbidden: {what}", a.name)
    };
    let mut e = ApiError::forbidden(message);
    let mut details = json!({"group": a.api_group, "kind": a.resource});
    if !a.name.is_empty() {
        details["name"] = Value::String(a.name.clone());
    }
    e.details = Some(details);
    e
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forbidden_messages_read_as_upstream() {
        let mut a = Attributes {
            user: UserInfo::new("bob", vec![]),
            verb: "list".into(),
            is_resource_request: true,
            resource: "pods".into(),
            namespace: "default".into(),
            ..Default::default()
        };
        assert_eq!(
            forbidden(&a, "").message,
            "pods is forbidden: User \"bob\" cannot list resource \"pods\" in API group \"\" in the namespace \"default\""
        );
        a.verb = "get".into();
        a.name = "web".into();
        a.api_group = "apps".into();
        a.resource = "deployments".into();
        a.subresource = "scale".into();
        a.namespace.clear();
        assert_eq!(
            forbidden(&a, "").message,
            "deployments.apps \"web\" is forbidden: User \"bob\" cannot get resource \"deployments/scale\" in API group \"apps\" at the cluster scope"
        );
        let n = Attributes {
            user: UserInfo::new("bob", vec![]),
            verb: "get".into(),
            path: "/metrics".into(),
            ..Default::default()
        };
        assert_eq!(
            forbidden(&n, "").message,
            "forbidden: User \"bob\" cannot get path \"/metrics\""
        );
    }
}
