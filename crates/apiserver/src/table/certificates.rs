//! The CertificateSigningRequest table, as upstream's `printCertificateSigningRequest`.

use serde_json::{Value, json};

use super::{NAME, Printer, col, s};

pub const CERTIFICATE_SIGNING_REQUEST: Printer = Printer {
    columns: || {
        vec![
            NAME,
            col("Age", 0),
            col("SignerName", 0),
            col("Requestor", 0),
            col("RequestedDuration", 0),
            col("Condition", 0),
        ]
    },
    cells: |obj, name, age| {
        let duration = obj
            .pointer("/spec/expirationSeconds")
            .and_then(Value::as_i64)
            .map_or("<none>".to_string(), crate::meta::human_duration);
        vec![
            name,
            age,
            json!(s(obj.pointer("/spec/signerName"))),
            json!(s(obj.pointer("/spec/username"))),
            json!(duration),
            json!(csr_condition(obj)),
        ]
    },
};

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
