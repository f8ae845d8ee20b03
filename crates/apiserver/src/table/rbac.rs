//! The RoleBinding and ClusterRoleBinding table, as upstream's `printRoleBinding`: ROLE,
//! AGE; wide: the users, groups and ServiceAccounts bound.

use serde_json::{Value, json};

use super::{NAME, Printer, col, kind_and_name, s};

pub const BINDING: Printer = Printer {
    columns: || {
        vec![
            NAME,
            col("Role", 0),
            col("Age", 0),
            col("Users", 1),
            col("Groups", 1),
            col("ServiceAccounts", 1),
        ]
    },
    cells: binding_cells,
};

fn binding_cells(obj: &Value, name: Value, age: Value) -> Vec<Value> {
    let of_kind = |k: &str| -> String {
        obj.get("subjects")
            .and_then(Value::as_array)
            .map(|ss| {
                ss.iter()
                    .filter(|x| x.get("kind").and_then(Value::as_str) == Some(k))
                    .map(|x| match (k, x.get("namespace").and_then(Value::as_str)) {
                        ("ServiceAccount", Some(ns)) => format!("{ns}/{}", s(x.get("name"))),
                        _ => s(x.get("name")),
                    })
                    .collect::<Vec<_>>()
                    .join(", ")
            })
            .unwrap_or_default()
    };
    vec![
        name,
        json!(kind_and_name(obj, "/roleRef")),
        age,
        json!(of_kind("User")),
        json!(of_kind("Group")),
        json!(of_kind("ServiceAccount")),
    ]
}
