//! NodeRestriction: a kubelet (`system:node:<name>`) writes only its own Node, and of pods
//! only its mirror pods and the status of pods bound to it. Together with the Node
//! authorizer this keeps one node's credentials from touching another node's work.

use serde_json::Value;

use super::{Attributes, Operation};
use crate::authz::node::NodeAuthorizer;
use crate::error::{ApiError, ApiResult};

const MIRROR: &str = "kubernetes.io/config.mirror";

pub fn validate(a: &Attributes<'_>, obj: &Value) -> ApiResult<()> {
    let Some(node) = a.user.and_then(NodeAuthorizer::node_of) else {
        return Ok(());
    };
    if !a.info.group.is_empty() {
        return Ok(());
    }
    let forbidden = |what: &str| {
        ApiError::forbidden(format!(
            "{} \"{}\" is forbidden: {what}",
            a.info.plural, a.name
        ))
    };
    let node_of = |v: &Value| {
        v.pointer("/spec/nodeName")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string()
    };
    match (a.info.kind, a.subresource, a.operation) {
        ("Node", _, _) if a.name != node => Err(forbidden(&format!(
            "node \"{node}\" is not allowed to modify node \"{}\"",
            a.name
        ))),
        ("Pod", None, Operation::Create) => {
            let mirror = obj
                .pointer("/metadata/annotations")
                .and_then(|m| m.get(MIRROR))
                .is_some();
            if !mirror {
                return Err(forbidden(&format!(
                    "pod does not have \"{MIRROR}\" annotation, node \"{node}\" can only create mirror pods"
                )));
            }
            if node_of(obj) != node {
                return Err(forbidden(&format!(
                    "node \"{node}\" can only create pods with spec.nodeName set to itself"
                )));
            }
            Ok(())
        }
        ("Pod", Some("status"), _) => {
            if a.old.map(node_of).unwrap_or_default() != node {
                return Err(forbidden(&format!(
                    "node \"{node}\" can only update pod status for pods with spec.nodeName set to itself"
                )));
            }
            Ok(())
        }
        ("Pod", None, Operation::Update) => Err(forbidden(&format!(
            "node \"{node}\" can only update pod status"
        ))),
        _ => Ok(()),
    }
}
