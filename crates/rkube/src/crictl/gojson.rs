//! JSON text as crictl's two Go encoders write it, two-space indented:
//!
//! * [`Flavor::Proto`]: `protojson` (the `-o json` of ps, pods, images): fields in the
//!   message's order, only control characters, `"`, `\` and DEL escaped.
//! * [`Flavor::Go`]: `encoding/json` (inspect): object keys sorted, `<`, `>`, `&`, U+2028 and
//!   U+2029 escaped, every number printed as the float64 Go decoded it into.

use serde_json::Value;

#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Flavor {
    Proto,
    Go,
}

/// `v` as indented JSON text, without a trailing newline.
pub fn pretty(v: &Value, flavor: Flavor) -> String {
    let mut out = String::new();
    write_value(v, flavor, 0, &mut out);
    out
}

fn indent(out: &mut String, level: usize) {
    out.extend(std::iter::repeat_n(' ', level * 2));
}

fn write_value(v: &Value, flavor: Flavor, level: usize, out: &mut String) {
    match v {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => out.push_str(&number(n, flavor)),
        Value::String(s) => write_string(s, flavor, out),
        Value::Array(items) => {
            if items.is_empty() {
                out.push_str("[]");
                return;
            }
            out.push_str("[\n");
            for (i, item) in items.iter().enumerate() {
                indent(out, level + 1);
                write_value(item, flavor, level + 1, out);
                out.push_str(if i + 1 < items.len() { ",\n" } else { "\n" });
            }
            indent(out, level);
            out.push(']');
        }
        Value::Object(map) => {
            if map.is_empty() {
                out.push_str("{}");
                return;
            }
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            if flavor == Flavor::Go {
                // encoding/json sorts map keys bytewise.
                entries.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
            }
            out.push_str("{\n");
            let n = entries.len();
            for (i, (k, v)) in entries.into_iter().enumerate() {
                indent(out, level + 1);
                write_string(k, flavor, out);
                out.push_str(": ");
                write_value(v, flavor, level + 1, out);
                out.push_str(if i + 1 < n { ",\n" } else { "\n" });
            }
            indent(out, level);
            out.push('}');
        }
    }
}

/// protojson prints integers as they are; encoding/json re-encodes the float64 it decoded.
fn number(n: &serde_json::Number, flavor: Flavor) -> String {
    match flavor {
        Flavor::Proto => n.to_string(),
        Flavor::Go => go_float(n.as_f64().unwrap_or(0.0)),
    }
}

/// encoding/json's float64 form: `%f`-like shortest digits, exponent form below 1e-6 or from
/// 1e21 on, with `e-09` shortened to `e-9`.
pub fn go_float(f: f64) -> String {
    let abs = f.abs();
    if abs != 0.0 && !(1e-6..1e21).contains(&abs) {
        // Rust's `{:e}` is the shortest form already ("1e21", "1.5e-7"); Go signs the
        // exponent.
        let s = format!("{f:e}");
        return match s.split_once('e') {
            Some((m, e)) if !e.starts_with('-') => format!("{m}e+{e}"),
            _ => s,
        };
    }
    // Rust's Display is the shortest round-tripping decimal without an exponent ("5", "0.5").
    format!("{f}")
}

fn write_string(s: &str, flavor: Flavor, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            '\u{7f}' if flavor == Flavor::Proto => out.push_str("\\u007f"),
            '<' | '>' | '&' | '\u{2028}' | '\u{2029}' if flavor == Flavor::Go => {
                out.push_str(&format!("\\u{:04x}", c as u32));
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn proto_keeps_order_and_go_sorts() {
        let v = json!({"b": 1, "a": [], "c": {}, "d": ["x<y", 2.5]});
        assert_eq!(
            pretty(&v, Flavor::Proto),
            "{\n  \"b\": 1,\n  \"a\": [],\n  \"c\": {},\n  \"d\": [\n    \"x<y\",\n    2.5\n  ]\n}"
        );
        assert_eq!(
            pretty(&v, Flavor::Go),
            "{\n  \"a\": [],\n  \"b\": 1,\n  \"c\": {},\n  \"d\": [\n    \"x\\u003cy\",\n    2.5\n  ]\n}"
        );
    }

    #[test]
    fn escapes_and_numbers() {
        let v = json!("a\"b\\c\n\u{1}\u{7f}&");
        assert_eq!(pretty(&v, Flavor::Proto), r#""a\"b\\c\n\u0001\u007f&""#);
        assert_eq!(
            pretty(&v, Flavor::Go),
            "\"a\\\"b\\\\c\\n\\u0001\u{7f}\\u0026\""
        );
        assert_eq!(go_float(137.0), "137");
        assert_eq!(go_float(0.5), "0.5");
        assert_eq!(go_float(1e21), "1e+21");
        assert_eq!(go_float(1.5e-7), "1.5e-7");
        // Shortest digits, then zeros (strconv's `f` with precision -1).
        assert_eq!(go_float(9_223_372_036_854_775_807.0), "9223372036854776000");
    }
}
