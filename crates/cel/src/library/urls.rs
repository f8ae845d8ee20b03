//! The URL library: `url()`, `isURL`, and `getScheme`, `getHost`, `getHostname`, `getPort`,
//! `getEscapedPath`, `getQuery` on URLs. Parsing follows Go's `url.ParseRequestURI` (what
//! upstream validates with): an absolute URI, or an absolute path.

use std::collections::HashMap;

use cel_rust::common::types::{CelBool, CelList, CelMap, CelMapKey, CelString, STRING_TYPE, Type};
use cel_rust::common::value::{CowVal, Val};
use cel_rust::{DeclarationError, Env, ExecutionError};

use super::{charge_str, library_val, nth, str_arg};

static URL_TYPE: Type = Type::new_unspecified_type("kubernetes.URL");

/// A parsed URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Url {
    scheme: String,
    /// Host and port as written (`[::1]:80`).
    host: String,
    path: String,
    query: String,
}

library_val!(Url, URL_TYPE);

pub(super) fn register(env: &mut Env) -> Result<(), DeclarationError> {
    env.add_overload("url", "string_to_url", vec![STRING_TYPE], to_url)?;
    env.add_overload("isURL", "is_url_string", vec![STRING_TYPE], is_url)?;
    let getters: [(&str, &str, cel_rust::common::functions::Function); 6] = [
        ("getScheme", "url_get_scheme", get_scheme),
        ("getHost", "url_get_host", get_host),
        ("getHostname", "url_get_hostname", get_hostname),
        ("getPort", "url_get_port", get_port),
        ("getEscapedPath", "url_get_escaped_path", get_escaped_path),
        ("getQuery", "url_get_query", get_query),
    ];
    for (name, id, f) in getters {
        env.add_member_overload(name, id, URL_TYPE.to_owned(), vec![], f)?;
    }
    Ok(())
}

fn hex(b: u8) -> bool {
    b.is_ascii_hexdigit()
}

/// Whether every `%` starts a valid escape.
fn valid_escapes(s: &str) -> bool {
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            if !(b.get(i + 1).is_some_and(|c| hex(*c)) && b.get(i + 2).is_some_and(|c| hex(*c))) {
                return false;
            }
            i += 3;
        } else {
            i += 1;
        }
    }
    true
}

/// Go's `url.ParseRequestURI`, keeping the parts the library reads.
pub(crate) fn parse(raw: &str) -> Result<Url, String> {
    if raw.is_empty() {
        return Err("empty url".into());
    }
    if raw.bytes().any(|b| b < 0x20 || b == 0x7f) {
        return Err("net/url: invalid control character in URL".into());
    }
    let (scheme, rest) = split_scheme(raw)?;
    let (rest, query) = match rest.split_once('?') {
        Some((r, q)) => (r, q.to_owned()),
        None => (rest, String::new()),
    };
    if !rest.starts_with('/') {
        if !scheme.is_empty() {
            // An opaque URI such as `mailto:a@b`.
            return Ok(Url {
                scheme,
                host: String::new(),
                path: String::new(),
                query,
            });
        }
        return Err("invalid URI for request".into());
    }
    let (host, path) = match rest.strip_prefix("//") {
        Some(after) if !scheme.is_empty() => {
            let end = after.find('/').unwrap_or(after.len());
            let authority = &after[..end];
            let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
            check_host(host)?;
            (host.to_owned(), after[end..].to_owned())
        }
        _ => (String::new(), rest.to_owned()),
    };
    if !valid_escapes(&path) {
        return Err(format!("invalid URL escape in {path:?}"));
    }
    Ok(Url {
        scheme,
        host,
        path,
        query,
    })
}

fn split_scheme(raw: &str) -> Result<(String, &str), String> {
    for (i, c) in raw.char_indices() {
        match c {
            'a'..='z' | 'A'..='Z' => {}
            '0'..='9' | '+' | '-' | '.' if i > 0 => {}
            ':' if i == 0 => return Err("missing protocol scheme".into()),
            ':' => return Ok((raw[..i].to_ascii_lowercase(), &raw[i + 1..])),
            _ => return Ok((String::new(), raw)),
        }
    }
    Ok((String::new(), raw))
}

fn check_host(host: &str) -> Result<(), String> {
    let port = if let Some(after) = host.strip_prefix('[') {
        let close = after.find(']').ok_or("missing ']' in host")?;
        &after[close + 1..]
    } else {
        host.rfind(':').map_or("", |i| &host[i..])
    };
    let valid_port = port.is_empty()
        || port
            .strip_prefix(':')
            .is_some_and(|p| p.bytes().all(|b| b.is_ascii_digit()));
    if !valid_port {
        return Err(format!("invalid port {port:?} after host"));
    }
    if !valid_escapes(host) {
        return Err(format!("invalid URL escape in host {host:?}"));
    }
    Ok(())
}

impl Url {
    fn hostname(&self) -> &str {
        if let Some(after) = self.host.strip_prefix('[') {
            return after.split(']').next().unwrap_or_default();
        }
        self.host.rsplit_once(':').map_or(&self.host, |(h, _)| h)
    }

    fn port(&self) -> &str {
        let tail = match self.host.strip_prefix('[') {
            Some(after) => after.split_once(']').map_or("", |(_, t)| t),
            None => self.host.rfind(':').map_or("", |i| &self.host[i..]),
        };
        tail.strip_prefix(':').unwrap_or_default()
    }

    /// Go's `EscapedPath`: the path as written, escaping what must be.
    fn escaped_path(&self) -> String {
        let mut out = String::with_capacity(self.path.len());
        for b in self.path.bytes() {
            if b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=:@/%".contains(&b) {
                out.push(b as char);
            } else {
                out.push_str(&format!("%{b:02X}"));
            }
        }
        out
    }
}

/// `QueryUnescape`: `+` is a space, `%XX` a byte.
fn unescape(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let h = s.get(i + 1..i + 3)?;
                out.push(u8::from_str_radix(h, 16).ok()?);
                i += 2;
            }
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8(out).ok()
}

fn url_arg<'b>(args: &'b [CowVal<'_, '_>], function: &str) -> Result<&'b Url, ExecutionError> {
    nth(args, 0)?
        .downcast_ref::<Url>()
        .ok_or_else(|| ExecutionError::function_error(function, "expected a URL"))
}

fn to_url<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    let s = str_arg("url", nth(&args, 0)?.as_ref())?;
    charge_str(s);
    let mut url = parse(s).map_err(|e| {
        ExecutionError::function_error(
            "url",
            format!("URL parse error during conversion from string: {e}"),
        )
    })?;
    // Like Go's `url.Parse`, a fragment is not part of the path or query.
    for part in [&mut url.path, &mut url.query] {
        if let Some(i) = part.find('#') {
            part.truncate(i);
        }
    }
    Ok(CowVal::owned(url))
}

fn is_url<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    let s = str_arg("isURL", nth(&args, 0)?.as_ref())?;
    charge_str(s);
    Ok(CowVal::owned(CelBool::from(parse(s).is_ok())))
}

fn string_result<'b, 'v>(s: impl Into<String>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    Ok(CowVal::owned(CelString::from(s.into())))
}

fn get_scheme<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    string_result(url_arg(&args, "getScheme")?.scheme.clone())
}

fn get_host<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    string_result(url_arg(&args, "getHost")?.host.clone())
}

fn get_hostname<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    string_result(url_arg(&args, "getHostname")?.hostname())
}

fn get_port<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    string_result(url_arg(&args, "getPort")?.port())
}

fn get_escaped_path<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    string_result(url_arg(&args, "getEscapedPath")?.escaped_path())
}

fn get_query<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    let url = url_arg(&args, "getQuery")?;
    let mut values: Vec<(String, Vec<String>)> = Vec::new();
    for pair in url.query.split('&').filter(|p| !p.is_empty()) {
        // Go skips pairs it can't decode (and, since 1.17, ones with `;`).
        if pair.contains(';') {
            continue;
        }
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let (Some(k), Some(v)) = (unescape(k), unescape(v)) else {
            continue;
        };
        match values.iter_mut().find(|(key, _)| *key == k) {
            Some((_, list)) => list.push(v),
            None => values.push((k, vec![v])),
        }
    }
    let map: HashMap<CelMapKey<'v>, Box<dyn Val + 'v>> = values
        .into_iter()
        .map(|(k, vs)| {
            let list: Vec<Box<dyn Val + 'v>> = vs
                .into_iter()
                .map(|v| Box::new(CelString::from(v)) as Box<dyn Val + 'v>)
                .collect();
            (
                CelMapKey::String(CelString::from(k)),
                Box::new(CelList::from(list)) as Box<dyn Val + 'v>,
            )
        })
        .collect();
    Ok(CowVal::owned(CelMap::from(map)))
}
