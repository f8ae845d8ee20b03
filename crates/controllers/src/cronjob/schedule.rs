//! The schedule a CronJob runs on: the standard five cron fields (minute, hour, day of
//! month, month, day of week) with lists, ranges, steps and month / weekday names, the
//! `@yearly` … `@hourly` macros, and an optional `CRON_TZ=` / `TZ=` prefix — what Kubernetes
//! accepts through `cron.ParseStandard` (without `@every`, which CronJobs do not document).
//! Times are computed on the wall clock of a time zone loaded from the system tzdb.

use std::fmt;

use k8s_openapi::jiff::Timestamp;
use k8s_openapi::jiff::civil::DateTime;
use k8s_openapi::jiff::tz::TimeZone;

/// How far `next` / `prev` search before deciding a schedule never fires (e.g. Feb 30).
const SEARCH_YEARS: i32 = 5;

/// Where IANA time zone files live unless `TZDIR` says otherwise.
const ZONEINFO: &str = "/usr/share/zoneinfo";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Schedule {
    minute: u64,
    hour: u64,
    dom: u64,
    month: u64,
    dow: u64,
    /// Day of month / day of week given as `*` (or `?`): then a day must match both fields,
    /// otherwise either (cron's rule for two restricted day fields).
    dom_star: bool,
    dow_star: bool,
    /// The zone named by a `CRON_TZ=` / `TZ=` prefix.
    time_zone: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError(String);

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ParseError {}

fn err<T>(msg: impl Into<String>) -> Result<T, ParseError> {
    Err(ParseError(msg.into()))
}

struct Bounds {
    min: u32,
    max: u32,
    names: &'static [&'static str],
}

const MINUTE: Bounds = Bounds {
    min: 0,
    max: 59,
    names: &[],
};
const HOUR: Bounds = Bounds {
    min: 0,
    max: 23,
    names: &[],
};
const DOM: Bounds = Bounds {
    min: 1,
    max: 31,
    names: &[],
};
/// Names index from `min`: JAN is 1.
const MONTH: Bounds = Bounds {
    min: 1,
    max: 12,
    names: &[
        "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
    ],
};
const DOW: Bounds = Bounds {
    min: 0,
    max: 6,
    names: &["sun", "mon", "tue", "wed", "thu", "fri", "sat"],
};

impl Schedule {
    /// Parses a standard cron spec.
    pub fn parse(spec: &str) -> Result<Schedule, ParseError> {
        let mut spec = spec.trim();
        if spec.is_empty() {
            return err("empty spec string");
        }
        let mut time_zone = None;
        if spec.starts_with("TZ=") || spec.starts_with("CRON_TZ=") {
            let (tz, rest) = spec.split_once(char::is_whitespace).unwrap_or((spec, ""));
            let name = tz.split_once('=').map(|(_, n)| n).unwrap_or_default();
            if let Err(e) = load_time_zone(name) {
                return err(format!("provided bad location {name}: {e}"));
            }
            time_zone = Some(name.to_string());
            spec = rest.trim();
        }
        let expanded = if let Some(macro_name) = spec.strip_prefix('@') {
            match macro_name {
                "yearly" | "annually" => "0 0 1 1 *",
                "monthly" => "0 0 1 * *",
                "weekly" => "0 0 * * 0",
                "daily" | "midnight" => "0 0 * * *",
                "hourly" => "0 * * * *",
                _ => return err(format!("unrecognized descriptor: {spec}")),
            }
        } else {
            spec
        };
        let fields: Vec<&str> = expanded.split_whitespace().collect();
        if fields.len() != 5 {
            return err(format!(
                "expected exactly 5 fields, found {}: [{}]",
                fields.len(),
                fields.join(" ")
            ));
        }
        let (minute, _) = field(fields[0], &MINUTE)?;
        let (hour, _) = field(fields[1], &HOUR)?;
        let (dom, dom_star) = field(fields[2], &DOM)?;
        let (month, _) = field(fields[3], &MONTH)?;
        let (dow, dow_star) = field(fields[4], &DOW)?;
        Ok(Schedule {
            minute,
            hour,
            dom,
            month,
            dow,
            dom_star,
            dow_star,
            time_zone,
        })
    }

    /// The zone a `CRON_TZ=` / `TZ=` prefix named, which wins over `spec.timeZone`.
    pub fn time_zone(&self) -> Option<&str> {
        self.time_zone.as_deref()
    }

    fn day_matches(&self, c: &Civil) -> bool {
        let dom = self.dom & (1 << c.d) != 0;
        let dow = self.dow & (1 << c.weekday()) != 0;
        if self.dom_star || self.dow_star {
            dom && dow
        } else {
            dom || dow
        }
    }

    /// The first time strictly after `after` at which the schedule fires, on the wall clock
    /// of `tz`; `None` when it never does (e.g. `0 0 30 2 *`).
    pub fn next(&self, after: Timestamp, tz: &TimeZone) -> Option<Timestamp> {
        let mut c = Civil::of(tz.to_datetime(after));
        c.add_minute();
        let limit = c.y + SEARCH_YEARS;
        while c.y <= limit {
            if self.month & (1 << c.mo) == 0 {
                c.next_month();
            } else if !self.day_matches(&c) {
                c.next_day();
            } else if self.hour & (1 << c.h) == 0 {
                c.next_hour();
            } else if self.minute & (1 << c.mi) == 0 {
                c.add_minute();
            } else {
                match c.instant(tz) {
                    // A wall time skipped or repeated by a DST change can map at or before
                    // `after`; keep looking.
                    Some(t) if t > after => return Some(t),
                    _ => c.add_minute(),
                }
            }
        }
        None
    }

    /// The last time at or before `at` at which the schedule fired, on the wall clock of `tz`.
    pub fn prev(&self, at: Timestamp, tz: &TimeZone) -> Option<Timestamp> {
        let mut c = Civil::of(tz.to_datetime(at));
        let limit = c.y - SEARCH_YEARS;
        while c.y >= limit {
            if self.month & (1 << c.mo) == 0 {
                c.prev_month();
            } else if !self.day_matches(&c) {
                c.prev_day();
            } else if self.hour & (1 << c.h) == 0 {
                c.prev_hour();
            } else if self.minute & (1 << c.mi) == 0 {
                c.sub_minute();
            } else {
                match c.instant(tz) {
                    Some(t) if t <= at => return Some(t),
                    _ => c.sub_minute(),
                }
            }
        }
        None
    }
}

/// One field: a comma-separated list of `*`, `N`, `N-M`, each optionally `/step`. Returns the
/// bit set and whether the field was a plain `*` / `?` (steps of more than one are not).
fn field(expr: &str, b: &Bounds) -> Result<(u64, bool), ParseError> {
    let mut bits = 0u64;
    let mut star = false;
    for part in expr.split(',') {
        let (range, step) = match part.split('/').collect::<Vec<_>>()[..] {
            [r] => (r, None),
            [r, s] => (r, Some(s)),
            _ => return err(format!("too many slashes: {part}")),
        };
        let (mut start, mut end, mut part_star) = if range == "*" || range == "?" {
            (b.min, b.max, true)
        } else {
            match range.split('-').collect::<Vec<_>>()[..] {
                [n] => {
                    let n = number_or_name(n, b)?;
                    (n, n, false)
                }
                [lo, hi] => (number_or_name(lo, b)?, number_or_name(hi, b)?, false),
                _ => return err(format!("too many hyphens: {range}")),
            }
        };
        let single = !part_star && !range.contains('-');
        let step = match step {
            None => 1,
            Some(s) => {
                let s = number(s)?;
                // `N/step` means `N-max/step`.
                if single {
                    end = b.max;
                }
                if s > 1 {
                    part_star = false;
                }
                s
            }
        };
        if start < b.min {
            return err(format!(
                "beginning of range ({start}) below minimum ({}): {part}",
                b.min
            ));
        }
        if end > b.max {
            return err(format!(
                "end of range ({end}) above maximum ({}): {part}",
                b.max
            ));
        }
        if start > end {
            return err(format!(
                "beginning of range ({start}) beyond end of range ({end}): {part}"
            ));
        }
        if step == 0 {
            return err(format!("step of range should be a positive number: {part}"));
        }
        while start <= end {
            bits |= 1 << start;
            start += step;
        }
        star |= part_star;
    }
    Ok((bits, star))
}

fn number_or_name(s: &str, b: &Bounds) -> Result<u32, ParseError> {
    let lower = s.to_ascii_lowercase();
    if let Some(i) = b.names.iter().position(|n| *n == lower) {
        return Ok(b.min + i as u32);
    }
    number(s)
}

fn number(s: &str) -> Result<u32, ParseError> {
    match s.parse::<i64>() {
        Ok(n) if n < 0 => err(format!("negative number ({n}) not allowed: {s}")),
        Ok(n) => u32::try_from(n)
            .ok()
            .filter(|n| *n < 64)
            .map_or_else(|| err(format!("end of range ({n}) above maximum: {s}")), Ok),
        Err(e) => err(format!("failed to parse int from {s}: {e}")),
    }
}

/// A wall-clock minute, stepped field by field (cheaper and clearer than calendar arithmetic
/// through a time zone, and never lands on an invalid date).
#[derive(Debug, Clone, Copy)]
struct Civil {
    y: i32,
    mo: u32,
    d: u32,
    h: u32,
    mi: u32,
}

fn days_in_month(y: i32, mo: u32) -> u32 {
    match mo {
        2 if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

impl Civil {
    fn of(dt: DateTime) -> Civil {
        Civil {
            y: i32::from(dt.year()),
            mo: dt.month().unsigned_abs().into(),
            d: dt.day().unsigned_abs().into(),
            h: dt.hour().unsigned_abs().into(),
            mi: dt.minute().unsigned_abs().into(),
        }
    }

    /// 0 = Sunday (days since 1970-01-01, a Thursday; Howard Hinnant's days_from_civil).
    fn weekday(&self) -> u32 {
        let (y, m, d) = (
            i64::from(self.y) - i64::from(self.mo <= 2),
            i64::from(self.mo),
            i64::from(self.d),
        );
        let era = y.div_euclid(400);
        let yoe = y - era * 400;
        let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d - 1;
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
        let days = era * 146097 + doe - 719468;
        (days + 4).rem_euclid(7) as u32
    }

    fn instant(&self, tz: &TimeZone) -> Option<Timestamp> {
        let dt = DateTime::new(
            i16::try_from(self.y).ok()?,
            i8::try_from(self.mo).ok()?,
            i8::try_from(self.d).ok()?,
            i8::try_from(self.h).ok()?,
            i8::try_from(self.mi).ok()?,
            0,
            0,
        )
        .ok()?;
        tz.to_ambiguous_timestamp(dt).compatible().ok()
    }

    fn next_month(&mut self) {
        (self.d, self.h, self.mi) = (1, 0, 0);
        self.mo += 1;
        if self.mo > 12 {
            self.mo = 1;
            self.y += 1;
        }
    }

    fn next_day(&mut self) {
        (self.h, self.mi) = (0, 0);
        self.d += 1;
        if self.d > days_in_month(self.y, self.mo) {
            self.next_month();
        }
    }

    fn next_hour(&mut self) {
        self.mi = 0;
        self.h += 1;
        if self.h > 23 {
            self.next_day();
        }
    }

    fn add_minute(&mut self) {
        self.mi += 1;
        if self.mi > 59 {
            self.next_hour();
        }
    }

    fn prev_month(&mut self) {
        if self.mo == 1 {
            self.mo = 12;
            self.y -= 1;
        } else {
            self.mo -= 1;
        }
        (self.d, self.h, self.mi) = (days_in_month(self.y, self.mo), 23, 59);
    }

    fn prev_day(&mut self) {
        if self.d == 1 {
            self.prev_month();
        } else {
            (self.d, self.h, self.mi) = (self.d - 1, 23, 59);
        }
    }

    fn prev_hour(&mut self) {
        if self.h == 0 {
            self.prev_day();
        } else {
            (self.h, self.mi) = (self.h - 1, 59);
        }
    }

    fn sub_minute(&mut self) {
        if self.mi == 0 {
            self.prev_hour();
        } else {
            self.mi -= 1;
        }
    }
}

/// An IANA time zone from the system tzdb (Go's `time.LoadLocation`): "" and "UTC" are UTC,
/// "Local" is this machine's zone.
pub fn load_time_zone(name: &str) -> Result<TimeZone, String> {
    match name {
        "" | "UTC" => return Ok(TimeZone::UTC),
        "Local" => return Ok(local_time_zone()),
        _ => {}
    }
    // A name is a relative path inside the tzdb, never a way out of it.
    if name.starts_with('/')
        || name.starts_with('\\')
        || name.split('/').any(|p| p == ".." || p.is_empty())
    {
        return Err(format!("invalid time zone name: {name}"));
    }
    let dir = std::env::var("TZDIR").unwrap_or_else(|_| ZONEINFO.to_string());
    let data = std::fs::read(std::path::Path::new(&dir).join(name))
        .map_err(|_| format!("unknown time zone {name}"))?;
    TimeZone::tzif(name, &data).map_err(|e| format!("unknown time zone {name}: {e}"))
}

/// The zone the controller manager runs in (Go's `time.Local`), used when a CronJob names
/// none: `TZ` if set, else /etc/localtime, else UTC.
pub fn local_time_zone() -> TimeZone {
    if let Ok(tz) = std::env::var("TZ") {
        let name = tz.trim_start_matches(':');
        return load_time_zone(name).unwrap_or(TimeZone::UTC);
    }
    std::fs::read("/etc/localtime")
        .ok()
        .and_then(|data| TimeZone::tzif("Local", &data).ok())
        .unwrap_or(TimeZone::UTC)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn next(spec: &str, after: &str) -> String {
        Schedule::parse(spec)
            .unwrap()
            .next(ts(after), &TimeZone::UTC)
            .unwrap()
            .to_string()
    }

    #[test]
    fn every_minute_and_steps() {
        assert_eq!(
            next("* * * * *", "2024-03-01T10:00:00Z"),
            "2024-03-01T10:01:00Z"
        );
        assert_eq!(
            next("* * * * *", "2024-03-01T10:00:30Z"),
            "2024-03-01T10:01:00Z"
        );
        assert_eq!(
            next("*/15 * * * *", "2024-03-01T10:16:00Z"),
            "2024-03-01T10:30:00Z"
        );
        assert_eq!(
            next("5/20 * * * *", "2024-03-01T10:46:00Z"),
            "2024-03-01T11:05:00Z"
        );
        assert_eq!(
            next("0 9-17/4 * * *", "2024-03-01T13:00:00Z"),
            "2024-03-01T17:00:00Z"
        );
    }

    #[test]
    fn lists_names_and_macros() {
        // Weekdays at 08:30: Friday 2024-03-01 -> Monday 2024-03-04.
        assert_eq!(
            next("30 8 * * MON-FRI", "2024-03-01T09:00:00Z"),
            "2024-03-04T08:30:00Z"
        );
        assert_eq!(
            next("0 0 1 jan,Jul *", "2024-03-01T00:00:00Z"),
            "2024-07-01T00:00:00Z"
        );
        assert_eq!(
            next("@hourly", "2024-03-01T10:00:00Z"),
            "2024-03-01T11:00:00Z"
        );
        assert_eq!(
            next("@daily", "2024-03-01T10:00:00Z"),
            "2024-03-02T00:00:00Z"
        );
        // 2024-03-03 is a Sunday.
        assert_eq!(
            next("@weekly", "2024-03-01T10:00:00Z"),
            "2024-03-03T00:00:00Z"
        );
        assert_eq!(
            next("@monthly", "2024-03-01T10:00:00Z"),
            "2024-04-01T00:00:00Z"
        );
        assert_eq!(
            next("@yearly", "2024-03-01T10:00:00Z"),
            "2025-01-01T00:00:00Z"
        );
        assert_eq!(Schedule::parse("@annually"), Schedule::parse("0 0 1 1 *"));
    }

    #[test]
    fn restricted_day_fields_match_either() {
        // The 13th or any Friday: 2024-03-08 is a Friday, before the 13th.
        assert_eq!(
            next("0 0 13 * 5", "2024-03-02T00:00:00Z"),
            "2024-03-08T00:00:00Z"
        );
        // With day of month `*` only Fridays count.
        assert_eq!(
            next("0 0 * * 5", "2024-03-09T00:00:00Z"),
            "2024-03-15T00:00:00Z"
        );
        // Leap day.
        assert_eq!(
            next("0 0 29 2 *", "2024-03-01T00:00:00Z"),
            "2028-02-29T00:00:00Z"
        );
    }

    #[test]
    fn impossible_schedules_never_fire() {
        let s = Schedule::parse("0 0 30 2 *").unwrap();
        assert_eq!(s.next(ts("2024-01-01T00:00:00Z"), &TimeZone::UTC), None);
        assert_eq!(s.prev(ts("2024-01-01T00:00:00Z"), &TimeZone::UTC), None);
    }

    #[test]
    fn previous_fire_time() {
        let s = Schedule::parse("30 8 * * 1-5").unwrap();
        // Sunday 2024-03-03 -> Friday 2024-03-01 08:30.
        assert_eq!(
            s.prev(ts("2024-03-03T12:00:00Z"), &TimeZone::UTC)
                .unwrap()
                .to_string(),
            "2024-03-01T08:30:00Z"
        );
        // At the very minute counts.
        assert_eq!(
            s.prev(ts("2024-03-01T08:30:00Z"), &TimeZone::UTC)
                .unwrap()
                .to_string(),
            "2024-03-01T08:30:00Z"
        );
        let every = Schedule::parse("* * * * *").unwrap();
        assert_eq!(
            every
                .prev(ts("2024-01-01T00:00:59Z"), &TimeZone::UTC)
                .unwrap()
                .to_string(),
            "2024-01-01T00:00:00Z"
        );
    }

    #[test]
    fn rejects_what_cron_rejects() {
        for (spec, msg) in [
            ("", "empty spec string"),
            ("* * * *", "expected exactly 5 fields, found 4: [* * * *]"),
            ("* * * * * *", "expected exactly 5 fields, found 6"),
            ("60 * * * *", "end of range (60) above maximum (59): 60"),
            ("* * 0 * *", "beginning of range (0) below minimum (1): 0"),
            ("* * * * 7", "end of range (7) above maximum (6): 7"),
            (
                "5-1 * * * *",
                "beginning of range (5) beyond end of range (1)",
            ),
            ("*/0 * * * *", "step of range should be a positive number"),
            ("x * * * *", "failed to parse int from x"),
            ("@every 5m", "unrecognized descriptor: @every 5m"),
            ("1-2-3 * * * *", "too many hyphens"),
        ] {
            let e = Schedule::parse(spec).unwrap_err().to_string();
            assert!(e.starts_with(msg), "{spec}: {e}");
        }
    }

    #[test]
    fn time_zones() {
        let Ok(berlin) = load_time_zone("Europe/Berlin") else {
            // No tzdb on this machine: nothing to check.
            return;
        };
        let s = Schedule::parse("0 9 * * *").unwrap();
        // 09:00 in Berlin is 08:00 UTC in winter and 07:00 UTC in summer.
        assert_eq!(
            s.next(ts("2024-01-10T12:00:00Z"), &berlin)
                .unwrap()
                .to_string(),
            "2024-01-11T08:00:00Z"
        );
        assert_eq!(
            s.next(ts("2024-07-10T12:00:00Z"), &berlin)
                .unwrap()
                .to_string(),
            "2024-07-11T07:00:00Z"
        );
        // 02:30 does not exist on 2024-03-31 in Berlin: it runs when the clock reads 03:30.
        let gap = Schedule::parse("30 2 * * *").unwrap();
        assert_eq!(
            gap.next(ts("2024-03-30T12:00:00Z"), &berlin)
                .unwrap()
                .to_string(),
            "2024-03-31T01:30:00Z"
        );
        let prefixed = Schedule::parse("CRON_TZ=Europe/Berlin 0 9 * * *").unwrap();
        assert_eq!(prefixed.time_zone(), Some("Europe/Berlin"));
        assert!(Schedule::parse("TZ=Nowhere/Special 0 9 * * *").is_err());
        assert!(load_time_zone("../etc/passwd").is_err());
        assert!(load_time_zone("Mars/Olympus_Mons").is_err());
    }

    #[test]
    fn weekdays() {
        let c = |y, mo, d| Civil {
            y,
            mo,
            d,
            h: 0,
            mi: 0,
        };
        assert_eq!(c(1970, 1, 1).weekday(), 4);
        assert_eq!(c(2024, 2, 29).weekday(), 4);
        assert_eq!(c(2000, 1, 1).weekday(), 6);
        assert_eq!(c(2024, 3, 3).weekday(), 0);
    }
}
