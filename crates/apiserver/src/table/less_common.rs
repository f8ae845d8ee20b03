//! Columns of the kinds `kubectl get` shows less often, as upstream's printers define them
//! (`pkg/printers/internalversion`): EndpointSlice, StorageClass, IngressClass,
//! NetworkPolicy, PodDisruptionBudget, ControllerRevision, CertificateSigningRequest and
//! PodTemplate.

use serde_json::{Value, json};

use super::{Column, NAME, col, or_none, s, selector_string};
use crate::resources::ResourceInfo;

pub(super) fn columns(info: &ResourceInfo) -> Option<Vec<Column>> {
    Some(match (info.group, info.kind) {
        ("discovery.k8s.io", "EndpointSlice") => vec![
            NAME,
            col("AddressType", 0),
            col("Ports", 0),
            col("Endpoints", 0),
            col("Age", 0),
        ],
        ("storage.k8s.io", "StorageClass") => vec![
            NAME,
            col("Provisioner", 0),
            col("ReclaimPolicy", 0),
            col("VolumeBindingMode", 0),
            col("AllowVolumeExpansion", 0),
            col("Age", 0),
        ],
        ("networking.k8s.io", "IngressClass") => vec![
            NAME,
            col("Controller", 0),
            col("Parameters", 0),
            col("Age", 0),
        ],
        ("networking.k8s.io", "NetworkPolicy") => vec![NAME, col("Pod-Selector", 0), col("Age", 0)],
        ("policy", "PodDisruptionBudget") => vec![
            NAME,
            col("Min Available", 0),
            col("Max Unavailable", 0),
            col("Allowed Disruptions", 0),
            col("Age", 0),
        ],
        ("apps", "ControllerRevision") => vec![
            NAME,
            col("Controller", 0),
            col("Revision", 0),
            col("Age", 0),
        ],
        ("certificates.k8s.io", "CertificateSigningRequest") => vec![
            NAME,
            col("Age", 0),
            col("SignerName", 0),
            col("Requestor", 0),
            col("RequestedDuration", 0),
            col("Condition", 0),
        ],
        ("", "PodTemplate") => vec![
            NAME,
            col("Containers", 0),
            col("Images", 0),
            col("Pod Labels", 0),
        ],
        _ => return None,
    })
}

pub(super) fn cells(
    info: &ResourceInfo,
    obj: &Value,
    name: &Value,
    age: &Value,
) -> Option<Vec<Value>> {
    Some(match (info.group, info.kind) {
        ("discovery.k8s.io", "EndpointSlice") => vec![
            name.clone(),
            json!(s(obj.get("addressType"))),
            json!(slice_ports(obj.get("ports"))),
            json!(slice_endpoints(obj.get("endpoints"))),
            age.clone(),
        ],
        ("storage.k8s.io", "StorageClass") => {
            let default = [
                "storageclass.kubernetes.io/is-default-class",
                "storageclass.beta.kubernetes.io/is-default-class",
            ]
            .iter()
            .any(|a| {
                obj.pointer(&format!("/metadata/annotations/{}", a.replace('/', "~1")))
                    .and_then(Value::as_str)
                    == Some("true")
            });
            let mut shown = s(obj.pointer("/metadata/name"));
            if default {
                shown.push_str(" (default)");
            }
            vec![
                json!(shown),
                json!(s(obj.get("provisioner"))),
                json!(or(s(obj.get("reclaimPolicy")), "Delete")),
                json!(or(s(obj.get("volumeBindingMode")), "Immediate")),
                json!(
                    obj.get("allowVolumeExpansion")
                        .and_then(Value::as_bool)
                        .unwrap_or(false)
                ),
                age.clone(),
            ]
        }
        ("networking.k8s.io", "IngressClass") => {
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
                name.clone(),
                json!(s(obj.pointer("/spec/controller"))),
                json!(parameters),
                age.clone(),
            ]
        }
        ("networking.k8s.io", "NetworkPolicy") => {
            vec![
                name.clone(),
                json!(selector_string(obj.pointer("/spec/podSelector"))),
                age.clone(),
            ]
        }
        ("policy", "PodDisruptionBudget") => {
            let or_na = |v: Option<&Value>| match v {
                Some(Value::Number(n)) => n.to_string(),
                Some(Value::String(t)) => t.clone(),
                _ => "N/A".into(),
            };
            vec![
                name.clone(),
                json!(or_na(obj.pointer("/spec/minAvailable"))),
                json!(or_na(obj.pointer("/spec/maxUnavailable"))),
                json!(
                    obj.pointer("/status/disruptionsAllowed")
                        .and_then(Value::as_i64)
                        .unwrap_or(0)
                ),
                age.clone(),
            ]
        }
        ("apps", "ControllerRevision") => {
            let controller = obj
                .pointer("/metadata/ownerReferences")
                .and_then(Value::as_array)
                .and_then(|refs| {
                    refs.iter()
                        .find(|r| r.get("controller").and_then(Value::as_bool) == Some(true))
                })
                .map_or("<none>".to_string(), |r| {
                    let group = s(r.get("apiVersion"))
                        .rsplit_once('/')
                        .map(|(g, _)| g.to_string())
                        .unwrap_or_default();
                    let kind = s(r.get("kind")).to_lowercase();
                    let kind = if group.is_empty() {
                        kind
                    } else {
                        format!("{kind}.{group}")
                    };
                    format!("{kind}/{}", s(r.get("name")))
                });
            vec![
                name.clone(),
                json!(controller),
                json!(obj.get("revision").and_then(Value::as_i64).unwrap_or(0)),
                age.clone(),
            ]
        }
        ("certificates.k8s.io", "CertificateSigningRequest") => {
            let condition = csr_condition(obj);
            let duration = obj
                .pointer("/spec/expirationSeconds")
                .and_then(Value::as_i64)
                .map_or("<none>".to_string(), crate::meta::human_duration);
            vec![
                name.clone(),
                age.clone(),
                json!(s(obj.pointer("/spec/signerName"))),
                json!(s(obj.pointer("/spec/username"))),
                json!(duration),
                json!(condition),
            ]
        }
        ("", "PodTemplate") => {
            let cs = obj
                .pointer("/template/spec/containers")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            let names: Vec<String> = cs.iter().map(|c| s(c.get("name"))).collect();
            let images: Vec<String> = cs.iter().map(|c| s(c.get("image"))).collect();
            let mut labels: Vec<String> = obj
                .pointer("/template/metadata/labels")
                .and_then(Value::as_object)
                .map(|m| {
                    m.iter()
                        .map(|(k, v)| format!("{k}={}", s(Some(v))))
                        .collect()
                })
                .unwrap_or_default();
            labels.sort();
            vec![
                name.clone(),
                json!(names.join(",")),
                json!(images.join(",")),
                json!(or_none(labels.join(","))),
            ]
        }
        _ => return None,
    })
}

fn or(v: String, default: &str) -> String {
    if v.is_empty() { default.into() } else { v }
}

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

/// The CONDITION column as upstream's `extractCSRStatus` writes it: Denied, else Approved,
/// else Pending; then `,Failed` and `,Issued` (a certificate in the status).
fn csr_condition(obj: &Value) -> String {
    let has = |t: &str| {
        obj.pointer("/status/conditions")
            .and_then(Value::as_array)
            .is_some_and(|cs| {
                cs.iter()
                    .any(|c| c.get("type").and_then(Value::as_str) == Some(t))
            })
    };
    let mut status = if has("Denied") {
        "Denied"
    } else if has("Approved") {
        "Approved"
    } else {
        "Pending"
    }
    .to_string();
    if has("Failed") {
        status.push_str(",Failed");
    }
    if obj
        .pointer("/status/certificate")
        .and_then(Value::as_str)
        .is_some_and(|c| !c.is_empty())
    {
        status.push_str(",Issued");
    }
    status
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csr_condition_as_kubectl_shows_it() {
        let csr = |v: Value| csr_condition(&v);
        assert_eq!(csr(json!({})), "Pending");
        assert_eq!(
            csr(json!({"status": {"conditions": [{"type": "Approved"}], "certificate": "LS0t"}})),
            "Approved,Issued"
        );
        assert_eq!(
            csr(
                json!({"status": {"conditions": [{"type": "Approved"}, {"type": "Denied"}, {"type": "Failed"}]}})
            ),
            "Denied,Failed"
        );
    }
}
