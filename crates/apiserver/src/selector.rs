//! Label selectors (equality- and set-based, the difference the seed draws between
//! ReplicationController and ReplicaSet) and field selectors.

use serde_json::Value;

use crate::error::{ApiError, ApiResult};

#[derive(Clone, Debug, PartialEq)]
enum Requirement {
    Equals(String, String),
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
    Exists(String),
    NotExists(String),
}

/// A parsed label selector; the empty selector matches everything.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LabelSelector {
    reqs: Vec<Requirement>,
}

impl LabelSelector {
    /// Parses the `labelSelector` query syntax: `a=b,c!=d,e in (x,y),f notin (z),g,!h`
    /// (`common::selectors::parse`, kept here as requirements that match JSON objects).
    pub fn parse(s: &str) -> ApiResult<Self> {
        let sel = common::selectors::parse(s).map_err(|e| ApiError::bad_request(e.to_string()))?;
        let mut reqs: Vec<Requirement> = sel
            .match_labels
            .into_iter()
            .flatten()
            .map(|(k, v)| Requirement::Equals(k, v))
            .collect();
        for e in sel.match_expressions.into_iter().flatten() {
            let values = e.values.unwrap_or_default();
            reqs.push(match e.operator.as_str() {
                "In" => Requirement::In(e.key, values),
                "NotIn" => Requirement::NotIn(e.key, values),
                "Exists" => Requirement::Exists(e.key),
                _ => Requirement::NotExists(e.key),
            });
        }
        Ok(LabelSelector { reqs })
    }

    pub fn is_empty(&self) -> bool {
        self.reqs.is_empty()
    }

    /// Whether an object's `metadata.labels` satisfy the selector.
    pub fn matches(&self, obj: &Value) -> bool {
        let labels = obj.pointer("/metadata/labels").and_then(Value::as_object);
        let get = |k: &str| labels.and_then(|l| l.get(k)).and_then(Value::as_str);
        self.reqs.iter().all(|r| match r {
            Requirement::Equals(k, v) => get(k) == Some(v.as_str()),
            Requirement::In(k, vs) => get(k).is_some_and(|x| vs.iter().any(|v| v == x)),
            Requirement::NotIn(k, vs) => !get(k).is_some_and(|x| vs.iter().any(|v| v == x)),
            Requirement::Exists(k) => get(k).is_some(),
            Requirement::NotExists(k) => get(k).is_none(),
        })
    }
}

/// A selector object in the query syntax: a `LabelSelector` (`matchLabels` and
/// `matchExpressions`, as Deployments and ReplicaSets have) or a plain label map (as
/// ReplicationControllers and Services have). Empty for none.
pub fn selector_string(sel: Option<&Value>) -> String {
    let Some(sel) = sel.and_then(Value::as_object) else {
        return String::new();
    };
    let structured = sel.contains_key("matchLabels") || sel.contains_key("matchExpressions");
    let labels = if structured {
        sel.get("matchLabels").and_then(Value::as_object)
    } else {
        Some(sel)
    };
    let mut parts: Vec<String> = labels
        .into_iter()
        .flatten()
        .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
        .collect();
    for e in sel
        .get("matchExpressions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let key = e.get("key").and_then(Value::as_str).unwrap_or("");
        let values: Vec<&str> = e
            .get("values")
            .and_then(Value::as_array)
            .map(|v| v.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        match e.get("operator").and_then(Value::as_str) {
            Some("In") => parts.push(format!("{key} in ({})", values.join(","))),
            Some("NotIn") => parts.push(format!("{key} notin ({})", values.join(","))),
            Some("Exists") => parts.push(key.to_string()),
            Some("DoesNotExist") => parts.push(format!("!{key}")),
            _ => {}
        }
    }
    parts.join(",")
}

/// A parsed field selector: `metadata.name=x,spec.nodeName!=y`.
#[derive(Clone, Debug, Default)]
pub struct FieldSelector {
    reqs: Vec<(String, bool, String)>,
}

impl FieldSelector {
    /// Parses and checks each field against those the kind supports (as Kubernetes does:
    /// an unsupported field is a 400, not a silent empty result).
    pub fn parse(s: &str, supported: &[&str]) -> ApiResult<Self> {
        let mut reqs = Vec::new();
        for term in s.split(',').map(str::trim).filter(|t| !t.is_empty()) {
            let (field, eq, value) = if let Some((f, v)) = term.split_once("!=") {
                (f, false, v)
            } else if let Some((f, v)) = term.split_once("==") {
                (f, true, v)
            } else if let Some((f, v)) = term.split_once('=') {
                (f, true, v)
            } else {
                return Err(ApiError::bad_request(format!(
                    "invalid selector: '{s}'; can't understand '{term}'"
                )));
            };
            let field = field.trim();
            if !supported.contains(&field)
                && field != "metadata.name"
                && field != "metadata.namespace"
            {
                return Err(ApiError::bad_request(format!(
                    "field label not supported: {field}"
                )));
            }
            reqs.push((field.to_string(), eq, value.trim().to_string()));
        }
        Ok(FieldSelector { reqs })
    }

    pub fn is_empty(&self) -> bool {
        self.reqs.is_empty()
    }

    /// The name this selector pins (`metadata.name=x`), if any: lets a list read one key.
    pub fn name(&self) -> Option<&str> {
        self.reqs
            .iter()
            .find(|(f, eq, _)| *eq && f == "metadata.name")
            .map(|(_, _, v)| v.as_str())
    }

    pub fn matches(&self, obj: &Value) -> bool {
        self.reqs.iter().all(|(field, eq, want)| {
            let ptr = format!("/{}", field.replace('.', "/"));
            let got = match obj.pointer(&ptr) {
                Some(Value::String(s)) => s.clone(),
                Some(Value::Bool(b)) => b.to_string(),
                Some(Value::Number(n)) => n.to_string(),
                // Absent fields compare as empty (spec.nodeName= selects unscheduled pods).
                _ => String::new(),
            };
            (got == *want) == *eq
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(labels: Value) -> Value {
        json!({"metadata": {"labels": labels}})
    }

    #[test]
    fn equality_and_set_based() {
        let o = obj(json!({"app": "web", "tier": "front"}));
        let m = |s: &str| LabelSelector::parse(s).unwrap().matches(&o);
        assert!(m(""));
        assert!(m("app=web"));
        assert!(m("app==web,tier!=back"));
        assert!(!m("app=db"));
        assert!(m("app in (web, db)"));
        assert!(!m("app notin (web)"));
        assert!(m("tier,!env"));
        assert!(!m("env"));
        assert!(m("app in (web),tier notin (back,mid)"));
        assert!(LabelSelector::parse("app in web").is_err());
        assert!(LabelSelector::parse("a b=c").is_err());
    }

    #[test]
    fn fields() {
        let pod = json!({"metadata": {"name": "p"}, "spec": {"nodeName": "n1"}, "status": {"phase": "Running"}});
        let f = |s: &str| FieldSelector::parse(s, &["spec.nodeName", "status.phase"]).unwrap();
        assert!(f("spec.nodeName=n1,status.phase!=Pending").matches(&pod));
        assert!(!f("spec.nodeName=").matches(&pod));
        assert_eq!(f("metadata.name=p").name(), Some("p"));
        assert!(FieldSelector::parse("spec.bogus=1", &[]).is_err());
    }
}
