//! Values printed the way Go prints them in upstream's messages and files: `%q` for
//! strings, `%v` for numbers, `encoding/json` (sorted keys, HTML-escaped) for objects and
//! arrays.

use std::fmt::Write;

use serde_json::{Number, Value};

/// `s` in double quotes, with the escapes Go's `strconv.Quote` and `encoding/json` share
/// (`\"`, `\\`, `\n`, `\r`, `\t`) and `other` for the rest of the characters.
fn quoted_into(out: &mut String, s: &str, other: impl Fn(&mut String, char)) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c => other(out, c),
        }
    }
    out.push('"');
}

/// Go's `strconv.Quote`.
pub fn quote_into(out: &mut String, s: &str) {
    quoted_into(out, s, |out, c| match c {
        '\u{7}' => out.push_str("\\a"),
        '\u{8}' => out.push_str("\\b"),
        '\u{c}' => out.push_str("\\f"),
        '\u{b}' => out.push_str("\\v"),
        c if (c as u32) < 0x20 || c as u32 == 0x7f => {
            let _ = write!(out, "\\x{:02x}", c as u32);
        }
        c => out.push(c),
    });
}

pub fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    quote_into(&mut out, s);
    out
}

/// Go's `%v` of a float64 (`%g` with the shortest digits: `1e+06`, `0.5`, `123456`).
pub fn float_v(f: f64) -> String {
    if f == 0.0 || !f.is_finite() {
        return format!("{f}");
    }
    let (digits, exp) = split_exp(f);
    if !(-4..6).contains(&exp) {
        exp_form(f < 0.0, &digits, exp, true)
    } else {
        format!("{f}")
    }
}

/// Go's `encoding/json` rendering of a float64.
fn float_json(f: f64) -> String {
    let abs = f.abs();
    if abs != 0.0 && !(1e-6..1e21).contains(&abs) {
        let (digits, exp) = split_exp(f);
        exp_form(f < 0.0, &digits, exp, false)
    } else {
        format!("{f}")
    }
}

/// The shortest decimal digits of `f` (no sign, no point) and its decimal exponent.
fn split_exp(f: f64) -> (String, i32) {
    let e = format!("{:e}", f.abs());
    let (mant, exp) = e.split_once('e').unwrap_or((&e, "0"));
    (mant.replace('.', ""), exp.parse().unwrap_or(0))
}

fn exp_form(neg: bool, digits: &str, exp: i32, pad: bool) -> String {
    let mut s = String::new();
    if neg {
        s.push('-');
    }
    s.push_str(&digits[..1]);
    if digits.len() > 1 {
        s.push('.');
        s.push_str(&digits[1..]);
    }
    s.push('e');
    s.push(if exp < 0 { '-' } else { '+' });
    if pad {
        let _ = write!(s, "{:02}", exp.abs());
    } else {
        let _ = write!(s, "{}", exp.abs());
    }
    s
}

/// Go's `%v` of a decoded JSON number (int64 when it is one, else float64).
pub fn number_v(n: &Number) -> String {
    match n.as_i64() {
        Some(i) => i.to_string(),
        None => float_v(n.as_f64().unwrap_or(0.0)),
    }
}

/// `%v` of a scalar (numbers, booleans); other values as JSON.
pub fn value_into(out: &mut String, v: &Value) {
    match v {
        Value::Number(n) => out.push_str(&number_v(n)),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        _ => json_into(out, v),
    }
}

/// Go's `json.Marshal` of a decoded JSON value.
pub fn json_into(out: &mut String, v: &Value) {
    match v {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => match n.as_i64() {
            Some(i) => {
                let _ = write!(out, "{i}");
            }
            None => out.push_str(&float_json(n.as_f64().unwrap_or(0.0))),
        },
        Value::String(s) => json_string(out, s),
        Value::Array(a) => {
            out.push('[');
            for (i, x) in a.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                json_into(out, x);
            }
            out.push(']');
        }
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            out.push('{');
            for (i, k) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                json_string(out, k);
                out.push(':');
                if let Some(x) = m.get(k) {
                    json_into(out, x);
                }
            }
            out.push('}');
        }
    }
}

pub fn json(v: &Value) -> String {
    let mut s = String::new();
    json_into(&mut s, v);
    s
}

/// Go's `encoding/json` string: HTML-escaped, other control characters as `\u00XX`.
fn json_string(out: &mut String, s: &str) {
    quoted_into(out, s, |out, c| match c {
        c if (c as u32) < 0x20 || matches!(c, '<' | '>' | '&' | '\u{2028}' | '\u{2029}') => {
            let _ = write!(out, "\\u{:04x}", c as u32);
        }
        c => out.push(c),
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn floats_as_go_prints_them() {
        assert_eq!(float_v(1e6), "1e+06");
        assert_eq!(float_v(123456.0), "123456");
        assert_eq!(float_v(1.5), "1.5");
        assert_eq!(float_v(0.00001), "1e-05");
        assert_eq!(float_v(10.0), "10");
        assert_eq!(float_json(1e-7), "1e-7");
        assert_eq!(float_json(1e6), "1000000");
    }

    #[test]
    fn json_sorts_keys_and_escapes_html() {
        assert_eq!(
            json(&json!({"b": 1, "a": "<x>"})),
            r#"{"a":"\u003cx\u003e","b":1}"#
        );
        assert_eq!(quote("a\"b\n"), r#""a\"b\n""#);
        assert_eq!(quote("\\\t\u{1}\u{7}\u{7f}é<"), r#""\\\t\x01\a\x7fé<""#);
        assert_eq!(
            json(&json!("\"\\\r\u{1}\u{7}&\u{2028}\u{7f}é")),
            "\"\\\"\\\\\\r\\u0001\\u0007\\u0026\\u2028\u{7f}é\""
        );
    }
}
