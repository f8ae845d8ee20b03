//! Label selectors (`allowedRoutes.namespaces.selector`): matchLabels and matchExpressions
//! (In, NotIn, Exists, DoesNotExist), ANDed, as Kubernetes evaluates them.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

pub fn matches(sel: &LabelSelector, labels: Option<&BTreeMap<String, String>>) -> bool {
    let get = |k: &str| labels.and_then(|l| l.get(k));
    let by_labels = sel
        .match_labels
        .iter()
        .flatten()
        .all(|(k, v)| get(k) == Some(v));
    by_labels
        && sel.match_expressions.iter().flatten().all(|e| {
            let values = e.values.as_deref().unwrap_or_default();
            match e.operator.as_str() {
                "In" => get(&e.key).is_some_and(|v| values.contains(v)),
                "NotIn" => get(&e.key).is_none_or(|v| !values.contains(v)),
                "Exists" => get(&e.key).is_some(),
                "DoesNotExist" => get(&e.key).is_none(),
                _ => false,
            }
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelectorRequirement;

    #[test]
    fn labels_and_expressions() {
        let labels: BTreeMap<String, String> = [("team".to_string(), "a".to_string())].into();
        let sel = |ml: Option<(&str, &str)>, op: Option<(&str, &str, &[&str])>| LabelSelector {
            match_labels: ml.map(|(k, v)| [(k.to_string(), v.to_string())].into()),
            match_expressions: op.map(|(k, o, v)| {
                vec![LabelSelectorRequirement {
                    key: k.into(),
                    operator: o.into(),
                    values: Some(v.iter().map(|s| s.to_string()).collect()),
                }]
            }),
        };
        assert!(matches(&sel(Some(("team", "a")), None), Some(&labels)));
        assert!(!matches(&sel(Some(("team", "b")), None), Some(&labels)));
        assert!(matches(
            &sel(None, Some(("team", "In", &["a", "b"]))),
            Some(&labels)
        ));
        assert!(!matches(
            &sel(None, Some(("team", "NotIn", &["a"]))),
            Some(&labels)
        ));
        assert!(matches(
            &sel(None, Some(("x", "DoesNotExist", &[]))),
            Some(&labels)
        ));
        assert!(!matches(&sel(None, Some(("x", "Exists", &[]))), None));
        assert!(
            matches(&sel(None, None), None),
            "an empty selector selects everything"
        );
    }
}
