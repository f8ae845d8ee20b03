//! Label selectors (apimachinery's `labels.Selector` over `metav1.LabelSelector`): whether a
//! selector selects a set of labels, for controllers, the scheduler and the API server alike;
//! and their query form (`app=web,tier in (a,b),!canary`), as list requests, a Scale's
//! `status.selector` and the metrics APIs carry them: [`parse`] and [`to_query`].

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, LabelSelectorRequirement};

/// Whether `selector` selects `labels` (matchLabels and matchExpressions).
pub fn selects(selector: &LabelSelector, labels: &BTreeMap<String, String>) -> bool {
    let by_labels = selector
        .match_labels
        .iter()
        .flatten()
        .all(|(k, v)| labels.get(k) == Some(v));
    let by_exprs = selector.match_expressions.iter().flatten().all(|e| {
        let values = e.values.as_deref().unwrap_or_default();
        let value = labels.get(&e.key);
        match e.operator.as_str() {
            "In" => value.is_some_and(|v| values.contains(v)),
            "NotIn" => value.is_none_or(|v| !values.contains(v)),
            "Exists" => value.is_some(),
            "DoesNotExist" => value.is_none(),
            _ => false,
        }
    });
    by_labels && by_exprs
}

/// A selector that selects nothing when empty (as Kubernetes treats a controller's empty
/// selector: it must never adopt every pod).
pub fn selects_some(selector: &LabelSelector, labels: &BTreeMap<String, String>) -> bool {
    let empty = selector
        .match_labels
        .as_ref()
        .is_none_or(BTreeMap::is_empty)
        && selector
            .match_expressions
            .as_ref()
            .is_none_or(Vec::is_empty);
    !empty && selects(selector, labels)
}

/// A selector string that does not parse.
#[derive(Debug, Clone, PartialEq)]
pub struct ParseError(String);

impl std::fmt::Display for ParseError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "unable to parse requirement: {}", self.0)
    }
}

impl std::error::Error for ParseError {}

/// Splits on commas outside parentheses (`a in (x,y),b`).
fn terms(s: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let (mut depth, mut start) = (0usize, 0usize);
    for (i, c) in s.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth = depth.saturating_sub(1),
            ',' if depth == 0 => {
                out.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(&s[start..]);
    out
}

fn valid_key(k: &str) -> bool {
    !k.is_empty()
        && k.len() <= 317
        && k.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/'))
}

/// `(x, y)` as its values.
fn set(rest: &str) -> Option<Vec<String>> {
    let inner = rest.trim().strip_prefix('(')?.strip_suffix(')')?;
    Some(
        inner
            .split(',')
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty())
            .collect(),
    )
}

fn requirement(key: &str, operator: &str, values: Option<Vec<String>>) -> LabelSelectorRequirement {
    LabelSelectorRequirement {
        key: key.to_string(),
        operator: operator.to_string(),
        values,
    }
}

/// Parses the query syntax; the empty string selects everything.
pub fn parse(s: &str) -> Result<LabelSelector, ParseError> {
    let mut selector = LabelSelector::default();
    let mut exprs = Vec::new();
    for term in terms(s) {
        let term = term.trim();
        if term.is_empty() {
            continue;
        }
        let bad = || ParseError(term.to_string());
        let (key, req) = if let Some(key) = term.strip_prefix('!') {
            let key = key.trim();
            (key, Some(requirement(key, "DoesNotExist", None)))
        } else if let Some((k, v)) = term.split_once("!=") {
            let k = k.trim();
            (
                k,
                Some(requirement(k, "NotIn", Some(vec![v.trim().to_string()]))),
            )
        } else if let Some((k, v)) = term.split_once("==").or_else(|| term.split_once('=')) {
            let (k, v) = (k.trim(), v.trim().to_string());
            let labels = selector.match_labels.get_or_insert_with(Default::default);
            if labels.contains_key(k) {
                // `a=1,a=2` asks for both, as two requirements (it selects nothing).
                (k, Some(requirement(k, "In", Some(vec![v]))))
            } else {
                labels.insert(k.to_string(), v);
                (k, None)
            }
        } else if let Some((k, rest)) = term.split_once(" notin ") {
            let k = k.trim();
            (
                k,
                Some(requirement(k, "NotIn", Some(set(rest).ok_or_else(bad)?))),
            )
        } else if let Some((k, rest)) = term.split_once(" in ") {
            let k = k.trim();
            (
                k,
                Some(requirement(k, "In", Some(set(rest).ok_or_else(bad)?))),
            )
        } else {
            (term, Some(requirement(term, "Exists", None)))
        };
        if !valid_key(key) {
            return Err(bad());
        }
        exprs.extend(req);
    }
    if !exprs.is_empty() {
        selector.match_expressions = Some(exprs);
    }
    Ok(selector)
}

/// A `LabelSelector` in the query syntax (apimachinery's `LabelSelectorAsSelector` then
/// `String()`): labels and expressions sorted by key.
pub fn to_query(selector: &LabelSelector) -> String {
    let mut parts: Vec<(String, String)> = selector
        .match_labels
        .iter()
        .flatten()
        .map(|(k, v)| (k.clone(), format!("{k}={v}")))
        .collect();
    for e in selector.match_expressions.iter().flatten() {
        let mut values = e.values.clone().unwrap_or_default();
        values.sort();
        let text = match e.operator.as_str() {
            "In" => format!("{} in ({})", e.key, values.join(",")),
            "NotIn" => format!("{} notin ({})", e.key, values.join(",")),
            "Exists" => e.key.clone(),
            "DoesNotExist" => format!("!{}", e.key),
            other => format!("{} {other} ({})", e.key, values.join(",")),
        };
        parts.push((e.key.clone(), text));
    }
    // A stable sort keeps a key's label before its expressions, as apimachinery orders them.
    parts.sort_by(|a, b| a.0.cmp(&b.0));
    parts
        .into_iter()
        .map(|(_, t)| t)
        .collect::<Vec<_>>()
        .join(",")
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn selectors() {
        let labels: BTreeMap<String, String> = [("app".to_string(), "web".to_string())].into();
        let sel = LabelSelector {
            match_labels: Some(labels.clone()),
            match_expressions: Some(vec![LabelSelectorRequirement {
                key: "tier".into(),
                operator: "NotIn".into(),
                values: Some(vec!["db".into()]),
            }]),
        };
        assert!(selects(&sel, &labels));
        let mut db = labels.clone();
        db.insert("tier".into(), "db".into());
        assert!(!selects(&sel, &db));
        assert!(!selects_some(&LabelSelector::default(), &labels));
    }

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn parses_what_scale_subresources_carry() {
        let sel = parse("app=web,tier in (a, b),!canary,track!=beta,zone").unwrap();
        let matches = |l: &[(&str, &str)]| selects(&sel, &labels(l));
        assert!(matches(&[("app", "web"), ("tier", "a"), ("zone", "x")]));
        assert!(!matches(&[("app", "web"), ("tier", "c"), ("zone", "x")]));
        assert!(!matches(&[
            ("app", "web"),
            ("tier", "a"),
            ("zone", "x"),
            ("canary", "1")
        ]));
        assert!(!matches(&[
            ("app", "web"),
            ("tier", "a"),
            ("zone", "x"),
            ("track", "beta")
        ]));
        assert!(!matches(&[("app", "web"), ("tier", "a")]));
        assert!(parse("a in x").is_err());
        assert!(parse("bad key=1").is_err());
        let twice = parse("app=web,app=db").unwrap();
        assert!(!selects(&twice, &labels(&[("app", "web")])));
        let everything = parse("").unwrap();
        assert!(selects(&everything, &labels(&[])));
    }

    #[test]
    fn writes_the_query_form() {
        let sel = parse("tier in (b,a),app=web").unwrap();
        assert_eq!(to_query(&sel), "app=web,tier in (a,b)");
        assert_eq!(to_query(&LabelSelector::default()), "");
    }
}
