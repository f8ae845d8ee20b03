//! batch/v1: Jobs and CronJobs.

use k8s_openapi::api::batch::v1 as batch;

use super::KindRegistration;
use crate::strategy::workload::WorkloadStrategy;
use crate::table;

pub(super) fn kinds() -> Vec<KindRegistration> {
    vec![
        KindRegistration::of::<batch::Job>()
            .all()
            .subresources(&["status"])
            .with_strategy(WorkloadStrategy { kind: "Job" })
            .with_printer(table::batch::JOB),
        KindRegistration::of::<batch::CronJob>()
            .short(&["cj"])
            .all()
            .subresources(&["status"])
            .with_strategy(WorkloadStrategy { kind: "CronJob" })
            .with_printer(table::batch::CRON_JOB),
    ]
}
