//! Go duration strings (`1h30m`, `1.5s`, `300ms`), which `format: duration` fields hold.

/// Go's `time.ParseDuration`.
pub(crate) fn parse(s: &str) -> Option<chrono::Duration> {
    let (negative, mut rest) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    if rest == "0" {
        return Some(chrono::Duration::zero());
    }
    if rest.is_empty() {
        return None;
    }
    let mut nanos: f64 = 0.0;
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        if num_len == 0 {
            return None;
        }
        let value: f64 = rest[..num_len].parse().ok()?;
        rest = &rest[num_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let scale = match &rest[..unit_len] {
            "ns" => 1.0,
            "us" | "µs" | "μs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => return None,
        };
        rest = &rest[unit_len..];
        nanos += value * scale;
    }
    if !nanos.is_finite() || nanos > i64::MAX as f64 {
        return None;
    }
    let d = chrono::Duration::nanoseconds(nanos.round() as i64);
    Some(if negative { -d } else { d })
}

/// A duration as CEL prints it: seconds with a fraction when needed (`90s`, `1.5s`).
pub(crate) fn format(d: &chrono::Duration) -> String {
    let secs = d.num_seconds();
    let nanos = d.subsec_nanos();
    if nanos == 0 {
        return format!("{secs}s");
    }
    let frac = format!("{:09}", nanos.unsigned_abs());
    let sign = if secs == 0 && nanos < 0 { "-" } else { "" };
    format!("{sign}{secs}.{}s", frac.trim_end_matches('0'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_durations() {
        assert_eq!(parse("1h30m"), Some(chrono::Duration::minutes(90)));
        assert_eq!(parse("1.5s"), Some(chrono::Duration::milliseconds(1500)));
        assert_eq!(parse("-300ms"), Some(chrono::Duration::milliseconds(-300)));
        assert_eq!(parse("0"), Some(chrono::Duration::zero()));
        assert_eq!(parse("10"), None);
        assert_eq!(parse("1d"), None);
        assert_eq!(format(&chrono::Duration::minutes(90)), "5400s");
        assert_eq!(format(&chrono::Duration::milliseconds(1500)), "1.5s");
    }
}
