//! Services: defaults (type ClusterIP, TCP ports, targetPort = port, traffic policies),
//! validation of ports and type. ClusterIP and NodePort allocation is in `service_alloc`.

use serde_json::{Value, json};

use super::{Strategy, set_default};
use crate::error::Cause;

pub struct ServiceStrategy;

const TYPES: [&str; 4] = ["ClusterIP", "NodePort", "LoadBalancer", "ExternalName"];

impl Strategy for ServiceStrategy {
    fn defaults(&self, obj: &mut Value) {
        let spec = &mut obj["spec"];
        if !spec.is_object() {
            *spec = json!({});
        }
        set_default(spec, "type", json!("ClusterIP"));
        set_default(spec, "sessionAffinity", json!("None"));
        let typ = spec["type"].as_str().unwrap_or("ClusterIP").to_string();
        if typ != "ExternalName" {
            set_default(spec, "internalTrafficPolicy", json!("Cluster"));
            set_default(spec, "ipFamilies", json!(["IPv4"]));
            set_default(spec, "ipFamilyPolicy", json!("SingleStack"));
        }
        if matches!(typ.as_str(), "NodePort" | "LoadBalancer") {
            set_default(spec, "externalTrafficPolicy", json!("Cluster"));
        }
        if let Some(ports) = spec.get_mut("ports").and_then(Value::as_array_mut) {
            for p in ports {
                set_default(p, "protocol", json!("TCP"));
                if let Some(port) = p.get("port").cloned() {
                    set_default(p, "targetPort", port);
                }
            }
        }
    }

    fn prepare_for_create(&self, obj: &mut Value, _user: Option<&crate::user::UserInfo>) {
        obj["status"] = json!({"loadBalancer": {}});
    }

    fn validate(&self, obj: &Value) -> Vec<Cause> {
        let mut causes = Vec::new();
        let typ = obj
            .pointer("/spec/type")
            .and_then(Value::as_str)
            .unwrap_or("ClusterIP");
        if !TYPES.contains(&typ) {
            causes.push(Cause {
                reason: "FieldValueNotSupported",
                field: "spec.type".into(),
                message: format!("Unsupported value: \"{typ}\": supported values: \"ClusterIP\", \"ExternalName\", \"LoadBalancer\", \"NodePort\""),
            });
        }
        let headless = obj.pointer("/spec/clusterIP").and_then(Value::as_str) == Some("None");
        let ports = obj.pointer("/spec/ports").and_then(Value::as_array);
        if typ == "ExternalName" {
            if obj
                .pointer("/spec/externalName")
                .and_then(Value::as_str)
                .is_none_or(str::is_empty)
            {
                causes.push(Cause::required("spec.externalName"));
            }
        } else if ports.is_none_or(Vec::is_empty) && !headless {
            causes.push(Cause::required("spec.ports"));
        }
        let mut names = std::collections::HashSet::new();
        for (i, p) in ports.into_iter().flatten().enumerate() {
            match p.get("port").and_then(Value::as_i64) {
                Some(1..=65535) => {}
                Some(n) => causes.push(Cause::invalid(
                    format!("spec.ports[{i}].port"),
                    n,
                    "must be between 1 and 65535, inclusive",
                )),
                None => causes.push(Cause::required(format!("spec.ports[{i}].port"))),
            }
            let name = p.get("name").and_then(Value::as_str).unwrap_or("");
            if ports.is_some_and(|ps| ps.len() > 1) && name.is_empty() {
                causes.push(Cause::required(format!("spec.ports[{i}].name")));
            }
            if !name.is_empty() && !names.insert(name.to_string()) {
                causes.push(Cause {
                    reason: "FieldValueDuplicate",
                    field: format!("spec.ports[{i}].name"),
                    message: format!("Duplicate value: \"{name}\""),
                });
            }
        }
        causes
    }

    fn name_is_label(&self) -> bool {
        true
    }
}
