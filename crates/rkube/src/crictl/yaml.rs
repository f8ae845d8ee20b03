//! crictl's `-o yaml`: its JSON converted by sigs.k8s.io/yaml's `JSONToYAML`, which reads the
//! JSON with go-yaml v2 and writes it back with go-yaml v2's emitter: keys sorted in its
//! natural order, block style with two-space indentation, sequences not indented under their
//! key, and strings quoted only where a plain scalar would read back as something else.
//!
//! Known difference: go-yaml folds plain strings longer than 80 columns at spaces; this
//! writes them on one line (same value once parsed).

use std::cmp::Ordering;
use std::sync::LazyLock;

use serde_json::Value;

/// `v` as go-yaml v2 writes it, ending with a newline.
pub fn to_yaml(v: &Value) -> String {
    let mut out = String::new();
    match v {
        Value::Object(m) if !m.is_empty() => write_map(m, 0, false, &mut out),
        Value::Array(a) if !a.is_empty() => write_seq(a, 0, false, &mut out),
        other => {
            write_scalar(other, 0, &mut out);
            out.push('\n');
        }
    }
    out
}

fn pad(out: &mut String, n: usize) {
    out.extend(std::iter::repeat_n(' ', n));
}

fn write_map(
    m: &serde_json::Map<String, Value>,
    indent: usize,
    inline_first: bool,
    out: &mut String,
) {
    let mut entries: Vec<(&String, &Value)> = m.iter().collect();
    entries.sort_by(|a, b| key_order(a.0, b.0));
    for (i, (k, v)) in entries.into_iter().enumerate() {
        if i > 0 || !inline_first {
            pad(out, indent);
        }
        out.push_str(&string_scalar(k, indent));
        out.push(':');
        match v {
            Value::Object(inner) if !inner.is_empty() => {
                out.push('\n');
                write_map(inner, indent + 2, false, out);
            }
            // go-yaml v2 does not indent a sequence under its mapping key.
            Value::Array(items) if !items.is_empty() => {
                out.push('\n');
                write_seq(items, indent, false, out);
            }
            scalar => {
                out.push(' ');
                write_scalar(scalar, indent, out);
                out.push('\n');
            }
        }
    }
}

fn write_seq(items: &[Value], indent: usize, inline_first: bool, out: &mut String) {
    for (i, item) in items.iter().enumerate() {
        if i > 0 || !inline_first {
            pad(out, indent);
        }
        out.push_str("- ");
        match item {
            Value::Object(m) if !m.is_empty() => write_map(m, indent + 2, true, out),
            Value::Array(a) if !a.is_empty() => write_seq(a, indent + 2, true, out),
            scalar => {
                write_scalar(scalar, indent, out);
                out.push('\n');
            }
        }
    }
}

fn write_scalar(v: &Value, indent: usize, out: &mut String) {
    match v {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => out.push_str(&yaml_number(n)),
        Value::String(s) => out.push_str(&string_scalar(s, indent)),
        Value::Array(_) => out.push_str("[]"),
        Value::Object(_) => out.push_str("{}"),
    }
}

/// go-yaml reads a JSON integer as an int and anything else as a float64, which it writes
/// with `strconv.FormatFloat(f, 'g', -1, 64)`.
fn yaml_number(n: &serde_json::Number) -> String {
    if n.is_i64() || n.is_u64() {
        return n.to_string();
    }
    let f = n.as_f64().unwrap_or(0.0);
    match super::table::go_g_shortest(f).as_str() {
        "+Inf" => ".inf".to_owned(),
        "-Inf" => "-.inf".to_owned(),
        "NaN" => ".nan".to_owned(),
        s => s.to_owned(),
    }
}

/// A string as go-yaml v2 writes it: a literal block when it has line breaks, plain when
/// that reads back as the same string, else single- or double-quoted.
fn string_scalar(s: &str, indent: usize) -> String {
    let a = analyze(s);
    if s.contains('\n') {
        return if a.block_allowed {
            literal(s, indent)
        } else {
            double_quoted(s)
        };
    }
    // go-yaml asks for double quotes where the plain form would change type; otherwise for
    // plain, which the emitter downgrades to single quotes, then double, as the text needs.
    if resolves_to_other_type(s) {
        return double_quoted(s);
    }
    if a.plain_allowed {
        return s.to_owned();
    }
    if a.single_quoted_allowed {
        return format!("'{}'", s.replace('\'', "''"));
    }
    double_quoted(s)
}

/// `|`, `|-` or `|+` as the text's final line breaks require, each line indented.
fn literal(s: &str, indent: usize) -> String {
    let trailing = s.len() - s.trim_end_matches('\n').len();
    let chomp = match trailing {
        0 => "-",
        1 => "",
        _ => "+",
    };
    let mut out = format!("|{chomp}");
    let body = s.strip_suffix('\n').unwrap_or(s);
    for line in body.split('\n') {
        out.push('\n');
        if !line.is_empty() {
            pad(&mut out, indent + 2);
            out.push_str(line);
        }
    }
    out
}

fn double_quoted(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\0' => out.push_str("\\0"),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\u{b}' => out.push_str("\\v"),
            '\u{c}' => out.push_str("\\f"),
            '\r' => out.push_str("\\r"),
            '\u{1b}' => out.push_str("\\e"),
            '\u{85}' => out.push_str("\\N"),
            '\u{a0}' => out.push_str("\\_"),
            '\u{2028}' => out.push_str("\\L"),
            '\u{2029}' => out.push_str("\\P"),
            c if !printable(c) => {
                let n = c as u32;
                if n <= 0xff {
                    out.push_str(&format!("\\x{n:02X}"));
                } else if n <= 0xffff {
                    out.push_str(&format!("\\u{n:04X}"));
                } else {
                    out.push_str(&format!("\\U{n:08X}"));
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// libyaml's `is_printable`.
fn printable(c: char) -> bool {
    let n = c as u32;
    n == 0x0a
        || (0x20..=0x7e).contains(&n)
        || n == 0x85
        || (0xa0..=0xd7ff).contains(&n)
        || ((0xe000..=0xfffd).contains(&n) && n != 0xfeff)
        || (0x10000..=0x10ffff).contains(&n)
}

struct Analysis {
    plain_allowed: bool,
    single_quoted_allowed: bool,
    block_allowed: bool,
}

/// libyaml's `yaml_emitter_analyze_scalar`, for a scalar in block context.
fn analyze(s: &str) -> Analysis {
    if s.is_empty() {
        return Analysis {
            plain_allowed: false,
            single_quoted_allowed: true,
            block_allowed: false,
        };
    }
    let chars: Vec<char> = s.chars().collect();
    let mut block_indicators = s.starts_with("---") || s.starts_with("...");
    let mut special = false;
    let mut line_breaks = false;
    let mut space_break = false;
    let mut break_space = false;
    let space = |c: char| c == ' ';
    let brk = |c: char| matches!(c, '\n' | '\r' | '\u{85}' | '\u{2028}' | '\u{2029}');
    let blank_or_end = |i: usize| {
        chars
            .get(i)
            .is_none_or(|&c| c == ' ' || c == '\t' || brk(c))
    };
    let mut preceded_by_ws = true;
    for (i, &c) in chars.iter().enumerate() {
        let followed_by_ws = blank_or_end(i + 1);
        if i == 0 {
            match c {
                '#' | ',' | '[' | ']' | '{' | '}' | '&' | '*' | '!' | '|' | '>' | '\'' | '"'
                | '%' | '@' | '`' => block_indicators = true,
                '?' | ':' | '-' if followed_by_ws => block_indicators = true,
                _ => {}
            }
        } else {
            match c {
                ':' if followed_by_ws => block_indicators = true,
                '#' if preceded_by_ws => block_indicators = true,
                _ => {}
            }
        }
        if !printable(c) || c == '\u{feff}' {
            special = true;
        }
        if brk(c) {
            line_breaks = true;
        }
        if space(c) && chars.get(i + 1).is_some_and(|&n| brk(n)) {
            space_break = true;
        }
        if brk(c) && chars.get(i + 1).is_some_and(|&n| space(n)) {
            break_space = true;
        }
        preceded_by_ws = c == ' ' || c == '\t' || brk(c);
    }
    let first = chars[0];
    let last = chars[chars.len() - 1];
    let edge_space = space(first) || space(last) || brk(first) || brk(last);
    let mut plain =
        !(edge_space || block_indicators || line_breaks || special || space_break || break_space);
    let mut single = !(break_space || space_break || special);
    let block = !(space(last) || space_break || special);
    if special {
        plain = false;
        single = false;
    }
    Analysis {
        plain_allowed: plain,
        single_quoted_allowed: single,
        block_allowed: block,
    }
}

static FLOAT: LazyLock<Option<regex::Regex>> = LazyLock::new(|| {
    regex::Regex::new(r"^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$").ok()
});
static BASE60: LazyLock<Option<regex::Regex>> =
    LazyLock::new(|| regex::Regex::new(r"^[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+(?:\.[0-9_]*)?$").ok());
static TIMESTAMP: LazyLock<Option<regex::Regex>> = LazyLock::new(|| {
    regex::Regex::new(
        r"^[0-9]{4}-[0-9]{1,2}-[0-9]{1,2}(([Tt]|[ \t]+)[0-9]{1,2}:[0-9]{1,2}:[0-9]{1,2}(\.[0-9]*)?([ \t]*(Z|[-+][0-9]{1,2}(:[0-9]{2})?))?)?$",
    )
    .ok()
});

fn is_match(re: &LazyLock<Option<regex::Regex>>, s: &str) -> bool {
    match &**re {
        Some(re) => re.is_match(s),
        None => false,
    }
}

/// go-yaml v2's `resolve`: would this plain scalar read back as null, a bool, a number or a
/// timestamp (or a base-60 float, which its encoder also quotes)?
fn resolves_to_other_type(s: &str) -> bool {
    const WORDS: [&str; 35] = [
        "", "~", "null", "Null", "NULL", "y", "Y", "yes", "Yes", "YES", "on", "On", "ON", "n", "N",
        "no", "No", "NO", "off", "Off", "OFF", "true", "True", "TRUE", "false", "False", "FALSE",
        ".inf", ".Inf", ".INF", "+.inf", "-.inf", ".nan", ".NaN", ".NAN",
    ];
    if WORDS.contains(&s) || matches!(s, "+.Inf" | "+.INF" | "-.Inf" | "-.INF") {
        return true;
    }
    let Some(first) = s.chars().next() else {
        return true;
    };
    if !matches!(first, '-' | '+' | '.' | '0'..='9') {
        return false;
    }
    if first.is_ascii_digit() && is_match(&TIMESTAMP, s) {
        return true;
    }
    let plain = s.replace('_', "");
    is_go_int(&plain) || is_match(&FLOAT, &plain) || is_match(&BASE60, s)
}

/// `strconv.ParseInt(s, 0, 64)` or `ParseUint` would accept it (any size: a bigger one reads
/// as a float instead, still not a string).
fn is_go_int(s: &str) -> bool {
    let body = s.strip_prefix(['-', '+']).unwrap_or(s);
    let (digits, radix) =
        if let Some(d) = body.strip_prefix("0x").or_else(|| body.strip_prefix("0X")) {
            (d, 16)
        } else if let Some(d) = body.strip_prefix("0b").or_else(|| body.strip_prefix("0B")) {
            (d, 2)
        } else if let Some(d) = body.strip_prefix("0o").or_else(|| body.strip_prefix("0O")) {
            (d, 8)
        } else if body.len() > 1 && body.starts_with('0') {
            (&body[1..], 8)
        } else {
            (body, 10)
        };
    !digits.is_empty() && digits.chars().all(|c| c.is_digit(radix))
}

/// go-yaml v2's `keyList.Less` for string keys: runs of digits compare as numbers, and
/// letters sort after other characters.
fn key_order(a: &str, b: &str) -> Ordering {
    let ar: Vec<char> = a.chars().collect();
    let br: Vec<char> = b.chars().collect();
    let mut i = 0;
    while i < ar.len() && i < br.len() {
        if ar[i] == br[i] {
            i += 1;
            continue;
        }
        let al = ar[i].is_alphabetic();
        let bl = br[i].is_alphabetic();
        if al && bl {
            return ar[i].cmp(&br[i]);
        }
        if al || bl {
            return if bl {
                Ordering::Less
            } else {
                Ordering::Greater
            };
        }
        let (mut an, mut bn): (u128, u128) = (0, 0);
        if ar[i] == '0' || br[i] == '0' {
            // A zero continuing a non-zero number compares as part of it.
            let mut j = i;
            while j > 0 && ar[j - 1].is_ascii_digit() {
                j -= 1;
                if ar[j] != '0' {
                    an = 1;
                    bn = 1;
                    break;
                }
            }
        }
        let mut ai = i;
        while ai < ar.len() && ar[ai].is_ascii_digit() {
            an = an
                .wrapping_mul(10)
                .wrapping_add(u128::from(ar[ai] as u32 - '0' as u32));
            ai += 1;
        }
        let mut bi = i;
        while bi < br.len() && br[bi].is_ascii_digit() {
            bn = bn
                .wrapping_mul(10)
                .wrapping_add(u128::from(br[bi] as u32 - '0' as u32));
            bi += 1;
        }
        if an != bn {
            return an.cmp(&bn);
        }
        if ai != bi {
            return ai.cmp(&bi);
        }
        return ar[i].cmp(&br[i]);
    }
    ar.len().cmp(&br.len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn writes_as_go_yaml_v2() {
        let v = json!({
            "containers": [{
                "id": "abc",
                "metadata": {"name": "main", "attempt": 0},
                "labels": {"io.kubernetes.pod.namespace": "default", "io.kubernetes.pod.name": "web"},
                "createdAt": "1700000000000000000",
                "annotations": {},
                "repoTags": [],
                "state": "CONTAINER_RUNNING",
                "empty": "",
                "flag": "true",
                "star": "*x",
                "colon": "a: b",
                "text": "one\ntwo\n",
            }]
        });
        let expected = "\
containers:
- annotations: {}
  colon: 'a: b'
  createdAt: \"1700000000000000000\"
  empty: \"\"
  flag: \"true\"
  id: abc
  labels:
    io.kubernetes.pod.name: web
    io.kubernetes.pod.namespace: default
  metadata:
    attempt: 0
    name: main
  repoTags: []
  star: '*x'
  state: CONTAINER_RUNNING
  text: |
    one
    two
";
        assert_eq!(to_yaml(&v), expected);
    }

    #[test]
    fn scalars_that_would_change_type_are_quoted() {
        for s in [
            "0",
            "-1",
            "0x1f",
            "1.5",
            "1e3",
            "yes",
            "Off",
            "null",
            "~",
            "2024-01-02",
            "1:30",
        ] {
            assert!(resolves_to_other_type(s), "{s}");
        }
        for s in [
            "sha256:abc",
            "docker.io/library/busybox:latest",
            "main",
            "1.2.3",
            "08x",
        ] {
            assert!(!resolves_to_other_type(s), "{s}");
        }
        assert_eq!(string_scalar("x\ty", 0), "\"x\\ty\"");
        assert_eq!(string_scalar(" lead", 0), "' lead'");
        assert_eq!(string_scalar("it's: x", 0), "'it''s: x'");
    }

    #[test]
    fn keys_sort_naturally() {
        let mut keys = vec!["a10", "a2", "b", "A", "a", "_x", "a.b"];
        keys.sort_by(|a, b| key_order(a, b));
        assert_eq!(keys, vec!["_x", "A", "a", "a.b", "a2", "a10", "b"]);
    }
}
