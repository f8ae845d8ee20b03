//! The PriorityClass table, as upstream's `printPriorityClass`.

use serde_json::{Value, json};

use super::{NAME, Printer, col, int, s};

pub const PRIORITY_CLASS: Printer = Printer {
    columns: || {
        vec![
            NAME,
            col("Value", 0),
            col("Global-Default", 0),
            col("Age", 0),
            col("PreemptionPolicy", 0),
        ]
    },
    cells: |obj, name, age| {
        vec![
            name,
            json!(int(obj, "/value")),
            json!(
                obj.get("globalDefault")
                    .and_then(Value::as_bool)
                    .unwrap_or(false)
            ),
            age,
            json!(s(obj.get("preemptionPolicy"))),
        ]
    },
};
