//! Prometheus' text exposition format, read as far as the metrics server needs: samples
//! (name, labels, value, optional timestamp) and each family's `# TYPE`. Written here
//! because the Rust readers of this format bring a date library and regexes for what is a
//! line-oriented grammar of a few rules.

use std::collections::{BTreeMap, HashMap};

/// One sample line.
#[derive(Clone, Debug, PartialEq)]
pub struct Sample {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub value: f64,
    /// Milliseconds since the epoch, when the line gives one.
    pub timestamp_ms: Option<i64>,
}

/// A parsed exposition: its samples in order, and the declared type of each family.
#[derive(Debug, Default)]
pub struct Exposition {
    pub samples: Vec<Sample>,
    pub types: HashMap<String, String>,
}

impl Exposition {
    /// The declared type (`counter`, `gauge`…) of the family a sample belongs to.
    pub fn type_of(&self, name: &str) -> Option<&str> {
        self.types.get(name).map(String::as_str)
    }
}

/// Parses `text`; a malformed line is an error naming its line number.
pub fn parse(text: &str) -> Result<Exposition, String> {
    let mut out = Exposition::default();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        if let Some(comment) = line.strip_prefix('#') {
            let mut words = comment.split_whitespace();
            if words.next() == Some("TYPE")
                && let (Some(name), Some(kind)) = (words.next(), words.next())
            {
                out.types.insert(name.to_string(), kind.to_string());
            }
            continue;
        }
        let sample = sample(line).map_err(|e| format!("line {}: {e}", i + 1))?;
        out.samples.push(sample);
    }
    Ok(out)
}

fn sample(line: &str) -> Result<Sample, String> {
    let name_end = line
        .find(|c: char| c == '{' || c.is_whitespace())
        .ok_or("no value")?;
    let name = &line[..name_end];
    if name.is_empty() {
        return Err("no metric name".into());
    }
    let mut rest = &line[name_end..];
    let mut labels = BTreeMap::new();
    if let Some(after) = rest.strip_prefix('{') {
        rest = label_set(after, &mut labels)?;
    }
    let mut fields = rest.split_whitespace();
    let value = float(fields.next().ok_or("no value")?)?;
    let timestamp_ms = fields
        .next()
        .map(|t| t.parse::<i64>().map_err(|_| format!("bad timestamp {t:?}")))
        .transpose()?;
    Ok(Sample {
        name: name.to_string(),
        labels,
        value,
        timestamp_ms,
    })
}

/// Reads `name="value",…}` and returns what follows the closing brace.
fn label_set<'a>(mut s: &'a str, labels: &mut BTreeMap<String, String>) -> Result<&'a str, String> {
    loop {
        s = s.trim_start();
        if let Some(after) = s.strip_prefix('}') {
            return Ok(after);
        }
        let eq = s.find('=').ok_or("label without a value")?;
        let key = s[..eq].trim().to_string();
        s = s[eq + 1..].trim_start();
        s = s.strip_prefix('"').ok_or("label value not quoted")?;
        let mut value = String::new();
        let mut chars = s.char_indices();
        let end = loop {
            match chars.next() {
                Some((_, '\\')) => match chars.next() {
                    Some((_, 'n')) => value.push('\n'),
                    Some((_, c)) => value.push(c),
                    None => return Err("unterminated label value".into()),
                },
                Some((i, '"')) => break i,
                Some((_, c)) => value.push(c),
                None => return Err("unterminated label value".into()),
            }
        };
        labels.insert(key, value);
        s = s[end + 1..].trim_start();
        s = s.strip_prefix(',').unwrap_or(s);
    }
}

fn float(s: &str) -> Result<f64, String> {
    match s {
        "+Inf" | "Inf" => Ok(f64::INFINITY),
        "-Inf" => Ok(f64::NEG_INFINITY),
        "NaN" => Ok(f64::NAN),
        _ => s.parse().map_err(|_| format!("bad value {s:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kubelet_resource_metrics() {
        let text = r#"# HELP node_cpu_usage_seconds_total [STABLE] Cumulative cpu time consumed by the node in core-seconds
# TYPE node_cpu_usage_seconds_total counter
node_cpu_usage_seconds_total 357.35 1700000000123
# TYPE container_memory_working_set_bytes gauge
container_memory_working_set_bytes{container="httpd",namespace="default",pod="web-1"} 2.3e+06 1700000000456
scrape_error 0
"#;
        let e = parse(text).unwrap();
        assert_eq!(e.samples.len(), 3);
        assert_eq!(e.samples[0].value, 357.35);
        assert_eq!(e.samples[0].timestamp_ms, Some(1_700_000_000_123));
        assert_eq!(e.samples[1].labels["pod"], "web-1");
        assert_eq!(e.samples[1].value, 2_300_000.0);
        assert_eq!(e.samples[2].timestamp_ms, None);
        assert_eq!(e.type_of("node_cpu_usage_seconds_total"), Some("counter"));
    }

    #[test]
    fn escapes_and_special_values() {
        let e = parse("m{a=\"x\\\"y\",b=\"1\\\\2\\n\",} +Inf\nn NaN\n").unwrap();
        assert_eq!(e.samples[0].labels["a"], "x\"y");
        assert_eq!(e.samples[0].labels["b"], "1\\2\n");
        assert!(e.samples[0].value.is_infinite());
        assert!(e.samples[1].value.is_nan());
    }

    #[test]
    fn malformed_lines_are_errors() {
        assert!(parse("m{a=\"x} 1").unwrap_err().contains("line 1"));
        assert!(parse("ok 1\nm abc").unwrap_err().contains("line 2"));
        assert!(parse("m{a=x} 1").is_err());
        assert!(parse("m").is_err());
    }
}
