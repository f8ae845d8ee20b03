//! Workload controllers' objects (Deployment, ReplicaSet, StatefulSet, DaemonSet, Job,
//! CronJob, ReplicationController): Kubernetes' defaults, a pod template defaulted as a pod
//! is, a selector that must match the template's labels and cannot change.

use serde_json::{Value, json};

use super::{Strategy, job, pod, set_default};
use crate::error::Cause;
use crate::selector::LabelSelector;

pub struct WorkloadStrategy {
    pub kind: &'static str,
}

/// Where the pod template lives in each kind.
fn template_pointer(kind: &str) -> &'static str {
    match kind {
        "CronJob" => "/spec/jobTemplate/spec/template",
        _ => "/spec/template",
    }
}

/// Whether the kind's selector may be left out (an RC's comes from the template's labels,
/// a Job's is generated, a CronJob has none).
fn selector_defaults_from_template(kind: &str) -> bool {
    matches!(kind, "ReplicationController" | "Job" | "CronJob")
}

fn selector(obj: &Value) -> Option<LabelSelector> {
    let sel = obj.pointer("/spec/selector")?;
    LabelSelector::parse(&crate::selector::selector_string(Some(sel))).ok()
}

impl Strategy for WorkloadStrategy {
    fn defaults(&self, obj: &mut Value) {
        if !obj["spec"].is_object() {
            obj["spec"] = json!({});
        }
        let spec = &mut obj["spec"];
        match self.kind {
            "Deployment" => {
                set_default(spec, "replicas", json!(1));
                set_default(spec, "revisionHistoryLimit", json!(10));
                set_default(spec, "progressDeadlineSeconds", json!(600));
                set_default(spec, "strategy", json!({}));
                set_default(&mut spec["strategy"], "type", json!("RollingUpdate"));
                if spec.pointer("/strategy/type").and_then(Value::as_str) == Some("RollingUpdate") {
                    set_default(&mut spec["strategy"], "rollingUpdate", json!({}));
                    let ru = &mut spec["strategy"]["rollingUpdate"];
                    set_default(ru, "maxSurge", json!("25%"));
                    set_default(ru, "maxUnavailable", json!("25%"));
                }
            }
            "ReplicaSet" | "ReplicationController" => set_default(spec, "replicas", json!(1)),
            "StatefulSet" => {
                set_default(spec, "replicas", json!(1));
                set_default(spec, "podManagementPolicy", json!("OrderedReady"));
                set_default(spec, "revisionHistoryLimit", json!(10));
                // Field by field, as upstream: a partial strategy or policy is completed.
                set_default(spec, "updateStrategy", json!({}));
                set_default(&mut spec["updateStrategy"], "type", json!("RollingUpdate"));
                if spec.pointer("/updateStrategy/type").and_then(Value::as_str)
                    == Some("RollingUpdate")
                {
                    set_default(&mut spec["updateStrategy"], "rollingUpdate", json!({}));
                    set_default(
                        &mut spec["updateStrategy"]["rollingUpdate"],
                        "partition",
                        json!(0),
                    );
                }
                set_default(spec, "persistentVolumeClaimRetentionPolicy", json!({}));
                let policy = &mut spec["persistentVolumeClaimRetentionPolicy"];
                set_default(policy, "whenDeleted", json!("Retain"));
                set_default(policy, "whenScaled", json!("Retain"));
                if let Some(templates) = spec
                    .get_mut("volumeClaimTemplates")
                    .and_then(Value::as_array_mut)
                {
                    for t in templates {
                        set_default(t, "apiVersion", json!("v1"));
                        set_default(t, "kind", json!("PersistentVolumeClaim"));
                        set_default(t, "spec", json!({}));
                        set_default(&mut t["spec"], "volumeMode", json!("Filesystem"));
                        set_default(t, "status", json!({"phase": "Pending"}));
                    }
                }
            }
            "DaemonSet" => {
                set_default(spec, "revisionHistoryLimit", json!(10));
                set_default(spec, "updateStrategy", json!({}));
                set_default(&mut spec["updateStrategy"], "type", json!("RollingUpdate"));
                if spec.pointer("/updateStrategy/type").and_then(Value::as_str)
                    == Some("RollingUpdate")
                {
                    set_default(&mut spec["updateStrategy"], "rollingUpdate", json!({}));
                    let ru = &mut spec["updateStrategy"]["rollingUpdate"];
                    set_default(ru, "maxUnavailable", json!(1));
                    set_default(ru, "maxSurge", json!(0));
                }
            }
            "Job" => {
                // Both unset: the single-pod kind (one completion). Only parallelism set: the
                // seed's work-queue kind, whose completions stay unset (as upstream defaults).
                if spec.get("completions").is_none() && spec.get("parallelism").is_none() {
                    set_default(spec, "completions", json!(1));
                }
                set_default(spec, "parallelism", json!(1));
                job::defaults(spec);
                set_default(spec, "completionMode", json!("NonIndexed"));
                set_default(spec, "suspend", json!(false));
                let policy = if spec.get("podFailurePolicy").is_some() {
                    "Failed"
                } else {
                    "TerminatingOrFailed"
                };
                set_default(spec, "podReplacementPolicy", json!(policy));
                set_default(spec, "manualSelector", json!(false));
            }
            "CronJob" => {
                set_default(spec, "concurrencyPolicy", json!("Allow"));
                set_default(spec, "suspend", json!(false));
                set_default(spec, "successfulJobsHistoryLimit", json!(3));
                set_default(spec, "failedJobsHistoryLimit", json!(1));
            }
            _ => {}
        }
        let ptr = template_pointer(self.kind);
        match self.kind {
            // An RC without a selector selects its template's labels.
            "ReplicationController" if obj.pointer("/spec/selector").is_none() => {
                if let Some(labels) = obj.pointer(&format!("{ptr}/metadata/labels")).cloned() {
                    obj["spec"]["selector"] = labels;
                }
            }
            _ => {}
        }
        if let Some(pod_spec) = obj.pointer_mut(&format!("{ptr}/spec")) {
            pod::default_pod_spec(pod_spec);
        }
    }

    fn prepare_for_create(&self, obj: &mut Value, _user: Option<&crate::user::UserInfo>) {
        match self.kind {
            // A Job selects its pods by its own uid (unless manualSelector), and labels the
            // template so.
            "Job" if obj.pointer("/spec/manualSelector") != Some(&json!(true)) => {
                let uid = obj.pointer("/metadata/uid").cloned().unwrap_or_default();
                let name = obj.pointer("/metadata/name").cloned().unwrap_or_default();
                obj["spec"]["selector"] =
                    json!({"matchLabels": {"batch.kubernetes.io/controller-uid": uid}});
                if !obj
                    .pointer("/spec/template/metadata/labels")
                    .is_some_and(Value::is_object)
                {
                    obj["spec"]["template"]["metadata"]["labels"] = json!({});
                }
                let labels = &mut obj["spec"]["template"]["metadata"]["labels"];
                labels["batch.kubernetes.io/controller-uid"] = uid.clone();
                labels["batch.kubernetes.io/job-name"] = name.clone();
                labels["controller-uid"] = uid;
                labels["job-name"] = name;
            }
            _ => {}
        }
        obj["status"] = json!({});
    }

    fn validate(&self, obj: &Value) -> Vec<Cause> {
        let mut causes = Vec::new();
        let ptr = template_pointer(self.kind);
        if obj
            .pointer(&format!("{ptr}/spec/containers"))
            .and_then(Value::as_array)
            .is_none_or(Vec::is_empty)
        {
            causes.push(Cause::required(format!(
                "{}.spec.containers",
                ptr.trim_start_matches('/').replace('/', ".")
            )));
        }
        let needs_selector = !selector_defaults_from_template(self.kind);
        match selector(obj) {
            None if needs_selector => causes.push(Cause::required("spec.selector")),
            Some(sel) if sel.is_empty() && needs_selector => causes.push(Cause::invalid(
                "spec.selector",
                "{}",
                "empty selector is invalid for deployment",
            )),
            Some(sel) => {
                let template = obj.pointer(ptr).cloned().unwrap_or_default();
                if !sel.matches(&template) {
                    let labels = template
                        .pointer("/metadata/labels")
                        .cloned()
                        .unwrap_or_default();
                    causes.push(Cause::invalid(
                        format!(
                            "{}.metadata.labels",
                            ptr.trim_start_matches('/').replace('/', ".")
                        ),
                        labels,
                        "`selector` does not match template `labels`",
                    ));
                }
            }
            None => {}
        }
        for field in ["replicas", "parallelism", "completions"] {
            if let Some(n) = obj
                .pointer(&format!("/spec/{field}"))
                .and_then(Value::as_i64)
                && n < 0
            {
                causes.push(Cause::invalid(
                    format!("spec.{field}"),
                    n,
                    "must be greater than or equal to 0",
                ));
            }
        }
        if let Some(restart) = obj
            .pointer(&format!("{ptr}/spec/restartPolicy"))
            .and_then(Value::as_str)
        {
            let allowed: &[&str] = match self.kind {
                "Job" | "CronJob" => &["OnFailure", "Never"],
                _ => &["Always"],
            };
            if !allowed.contains(&restart) {
                causes.push(Cause {
                    reason: "FieldValueNotSupported",
                    field: format!(
                        "{}.spec.restartPolicy",
                        ptr.trim_start_matches('/').replace('/', ".")
                    ),
                    message: format!(
                        "Unsupported value: \"{restart}\": supported values: {}",
                        allowed
                            .iter()
                            .map(|a| format!("\"{a}\""))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                });
            }
        }
        if self.kind == "Job"
            && let Some(spec) = obj.get("spec")
        {
            causes.extend(job::validate_spec(spec, "spec"));
        }
        causes
    }

    fn validate_update(&self, new: &Value, old: &Value) -> Vec<Cause> {
        // The selector is immutable in apps/v1 and batch/v1 (an RC's may change).
        if self.kind != "ReplicationController"
            && new.pointer("/spec/selector") != old.pointer("/spec/selector")
        {
            return vec![Cause::invalid(
                "spec.selector",
                new.pointer("/spec/selector").cloned().unwrap_or_default(),
                "field is immutable",
            )];
        }
        if self.kind == "Job" {
            return job::validate_update(new, old);
        }
        Vec::new()
    }

    fn tracks_generation(&self) -> bool {
        true
    }

    fn field_selectors(&self) -> &'static [&'static str] {
        match self.kind {
            "ReplicaSet" | "ReplicationController" => &["status.replicas"],
            "Job" => &["status.successful"],
            _ => &[],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partial_strategies_are_completed_field_by_field() {
        let sts = WorkloadStrategy {
            kind: "StatefulSet",
        };
        let mut obj = json!({"spec": {"updateStrategy": {"rollingUpdate": {"partition": 2}},
            "persistentVolumeClaimRetentionPolicy": {"whenDeleted": "Delete"},
            "volumeClaimTemplates": [{"metadata": {"name": "data"}, "spec": {}}]}});
        sts.defaults(&mut obj);
        assert_eq!(
            obj["spec"]["updateStrategy"],
            json!({"rollingUpdate": {"partition": 2}, "type": "RollingUpdate"})
        );
        assert_eq!(
            obj["spec"]["persistentVolumeClaimRetentionPolicy"],
            json!({"whenDeleted": "Delete", "whenScaled": "Retain"})
        );
        assert_eq!(
            obj["spec"]["volumeClaimTemplates"][0]["spec"]["volumeMode"],
            "Filesystem"
        );
        let ds = WorkloadStrategy { kind: "DaemonSet" };
        let mut obj = json!({"spec": {"updateStrategy": {"type": "OnDelete"}}});
        ds.defaults(&mut obj);
        assert_eq!(obj["spec"]["updateStrategy"], json!({"type": "OnDelete"}));
        let job = WorkloadStrategy { kind: "Job" };
        let mut queue = json!({"spec": {"parallelism": 3}});
        job.defaults(&mut queue);
        assert!(queue["spec"].get("completions").is_none());
        let mut single = json!({"spec": {}});
        job.defaults(&mut single);
        assert_eq!(single["spec"]["completions"], 1);
    }
}
