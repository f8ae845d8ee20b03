//! May this caller do this on the kubelet API? Upstream's `pkg/kubelet/server/auth.go` with
//! `KubeletFineGrainedAuthz` (beta, on, in 1.33) and its delegating authorizer: a request is
//! an action on this Node — verb from the HTTP method, resource `nodes`, the node's name, a
//! subresource from the path — asked of the API server with a SubjectAccessReview
//! (authorization.k8s.io/v1) carrying the caller's user, uid, groups and extra. Paths with a
//! fine-grained subresource (`/pods`, `/healthz`, …) are also allowed by `proxy`, tried
//! second. Answers are cached: allowed for `cacheAuthorizedTTL` (5 min), not allowed for
//! `cacheUnauthorizedTTL` (30 s).

use std::time::Duration;

use http::Method;
use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SubjectAccessReview, SubjectAccessReviewSpec, SubjectAccessReviewStatus,
};
use kube::Api;
use tracing::{debug, warn};

use super::authn::UserInfo;
use super::review::{self, ReviewError};
use super::ttl_cache::TtlCache;

/// Upstream's SubjectAccessReview response cache holds 8192 answers.
const CACHE_SIZE: usize = 8192;
/// Requests whose caller-chosen attributes are this long are not cached (upstream's guard
/// against filling the cache on purpose).
const MAX_CACHED_ATTRIBUTES: usize = 10_000;

/// The API verb of an HTTP method (upstream maps no other method: HEAD asks for verb "").
pub fn verb(method: &Method) -> &'static str {
    match *method {
        Method::GET => "get",
        Method::POST => "create",
        Method::PUT => "update",
        Method::PATCH => "patch",
        Method::DELETE => "delete",
        _ => "",
    }
}

/// `subpath` is `path` or below it (`path`'s trailing slash aside).
fn is_subpath(subpath: &str, path: &str) -> bool {
    let path = path.strip_suffix('/').unwrap_or(path);
    subpath == path
        || subpath
            .strip_prefix(path)
            .is_some_and(|rest| rest.starts_with('/'))
}

/// The `nodes` subresources that allow a request for `path`, in the order they are asked.
pub fn subresources(path: &str) -> Vec<&'static str> {
    let mut subs = Vec::with_capacity(2);
    let fine_grained = [
        ("/pods", "pods"),
        ("/healthz", "healthz"),
        ("/configz", "configz"),
        ("/statusz", "statusz"),
        ("/runningpods/", "pods"),
    ];
    if let Some((_, sub)) = fine_grained.iter().find(|(p, _)| is_subpath(path, p)) {
        subs.push(*sub);
    }
    let coarse = [
        ("/stats/", "stats"),
        ("/metrics", "metrics"),
        ("/logs/", "log"),
        ("/checkpoint/", "checkpoint"),
    ];
    match coarse.iter().find(|(p, _)| is_subpath(path, p)) {
        Some((_, sub)) => subs.push(*sub),
        None => subs.push("proxy"),
    }
    subs
}

/// What the caller may do with this request.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    Allowed,
    /// 403 with this body.
    Forbidden(String),
    /// The API server could not be asked: 500 with this body.
    Failed(String),
}

pub struct Authorizer {
    reviews: Api<SubjectAccessReview>,
    node_name: String,
    /// The review's spec as JSON (upstream's key) → the answer.
    cache: TtlCache<SubjectAccessReviewStatus>,
    allowed_ttl: Duration,
    denied_ttl: Duration,
}

impl Authorizer {
    pub fn new(
        client: kube::Client,
        node_name: &str,
        allowed_ttl: Duration,
        denied_ttl: Duration,
    ) -> Self {
        Authorizer {
            reviews: Api::all(client),
            node_name: node_name.to_owned(),
            cache: TtlCache::new(CACHE_SIZE),
            allowed_ttl,
            denied_ttl,
        }
    }

    /// Upstream's auth filter: allowed as soon as one subresource is; the first failure to
    /// ask is a 500; otherwise a 403 naming every subresource tried.
    pub async fn authorize(&self, user: &UserInfo, method: &Method, path: &str) -> Verdict {
        let verb = verb(method);
        let subs = subresources(path);
        for sub in &subs {
            match self.allowed(user, verb, sub, path).await {
                Ok(true) => return Verdict::Allowed,
                Ok(false) => {}
                Err(e) => {
                    warn!(user = %user.name, verb, subresource = sub, error = %e, "kubelet API authorization error");
                    return Verdict::Failed(format!(
                        "Authorization error (user={}, verb={verb}, resource=nodes, subresource={sub})",
                        user.name
                    ));
                }
            }
        }
        debug!(user = %user.name, verb, subresources = ?subs, "kubelet API request forbidden");
        Verdict::Forbidden(forbidden(&user.name, verb, &subs))
    }

    async fn allowed(
        &self,
        user: &UserInfo,
        verb: &str,
        sub: &str,
        path: &str,
    ) -> Result<bool, ReviewError> {
        let spec = self.spec(user, verb, sub);
        let key = k8s_openapi::serde_json::to_string(&spec).unwrap_or_default();
        let status = match self.cache.get(&key) {
            Some(status) => status,
            None => {
                let review = SubjectAccessReview {
                    spec,
                    ..Default::default()
                };
                let answer = review::create(&self.reviews, &review, "SubjectAccessReview").await?;
                let status = answer.status.unwrap_or_default();
                let size = verb.len() + "v1".len() + "nodes".len() + sub.len();
                if !key.is_empty()
                    && size + self.node_name.len() + path.len() < MAX_CACHED_ATTRIBUTES
                {
                    let ttl = if status.allowed {
                        self.allowed_ttl
                    } else {
                        self.denied_ttl
                    };
                    self.cache.insert(key, status.clone(), ttl);
                }
                status
            }
        };
        match (status.allowed, status.denied == Some(true)) {
            (true, true) => Err(ReviewError::AllowedAndDenied),
            (allowed, _) => Ok(allowed),
        }
    }

    /// The review of `verb` on `nodes/<sub>` of this node by `user` (empty fields left out,
    /// as Go's `omitempty` does).
    fn spec(&self, user: &UserInfo, verb: &str, sub: &str) -> SubjectAccessReviewSpec {
        let some = |s: &str| (!s.is_empty()).then(|| s.to_owned());
        SubjectAccessReviewSpec {
            user: some(&user.name),
            uid: some(&user.uid),
            groups: (!user.groups.is_empty()).then(|| user.groups.clone()),
            extra: (!user.extra.is_empty()).then(|| user.extra.clone()),
            resource_attributes: Some(ResourceAttributes {
                verb: some(verb),
                version: some("v1"),
                resource: some("nodes"),
                subresource: some(sub),
                name: some(&self.node_name),
                ..Default::default()
            }),
            non_resource_attributes: None,
        }
    }
}

/// Upstream's 403 body (Go's `%v` of the subresource list).
fn forbidden(user: &str, verb: &str, subs: &[&str]) -> String {
    format!(
        "Forbidden (user={user}, verb={verb}, resource=nodes, subresource(s)=[{}])\n",
        subs.join(" ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_methods_map_to_api_verbs() {
        assert_eq!(verb(&Method::GET), "get");
        assert_eq!(verb(&Method::POST), "create");
        assert_eq!(verb(&Method::PUT), "update");
        assert_eq!(verb(&Method::PATCH), "patch");
        assert_eq!(verb(&Method::DELETE), "delete");
        assert_eq!(verb(&Method::HEAD), "", "upstream maps HEAD to no verb");
        assert_eq!(verb(&Method::OPTIONS), "");
    }

    #[test]
    fn paths_map_to_node_subresources() {
        let cases: &[(&str, &[&str])] = &[
            ("/pods", &["pods", "proxy"]),
            ("/pods/", &["pods", "proxy"]),
            ("/runningpods/", &["pods", "proxy"]),
            ("/runningpods", &["pods", "proxy"]),
            ("/healthz", &["healthz", "proxy"]),
            ("/healthz/ping", &["healthz", "proxy"]),
            ("/configz", &["configz", "proxy"]),
            ("/statusz", &["statusz", "proxy"]),
            ("/stats", &["stats"]),
            ("/stats/summary", &["stats"]),
            ("/metrics", &["metrics"]),
            ("/metrics/cadvisor", &["metrics"]),
            ("/logs/", &["log"]),
            ("/logs/syslog", &["log"]),
            ("/checkpoint/ns/p/c", &["checkpoint"]),
            ("/containerLogs/ns/p/c", &["proxy"]),
            ("/exec/ns/p/c", &["proxy"]),
            ("/run/ns/p/c", &["proxy"]),
            ("/portForward/ns/p", &["proxy"]),
            ("/spec/", &["proxy"]),
            ("/podsx", &["proxy"]),
            ("/healthzx", &["proxy"]),
            ("/statsx", &["proxy"]),
            ("/metricsx", &["proxy"]),
            ("/", &["proxy"]),
        ];
        for (path, want) in cases {
            assert_eq!(subresources(path), *want, "{path}");
        }
    }

    #[test]
    fn the_403_names_every_subresource_tried() {
        assert_eq!(
            forbidden(
                "system:serviceaccount:default:robot",
                "get",
                &["pods", "proxy"]
            ),
            "Forbidden (user=system:serviceaccount:default:robot, verb=get, resource=nodes, subresource(s)=[pods proxy])\n"
        );
    }

    #[tokio::test]
    async fn reviews_carry_the_callers_identity_and_this_node() {
        let config = kube::Config::new("https://127.0.0.1:1".parse().unwrap());
        let client = kube::Client::try_from(config).unwrap();
        let authz = Authorizer::new(client, "n1", Duration::from_secs(1), Duration::from_secs(1));
        let user = UserInfo {
            name: "alice".into(),
            uid: "u-1".into(),
            groups: vec!["dev".into(), "system:authenticated".into()],
            extra: [("scopes".to_string(), vec!["a".to_string()])].into(),
        };
        let spec = k8s_openapi::serde_json::to_value(authz.spec(&user, "get", "pods")).unwrap();
        assert_eq!(
            spec,
            k8s_openapi::serde_json::json!({
                "user": "alice", "uid": "u-1",
                "groups": ["dev", "system:authenticated"],
                "extra": {"scopes": ["a"]},
                "resourceAttributes": {"verb": "get", "version": "v1", "resource": "nodes",
                    "subresource": "pods", "name": "n1"},
            })
        );
    }
}
