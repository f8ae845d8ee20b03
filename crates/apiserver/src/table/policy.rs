//! The PodDisruptionBudget table, as upstream's `printPodDisruptionBudget`.

use serde_json::{Value, json};

use super::{NAME, Printer, col};

pub const POD_DISRUPTION_BUDGET: Printer = Printer {
    columns: || {
        vec![
            NAME,
            col("Min Available", 0),
            col("Max Unavailable", 0),
            col("Allowed Disruptions", 0),
            col("Age", 0),
        ]
    },
    cells: |obj, name, age| {
        let or_na = |v: Option<&Value>| match v {
            Some(Value::Number(n)) => n.to_string(),
            Some(Value::String(t)) => t.clone(),
            _ => "N/A".into(),
        };
        vec![
            name,
            json!(or_na(obj.pointer("/spec/minAvailable"))),
            json!(or_na(obj.pointer("/spec/maxUnavailable"))),
            json!(
                obj.pointer("/status/disruptionsAllowed")
                    .and_then(Value::as_i64)
                    .unwrap_or(0)
            ),
            age,
        ]
    },
};
