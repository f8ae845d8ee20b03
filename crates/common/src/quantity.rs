//! Resource quantities ("100m", "0.5", "128Mi", "1G", "1e3") as integers: CPU in
//! millicores, everything else in units (bytes for memory), rounded up as Kubernetes does.

/// The value of a quantity times `scale` (1000 for millicores), rounded up; `None` when
/// it does not parse.
pub fn parse_scaled(q: &str, scale: i64) -> Option<i64> {
    let q = q.trim();
    let split = q
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '+' || c == '-'))
        .unwrap_or(q.len());
    let (num, suffix) = q.split_at(split);
    let (mantissa, exp10, exp2): (&str, i32, u32) = match suffix {
        "" => (num, 0, 0),
        "n" => (num, -9, 0),
        "u" => (num, -6, 0),
        "m" => (num, -3, 0),
        "k" => (num, 3, 0),
        "M" => (num, 6, 0),
        "G" => (num, 9, 0),
        "T" => (num, 12, 0),
        "P" => (num, 15, 0),
        "E" => (num, 18, 0),
        "Ki" => (num, 0, 10),
        "Mi" => (num, 0, 20),
        "Gi" => (num, 0, 30),
        "Ti" => (num, 0, 40),
        "Pi" => (num, 0, 50),
        "Ei" => (num, 0, 60),
        s if s.starts_with('e') || s.starts_with('E') => (num, s[1..].parse().ok()?, 0),
        _ => return None,
    };
    let value: f64 = mantissa.parse().ok()?;
    let v = value * 10f64.powi(exp10) * 2f64.powi(exp2 as i32) * scale as f64;
    // Tolerate float noise before rounding up ("0.1" * 1000 = 100.00000000000001).
    let rounded = (v - 1e-6).ceil();
    (rounded.is_finite() && rounded.abs() < 9.2e18).then_some(rounded as i64)
}

/// CPU in millicores.
pub fn milli_cpu(q: &str) -> i64 {
    parse_scaled(q, 1000).unwrap_or(0)
}

/// Any other resource in its base unit.
pub fn value(q: &str) -> i64 {
    parse_scaled(q, 1).unwrap_or(0)
}

/// A decimal quantity of `value` × 10^`exp` (`exp` a multiple of 3, e.g. -9 for nanocores)
/// in Kubernetes' canonical form: the largest suffix that keeps it whole (`12m`, `2`,
/// `1234567n`), as `resource.NewScaledQuantity(v, exp).String()` prints it.
pub fn format_decimal(value: i64, exp: i32) -> String {
    const SUFFIXES: [(i32, &str); 8] = [
        (-9, "n"),
        (-6, "u"),
        (-3, "m"),
        (0, ""),
        (3, "k"),
        (6, "M"),
        (9, "G"),
        (12, "T"),
    ];
    if value == 0 {
        return "0".into();
    }
    let (mut v, mut e) = (value, exp);
    while v % 1000 == 0 && SUFFIXES.iter().any(|(x, _)| *x == e + 3) {
        v /= 1000;
        e += 3;
    }
    match SUFFIXES.iter().find(|(x, _)| *x == e) {
        Some((_, suffix)) => format!("{v}{suffix}"),
        None => format!("{v}e{e}"),
    }
}

/// Bytes as a binary quantity in canonical form (`2Mi`, `1536Ki`, `1000`), as
/// `resource.NewQuantity(v, BinarySI).String()` prints it.
pub fn format_binary(bytes: i64) -> String {
    const SUFFIXES: [&str; 6] = ["", "Ki", "Mi", "Gi", "Ti", "Pi"];
    let (mut v, mut i) = (bytes, 0);
    while v != 0 && v % 1024 == 0 && i + 1 < SUFFIXES.len() {
        v /= 1024;
        i += 1;
    }
    format!("{v}{}", SUFFIXES[i])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantities() {
        assert_eq!(milli_cpu("100m"), 100);
        assert_eq!(milli_cpu("0.5"), 500);
        assert_eq!(milli_cpu("2"), 2000);
        assert_eq!(milli_cpu("0.1"), 100);
        assert_eq!(value("128Mi"), 128 * 1024 * 1024);
        assert_eq!(value("1G"), 1_000_000_000);
        assert_eq!(value("1e3"), 1000);
        assert_eq!(value("1.5Gi"), 1610612736);
        assert_eq!(value("bogus"), 0);
    }

    #[test]
    fn canonical_forms() {
        assert_eq!(format_decimal(12_000_000, -9), "12m");
        assert_eq!(format_decimal(1_234_567, -9), "1234567n");
        assert_eq!(format_decimal(2_000_000_000, -9), "2");
        assert_eq!(format_decimal(0, -9), "0");
        assert_eq!(format_decimal(1500, -3), "1500m");
        assert_eq!(format_binary(2 * 1024 * 1024), "2Mi");
        assert_eq!(format_binary(1536 * 1024), "1536Ki");
        assert_eq!(format_binary(1000), "1000");
        assert_eq!(format_binary(0), "0");
        assert_eq!(value(&format_binary(123_456_789)), 123_456_789);
        assert_eq!(
            parse_scaled(&format_decimal(987_654_321, -9), 1_000_000_000),
            Some(987_654_321)
        );
    }
}
