//! The Lease table, as upstream's `printLease`: who holds it.

use serde_json::json;

use super::{NAME, Printer, col, s};

pub const LEASE: Printer = Printer {
    columns: || vec![NAME, col("Holder", 0), col("Age", 0)],
    cells: |obj, name, age| vec![name, json!(s(obj.pointer("/spec/holderIdentity"))), age],
};
