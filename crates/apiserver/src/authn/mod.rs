//! Authentication: who made a request. x509 client certificates signed by the cluster CA
//! (CN = user, O = groups); more authenticators join here. As in Kubernetes, an
//! authenticated user also gets `system:authenticated`, a request with no credentials is
//! `system:anonymous` in `system:unauthenticated`, and bad credentials are a 401.

use std::collections::HashMap;

use rustls::pki_types::CertificateDer;

use crate::error::{ApiError, ApiResult};
use crate::registry::Registry;

pub mod bootstrap;
pub mod requestheader;
pub mod serviceaccount;

// Who a user is lives below every layer (upstream's `authentication/user`); these names
// stay reachable here, where identities are made.
pub use crate::user::{ANONYMOUS, AUTHENTICATED, MASTERS, UNAUTHENTICATED, UserInfo};

/// Paths anyone may reach without credentials (upstream's anonymous authentication limited
/// to its configurable endpoints, as a hardened cluster sets it): everything else without
/// credentials is a 401. RBAC still decides (`system:public-info-viewer`).
fn anonymous_allowed(path: &str) -> bool {
    let path = path.trim_end_matches('/');
    // cluster-info: how a joining node learns the CA, checked against its token's hash.
    matches!(
        path,
        "/healthz"
            | "/livez"
            | "/readyz"
            | "/version"
            | "/api/v1/namespaces/kube-public/configmaps/cluster-info"
    ) || ["/healthz/", "/livez/", "/readyz/"]
        .iter()
        .any(|p| path.starts_with(p))
}

/// Authenticators beyond client certificates, which TLS checks.
#[derive(Default)]
pub struct Authenticator {
    /// Signs and verifies ServiceAccount tokens.
    pub service_accounts: Option<serviceaccount::TokenSigner>,
    /// `--token-auth-file`: static bearer tokens.
    pub static_tokens: HashMap<String, UserInfo>,
    /// Audiences a ServiceAccount token must name one of (`--api-audiences`).
    pub audiences: Vec<String>,
    /// The front proxy's certificates, which name the user in headers
    /// (`--requestheader-client-ca-file`).
    pub request_header: Option<requestheader::RequestHeader>,
}

impl Authenticator {
    /// Who a connection's verified client certificate is: the front proxy (signed by its
    /// CA; each request's headers then name the user), else its CN and O.
    pub fn cert_identity(&self, cert: &CertificateDer<'_>) -> Option<requestheader::CertIdentity> {
        use requestheader::CertIdentity;
        match &self.request_header {
            Some(rh) if rh.signed(cert) => Some(if rh.allowed(cert) {
                CertIdentity::FrontProxy
            } else {
                CertIdentity::Nobody
            }),
            _ => user_from_cert(cert).map(CertIdentity::User),
        }
    }

    /// Who a request is from: its client certificate's user, else its bearer token's,
    /// else anonymous where that is allowed. Bad credentials are a 401.
    pub async fn authenticate(
        &self,
        registry: &Registry,
        cert_user: Option<UserInfo>,
        headers: &http::HeaderMap,
        path: &str,
    ) -> ApiResult<UserInfo> {
        if let Some(u) = cert_user {
            return Ok(u.authenticated());
        }
        let bearer = headers
            .get(http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim)
            .filter(|t| !t.is_empty());
        match bearer {
            Some(token) => self
                .authenticate_token(registry, token)
                .await?
                .ok_or_else(ApiError::unauthorized),
            None if anonymous_allowed(path) => Ok(UserInfo::anonymous()),
            None => Err(ApiError::unauthorized()),
        }
    }

    /// The user a bearer token stands for; `None` when no authenticator accepts it.
    pub async fn authenticate_token(
        &self,
        registry: &Registry,
        token: &str,
    ) -> ApiResult<Option<UserInfo>> {
        if let Some(u) = self.static_tokens.get(token) {
            return Ok(Some(u.clone().authenticated()));
        }
        if let Some(u) = bootstrap::authenticate(registry, token).await? {
            return Ok(Some(u));
        }
        let Some(signer) = &self.service_accounts else {
            return Ok(None);
        };
        let Some(v) = signer.verify(token, &self.audiences) else {
            return Ok(None);
        };
        // The objects the token names must still be there, as they were.
        let live_uid = |kind: &'static str, ns: &str, name: &str| {
            let info = crate::resources::Catalog::new().by_kind("", kind).cloned();
            let ns = ns.to_string();
            let name = name.to_string();
            async move {
                let info = info?;
                let obj = registry.get(&info, Some(&ns), &name).await.ok()?;
                if obj.pointer("/metadata/deletionTimestamp").is_some() && kind == "Pod" {
                    return None;
                }
                crate::meta::str_at(&obj, "/metadata/uid").map(str::to_string)
            }
        };
        if live_uid("ServiceAccount", &v.namespace, &v.name).await != Some(v.uid.clone()) {
            return Ok(None);
        }
        for (kind, bound) in [("Pod", &v.binding.pod), ("Secret", &v.binding.secret)] {
            if let Some((name, uid)) = bound
                && live_uid(kind, &v.namespace, name).await.as_ref() != Some(uid)
            {
                return Ok(None);
            }
        }
        Ok(Some(v.user()))
    }
}

/// A TokenReview: who does `spec.token` authenticate as (for webhooks and proxies that
/// delegate authentication to the API server).
pub async fn token_review(
    state: &crate::handler::ApiState,
    mut review: serde_json::Value,
) -> ApiResult<serde_json::Value> {
    use serde_json::json;
    let token = review
        .pointer("/spec/token")
        .and_then(serde_json::Value::as_str)
        .unwrap_or("")
        .to_string();
    let status = match state
        .authenticator
        .authenticate_token(&state.registry, &token)
        .await?
    {
        Some(u) => {
            let user = u.to_json();
            json!({"authenticated": true, "user": user, "audiences": state.authenticator.audiences})
        }
        None => json!({"authenticated": false, "user": {}, "error": "invalid bearer token"}),
    };
    review["status"] = status;
    review["apiVersion"] = json!("authentication.k8s.io/v1");
    review["kind"] = json!("TokenReview");
    if review.get("metadata").is_none() {
        review["metadata"] = json!({});
    }
    Ok(review)
}

/// Reads `--token-auth-file`: lines of `token,user,uid[,"group1,group2"]`.
pub fn read_token_file(path: &std::path::Path) -> anyhow::Result<HashMap<String, UserInfo>> {
    use anyhow::Context;
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading the token file {}", path.display()))?;
    let mut out = HashMap::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let mut fields: Vec<String> = Vec::new();
        let (mut cur, mut quoted) = (String::new(), false);
        for ch in line.chars() {
            match ch {
                '"' => quoted = !quoted,
                ',' if !quoted => fields.push(std::mem::take(&mut cur)),
                c => cur.push(c),
            }
        }
        fields.push(cur);
        if fields.len() < 3 || fields[0].is_empty() || fields[1].is_empty() {
            anyhow::bail!(
                "{} line {}: want token,user,uid[,\"groups\"]",
                path.display(),
                i + 1
            );
        }
        let groups = fields
            .get(3)
            .map(|g| {
                g.split(',')
                    .map(str::trim)
                    .filter(|g| !g.is_empty())
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default();
        let mut user = UserInfo::new(fields[1].clone(), groups);
        user.uid = fields[2].clone();
        out.insert(fields[0].clone(), user);
    }
    Ok(out)
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
