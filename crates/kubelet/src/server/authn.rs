//! Who is calling the kubelet API: upstream's delegating authenticator as the kubelet builds
//! it (`--anonymous-auth=false`). First a client certificate signed by the cluster CA (CN is
//! the user, O the groups; the TLS handshake already checked the signature), else an
//! `Authorization: Bearer` token the API server vouches for through a TokenReview
//! (authentication.k8s.io/v1, sent with the kubelet's own client). TokenReview answers are
//! cached for `authentication.webhook.cacheTTL` (2 min), authenticated or not, as upstream's
//! kubelet does; an answer carrying an error (rkube's API server gives one with every
//! rejection) or a failed request is never cached. Every authenticated user is also in
//! `system:authenticated`.

use std::collections::BTreeMap;
use std::time::Duration;

use http::{HeaderMap, header};
use k8s_openapi::api::authentication::v1::{TokenReview, TokenReviewSpec};
use kube::Api;
use rustls::pki_types::CertificateDer;
use tracing::debug;

use super::review::{self, ReviewError};
use super::ttl_cache::TtlCache;

const ANONYMOUS: &str = "system:anonymous";
const ALL_AUTHENTICATED: &str = "system:authenticated";
const ALL_UNAUTHENTICATED: &str = "system:unauthenticated";
/// Upstream's token cache holds 32 stripes of 128 entries.
const TOKEN_CACHE_SIZE: usize = 4096;

/// An authenticated caller.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UserInfo {
    pub name: String,
    pub uid: String,
    pub groups: Vec<String>,
    pub extra: BTreeMap<String, Vec<String>>,
}

impl UserInfo {
    /// The user a client certificate names: CN is the user, each O a group (upstream's
    /// `CommonNameUserConversion`); none without a CN.
    pub fn from_cert(der: &CertificateDer<'_>) -> Option<UserInfo> {
        let (_, cert) = x509_parser::parse_x509_certificate(der.as_ref()).ok()?;
        let subject = cert.subject();
        let name = subject.iter_common_name().next()?.as_str().ok()?.to_owned();
        if name.is_empty() {
            return None;
        }
        let groups = subject
            .iter_organization()
            .filter_map(|o| o.as_str().ok().map(str::to_owned))
            .collect();
        Some(UserInfo {
            name,
            groups,
            ..Default::default()
        })
    }

    /// Upstream's `AuthenticatedGroupAdder`: `system:authenticated` joins the groups unless
    /// the user is anonymous or already says which of the two it is.
    fn authenticated(mut self) -> UserInfo {
        let marked = self
            .groups
            .iter()
            .any(|g| g == ALL_AUTHENTICATED || g == ALL_UNAUTHENTICATED);
        if self.name != ANONYMOUS && !marked {
            self.groups.push(ALL_AUTHENTICATED.to_owned());
        }
        self
    }
}

/// The token of an `Authorization: Bearer <token>` header (upstream's bearertoken
/// authenticator: the scheme in any case, no empty token).
pub fn bearer_token(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?.trim();
    let mut parts = value.splitn(3, ' ');
    let scheme = parts.next()?;
    let token = parts.next()?;
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

pub struct Authenticator {
    reviews: Api<TokenReview>,
    /// SHA-256 of the token → the user it is (or `None`: not authenticated).
    cache: TtlCache<Option<UserInfo>>,
    ttl: Duration,
}

impl Authenticator {
    pub fn new(client: kube::Client, ttl: Duration) -> Self {
        Authenticator {
            reviews: Api::all(client),
            cache: TtlCache::new(TOKEN_CACHE_SIZE),
            ttl,
        }
    }

    /// The caller of a request: its certificate's user, else its bearer token's (the header
    /// is then removed, so it never travels on to the runtime). `None`: unauthenticated.
    pub async fn authenticate(
        &self,
        cert_user: Option<UserInfo>,
        headers: &mut HeaderMap,
    ) -> Option<UserInfo> {
        if let Some(user) = cert_user {
            return Some(user.authenticated());
        }
        let token = bearer_token(headers)?;
        match self.authenticate_token(token).await {
            Ok(Some(user)) => {
                headers.remove(header::AUTHORIZATION);
                Some(user.authenticated())
            }
            Ok(None) => None,
            Err(e) => {
                debug!(error = %e, "bearer token not authenticated");
                None
            }
        }
    }

    /// Who the API server says `token` is (a TokenReview, or the cached answer).
    pub async fn authenticate_token(&self, token: &str) -> Result<Option<UserInfo>, ReviewError> {
        // Keyed by a digest: the cache holds no usable credentials.
        let key = hex(ring::digest::digest(&ring::digest::SHA256, token.as_bytes()).as_ref());
        if let Some(known) = self.cache.get(&key) {
            return Ok(known);
        }
        let review = TokenReview {
            spec: TokenReviewSpec {
                token: Some(token.to_owned()),
                audiences: None,
            },
            ..Default::default()
        };
        let answer = review::create(&self.reviews, &review, "TokenReview").await?;
        let status = answer.status.unwrap_or_default();
        if status.authenticated != Some(true) {
            if let Some(error) = status.error.filter(|e| !e.is_empty()) {
                return Err(ReviewError::Rejected(error));
            }
            self.cache.insert(key, None, self.ttl);
            return Ok(None);
        }
        let u = status.user.unwrap_or_default();
        let user = UserInfo {
            name: u.username.unwrap_or_default(),
            uid: u.uid.unwrap_or_default(),
            groups: u.groups.unwrap_or_default(),
            extra: u.extra.unwrap_or_default(),
        };
        self.cache.insert(key, Some(user.clone()), self.ttl);
        Ok(Some(user))
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(auth: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::AUTHORIZATION, auth.parse().unwrap());
        h
    }

    #[test]
    fn bearer_tokens_as_upstream_reads_them() {
        assert_eq!(bearer_token(&headers("Bearer abc")), Some("abc"));
        assert_eq!(bearer_token(&headers("bearer abc")), Some("abc"));
        assert_eq!(bearer_token(&headers("  Bearer abc  ")), Some("abc"));
        assert_eq!(bearer_token(&headers("Bearer abc def")), Some("abc"));
        assert_eq!(bearer_token(&headers("Bearer  abc")), None, "empty token");
        assert_eq!(bearer_token(&headers("Bearer")), None);
        assert_eq!(bearer_token(&headers("Basic dXNlcjpwdw==")), None);
        assert_eq!(bearer_token(&HeaderMap::new()), None);
    }

    #[test]
    fn authenticated_users_join_system_authenticated() {
        let user = |name: &str, groups: &[&str]| UserInfo {
            name: name.into(),
            groups: groups.iter().map(|g| g.to_string()).collect(),
            ..Default::default()
        };
        assert_eq!(
            user("alice", &["dev"]).authenticated().groups,
            ["dev", "system:authenticated"]
        );
        assert_eq!(
            user("sa", &["system:authenticated"]).authenticated().groups,
            ["system:authenticated"]
        );
        assert!(
            user("system:anonymous", &[])
                .authenticated()
                .groups
                .is_empty()
        );
    }

    #[test]
    fn certificates_name_the_user_and_groups() {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "system:node:n1");
        params
            .distinguished_name
            .push(rcgen::DnType::OrganizationName, "system:nodes");
        let cert = params.self_signed(&key).unwrap();
        let user = UserInfo::from_cert(cert.der()).unwrap();
        assert_eq!(user.name, "system:node:n1");
        assert_eq!(user.groups, ["system:nodes"]);
    }
}
