//! apps/v1: the workload controllers' kinds.

use k8s_openapi::api::apps::v1 as apps;

use super::KindRegistration;
use crate::strategy::workload::WorkloadStrategy;
use crate::table;

pub(super) fn kinds() -> Vec<KindRegistration> {
    vec![
        KindRegistration::of::<apps::Deployment>()
            .short(&["deploy"])
            .all()
            .subresources(&["status", "scale"])
            .with_strategy(WorkloadStrategy { kind: "Deployment" })
            .with_printer(table::apps::DEPLOYMENT),
        KindRegistration::of::<apps::ReplicaSet>()
            .short(&["rs"])
            .all()
            .subresources(&["status", "scale"])
            .with_strategy(WorkloadStrategy { kind: "ReplicaSet" })
            .with_printer(table::apps::REPLICA_SET),
        KindRegistration::of::<apps::DaemonSet>()
            .short(&["ds"])
            .all()
            .subresources(&["status"])
            .with_strategy(WorkloadStrategy { kind: "DaemonSet" })
            .with_printer(table::apps::DAEMON_SET),
        KindRegistration::of::<apps::StatefulSet>()
            .short(&["sts"])
            .all()
            .subresources(&["status", "scale"])
            .with_strategy(WorkloadStrategy {
                kind: "StatefulSet",
            })
            .with_printer(table::apps::STATEFUL_SET),
        KindRegistration::of::<apps::ControllerRevision>()
            .with_printer(table::apps::CONTROLLER_REVISION),
    ]
}
