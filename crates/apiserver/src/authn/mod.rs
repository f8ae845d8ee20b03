//! Authentication: who made a request. x509 client certificates signed by the cluster CA
//! (CN = user, O = groups); more authenticators join here. As in Kubernetes, an
//! authenticated user also gets `system:authenticated`, a request with no credentials is
//! `system:anonymous` in `system:unauthenticated`, and bad credentials are a 401.

use std::collections::BTreeMap;

use rustls::pki_types::CertificateDer;

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

    pub fn in_group(&self, group: &str) -> bool {
        self.groups.iter().any(|g| g == group)
    }
}

tokio::task_local! {
    /// The user the request being served is made as (after impersonation). Admission and
    /// audit read it, as Kubernetes' handlers read it from the request context.
    pub static USER: UserInfo;
}

/// The current request's user; `None` outside a request (the server's own writes).
pub fn current_user() -> Option<UserInfo> {
    USER.try_with(Clone::clone).ok()
}

/// Paths anyone may reach without credentials (upstream's anonymous authentication limited
/// to its configurable endpoints, as a hardened cluster sets it): everything else without
/// credentials is a 401. RBAC still decides (`system:public-info-viewer`).
fn anonymous_allowed(path: &str) -> bool {
    let path = path.trim_end_matches('/');
    matches!(path, "/healthz" | "/livez" | "/readyz" | "/version")
        || ["/healthz/", "/livez/", "/readyz/"]
            .iter()
            .any(|p| path.starts_with(p))
}

/// Who a request is from: its client certificate's user, or anonymous where that is allowed.
pub fn authenticate(cert_user: Option<UserInfo>, path: &str) -> crate::error::ApiResult<UserInfo> {
    match cert_user {
        Some(u) => Ok(u.authenticated()),
        None if anonymous_allowed(path) => Ok(UserInfo::anonymous()),
        None => Err(crate::error::ApiError::unauthorized()),
    }
}

/// The user a client certificate names: CN is the user, each O a group.
pub fn user_from_cert(der: &CertificateDer<'_>) -> Option<UserInfo> {
    let (_, cert) = x509_parser::parse_x509_certificate(der.as_ref()).ok()?;
    let subject = cert.subject();
    let name = subject
        .iter_common_name()
        .next()?
        .as_str()
        .ok()?
        .to_string();
    let groups = subject
        .iter_organization()
        .filter_map(|o| o.as_str().ok().map(str::to_string))
        .collect();
    Some(UserInfo::new(name, groups))
}
