//! rbac.authorization.k8s.io/v1: roles and their bindings.

use k8s_openapi::api::rbac::v1 as rbac;

use super::KindRegistration;
use crate::strategy::rbac::RbacStrategy;
use crate::table;

pub(super) fn kinds() -> Vec<KindRegistration> {
    vec![
        KindRegistration::of::<rbac::Role>().with_strategy(RbacStrategy { kind: "Role" }),
        KindRegistration::of::<rbac::ClusterRole>().with_strategy(RbacStrategy {
            kind: "ClusterRole",
        }),
        KindRegistration::of::<rbac::RoleBinding>()
            .with_strategy(RbacStrategy {
                kind: "RoleBinding",
            })
            .with_printer(table::rbac::BINDING),
        KindRegistration::of::<rbac::ClusterRoleBinding>()
            .with_strategy(RbacStrategy {
                kind: "ClusterRoleBinding",
            })
            .with_printer(table::rbac::BINDING),
    ]
}
