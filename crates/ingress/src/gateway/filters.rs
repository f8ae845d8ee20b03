//! HTTPRoute filters compiled: header modifiers (set, add, remove), RequestRedirect
//! (`Location` built from scheme, hostname, port and path) and URLRewrite (hostname, path),
//! with ReplaceFullPath and ReplacePrefixMatch path modifiers.

use http::HeaderMap;
use http::StatusCode;
use http::header::{HeaderName, HeaderValue};

use super::types::{HeaderFilter, PathModifier, RequestRedirect, UrlRewrite};

/// RequestHeaderModifier / ResponseHeaderModifier.
#[derive(Clone, Debug, Default)]
pub struct HeaderMod {
    set: Vec<(HeaderName, HeaderValue)>,
    add: Vec<(HeaderName, HeaderValue)>,
    remove: Vec<HeaderName>,
}

fn pair(name: &str, value: &str) -> Result<(HeaderName, HeaderValue), String> {
    let n = HeaderName::from_bytes(name.as_bytes())
        .map_err(|_| format!("invalid header name {name:?}"))?;
    let v = HeaderValue::from_str(value).map_err(|_| format!("invalid header value {value:?}"))?;
    Ok((n, v))
}

impl HeaderMod {
    pub fn compile(f: &HeaderFilter) -> Result<HeaderMod, String> {
        let set = f
            .set
            .iter()
            .map(|h| pair(&h.name, &h.value))
            .collect::<Result<_, _>>()?;
        let add = f
            .add
            .iter()
            .map(|h| pair(&h.name, &h.value))
            .collect::<Result<_, _>>()?;
        let remove = f
            .remove
            .iter()
            .map(|n| {
                HeaderName::from_bytes(n.as_bytes())
                    .map_err(|_| format!("invalid header name {n:?}"))
            })
            .collect::<Result<_, _>>()?;
        Ok(HeaderMod { set, add, remove })
    }

    /// `set` replaces every value, `add` appends one more, `remove` drops the header.
    pub fn apply(&self, h: &mut HeaderMap) {
        for (n, v) in &self.set {
            h.insert(n.clone(), v.clone());
        }
        for (n, v) in &self.add {
            h.append(n.clone(), v.clone());
        }
        for n in &self.remove {
            h.remove(n);
        }
    }
}

/// A path modifier.
#[derive(Clone, Debug)]
pub enum PathMod {
    Full(String),
    /// Replaces the matched PathPrefix.
    Prefix(String),
}

impl PathMod {
    fn compile(p: &PathModifier) -> Result<PathMod, String> {
        match p.type_.as_str() {
            "ReplaceFullPath" => Ok(PathMod::Full(
                p.replace_full_path.clone().unwrap_or_default(),
            )),
            "ReplacePrefixMatch" => Ok(PathMod::Prefix(
                p.replace_prefix_match.clone().unwrap_or_default(),
            )),
            other => Err(format!("path modifier type {other:?} is not supported")),
        }
    }

    pub fn is_prefix(&self) -> bool {
        matches!(self, PathMod::Prefix(_))
    }

    /// The new path; `matched` is the PathPrefix the request matched (without trailing `/`).
    pub fn apply(&self, path: &str, matched: Option<&str>) -> String {
        match self {
            PathMod::Full(p) => p.clone(),
            PathMod::Prefix(with) => {
                let rest = matched.and_then(|m| path.strip_prefix(m)).unwrap_or(path);
                let out = format!("{}{rest}", with.trim_end_matches('/'));
                if out.is_empty() { "/".to_string() } else { out }
            }
        }
    }
}

#[derive(Clone, Debug)]
pub struct Redirect {
    scheme: Option<String>,
    hostname: Option<String>,
    path: Option<PathMod>,
    port: Option<u16>,
    pub status: StatusCode,
}

impl Redirect {
    pub fn compile(r: &RequestRedirect) -> Result<Redirect, String> {
        let scheme = match r.scheme.as_deref() {
            None => None,
            Some(s @ ("http" | "https")) => Some(s.to_string()),
            Some(other) => return Err(format!("redirect scheme {other:?} is not supported")),
        };
        let status = match r.status_code.unwrap_or(302) {
            c @ (301 | 302 | 303 | 307 | 308) => {
                StatusCode::from_u16(u16::try_from(c).unwrap_or(302)).unwrap_or(StatusCode::FOUND)
            }
            other => return Err(format!("redirect status code {other} is not supported")),
        };
        let port = match r.port {
            None => None,
            Some(p) => Some(u16::try_from(p).map_err(|_| format!("invalid port {p}"))?),
        };
        Ok(Redirect {
            scheme,
            hostname: r.hostname.clone(),
            path: r.path.as_ref().map(PathMod::compile).transpose()?,
            port,
            status,
        })
    }

    pub fn path_mod(&self) -> Option<&PathMod> {
        self.path.as_ref()
    }

    /// The `Location`: the request's scheme, host and path unless the filter says otherwise;
    /// the port is the filter's, else the scheme's well-known one when the filter sets a
    /// scheme, else the listener's; left out when it is the scheme's default.
    pub fn location(&self, req: &RequestParts<'_>, matched: Option<&str>) -> String {
        let scheme = self
            .scheme
            .as_deref()
            .unwrap_or(if req.tls { "https" } else { "http" });
        let host = self.hostname.as_deref().unwrap_or(req.host);
        let port = self.port.unwrap_or(match (&self.scheme, scheme) {
            (Some(_), "https") => 443,
            (Some(_), _) => 80,
            (None, _) => req.listener_port,
        });
        let path = match &self.path {
            Some(m) => m.apply(req.path, matched),
            None => req.path.to_string(),
        };
        let query = req.query.map(|q| format!("?{q}")).unwrap_or_default();
        let default_port = matches!((scheme, port), ("http", 80) | ("https", 443));
        if default_port {
            format!("{scheme}://{host}{path}{query}")
        } else {
            format!("{scheme}://{host}:{port}{path}{query}")
        }
    }
}

/// What a redirect reads of the request.
pub struct RequestParts<'a> {
    pub tls: bool,
    /// Without port.
    pub host: &'a str,
    pub path: &'a str,
    pub query: Option<&'a str>,
    pub listener_port: u16,
}

#[derive(Clone, Debug)]
pub struct Rewrite {
    pub hostname: Option<HeaderValue>,
    pub path: Option<PathMod>,
}

impl Rewrite {
    pub fn compile(r: &UrlRewrite) -> Result<Rewrite, String> {
        let hostname = match r.hostname.as_deref() {
            None => None,
            Some(h) => {
                Some(HeaderValue::from_str(h).map_err(|_| format!("invalid hostname {h:?}"))?)
            }
        };
        Ok(Rewrite {
            hostname,
            path: r.path.as_ref().map(PathMod::compile).transpose()?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // The table of HTTPPathModifier.replacePrefixMatch in upstream's API.
    #[test]
    fn replace_prefix_match_as_the_spec_table() {
        let cases = [
            ("/foo/bar", "/foo", "/xyz", "/xyz/bar"),
            ("/foo/bar", "/foo", "/xyz/", "/xyz/bar"),
            ("/foo/bar", "/foo/", "/xyz", "/xyz/bar"),
            ("/foo/bar", "/foo/", "/xyz/", "/xyz/bar"),
            ("/foo", "/foo", "/xyz", "/xyz"),
            ("/foo/", "/foo", "/xyz", "/xyz/"),
            ("/foo/bar", "/foo", "", "/bar"),
            ("/foo/", "/foo", "", "/"),
            ("/foo", "/foo", "", "/"),
            ("/foo/", "/foo", "/", "/"),
            ("/foo", "/foo", "/", "/"),
        ];
        for (path, prefix, with, want) in cases {
            let m = PathMod::Prefix(with.into());
            assert_eq!(
                m.apply(path, Some(prefix.trim_end_matches('/'))),
                want,
                "{path} {prefix} {with}"
            );
        }
    }

    #[test]
    fn redirect_locations() {
        let req = RequestParts {
            tls: false,
            host: "a.example.com",
            path: "/old/x",
            query: Some("q=1"),
            listener_port: 8080,
        };
        let r = |scheme: Option<&str>, port: Option<i32>, code: Option<i32>| {
            Redirect::compile(&RequestRedirect {
                scheme: scheme.map(Into::into),
                hostname: Some("b.example.com".into()),
                path: Some(PathModifier {
                    type_: "ReplacePrefixMatch".into(),
                    replace_full_path: None,
                    replace_prefix_match: Some("/new".into()),
                }),
                port,
                status_code: code,
            })
            .unwrap_or_else(|e| panic!("{e}"))
        };
        let plain = r(None, None, None);
        assert_eq!(plain.status, StatusCode::FOUND);
        assert_eq!(
            plain.location(&req, Some("/old")),
            "http://b.example.com:8080/new/x?q=1",
            "the listener's port"
        );
        assert_eq!(
            r(Some("https"), None, Some(301)).location(&req, Some("/old")),
            "https://b.example.com/new/x?q=1",
            "the scheme's port, left out"
        );
        assert_eq!(
            r(None, Some(80), None).location(&req, Some("/old")),
            "http://b.example.com/new/x?q=1"
        );
        assert!(
            Redirect::compile(&RequestRedirect {
                status_code: Some(304),
                ..Default::default()
            })
            .is_err()
        );
    }
}
