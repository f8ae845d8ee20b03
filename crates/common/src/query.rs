//! URL queries as Go's `net/url` reads and writes them (`url.ParseQuery`, `url.Values`,
//! `url.QueryEscape`), for the API server and the kubelet alike: repeated keys keep every value
//! in order (`command=sh&command=-c`), and lookups take the first, as `Values.Get` does.

use std::collections::HashMap;

/// A decoded query: every `(key, value)` pair, in order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Query(Vec<(String, String)>);

impl Query {
    /// Splits on `&`, then on the first `=`; both halves unescaped (`+` is a space).
    pub fn parse(q: Option<&str>) -> Self {
        Query(
            q.unwrap_or("")
                .split('&')
                .filter(|p| !p.is_empty())
                .map(|p| {
                    let (k, v) = p.split_once('=').unwrap_or((p, ""));
                    (unescape(k), unescape(v))
                })
                .collect(),
        )
    }

    /// The first value of `key` (`url.Values.Get`).
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// Every value of `key`, in order.
    pub fn all(&self, key: &str) -> Vec<String> {
        self.0
            .iter()
            .filter(|(k, _)| k == key)
            .map(|(_, v)| v.clone())
            .collect()
    }

    /// Each key with its first value.
    pub fn first_values(&self) -> HashMap<String, String> {
        let mut out = HashMap::with_capacity(self.0.len());
        for (k, v) in &self.0 {
            out.entry(k.clone()).or_insert_with(|| v.clone());
        }
        out
    }
}

/// `url.QueryUnescape`, leniently: `+` is a space, `%XX` a byte, a `%` not followed by two hex
/// digits stays as it is; bytes that are not UTF-8 become U+FFFD.
pub fn unescape(s: &str) -> String {
    unescape_with(s, true)
}

/// `url.PathUnescape`, as leniently: `%XX` a byte, `+` itself (a path segment's `*` arrives
/// as `%2A` from kubectl).
pub fn unescape_path(s: &str) -> String {
    unescape_with(s, false)
}

fn unescape_with(s: &str, plus_is_space: bool) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' if plus_is_space => out.push(b' '),
            b'%' => match bytes.get(i + 1..i + 3).and_then(hex_byte) {
                Some(b) => {
                    out.push(b);
                    i += 2;
                }
                None => out.push(b'%'),
            },
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex_byte(two: &[u8]) -> Option<u8> {
    let digit = |c: u8| (c as char).to_digit(16);
    u8::try_from(digit(two[0])? * 16 + digit(two[1])?).ok()
}

/// `url.QueryEscape`: unreserved bytes as they are, a space as `+`, the rest `%XX`.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_as_go_parses_them() {
        let q = Query::parse(Some(
            "command=sh&command=-c&command=echo+hi%3B+exit+3&tty&fieldSelector=metadata.name%3Dx&a=1&a=2",
        ));
        assert_eq!(q.all("command"), ["sh", "-c", "echo hi; exit 3"]);
        assert_eq!(q.get("tty"), Some(""));
        assert_eq!(q.get("fieldSelector"), Some("metadata.name=x"));
        assert_eq!(q.get("a"), Some("1"), "the first value, as url.Values.Get");
        assert_eq!(q.first_values()["a"], "1");
        assert_eq!(q.get("nope"), None);
        assert_eq!(Query::parse(None), Query::default());
    }

    #[test]
    fn unescaping_never_panics_and_keeps_what_it_cannot_read() {
        assert_eq!(unescape("50%"), "50%");
        assert_eq!(unescape("%zz%4"), "%zz%4");
        // A `%` before a multi-byte character: no slicing inside the character.
        assert_eq!(unescape("%é"), "%é");
        assert_eq!(unescape("%C3%A9"), "é");
        assert_eq!(unescape("%FF"), "\u{FFFD}");
    }

    #[test]
    fn escaping_as_go() {
        assert_eq!(escape("echo hi; exit 3"), "echo+hi%3B+exit+3");
        assert_eq!(escape("a-b_c.d~"), "a-b_c.d~");
        assert_eq!(unescape(&escape("x=1&y=é")), "x=1&y=é");
    }
}
