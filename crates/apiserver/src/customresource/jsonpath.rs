//! The JSONPath subset CRDs use for printer columns (upstream evaluates them with
//! client-go's `jsonpath`): fields (`.spec.replicas`, `['a.b']`), indices (`[0]`, `[-1]`),
//! wildcards (`[*]`) and equality filters (`[?(@.type=="Ready")]`, `!=`).

use serde_json::Value;

#[derive(Debug, PartialEq)]
enum Step {
    Field(String),
    Index(i64),
    All,
    /// `[?(@.path=="value")]` (or `!=`).
    Filter(Vec<String>, bool, Value),
}

/// A parsed path.
#[derive(Debug)]
pub struct JsonPath(Vec<Step>);

fn parse_filter(inner: &str) -> Option<Step> {
    let body = inner.strip_prefix("?(")?.strip_suffix(')')?.trim();
    let (lhs, eq, rhs) = if let Some((l, r)) = body.split_once("==") {
        (l, true, r)
    } else {
        let (l, r) = body.split_once("!=")?;
        (l, false, r)
    };
    let path: Vec<String> = lhs
        .trim()
        .strip_prefix('@')?
        .split('.')
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect();
    let rhs = rhs.trim();
    let value = if let Some(s) = rhs
        .strip_prefix('"')
        .and_then(|r| r.strip_suffix('"'))
        .or_else(|| rhs.strip_prefix('\'').and_then(|r| r.strip_suffix('\'')))
    {
        Value::String(s.to_string())
    } else {
        serde_json::from_str(rhs).ok()?
    };
    Some(Step::Filter(path, eq, value))
}

impl JsonPath {
    /// Parses `.a.b[0]`, also wrapped as `{.a.b}`.
    pub fn parse(path: &str) -> Result<JsonPath, String> {
        let p = path.trim();
        let p = p
            .strip_prefix('{')
            .and_then(|p| p.strip_suffix('}'))
            .unwrap_or(p);
        let p = p.strip_prefix('$').unwrap_or(p);
        let mut steps = Vec::new();
        let mut rest = p;
        while !rest.is_empty() {
            if let Some(r) = rest.strip_prefix('.') {
                let end = r.find(['.', '[']).unwrap_or(r.len());
                if end == 0 {
                    return Err(format!("unrecognized JSONPath {path:?}"));
                }
                steps.push(Step::Field(r[..end].to_string()));
                rest = &r[end..];
            } else if let Some(r) = rest.strip_prefix('[') {
                let end = r
                    .find(']')
                    .ok_or_else(|| format!("unterminated [ in JSONPath {path:?}"))?;
                // A filter may contain `]` only inside quotes: take up to `)]`.
                let (inner, after) = if r.starts_with("?(") {
                    let close = r
                        .find(")]")
                        .ok_or_else(|| format!("unterminated filter in JSONPath {path:?}"))?;
                    (&r[..=close], &r[close + 2..])
                } else {
                    (&r[..end], &r[end + 1..])
                };
                let inner = inner.trim();
                let step = if inner == "*" {
                    Step::All
                } else if let Ok(i) = inner.parse::<i64>() {
                    Step::Index(i)
                } else if let Some(name) = inner
                    .strip_prefix('\'')
                    .and_then(|s| s.strip_suffix('\''))
                    .or_else(|| inner.strip_prefix('"').and_then(|s| s.strip_suffix('"')))
                {
                    Step::Field(name.to_string())
                } else {
                    parse_filter(inner).ok_or_else(|| format!("unrecognized JSONPath {path:?}"))?
                };
                steps.push(step);
                rest = after;
            } else {
                return Err(format!("unrecognized JSONPath {path:?}"));
            }
        }
        Ok(JsonPath(steps))
    }

    /// The values the path selects in `obj` (missing keys select nothing).
    pub fn find<'a>(&self, obj: &'a Value) -> Vec<&'a Value> {
        let mut current = vec![obj];
        for step in &self.0 {
            let mut next = Vec::new();
            for v in current {
                match step {
                    Step::Field(f) => next.extend(v.get(f.as_str())),
                    Step::Index(i) => {
                        if let Some(a) = v.as_array() {
                            let len = a.len() as i64;
                            let at = if *i < 0 { len + i } else { *i };
                            if (0..len).contains(&at) {
                                next.push(&a[at as usize]);
                            }
                        }
                    }
                    Step::All => match v {
                        Value::Array(a) => next.extend(a.iter()),
                        Value::Object(m) => next.extend(m.values()),
                        _ => {}
                    },
                    Step::Filter(path, eq, want) => {
                        for item in v.as_array().into_iter().flatten() {
                            let got = path.iter().try_fold(item, |at, f| at.get(f.as_str()));
                            if (got == Some(want)) == *eq {
                                next.push(item);
                            }
                        }
                    }
                }
            }
            current = next;
        }
        current
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn paths_select_as_client_go_jsonpath() {
        let obj = json!({"spec": {"replicas": 3, "a.b": "dotted", "list": [1, 2, 3]},
            "status": {"conditions": [{"type": "Ready", "status": "True"}, {"type": "Synced", "status": "False"}]}});
        let find = |p: &str| {
            JsonPath::parse(p)
                .unwrap()
                .find(&obj)
                .into_iter()
                .cloned()
                .collect::<Vec<_>>()
        };
        assert_eq!(find(".spec.replicas"), vec![json!(3)]);
        assert_eq!(find("{.spec.replicas}"), vec![json!(3)]);
        assert_eq!(find(".spec['a.b']"), vec![json!("dotted")]);
        assert_eq!(find(".spec.list[-1]"), vec![json!(3)]);
        assert_eq!(find(".spec.list[*]").len(), 3);
        assert_eq!(
            find(".status.conditions[?(@.type==\"Ready\")].status"),
            vec![json!("True")]
        );
        assert_eq!(
            find(".status.conditions[?(@.type!=\"Ready\")].type"),
            vec![json!("Synced")]
        );
        assert!(find(".spec.missing.deeper").is_empty());
        assert!(JsonPath::parse("spec..x").is_err());
        assert!(JsonPath::parse(".spec[").is_err());
    }
}
