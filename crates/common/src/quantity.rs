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
}
