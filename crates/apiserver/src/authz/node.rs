//! The Node authorizer: a kubelet (`system:node:<name>` in `system:nodes`) may read a
//! Secret, ConfigMap, PersistentVolumeClaim or PersistentVolume, or request a token for a
//! ServiceAccount, only when a pod bound to its node uses it. Everything else a node may
//! do is the `system:node` role's rules, evaluated here as upstream does. Other users get
//! no opinion.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use serde_json::Value;
use tokio::sync::watch;

use super::rbac::Rule;
use super::{Attributes, Decision, Follower};
use crate::registry::Registry;

pub const NODES_GROUP: &str = "system:nodes";
pub const NODE_USER_PREFIX: &str = "system:node:";

/// Something a pod uses, by kind, namespace and name.
type Ref = (&'static str, String, String);

#[derive(Default)]
struct Graph {
    /// Pod `ns/name` → (node, what it uses).
    pods: HashMap<String, (String, Vec<Ref>)>,
    /// Node → what its pods use, with how many pods use each.
    uses: HashMap<String, HashMap<Ref, usize>>,
    /// PVC `ns/name` → the PV it is bound to.
    claims: HashMap<(String, String), String>,
}

impl Graph {
    fn remove_pod(&mut self, key: &str) {
        let Some((node, refs)) = self.pods.remove(key) else {
            return;
        };
        if let Some(uses) = self.uses.get_mut(&node) {
            for r in refs {
                if let Some(n) = uses.get_mut(&r) {
                    *n -= 1;
                    if *n == 0 {
                        uses.remove(&r);
                    }
                }
            }
            if uses.is_empty() {
                self.uses.remove(&node);
            }
        }
    }

    fn add_pod(&mut self, pod: &Value) {
        let key = format!("{}/{}", crate::meta::namespace(pod), crate::meta::name(pod));
        self.remove_pod(&key);
        let Some(node) = pod
            .pointer("/spec/nodeName")
            .and_then(Value::as_str)
            .filter(|n| !n.is_empty())
        else {
            return;
        };
        let refs = pod_refs(pod);
        let uses = self.uses.entry(node.to_string()).or_default();
        for r in &refs {
            *uses.entry(r.clone()).or_default() += 1;
        }
        self.pods.insert(key, (node.to_string(), refs));
    }
}

/// What a pod uses: its Secrets, ConfigMaps, claims and ServiceAccount.
fn pod_refs(pod: &Value) -> Vec<Ref> {
    let ns = crate::meta::namespace(pod).to_string();
    let mut out: Vec<Ref> = Vec::new();
    let mut add = |kind: &'static str, name: Option<&str>| {
        if let Some(n) = name.filter(|n| !n.is_empty()) {
            let r = (kind, ns.clone(), n.to_string());
            if !out.contains(&r) {
                out.push(r);
            }
        }
    };
    let spec = pod.get("spec").cloned().unwrap_or_default();
    add(
        "serviceaccounts",
        spec.get("serviceAccountName").and_then(Value::as_str),
    );
    for s in spec
        .get("imagePullSecrets")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        add("secrets", s.get("name").and_then(Value::as_str));
    }
    for v in spec
        .get("volumes")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        add(
            "secrets",
            v.pointer("/secret/secretName").and_then(Value::as_str),
        );
        add(
            "configmaps",
            v.pointer("/configMap/name").and_then(Value::as_str),
        );
        add(
            "persistentvolumeclaims",
            v.pointer("/persistentVolumeClaim/claimName")
                .and_then(Value::as_str),
        );
        // A generic ephemeral volume's claim is `<pod>-<volume>` (upstream's graph too).
        if v.get("ephemeral").is_some() {
            let claim = format!(
                "{}-{}",
                crate::meta::name(pod),
                v.get("name").and_then(Value::as_str).unwrap_or_default()
            );
            add("persistentvolumeclaims", Some(claim.as_str()));
        }
        for src in v
            .pointer("/projected/sources")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            add(
                "secrets",
                src.pointer("/secret/name").and_then(Value::as_str),
            );
            add(
                "configmaps",
                src.pointer("/configMap/name").and_then(Value::as_str),
            );
        }
    }
    for field in ["initContainers", "containers", "ephemeralContainers"] {
        for c in spec
            .get(field)
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            for e in c
                .get("envFrom")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                add(
                    "secrets",
                    e.pointer("/secretRef/name").and_then(Value::as_str),
                );
                add(
                    "configmaps",
                    e.pointer("/configMapRef/name").and_then(Value::as_str),
                );
            }
            for e in c.get("env").and_then(Value::as_array).into_iter().flatten() {
                add(
                    "secrets",
                    e.pointer("/valueFrom/secretKeyRef/name")
                        .and_then(Value::as_str),
                );
                add(
                    "configmaps",
                    e.pointer("/valueFrom/configMapKeyRef/name")
                        .and_then(Value::as_str),
                );
            }
        }
    }
    out
}

pub struct NodeAuthorizer {
    graph: Mutex<Graph>,
    /// The `system:node` role's rules: what any node may do beyond the graph.
    rules: Vec<Rule>,
    synced: watch::Sender<u8>,
}

impl Follower for NodeAuthorizer {
    fn replace(&self, kind: &str, items: Vec<Value>) {
        let Ok(mut g) = self.graph.lock() else {
            return;
        };
        if kind == "Pod" {
            g.pods.clear();
            g.uses.clear();
            for p in &items {
                g.add_pod(p);
            }
        } else {
            g.claims.clear();
            for c in &items {
                Self::add_claim(&mut g, c);
            }
        }
    }

    fn apply(&self, kind: &str, event: &str, obj: Value) {
        let Ok(mut g) = self.graph.lock() else {
            return;
        };
        let key = (
            crate::meta::namespace(&obj).to_string(),
            crate::meta::name(&obj).to_string(),
        );
        match (kind, event) {
            ("Pod", "DELETED") => g.remove_pod(&format!("{}/{}", key.0, key.1)),
            ("Pod", _) => g.add_pod(&obj),
            (_, "DELETED") => {
                g.claims.remove(&key);
            }
            _ => Self::add_claim(&mut g, &obj),
        }
    }

    /// Only bound pods are in the graph, and a pod's node never changes once set, so an
    /// unbound pod's events (every create, before the scheduler binds it) need no decoding.
    fn prefilter(&self, kind: &str) -> Option<fn(&[u8]) -> bool> {
        (kind == "Pod").then_some(may_be_bound as fn(&[u8]) -> bool)
    }
}

/// Whether a stored pod may name a node (it has a `nodeName` somewhere).
fn may_be_bound(stored: &[u8]) -> bool {
    std::str::from_utf8(stored).map_or(true, |s| s.contains("\"nodeName\""))
}

impl NodeAuthorizer {
    /// Starts following pods and claims; returns once both are loaded, with the tasks.
    pub async fn start(
        registry: Arc<Registry>,
    ) -> (Arc<NodeAuthorizer>, Vec<tokio::task::JoinHandle<()>>) {
        let rules = super::bootstrap_policy::cluster_roles()
            .iter()
            .find(|r| crate::meta::name(r) == "system:node")
            .and_then(|r| r.get("rules").and_then(Value::as_array).cloned())
            .unwrap_or_default()
            .iter()
            .map(Rule::from_value)
            .collect();
        let node = Arc::new(NodeAuthorizer {
            graph: Default::default(),
            rules,
            synced: watch::channel(0).0,
        });
        let mut tasks = Vec::new();
        for kind in ["Pod", "PersistentVolumeClaim"] {
            if let Some(info) = crate::resources::all()
                .into_iter()
                .find(|r| r.group.is_empty() && r.kind == kind)
            {
                tasks.push(tokio::spawn(super::follow(
                    registry.clone(),
                    info,
                    node.clone(),
                    node.synced.clone(),
                )));
            }
        }
        let mut rx = node.synced.subscribe();
        let _ = tokio::time::timeout(std::time::Duration::from_secs(30), rx.wait_for(|n| *n >= 2))
            .await;
        (node, tasks)
    }

    fn add_claim(g: &mut Graph, claim: &Value) {
        let key = (
            crate::meta::namespace(claim).to_string(),
            crate::meta::name(claim).to_string(),
        );
        match claim.pointer("/spec/volumeName").and_then(Value::as_str) {
            Some(pv) if !pv.is_empty() => {
                g.claims.insert(key, pv.to_string());
            }
            _ => {
                g.claims.remove(&key);
            }
        }
    }

    /// The node a user is the kubelet of, if it is one.
    pub fn node_of(user: &crate::authn::UserInfo) -> Option<&str> {
        if !user.in_group(NODES_GROUP) {
            return None;
        }
        user.name
            .strip_prefix(NODE_USER_PREFIX)
            .filter(|n| !n.is_empty())
    }

    pub fn authorize(&self, a: &Attributes) -> Decision {
        let Some(node) = Self::node_of(&a.user) else {
            return Decision::NoOpinion;
        };
        if a.is_resource_request && a.api_group.is_empty() {
            let graph_kind = match (a.resource.as_str(), a.subresource.as_str()) {
                ("secrets", "") => Some("secrets"),
                ("configmaps", "") => Some("configmaps"),
                ("persistentvolumeclaims", "") => Some("persistentvolumeclaims"),
                ("persistentvolumes", "") => Some("persistentvolumes"),
                ("serviceaccounts", "token") => Some("serviceaccounts"),
                _ => None,
            };
            // Listing volumes is RBAC's to decide (rkube's nodes may, to sweep the local-path
            // directories of deleted ones); getting one still needs a relationship.
            let rbac_decides = graph_kind == Some("persistentvolumes")
                && matches!(a.verb.as_str(), "list" | "watch");
            if let Some(kind) = graph_kind.filter(|_| !rbac_decides) {
                return self.authorize_graph(node, kind, a);
            }
        }
        if self.rules.iter().any(|r| r.allows(a)) {
            Decision::Allow
        } else {
            Decision::NoOpinion
        }
    }

    fn authorize_graph(&self, node: &str, kind: &'static str, a: &Attributes) -> Decision {
        let verb_ok = if kind == "serviceaccounts" {
            a.verb == "create"
        } else {
            matches!(a.verb.as_str(), "get" | "list" | "watch")
        };
        if !verb_ok || a.name.is_empty() {
            return Decision::Deny(format!(
                "can only {} individual resources of this type",
                if kind == "serviceaccounts" {
                    "create tokens for"
                } else {
                    "get"
                }
            ));
        }
        let Ok(g) = self.graph.lock() else {
            return Decision::NoOpinion;
        };
        let uses = g.uses.get(node);
        let related = if kind == "persistentvolumes" {
            uses.is_some_and(|u| {
                u.keys().any(|(k, ns, claim)| {
                    *k == "persistentvolumeclaims"
                        && g.claims.get(&(ns.clone(), claim.clone())) == Some(&a.name)
                })
            })
        } else {
            uses.is_some_and(|u| u.contains_key(&(kind, a.namespace.clone(), a.name.clone())))
        };
        if related {
            Decision::Allow
        } else {
            Decision::Deny(format!(
                "no relationship found between node '{node}' and this object"
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn only_pods_naming_a_node_are_decoded() {
        let bytes = |v: Value| serde_json::to_vec(&v).unwrap();
        let unbound = json!({"metadata": {"name": "p"}, "spec": {"containers": []}});
        let bound = json!({"metadata": {"name": "p"}, "spec": {"nodeName": "n1"}});
        assert!(!may_be_bound(&bytes(unbound)));
        assert!(may_be_bound(&bytes(bound)));
        assert!(may_be_bound(
            b"\xff not UTF-8: decode and let decoding judge"
        ));
    }

    #[test]
    fn a_pod_uses_its_secrets_configmaps_claims_and_account() {
        let pod = json!({"metadata": {"name": "p", "namespace": "ns"}, "spec": {
            "nodeName": "n1", "serviceAccountName": "sa",
            "imagePullSecrets": [{"name": "pull"}],
            "volumes": [{"name": "a", "secret": {"secretName": "s1"}},
                        {"name": "b", "projected": {"sources": [{"configMap": {"name": "c1"}}]}},
                        {"name": "c", "persistentVolumeClaim": {"claimName": "data"}},
                        {"name": "scratch", "ephemeral": {"volumeClaimTemplate": {"spec": {}}}}],
            "containers": [{"name": "c", "env": [{"name": "X", "valueFrom": {"secretKeyRef": {"name": "s2", "key": "k"}}}],
                "envFrom": [{"configMapRef": {"name": "c2"}}]}]}});
        let refs = pod_refs(&pod);
        for (k, n) in [
            ("secrets", "pull"),
            ("secrets", "s1"),
            ("secrets", "s2"),
            ("configmaps", "c1"),
            ("configmaps", "c2"),
            ("persistentvolumeclaims", "data"),
            ("persistentvolumeclaims", "p-scratch"),
            ("serviceaccounts", "sa"),
        ] {
            assert!(
                refs.contains(&(k, "ns".to_string(), n.to_string())),
                "{k}/{n}"
            );
        }
        let mut g = Graph::default();
        g.add_pod(&pod);
        assert!(g.uses["n1"].contains_key(&("secrets", "ns".into(), "s1".into())));
        g.remove_pod("ns/p");
        assert!(g.uses.is_empty());
    }
}
