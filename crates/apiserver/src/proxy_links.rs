//! Links in proxied pages pointed back through the proxy (upstream's proxy `Transport`, which
//! `pods|services|nodes/…/proxy` wrap their backends in): a page served at `/` by a pod is
//! seen at `/api/v1/namespaces/ns/pods/web/proxy/`, so its absolute links (`/static/app.js`)
//! and redirects get that prefix, or they would leave the proxy. Relative links, other hosts
//! and other schemes stay as they are. HTML is rewritten with lol_html (a streaming rewriter
//! of the tree of attributes upstream lists); `Location` headers likewise.

use std::io::{Read, Write};

/// Elements and the attributes of theirs that hold URLs (upstream's `atomsToAttrs`).
const URL_ATTRIBUTES: &[(&str, &[&str])] = &[
    ("a", &["href"]),
    ("applet", &["codebase"]),
    ("area", &["href"]),
    ("audio", &["src"]),
    ("base", &["href"]),
    ("blockquote", &["cite"]),
    ("body", &["background"]),
    ("button", &["formaction"]),
    ("command", &["icon"]),
    ("del", &["cite"]),
    ("embed", &["src"]),
    ("form", &["action"]),
    ("frame", &["longdesc", "src"]),
    ("head", &["profile"]),
    ("html", &["manifest"]),
    ("iframe", &["longdesc", "src"]),
    ("img", &["longdesc", "src", "usemap"]),
    ("input", &["src", "usemap", "formaction"]),
    ("ins", &["cite"]),
    ("link", &["href"]),
    ("object", &["classid", "codebase", "data", "usemap"]),
    ("q", &["cite"]),
    ("script", &["src"]),
    ("source", &["src"]),
    ("video", &["poster", "src"]),
];

/// How one proxied response's links are rewritten.
pub struct LinkRewriter {
    /// The proxy's own prefix: the request path without the backend path at its end.
    path_prepend: String,
    /// The backend's `host:port` and the Host the client asked the API server for: links to
    /// either are the backend's own.
    backend_host: String,
    request_host: String,
}

impl LinkRewriter {
    /// For a request to `request_path` that reached the backend as `location_path`.
    pub fn new(
        request_path: &str,
        location_path: &str,
        backend_host: &str,
        request_host: &str,
    ) -> Self {
        let mut suffix = location_path.to_owned();
        if request_path.ends_with('/') && !suffix.ends_with('/') {
            suffix.push('/');
        }
        let path_prepend = request_path
            .strip_suffix(suffix.as_str())
            .unwrap_or(request_path)
            .to_owned();
        LinkRewriter {
            path_prepend,
            backend_host: backend_host.to_owned(),
            request_host: request_host.to_owned(),
        }
    }

    /// Upstream's `rewriteURL` for one link.
    pub fn url(&self, target: &str) -> String {
        let Some(link) = Link::parse(target) else {
            return target.to_owned();
        };
        let different_host = !link.host.is_empty()
            && link.host != self.backend_host
            && link.host != self.request_host;
        if different_host || !link.path.starts_with('/') {
            return target.to_owned();
        }
        // A link already naming the API server keeps its scheme and host; the backend's own
        // become host-relative.
        let origin = if link.host == self.request_host {
            link.origin
        } else {
            ""
        };
        let path = if link.path.starts_with(&self.path_prepend) {
            link.path.to_owned()
        } else {
            let mut p = clean(&format!("{}/{}", self.path_prepend, link.path));
            if link.path.ends_with('/') && !p.ends_with('/') {
                p.push('/');
            }
            p
        };
        format!("{origin}{path}{}", link.rest)
    }

    /// `body` (HTML) with its links rewritten.
    pub fn html(&self, body: &[u8]) -> Result<Vec<u8>, String> {
        let handlers: Vec<_> = URL_ATTRIBUTES
            .iter()
            .flat_map(|(tag, attrs)| attrs.iter().map(move |a| (*tag, *a)))
            .map(|(tag, attr)| {
                lol_html::element!(format!("{tag}[{attr}]"), move |el| {
                    if let Some(v) = el.get_attribute(attr) {
                        let new = self.url(&v);
                        if new != v {
                            el.set_attribute(attr, &new)?;
                        }
                    }
                    Ok(())
                })
            })
            .collect();
        let mut out = Vec::with_capacity(body.len() + 256);
        let mut rewriter = lol_html::HtmlRewriter::new(
            lol_html::Settings {
                element_content_handlers: handlers,
                ..lol_html::Settings::new()
            },
            |c: &[u8]| out.extend_from_slice(c),
        );
        rewriter.write(body).map_err(|e| e.to_string())?;
        rewriter.end().map_err(|e| e.to_string())?;
        Ok(out)
    }

    /// [`Self::html`] for a body in `encoding` (`Content-Encoding`): none or gzip, as
    /// upstream; `None` for encodings it cannot read (the body then passes as it is).
    pub fn encoded_html(&self, body: &[u8], encoding: &str) -> Option<Result<Vec<u8>, String>> {
        match encoding {
            "" | "identity" => Some(self.html(body)),
            "gzip" => {
                let mut plain = Vec::new();
                let read = flate2::read::GzDecoder::new(body).read_to_end(&mut plain);
                Some(read.map_err(|e| e.to_string()).and_then(|_| {
                    let html = self.html(&plain)?;
                    let mut gz = flate2::write::GzEncoder::new(Vec::new(), Default::default());
                    gz.write_all(&html).map_err(|e| e.to_string())?;
                    gz.finish().map_err(|e| e.to_string())
                }))
            }
            _ => None,
        }
    }
}

/// A URL reference split as Go's `url.Parse` sees it, as far as rewriting needs.
struct Link<'a> {
    /// `scheme://host` when given.
    origin: &'a str,
    host: &'a str,
    path: &'a str,
    /// `?query#fragment`, kept as written.
    rest: &'a str,
}

impl<'a> Link<'a> {
    fn parse(s: &'a str) -> Option<Link<'a>> {
        let (origin, host, after) = if let Some(r) = s.strip_prefix("//") {
            let end = r.find(['/', '?', '#']).unwrap_or(r.len());
            (&s[..2 + end], &r[..end], &r[end..])
        } else if let Some(i) = s.find(':').filter(|i| {
            s[..*i]
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c))
                && !s[..*i].is_empty()
                && !s[..*i].contains('/')
        }) {
            // A scheme: only http(s) with an authority has a host and path to speak of.
            let r = s[i + 1..].strip_prefix("//")?;
            let end = r.find(['/', '?', '#']).unwrap_or(r.len());
            let origin_len = i + 3 + end;
            (&s[..origin_len], &r[..end], &r[end..])
        } else {
            ("", "", s)
        };
        let end = after.find(['?', '#']).unwrap_or(after.len());
        Some(Link {
            origin,
            host,
            path: &after[..end],
            rest: &after[end..],
        })
    }
}

/// Go's `path.Clean` for an absolute path: no empty, `.` or `..` elements.
fn clean(p: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for seg in p.split('/') {
        match seg {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            s => parts.push(s),
        }
    }
    format!("/{}", parts.join("/"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod() -> LinkRewriter {
        LinkRewriter::new(
            "/api/v1/namespaces/default/pods/web:8080/proxy/docs/index.html",
            "/docs/index.html",
            "10.42.0.5:8080",
            "127.0.0.1:6443",
        )
    }

    #[test]
    fn links_as_upstream_rewrites_them() {
        let r = pod();
        let p = "/api/v1/namespaces/default/pods/web:8080/proxy";
        assert_eq!(r.url("/static/app.js"), format!("{p}/static/app.js"));
        assert_eq!(r.url("/dir/"), format!("{p}/dir/"));
        assert_eq!(r.url("/a/../b?x=1#top"), format!("{p}/b?x=1#top"));
        assert_eq!(r.url("http://10.42.0.5:8080/x"), format!("{p}/x"));
        assert_eq!(
            r.url("https://127.0.0.1:6443/y"),
            format!("https://127.0.0.1:6443{p}/y")
        );
        // Already through the proxy, relative, elsewhere, or not http: unchanged.
        assert_eq!(r.url(&format!("{p}/z")), format!("{p}/z"));
        for same in [
            "relative/page.html",
            "../up",
            "#frag",
            "https://example.invalid/x",
            "//other.invalid/x",
            "mailto:a@b",
            "javascript:void(0)",
        ] {
            assert_eq!(r.url(same), same);
        }
    }

    #[test]
    fn html_attributes_and_gzip() {
        let r = pod();
        let page = br#"<html><head><link href="/s.css"><script src="/a.js"></script></head><body><a href="/x">x</a> <a href="y">y</a><img src="/i.png" alt="/i.png"><p data-x="/no">/text</p></body></html>"#;
        let out = String::from_utf8(r.html(page).unwrap()).unwrap();
        let p = "/api/v1/namespaces/default/pods/web:8080/proxy";
        for want in [
            format!(r#"<link href="{p}/s.css">"#),
            format!(r#"<script src="{p}/a.js">"#),
            format!(r#"<a href="{p}/x">"#),
            r#"<a href="y">"#.to_owned(),
            format!(r#"<img src="{p}/i.png" alt="/i.png">"#),
            r#"<p data-x="/no">/text</p>"#.to_owned(),
        ] {
            assert!(out.contains(&want), "{want} in {out}");
        }
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), Default::default());
        gz.write_all(page).unwrap();
        let zipped = r
            .encoded_html(&gz.finish().unwrap(), "gzip")
            .unwrap()
            .unwrap();
        let mut plain = String::new();
        flate2::read::GzDecoder::new(&zipped[..])
            .read_to_string(&mut plain)
            .unwrap();
        assert_eq!(plain, out);
        assert!(r.encoded_html(page, "br").is_none());
    }
}
