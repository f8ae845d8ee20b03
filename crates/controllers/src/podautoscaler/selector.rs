//! Label selectors in their query form (`app=web,tier in (a,b),!canary`), as a Scale's
//! `status.selector` carries them and the metrics APIs take them: parsed into a
//! `LabelSelector` that `common::selectors` matches, and a `LabelSelector` written back.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, LabelSelectorRequirement};

/// A selector string that does not parse.
#[derive(Debug, thiserror::Error)]
#[error("unable to parse requirement: {0}")]
pub struct ParseError(String);

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
            let k = k.trim();
            selector
                .match_labels
                .get_or_insert_with(Default::default)
                .insert(k.to_string(), v.trim().to_string());
            (k, None)
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
    use std::collections::BTreeMap;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn parses_what_scale_subresources_carry() {
        let sel = parse("app=web,tier in (a, b),!canary,track!=beta,zone").unwrap();
        let matches = |l: &[(&str, &str)]| common::selectors::selects(&sel, &labels(l));
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
        let everything = parse("").unwrap();
        assert!(common::selectors::selects(&everything, &labels(&[])));
    }

    #[test]
    fn writes_the_query_form() {
        let sel = parse("tier in (b,a),app=web").unwrap();
        assert_eq!(to_query(&sel), "app=web,tier in (a,b)");
        assert_eq!(to_query(&LabelSelector::default()), "");
    }
}
