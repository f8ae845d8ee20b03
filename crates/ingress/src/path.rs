//! One host's paths and upstream's matching rules: `Exact` compares the whole path, `Prefix`
//! compares `/`-separated elements (`/foo` matches `/foo` and `/foo/bar`, not `/foobar`; a
//! trailing `/` on either side is ignored), the longest match wins and `Exact` wins at equal
//! length. `ImplementationSpecific` is treated as `Prefix`.

use std::collections::HashMap;
use std::collections::hash_map::Entry;

/// `spec.rules[].http.paths[].pathType`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PathKind {
    Exact,
    Prefix,
}

impl PathKind {
    /// `Exact`, `Prefix` and `ImplementationSpecific` (as `Prefix`); anything else `None`.
    pub fn parse(path_type: &str) -> Option<PathKind> {
        match path_type {
            "Exact" => Some(PathKind::Exact),
            "Prefix" | "ImplementationSpecific" => Some(PathKind::Prefix),
            _ => None,
        }
    }
}

/// The paths of one host (or of the rules without a host), to a target `T`.
#[derive(Clone, Debug)]
pub struct PathRules<T> {
    exact: HashMap<String, T>,
    /// Keyed by the prefix without trailing `/` (`/` itself is the empty key).
    prefix: HashMap<String, T>,
}

impl<T> Default for PathRules<T> {
    fn default() -> Self {
        PathRules {
            exact: HashMap::new(),
            prefix: HashMap::new(),
        }
    }
}

impl<T> PathRules<T> {
    /// Adds a path; the first one added for the same path and kind stays (callers add the
    /// oldest Ingress first, which wins conflicts as in ingress-nginx). False when taken.
    pub fn insert(&mut self, kind: PathKind, path: &str, target: T) -> bool {
        let (map, key) = match kind {
            PathKind::Exact => (&mut self.exact, path.to_string()),
            PathKind::Prefix => (&mut self.prefix, path.trim_end_matches('/').to_string()),
        };
        match map.entry(key) {
            Entry::Vacant(v) => {
                v.insert(target);
                true
            }
            Entry::Occupied(_) => false,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.exact.is_empty() && self.prefix.is_empty()
    }

    pub fn len(&self) -> usize {
        self.exact.len() + self.prefix.len()
    }

    /// The target of the longest match for a request path (without its query).
    ///
    /// An exact match is as long as the path itself, so it beats (or ties, and wins over)
    /// every prefix; the prefixes are then tried from the whole path down to `/`, one
    /// element at a time: O(depth) lookups whatever the number of rules.
    pub fn lookup(&self, path: &str) -> Option<&T> {
        if let Some(t) = self.exact.get(path) {
            return Some(t);
        }
        if self.prefix.is_empty() {
            return None;
        }
        let mut candidate = path.trim_end_matches('/');
        loop {
            if let Some(t) = self.prefix.get(candidate) {
                return Some(t);
            }
            match candidate.rfind('/') {
                Some(i) => candidate = &candidate[..i],
                None => return None,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(paths: &[(PathKind, &str)]) -> PathRules<String> {
        let mut r = PathRules::default();
        for (k, p) in paths {
            r.insert(*k, p, format!("{k:?} {p}"));
        }
        r
    }

    fn hit(r: &PathRules<String>, path: &str) -> Option<String> {
        r.lookup(path).cloned()
    }

    // The examples table of the Ingress documentation ("Examples" under Path types).
    #[test]
    fn upstream_examples() {
        use PathKind::*;
        let p = |k, path| rules(&[(k, path)]);
        assert!(hit(&p(Prefix, "/"), "/anything").is_some());
        assert!(hit(&p(Exact, "/foo"), "/foo").is_some());
        assert!(hit(&p(Exact, "/foo"), "/bar").is_none());
        assert!(hit(&p(Exact, "/foo"), "/foo/").is_none());
        assert!(hit(&p(Exact, "/foo/"), "/foo").is_none());
        assert!(hit(&p(Prefix, "/foo"), "/foo").is_some());
        assert!(hit(&p(Prefix, "/foo"), "/foo/").is_some());
        assert!(hit(&p(Prefix, "/foo/"), "/foo").is_some());
        assert!(hit(&p(Prefix, "/foo/"), "/foo/").is_some());
        assert!(hit(&p(Prefix, "/aaa/bb"), "/aaa/bbb").is_none());
        assert!(hit(&p(Prefix, "/aaa/bbb"), "/aaa/bbb").is_some());
        assert!(hit(&p(Prefix, "/aaa/bbb/"), "/aaa/bbb").is_some());
        assert!(hit(&p(Prefix, "/aaa/bbb"), "/aaa/bbb/").is_some());
        assert!(hit(&p(Prefix, "/aaa/bbb"), "/aaa/bbb/ccc").is_some());
        assert!(hit(&p(Prefix, "/aaa/bbb"), "/aaa/bbbxyz").is_none());
        let both = rules(&[(Prefix, "/"), (Prefix, "/aaa")]);
        assert_eq!(hit(&both, "/aaa/ccc").as_deref(), Some("Prefix /aaa"));
        assert_eq!(hit(&both, "/ccc").as_deref(), Some("Prefix /"));
        let deep = rules(&[(Prefix, "/"), (Prefix, "/aaa"), (Prefix, "/aaa/bbb")]);
        assert_eq!(hit(&deep, "/aaa/bbb").as_deref(), Some("Prefix /aaa/bbb"));
        assert_eq!(hit(&deep, "/aaa/bbbxyz").as_deref(), Some("Prefix /aaa"));
        let none = rules(&[(Prefix, "/aaa")]);
        assert!(hit(&none, "/ccc").is_none());
        let mixed = rules(&[(Exact, "/foo"), (Prefix, "/foo")]);
        assert_eq!(hit(&mixed, "/foo").as_deref(), Some("Exact /foo"));
        assert_eq!(hit(&mixed, "/foo/x").as_deref(), Some("Prefix /foo"));
    }

    #[test]
    fn longest_match_wins_and_exact_only_at_its_own_path() {
        use PathKind::*;
        let r = rules(&[(Exact, "/api"), (Prefix, "/api/v1"), (Prefix, "/")]);
        assert_eq!(hit(&r, "/api").as_deref(), Some("Exact /api"));
        assert_eq!(hit(&r, "/api/v1/pods").as_deref(), Some("Prefix /api/v1"));
        assert_eq!(hit(&r, "/api/v2").as_deref(), Some("Prefix /"));
        // ImplementationSpecific is Prefix.
        assert_eq!(PathKind::parse("ImplementationSpecific"), Some(Prefix));
        assert_eq!(PathKind::parse("Regex"), None);
    }

    #[test]
    fn the_first_insert_of_a_path_wins() {
        let mut r = PathRules::default();
        assert!(r.insert(PathKind::Prefix, "/a/", "old"));
        assert!(!r.insert(PathKind::Prefix, "/a", "new"));
        assert!(r.insert(PathKind::Exact, "/a", "exact"));
        assert_eq!(r.lookup("/a/b"), Some(&"old"));
        assert_eq!(r.len(), 2);
    }
}
