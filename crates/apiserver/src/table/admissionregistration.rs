//! The Mutating/ValidatingWebhookConfiguration table (how many webhooks each holds) and
//! the ValidatingAdmissionPolicy and binding tables, as upstream prints them.

use serde_json::json;

use super::{NAME, Printer, col, count, int_col, s};

pub const WEBHOOK_CONFIGURATION: Printer = Printer {
    columns: || vec![NAME, int_col("Webhooks", 0), col("Age", 0)],
    cells: |obj, name, age| vec![name, json!(count(obj, "webhooks")), age],
};

pub const POLICY: Printer = Printer {
    columns: || {
        vec![
            NAME,
            int_col("Validations", 0),
            col("ParamKind", 0),
            col("Age", 0),
        ]
    },
    cells: |obj, name, age| {
        let param = match obj.pointer("/spec/paramKind") {
            Some(p) => format!("{}/{}", s(p.get("apiVersion")), s(p.get("kind"))),
            None => "<unset>".into(),
        };
        let validations = obj
            .pointer("/spec/validations")
            .and_then(serde_json::Value::as_array)
            .map_or(0, Vec::len);
        vec![name, json!(validations), json!(param), age]
    },
};

pub const POLICY_BINDING: Printer = Printer {
    columns: || {
        vec![
            NAME,
            col("PolicyName", 0),
            col("ParamRef", 0),
            col("Age", 0),
        ]
    },
    cells: |obj, name, age| {
        let param = match obj.pointer("/spec/paramRef") {
            Some(p) if !s(p.get("name")).is_empty() => match s(p.get("namespace")) {
                ns if ns.is_empty() => format!("*/{}", s(p.get("name"))),
                ns => format!("{ns}/{}", s(p.get("name"))),
            },
            Some(p) if p.get("selector").is_some() => {
                crate::selector::selector_string(p.get("selector"))
            }
            _ => "<unset>".into(),
        };
        vec![
            name,
            json!(s(obj.pointer("/spec/policyName"))),
            json!(param),
            age,
        ]
    },
};
