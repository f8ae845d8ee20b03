//! One HTTPRouteMatch compiled: path (Exact, element-wise PathPrefix, RegularExpression),
//! headers, query parameters and method, all ANDed; and its precedence rank (the spec's
//! order: Exact path, longest prefix, method, most header matches, most query matches).
//! Regular expressions are RE2 syntax (the `regex` crate) and must match the whole value.
//! A GRPCRouteMatch compiles to the same form: its method match is a match on the request
//! path `/<service>/<method>`, with GRPCRoute's own precedence (service, method, headers).

use std::cmp::Reverse;

use http::header::HeaderName;
use http::{HeaderMap, Method};
use regex::Regex;

use super::types::{GRPCRouteMatch, HTTPRouteMatch, ValueMatch};

#[derive(Clone, Debug)]
pub enum PathMatch {
    Exact(String),
    /// The prefix without trailing `/` (`/` itself is empty).
    Prefix(String),
    Regex(Regex),
}

#[derive(Clone, Debug)]
pub enum ValueMatcher {
    Exact(String),
    Regex(Regex),
}

impl ValueMatcher {
    fn compile(m: &ValueMatch) -> Result<ValueMatcher, String> {
        match m.type_.as_deref().unwrap_or("Exact") {
            "Exact" => Ok(ValueMatcher::Exact(m.value.clone())),
            "RegularExpression" => whole(&m.value).map(ValueMatcher::Regex),
            other => Err(format!("match type {other:?} is not supported")),
        }
    }

    fn is_match(&self, v: &str) -> bool {
        match self {
            ValueMatcher::Exact(e) => e == v,
            ValueMatcher::Regex(r) => r.is_match(v),
        }
    }
}

/// A regular expression that must match the whole value.
fn whole(pattern: &str) -> Result<Regex, String> {
    Regex::new(&format!("^(?:{pattern})$"))
        .map_err(|e| format!("invalid regular expression {pattern:?}: {e}"))
}

/// The precedence of a match: smaller first.
pub type Rank = (u8, Reverse<usize>, bool, Reverse<usize>, Reverse<usize>);

#[derive(Clone, Debug)]
pub struct Match {
    pub path: PathMatch,
    pub method: Option<Method>,
    pub headers: Vec<(HeaderName, ValueMatcher)>,
    pub query: Vec<(String, ValueMatcher)>,
    /// A GRPCRoute match's precedence (`None`: an HTTPRoute match's, from its fields).
    grpc_rank: Option<Rank>,
}

/// The header matches of one match: only the first of equivalent names counts (header
/// names case-insensitively).
fn header_matches(headers: &[ValueMatch]) -> Result<Vec<(HeaderName, ValueMatcher)>, String> {
    let mut out: Vec<(HeaderName, ValueMatcher)> = Vec::new();
    for h in headers {
        let name = HeaderName::from_bytes(h.name.as_bytes())
            .map_err(|_| format!("invalid header name {:?}", h.name))?;
        if !out.iter().any(|(n, _)| *n == name) {
            out.push((name, ValueMatcher::compile(h)?));
        }
    }
    Ok(out)
}

impl Match {
    /// `PathPrefix /` and nothing else: a rule without matches.
    pub fn any() -> Match {
        Match {
            path: PathMatch::Prefix(String::new()),
            method: None,
            headers: Vec::new(),
            query: Vec::new(),
            grpc_rank: None,
        }
    }

    /// A GRPCRouteMatch: `method` as a match on the path `/<service>/<method>` (Exact: both
    /// names, the service's methods, or one method name in any service; RegularExpression:
    /// each name by its own expression, a missing one matching any name), and `headers`.
    /// Err (for `UnsupportedValue`) when a type is unknown or an expression invalid.
    pub fn grpc(m: &GRPCRouteMatch) -> Result<Match, String> {
        let (service, method) = match &m.method {
            Some(mm) => (
                mm.service.as_deref().filter(|s| !s.is_empty()),
                mm.method.as_deref().filter(|s| !s.is_empty()),
            ),
            None => (None, None),
        };
        let kind = m
            .method
            .as_ref()
            .and_then(|mm| mm.type_.as_deref())
            .unwrap_or("Exact");
        if !matches!(kind, "Exact" | "RegularExpression") {
            return Err(format!("method match type {kind:?} is not supported"));
        }
        let path = match (kind, service, method) {
            (_, None, None) => PathMatch::Prefix(String::new()),
            ("Exact", Some(s), Some(me)) => PathMatch::Exact(format!("/{s}/{me}")),
            ("Exact", Some(s), None) => PathMatch::Prefix(format!("/{s}")),
            ("Exact", None, Some(me)) => {
                PathMatch::Regex(whole(&format!("/[^/]+/{}", regex::escape(me)))?)
            }
            (_, s, me) => {
                // Each checked alone first: an error names the expression written.
                for p in [s, me].into_iter().flatten() {
                    whole(p)?;
                }
                let s = s.unwrap_or("[^/]+");
                let me = me.unwrap_or("[^/]+");
                PathMatch::Regex(whole(&format!("/(?:{s})/(?:{me})"))?)
            }
        };
        let headers = header_matches(&m.headers)?;
        // GRPCRouteRule's order: more characters in the service, then in the method, then
        // more header matches.
        let rank = (
            0,
            Reverse(service.map_or(0, str::len)),
            false,
            Reverse(method.map_or(0, str::len)),
            Reverse(headers.len()),
        );
        Ok(Match {
            path,
            method: None,
            headers,
            query: Vec::new(),
            grpc_rank: Some(rank),
        })
    }

    /// Err (for `Accepted=False`, `UnsupportedValue`) when a type is unknown or a value
    /// invalid.
    pub fn compile(m: &HTTPRouteMatch) -> Result<Match, String> {
        let value = m
            .path
            .as_ref()
            .and_then(|p| p.value.as_deref())
            .unwrap_or("/");
        let path = match m
            .path
            .as_ref()
            .and_then(|p| p.type_.as_deref())
            .unwrap_or("PathPrefix")
        {
            "Exact" => PathMatch::Exact(value.to_string()),
            "PathPrefix" => PathMatch::Prefix(value.trim_end_matches('/').to_string()),
            "RegularExpression" => PathMatch::Regex(whole(value)?),
            other => return Err(format!("path match type {other:?} is not supported")),
        };
        let method = match m.method.as_deref() {
            None => None,
            Some(s) => Some(
                Method::from_bytes(s.as_bytes()).map_err(|_| format!("invalid method {s:?}"))?,
            ),
        };
        let headers = header_matches(&m.headers)?;
        let mut query: Vec<(String, ValueMatcher)> = Vec::new();
        for q in &m.query_params {
            if !query.iter().any(|(n, _)| *n == q.name) {
                query.push((q.name.clone(), ValueMatcher::compile(q)?));
            }
        }
        Ok(Match {
            path,
            method,
            headers,
            query,
            grpc_rank: None,
        })
    }

    /// Exact first, then prefixes longest first, then regular expressions (their place is
    /// implementation-specific); then a method, more headers, more query parameters.
    pub fn rank(&self) -> Rank {
        if let Some(r) = self.grpc_rank {
            return r;
        }
        let (class, len) = match &self.path {
            PathMatch::Exact(p) => (0, p.len()),
            PathMatch::Prefix(p) => (1, p.len()),
            PathMatch::Regex(r) => (2, r.as_str().len()),
        };
        (
            class,
            Reverse(len),
            self.method.is_none(),
            Reverse(self.headers.len()),
            Reverse(self.query.len()),
        )
    }

    /// A GRPCRouteMatch: it applies to gRPC requests only (the table checks).
    pub fn is_grpc(&self) -> bool {
        self.grpc_rank.is_some()
    }

    /// The matched prefix for `ReplacePrefixMatch` (`None` unless a PathPrefix match).
    pub fn prefix(&self) -> Option<&str> {
        match &self.path {
            PathMatch::Prefix(p) => Some(p),
            _ => None,
        }
    }

    pub fn matches(&self, method: &Method, path: &str, query: Option<&str>, h: &HeaderMap) -> bool {
        let path_ok = match &self.path {
            PathMatch::Exact(p) => p == path,
            PathMatch::Prefix(p) => prefix_matches(p, path),
            PathMatch::Regex(r) => r.is_match(path),
        };
        if !path_ok || self.method.as_ref().is_some_and(|m| m != method) {
            return false;
        }
        let headers_ok = self.headers.iter().all(|(name, m)| {
            // Repeated headers count as one, joined with commas (RFC 9110 §5.3).
            let values: Vec<&str> = h
                .get_all(name)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .collect();
            !values.is_empty() && m.is_match(&values.join(","))
        });
        headers_ok
            && self
                .query
                .iter()
                .all(|(name, m)| query_value(query, name).is_some_and(|v| m.is_match(&v)))
    }
}

/// Element-wise: `/foo` matches `/foo`, `/foo/` and `/foo/bar`, not `/foobar`.
pub fn prefix_matches(prefix: &str, path: &str) -> bool {
    prefix.is_empty()
        || (path.starts_with(prefix)
            && (path.len() == prefix.len() || path.as_bytes()[prefix.len()] == b'/'))
}

/// The first value of a query parameter, percent-decoded (the spec recommends the first).
pub fn query_value(query: Option<&str>, name: &str) -> Option<String> {
    query?.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        (percent_decode(k) == name).then(|| percent_decode(v))
    })
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |c: u8| (c as char).to_digit(16);
        if b[i] == b'%'
            && let (Some(h), Some(l)) = (
                b.get(i + 1).and_then(|c| hex(*c)),
                b.get(i + 2).and_then(|c| hex(*c)),
            )
            && let Ok(byte) = u8::try_from(h * 16 + l)
        {
            out.push(byte);
            i += 3;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gateway::types::HTTPPathMatch;

    fn m(
        path: Option<(&str, &str)>,
        headers: &[(&str, &str)],
        query: &[(&str, &str)],
        method: Option<&str>,
    ) -> Match {
        let vm = |(n, v): &(&str, &str)| ValueMatch {
            type_: None,
            name: n.to_string(),
            value: v.to_string(),
        };
        Match::compile(&HTTPRouteMatch {
            path: path.map(|(t, v)| HTTPPathMatch {
                type_: Some(t.into()),
                value: Some(v.into()),
            }),
            headers: headers.iter().map(vm).collect(),
            query_params: query.iter().map(vm).collect(),
            method: method.map(Into::into),
        })
        .unwrap_or_else(|e| panic!("{e}"))
    }

    fn hit(x: &Match, method: &str, uri: &str, headers: &[(&str, &str)]) -> bool {
        let (path, query) = match uri.split_once('?') {
            Some((p, q)) => (p, Some(q)),
            None => (uri, None),
        };
        let mut h = HeaderMap::new();
        for (k, v) in headers {
            h.append(
                HeaderName::from_bytes(k.as_bytes()).unwrap_or_else(|e| panic!("{e}")),
                v.parse().unwrap_or_else(|e| panic!("{e:?}")),
            );
        }
        let method = Method::from_bytes(method.as_bytes()).unwrap_or_else(|e| panic!("{e}"));
        x.matches(&method, path, query, &h)
    }

    #[test]
    fn paths_headers_queries_and_methods() {
        let prefix = m(Some(("PathPrefix", "/foo/")), &[], &[], None);
        assert!(hit(&prefix, "GET", "/foo", &[]));
        assert!(hit(&prefix, "GET", "/foo/bar", &[]));
        assert!(!hit(&prefix, "GET", "/foobar", &[]));
        let exact = m(Some(("Exact", "/foo")), &[], &[], None);
        assert!(hit(&exact, "GET", "/foo", &[]));
        assert!(!hit(&exact, "GET", "/foo/", &[]));
        let re = m(Some(("RegularExpression", "/v[0-9]+/.*")), &[], &[], None);
        assert!(hit(&re, "GET", "/v2/x", &[]));
        assert!(!hit(&re, "GET", "/a/v2/x", &[]), "whole path");
        let hdr = m(
            None,
            &[("Version", "two"), ("version", "ignored")],
            &[],
            Some("POST"),
        );
        assert!(hit(&hdr, "POST", "/any", &[("version", "two")]));
        assert!(!hit(&hdr, "GET", "/any", &[("version", "two")]));
        assert!(
            !hit(&hdr, "POST", "/any", &[("version", "Two")]),
            "values are case-sensitive"
        );
        assert_eq!(hdr.headers.len(), 1, "the first of equivalent names only");
        let q = m(None, &[], &[("animal", "whale")], None);
        assert!(hit(&q, "GET", "/?animal=whale&other=1", &[]));
        assert!(hit(&q, "GET", "/?animal=wh%61le", &[]));
        assert!(
            !hit(&q, "GET", "/?ANIMAL=whale", &[]),
            "names are case-sensitive"
        );
        assert!(!hit(&q, "GET", "/?animal=whaledolphin", &[]));
        assert!(!hit(&q, "GET", "/", &[]));
    }

    #[test]
    fn precedence_follows_the_spec() {
        let mut v = [
            ("prefix /", m(None, &[], &[], None)),
            ("query", m(None, &[], &[("a", "1")], None)),
            ("headers 2", m(None, &[("a", "1"), ("b", "2")], &[], None)),
            (
                "headers 1 + query 2",
                m(None, &[("a", "1")], &[("a", "1"), ("b", "1")], None),
            ),
            ("method", m(None, &[("a", "1")], &[], Some("GET"))),
            (
                "prefix /a/b",
                m(Some(("PathPrefix", "/a/b")), &[], &[], None),
            ),
            ("exact /a", m(Some(("Exact", "/a")), &[], &[], None)),
            (
                "regex",
                m(Some(("RegularExpression", "/.*")), &[], &[], None),
            ),
        ];
        v.sort_by_key(|(_, m)| m.rank());
        let order: Vec<&str> = v.iter().map(|(n, _)| *n).collect();
        assert_eq!(
            order,
            [
                "exact /a",
                "prefix /a/b",
                "method",
                "headers 2",
                "headers 1 + query 2",
                "query",
                "prefix /",
                "regex"
            ]
        );
    }

    fn grpc(kind: Option<&str>, service: Option<&str>, method: Option<&str>) -> Match {
        Match::grpc(&grpc_match(kind, service, method)).unwrap_or_else(|e| panic!("{e}"))
    }

    fn grpc_match(
        kind: Option<&str>,
        service: Option<&str>,
        method: Option<&str>,
    ) -> GRPCRouteMatch {
        GRPCRouteMatch {
            method: Some(crate::gateway::types::GRPCMethodMatch {
                type_: kind.map(Into::into),
                service: service.map(Into::into),
                method: method.map(Into::into),
            }),
            headers: Vec::new(),
        }
    }

    #[test]
    fn grpc_method_matches_are_path_matches() {
        let both = grpc(None, Some("foo.Echo"), Some("Say"));
        assert!(hit(&both, "POST", "/foo.Echo/Say", &[]));
        assert!(!hit(&both, "POST", "/foo.Echo/SayMore", &[]));
        assert!(!hit(&both, "POST", "/foo.Echo2/Say", &[]));
        assert!(!hit(&both, "POST", "/foo.echo/Say", &[]), "case-sensitive");
        let service = grpc(Some("Exact"), Some("foo.Echo"), None);
        assert!(hit(&service, "POST", "/foo.Echo/Say", &[]));
        assert!(hit(&service, "POST", "/foo.Echo/Other", &[]));
        assert!(!hit(&service, "POST", "/foo.EchoX/Say", &[]));
        assert!(!hit(&service, "POST", "/bar.Echo/Say", &[]));
        let method = grpc(None, None, Some("Say"));
        assert!(hit(&method, "POST", "/any.Svc/Say", &[]));
        assert!(!hit(&method, "POST", "/any.Svc/Shout", &[]));
        let re = grpc(Some("RegularExpression"), Some(r"foo\..*"), Some("Get.*"));
        assert!(hit(&re, "POST", "/foo.Echo/GetAll", &[]));
        assert!(!hit(&re, "POST", "/bar.Echo/GetAll", &[]));
        assert!(!hit(&re, "POST", "/foo.Echo/Put", &[]));
        assert!(!hit(&re, "POST", "/x/foo.Echo/GetAll", &[]), "whole path");
        let re_service = grpc(Some("RegularExpression"), Some("foo\\..*"), None);
        assert!(hit(&re_service, "POST", "/foo.Echo/Anything", &[]));
        assert!(!hit(&re_service, "POST", "/foo.Echo", &[]));
        let none = Match::grpc(&GRPCRouteMatch::default()).unwrap_or_else(|e| panic!("{e}"));
        assert!(
            hit(&none, "POST", "/any.Svc/Any", &[]),
            "no method match: any"
        );
        assert!(Match::grpc(&grpc_match(Some("Prefix"), Some("a"), None)).is_err());
        assert!(Match::grpc(&grpc_match(Some("RegularExpression"), Some("(a"), None)).is_err());
        let with_header = Match::grpc(&GRPCRouteMatch {
            method: None,
            headers: vec![ValueMatch {
                type_: None,
                name: "Version".into(),
                value: "2".into(),
            }],
        })
        .unwrap_or_else(|e| panic!("{e}"));
        assert!(hit(&with_header, "POST", "/a.B/C", &[("version", "2")]));
        assert!(!hit(&with_header, "POST", "/a.B/C", &[]));
    }

    #[test]
    fn grpc_precedence_service_then_method_then_headers() {
        let mut v = [
            ("method", grpc(None, None, Some("Say"))),
            (
                "any",
                Match::grpc(&GRPCRouteMatch::default()).unwrap_or_else(|e| panic!("{e}")),
            ),
            ("service", grpc(None, Some("foo.Echo"), None)),
            ("both", grpc(None, Some("foo.Echo"), Some("Say"))),
            ("longer service", grpc(None, Some("foo.EchoLonger"), None)),
            (
                "header",
                Match::grpc(&GRPCRouteMatch {
                    method: None,
                    headers: vec![ValueMatch {
                        type_: None,
                        name: "a".into(),
                        value: "1".into(),
                    }],
                })
                .unwrap_or_else(|e| panic!("{e}")),
            ),
        ];
        v.sort_by_key(|(_, m)| m.rank());
        let order: Vec<&str> = v.iter().map(|(n, _)| *n).collect();
        assert_eq!(
            order,
            [
                "longer service",
                "both",
                "service",
                "method",
                "header",
                "any"
            ]
        );
    }
}
