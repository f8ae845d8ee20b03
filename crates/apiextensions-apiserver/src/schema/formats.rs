//! String formats kube-openapi's strfmt registry checks for CRDs (after upstream's
//! `StripUnsupportedFormatsPostProcess` dropped the ones CRDs do not support).

use std::net::IpAddr;
use std::sync::OnceLock;

use base64::Engine;
use regex::Regex;

use super::node::Type;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Format {
    /// int32/int64/float/double: range checks on numbers, no string check.
    Numeric,
    Byte,
    Date,
    DateTime,
    Uuid,
    Uuid3,
    Uuid4,
    Uuid5,
    Email,
    Hostname,
    Ipv4,
    Ipv6,
    Cidr,
    Mac,
    Uri,
    Duration,
    HexColor,
    /// `k8s-short-name`: a DNS-1123 label.
    K8sShortName,
    /// `k8s-long-name`: a DNS-1123 subdomain.
    K8sLongName,
    /// Supported by CRDs but not checked here (isbn, creditcard, ssn, ...): accepted.
    Unchecked,
}

impl Format {
    /// The format kube-openapi keeps for a schema of `type_` (None: stripped).
    pub(crate) fn for_type(f: &str, type_: Option<&str>, ty: Type) -> Option<(String, Format)> {
        let type_ = if ty == Type::IntOrString { None } else { type_ };
        let kept = match type_ {
            None | Some("") | Some("string") => {
                let fmt = match f.replace('-', "").as_str() {
                    "byte" => Format::Byte,
                    "date" => Format::Date,
                    "datetime" => Format::DateTime,
                    "uuid" => Format::Uuid,
                    "uuid3" => Format::Uuid3,
                    "uuid4" => Format::Uuid4,
                    "uuid5" => Format::Uuid5,
                    "email" => Format::Email,
                    "hostname" => Format::Hostname,
                    "ipv4" => Format::Ipv4,
                    "ipv6" => Format::Ipv6,
                    "cidr" => Format::Cidr,
                    "mac" => Format::Mac,
                    "uri" => Format::Uri,
                    "duration" => Format::Duration,
                    "hexcolor" => Format::HexColor,
                    "k8sshortname" => Format::K8sShortName,
                    "k8slongname" => Format::K8sLongName,
                    "bsonobjectid" | "isbn" | "isbn10" | "isbn13" | "creditcard" | "ssn"
                    | "rgbcolor" | "password" => Format::Unchecked,
                    _ => return None,
                };
                Some(fmt)
            }
            Some("integer") if f == "int32" || f == "int64" => Some(Format::Numeric),
            Some("number") if f == "float" || f == "double" => Some(Format::Numeric),
            _ => None,
        };
        kept.map(|k| (f.to_string(), k))
    }

    /// Whether strfmt's registry knows this format (so it checks strings against it).
    pub(crate) fn checks_strings(self) -> bool {
        self != Format::Numeric
    }

    pub(crate) fn is_valid(self, s: &str) -> bool {
        match self {
            Format::Numeric | Format::Unchecked => true,
            Format::Byte => base64::engine::general_purpose::STANDARD.decode(s).is_ok(),
            Format::Date => is_date(s),
            Format::DateTime => is_date_time(s),
            Format::Uuid => rx(
                &UUID,
                r"(?i)^[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}$",
            )
            .is_match(s),
            Format::Uuid3 => rx(
                &UUID3,
                r"(?i)^[0-9a-f]{8}-?[0-9a-f]{4}-?3[0-9a-f]{3}-?[0-9a-f]{4}-?[0-9a-f]{12}$",
            )
            .is_match(s),
            Format::Uuid4 => rx(
                &UUID4,
                r"(?i)^[0-9a-f]{8}-?[0-9a-f]{4}-?4[0-9a-f]{3}-?[89ab][0-9a-f]{3}-?[0-9a-f]{12}$",
            )
            .is_match(s),
            Format::Uuid5 => rx(
                &UUID5,
                r"(?i)^[0-9a-f]{8}-?[0-9a-f]{4}-?5[0-9a-f]{3}-?[89ab][0-9a-f]{3}-?[0-9a-f]{12}$",
            )
            .is_match(s),
            Format::Email => is_email(s),
            Format::Hostname => is_hostname(s),
            Format::Ipv4 => s.parse::<IpAddr>().is_ok() && s.contains('.'),
            Format::Ipv6 => s.parse::<IpAddr>().is_ok() && s.contains(':'),
            Format::Cidr => is_cidr(s),
            Format::Mac => is_mac(s),
            Format::Uri => is_request_uri(s),
            Format::Duration => is_duration(s),
            Format::K8sShortName => is_dns1123_label(s),
            Format::K8sLongName => {
                s.len() <= 253 && s.split('.').all(|l| !l.is_empty() && is_dns1123_label(l))
            }
            Format::HexColor => rx(&HEXCOLOR, r"^#?([0-9a-fA-F]{3}|[0-9a-fA-F]{6})$").is_match(s),
        }
    }
}

static UUID: OnceLock<Regex> = OnceLock::new();
static UUID3: OnceLock<Regex> = OnceLock::new();
static UUID4: OnceLock<Regex> = OnceLock::new();
static UUID5: OnceLock<Regex> = OnceLock::new();
static HOSTNAME: OnceLock<Regex> = OnceLock::new();
static DATETIME: OnceLock<Regex> = OnceLock::new();
static HEXCOLOR: OnceLock<Regex> = OnceLock::new();
static DURATION: OnceLock<Regex> = OnceLock::new();

/// A fixed pattern compiled on first use (the patterns are constants, so they compile).
fn rx(cell: &'static OnceLock<Regex>, pattern: &str) -> &'static Regex {
    cell.get_or_init(|| Regex::new(pattern).unwrap_or_else(|_| unreachable!("constant pattern")))
}

/// strfmt's `IsDate`: Go's `time.Parse("2006-01-02", s)`.
fn is_date(s: &str) -> bool {
    let b = s.as_bytes();
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return false;
    }
    let num = |r: std::ops::Range<usize>| -> Option<u32> {
        b[r].iter().try_fold(0u32, |acc, c| {
            c.is_ascii_digit().then(|| acc * 10 + u32::from(c - b'0'))
        })
    };
    let (Some(y), Some(m), Some(d)) = (num(0..4), num(5..7), num(8..10)) else {
        return false;
    };
    let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    let days = match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return false,
    };
    (1..=days).contains(&d)
}

/// strfmt's `IsDateTime`: a date, `t`, then `hh:mm:ss[.frac](z|±hh:mm)` (case-insensitive).
fn is_date_time(s: &str) -> bool {
    if s.len() < 4 {
        return false;
    }
    let lower = s.to_ascii_lowercase();
    let mut parts = lower.split('t');
    let (Some(date), Some(time)) = (parts.next(), parts.next()) else {
        return false;
    };
    if !is_date(date) {
        return false;
    }
    let re = rx(
        &DATETIME,
        r"^([0-9]{2}):([0-9]{2}):([0-9]{2})(.[0-9]+)?(z|([+-][0-9]{2}:[0-9]{2}))$",
    );
    match re.captures(time) {
        Some(c) => {
            let g = |i: usize| c.get(i).map_or("", |m| m.as_str());
            g(1) <= "23" && g(2) <= "59" && g(3) <= "59"
        }
        None => false,
    }
}

/// Go's `net/mail.ParseAddress`, simplified: `local@domain` (optionally `Name <local@domain>`).
fn is_email(s: &str) -> bool {
    let addr = match (s.rfind('<'), s.ends_with('>')) {
        (Some(i), true) => &s[i + 1..s.len() - 1],
        _ => s.trim(),
    };
    match addr.rsplit_once('@') {
        Some((local, domain)) => {
            !local.is_empty()
                && !domain.is_empty()
                && !addr
                    .chars()
                    .any(|c| c.is_whitespace() || c == '<' || c == '>')
                && !domain.starts_with('.')
                && !domain.ends_with('.')
        }
        None => false,
    }
}

fn is_hostname(s: &str) -> bool {
    let re = rx(
        &HOSTNAME,
        r"^([a-zA-Z0-9\p{S}\p{L}]((-?[a-zA-Z0-9\p{S}\p{L}]{0,62})?)|([a-zA-Z0-9\p{S}\p{L}](([a-zA-Z0-9-\p{S}\p{L}]{0,61}[a-zA-Z0-9\p{S}\p{L}])?)(\.)){1,}([a-zA-Z\p{L}]){2,63})$",
    );
    re.is_match(s) && s.len() <= 255 && s.split('.').all(|p| p.len() <= 63)
}

fn is_cidr(s: &str) -> bool {
    let Some((ip, bits)) = s.split_once('/') else {
        return false;
    };
    let Ok(ip) = ip.parse::<IpAddr>() else {
        return false;
    };
    let max = if ip.is_ipv4() { 32 } else { 128 };
    !bits.is_empty()
        && bits.bytes().all(|c| c.is_ascii_digit())
        && bits.parse::<u32>().is_ok_and(|b| b <= max)
}

/// Go's `net.ParseMAC`: 6, 8 or 20 bytes as `xx:xx..`, `xx-xx..` or `xxxx.xxxx..`.
fn is_mac(s: &str) -> bool {
    let ok_len = |n: usize| n == 6 || n == 8 || n == 20;
    let hex = |p: &str, n: usize| p.len() == n && p.bytes().all(|c| c.is_ascii_hexdigit());
    if s.contains(':') || s.contains('-') {
        let sep = if s.contains(':') { ':' } else { '-' };
        let parts: Vec<&str> = s.split(sep).collect();
        ok_len(parts.len()) && parts.iter().all(|p| hex(p, 2))
    } else if s.contains('.') {
        let parts: Vec<&str> = s.split('.').collect();
        ok_len(parts.len() * 2) && parts.iter().all(|p| hex(p, 4))
    } else {
        false
    }
}

/// govalidator's `IsRequestURI` (Go's `url.ParseRequestURI`): an absolute URI or an absolute path.
fn is_request_uri(s: &str) -> bool {
    if s.is_empty() || s.chars().any(|c| c.is_control() || c == ' ') {
        return false;
    }
    if s.starts_with('/') {
        return true;
    }
    match s.split_once(':') {
        Some((scheme, _)) => {
            let mut cs = scheme.chars();
            cs.next().is_some_and(|c| c.is_ascii_alphabetic())
                && cs.all(|c| c.is_ascii_alphanumeric() || c == '+' || c == '-' || c == '.')
        }
        None => false,
    }
}

/// strfmt's `ParseDuration`: Go's `time.ParseDuration` or `<n> <unit>` pairs.
fn is_duration(s: &str) -> bool {
    let re = rx(
        &DURATION,
        r"^[-+]?((\d+(\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h))+$|^0$",
    );
    if re.is_match(s) {
        return true;
    }
    let units = [
        "ns",
        "us",
        "µs",
        "ms",
        "s",
        "m",
        "h",
        "d",
        "w",
        "nanosecond",
        "nanoseconds",
        "microsecond",
        "microseconds",
        "millisecond",
        "milliseconds",
        "second",
        "seconds",
        "sec",
        "secs",
        "minute",
        "minutes",
        "min",
        "mins",
        "hour",
        "hours",
        "hr",
        "hrs",
        "day",
        "days",
        "week",
        "weeks",
    ];
    let mut rest = s.trim();
    let mut any = false;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return false;
        }
        rest = rest[digits..].trim_start();
        let unit_len = rest
            .chars()
            .take_while(|c| c.is_alphabetic())
            .map(char::len_utf8)
            .sum::<usize>();
        if !units.contains(&&rest[..unit_len].to_lowercase()[..]) {
            return false;
        }
        rest = rest[unit_len..].trim_start();
        any = true;
    }
    any
}

/// `[a-z0-9]([-a-z0-9]*[a-z0-9])?`, at most 63 characters.
fn is_dns1123_label(s: &str) -> bool {
    s.len() <= 63 && super::objectmeta::is_dns1123_label(s)
}
