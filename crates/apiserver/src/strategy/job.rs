//! What Kubernetes checks of a Job's failure and success handling (upstream's
//! `pkg/apis/batch/validation`): podFailurePolicy, backoffLimitPerIndex / maxFailedIndexes,
//! successPolicy, podReplacementPolicy; and the defaults that go with them.

use serde_json::{Value, json};

use crate::error::Cause;

const ACTIONS: [&str; 4] = ["Count", "FailIndex", "FailJob", "Ignore"];
const OPERATORS: [&str; 2] = ["In", "NotIn"];
const CONDITION_STATUSES: [&str; 3] = ["False", "True", "Unknown"];
/// Upstream's limits.
const MAX_RULES: usize = 20;
const MAX_EXIT_CODE_VALUES: usize = 255;
const MAX_CONDITION_PATTERNS: usize = 20;
const MAX_SUCCESS_RULES: usize = 20;
const MAX_SUCCEEDED_INDEXES_LEN: usize = 65536;
const MAX_FAILED_INDEXES: i64 = 100_000;

/// Job defaults for these fields: backoffLimit is unlimited (MaxInt32) when retries are
/// counted per index; a pod condition pattern's status is True.
pub fn defaults(spec: &mut Value) {
    if spec.get("backoffLimit").is_none_or(Value::is_null) {
        let limit = if spec
            .get("backoffLimitPerIndex")
            .is_some_and(|v| !v.is_null())
        {
            json!(i32::MAX)
        } else {
            json!(6)
        };
        spec["backoffLimit"] = limit;
    }
    if let Some(rules) = spec
        .pointer_mut("/podFailurePolicy/rules")
        .and_then(Value::as_array_mut)
    {
        for rule in rules {
            if let Some(patterns) = rule
                .get_mut("onPodConditions")
                .and_then(Value::as_array_mut)
            {
                for p in patterns {
                    if p.get("status")
                        .is_none_or(|s| s.is_null() || s.as_str() == Some(""))
                    {
                        p["status"] = json!("True");
                    }
                }
            }
        }
    }
}

/// Go prints `[]string` with %q as `["a" "b"]`.
fn go_quoted(values: &[&str]) -> String {
    format!(
        "[{}]",
        values
            .iter()
            .map(|v| format!("\"{v}\""))
            .collect::<Vec<_>>()
            .join(" ")
    )
}

fn required(field: String, detail: &str) -> Cause {
    Cause {
        reason: "FieldValueRequired",
        field,
        message: format!("Required value: {detail}"),
    }
}

/// An invalid value printed as Go prints it (numbers and lists unquoted).
fn invalid_raw(field: String, value: &str, detail: &str) -> Cause {
    Cause {
        reason: "FieldValueInvalid",
        field,
        message: format!("Invalid value: {value}: {detail}"),
    }
}

fn invalid_omitted(field: String, detail: &str) -> Cause {
    Cause {
        reason: "FieldValueInvalid",
        field,
        message: format!("Invalid value: {detail}"),
    }
}

fn too_many(field: String, n: usize, max: usize) -> Cause {
    Cause {
        reason: "FieldValueTooMany",
        field,
        message: format!("Too many: {n}: must have at most {max} items"),
    }
}

/// The number of indexes in "1,3-5" below `completions`, or why the text is wrong (as
/// upstream's validateIndexesFormat words it).
fn indexes_total(text: &str, completions: i64) -> Result<i64, String> {
    let mut total = 0;
    let mut prev: i64 = -1;
    for part in text.split(',') {
        let bounds: Vec<&str> = part.split('-').collect();
        if bounds.len() > 2 {
            return Err(format!(
                "the fragment \"{part}\" violates the requirement that an index interval can have at most two parts separated by '-'"
            ));
        }
        let parse = |b: &str| {
            b.parse::<i64>()
                .map_err(|_| format!("cannot convert string to integer for index: \"{b}\""))
        };
        let x = parse(bounds[0])?;
        if x >= completions {
            return Err(format!("too large index: \"{}\"", bounds[0]));
        }
        if x <= prev {
            return Err(format!(
                "non-increasing order, previous: {prev}, current: {x}"
            ));
        }
        let mut last = x;
        if bounds.len() == 2 {
            let y = parse(bounds[1])?;
            if y >= completions {
                return Err(format!("too large index: \"{}\"", bounds[1]));
            }
            if y <= x {
                return Err(format!("non-increasing order, previous: {x}, current: {y}"));
            }
            last = y;
        }
        total += last - x + 1;
        prev = last;
    }
    Ok(total)
}

fn int_at(v: &Value, key: &str) -> Option<i64> {
    v.get(key).and_then(Value::as_i64)
}

/// Checks a Job's spec (at `path`, e.g. "spec") for these fields.
pub fn validate_spec(spec: &Value, path: &str) -> Vec<Cause> {
    let mut causes = Vec::new();
    let f = |name: &str| format!("{path}.{name}");
    let indexed = spec.get("completionMode").and_then(Value::as_str) == Some("Indexed");
    let completions = int_at(spec, "completions");
    let per_index = int_at(spec, "backoffLimitPerIndex");
    let max_failed = int_at(spec, "maxFailedIndexes");
    for (name, v) in [
        ("backoffLimit", int_at(spec, "backoffLimit")),
        ("backoffLimitPerIndex", per_index),
        ("maxFailedIndexes", max_failed),
        (
            "activeDeadlineSeconds",
            int_at(spec, "activeDeadlineSeconds"),
        ),
    ] {
        if let Some(n) = v.filter(|n| *n < 0) {
            causes.push(invalid_raw(
                f(name),
                &n.to_string(),
                "must be greater than or equal to 0",
            ));
        }
    }
    if max_failed.is_some() && per_index.is_none() {
        causes.push(required(
            f("backoffLimitPerIndex"),
            "when maxFailedIndexes is specified",
        ));
    }
    if indexed {
        if let (Some(c), Some(m)) = (completions, max_failed)
            && m > c
        {
            causes.push(invalid_raw(
                f("maxFailedIndexes"),
                &m.to_string(),
                "must be less than or equal to completions",
            ));
        }
        if let Some(m) = max_failed.filter(|m| *m > MAX_FAILED_INDEXES) {
            causes.push(invalid_raw(
                f("maxFailedIndexes"),
                &m.to_string(),
                &format!("must be less than or equal to {MAX_FAILED_INDEXES}"),
            ));
        }
    } else {
        if let Some(n) = per_index {
            causes.push(invalid_raw(
                f("backoffLimitPerIndex"),
                &n.to_string(),
                "requires indexed completion mode",
            ));
        }
        if let Some(n) = max_failed {
            causes.push(invalid_raw(
                f("maxFailedIndexes"),
                &n.to_string(),
                "requires indexed completion mode",
            ));
        }
    }
    let policy = spec.get("podFailurePolicy").filter(|p| !p.is_null());
    if let Some(policy) = policy {
        causes.extend(validate_pod_failure_policy(
            spec,
            policy,
            &f("podFailurePolicy"),
        ));
    }
    if let Some(sp) = spec.get("successPolicy").filter(|p| !p.is_null()) {
        if !indexed {
            causes.push(invalid_raw(
                f("successPolicy"),
                &go_struct(sp),
                "requires indexed completion mode",
            ));
        } else {
            causes.extend(validate_success_policy(
                sp,
                completions.unwrap_or(0),
                &f("successPolicy"),
            ));
        }
    }
    if let Some(rp) = spec.get("podReplacementPolicy").and_then(Value::as_str) {
        if policy.is_some() {
            if rp != "Failed" {
                causes.push(Cause::not_supported(
                    f("podReplacementPolicy"),
                    rp,
                    &["Failed"],
                ));
            }
        } else if !matches!(rp, "Failed" | "TerminatingOrFailed") {
            causes.push(Cause::not_supported(
                f("podReplacementPolicy"),
                rp,
                &["Failed", "TerminatingOrFailed"],
            ));
        }
    }
    let restart = spec
        .pointer("/template/spec/restartPolicy")
        .and_then(Value::as_str);
    if policy.is_some() && restart == Some("OnFailure") {
        causes.push(Cause::invalid(
            f("template.spec.restartPolicy"),
            "OnFailure",
            "only \"Never\" is supported when podFailurePolicy is specified",
        ));
    }
    causes
}

/// Roughly how Go's %v prints a struct value in these messages.
fn go_struct(v: &Value) -> String {
    serde_json::to_string(v).unwrap_or_default()
}

fn validate_pod_failure_policy(spec: &Value, policy: &Value, path: &str) -> Vec<Cause> {
    let mut causes = Vec::new();
    let rules_path = format!("{path}.rules");
    let rules = policy
        .get("rules")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if rules.len() > MAX_RULES {
        causes.push(too_many(rules_path.clone(), rules.len(), MAX_RULES));
    }
    let names: Vec<String> = ["containers", "initContainers"]
        .iter()
        .flat_map(|k| {
            spec.pointer(&format!("/template/spec/{k}"))
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default()
        })
        .filter_map(|c| c.get("name").and_then(Value::as_str).map(str::to_string))
        .collect();
    let per_index = spec
        .get("backoffLimitPerIndex")
        .is_some_and(|v| !v.is_null());
    for (i, rule) in rules.iter().enumerate() {
        let rp = format!("{rules_path}[{i}]");
        let action = rule
            .get("action")
            .and_then(Value::as_str)
            .unwrap_or_default();
        if action.is_empty() {
            causes.push(required(
                format!("{rp}.action"),
                &format!("valid values: {}", go_quoted(&ACTIONS)),
            ));
        } else if action == "FailIndex" {
            if !per_index {
                causes.push(Cause::invalid(
                    format!("{rp}.action"),
                    action,
                    "requires the backoffLimitPerIndex to be set",
                ));
            }
        } else if !ACTIONS.contains(&action) {
            causes.push(Cause::not_supported(
                format!("{rp}.action"),
                action,
                &ACTIONS,
            ));
        }
        let exit = rule.get("onExitCodes").filter(|v| !v.is_null());
        let conds = rule
            .get("onPodConditions")
            .and_then(Value::as_array)
            .filter(|a| !a.is_empty());
        if let Some(exit) = exit {
            causes.extend(validate_on_exit_codes(
                exit,
                &format!("{rp}.onExitCodes"),
                &names,
            ));
        }
        if let Some(conds) = conds {
            let cp = format!("{rp}.onPodConditions");
            if conds.len() > MAX_CONDITION_PATTERNS {
                causes.push(too_many(cp.clone(), conds.len(), MAX_CONDITION_PATTERNS));
            }
            for (j, p) in conds.iter().enumerate() {
                let status = p.get("status").and_then(Value::as_str).unwrap_or_default();
                let sp = format!("{cp}[{j}].status");
                if status.is_empty() {
                    causes.push(required(
                        sp,
                        &format!("valid values: {}", go_quoted(&CONDITION_STATUSES)),
                    ));
                } else if !CONDITION_STATUSES.contains(&status) {
                    causes.push(Cause::not_supported(sp, status, &CONDITION_STATUSES));
                }
            }
        }
        match (exit.is_some(), conds.is_some()) {
            (true, true) => causes.push(invalid_omitted(
                rp,
                "specifying both OnExitCodes and OnPodConditions is not supported",
            )),
            (false, false) => causes.push(invalid_omitted(
                rp,
                "specifying one of OnExitCodes and OnPodConditions is required",
            )),
            _ => {}
        }
    }
    causes
}

fn validate_on_exit_codes(req: &Value, path: &str, names: &[String]) -> Vec<Cause> {
    let mut causes = Vec::new();
    let op = req
        .get("operator")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if op.is_empty() {
        causes.push(required(
            format!("{path}.operator"),
            &format!("valid values: {}", go_quoted(&OPERATORS)),
        ));
    } else if !OPERATORS.contains(&op) {
        causes.push(Cause::not_supported(
            format!("{path}.operator"),
            op,
            &OPERATORS,
        ));
    }
    if let Some(name) = req.get("containerName").and_then(Value::as_str)
        && !names.iter().any(|n| n == name)
    {
        causes.push(Cause::invalid(
            format!("{path}.containerName"),
            name,
            "must be one of the container or initContainer names in the pod template",
        ));
    }
    let vp = format!("{path}.values");
    let values: Vec<i64> = req
        .get("values")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_i64).collect())
        .unwrap_or_default();
    let printed = format!(
        "[]int32{{{}}}",
        values
            .iter()
            .map(i64::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    );
    if values.is_empty() {
        causes.push(invalid_raw(
            vp.clone(),
            "null",
            "at least one value is required",
        ));
    } else if values.len() > MAX_EXIT_CODE_VALUES {
        causes.push(too_many(vp.clone(), values.len(), MAX_EXIT_CODE_VALUES));
    }
    let mut seen = std::collections::HashSet::new();
    let mut ordered = true;
    for (j, v) in values.iter().enumerate() {
        let p = format!("{vp}[{j}]");
        if op == "In" && *v == 0 {
            causes.push(invalid_raw(
                p.clone(),
                "0",
                "must not be 0 for the In operator",
            ));
        }
        if !seen.insert(*v) {
            causes.push(Cause {
                reason: "FieldValueDuplicate",
                field: p,
                message: format!("Duplicate value: {v}"),
            });
        }
        if j > 0 && values[j - 1] > *v {
            ordered = false;
        }
    }
    if !ordered {
        causes.push(invalid_raw(vp, &printed, "must be ordered"));
    }
    causes
}

fn validate_success_policy(sp: &Value, completions: i64, path: &str) -> Vec<Cause> {
    let mut causes = Vec::new();
    let rules_path = format!("{path}.rules");
    let rules = sp
        .get("rules")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if rules.is_empty() {
        causes.push(required(
            rules_path.clone(),
            "at least one rules must be specified when the successPolicy is specified",
        ));
    }
    if rules.len() > MAX_SUCCESS_RULES {
        causes.push(too_many(rules_path.clone(), rules.len(), MAX_SUCCESS_RULES));
    }
    for (i, rule) in rules.iter().enumerate() {
        let rp = format!("{rules_path}[{i}]");
        let indexes = rule.get("succeededIndexes").and_then(Value::as_str);
        let count = rule.get("succeededCount").and_then(Value::as_i64);
        if indexes.is_none() && count.is_none() {
            causes.push(required(
                rp.clone(),
                "at least one of succeededCount or succeededIndexes must be specified",
            ));
        }
        let mut total = 0;
        if let Some(ix) = indexes {
            let ip = format!("{rp}.succeededIndexes");
            if ix.len() > MAX_SUCCEEDED_INDEXES_LEN {
                causes.push(Cause {
                    reason: "FieldValueTooLong",
                    field: ip.clone(),
                    message: format!(
                        "Too long: may not be more than {MAX_SUCCEEDED_INDEXES_LEN} bytes"
                    ),
                });
            }
            match indexes_total(ix, completions) {
                Ok(n) => total = n,
                Err(e) => causes.push(Cause::invalid(
                    ip,
                    ix,
                    &format!("error parsing succeededIndexes: {e}"),
                )),
            }
        }
        if let Some(c) = count {
            let cp = format!("{rp}.succeededCount");
            if c < 0 {
                causes.push(invalid_raw(
                    cp.clone(),
                    &c.to_string(),
                    "must be greater than or equal to 0",
                ));
            }
            if c > completions {
                causes.push(invalid_raw(
                    cp.clone(),
                    &c.to_string(),
                    &format!(
                        "must be less than or equal to {completions} (the number of specified completions)"
                    ),
                ));
            }
            if indexes.is_some() && c > total {
                causes.push(invalid_raw(
                    cp,
                    &c.to_string(),
                    &format!(
                        "must be less than or equal to {total} (the number of indexes in the specified succeededIndexes field)"
                    ),
                ));
            }
        }
    }
    causes
}

/// Fields of a Job's spec that never change after creation.
pub fn validate_update(new: &Value, old: &Value) -> Vec<Cause> {
    let mut causes = Vec::new();
    for key in ["podFailurePolicy", "backoffLimitPerIndex", "successPolicy"] {
        let (n, o) = (
            new.pointer(&format!("/spec/{key}")),
            old.pointer(&format!("/spec/{key}")),
        );
        if n.filter(|v| !v.is_null()) != o.filter(|v| !v.is_null()) {
            causes.push(invalid_raw(
                format!("spec.{key}"),
                &n.map(go_struct).unwrap_or_else(|| "null".into()),
                "field is immutable",
            ));
        }
    }
    causes
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_lists_are_checked_as_upstream_does() {
        assert_eq!(indexes_total("0,2-4", 5), Ok(4));
        assert_eq!(
            indexes_total("3,1", 5),
            Err("non-increasing order, previous: 3, current: 1".into())
        );
        assert_eq!(indexes_total("7", 5), Err("too large index: \"7\"".into()));
    }

    #[test]
    fn pod_failure_policy_needs_never_and_sane_rules() {
        let spec = json!({
            "completionMode": "NonIndexed",
            "podFailurePolicy": {"rules": [
                {"action": "FailIndex", "onExitCodes": {"operator": "In", "values": [0, 2, 1]}},
                {"action": "Ignore"},
            ]},
            "template": {"spec": {"restartPolicy": "OnFailure", "containers": [{"name": "c"}]}},
        });
        let causes = validate_spec(&spec, "spec");
        let text: Vec<String> = causes.iter().map(Cause::line).collect();
        for want in [
            "spec.podFailurePolicy.rules[0].action: Invalid value: \"FailIndex\": requires the backoffLimitPerIndex to be set",
            "spec.podFailurePolicy.rules[0].onExitCodes.values[0]: Invalid value: 0: must not be 0 for the In operator",
            "spec.podFailurePolicy.rules[0].onExitCodes.values: Invalid value: []int32{0, 2, 1}: must be ordered",
            "spec.podFailurePolicy.rules[1]: Invalid value: specifying one of OnExitCodes and OnPodConditions is required",
            "spec.template.spec.restartPolicy: Invalid value: \"OnFailure\": only \"Never\" is supported when podFailurePolicy is specified",
        ] {
            assert!(text.iter().any(|t| t == want), "{want} not in {text:#?}");
        }
    }

    #[test]
    fn per_index_limits_default_and_need_indexed_jobs() {
        let mut spec = json!({"backoffLimitPerIndex": 1, "podFailurePolicy": {"rules": [
            {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget"}]}]}});
        defaults(&mut spec);
        assert_eq!(spec["backoffLimit"], json!(i32::MAX));
        assert_eq!(
            spec["podFailurePolicy"]["rules"][0]["onPodConditions"][0]["status"],
            "True"
        );
        let causes = validate_spec(&spec, "spec");
        assert!(
            causes
                .iter()
                .any(|c| c.message == "Invalid value: 1: requires indexed completion mode"),
            "{causes:?}"
        );
    }
}
