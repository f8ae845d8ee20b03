//! What autoscaling/v1 has no field for, kept in annotations so that a v2 HPA read and
//! written back through v1 loses nothing (upstream's `pkg/apis/autoscaling/v1/conversion.go`):
//! metrics other than the CPU utilization target, every current metric, the conditions and
//! the behavior. The metrics are written in v1's own metric types (the v2beta1 shape).

use serde_json::{Map, Value, json};

pub const METRICS: &str = "autoscaling.alpha.kubernetes.io/metrics";
pub const CURRENT_METRICS: &str = "autoscaling.alpha.kubernetes.io/current-metrics";
pub const CONDITIONS: &str = "autoscaling.alpha.kubernetes.io/conditions";
pub const BEHAVIOR: &str = "autoscaling.alpha.kubernetes.io/behavior";

/// Copies `from[src]` to `to[dst]` when present.
fn put(to: &mut Map<String, Value>, dst: &str, from: &Value, src: &str) {
    if let Some(v) = from.pointer(src).filter(|v| !v.is_null()) {
        to.insert(dst.into(), v.clone());
    }
}

/// The name of a metric source's field for its type (`Resource` → `resource`).
fn field(kind: &str) -> String {
    let mut c = kind.chars();
    c.next()
        .map(|f| f.to_ascii_lowercase().to_string() + c.as_str())
        .unwrap_or_default()
}

/// Whether a v2 metric is the one v1 has a field for: a CPU utilization target.
pub fn is_cpu_utilization(m: &Value) -> bool {
    m.get("type").and_then(Value::as_str) == Some("Resource")
        && m.pointer("/resource/name").and_then(Value::as_str) == Some("cpu")
        && m.pointer("/resource/target/averageUtilization").is_some()
}

/// A v2 MetricSpec (`spec.metrics[]`) in v1's shape; `status` converts a MetricStatus.
pub fn to_v1(m: &Value, status: bool) -> Value {
    let kind = m.get("type").and_then(Value::as_str).unwrap_or_default();
    let f = field(kind);
    let src = m.get(&f).cloned().unwrap_or(Value::Null);
    let (v, cur) = if status {
        ("current", "current")
    } else {
        ("target", "target")
    };
    let mut out = Map::new();
    match kind {
        "Resource" | "ContainerResource" => {
            put(&mut out, "name", &src, "/name");
            put(
                &mut out,
                &format!("{cur}AverageUtilization"),
                &src,
                &format!("/{v}/averageUtilization"),
            );
            put(
                &mut out,
                &format!("{cur}AverageValue"),
                &src,
                &format!("/{v}/averageValue"),
            );
            put(&mut out, "container", &src, "/container");
        }
        "Pods" => {
            put(&mut out, "metricName", &src, "/metric/name");
            put(&mut out, "selector", &src, "/metric/selector");
            put(
                &mut out,
                &format!("{cur}AverageValue"),
                &src,
                &format!("/{v}/averageValue"),
            );
        }
        "Object" => {
            put(&mut out, "target", &src, "/describedObject");
            put(&mut out, "metricName", &src, "/metric/name");
            put(&mut out, "selector", &src, "/metric/selector");
            put(
                &mut out,
                &format!("{cur}Value"),
                &src,
                &format!("/{v}/value"),
            );
            put(
                &mut out,
                "averageValue",
                &src,
                &format!("/{v}/averageValue"),
            );
        }
        "External" => {
            put(&mut out, "metricName", &src, "/metric/name");
            put(&mut out, "metricSelector", &src, "/metric/selector");
            put(
                &mut out,
                &format!("{cur}Value"),
                &src,
                &format!("/{v}/value"),
            );
            put(
                &mut out,
                &format!("{cur}AverageValue"),
                &src,
                &format!("/{v}/averageValue"),
            );
        }
        _ => return m.clone(),
    }
    json!({"type": kind, f: out})
}

/// A v1 metric (from an annotation) in v2's shape; `status` for a MetricStatus.
pub fn to_v2(m: &Value, status: bool) -> Value {
    let kind = m.get("type").and_then(Value::as_str).unwrap_or_default();
    let f = field(kind);
    let src = m.get(&f).cloned().unwrap_or(Value::Null);
    let (v, cur) = if status {
        ("current", "current")
    } else {
        ("target", "target")
    };
    let mut value = Map::new();
    let mut out = Map::new();
    let mut metric = Map::new();
    match kind {
        "Resource" | "ContainerResource" => {
            put(&mut out, "name", &src, "/name");
            put(&mut out, "container", &src, "/container");
            put(
                &mut value,
                "averageUtilization",
                &src,
                &format!("/{cur}AverageUtilization"),
            );
            put(
                &mut value,
                "averageValue",
                &src,
                &format!("/{cur}AverageValue"),
            );
        }
        "Pods" => {
            put(&mut metric, "name", &src, "/metricName");
            put(&mut metric, "selector", &src, "/selector");
            put(
                &mut value,
                "averageValue",
                &src,
                &format!("/{cur}AverageValue"),
            );
        }
        "Object" => {
            put(&mut out, "describedObject", &src, "/target");
            put(&mut metric, "name", &src, "/metricName");
            put(&mut metric, "selector", &src, "/selector");
            put(&mut value, "value", &src, &format!("/{cur}Value"));
            put(&mut value, "averageValue", &src, "/averageValue");
        }
        "External" => {
            put(&mut metric, "name", &src, "/metricName");
            put(&mut metric, "selector", &src, "/metricSelector");
            put(&mut value, "value", &src, &format!("/{cur}Value"));
            put(
                &mut value,
                "averageValue",
                &src,
                &format!("/{cur}AverageValue"),
            );
        }
        _ => return m.clone(),
    }
    if !status {
        // A v2 target names its type: the field v1 set, else the kind's usual one.
        let t = if value.contains_key("averageUtilization") {
            "Utilization"
        } else if value.contains_key("averageValue") {
            "AverageValue"
        } else if matches!(kind, "Object" | "External") {
            "Value"
        } else {
            "AverageValue"
        };
        value.insert("type".into(), json!(t));
    }
    if !metric.is_empty() {
        out.insert("metric".into(), Value::Object(metric));
    }
    out.insert(v.into(), Value::Object(value));
    json!({"type": kind, f: out})
}

/// Writes `value` as JSON into `annotations[key]` when it is not empty.
pub fn annotate(annotations: &mut Map<String, Value>, key: &str, value: Option<Value>) {
    match value {
        Some(Value::Array(a)) if a.is_empty() => {}
        Some(Value::Null) | None => {}
        Some(v) => {
            annotations.insert(key.into(), json!(v.to_string()));
        }
    }
}

/// Takes `key` out of `annotations` and parses it (a bad value is dropped, as an unknown
/// annotation would be kept by nothing else).
pub fn take(annotations: &mut Map<String, Value>, key: &str) -> Option<Value> {
    let raw = annotations.remove(key)?;
    serde_json::from_str(raw.as_str()?).ok()
}
