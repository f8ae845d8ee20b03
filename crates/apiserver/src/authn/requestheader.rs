//! Upstream's request-header authenticator (`--requestheader-*`): a request whose client
//! certificate is signed by the front-proxy CA, with a CN among the allowed names, is made
//! as the user its `X-Remote-User`, `X-Remote-Group` and `X-Remote-Extra-<key>` headers
//! name — what an aggregator in front of this server vouches for. The same header names
//! are what rkube's aggregator sends extension API servers, and what it publishes for them
//! in `kube-system/extension-apiserver-authentication`.

use std::collections::BTreeMap;
use std::sync::Arc;

use anyhow::Context;
use rustls::pki_types::{CertificateDer, UnixTime};
use rustls::server::WebPkiClientVerifier;
use rustls::server::danger::ClientCertVerifier;
use serde_json::json;

use super::UserInfo;
use crate::error::ApiResult;
use crate::handler::ApiState;

/// `--requestheader-username-headers`: the first non-empty one names the user.
pub const USERNAME_HEADERS: &[&str] = &["X-Remote-User"];
/// `--requestheader-group-headers`: every value of each is a group.
pub const GROUP_HEADERS: &[&str] = &["X-Remote-Group"];
/// `--requestheader-extra-headers-prefix`: `<prefix><key>` headers carry user extras.
pub const EXTRA_HEADER_PREFIXES: &[&str] = &["X-Remote-Extra-"];

/// Where the request-header configuration is published for extension API servers.
pub const AUTHENTICATION_CONFIGMAP: (&str, &str) =
    ("kube-system", "extension-apiserver-authentication");

/// Trusts the front proxy: its CA and the client names it may present.
pub struct RequestHeader {
    verifier: Arc<dyn ClientCertVerifier>,
    allowed_names: Vec<String>,
}

impl RequestHeader {
    /// Trusts certificates signed by the CA(s) in `ca_pem` with a CN in `allowed_names`
    /// (any CN when empty, as upstream).
    pub fn new(ca_pem: &[u8], allowed_names: Vec<String>) -> anyhow::Result<Self> {
        let mut roots = rustls::RootCertStore::empty();
        for c in rustls_pemfile::certs(&mut &ca_pem[..]) {
            roots
                .add(c.context("parsing the request-header CA")?)
                .context("the request-header CA")?;
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
            .build()
            .context("the request-header CA")?;
        Ok(RequestHeader {
            verifier,
            allowed_names,
        })
    }

    /// Whether `cert` chains to the front-proxy CA: then it is the proxy's, never a user's.
    pub fn signed(&self, cert: &CertificateDer<'_>) -> bool {
        self.verifier
            .verify_client_cert(cert, &[], UnixTime::now())
            .is_ok()
    }

    /// Whether the proxy's certificate (one [`RequestHeader::signed`]) has a name this
    /// server allows.
    pub fn allowed(&self, cert: &CertificateDer<'_>) -> bool {
        let Some(cn) = super::user_from_cert(cert).map(|u| u.name) else {
            return false;
        };
        let ok = self.allowed_names.is_empty() || self.allowed_names.contains(&cn);
        if !ok {
            tracing::debug!(cn, "request-header client certificate CN not allowed");
        }
        ok
    }
}

/// What a connection's verified client certificate says, decided once per connection.
#[derive(Clone, Debug)]
pub enum CertIdentity {
    /// A cluster client certificate: its user.
    User(UserInfo),
    /// The allowed front proxy's: each request's headers name the user.
    FrontProxy,
    /// Signed by the front-proxy CA but not an allowed name: no user (upstream's
    /// request-header authenticator refuses it, and the x509 one does not trust the CA).
    Nobody,
}

impl CertIdentity {
    /// The user of one request on the connection; `None` leaves the request to the other
    /// authenticators (a front proxy request that names no user).
    pub fn user(&self, headers: &http::HeaderMap) -> Option<UserInfo> {
        match self {
            CertIdentity::User(u) => Some(u.clone()),
            CertIdentity::FrontProxy => user_from_headers(headers),
            CertIdentity::Nobody => None,
        }
    }
}

/// The user `X-Remote-*` headers name (upstream's `requestHeaderAuthRequestHandler`).
pub fn user_from_headers(headers: &http::HeaderMap) -> Option<UserInfo> {
    let name = USERNAME_HEADERS
        .iter()
        .filter_map(|h| headers.get(*h).and_then(|v| v.to_str().ok()))
        .map(str::trim)
        .find(|v| !v.is_empty())?;
    let groups = GROUP_HEADERS
        .iter()
        .flat_map(|h| headers.get_all(*h))
        .filter_map(|v| v.to_str().ok())
        .map(str::to_string)
        .collect();
    let mut user = UserInfo::new(name, groups);
    let mut extra: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (k, v) in headers {
        let Some(key) = EXTRA_HEADER_PREFIXES
            .iter()
            .find_map(|p| strip_prefix_ignore_case(k.as_str(), p))
        else {
            continue;
        };
        if let Ok(v) = v.to_str() {
            let key = common::query::unescape_path(key).to_lowercase();
            extra.entry(key).or_default().push(v.to_string());
        }
    }
    user.extra = extra;
    Some(user)
}

fn strip_prefix_ignore_case<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    (s.len() > prefix.len() && s[..prefix.len()].eq_ignore_ascii_case(prefix))
        .then(|| &s[prefix.len()..])
}

/// An extra's key as a header name suffix: percent-escaped as Go's `url.PathEscape`, so
/// that a key such as `authentication.kubernetes.io/pod-name` survives (`:`, `=` and `@`
/// too, which a header name may not hold).
pub fn escape_extra_key(key: &str) -> String {
    let mut out = String::new();
    for b in key.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~$&+".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Writes `kube-system/extension-apiserver-authentication` as upstream's
/// cluster-authentication-trust controller does: the client CA, and the request-header CA,
/// allowed names and header names as JSON lists.
pub async fn publish(state: &ApiState, client_ca: &str, front_proxy_ca: &str) -> ApiResult<()> {
    let list = |v: &[&str]| serde_json::to_string(v).unwrap_or_default();
    let data = json!({
        "client-ca-file": client_ca,
        "requestheader-client-ca-file": front_proxy_ca,
        "requestheader-allowed-names": list(&[crate::pki::FRONT_PROXY_CLIENT]),
        "requestheader-username-headers": list(USERNAME_HEADERS),
        "requestheader-group-headers": list(GROUP_HEADERS),
        "requestheader-extra-headers-prefix": list(EXTRA_HEADER_PREFIXES),
    });
    let (ns, name) = AUTHENTICATION_CONFIGMAP;
    crate::bootstrap::write_configmap(state, ns, name, data).await?;
    // Upstream's bootstrap Role extension servers bind their accounts to, to read it.
    let role = crate::resources::by_kind("rbac.authorization.k8s.io", "Role")?;
    let reader = "extension-apiserver-authentication-reader";
    let obj = json!({
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
        "metadata": {"name": reader, "namespace": ns,
            "labels": {"kubernetes.io/bootstrapping": "rbac-defaults"},
            "annotations": {"rbac.authorization.kubernetes.io/autoupdate": "true"}},
        "rules": [{"verbs": ["get", "list", "watch"], "apiGroups": [""],
            "resources": ["configmaps"], "resourceNames": [name]}],
    });
    crate::bootstrap::create_if_missing(state, role, ns, reader, obj).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn users_come_from_the_headers() {
        let mut h = http::HeaderMap::new();
        assert!(user_from_headers(&h).is_none());
        h.insert("x-remote-user", "alice".parse().unwrap());
        h.append("x-remote-group", "a".parse().unwrap());
        h.append("x-remote-group", "b".parse().unwrap());
        h.append(
            "x-remote-extra-authentication.kubernetes.io%2fpod-name",
            "p".parse().unwrap(),
        );
        let u = user_from_headers(&h).unwrap();
        assert_eq!((u.name.as_str(), u.groups.len()), ("alice", 2));
        assert_eq!(
            u.extra["authentication.kubernetes.io/pod-name"],
            vec!["p".to_string()]
        );
        assert_eq!(
            escape_extra_key("authentication.kubernetes.io/pod-name"),
            "authentication.kubernetes.io%2Fpod-name"
        );
    }
}
