//! A custom kind's table (upstream's CRD `tableconvertor`): NAME, then the version's
//! `additionalPrinterColumns` (AGE when it has none), each cell the first value its
//! JSONPath selects, typed as the column says (`date`s shown as ages).

use serde_json::{Value, json};

use super::jsonpath::JsonPath;
use crate::table::{Column, NAME, TablePrinter};

pub struct ColumnPrinter {
    columns: Vec<(Column, Option<JsonPath>)>,
}

fn leak(v: &Value, key: &str) -> &'static str {
    super::leak(v.get(key).and_then(Value::as_str).unwrap_or(""))
}

impl ColumnPrinter {
    pub fn new(columns: Option<&Value>) -> Self {
        let defined: Vec<&Value> = columns
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .collect();
        let age = json!({"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"});
        let defined = if defined.is_empty() {
            vec![&age]
        } else {
            defined
        };
        let columns = defined
            .into_iter()
            .map(|c| {
                let column = Column {
                    name: leak(c, "name"),
                    kind: leak(c, "type"),
                    format: leak(c, "format"),
                    priority: c
                        .get("priority")
                        .and_then(Value::as_u64)
                        .map_or(0, |p| p.min(u64::from(u8::MAX)) as u8),
                };
                let path =
                    JsonPath::parse(c.get("jsonPath").and_then(Value::as_str).unwrap_or("")).ok();
                (column, path)
            })
            .collect();
        ColumnPrinter { columns }
    }
}

/// A cell as upstream's `cellForJSONValue`; strings columns print any value.
fn cell(kind: &str, value: &Value) -> Value {
    match (kind, value) {
        (_, Value::Null) => Value::Null,
        ("integer", Value::Number(n)) => n
            .as_i64()
            .or_else(|| n.as_f64().map(|f| f as i64))
            .map_or(Value::Null, |i| json!(i)),
        ("number", Value::Number(n)) => n.as_f64().map_or(Value::Null, |f| json!(f)),
        ("boolean", Value::Bool(b)) => json!(b),
        ("date", Value::String(s)) => match crate::meta::age_seconds(s) {
            Some(secs) => json!(crate::meta::human_duration(secs)),
            None => json!("<invalid>"),
        },
        ("string", Value::String(s)) => json!(s),
        // jsonpath prints other values as JSON.
        ("string", v) => json!(v.to_string()),
        _ => Value::Null,
    }
}

impl TablePrinter for ColumnPrinter {
    fn columns(&self) -> Vec<Column> {
        let mut out = vec![NAME];
        out.extend(self.columns.iter().map(|(c, _)| Column { ..*c }));
        out
    }

    fn cells(&self, obj: &Value, name: Value, _age: Value) -> Vec<Value> {
        let mut cells = vec![name];
        for (column, path) in &self.columns {
            let value = path
                .as_ref()
                .and_then(|p| p.find(obj).into_iter().next())
                .map_or(Value::Null, |v| cell(column.kind, v));
            cells.push(value);
        }
        cells
    }
}
