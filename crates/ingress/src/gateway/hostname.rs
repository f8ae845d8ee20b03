//! Gateway API hostnames: exact names and `*.` wildcards that match any number of labels
//! (`*.example.com` matches `a.example.com` and `a.b.example.com`, not `example.com`;
//! Ingress wildcards match one label only), and the intersection of a listener's hostname
//! with a route's hostnames.

use crate::host;

/// A listener's or route's hostname; `None` where one is optional means "any host".
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Hostname {
    Exact(String),
    /// `*.example.com` as `example.com`.
    Wildcard(String),
}

impl Hostname {
    pub fn parse(h: &str) -> Hostname {
        let h = host::normalize(h);
        match h.strip_prefix("*.") {
            Some(s) => Hostname::Wildcard(s.to_string()),
            None => Hostname::Exact(h),
        }
    }

    /// Whether a request's host (normalized, no port) matches.
    pub fn matches(&self, host: &str) -> bool {
        match self {
            Hostname::Exact(h) => h == host,
            Hostname::Wildcard(s) => is_below(host, s),
        }
    }

    /// How specific a match is: exact names before wildcards, then by length (the spec's
    /// "characters in a matching non-wildcard hostname, then in a matching hostname").
    pub fn specificity(&self) -> (bool, usize) {
        match self {
            Hostname::Exact(h) => (true, h.len()),
            Hostname::Wildcard(s) => (false, s.len() + 2),
        }
    }

    pub fn as_string(&self) -> String {
        match self {
            Hostname::Exact(h) => h.clone(),
            Hostname::Wildcard(s) => format!("*.{s}"),
        }
    }
}

/// `host` is a name below `suffix` (at least one more label): `*.suffix` matches it.
pub fn is_below(host: &str, suffix: &str) -> bool {
    host.len() > suffix.len() + 1
        && host.ends_with(suffix)
        && host.as_bytes()[host.len() - suffix.len() - 1] == b'.'
}

/// Whether two routes' hostnames (`None`: any) name a host in common.
pub fn overlap(a: Option<&Hostname>, b: Option<&Hostname>) -> bool {
    match (a, b) {
        (None, _) | (_, None) => true,
        (Some(Hostname::Exact(x)), Some(Hostname::Exact(y))) => x == y,
        (Some(Hostname::Exact(x)), Some(w @ Hostname::Wildcard(_)))
        | (Some(w @ Hostname::Wildcard(_)), Some(Hostname::Exact(x))) => w.matches(x),
        (Some(Hostname::Wildcard(x)), Some(Hostname::Wildcard(y))) => {
            x == y || is_below(x, y) || is_below(y, x)
        }
    }
}

/// The hostnames a route serves through a listener: the route's hostnames that intersect the
/// listener's, each narrowed to the more specific of the two; the listener's when the route
/// names none; `[None]` (any host) when neither does. Empty: no intersection (the route is
/// not accepted by that listener: `NoMatchingListenerHostname`).
pub fn intersect(listener: Option<&Hostname>, route: &[Hostname]) -> Vec<Option<Hostname>> {
    let Some(l) = listener else {
        if route.is_empty() {
            return vec![None];
        }
        return route.iter().cloned().map(Some).collect();
    };
    if route.is_empty() {
        return vec![Some(l.clone())];
    }
    let mut out: Vec<Option<Hostname>> = Vec::new();
    for r in route {
        let narrowed = match (l, r) {
            (Hostname::Exact(a), Hostname::Exact(b)) => (a == b).then(|| l.clone()),
            (Hostname::Exact(a), Hostname::Wildcard(_)) => r.matches(a).then(|| l.clone()),
            (Hostname::Wildcard(_), Hostname::Exact(b)) => l.matches(b).then(|| r.clone()),
            (Hostname::Wildcard(a), Hostname::Wildcard(b)) => {
                if a == b || is_below(b, a) {
                    Some(r.clone())
                } else if is_below(a, b) {
                    Some(l.clone())
                } else {
                    None
                }
            }
        };
        if let Some(n) = narrowed
            && !out.contains(&Some(n.clone()))
        {
            out.push(Some(n));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(s: &str) -> Hostname {
        Hostname::parse(s)
    }

    fn names(v: Vec<Option<Hostname>>) -> Vec<String> {
        v.into_iter()
            .map(|h| h.map(|h| h.as_string()).unwrap_or_else(|| "<any>".into()))
            .collect()
    }

    #[test]
    fn wildcards_match_any_depth_but_not_the_suffix_itself() {
        let w = h("*.Example.com");
        assert!(w.matches("a.example.com"));
        assert!(w.matches("a.b.example.com"));
        assert!(!w.matches("example.com"));
        assert!(!w.matches("aexample.com"));
        assert!(h("foo.com").matches("foo.com"));
        assert!(h("foo.com").specificity() > h("*.foo.com").specificity());
        assert!(h("*.a.foo.com").specificity() > h("*.foo.com").specificity());
    }

    // The spec's examples (HTTPRouteSpec.hostnames) and upstream's hostname-intersection
    // conformance manifests.
    #[test]
    fn intersection_as_the_spec_defines() {
        let specific = h("very.specific.com");
        let route = [
            h("non.matching.com"),
            h("*.nonmatchingwildcard.io"),
            h("very.specific.com"),
        ];
        assert_eq!(
            names(intersect(Some(&specific), &route)),
            ["very.specific.com"]
        );
        assert_eq!(
            names(intersect(Some(&specific), &[h("*.specific.com")])),
            ["very.specific.com"]
        );
        let wild = h("*.wildcard.io");
        let route = [
            h("non.matching.com"),
            h("wildcard.io"),
            h("foo.wildcard.io"),
            h("foo.bar.wildcard.io"),
        ];
        assert_eq!(
            names(intersect(Some(&wild), &route)),
            ["foo.wildcard.io", "foo.bar.wildcard.io"]
        );
        assert_eq!(
            names(intersect(Some(&wild), &[h("*.foo.wildcard.io")])),
            ["*.foo.wildcard.io"]
        );
        assert_eq!(
            names(intersect(Some(&wild), &[h("*.io")])),
            ["*.wildcard.io"]
        );
        assert_eq!(
            names(intersect(Some(&wild), &[h("*.other.io")])),
            Vec::<String>::new()
        );
        assert_eq!(names(intersect(Some(&wild), &[])), ["*.wildcard.io"]);
        assert_eq!(names(intersect(None, &[h("a.com")])), ["a.com"]);
        assert_eq!(names(intersect(None, &[])), ["<any>"]);
    }

    #[test]
    fn overlapping_hostnames() {
        let o = |a: &str, b: &str| overlap(Some(&h(a)), Some(&h(b)));
        assert!(o("a.example.com", "a.example.com"));
        assert!(!o("a.example.com", "b.example.com"));
        assert!(o("*.example.com", "a.b.example.com"));
        assert!(o("a.b.example.com", "*.example.com"));
        assert!(!o("*.example.com", "example.com"));
        assert!(o("*.example.com", "*.b.example.com"));
        assert!(!o("*.a.example.com", "*.b.example.com"));
        assert!(overlap(None, Some(&h("a.com"))));
    }
}
