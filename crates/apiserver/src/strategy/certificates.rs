//! CertificateSigningRequests: the requester's identity is recorded in the spec by the
//! server (never taken from the client), the spec never changes, and the status belongs to
//! the approver and the signer.

use serde_json::{Value, json};

use super::{Strategy, SubUpdate, with_field_of};
use crate::error::Cause;
use crate::user::UserInfo;

pub struct CsrStrategy;

impl Strategy for CsrStrategy {
    fn prepare_for_create(&self, obj: &mut Value, user: Option<&UserInfo>) {
        // The requester's identity, never the client's word; the server's own requests
        // have none.
        let user = user.cloned().unwrap_or_default();
        if !obj.get("spec").is_some_and(Value::is_object) {
            obj["spec"] = json!({});
        }
        let spec = &mut obj["spec"];
        spec["username"] = json!(user.name);
        spec["groups"] = json!(user.groups);
        if user.uid.is_empty() {
            if let Some(m) = spec.as_object_mut() {
                m.remove("uid");
            }
        } else {
            spec["uid"] = json!(user.uid);
        }
        if user.extra.is_empty() {
            if let Some(m) = spec.as_object_mut() {
                m.remove("extra");
            }
        } else {
            spec["extra"] = json!(user.extra);
        }
        if let Some(m) = obj.as_object_mut() {
            m.remove("status");
        }
    }

    fn validate(&self, obj: &Value) -> Vec<Cause> {
        let mut causes = Vec::new();
        let request = obj.pointer("/spec/request").and_then(Value::as_str);
        if request.is_none_or(str::is_empty) {
            causes.push(Cause::required("spec.request"));
        }
        if obj
            .pointer("/spec/signerName")
            .and_then(Value::as_str)
            .is_none_or(str::is_empty)
        {
            causes.push(Cause::required("spec.signerName"));
        }
        causes
    }

    fn validate_update(&self, new: &Value, old: &Value) -> Vec<Cause> {
        if new.get("spec") != old.get("spec") {
            return vec![Cause::forbidden("spec", "field is immutable")];
        }
        Vec::new()
    }

    /// `approval` changes the Approved/Denied conditions and nothing else.
    fn update_subresource(&self, subresource: &str, new: &Value, old: &Value) -> SubUpdate {
        (subresource == "approval").then(|| Ok(with_field_of(new, old, "status", "conditions")))
    }
}
