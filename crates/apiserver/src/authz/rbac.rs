//! RBAC as Kubernetes evaluates it: a request is allowed when a rule of a role bound to the
//! user (by a ClusterRoleBinding, or by a RoleBinding in the request's namespace) allows
//! it. The roles and bindings are kept in an index fed by the watch cache, rebuilt when
//! they change, so an authorization is a few hash lookups however many there are.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use serde_json::Value;
use tokio::sync::watch;

use super::Attributes;
use crate::authn::UserInfo;
use crate::registry::Registry;

/// One PolicyRule.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Rule {
    pub verbs: Vec<String>,
    pub api_groups: Vec<String>,
    pub resources: Vec<String>,
    pub resource_names: Vec<String>,
    pub non_resource_urls: Vec<String>,
}

fn strings(v: &Value, key: &str) -> Vec<String> {
    v.get(key)
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

fn has(list: &[String], s: &str) -> bool {
    list.iter().any(|x| x == s)
}

impl Rule {
    pub fn from_value(v: &Value) -> Rule {
        Rule {
            verbs: strings(v, "verbs"),
            api_groups: strings(v, "apiGroups"),
            resources: strings(v, "resources"),
            resource_names: strings(v, "resourceNames"),
            non_resource_urls: strings(v, "nonResourceURLs"),
        }
    }

    pub fn to_value(&self) -> Value {
        let mut m = serde_json::Map::new();
        m.insert("verbs".into(), serde_json::json!(self.verbs));
        for (k, v) in [
            ("apiGroups", &self.api_groups),
            ("resources", &self.resources),
            ("resourceNames", &self.resource_names),
            ("nonResourceURLs", &self.non_resource_urls),
        ] {
            if !v.is_empty() {
                m.insert(k.into(), serde_json::json!(v));
            }
        }
        Value::Object(m)
    }

    /// Whether this rule allows the request (upstream's `RuleAllows`).
    pub fn allows(&self, a: &Attributes) -> bool {
        if !(has(&self.verbs, "*") || has(&self.verbs, &a.verb)) {
            return false;
        }
        if !a.is_resource_request {
            return self.non_resource_urls.iter().any(|u| {
                u == "*"
                    || *u == a.path
                    || (u.ends_with('*') && a.path.starts_with(u.trim_end_matches('*')))
            });
        }
        if !(has(&self.api_groups, "*") || has(&self.api_groups, &a.api_group)) {
            return false;
        }
        let combined = if a.subresource.is_empty() {
            a.resource.clone()
        } else {
            format!("{}/{}", a.resource, a.subresource)
        };
        let resource_ok = self.resources.iter().any(|r| {
            r == "*"
                || *r == combined
                || (!a.subresource.is_empty()
                    && r.len() == a.subresource.len() + 2
                    && r.starts_with("*/")
                    && r.ends_with(&a.subresource))
        });
        resource_ok && (self.resource_names.is_empty() || has(&self.resource_names, &a.name))
    }
}

/// Which role a binding grants.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum RoleRef {
    ClusterRole(String),
    /// A Role, in the binding's namespace.
    Role(String, String),
}

/// The key a subject is indexed by: users and service accounts by user name, groups by
/// group name.
fn subject_keys(binding: &Value) -> Vec<String> {
    let ns = crate::meta::namespace(binding);
    binding
        .get("subjects")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|s| {
            let name = s.get("name").and_then(Value::as_str)?;
            match s.get("kind").and_then(Value::as_str)? {
                "User" => Some(format!("u:{name}")),
                "Group" => Some(format!("g:{name}")),
                "ServiceAccount" => {
                    let sa_ns = s
                        .get("namespace")
                        .and_then(Value::as_str)
                        .filter(|n| !n.is_empty())
                        .unwrap_or(ns);
                    Some(format!("u:system:serviceaccount:{sa_ns}:{name}"))
                }
                _ => None,
            }
        })
        .collect()
}

fn role_ref(binding: &Value) -> Option<RoleRef> {
    let r = binding.get("roleRef")?;
    let name = r.get("name").and_then(Value::as_str)?.to_string();
    match r.get("kind").and_then(Value::as_str)? {
        "ClusterRole" => Some(RoleRef::ClusterRole(name)),
        "Role" => Some(RoleRef::Role(
            crate::meta::namespace(binding).to_string(),
            name,
        )),
        _ => None,
    }
}

fn rules_of(role: &Value) -> Arc<[Rule]> {
    role.get("rules")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(Rule::from_value)
        .collect()
}

/// The roles and bindings, indexed for evaluation.
#[derive(Default)]
struct Index {
    cluster_roles: HashMap<String, Arc<[Rule]>>,
    roles: HashMap<(String, String), Arc<[Rule]>>,
    /// Subject key → what ClusterRoleBindings grant it.
    cluster_bindings: HashMap<String, Vec<RoleRef>>,
    /// (namespace, subject key) → what RoleBindings there grant it.
    bindings: HashMap<(String, String), Vec<RoleRef>>,
}

/// The raw objects of one kind, by `namespace/name`.
type Objects = HashMap<String, Value>;

#[derive(Default)]
struct Sources {
    roles: Objects,
    cluster_roles: Objects,
    role_bindings: Objects,
    cluster_role_bindings: Objects,
}

impl Sources {
    fn index(&self) -> Index {
        let mut ix = Index::default();
        for r in self.cluster_roles.values() {
            ix.cluster_roles
                .insert(crate::meta::name(r).to_string(), rules_of(r));
        }
        for r in self.roles.values() {
            ix.roles.insert(
                (
                    crate::meta::namespace(r).to_string(),
                    crate::meta::name(r).to_string(),
                ),
                rules_of(r),
            );
        }
        for b in self.cluster_role_bindings.values() {
            // A ClusterRoleBinding can only name a ClusterRole.
            let Some(rr @ RoleRef::ClusterRole(_)) = role_ref(b) else {
                continue;
            };
            for k in subject_keys(b) {
                ix.cluster_bindings.entry(k).or_default().push(rr.clone());
            }
        }
        for b in self.role_bindings.values() {
            let Some(rr) = role_ref(b) else { continue };
            let ns = crate::meta::namespace(b).to_string();
            for k in subject_keys(b) {
                ix.bindings
                    .entry((ns.clone(), k))
                    .or_default()
                    .push(rr.clone());
            }
        }
        ix
    }
}

/// The RBAC authorizer's state: the four kinds as the watch cache last delivered them.
pub struct Rbac {
    sources: std::sync::Mutex<Sources>,
    index: std::sync::RwLock<Arc<Index>>,
    /// Set (after `sources` changed) when `index` is behind.
    dirty: AtomicBool,
    rebuild: std::sync::Mutex<()>,
    synced: watch::Sender<u8>,
}

fn user_keys(user: &UserInfo) -> impl Iterator<Item = String> + '_ {
    std::iter::once(format!("u:{}", user.name)).chain(user.groups.iter().map(|g| format!("g:{g}")))
}

impl Rbac {
    /// Starts following roles and bindings in `registry`; returns once all four are loaded,
    /// with the tasks that follow them.
    pub async fn start(registry: Arc<Registry>) -> (Arc<Rbac>, Vec<tokio::task::JoinHandle<()>>) {
        let rbac = Arc::new(Rbac {
            sources: Default::default(),
            index: Default::default(),
            dirty: AtomicBool::new(true),
            rebuild: Default::default(),
            synced: watch::channel(0).0,
        });
        let mut tasks = Vec::new();
        for kind in ["Role", "ClusterRole", "RoleBinding", "ClusterRoleBinding"] {
            let info = crate::resources::all()
                .into_iter()
                .find(|r| r.group == "rbac.authorization.k8s.io" && r.kind == kind);
            if let Some(info) = info {
                let synced = rbac.synced.clone();
                tasks.push(tokio::spawn(super::follow(
                    registry.clone(),
                    info,
                    rbac.clone(),
                    synced,
                )));
            }
        }
        let mut rx = rbac.synced.subscribe();
        let _ = tokio::time::timeout(std::time::Duration::from_secs(30), rx.wait_for(|n| *n >= 4))
            .await;
        (rbac, tasks)
    }

    fn objects<'a>(s: &'a mut Sources, kind: &str) -> &'a mut Objects {
        match kind {
            "Role" => &mut s.roles,
            "ClusterRole" => &mut s.cluster_roles,
            "RoleBinding" => &mut s.role_bindings,
            _ => &mut s.cluster_role_bindings,
        }
    }
}

impl super::Follower for Rbac {
    fn replace(&self, kind: &str, items: Vec<Value>) {
        let Ok(mut s) = self.sources.lock() else {
            return;
        };
        let map = Rbac::objects(&mut s, kind);
        map.clear();
        for obj in items {
            let key = format!(
                "{}/{}",
                crate::meta::namespace(&obj),
                crate::meta::name(&obj)
            );
            map.insert(key, obj);
        }
        self.dirty.store(true, Ordering::Release);
    }

    fn apply(&self, kind: &str, event: &str, obj: Value) {
        let Ok(mut s) = self.sources.lock() else {
            return;
        };
        let map = Rbac::objects(&mut s, kind);
        let key = format!(
            "{}/{}",
            crate::meta::namespace(&obj),
            crate::meta::name(&obj)
        );
        if event == "DELETED" {
            map.remove(&key);
        } else {
            map.insert(key, obj);
        }
        self.dirty.store(true, Ordering::Release);
    }
}

impl Rbac {
    /// The index, rebuilt first if roles or bindings changed. Rebuilds are serialized: two
    /// racing ones could otherwise store an older snapshot over a newer one, and leave it
    /// there until the next change.
    fn index(&self) -> Arc<Index> {
        if self.dirty.load(Ordering::Acquire)
            && let Ok(_one_at_a_time) = self.rebuild.lock()
            && self.dirty.swap(false, Ordering::AcqRel)
        {
            let fresh = match self.sources.lock() {
                Ok(s) => Arc::new(s.index()),
                Err(_) => return Arc::default(),
            };
            if let Ok(mut ix) = self.index.write() {
                *ix = fresh.clone();
            }
            return fresh;
        }
        self.index.read().map(|ix| ix.clone()).unwrap_or_default()
    }

    /// Calls `visit` with every rule that applies to `user` in `namespace` (cluster-wide
    /// rules first); stops when it returns true. Returns whether it stopped.
    fn visit(
        &self,
        user: &UserInfo,
        namespace: &str,
        mut visit: impl FnMut(&Rule) -> bool,
    ) -> bool {
        let ix = self.index();
        let rules_of = |rr: &RoleRef| -> Option<Arc<[Rule]>> {
            match rr {
                RoleRef::ClusterRole(n) => ix.cluster_roles.get(n).cloned(),
                RoleRef::Role(ns, n) => ix.roles.get(&(ns.clone(), n.clone())).cloned(),
            }
        };
        for k in user_keys(user) {
            for rr in ix.cluster_bindings.get(&k).into_iter().flatten() {
                if rules_of(rr).is_some_and(|rules| rules.iter().any(&mut visit)) {
                    return true;
                }
            }
        }
        if namespace.is_empty() {
            return false;
        }
        for k in user_keys(user) {
            for rr in ix
                .bindings
                .get(&(namespace.to_string(), k))
                .into_iter()
                .flatten()
            {
                if rules_of(rr).is_some_and(|rules| rules.iter().any(&mut visit)) {
                    return true;
                }
            }
        }
        false
    }

    pub fn allows(&self, a: &Attributes) -> bool {
        self.visit(&a.user, &a.namespace, |r| r.allows(a))
    }

    /// Every rule that applies to `user` in `namespace` (SelfSubjectRulesReview, and what
    /// escalation checks compare against).
    pub fn rules_for(&self, user: &UserInfo, namespace: &str) -> Vec<Rule> {
        let mut out = Vec::new();
        self.visit(user, namespace, |r| {
            out.push(r.clone());
            false
        });
        out
    }

    /// The rules of the role a binding names (for escalation checks); `None` when it does
    /// not exist.
    pub fn role_rules(&self, kind: &str, namespace: &str, name: &str) -> Option<Vec<Rule>> {
        let ix = self.index();
        let rules = match kind {
            "ClusterRole" => ix.cluster_roles.get(name),
            _ => ix.roles.get(&(namespace.to_string(), name.to_string())),
        };
        rules.map(|r| r.to_vec())
    }
}

/// Whether `owner` rules cover every rule in `servant` (upstream's `Covers`): what you
/// cannot do, you cannot grant. Returns the rules not covered.
pub fn uncovered(owner: &[Rule], servant: &[Rule]) -> Vec<Rule> {
    let mut missing = Vec::new();
    for rule in servant {
        for simple in breakdown(rule) {
            if !owner.iter().any(|o| covers(o, &simple)) && !missing.contains(&simple) {
                missing.push(simple);
            }
        }
    }
    missing
}

/// A rule as single-verb, single-group, single-resource(, single-name) rules.
fn breakdown(rule: &Rule) -> Vec<Rule> {
    let mut out = Vec::new();
    for verb in &rule.verbs {
        for url in &rule.non_resource_urls {
            out.push(Rule {
                verbs: vec![verb.clone()],
                non_resource_urls: vec![url.clone()],
                ..Default::default()
            });
        }
        for group in &rule.api_groups {
            for resource in &rule.resources {
                let base = Rule {
                    verbs: vec![verb.clone()],
                    api_groups: vec![group.clone()],
                    resources: vec![resource.clone()],
                    ..Default::default()
                };
                if rule.resource_names.is_empty() {
                    out.push(base);
                } else {
                    for n in &rule.resource_names {
                        out.push(Rule {
                            resource_names: vec![n.clone()],
                            ..base.clone()
                        });
                    }
                }
            }
        }
    }
    out
}

/// Whether `owner` covers one simple rule.
fn covers(owner: &Rule, s: &Rule) -> bool {
    let verb_ok = has(&owner.verbs, "*") || s.verbs.iter().all(|v| has(&owner.verbs, v));
    if !verb_ok {
        return false;
    }
    if !s.non_resource_urls.is_empty() {
        return s.non_resource_urls.iter().all(|u| {
            owner.non_resource_urls.iter().any(|o| {
                o == "*" || o == u || (o.ends_with('*') && u.starts_with(o.trim_end_matches('*')))
            })
        });
    }
    let group_ok =
        has(&owner.api_groups, "*") || s.api_groups.iter().all(|g| has(&owner.api_groups, g));
    let resource_ok = s.resources.iter().all(|r| {
        has(&owner.resources, "*")
            || has(&owner.resources, r)
            || r.split_once('/')
                .is_some_and(|(_, sub)| has(&owner.resources, &format!("*/{sub}")))
    });
    let names_ok = owner.resource_names.is_empty()
        || (!s.resource_names.is_empty()
            && s.resource_names
                .iter()
                .all(|n| has(&owner.resource_names, n)));
    group_ok && resource_ok && names_ok
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn attrs(verb: &str, group: &str, resource: &str, sub: &str, name: &str) -> Attributes {
        Attributes {
            user: UserInfo::new("u", vec![]),
            verb: verb.into(),
            is_resource_request: true,
            api_group: group.into(),
            resource: resource.into(),
            subresource: sub.into(),
            namespace: "ns".into(),
            name: name.into(),
            path: String::new(),
        }
    }

    #[test]
    fn rules_match_as_upstream() {
        let r =
            Rule::from_value(&json!({"verbs": ["get"], "apiGroups": [""], "resources": ["pods"]}));
        assert!(r.allows(&attrs("get", "", "pods", "", "x")));
        assert!(!r.allows(&attrs("list", "", "pods", "", "")));
        assert!(!r.allows(&attrs("get", "apps", "pods", "", "x")));
        // A subresource needs its own entry.
        assert!(!r.allows(&attrs("get", "", "pods", "log", "x")));
        let r = Rule::from_value(
            &json!({"verbs": ["*"], "apiGroups": ["*"], "resources": ["*/status"]}),
        );
        assert!(r.allows(&attrs("update", "apps", "deployments", "status", "d")));
        assert!(!r.allows(&attrs("update", "apps", "deployments", "", "d")));
        let r = Rule::from_value(
            &json!({"verbs": ["get"], "apiGroups": [""], "resources": ["secrets"], "resourceNames": ["a"]}),
        );
        assert!(r.allows(&attrs("get", "", "secrets", "", "a")));
        assert!(!r.allows(&attrs("get", "", "secrets", "", "b")));
        assert!(!r.allows(&attrs("list", "", "secrets", "", "")));
        let r = Rule::from_value(&json!({"verbs": ["get"], "nonResourceURLs": ["/apis/*"]}));
        let mut a = attrs("get", "", "", "", "");
        a.is_resource_request = false;
        a.path = "/apis/apps".into();
        assert!(r.allows(&a));
        a.path = "/api".into();
        assert!(!r.allows(&a));
    }

    #[test]
    fn covering() {
        let owner = vec![Rule::from_value(
            &json!({"verbs": ["get", "list"], "apiGroups": [""], "resources": ["pods", "*/status"]}),
        )];
        let ok = vec![Rule::from_value(
            &json!({"verbs": ["get"], "apiGroups": [""], "resources": ["pods", "pods/status"], "resourceNames": ["a"]}),
        )];
        assert!(uncovered(&owner, &ok).is_empty());
        let bad = vec![Rule::from_value(
            &json!({"verbs": ["get", "delete"], "apiGroups": [""], "resources": ["pods"]}),
        )];
        let missing = uncovered(&owner, &bad);
        assert_eq!(missing.len(), 1);
        assert_eq!(missing[0].verbs, vec!["delete"]);
    }
}
