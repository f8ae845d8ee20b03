//! The protobuf messages of rbac.authorization.k8s.io/v1: roles and bindings (`kubectl create role|clusterrole|rolebinding|clusterrolebinding`).

use super::Ty::*;
use super::{Field, f, r};

pub(super) fn schema(message: &str) -> Option<&'static [Field]> {
    Some(match message {
        "Role" => {
            const {
                &[
                    f(1, "metadata", Msg("ObjectMeta")),
                    r(2, "rules", Msg("PolicyRule")),
                ]
            }
        }
        "ClusterRole" => {
            const {
                &[
                    f(1, "metadata", Msg("ObjectMeta")),
                    r(2, "rules", Msg("PolicyRule")),
                    f(3, "aggregationRule", Msg("AggregationRule")),
                ]
            }
        }
        "AggregationRule" => const { &[r(1, "clusterRoleSelectors", Msg("LabelSelector"))] },
        "PolicyRule" => {
            const {
                &[
                    r(1, "verbs", Str),
                    r(2, "apiGroups", Str),
                    r(3, "resources", Str),
                    r(4, "resourceNames", Str),
                    r(5, "nonResourceURLs", Str),
                ]
            }
        }
        "RoleBinding" | "ClusterRoleBinding" => {
            const {
                &[
                    f(1, "metadata", Msg("ObjectMeta")),
                    r(2, "subjects", Msg("Subject")),
                    f(3, "roleRef", Msg("RoleRef")),
                ]
            }
        }
        "Subject" => {
            const {
                &[
                    f(1, "kind", Str),
                    f(2, "apiGroup", Str),
                    f(3, "name", Str),
                    f(4, "namespace", Str),
                ]
            }
        }
        "RoleRef" => const { &[f(1, "apiGroup", Str), f(2, "kind", Str), f(3, "name", Str)] },
        _ => return None,
    })
}
