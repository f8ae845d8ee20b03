//! Go duration strings (`1h30m`, `1.5s`, `300ms`), which `format: duration` fields hold.

/// Go's `time.ParseDuration`. The numbers and units are `common::duration::parse_go`'s;
/// what is CEL's own is around it: a sign (`-300ms` is a CEL duration, where common's
/// parser refuses negatives), no white space around the text (common's parser trims it, Go
/// refuses it) and Go's range (int64 nanoseconds rather than common's u64).
pub(crate) fn parse(s: &str) -> Option<chrono::Duration> {
    let (negative, rest) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    // One sign only (common's parser would skip a second `+`), and no white space.
    if rest.starts_with(['+', '-']) || rest.trim() != rest {
        return None;
    }
    let nanos = common::duration::parse_go(rest)?.as_nanos();
    // Go's limit is 2^63 ns; exactly 2^63 (a float total's rounding) is int64's largest.
    if nanos > 1 << 63 {
        return None;
    }
    let d = chrono::Duration::nanoseconds(i64::try_from(nanos).unwrap_or(i64::MAX));
    Some(if negative { -d } else { d })
}

/// A duration as CEL prints it: seconds with a fraction when needed (`90s`, `1.5s`), not
/// Go's `Duration.String()` (`1m30s`, `common::duration::format_go`).
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
        for bad in [
            "", "-", "+", "-+1s", "+-1s", "--1s", " 1s", "1s ", "- 1s", "1s\n", ".s",
        ] {
            assert_eq!(parse(bad), None, "{bad:?}");
        }
        assert_eq!(parse("+1s"), Some(chrono::Duration::seconds(1)));
        assert_eq!(parse("-0"), Some(chrono::Duration::zero()));
        assert_eq!(
            parse("1h1m1.5s1ms1us1µs1ns").map(|d| d.num_nanoseconds()),
            Some(Some(3_661_501_002_001))
        );
        assert_eq!(
            parse("2562047h47m16.854775807s"),
            Some(chrono::Duration::nanoseconds(i64::MAX))
        );
        assert_eq!(
            parse("-2562047h47m16.854775807s"),
            Some(-chrono::Duration::nanoseconds(i64::MAX))
        );
        assert_eq!(parse("2562048h"), None);
        assert_eq!(format(&chrono::Duration::minutes(90)), "5400s");
        assert_eq!(format(&chrono::Duration::milliseconds(1500)), "1.5s");
    }
}
