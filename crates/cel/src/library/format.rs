//! The named-formats library (upstream `library/format.go`): `format.named(name)` (an
//! optional format), `format.dns1123Label()` and the other named formats, and
//! `<format>.validate(s)`: `optional.none()` when `s` is valid, else an optional list of
//! upstream's validation messages (apimachinery's `IsDNS1123Label` and the like).

use std::sync::LazyLock;

use base64::Engine;
use cel_rust::common::types::{CelList, CelOptional, CelString, STRING_TYPE, Type};
use cel_rust::common::value::{CowVal, Val};
use cel_rust::{DeclarationError, Env, ExecutionError};
use regex::Regex;

use super::{charge_str, library_val, nth, str_arg};

static FORMAT_TYPE: Type = Type::new_unspecified_type("kubernetes.NamedFormat");

/// One named format: its name in `format.named` and its validation.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Format {
    name: &'static str,
    validate: fn(&str) -> Vec<String>,
}

impl PartialEq for Format {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name
    }
}

library_val!(Format, FORMAT_TYPE);

const FORMATS: [Format; 13] = [
    f("dns1123Label", |s| dns1123_label(s, false)),
    f("dns1123Subdomain", |s| dns1123_subdomain(s, false)),
    f("dns1035Label", |s| dns1035_label(s, false)),
    f("qualifiedName", qualified_name),
    f("dns1123LabelPrefix", |s| dns1123_label(s, true)),
    f("dns1123SubdomainPrefix", |s| dns1123_subdomain(s, true)),
    f("dns1035LabelPrefix", |s| dns1035_label(s, true)),
    f("labelValue", label_value),
    f("uri", uri),
    f("uuid", uuid),
    f("byte", byte),
    f("date", date),
    f("datetime", datetime),
];

const fn f(name: &'static str, validate: fn(&str) -> Vec<String>) -> Format {
    Format { name, validate }
}

const LABEL_FMT: &str = "[a-z0-9]([-a-z0-9]*[a-z0-9])?";
const SUBDOMAIN_FMT: &str = "[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*";
const QUALIFIED_MSG: &str = "must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character";
const QUALIFIED_FMT: &str = "([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]";

/// apimachinery's `RegexError`.
fn regex_error(msg: &str, fmt: &str, examples: &[&str]) -> String {
    let examples: String = examples
        .iter()
        .map(|e| format!("'{e}', "))
        .collect::<Vec<_>>()
        .join(" or ");
    format!("{msg} (e.g. {examples}regex used for validation is '{fmt}')")
}

fn max_len(s: &str, max: usize) -> Option<String> {
    (s.len() > max).then(|| format!("must be no more than {max} characters"))
}

/// `NameIsDNS*(s, prefix)`: a prefix (of a generated name) may end with `-`; upstream
/// replaces its last two bytes with `a`.
fn mask_trailing_dash(s: &str, prefix: bool) -> String {
    if !(prefix && s.len() > 1 && s.ends_with('-')) {
        return s.to_owned();
    }
    // Cutting inside a multi-byte character leaves it invalid, as upstream's bytes are.
    let kept = String::from_utf8_lossy(&s.as_bytes()[..s.len() - 2]);
    format!("{kept}a")
}

fn is_label(s: &str, first: fn(&u8) -> bool) -> bool {
    let b = s.as_bytes();
    let alnum = |c: &u8| c.is_ascii_lowercase() || c.is_ascii_digit();
    b.first().is_some_and(first)
        && b.last().is_some_and(alnum)
        && b.iter().all(|c| alnum(c) || *c == b'-')
}

fn is_dns1123_label(s: &str) -> bool {
    is_label(s, |c| c.is_ascii_lowercase() || c.is_ascii_digit())
}

fn is_dns1123_subdomain(s: &str) -> bool {
    s.split('.').all(is_dns1123_label)
}

fn dns1123_label(s: &str, prefix: bool) -> Vec<String> {
    let s = &mask_trailing_dash(s, prefix);
    let mut errs: Vec<String> = max_len(s, 63).into_iter().collect();
    if !is_dns1123_label(s) {
        errs.push(if is_dns1123_subdomain(s) {
            "must not contain dots".to_owned()
        } else {
            let msg = "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character";
            regex_error(msg, LABEL_FMT, &["my-name", "123-abc"])
        });
    }
    errs
}

fn dns1123_subdomain(s: &str, prefix: bool) -> Vec<String> {
    let s = &mask_trailing_dash(s, prefix);
    let mut errs: Vec<String> = max_len(s, 253).into_iter().collect();
    if !is_dns1123_subdomain(s) {
        let msg = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character";
        errs.push(regex_error(msg, SUBDOMAIN_FMT, &["example.com"]));
    }
    errs
}

fn dns1035_label(s: &str, prefix: bool) -> Vec<String> {
    let s = &mask_trailing_dash(s, prefix);
    let mut errs: Vec<String> = max_len(s, 63).into_iter().collect();
    if !is_label(s, u8::is_ascii_lowercase) {
        let msg = "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character";
        errs.push(regex_error(
            msg,
            "[a-z]([-a-z0-9]*[a-z0-9])?",
            &["my-name", "abc-123"],
        ));
    }
    errs
}

/// `([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]`
fn is_qualified_name_part(s: &str) -> bool {
    let b = s.as_bytes();
    let alnum = |c: &u8| c.is_ascii_alphanumeric();
    b.first().is_some_and(alnum)
        && b.last().is_some_and(alnum)
        && b.iter()
            .all(|c| alnum(c) || matches!(c, b'-' | b'_' | b'.'))
}

fn qualified_name(s: &str) -> Vec<String> {
    let examples = ["MyName", "my.name", "123-abc"];
    let mut errs = Vec::new();
    let name = match s.split('/').collect::<Vec<_>>()[..] {
        [name] => name,
        [prefix, name] => {
            if prefix.is_empty() {
                errs.push("prefix part must be non-empty".to_owned());
            } else {
                let prefixed = dns1123_subdomain(prefix, false).into_iter();
                errs.extend(prefixed.map(|e| format!("prefix part {e}")));
            }
            name
        }
        _ => {
            let e = regex_error(QUALIFIED_MSG, QUALIFIED_FMT, &examples);
            return vec![format!(
                "a qualified name {e} with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')"
            )];
        }
    };
    if name.is_empty() {
        errs.push("name part must be non-empty".to_owned());
    } else if let Some(e) = max_len(name, 63) {
        errs.push(format!("name part {e}"));
    }
    if !is_qualified_name_part(name) {
        let e = regex_error(QUALIFIED_MSG, QUALIFIED_FMT, &examples);
        errs.push(format!("name part {e}"));
    }
    errs
}

fn label_value(s: &str) -> Vec<String> {
    let mut errs: Vec<String> = max_len(s, 63).into_iter().collect();
    if !s.is_empty() && !is_qualified_name_part(s) {
        let msg = "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character";
        let fmt = "(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?";
        errs.push(regex_error(msg, fmt, &["MyValue", "my_value", "12345"]));
    }
    errs
}

fn uri(s: &str) -> Vec<String> {
    // Go's `url.Error`: `parse "<url>": <reason>`.
    match super::urls::parse(s) {
        Ok(_) => Vec::new(),
        Err(e) => vec![format!("parse {s:?}: {e}")],
    }
}

/// A fixed pattern; `None` only if it didn't compile (a bug, reported as invalid input).
fn pattern(cell: &'static LazyLock<Option<Regex>>, s: &str) -> bool {
    cell.as_ref().is_some_and(|r| r.is_match(s))
}

static UUID: LazyLock<Option<Regex>> = LazyLock::new(|| {
    Regex::new(r"(?i)^[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}$").ok()
});

/// strfmt's time of day: `hh:mm:ss`, an optional fraction, `z` or an offset.
static TIME: LazyLock<Option<Regex>> = LazyLock::new(|| {
    Regex::new(r"^([0-1][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](.[0-9]+)?(z|[+-][0-9]{2}:[0-9]{2})$")
        .ok()
});

/// No errors when `valid`, else `message`.
fn errors_unless(valid: bool, message: &str) -> Vec<String> {
    if valid {
        return Vec::new();
    }
    vec![message.to_owned()]
}

fn uuid(s: &str) -> Vec<String> {
    errors_unless(pattern(&UUID, s), "does not match the UUID format")
}

fn byte(s: &str) -> Vec<String> {
    let valid = base64::engine::general_purpose::STANDARD.decode(s).is_ok();
    errors_unless(valid, "invalid base64")
}

/// Go's `time.Parse("2006-01-02", s)`: four, two and two digits, a real day.
fn is_date(s: &str) -> bool {
    let digits = s.bytes().enumerate().all(|(i, b)| {
        if i == 4 || i == 7 {
            b == b'-'
        } else {
            b.is_ascii_digit()
        }
    });
    s.len() == 10 && digits && chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d").is_ok()
}

fn date(s: &str) -> Vec<String> {
    errors_unless(is_date(s), "invalid date")
}

/// strfmt's `IsDateTime`: a date, `T` (any case), a time of day.
fn datetime(s: &str) -> Vec<String> {
    let lower = s.to_ascii_lowercase();
    let mut parts = lower.split('t');
    let valid = matches!((parts.next(), parts.next()),
        (Some(d), Some(t)) if is_date(d) && pattern(&TIME, t));
    errors_unless(valid, "invalid datetime")
}

pub(super) fn register(env: &mut Env) -> Result<(), DeclarationError> {
    env.add_overload("format.named", "format-named", vec![STRING_TYPE], named)?;
    for (i, format) in FORMATS.iter().enumerate() {
        let name = format!("format.{}", format.name);
        env.add_overload(&name, &name, vec![], CONSTANTS[i])?;
    }
    env.add_member_overload(
        "validate",
        "format-validate",
        FORMAT_TYPE.to_owned(),
        vec![STRING_TYPE],
        validate,
    )?;
    Ok(())
}

/// The zero-argument `format.<name>()` functions, in `FORMATS`' order.
const CONSTANTS: [cel_rust::common::functions::Function; 13] = [
    |_| constant(0),
    |_| constant(1),
    |_| constant(2),
    |_| constant(3),
    |_| constant(4),
    |_| constant(5),
    |_| constant(6),
    |_| constant(7),
    |_| constant(8),
    |_| constant(9),
    |_| constant(10),
    |_| constant(11),
    |_| constant(12),
];

fn constant<'b, 'v>(i: usize) -> Result<CowVal<'b, 'v>, ExecutionError> {
    Ok(CowVal::owned(FORMATS[i]))
}

fn named<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    let name = str_arg("format.named", nth(&args, 0)?.as_ref())?;
    Ok(CowVal::owned(
        match FORMATS.iter().find(|f| f.name == name) {
            Some(f) => CelOptional::of(Box::new(*f)),
            None => CelOptional::none(),
        },
    ))
}

fn validate<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    let format = *nth(&args, 0)?
        .downcast_ref::<Format>()
        .ok_or_else(|| ExecutionError::function_error("validate", "expected a format"))?;
    let s = str_arg("validate", nth(&args, 1)?.as_ref())?;
    charge_str(s);
    let errs = (format.validate)(s);
    if errs.is_empty() {
        return Ok(CowVal::owned(CelOptional::none()));
    }
    let list: Vec<Box<dyn Val + 'v>> = errs
        .into_iter()
        .map(|e| Box::new(CelString::from(e)) as Box<dyn Val + 'v>)
        .collect();
    Ok(CowVal::owned(CelOptional::of(Box::new(CelList::from(
        list,
    )))))
}
