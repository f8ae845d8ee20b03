//! What a request asks for, from its method and path alone (Kubernetes' `RequestInfo`):
//! the verb, and for resource requests the group, version, resource, subresource, namespace
//! and name. Authorization decides on it and the audit log records it.

use std::collections::HashMap;

use http::Method;

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RequestInfo {
    pub is_resource_request: bool,
    pub path: String,
    /// `get`, `list`, `watch`, `create`, `update`, `patch`, `delete`, `deletecollection`
    /// for resources; the lower-case HTTP method otherwise.
    pub verb: String,
    pub api_group: String,
    pub api_version: String,
    pub namespace: String,
    pub resource: String,
    pub subresource: String,
    pub name: String,
}

impl RequestInfo {
    pub fn new(method: &Method, path: &str, query: &HashMap<String, String>) -> RequestInfo {
        let non_resource = RequestInfo {
            path: path.to_string(),
            verb: method.as_str().to_ascii_lowercase(),
            ..Default::default()
        };
        let parts: Vec<&str> = path
            .trim_matches('/')
            .split('/')
            .filter(|p| !p.is_empty())
            .collect();
        let (group, version, rest) = match parts.as_slice() {
            ["api", v, rest @ ..] => ("", *v, rest),
            ["apis", g, v, rest @ ..] => (*g, *v, rest),
            _ => return non_resource,
        };
        if rest.is_empty() {
            return non_resource;
        }
        let mut info = RequestInfo {
            is_resource_request: true,
            path: path.to_string(),
            api_group: group.to_string(),
            api_version: version.to_string(),
            ..Default::default()
        };
        let mut rest: Vec<&str> = rest.to_vec();
        let mut watch = false;
        if rest[0] == "watch" {
            watch = true;
            rest.remove(0);
        }
        // `namespaces/<ns>/<resource>...`; `namespaces/<ns>[/status|/finalize]` is the
        // namespace itself, and then its namespace is its name too.
        if rest.first() == Some(&"namespaces") && rest.len() > 1 {
            info.namespace = rest[1].to_string();
            if rest.len() > 2 && !matches!(rest[2], "status" | "finalize") {
                rest.drain(..2);
            }
        }
        info.resource = rest.first().map(|s| s.to_string()).unwrap_or_default();
        info.name = rest.get(1).map(|s| s.to_string()).unwrap_or_default();
        info.subresource = rest.get(2).map(|s| s.to_string()).unwrap_or_default();
        let watch = watch || common::params::query_bool(query.get("watch").map(String::as_str));
        info.verb = match *method {
            Method::POST => "create",
            Method::GET | Method::HEAD if watch => "watch",
            Method::GET | Method::HEAD if info.name.is_empty() => "list",
            Method::GET | Method::HEAD => "get",
            Method::PUT => "update",
            Method::PATCH => "patch",
            Method::DELETE if info.name.is_empty() => "deletecollection",
            Method::DELETE => "delete",
            _ => "",
        }
        .to_string();
        // A list or watch of one object by name is authorized as that object.
        if matches!(info.verb.as_str(), "list" | "watch")
            && let Some(name) = query
                .get("fieldSelector")
                .and_then(|f| f.strip_prefix("metadata.name="))
            && !name.contains(',')
        {
            info.name = name.to_string();
        }
        info
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(method: Method, path: &str, query: &[(&str, &str)]) -> RequestInfo {
        let q = query
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        RequestInfo::new(&method, path, &q)
    }

    #[test]
    fn resource_requests() {
        let i = info(Method::GET, "/api/v1/namespaces/default/pods", &[]);
        assert!(i.is_resource_request);
        assert_eq!(
            (i.verb.as_str(), i.namespace.as_str(), i.resource.as_str()),
            ("list", "default", "pods")
        );
        let i = info(Method::GET, "/api/v1/namespaces/default/pods/p/log", &[]);
        assert_eq!(
            (i.verb.as_str(), i.name.as_str(), i.subresource.as_str()),
            ("get", "p", "log")
        );
        let i = info(
            Method::GET,
            "/apis/apps/v1/watch/namespaces/x/deployments",
            &[],
        );
        assert_eq!((i.verb.as_str(), i.api_group.as_str()), ("watch", "apps"));
        let i = info(
            Method::GET,
            "/api/v1/pods",
            &[("watch", "1"), ("fieldSelector", "metadata.name=a")],
        );
        assert_eq!((i.verb.as_str(), i.name.as_str()), ("watch", "a"));
        let i = info(Method::DELETE, "/api/v1/namespaces/n/secrets", &[]);
        assert_eq!(i.verb, "deletecollection");
        let i = info(Method::PUT, "/api/v1/namespaces/n/finalize", &[]);
        assert_eq!(
            (
                i.resource.as_str(),
                i.name.as_str(),
                i.namespace.as_str(),
                i.subresource.as_str()
            ),
            ("namespaces", "n", "n", "finalize")
        );
        let i = info(Method::GET, "/api/v1/namespaces/n", &[]);
        assert_eq!(
            (i.resource.as_str(), i.name.as_str(), i.namespace.as_str()),
            ("namespaces", "n", "n")
        );
        let i = info(Method::POST, "/api/v1/nodes", &[]);
        assert_eq!((i.verb.as_str(), i.namespace.as_str()), ("create", ""));
    }

    #[test]
    fn non_resource_requests() {
        for p in [
            "/healthz",
            "/api",
            "/apis",
            "/apis/apps",
            "/api/v1",
            "/version",
        ] {
            let i = info(Method::GET, p, &[]);
            assert!(!i.is_resource_request, "{p}");
            assert_eq!(i.verb, "get");
        }
    }
}
