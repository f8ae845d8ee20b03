//! Who a request is made as (Kubernetes' `k8s.io/apiserver/pkg/authentication/user`): the
//! identity authentication produces and every later layer (authorization, admission, the
//! registry's strategies, audit) is handed. A leaf module, so that the layers below
//! authentication can name a user without importing it.

use std::collections::BTreeMap;

pub const ANONYMOUS: &str = "system:anonymous";
pub const UNAUTHENTICATED: &str = "system:unauthenticated";
pub const AUTHENTICATED: &str = "system:authenticated";
pub const MASTERS: &str = "system:masters";

/// An authenticated identity (Kubernetes' `user.Info`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UserInfo {
    pub name: String,
    pub uid: String,
    pub groups: Vec<String>,
    pub extra: BTreeMap<String, Vec<String>>,
}

impl UserInfo {
    pub fn new(name: impl Into<String>, groups: Vec<String>) -> Self {
        UserInfo {
            name: name.into(),
            groups,
            ..Default::default()
        }
    }

    pub fn anonymous() -> Self {
        UserInfo::new(ANONYMOUS, vec![UNAUTHENTICATED.to_string()])
    }

    pub fn is_anonymous(&self) -> bool {
        self.name == ANONYMOUS
    }

    /// Adds `system:authenticated` to a user that came with credentials.
    pub fn authenticated(mut self) -> Self {
        if !self.is_anonymous() && !self.groups.iter().any(|g| g == AUTHENTICATED) {
            self.groups.push(AUTHENTICATED.to_string());
        }
        self
    }

    /// As Kubernetes writes a user in reviews, audit events and AdmissionReviews: empty
    /// fields left out.
    pub fn to_json(&self) -> serde_json::Value {
        let mut m = serde_json::Map::new();
        m.insert("username".into(), serde_json::json!(self.name));
        if !self.uid.is_empty() {
            m.insert("uid".into(), serde_json::json!(self.uid));
        }
        if !self.groups.is_empty() {
            m.insert("groups".into(), serde_json::json!(self.groups));
        }
        if !self.extra.is_empty() {
            m.insert("extra".into(), serde_json::json!(self.extra));
        }
        serde_json::Value::Object(m)
    }

    pub fn in_group(&self, group: &str) -> bool {
        self.groups.iter().any(|g| g == group)
    }
}
