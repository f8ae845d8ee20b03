//! Go's `time.Duration` text, which Kubernetes prints in messages and fields (`15.02s`,
//! `1m0.5s`, `512ms`) and accepts in flags (`--metric-resolution=15s`).

use std::time::Duration;

/// `d` as Go's `Duration.String()` prints it.
pub fn format_go(d: Duration) -> String {
    let nanos = d.as_nanos();
    if nanos == 0 {
        return "0s".into();
    }
    if nanos < 1_000_000_000 {
        let (unit, per) = if nanos < 1_000 {
            ("ns", 1)
        } else if nanos < 1_000_000 {
            ("µs", 1_000)
        } else {
            ("ms", 1_000_000)
        };
        return format!("{}{unit}", fraction(nanos, per));
    }
    let secs = nanos / 1_000_000_000;
    let (h, m) = (secs / 3600, (secs % 3600) / 60);
    let s = fraction(nanos % 60_000_000_000, 1_000_000_000);
    match (h, m) {
        (0, 0) => format!("{s}s"),
        (0, m) => format!("{m}m{s}s"),
        (h, m) => format!("{h}h{m}m{s}s"),
    }
}

/// `n / per` with the fraction's trailing zeros dropped.
fn fraction(n: u128, per: u128) -> String {
    let (whole, rest) = (n / per, n % per);
    if rest == 0 {
        return whole.to_string();
    }
    let width = per.ilog10() as usize;
    let digits = format!("{rest:0width$}");
    format!("{whole}.{}", digits.trim_end_matches('0'))
}

/// Parses Go's duration syntax (`300ms`, `1.5h`, `2h45m`; units ns, us, µs, ms, s, m, h).
/// Negative durations are refused: nothing here takes one.
pub fn parse_go(s: &str) -> Option<Duration> {
    let s = s.trim().strip_prefix('+').unwrap_or(s.trim());
    if s == "0" {
        return Some(Duration::ZERO);
    }
    if s.is_empty() {
        return None;
    }
    let mut rest = s;
    let mut total = 0f64;
    while !rest.is_empty() {
        let num_end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .filter(|&i| i > 0)?;
        let value: f64 = rest[..num_end].parse().ok()?;
        rest = &rest[num_end..];
        let unit_end = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let nanos_per = match &rest[..unit_end] {
            "ns" => 1.0,
            "us" | "µs" | "μs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => return None,
        };
        total += value * nanos_per;
        rest = &rest[unit_end..];
    }
    (total.is_finite() && total < u64::MAX as f64)
        .then(|| Duration::from_nanos(total.round() as u64))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prints_as_go() {
        let ms = Duration::from_millis;
        assert_eq!(format_go(Duration::ZERO), "0s");
        assert_eq!(format_go(ms(15_000)), "15s");
        assert_eq!(format_go(ms(15_020)), "15.02s");
        assert_eq!(format_go(ms(60_500)), "1m0.5s");
        assert_eq!(format_go(ms(3_600_000)), "1h0m0s");
        assert_eq!(format_go(ms(512)), "512ms");
        assert_eq!(format_go(Duration::from_micros(1_500)), "1.5ms");
        assert_eq!(format_go(Duration::from_nanos(1_500)), "1.5µs");
        assert_eq!(format_go(Duration::from_nanos(42)), "42ns");
    }

    #[test]
    fn parses_as_go() {
        assert_eq!(parse_go("15s"), Some(Duration::from_secs(15)));
        assert_eq!(parse_go("1m30s"), Some(Duration::from_secs(90)));
        assert_eq!(parse_go("1.5h"), Some(Duration::from_secs(5400)));
        assert_eq!(parse_go("300ms"), Some(Duration::from_millis(300)));
        assert_eq!(parse_go("0"), Some(Duration::ZERO));
        for bad in ["", "15", "s", "1x", "-1s", "1..5s"] {
            assert_eq!(parse_go(bad), None, "{bad}");
        }
        assert_eq!(
            parse_go(&format_go(Duration::from_millis(60_500))),
            Some(Duration::from_millis(60_500))
        );
    }
}
