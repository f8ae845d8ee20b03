//! The Prometheus text exposition format (0.0.4) as client_golang's registry writes it:
//! families sorted by name (empty ones left out), labels sorted by name, samples sorted by
//! their label values, floats as Go's `strconv.FormatFloat(v, 'g', -1, 64)`, timestamps in
//! milliseconds.

use std::fmt::Write as _;

/// What `/metrics/*` answers with (promhttp's negotiated text format).
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8; escaping=underscores";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Counter,
    Gauge,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Sample {
    pub labels: Vec<(&'static str, String)>,
    pub value: f64,
    pub timestamp_ms: Option<i64>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Family {
    pub name: &'static str,
    pub help: String,
    pub kind: Kind,
    pub samples: Vec<Sample>,
}

impl Family {
    pub fn new(name: &'static str, help: impl Into<String>, kind: Kind) -> Self {
        Family {
            name,
            help: help.into(),
            kind,
            samples: Vec::new(),
        }
    }

    pub fn push(&mut self, labels: Vec<(&'static str, String)>, value: f64, ts: Option<i64>) {
        self.samples.push(Sample {
            labels,
            value,
            timestamp_ms: ts,
        });
    }
}

/// Go's `strconv.FormatFloat(v, 'g', -1, 64)` with expfmt's special cases.
pub fn format_float(v: f64) -> String {
    if v.is_nan() {
        return "NaN".into();
    }
    if v.is_infinite() {
        return if v > 0.0 { "+Inf" } else { "-Inf" }.into();
    }
    if v == 0.0 {
        return "0".into();
    }
    // The shortest digits, in exponent form: "1.4716928e7".
    let sci = format!("{v:e}");
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    // Go's shortest %g uses %e when the exponent is below -4 or at least 6 (its "precision
    // 6 for this decision"), with a signed exponent of at least two digits.
    if !(-4..6).contains(&exp) {
        let sign = if exp < 0 { '-' } else { '+' };
        format!("{mantissa}e{sign}{:02}", exp.abs())
    } else {
        format!("{v}")
    }
}

fn escape_help(s: &str) -> String {
    s.replace('\\', "\\\\").replace('\n', "\\n")
}

fn escape_value(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// The exposition of `families`.
pub fn render(mut families: Vec<Family>) -> String {
    families.retain(|f| !f.samples.is_empty());
    families.sort_by(|a, b| a.name.cmp(b.name));
    let mut out = String::with_capacity(families.iter().map(|f| f.samples.len() * 160).sum());
    for mut f in families {
        for s in &mut f.samples {
            s.labels.sort_by(|a, b| a.0.cmp(b.0));
        }
        // client_golang's metricSorter: by label values in label-name order, then timestamp.
        f.samples.sort_by(|a, b| {
            let av = a.labels.iter().map(|l| l.1.as_str());
            let bv = b.labels.iter().map(|l| l.1.as_str());
            av.cmp(bv).then_with(|| a.timestamp_ms.cmp(&b.timestamp_ms))
        });
        // The registry refuses a second sample with the same labels; keep the first.
        f.samples.dedup_by(|b, a| a.labels == b.labels);
        let kind = match f.kind {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
        };
        let _ = writeln!(out, "# HELP {} {}", f.name, escape_help(&f.help));
        let _ = writeln!(out, "# TYPE {} {kind}", f.name);
        for s in &f.samples {
            out.push_str(f.name);
            if !s.labels.is_empty() {
                out.push('{');
                for (i, (k, v)) in s.labels.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    let _ = write!(out, "{k}=\"{}\"", escape_value(v));
                }
                out.push('}');
            }
            let _ = write!(out, " {}", format_float(s.value));
            if let Some(ts) = s.timestamp_ms {
                let _ = write!(out, " {ts}");
            }
            out.push('\n');
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floats_are_formatted_as_go() {
        for (v, want) in [
            (0.0, "0"),
            (1.0, "1"),
            (-1.0, "-1"),
            (1234.5, "1234.5"),
            (123_456.0, "123456"),
            (1_234_567.0, "1.234567e+06"),
            (14_716_928.0, "1.4716928e+07"),
            (7.353_298_427, "7.353298427"),
            (0.0001, "0.0001"),
            (0.000_012_5, "1.25e-05"),
            (1.7e9, "1.7e+09"),
            (1_700_000_123.25, "1.70000012325e+09"),
            (f64::NAN, "NaN"),
            (f64::INFINITY, "+Inf"),
        ] {
            assert_eq!(format_float(v), want, "{v}");
        }
    }

    #[test]
    fn renders_the_text_format() {
        let mut b = Family::new("b_total", "[STABLE] B\\things\nmore", Kind::Counter);
        b.push(
            vec![("pod", "z".into()), ("container", "c".into())],
            2.0,
            Some(5),
        );
        b.push(
            vec![("pod", "a".into()), ("container", "c".into())],
            1.5,
            Some(5),
        );
        b.push(
            vec![("pod", "a".into()), ("container", "c".into())],
            9.0,
            Some(6),
        );
        let mut a = Family::new("a", "A", Kind::Gauge);
        a.push(vec![("v", "q\"\\\n".into())], 0.0, None);
        let empty = Family::new("c", "C", Kind::Gauge);
        assert_eq!(
            render(vec![b, empty, a]),
            "# HELP a A\n# TYPE a gauge\na{v=\"q\\\"\\\\\\n\"} 0\n\
             # HELP b_total [STABLE] B\\\\things\\nmore\n# TYPE b_total counter\n\
             b_total{container=\"c\",pod=\"a\"} 1.5 5\n\
             b_total{container=\"c\",pod=\"z\"} 2 5\n"
        );
    }
}
