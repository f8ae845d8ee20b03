//! The Gateway API statuses: what the build wants ([`Desired`]), merged into the objects'
//! current statuses (conditions keep their `lastTransitionTime` while their status holds,
//! conditions and route parents of other controllers are kept, addresses of other nodes
//! are kept), and written only when that changes anything. Every node computes the same
//! conditions from the same caches, so several nodes do not fight: the first write wins
//! (replace with the object's resourceVersion), the others then find nothing to change.

use std::net::IpAddr;
use std::sync::Arc;

use client_go::informer::Informer;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::api::PostParams;
use kube::{Api, Client, Resource};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::sync::watch;

use super::build::RouteLists;
use super::types::{
    ConditionsStatus, GROUP, GRPCRoute, Gateway, GatewayAddress, GatewayClass, GatewayStatus,
    HTTPRoute, ListenerStatus, ObjectRef, RouteGroupKind, RouteParentStatus, RouteStatus,
};

/// One condition as the build decides it.
#[derive(Clone, Debug, PartialEq)]
pub struct Cond {
    pub type_: &'static str,
    pub status: bool,
    pub reason: &'static str,
    pub message: String,
}

impl Cond {
    pub fn new(
        type_: &'static str,
        status: bool,
        reason: &'static str,
        message: impl Into<String>,
    ) -> Self {
        Cond {
            type_,
            status,
            reason,
            message: message.into(),
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct ListenerDesired {
    pub name: String,
    pub supported_kinds: Vec<RouteGroupKind>,
    pub attached: i32,
    pub conditions: Vec<Cond>,
}

/// A route's parent entries of this controller: the parentRef and its conditions.
pub type RouteParents = Vec<(ObjectRef, Vec<Cond>)>;

/// The statuses the build wants, keyed as the informers key objects.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Desired {
    pub classes: Vec<(String, Vec<Cond>)>,
    pub gateways: Vec<(String, Vec<Cond>, Vec<ListenerDesired>)>,
    /// Every HTTPRoute, with this controller's parent entries (none: remove ours).
    pub routes: Vec<(String, RouteParents)>,
    /// Every GRPCRoute, the same way.
    pub grpc_routes: Vec<(String, RouteParents)>,
}

/// `existing` with `desired` merged in: a condition whose status holds keeps its
/// `lastTransitionTime`; conditions of other types stay as they are.
pub fn merge_conditions(
    existing: &[Condition],
    desired: &[Cond],
    generation: Option<i64>,
    now: &Time,
) -> Vec<Condition> {
    let mut out = existing.to_vec();
    for d in desired {
        let status = if d.status { "True" } else { "False" };
        let fresh = Condition {
            type_: d.type_.to_string(),
            status: status.to_string(),
            reason: d.reason.to_string(),
            message: d.message.clone(),
            observed_generation: generation,
            last_transition_time: now.clone(),
        };
        match out.iter_mut().find(|c| c.type_ == d.type_) {
            Some(c) => {
                let time = if c.status == status {
                    c.last_transition_time.clone()
                } else {
                    now.clone()
                };
                *c = Condition {
                    last_transition_time: time,
                    ..fresh
                };
            }
            None => out.push(fresh),
        }
    }
    out
}

fn generation<K: Resource>(o: &K) -> Option<i64> {
    o.meta().generation
}

pub fn class_status(c: &GatewayClass, conds: &[Cond], now: &Time) -> ConditionsStatus {
    let mut s = c.status.clone().unwrap_or_default();
    s.conditions = merge_conditions(&s.conditions, conds, generation(c), now);
    s
}

pub fn gateway_status(
    g: &Gateway,
    conds: &[Cond],
    listeners: &[ListenerDesired],
    ours: &[IpAddr],
    now: &Time,
) -> GatewayStatus {
    let mut s = g.status.clone().unwrap_or_default();
    let observed = generation(g);
    s.conditions = merge_conditions(&s.conditions, conds, observed, now);
    let ours: Vec<String> = ours.iter().map(IpAddr::to_string).collect();
    let mut addresses: Vec<GatewayAddress> = s
        .addresses
        .iter()
        .filter(|a| !ours.contains(&a.value))
        .cloned()
        .collect();
    addresses.extend(ours.iter().map(|ip| GatewayAddress {
        type_: Some("IPAddress".into()),
        value: ip.clone(),
    }));
    addresses.sort();
    s.addresses = addresses;
    s.listeners = listeners
        .iter()
        .map(|l| {
            let before = s.listeners.iter().find(|e| e.name == l.name);
            ListenerStatus {
                name: l.name.clone(),
                supported_kinds: l.supported_kinds.clone(),
                attached_routes: l.attached,
                conditions: merge_conditions(
                    before.map(|b| b.conditions.as_slice()).unwrap_or_default(),
                    &l.conditions,
                    observed,
                    now,
                ),
            }
        })
        .collect();
    s
}

/// Route conditions upstream has set only while True (`PartiallyInvalid`: "MUST only be
/// set when it is True").
const ONLY_WHILE_TRUE: &[&str] = &["PartiallyInvalid"];

/// A route kind's status (HTTPRoute, GRPCRoute: the same `RouteStatus`).
pub trait Route: Resource<DynamicType = ()> {
    fn route_status(&self) -> Option<&RouteStatus>;
    fn set_route_status(&mut self, s: RouteStatus);
}

macro_rules! route {
    ($($t:ident),*) => {$(
        impl Route for $t {
            fn route_status(&self) -> Option<&RouteStatus> {
                self.status.as_ref()
            }
            fn set_route_status(&mut self, s: RouteStatus) {
                self.status = Some(s);
            }
        }
    )*};
}
route!(HTTPRoute, GRPCRoute);

pub fn route_status<R: Route>(
    r: &R,
    controller: &str,
    parents: &[(ObjectRef, Vec<Cond>)],
    now: &Time,
) -> RouteStatus {
    let mut s = r.route_status().cloned().unwrap_or_default();
    let observed = generation(r);
    let mut out: Vec<RouteParentStatus> = s
        .parents
        .iter()
        .filter(|p| p.controller_name != controller)
        .cloned()
        .collect();
    for (parent, conds) in parents {
        // A condition set only while True goes when the build no longer sets it.
        let before: Vec<Condition> = s
            .parents
            .iter()
            .find(|p| p.controller_name == controller && p.parent_ref == *parent)
            .map(|b| b.conditions.as_slice())
            .unwrap_or_default()
            .iter()
            .filter(|c| {
                !ONLY_WHILE_TRUE.contains(&c.type_.as_str())
                    || conds.iter().any(|d| d.type_ == c.type_)
            })
            .cloned()
            .collect();
        out.push(RouteParentStatus {
            parent_ref: parent.clone(),
            controller_name: controller.to_string(),
            conditions: merge_conditions(&before, conds, observed, now),
        });
    }
    s.parents = out;
    s
}

/// The informers the writer reads the current objects from.
pub struct Sources {
    pub classes: Informer<GatewayClass>,
    pub gateways: Informer<Gateway>,
    pub routes: RouteInformers,
}

/// The route informers, one per kind.
pub struct RouteInformers {
    pub http: Informer<HTTPRoute>,
    pub grpc: Informer<GRPCRoute>,
}

impl RouteInformers {
    /// Every route cached, by kind: the build's input.
    pub fn list(&self) -> RouteLists {
        RouteLists {
            http: self.http.list(),
            grpc: self.grpc.list(),
        }
    }
}

/// Keeps the statuses in step with what it is sent.
pub async fn run(
    client: Client,
    sources: Arc<Sources>,
    controller: String,
    ours: Vec<IpAddr>,
    mut desired: watch::Receiver<Arc<Desired>>,
) {
    while desired.changed().await.is_ok() {
        let d = desired.borrow_and_update().clone();
        let now = Time(k8s_openapi::jiff::Timestamp::now());
        for (key, conds) in &d.classes {
            let Some(c) = sources.classes.get_key(key) else {
                continue;
            };
            let next = class_status(&c, conds, &now);
            if c.status.as_ref() != Some(&next) {
                let mut updated = (*c).clone();
                updated.status = Some(next);
                write(Api::all(client.clone()), updated, "GatewayClass").await;
            }
        }
        for (key, conds, listeners) in &d.gateways {
            let Some(g) = sources.gateways.get_key(key) else {
                continue;
            };
            let next = gateway_status(&g, conds, listeners, &ours, &now);
            if g.status.as_ref() != Some(&next) {
                let mut updated = (*g).clone();
                updated.status = Some(next);
                let api = Api::namespaced(client.clone(), ns_of(&g.metadata));
                write(api, updated, "Gateway").await;
            }
        }
        sync_routes(&client, &sources.routes.http, &d.routes, &controller, &now).await;
        sync_routes(
            &client,
            &sources.routes.grpc,
            &d.grpc_routes,
            &controller,
            &now,
        )
        .await;
    }
}

/// Writes the routes of one kind whose merged status differs from theirs.
async fn sync_routes<R>(
    client: &Client,
    informer: &Informer<R>,
    desired: &[(String, RouteParents)],
    controller: &str,
    now: &Time,
) where
    R: Route
        + Resource<Scope = k8s_openapi::NamespaceResourceScope>
        + Typed
        + Clone
        + Serialize
        + DeserializeOwned
        + std::fmt::Debug,
{
    for (key, parents) in desired {
        let Some(r) = informer.get_key(key) else {
            continue;
        };
        let next = route_status(r.as_ref(), controller, parents, now);
        if r.route_status().cloned().unwrap_or_default() != next {
            let mut updated = (*r).clone();
            updated.set_route_status(next);
            let api = Api::namespaced(client.clone(), ns_of(r.meta()));
            let kind = R::kind(&()).into_owned();
            write(api, updated, &kind).await;
        }
    }
}

fn ns_of(m: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta) -> &str {
    m.namespace.as_deref().unwrap_or("default")
}

/// What the writer needs of a kind: its type fields, set before the write (a list's items
/// may come without them).
pub trait Typed {
    fn set_type(&mut self, kind: &str);
}

macro_rules! typed {
    ($($t:ident),*) => {$(
        impl Typed for $t {
            fn set_type(&mut self, kind: &str) {
                self.api_version = Some(format!("{GROUP}/v1"));
                self.kind = Some(kind.to_string());
            }
        }
    )*};
}
typed!(GatewayClass, Gateway, HTTPRoute, GRPCRoute);

/// Replaces the status with the object's resourceVersion: a concurrent writer (another
/// node) makes this a conflict, retried when the informer brings the new version.
async fn write<K>(api: Api<K>, mut obj: K, kind: &str)
where
    K: Resource<DynamicType = ()> + Typed + Clone + Serialize + DeserializeOwned + std::fmt::Debug,
{
    obj.set_type(kind);
    let name = obj.meta().name.clone().unwrap_or_default();
    match api
        .replace_status(&name, &PostParams::default(), &obj)
        .await
    {
        Ok(_) => tracing::debug!(kind, name, "status updated"),
        Err(kube::Error::Api(e)) if e.code == 409 || e.code == 404 => {
            tracing::debug!(
                kind,
                name,
                code = e.code,
                "status not written; retried on the next change"
            )
        }
        Err(e) => tracing::warn!(kind, name, error = %e, "updating the status failed"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: i64) -> Time {
        Time(k8s_openapi::jiff::Timestamp::from_second(s).unwrap_or_default())
    }

    #[test]
    fn conditions_keep_their_transition_time_while_their_status_holds() {
        let accepted = |ok: bool| vec![Cond::new("Accepted", ok, "Accepted", "m")];
        let first = merge_conditions(&[], &accepted(true), Some(1), &t(100));
        let other = Condition {
            type_: "example.com/Other".into(),
            status: "True".into(),
            reason: "X".into(),
            message: String::new(),
            observed_generation: None,
            last_transition_time: t(5),
        };
        let mut with_other = first.clone();
        with_other.push(other.clone());
        let again = merge_conditions(&with_other, &accepted(true), Some(2), &t(200));
        assert_eq!(again[0].last_transition_time, t(100));
        assert_eq!(again[0].observed_generation, Some(2));
        assert_eq!(again[1], other, "another controller's condition stays");
        let flipped = merge_conditions(&again, &accepted(false), Some(2), &t(300));
        assert_eq!(flipped[0].last_transition_time, t(300));
        assert_eq!(flipped[0].status, "False");
        assert_eq!(
            merge_conditions(&flipped, &accepted(false), Some(2), &t(400)),
            flipped
        );
    }

    #[test]
    fn gateway_addresses_keep_other_nodes() {
        let mut g = Gateway {
            status: Some(GatewayStatus {
                addresses: vec![GatewayAddress {
                    type_: Some("IPAddress".into()),
                    value: "10.0.0.2".into(),
                }],
                ..Default::default()
            }),
            ..Default::default()
        };
        let me: Vec<IpAddr> = vec![IpAddr::from([10, 0, 0, 1])];
        let s = gateway_status(&g, &[], &[], &me, &t(1));
        let values: Vec<&str> = s.addresses.iter().map(|a| a.value.as_str()).collect();
        assert_eq!(values, ["10.0.0.1", "10.0.0.2"]);
        g.status = Some(s.clone());
        assert_eq!(
            gateway_status(&g, &[], &[], &me, &t(2)),
            s,
            "nothing to write"
        );
    }

    #[test]
    fn route_parents_of_other_controllers_are_kept_and_ours_replaced() {
        let parent = |name: &str| ObjectRef {
            name: name.into(),
            ..Default::default()
        };
        let theirs = RouteParentStatus {
            parent_ref: parent("theirs"),
            controller_name: "example.com/other".into(),
            conditions: vec![],
        };
        let r = HTTPRoute {
            status: Some(RouteStatus {
                parents: vec![
                    theirs.clone(),
                    RouteParentStatus {
                        parent_ref: parent("gone"),
                        controller_name: "rkube.io/gateway-controller".into(),
                        conditions: vec![],
                    },
                ],
                ..Default::default()
            }),
            ..Default::default()
        };
        let ours = vec![(
            parent("gw"),
            vec![Cond::new("Accepted", true, "Accepted", "")],
        )];
        let s = route_status(&r, "rkube.io/gateway-controller", &ours, &t(1));
        let names: Vec<&str> = s
            .parents
            .iter()
            .map(|p| p.parent_ref.name.as_str())
            .collect();
        assert_eq!(names, ["theirs", "gw"]);
        assert_eq!(s.parents[0], theirs);
    }

    #[test]
    fn partially_invalid_is_removed_once_the_route_is_valid() {
        let parent = ObjectRef {
            name: "gw".into(),
            ..Default::default()
        };
        let ours = "rkube.io/gateway-controller";
        let partial = vec![(
            parent.clone(),
            vec![
                Cond::new("Accepted", true, "Accepted", ""),
                Cond::new(
                    "PartiallyInvalid",
                    true,
                    "UnsupportedValue",
                    "Dropped Rule 1",
                ),
            ],
        )];
        let mut r = HTTPRoute::default();
        let s = route_status(&r, ours, &partial, &t(1));
        let types = |s: &RouteStatus| -> Vec<String> {
            s.parents[0]
                .conditions
                .iter()
                .map(|c| format!("{}={}", c.type_, c.status))
                .collect()
        };
        assert_eq!(types(&s), ["Accepted=True", "PartiallyInvalid=True"]);
        r.status = Some(s);
        let valid = vec![(parent, vec![Cond::new("Accepted", true, "Accepted", "")])];
        let s = route_status(&r, ours, &valid, &t(2));
        assert_eq!(types(&s), ["Accepted=True"], "never written as False");
    }
}
