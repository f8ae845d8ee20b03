//! The Gateway API routing table, per proxy port (HTTP, HTTPS): listener hostnames (most
//! specific first; a request is served only by routes attached to the most specific
//! listener hostname matching its host: listener isolation) → route hostnames (exact, then
//! wildcards longest first, then any host; falling through when no rule matches) → matches
//! in the spec's precedence order, each to its rule's action.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use http::{HeaderMap, Method};

use super::filters::{HeaderMod, Redirect, Rewrite};
use super::hostname::{self, Hostname};
use super::matching::{Match, Rank};
use crate::backend::Backend;

/// What a matching rule does.
#[derive(Debug)]
pub struct RuleAction {
    /// `namespace/name` of the route, for logs.
    pub route: String,
    pub request_headers: Option<HeaderMod>,
    pub response_headers: Option<HeaderMod>,
    pub redirect: Option<Redirect>,
    pub rewrite: Option<Rewrite>,
    /// `None`: an invalid backendRef (its share of requests gets 500).
    backends: Vec<(Option<Arc<Backend>>, u64)>,
    total: u64,
    next: AtomicU64,
}

/// Where a request goes.
#[derive(Debug)]
pub enum Pick<'a> {
    Backend(&'a Arc<Backend>),
    /// No valid backend for this request: 500 as the spec requires (gRPC `UNAVAILABLE`
    /// to a gRPC request, as GRPCRoute's does).
    Invalid,
}

impl RuleAction {
    pub fn new(
        route: String,
        request_headers: Option<HeaderMod>,
        response_headers: Option<HeaderMod>,
        redirect: Option<Redirect>,
        rewrite: Option<Rewrite>,
        backends: Vec<(Option<Arc<Backend>>, u64)>,
    ) -> Self {
        let total = backends.iter().map(|(_, w)| *w).sum();
        RuleAction {
            route,
            request_headers,
            response_headers,
            redirect,
            rewrite,
            backends,
            total,
            next: AtomicU64::new(0),
        }
    }

    /// Weighted round-robin: over every `total` requests each backendRef gets its weight's
    /// share, in order (weight 0: never). Lock-free: one counter per rule.
    pub fn pick(&self) -> Pick<'_> {
        if self.total == 0 {
            return Pick::Invalid;
        }
        let mut n = self.next.fetch_add(1, Ordering::Relaxed) % self.total;
        for (b, w) in &self.backends {
            if n < *w {
                return match b {
                    Some(b) => Pick::Backend(b),
                    None => Pick::Invalid,
                };
            }
            n -= w;
        }
        Pick::Invalid
    }
}

/// One match of one rule, with its place in the order.
#[derive(Debug)]
struct Entry {
    m: Match,
    action: Arc<RuleAction>,
}

/// The order key across routes: the match's rank, then the route's creation time and
/// `namespace/name`, then the rule's and the match's index.
pub type Order = (Rank, Option<i64>, String, usize, usize);

#[derive(Debug, Default)]
struct Hosts {
    exact: HashMap<String, Vec<(Order, Entry)>>,
    /// Longest suffix first (sorted at [`GatewayTable::finish`]).
    wildcard: Vec<(String, Vec<(Order, Entry)>)>,
    any: Vec<(Order, Entry)>,
}

#[derive(Debug, Default)]
struct Port {
    /// Listener hostnames, most specific first (sorted at [`GatewayTable::finish`]).
    listeners: Vec<(Option<Hostname>, Hosts)>,
}

/// What a lookup found: the action, and the PathPrefix matched (for ReplacePrefixMatch).
pub struct Found<'a> {
    pub action: &'a Arc<RuleAction>,
    pub prefix: Option<&'a str>,
}

/// The request as matching reads it.
pub struct Request<'a> {
    pub host: &'a str,
    pub method: &'a Method,
    pub path: &'a str,
    pub query: Option<&'a str>,
    pub headers: &'a HeaderMap,
}

#[derive(Debug, Default)]
pub struct GatewayTable {
    http: Port,
    https: Port,
    entries: usize,
}

impl GatewayTable {
    /// Adds a match of a rule served on a listener (`tls`: the HTTPS port) with hostname
    /// `listener`, for requests whose host matches `host` (`None`: any).
    pub fn insert(
        &mut self,
        tls: bool,
        listener: Option<&Hostname>,
        host: Option<&Hostname>,
        order: Order,
        m: Match,
        action: Arc<RuleAction>,
    ) {
        let port = if tls { &mut self.https } else { &mut self.http };
        let idx = match port
            .listeners
            .iter()
            .position(|(l, _)| l.as_ref() == listener)
        {
            Some(i) => i,
            None => {
                port.listeners.push((listener.cloned(), Hosts::default()));
                port.listeners.len() - 1
            }
        };
        let hosts = &mut port.listeners[idx].1;
        let list = match host {
            None => &mut hosts.any,
            Some(Hostname::Exact(h)) => hosts.exact.entry(h.clone()).or_default(),
            Some(Hostname::Wildcard(s)) => match hosts.wildcard.iter().position(|(w, _)| w == s) {
                Some(i) => &mut hosts.wildcard[i].1,
                None => {
                    hosts.wildcard.push((s.clone(), Vec::new()));
                    let last = hosts.wildcard.len() - 1;
                    &mut hosts.wildcard[last].1
                }
            },
        };
        list.push((order, Entry { m, action }));
        self.entries += 1;
    }

    /// Sorts everything into lookup order; call once after the inserts.
    pub fn finish(&mut self) {
        for port in [&mut self.http, &mut self.https] {
            port.listeners.sort_by(|(a, _), (b, _)| {
                let key = |h: &Option<Hostname>| h.as_ref().map(|h| h.specificity());
                key(b).cmp(&key(a))
            });
            for (_, hosts) in &mut port.listeners {
                hosts
                    .wildcard
                    .sort_by_key(|(s, _)| std::cmp::Reverse(s.len()));
                let lists = hosts
                    .exact
                    .values_mut()
                    .chain(hosts.wildcard.iter_mut().map(|(_, l)| l))
                    .chain(std::iter::once(&mut hosts.any));
                for l in lists {
                    l.sort_by(|(a, _), (b, _)| a.cmp(b));
                }
            }
        }
    }

    pub fn len(&self) -> usize {
        self.entries
    }

    pub fn is_empty(&self) -> bool {
        self.entries == 0
    }

    /// The rule for a request on the HTTP (`tls` false) or HTTPS port; `None`: no Gateway
    /// route matches (the Ingress rules are tried next). GRPCRoute rules match gRPC
    /// requests only (`content-type: application/grpc…`; the spec's rules "match every gRPC
    /// request"): other requests pass them by, as if they were not there.
    pub fn lookup<'a>(&'a self, tls: bool, req: &Request<'_>) -> Option<Found<'a>> {
        let port = if tls { &self.https } else { &self.http };
        let (_, hosts) = port
            .listeners
            .iter()
            .find(|(l, _)| l.as_ref().is_none_or(|l| l.matches(req.host)))?;
        let grpc = crate::reply::is_grpc(req.headers);
        let first = |list: &'a [(Order, Entry)]| {
            list.iter()
                .find(|(_, e)| {
                    (grpc || !e.m.is_grpc())
                        && e.m.matches(req.method, req.path, req.query, req.headers)
                })
                .map(|(_, e)| Found {
                    action: &e.action,
                    prefix: e.m.prefix(),
                })
        };
        hosts
            .exact
            .get(req.host)
            .and_then(|l| first(l))
            .or_else(|| {
                hosts
                    .wildcard
                    .iter()
                    .filter(|(s, _)| hostname::is_below(req.host, s))
                    .find_map(|(_, l)| first(l))
            })
            .or_else(|| first(&hosts.any))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::Protocol;

    fn backend(name: &str) -> Arc<Backend> {
        Arc::new(Backend::new(name.into(), Protocol::Http1, vec![]))
    }

    fn picks(a: &RuleAction, n: usize) -> HashMap<String, usize> {
        let mut out = HashMap::new();
        for _ in 0..n {
            let k = match a.pick() {
                Pick::Backend(b) => b.name.clone(),
                Pick::Invalid => "500".into(),
            };
            *out.entry(k).or_default() += 1;
        }
        out
    }

    #[test]
    fn weighted_pick_splits_by_weight_and_never_picks_weight_zero() {
        let a = RuleAction::new(
            "ns/r".into(),
            None,
            None,
            None,
            None,
            vec![
                (Some(backend("a")), 3),
                (Some(backend("b")), 1),
                (Some(backend("never")), 0),
            ],
        );
        let got = picks(&a, 400);
        assert_eq!(got.get("a"), Some(&300));
        assert_eq!(got.get("b"), Some(&100));
        assert_eq!(got.get("never"), None);
        let half_invalid = RuleAction::new(
            "ns/r".into(),
            None,
            None,
            None,
            None,
            vec![(Some(backend("a")), 1), (None, 1)],
        );
        assert_eq!(picks(&half_invalid, 10).get("500"), Some(&5));
        let none = RuleAction::new("ns/r".into(), None, None, None, None, vec![]);
        assert!(matches!(none.pick(), Pick::Invalid));
    }

    /// A rule to the backend named `name`, with no filters.
    fn action(name: &str) -> Arc<RuleAction> {
        Arc::new(RuleAction::new(
            name.into(),
            None,
            None,
            None,
            None,
            vec![(Some(backend(name)), 1)],
        ))
    }

    #[test]
    fn listener_isolation_then_route_hostnames_then_matches() {
        let mut t = GatewayTable::default();
        let act = action;
        let order = |m: &Match, route: &str| (m.rank(), None, route.to_string(), 0, 0);
        let any = Match::any();
        let wild_l = Hostname::parse("*.example.com");
        let foo_l = Hostname::parse("foo.example.com");
        t.insert(
            false,
            None,
            None,
            order(&any, "catch-all"),
            Match::any(),
            act("catch-all"),
        );
        t.insert(
            false,
            Some(&wild_l),
            Some(&wild_l),
            order(&any, "wild"),
            Match::any(),
            act("wild"),
        );
        t.insert(
            false,
            Some(&wild_l),
            Some(&Hostname::parse("bar.example.com")),
            order(&any, "bar"),
            Match::any(),
            act("bar"),
        );
        t.insert(
            false,
            Some(&foo_l),
            Some(&foo_l),
            order(&any, "foo"),
            Match::any(),
            act("foo"),
        );
        t.finish();
        let headers = HeaderMap::new();
        let get = |tls: bool, host: &str| {
            t.lookup(
                tls,
                &Request {
                    host,
                    method: &Method::GET,
                    path: "/x",
                    query: None,
                    headers: &headers,
                },
            )
            .map(|f| f.action.route.clone())
        };
        assert_eq!(get(false, "foo.example.com").as_deref(), Some("foo"));
        assert_eq!(get(false, "bar.example.com").as_deref(), Some("bar"));
        assert_eq!(get(false, "a.b.example.com").as_deref(), Some("wild"));
        assert_eq!(get(false, "other.org").as_deref(), Some("catch-all"));
        assert_eq!(
            get(true, "foo.example.com"),
            None,
            "nothing on the HTTPS port"
        );
        assert_eq!(t.len(), 4);
    }

    #[test]
    fn grpc_matches_take_grpc_requests_only() {
        let mut t = GatewayTable::default();
        let act = action;
        let grpc = Match::grpc(&crate::gateway::types::GRPCRouteMatch::default())
            .unwrap_or_else(|e| panic!("{e}"));
        let host = Hostname::parse("h.example.com");
        t.insert(
            false,
            None,
            Some(&host),
            (grpc.rank(), None, "rpc".into(), 0, 0),
            grpc,
            act("rpc"),
        );
        // An HTTPRoute on another hostname of the same listener, reached by falling through.
        t.insert(
            false,
            None,
            None,
            (Match::any().rank(), None, "web".into(), 0, 0),
            Match::any(),
            act("web"),
        );
        t.finish();
        let get = |ct: Option<&str>| {
            let mut headers = HeaderMap::new();
            if let Some(ct) = ct {
                headers.insert(
                    http::header::CONTENT_TYPE,
                    ct.parse().unwrap_or_else(|e| panic!("{e:?}")),
                );
            }
            t.lookup(
                false,
                &Request {
                    host: "h.example.com",
                    method: &Method::POST,
                    path: "/a.B/C",
                    query: None,
                    headers: &headers,
                },
            )
            .map(|f| f.action.route.clone())
        };
        assert_eq!(get(Some("application/grpc")).as_deref(), Some("rpc"));
        assert_eq!(get(Some("application/grpc+proto")).as_deref(), Some("rpc"));
        assert_eq!(get(None).as_deref(), Some("web"), "not gRPC: falls through");
        assert_eq!(get(Some("application/json")).as_deref(), Some("web"));
    }
}
