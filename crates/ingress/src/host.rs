//! Host names as rules and requests carry them: lower case, no port, no trailing dot; and
//! the one-label wildcard of upstream (`*.foo.com` matches `bar.foo.com`, not `foo.com` nor
//! `baz.bar.foo.com`).

/// A rule's host: `Exact("foo.com")`, `Wildcard("foo.com")` for `*.foo.com`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum HostPattern {
    Exact(String),
    Wildcard(String),
}

impl HostPattern {
    pub fn parse(host: &str) -> HostPattern {
        let h = normalize(host);
        match h.strip_prefix("*.") {
            Some(suffix) => HostPattern::Wildcard(suffix.to_string()),
            None => HostPattern::Exact(h),
        }
    }
}

/// Lower case without a trailing dot (`Foo.COM.` is `foo.com`).
pub fn normalize(host: &str) -> String {
    host.trim_end_matches('.').to_ascii_lowercase()
}

/// The host of an `authority` (`Host` header or HTTP/2 `:authority`): without the port,
/// brackets kept for IPv6 literals.
pub fn without_port(authority: &str) -> &str {
    if authority.starts_with('[') {
        return match authority.find(']') {
            Some(end) => &authority[..=end],
            None => authority,
        };
    }
    match authority.rsplit_once(':') {
        Some((h, port)) if port.bytes().all(|b| b.is_ascii_digit()) => h,
        _ => authority,
    }
}

/// What a wildcard rule must name to match `host`: everything after the first label
/// (`a.foo.com` → `foo.com`); `None` for a single label.
pub fn wildcard_suffix(host: &str) -> Option<&str> {
    let (first, rest) = host.split_once('.')?;
    (!first.is_empty() && !rest.is_empty()).then_some(rest)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_case_and_wildcards() {
        assert_eq!(without_port("foo.com:8080"), "foo.com");
        assert_eq!(without_port("foo.com"), "foo.com");
        assert_eq!(without_port("[::1]:443"), "[::1]");
        assert_eq!(normalize("Foo.COM."), "foo.com");
        assert_eq!(
            HostPattern::parse("*.Foo.com"),
            HostPattern::Wildcard("foo.com".into())
        );
        assert_eq!(wildcard_suffix("bar.foo.com"), Some("foo.com"));
        assert_eq!(wildcard_suffix("localhost"), None);
    }
}
