//! The protobuf messages of batch/v1: Jobs and CronJobs (`kubectl create job|cronjob`).

use super::Ty::*;
use super::{Field, f};

pub(super) fn schema(message: &str) -> Option<&'static [Field]> {
    Some(match message {
        "Job" => {
            const {
                &[
                    f(1, "metadata", Msg("ObjectMeta")),
                    f(2, "spec", Msg("JobSpec")),
                ]
            }
        }
        "JobSpec" => {
            const {
                &[
                    f(1, "parallelism", OptInt),
                    f(2, "completions", OptInt),
                    f(3, "activeDeadlineSeconds", OptInt),
                    f(4, "selector", Msg("LabelSelector")),
                    f(5, "manualSelector", OptBool),
                    f(6, "template", Msg("PodTemplateSpec")),
                    f(7, "backoffLimit", OptInt),
                    f(8, "ttlSecondsAfterFinished", OptInt),
                    f(9, "completionMode", Str),
                    f(10, "suspend", OptBool),
                ]
            }
        }
        "CronJob" => {
            const {
                &[
                    f(1, "metadata", Msg("ObjectMeta")),
                    f(2, "spec", Msg("CronJobSpec")),
                ]
            }
        }
        "CronJobSpec" => {
            const {
                &[
                    f(1, "schedule", Str),
                    f(2, "startingDeadlineSeconds", OptInt),
                    f(3, "concurrencyPolicy", Str),
                    f(4, "suspend", OptBool),
                    f(5, "jobTemplate", Msg("JobTemplateSpec")),
                    f(6, "successfulJobsHistoryLimit", OptInt),
                    f(7, "failedJobsHistoryLimit", OptInt),
                    f(8, "timeZone", Str),
                ]
            }
        }
        "JobTemplateSpec" => {
            const {
                &[
                    f(1, "metadata", Msg("ObjectMeta")),
                    f(2, "spec", Msg("JobSpec")),
                ]
            }
        }
        _ => return None,
    })
}
