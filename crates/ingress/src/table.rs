//! The routing table: every served Ingress merged into hosts → paths → backends, immutable
//! once built. A new table replaces the old one atomically ([`Current`]); requests hold the
//! `Arc` of the table they started on, so in-flight requests finish on it.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use crate::backend::Backend;
use crate::gateway::table::GatewayTable;
use crate::host::{self, HostPattern};
use crate::path::{PathKind, PathRules};
use crate::tls::CertTable;

/// Hosts → paths → backends.
///
/// Host precedence: rules of the exact host, then of the matching `*.` wildcard, then rules
/// without a host, then the default backend. A request falls through to the next level when
/// no path matches at one (Gateway API's precedence: the most specific host first; nginx
/// would stop at the host's server block and answer its default backend).
#[derive(Debug, Default)]
pub struct RouteTable {
    exact: HashMap<String, PathRules<Arc<Backend>>>,
    wildcard: HashMap<String, PathRules<Arc<Backend>>>,
    any_host: PathRules<Arc<Backend>>,
    default_backend: Option<Arc<Backend>>,
}

impl RouteTable {
    /// Adds a path of a rule (`host` `None` for a rule without one). The first added for the
    /// same host, path and kind wins; false when it was taken.
    pub fn insert(
        &mut self,
        host: Option<&HostPattern>,
        kind: PathKind,
        path: &str,
        backend: Arc<Backend>,
    ) -> bool {
        let rules = match host {
            None => &mut self.any_host,
            Some(HostPattern::Exact(h)) => self.exact.entry(h.clone()).or_default(),
            Some(HostPattern::Wildcard(s)) => self.wildcard.entry(s.clone()).or_default(),
        };
        rules.insert(kind, path, backend)
    }

    /// Sets the default backend unless one is set (the oldest Ingress's wins).
    pub fn set_default_backend(&mut self, backend: Arc<Backend>) -> bool {
        if self.default_backend.is_some() {
            return false;
        }
        self.default_backend = Some(backend);
        true
    }

    /// The backend for a request's host (normalized, without port) and path; `None`: 404.
    pub fn lookup(&self, host: &str, path: &str) -> Option<&Arc<Backend>> {
        let exact = self.exact.get(host).and_then(|r| r.lookup(path));
        exact
            .or_else(|| {
                let suffix = host::wildcard_suffix(host)?;
                self.wildcard.get(suffix)?.lookup(path)
            })
            .or_else(|| self.any_host.lookup(path))
            .or(self.default_backend.as_ref())
    }

    /// Paths in the table (all hosts), for logs.
    pub fn len(&self) -> usize {
        self.exact.values().map(PathRules::len).sum::<usize>()
            + self.wildcard.values().map(PathRules::len).sum::<usize>()
            + self.any_host.len()
            + usize::from(self.default_backend.is_some())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// What the proxy serves at one moment: routes and certificates, swapped together.
#[derive(Debug)]
pub struct Snapshot {
    pub routes: RouteTable,
    pub certs: CertTable,
    /// Gateway API routes, tried before `routes`.
    pub gateway: GatewayTable,
}

/// The snapshot in force. Readers clone the `Arc` (a read lock held for that instant only);
/// the controller replaces it whole.
#[derive(Debug)]
pub struct Current(RwLock<Arc<Snapshot>>);

impl Current {
    pub fn new(s: Snapshot) -> Self {
        Current(RwLock::new(Arc::new(s)))
    }

    pub fn load(&self) -> Arc<Snapshot> {
        self.0.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub fn store(&self, s: Snapshot) {
        *self.0.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(s);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::Protocol;

    fn b(name: &str) -> Arc<Backend> {
        Arc::new(Backend::new(name.into(), Protocol::Http1, vec![]))
    }

    fn at<'a>(t: &'a RouteTable, host: &str, path: &str) -> Option<&'a str> {
        t.lookup(host, path).map(|b| b.name.as_str())
    }

    #[test]
    fn host_precedence_exact_wildcard_any_default() {
        let mut t = RouteTable::default();
        let foo = HostPattern::parse("foo.example.com");
        let wild = HostPattern::parse("*.example.com");
        t.insert(Some(&foo), PathKind::Prefix, "/api", b("foo-api"));
        t.insert(Some(&wild), PathKind::Prefix, "/", b("wild"));
        t.insert(None, PathKind::Prefix, "/web", b("any-web"));
        assert_eq!(at(&t, "foo.example.com", "/api/x"), Some("foo-api"));
        // No path of the exact host matches: the wildcard host's rules are next.
        assert_eq!(at(&t, "foo.example.com", "/other"), Some("wild"));
        assert_eq!(at(&t, "bar.example.com", "/api"), Some("wild"));
        // One label only.
        assert_eq!(at(&t, "a.bar.example.com", "/api"), None);
        assert_eq!(at(&t, "example.com", "/api"), None);
        assert_eq!(at(&t, "other.org", "/web/x"), Some("any-web"));
        assert_eq!(at(&t, "other.org", "/nothing"), None);
        assert!(t.set_default_backend(b("default")));
        assert!(!t.set_default_backend(b("younger")));
        assert_eq!(at(&t, "other.org", "/nothing"), Some("default"));
        assert_eq!(t.len(), 4);
    }

    #[test]
    fn swapped_tables_leave_readers_on_theirs() {
        let snapshot = |name: &str| {
            let mut routes = RouteTable::default();
            routes.insert(None, PathKind::Prefix, "/", b(name));
            Snapshot {
                routes,
                certs: CertTable::new(None),
                gateway: GatewayTable::default(),
            }
        };
        let current = Current::new(snapshot("old"));
        let held = current.load();
        current.store(snapshot("new"));
        assert_eq!(at(&held.routes, "h", "/"), Some("old"));
        assert_eq!(at(&current.load().routes, "h", "/"), Some("new"));
    }
}
