//! The HorizontalPodAutoscaler table (both served versions), as upstream's
//! `printHorizontalPodAutoscaler`. Its TARGETS column as `formatHPAMetrics` prints it:
//! each metric's current value over its target (`cpu: 12%/50%`, `<unknown>/50%` before the
//! controller measured it), the first two joined with ", " and a count of the rest.

use serde_json::{Value, json};

use common::quota::Quantity;

use super::{Column, NAME, Printer, col, int, kind_and_name, s};

pub const PRINTER: Printer = Printer { columns, cells };

fn columns() -> Vec<Column> {
    vec![
        NAME,
        col("Reference", 0),
        col("Targets", 0),
        col("MinPods", 0),
        col("MaxPods", 0),
        col("Replicas", 0),
        col("Age", 0),
    ]
}

fn cells(obj: &Value, name: Value, age: Value) -> Vec<Value> {
    vec![
        name,
        json!(kind_and_name(obj, "/spec/scaleTargetRef")),
        json!(targets(obj)),
        json!(min_pods(obj)),
        json!(int(obj, "/spec/maxReplicas")),
        json!(int(obj, "/status/currentReplicas")),
        age,
    ]
}

/// Metrics shown before the rest are only counted (upstream's printer shows two).
const SHOWN: usize = 2;

const UNKNOWN: &str = "<unknown>";

/// A quantity as Go's `Quantity.String()` prints it (canonical form); as given when it does
/// not parse.
fn quantity(v: Option<&Value>) -> String {
    match v {
        Some(v) => Quantity::from_json(v).map_or_else(|| s(Some(v)), |q| q.to_string()),
        None => "<nil>".into(),
    }
}

/// `spec.metrics` and `status.currentMetrics`; an `autoscaling/v1` object (served through
/// conversion) has its CPU target and utilization as the one Resource metric they stand for.
fn metrics_of(obj: &Value) -> (Vec<Value>, Vec<Value>) {
    let list = |ptr: &str| {
        obj.pointer(ptr)
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default()
    };
    if obj.get("apiVersion").and_then(Value::as_str) != Some("autoscaling/v1") {
        return (list("/spec/metrics"), list("/status/currentMetrics"));
    }
    let specs = obj
        .pointer("/spec/targetCPUUtilizationPercentage")
        .map(|t| {
            vec![json!({"type": "Resource", "resource": {"name": "cpu",
                "target": {"type": "Utilization", "averageUtilization": t}}})]
        })
        .unwrap_or_default();
    let statuses = obj
        .pointer("/status/currentCPUUtilizationPercentage")
        .map(|c| {
            vec![json!({"type": "Resource", "resource": {"name": "cpu",
                "current": {"averageUtilization": c}}})]
        })
        .unwrap_or_default();
    (specs, statuses)
}

/// One Resource or ContainerResource metric (`source` is `resource` or `containerResource`).
fn resource(spec: &Value, status: Option<&Value>, source: &str) -> String {
    let name = s(spec.pointer(&format!("/{source}/name")));
    let target = spec.pointer(&format!("/{source}/target"));
    let current = status.and_then(|s| s.get(source));
    if let Some(avg) = target.and_then(|t| t.get("averageValue")) {
        let cur = current.map_or(UNKNOWN.to_string(), |c| {
            quantity(c.pointer("/current/averageValue"))
        });
        return format!("{name}: {cur}/{}", quantity(Some(avg)));
    }
    let cur = current
        .and_then(|c| c.pointer("/current/averageUtilization"))
        .and_then(Value::as_i64)
        .map_or(UNKNOWN.to_string(), |u| format!("{u}%"));
    let tgt = target
        .and_then(|t| t.get("averageUtilization"))
        .and_then(Value::as_i64)
        .map_or("<auto>".to_string(), |u| format!("{u}%"));
    format!("{name}: {cur}/{tgt}")
}

/// An Object or External metric (`source`): a value, or an average value marked `(avg)`.
fn value_or_average(spec: &Value, status: Option<&Value>, source: &str) -> String {
    let target = spec.pointer(&format!("/{source}/target"));
    let current = status.and_then(|s| s.get(source));
    if let Some(avg) = target.and_then(|t| t.get("averageValue")) {
        let cur = current
            .and_then(|c| c.pointer("/current/averageValue"))
            .map_or(UNKNOWN.to_string(), |v| quantity(Some(v)));
        return format!("{cur}/{} (avg)", quantity(Some(avg)));
    }
    let cur = current.map_or(UNKNOWN.to_string(), |c| {
        quantity(c.pointer("/current/value"))
    });
    format!("{cur}/{}", quantity(target.and_then(|t| t.get("value"))))
}

/// The TARGETS cell of an HPA (either served version).
fn targets(obj: &Value) -> String {
    let (specs, statuses) = metrics_of(obj);
    if specs.is_empty() {
        return "<none>".into();
    }
    let list: Vec<String> = specs
        .iter()
        .enumerate()
        .map(|(i, spec)| {
            // A status is read at the spec's own index, as upstream does.
            let status = statuses.get(i);
            match spec.get("type").and_then(Value::as_str).unwrap_or("") {
                "Resource" => resource(spec, status, "resource"),
                "ContainerResource" => resource(spec, status, "containerResource"),
                "Pods" => {
                    let cur = status
                        .and_then(|s| s.get("pods"))
                        .map_or(UNKNOWN.to_string(), |p| {
                            quantity(p.pointer("/current/averageValue"))
                        });
                    format!(
                        "{cur}/{}",
                        quantity(spec.pointer("/pods/target/averageValue"))
                    )
                }
                "Object" => value_or_average(spec, status, "object"),
                "External" => value_or_average(spec, status, "external"),
                _ => "<unknown type>".into(),
            }
        })
        .collect();
    let shown = list[..list.len().min(SHOWN)].join(", ");
    if list.len() > SHOWN {
        format!("{shown} + {} more...", list.len() - SHOWN)
    } else {
        shown
    }
}

/// The MINPODS cell: `<unset>` when the spec has none.
fn min_pods(obj: &Value) -> String {
    obj.pointer("/spec/minReplicas")
        .and_then(Value::as_i64)
        .map_or("<unset>".to_string(), |m| m.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hpa(metrics: Value, current: Value) -> Value {
        json!({"apiVersion": "autoscaling/v2", "spec": {"metrics": metrics},
            "status": {"currentMetrics": current}})
    }

    #[test]
    fn targets_as_upstream_prints_them() {
        let cpu = json!({"type": "Resource", "resource": {"name": "cpu",
            "target": {"type": "Utilization", "averageUtilization": 50}}});
        assert_eq!(
            targets(&hpa(json!([cpu]), json!(null))),
            "cpu: <unknown>/50%"
        );
        assert_eq!(
            targets(&hpa(
                json!([cpu]),
                json!([{"type": "Resource", "resource": {"name": "cpu",
                    "current": {"averageUtilization": 12, "averageValue": "12m"}}}])
            )),
            "cpu: 12%/50%"
        );
        let avg = json!({"type": "Resource", "resource": {"name": "cpu",
            "target": {"type": "AverageValue", "averageValue": "0.5"}}});
        assert_eq!(
            targets(&hpa(
                json!([avg]),
                json!([{"type": "Resource", "resource": {"name": "cpu",
                    "current": {"averageValue": "250m"}}}])
            )),
            "cpu: 250m/500m"
        );
        let pods = json!({"type": "Pods", "pods": {"metric": {"name": "rps"},
            "target": {"type": "AverageValue", "averageValue": "1k"}}});
        let object = json!({"type": "Object", "object": {"metric": {"name": "hits"},
            "describedObject": {"kind": "Service", "name": "web"},
            "target": {"type": "Value", "value": "10"}}});
        let object_avg = json!({"type": "Object", "object": {"metric": {"name": "hits"},
            "describedObject": {"kind": "Service", "name": "web"},
            "target": {"type": "AverageValue", "averageValue": "2"}}});
        let mem = json!({"type": "ContainerResource", "containerResource": {"name": "memory",
            "container": "app", "target": {"type": "Utilization", "averageUtilization": 70}}});
        assert_eq!(
            targets(&hpa(
                json!([pods, object]),
                json!([{"type": "Pods", "pods": {"metric": {"name": "rps"},
                    "current": {"averageValue": "1500m"}}}])
            )),
            "1500m/1k, <unknown>/10"
        );
        assert_eq!(
            targets(&hpa(json!([object_avg, cpu, mem, pods]), json!([]))),
            "<unknown>/2 (avg), cpu: <unknown>/50% + 2 more..."
        );
        assert_eq!(targets(&json!({"spec": {}})), "<none>");
    }

    #[test]
    fn v1_objects_show_their_cpu_target() {
        let v1 = json!({"apiVersion": "autoscaling/v1",
            "spec": {"targetCPUUtilizationPercentage": 80},
            "status": {"currentCPUUtilizationPercentage": 40}});
        assert_eq!(targets(&v1), "cpu: 40%/80%");
        let fresh = json!({"apiVersion": "autoscaling/v1",
            "spec": {"targetCPUUtilizationPercentage": 80}, "status": {"currentReplicas": 0}});
        assert_eq!(targets(&fresh), "cpu: <unknown>/80%");
        assert_eq!(min_pods(&fresh), "<unset>");
    }
}
