//! Times as crictl prints them: Go's `units.HumanDuration` ("2 minutes", then " ago"), Go's
//! `time.RFC3339Nano` in the local zone (inspect's `createdAt`), Go's default `Time.String()`
//! (`pods -v`), and the fixed-width RFC 3339 stamps of `logs --timestamps`.

use std::time::{SystemTime, UNIX_EPOCH};

use time::{OffsetDateTime, UtcOffset};

const NANOS_PER_SEC: i64 = 1_000_000_000;

/// Now, in nanoseconds since the epoch (CRI's timestamps are these).
pub fn now_nanos() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// crictl's CREATED column: `units.HumanDuration(now - created) + " ago"`.
pub fn ago(created_nanos: i64) -> String {
    format!(
        "{} ago",
        human_duration(now_nanos().saturating_sub(created_nanos))
    )
}

/// docker/go-units' `HumanDuration` for a Go `time.Duration` (nanoseconds).
pub fn human_duration(d: i64) -> String {
    #[allow(clippy::cast_precision_loss)] // as Go's Duration.Seconds() and friends
    let secs_f = d as f64 / 1e9;
    // Go's int() truncates toward zero, as `as` does.
    #[allow(clippy::cast_possible_truncation)]
    let seconds = secs_f as i64;
    if seconds < 1 {
        return "Less than a second".to_owned();
    }
    if seconds == 1 {
        return "1 second".to_owned();
    }
    if seconds < 60 {
        return format!("{seconds} seconds");
    }
    #[allow(clippy::cast_possible_truncation)]
    let minutes = (secs_f / 60.0) as i64;
    if minutes == 1 {
        return "About a minute".to_owned();
    }
    if minutes < 60 {
        return format!("{minutes} minutes");
    }
    #[allow(clippy::cast_possible_truncation)]
    let hours = (secs_f / 3600.0 + 0.5) as i64;
    if hours == 1 {
        return "About an hour".to_owned();
    }
    if hours < 48 {
        return format!("{hours} hours");
    }
    if hours < 24 * 7 * 2 {
        return format!("{} days", hours / 24);
    }
    if hours < 24 * 30 * 2 {
        return format!("{} weeks", hours / 24 / 7);
    }
    if hours < 24 * 365 * 2 {
        return format!("{} months", hours / 24 / 30);
    }
    #[allow(clippy::cast_possible_truncation)]
    let whole_hours = (secs_f / 3600.0) as i64;
    format!("{} years", whole_hours / 24 / 365)
}

/// The local zone's offset (seconds east of UTC) and abbreviation at `unix_secs`, from the C
/// library, which reads `TZ` and /etc/localtime as Go's `time.Local` does.
fn local_zone(unix_secs: i64) -> (i32, String) {
    // time_t is 64 bits on the platforms rkube runs on.
    let t = unix_secs as libc::time_t;
    let mut tm = std::mem::MaybeUninit::<libc::tm>::zeroed();
    // SAFETY: `t` and `tm` are valid for the call; localtime_r fills `tm` or returns null.
    let filled = unsafe { !libc::localtime_r(&t, tm.as_mut_ptr()).is_null() };
    if !filled {
        return (0, "UTC".to_owned());
    }
    // SAFETY: localtime_r succeeded, so `tm` is initialised.
    let tm = unsafe { tm.assume_init() };
    let abbr = if tm.tm_zone.is_null() {
        String::new()
    } else {
        // SAFETY: tm_zone points to a NUL-terminated string owned by the C library.
        unsafe { std::ffi::CStr::from_ptr(tm.tm_zone) }
            .to_string_lossy()
            .into_owned()
    };
    (i32::try_from(tm.tm_gmtoff).unwrap_or(0), abbr)
}

/// `nanos` since the epoch in the local zone.
fn local(nanos: i64) -> (OffsetDateTime, String) {
    let secs = nanos.div_euclid(NANOS_PER_SEC);
    let (offset, abbr) = local_zone(secs);
    let utc = OffsetDateTime::from_unix_timestamp_nanos(i128::from(nanos))
        .unwrap_or(OffsetDateTime::UNIX_EPOCH);
    let offset = UtcOffset::from_whole_seconds(offset).unwrap_or(UtcOffset::UTC);
    (utc.to_offset(offset), abbr)
}

fn date_time(t: &OffsetDateTime, sep: char) -> String {
    format!(
        "{:04}-{:02}-{:02}{sep}{:02}:{:02}:{:02}",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

/// Go's `Z07:00`: `Z` for UTC, else `+hh:mm`.
fn zone_colon(offset: UtcOffset) -> String {
    if offset.is_utc() {
        return "Z".to_owned();
    }
    let (h, m, _) = offset.as_hms();
    let sign = if offset.is_negative() { '-' } else { '+' };
    format!("{sign}{:02}:{:02}", h.unsigned_abs(), m.unsigned_abs())
}

/// Go's `.999999999`: the fraction without trailing zeros, nothing when zero.
fn trimmed_fraction(nanos: u32) -> String {
    if nanos == 0 {
        return String::new();
    }
    let s = format!(".{nanos:09}");
    s.trim_end_matches('0').to_owned()
}

/// `time.Unix(0, nanos).Format(time.RFC3339Nano)`, in the local zone.
pub fn rfc3339_nano_local(nanos: i64) -> String {
    let (t, _) = local(nanos);
    format!(
        "{}{}{}",
        date_time(&t, 'T'),
        trimmed_fraction(t.nanosecond()),
        zone_colon(t.offset())
    )
}

/// Go's zero `time.Time{}` formatted with RFC3339Nano.
pub const GO_ZERO_TIME: &str = "0001-01-01T00:00:00Z";

/// Go's `Time.String()` of `time.Unix(0, nanos)`: `2006-01-02 15:04:05.999999999 -0700 MST`.
pub fn go_time_string(nanos: i64) -> String {
    let (t, abbr) = local(nanos);
    let (h, m, _) = t.offset().as_hms();
    let sign = if t.offset().is_negative() { '-' } else { '+' };
    let numeric = format!("{sign}{:02}{:02}", h.unsigned_abs(), m.unsigned_abs());
    // Go prints the numeric offset again where the zone has no abbreviation.
    let abbr = if abbr.is_empty() {
        numeric.clone()
    } else {
        abbr
    };
    format!(
        "{}{} {numeric} {abbr}",
        date_time(&t, ' '),
        trimmed_fraction(t.nanosecond())
    )
}

/// A log line's timestamp as cri-client writes it (`RFC3339NanoFixed`): always nine
/// fractional digits, in the offset the runtime wrote.
pub fn rfc3339_fixed(t: &OffsetDateTime) -> String {
    format!(
        "{}.{:09}{}",
        date_time(t, 'T'),
        t.nanosecond(),
        zone_colon(t.offset())
    )
}

/// Parses an RFC 3339 timestamp as Go's `time.Parse(RFC3339Nano, …)` accepts it.
pub fn parse_rfc3339(s: &str) -> Option<OffsetDateTime> {
    OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).ok()
}

/// A Go duration (`time.ParseDuration`): `300ms`, `1.5h`, `2h45m`, `-1s`; in nanoseconds.
pub fn parse_go_duration(s: &str) -> Option<i64> {
    let (neg, mut rest) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    if rest == "0" {
        return Some(0);
    }
    if rest.is_empty() {
        return None;
    }
    let mut total: f64 = 0.0;
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let (num, tail) = rest.split_at(num_len);
        if num.is_empty() || num == "." {
            return None;
        }
        let value: f64 = num.parse().ok()?;
        let unit_len = tail
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(tail.len());
        let (unit, tail) = tail.split_at(unit_len);
        let scale = match unit {
            "ns" => 1.0,
            "us" | "µs" | "μs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => return None,
        };
        total += value * scale;
        rest = tail;
    }
    #[allow(clippy::cast_possible_truncation)] // Go overflows past ~290 years too
    let nanos = total as i64;
    Some(if neg { -nanos } else { nanos })
}

/// crictl's `--since`: a Go duration before now, an RFC 3339 time, or Unix seconds
/// (`1700000000.5`); in nanoseconds since the epoch.
pub fn parse_since(value: &str) -> anyhow::Result<i64> {
    if let Some(d) = parse_go_duration(value) {
        return Ok(now_nanos().saturating_sub(d));
    }
    if let Some(t) = parse_rfc3339(value) {
        return Ok(i64::try_from(t.unix_timestamp_nanos()).unwrap_or(i64::MAX));
    }
    let (secs, frac) = value.split_once('.').unwrap_or((value, ""));
    if let Ok(secs) = secs.parse::<i64>()
        && frac.len() <= 9
        && frac.bytes().all(|b| b.is_ascii_digit())
    {
        let nanos: i64 = format!("{frac:0<9}").parse().unwrap_or(0);
        return Ok(secs.saturating_mul(NANOS_PER_SEC).saturating_add(nanos));
    }
    anyhow::bail!(
        "invalid --since {value:?}: give a duration (42m), an RFC 3339 time or Unix seconds"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_as_go_units_prints_them() {
        let s = 1_000_000_000;
        assert_eq!(human_duration(0), "Less than a second");
        assert_eq!(human_duration(-5 * s), "Less than a second");
        assert_eq!(human_duration(s), "1 second");
        assert_eq!(human_duration(59 * s), "59 seconds");
        assert_eq!(human_duration(60 * s), "About a minute");
        assert_eq!(human_duration(119 * s), "About a minute");
        assert_eq!(human_duration(120 * s), "2 minutes");
        assert_eq!(human_duration(59 * 60 * s), "59 minutes");
        assert_eq!(human_duration(60 * 60 * s), "About an hour");
        assert_eq!(human_duration(90 * 60 * s), "2 hours");
        assert_eq!(human_duration(47 * 3600 * s), "47 hours");
        assert_eq!(human_duration(48 * 3600 * s), "2 days");
        assert_eq!(human_duration(15 * 24 * 3600 * s), "2 weeks");
        assert_eq!(human_duration(61 * 24 * 3600 * s), "2 months");
        assert_eq!(human_duration(800 * 24 * 3600 * s), "2 years");
    }

    #[test]
    fn timestamps_in_go_layouts() {
        let t = parse_rfc3339("2024-01-02T03:04:05.12Z").unwrap();
        assert_eq!(rfc3339_fixed(&t), "2024-01-02T03:04:05.120000000Z");
        let t = parse_rfc3339("2024-01-02T03:04:05+01:00").unwrap();
        assert_eq!(rfc3339_fixed(&t), "2024-01-02T03:04:05.000000000+01:00");
        assert_eq!(trimmed_fraction(120_000_000), ".12");
        assert_eq!(trimmed_fraction(0), "");
        // The local zone differs between machines; the UTC form is checked where it is UTC.
        let s = rfc3339_nano_local(1_700_000_000_500_000_000);
        assert!(s.starts_with("2023-11-1"), "{s}");
        assert!(s.contains(":20.5"), "{s}");
        if local_zone(0).0 == 0 {
            assert_eq!(s, "2023-11-14T22:13:20.5Z");
            assert!(
                go_time_string(1_700_000_000_000_000_000).starts_with("2023-11-14 22:13:20 +0000 ")
            );
        }
    }

    #[test]
    fn go_durations_and_since() {
        assert_eq!(parse_go_duration("42m"), Some(42 * 60 * 1_000_000_000));
        assert_eq!(parse_go_duration("1h30m"), Some(5400 * 1_000_000_000));
        assert_eq!(parse_go_duration("1.5s"), Some(1_500_000_000));
        assert_eq!(parse_go_duration("300ms"), Some(300_000_000));
        assert_eq!(parse_go_duration("0"), Some(0));
        assert_eq!(parse_go_duration("10"), None);
        assert_eq!(parse_go_duration("2024-01-01"), None);
        assert_eq!(
            parse_since("1700000000.5").unwrap(),
            1_700_000_000_500_000_000
        );
        assert_eq!(
            parse_since("2023-11-14T22:13:20Z").unwrap(),
            1_700_000_000_000_000_000
        );
        assert!(parse_since("yesterday").is_err());
    }
}
