//! The Job and CronJob tables, as upstream's `printJob` and `printCronJob`.

use serde_json::{Value, json};

use super::{NAME, Printer, col, containers_and_images, int, or_none, s, selector_string};
use crate::meta::{self, human_age};

pub const JOB: Printer = Printer {
    columns: || {
        vec![
            NAME,
            col("Status", 0),
            col("Completions", 0),
            col("Duration", 0),
            col("Age", 0),
            col("Containers", 1),
            col("Images", 1),
            col("Selector", 1),
        ]
    },
    cells: job_cells,
};

fn job_cells(obj: &Value, name: Value, age: Value) -> Vec<Value> {
    let (c, i) = containers_and_images(obj);
    let completions = match obj.pointer("/spec/completions").and_then(Value::as_i64) {
        Some(n) => format!("{}/{n}", int(obj, "/status/succeeded")),
        None => format!(
            "{}/1 of {}",
            int(obj, "/status/succeeded"),
            int(obj, "/spec/parallelism").max(1)
        ),
    };
    let duration = match (
        meta::str_at(obj, "/status/startTime").and_then(meta::age_seconds),
        meta::str_at(obj, "/status/completionTime").and_then(meta::age_seconds),
    ) {
        (Some(start), Some(end)) => format!("{}s", start - end),
        (Some(start), None) => format!("{start}s"),
        _ => String::new(),
    };
    vec![
        name,
        json!(job_status(obj)),
        json!(completions),
        json!(duration),
        age,
        json!(c),
        json!(i),
        json!(selector_string(obj.pointer("/spec/selector"))),
    ]
}

/// The STATUS column: Complete, Failed, Terminating, Suspended or Running.
fn job_status(obj: &Value) -> String {
    let conds = obj
        .pointer("/status/conditions")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let has = |t: &str| {
        conds.iter().any(|c| {
            c.get("type").and_then(Value::as_str) == Some(t)
                && c.get("status").and_then(Value::as_str) == Some("True")
        })
    };
    if has("Complete") {
        "Complete".into()
    } else if has("Failed") {
        "Failed".into()
    } else if obj.pointer("/metadata/deletionTimestamp").is_some() {
        "Terminating".into()
    } else if has("Suspended") {
        "Suspended".into()
    } else {
        "Running".into()
    }
}

pub const CRON_JOB: Printer = Printer {
    columns: || {
        vec![
            NAME,
            col("Schedule", 0),
            col("Timezone", 0),
            col("Suspend", 0),
            col("Active", 0),
            col("Last Schedule", 0),
            col("Age", 0),
            col("Containers", 1),
            col("Images", 1),
            col("Selector", 1),
        ]
    },
    cells: cron_job_cells,
};

fn cron_job_cells(obj: &Value, name: Value, age: Value) -> Vec<Value> {
    let t = obj
        .pointer("/spec/jobTemplate")
        .cloned()
        .unwrap_or_default();
    let (c, i) =
        containers_and_images(&json!({"spec": t.get("spec").cloned().unwrap_or_default()}));
    vec![
        name,
        json!(s(obj.pointer("/spec/schedule"))),
        json!(or_none(s(obj.pointer("/spec/timeZone")))),
        json!(
            obj.pointer("/spec/suspend")
                .and_then(Value::as_bool)
                .unwrap_or(false)
                .to_string()
                .replace("true", "True")
                .replace("false", "False")
        ),
        json!(
            obj.pointer("/status/active")
                .and_then(Value::as_array)
                .map_or(0, Vec::len)
        ),
        json!(
            meta::str_at(obj, "/status/lastScheduleTime")
                .map_or("<none>".to_string(), |t| human_age(Some(t)))
        ),
        age,
        json!(c),
        json!(i),
        json!("<none>"),
    ]
}
