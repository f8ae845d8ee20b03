//! The networking tables, as upstream's printers define them: Ingress, IngressClass,
//! NetworkPolicy and (discovery.k8s.io) EndpointSlice.

use serde_json::{Value, json};

use super::{NAME, Printer, col, or_none, s, selector_string, strs};

pub const INGRESS: Printer = Printer {
    columns: || {
        vec![
            NAME,
            col("Class", 0),
            col("Hosts", 0),
            col("Address", 0),
            col("Ports", 0),
            col("Age", 0),
        ]
    },
    cells: ingress_cells,
};

fn ingress_cells(obj: &Value, name: Value, age: Value) -> Vec<Value> {
    let hosts = strs(obj, "/spec/rules", "host");
    let addr = strs(obj, "/status/loadBalancer/ingress", "ip");
    let tls = obj
        .pointer("/spec/tls")
        .and_then(Value::as_array)
        .is_some_and(|t| !t.is_empty());
    vec![
        name,
        json!(or_none(s(obj.pointer("/spec/ingressClassName")))),
        json!(if hosts.is_empty() {
            "*".to_string()
        } else {
            hosts.join(",")
        }),
        json!(addr.join(",")),
        json!(if tls { "80, 443" } else { "80" }),
        age,
    ]
}

pub const INGRESS_CLASS: Printer = Printer {
    columns: || {
        vec![
            NAME,
            col("Controller", 0),
            col("Parameters", 0),
            col("Age", 0),
        ]
    },
    cells: ingress_class_cells,
};

fn ingress_class_cells(obj: &Value, name: Value, age: Value) -> Vec<Value> {
    let parameters = obj
        .pointer("/spec/parameters")
        .map_or("<none>".to_string(), |p| {
            let mut kind = s(p.get("kind"));
            if let Some(g) = p.get("apiGroup").and_then(Value::as_str) {
                kind = format!("{kind}.{g}");
            }
            format!("{kind}/{}", s(p.get("name")))
        });
    vec![
        name,
        json!(s(obj.pointer("/spec/controller"))),
        json!(parameters),
        age,
    ]
}

pub const NETWORK_POLICY: Printer = Printer {
    columns: || vec![NAME, col("Pod-Selector", 0), col("Age", 0)],
    cells: |obj, name, age| {
        vec![
            name,
            json!(selector_string(obj.pointer("/spec/podSelector"))),
            age,
        ]
    },
};

pub const ENDPOINT_SLICE: Printer = Printer {
    columns: || {
        vec![
            NAME,
            col("AddressType", 0),
            col("Ports", 0),
            col("Endpoints", 0),
            col("Age", 0),
        ]
    },
    cells: |obj, name, age| {
        vec![
            name,
            json!(s(obj.get("addressType"))),
            json!(slice_ports(obj.get("ports"))),
            json!(slice_endpoints(obj.get("endpoints"))),
            age,
        ]
    },
};

/// `formatDiscoveryPorts`: each port's number (`<unset>` for none), comma-separated.
fn slice_ports(ports: Option<&Value>) -> String {
    let ports = ports.and_then(Value::as_array).cloned().unwrap_or_default();
    if ports.is_empty() {
        return "<unset>".into();
    }
    ports
        .iter()
        .map(|p| match p.get("port").and_then(Value::as_i64) {
            Some(n) => n.to_string(),
            None => "<unset>".into(),
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// `formatDiscoveryEndpoints`: the first three addresses, then `+ N more...`.
fn slice_endpoints(endpoints: Option<&Value>) -> String {
    let addresses: Vec<String> = endpoints
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .flat_map(|e| {
            e.get("addresses")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default()
        })
        .map(|a| s(Some(&a)))
        .collect();
    if addresses.is_empty() {
        return "<unset>".into();
    }
    let shown = addresses
        .iter()
        .take(3)
        .cloned()
        .collect::<Vec<_>>()
        .join(",");
    if addresses.len() > 3 {
        format!("{shown} + {} more...", addresses.len() - 3)
    } else {
        shown
    }
}
