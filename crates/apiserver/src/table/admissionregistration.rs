//! The Mutating/ValidatingWebhookConfiguration table: how many webhooks each holds.

use serde_json::json;

use super::{NAME, Printer, col, count, int_col};

pub const WEBHOOK_CONFIGURATION: Printer = Printer {
    columns: || vec![NAME, int_col("Webhooks", 0), col("Age", 0)],
    cells: |obj, name, age| vec![name, json!(count(obj, "webhooks")), age],
};
