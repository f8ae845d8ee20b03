//! The Service table, as upstream's `printService`: TYPE, CLUSTER-IP, EXTERNAL-IP
//! (`<pending>` for a LoadBalancer without one), PORT(S), AGE; wide: SELECTOR.

use serde_json::{Value, json};

use super::{Column, NAME, Printer, col, or_none, s, selector_string};

pub const PRINTER: Printer = Printer { columns, cells };

fn columns() -> Vec<Column> {
    vec![
        NAME,
        col("Type", 0),
        col("Cluster-IP", 0),
        col("External-IP", 0),
        col("Port(s)", 0),
        col("Age", 0),
        col("Selector", 1),
    ]
}

fn cells(obj: &Value, name: Value, age: Value) -> Vec<Value> {
    let ports: Vec<String> = obj
        .pointer("/spec/ports")
        .and_then(Value::as_array)
        .map(|ps| {
            ps.iter()
                .map(|p| {
                    let proto = p.get("protocol").and_then(Value::as_str).unwrap_or("TCP");
                    match p.get("nodePort") {
                        Some(np) => format!("{}:{}/{proto}", s(p.get("port")), s(Some(np))),
                        None => format!("{}/{proto}", s(p.get("port"))),
                    }
                })
                .collect()
        })
        .unwrap_or_default();
    let external: Vec<String> = obj
        .pointer("/status/loadBalancer/ingress")
        .and_then(Value::as_array)
        .map(|i| i.iter().map(|x| s(x.get("ip"))).collect())
        .unwrap_or_default();
    let typ = s(obj.pointer("/spec/type"));
    let external = match (external.is_empty(), typ.as_str()) {
        (false, _) => external.join(","),
        (true, "LoadBalancer") => "<pending>".into(),
        _ => "<none>".into(),
    };
    vec![
        name,
        json!(typ),
        json!(or_none(s(obj.pointer("/spec/clusterIP")))),
        json!(external),
        json!(or_none(ports.join(","))),
        age,
        json!(selector_string(obj.pointer("/spec/selector"))),
    ]
}
