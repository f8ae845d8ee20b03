//! The Job, CronJob and TTL-after-finished controllers against a real API server, driven with
//! the real kubectl. No kubelet runs here: a test plays it, marking pods Succeeded or Failed
//! through the status subresource.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed test step should panic

use std::time::Duration;

use apiserver::testing::{Cluster, eventually};
use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::jiff::Timestamp;
use kube::Api;
use kube::api::{ListParams, Patch, PatchParams};
use serde_json::json;

/// A cluster with the controller manager running (two of them, competing for the lease).
async fn cluster() -> Cluster {
    let c = Cluster::start(false).await;
    for id in ["cm-a", "cm-b"] {
        let client = controllers::client(c.config().await).unwrap();
        tokio::spawn(controllers::run(client, id.to_string()));
    }
    c
}

async fn jsonpath(c: &Cluster, args: &[&str], path: &str) -> String {
    let mut a: Vec<&str> = args.to_vec();
    let p = format!("jsonpath={path}");
    a.extend(["-o", &p]);
    c.ok(&a).await
}

/// The job's pods (by the label the controller puts on them), oldest first.
async fn job_pods(c: &Cluster, job: &str) -> Vec<Pod> {
    let pods: Api<Pod> = Api::namespaced(c.client().await, "default");
    let lp = ListParams::default().labels(&format!("batch.kubernetes.io/job-name={job}"));
    let mut v = pods.list(&lp).await.unwrap().items;
    v.sort_by_key(|p| p.metadata.creation_timestamp.as_ref().map(|t| t.0));
    v
}

fn phase(p: &Pod) -> &str {
    p.status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .unwrap_or_default()
}

/// Running as far as the job is concerned: not finished, not being deleted.
fn is_active(p: &Pod) -> bool {
    !matches!(phase(p), "Succeeded" | "Failed") && p.metadata.deletion_timestamp.is_none()
}

async fn active_pods(c: &Cluster, job: &str) -> Vec<Pod> {
    job_pods(c, job)
        .await
        .into_iter()
        .filter(is_active)
        .collect()
}

/// Ends a pod as its kubelet would: the phase, and Ready turning False at that moment.
async fn finish(c: &Cluster, pod: &Pod, phase: &str) {
    let pods: Api<Pod> = Api::namespaced(c.client().await, "default");
    let now = Timestamp::now().to_string();
    let status = json!({"status": {"phase": phase, "conditions": [
        {"type": "Ready", "status": "False", "lastTransitionTime": now}
    ]}});
    pods.patch_status(
        pod.metadata.name.as_deref().unwrap(),
        &PatchParams::default(),
        &Patch::Merge(status),
    )
    .await
    .unwrap();
}

fn index(p: &Pod) -> String {
    p.metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get("batch.kubernetes.io/job-completion-index"))
        .cloned()
        .unwrap_or_default()
}

async fn job_status(c: &Cluster, name: &str, path: &str) -> String {
    jsonpath(c, &["get", "job", name], path).await
}

const FIXED: &str = "
apiVersion: batch/v1
kind: Job
metadata: {name: pi}
spec:
  completions: 4
  parallelism: 2
  template:
    spec:
      restartPolicy: Never
      containers: [{name: pi, image: perl:5.34, command: [perl, -e, 'print 1']}]
";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fixed_completion_count_runs_parallelism_pods_until_complete() {
    let c = cluster().await;
    let f = c.write("job.yaml", FIXED);
    c.ok(&["apply", "-f", &f]).await;
    let first = eventually("2 pods", || async {
        let p = active_pods(&c, "pi").await;
        (p.len() == 2).then_some(p)
    })
    .await;
    // Never more than parallelism at once (two controller managers run; one acts).
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert_eq!(job_pods(&c, "pi").await.len(), 2);
    let uid = jsonpath(&c, &["get", "job", "pi"], "{.metadata.uid}").await;
    for p in &first {
        let m = &p.metadata;
        assert!(m.generate_name.as_deref() == Some("pi-"), "{m:?}");
        let labels = m.labels.as_ref().unwrap();
        assert_eq!(labels.get("job-name").map(String::as_str), Some("pi"));
        assert_eq!(
            labels
                .get("batch.kubernetes.io/controller-uid")
                .map(String::as_str),
            Some(uid.as_str())
        );
        assert_eq!(
            labels.get("controller-uid").map(String::as_str),
            Some(uid.as_str())
        );
        let owner = &m.owner_references.as_ref().unwrap()[0];
        assert_eq!(
            (owner.kind.as_str(), owner.name.as_str(), owner.controller),
            ("Job", "pi", Some(true))
        );
        assert_eq!(
            m.finalizers.as_deref(),
            Some(&["batch.kubernetes.io/job-tracking".to_string()][..])
        );
    }
    eventually("active 2", || async {
        (job_status(
            &c,
            "pi",
            "{.status.active}/{.status.ready}/{.status.terminating}",
        )
        .await
            == "2/0/0")
            .then_some(())
    })
    .await;
    assert!(!job_status(&c, "pi", "{.status.startTime}").await.is_empty());

    for p in &first {
        finish(&c, p, "Succeeded").await;
    }
    let second = eventually("2 more pods", || async {
        let p = active_pods(&c, "pi").await;
        (p.len() == 2 && job_pods(&c, "pi").await.len() == 4).then_some(p)
    })
    .await;
    eventually("2 counted", || async {
        (job_status(&c, "pi", "{.status.succeeded}").await == "2").then_some(())
    })
    .await;
    for p in &second {
        finish(&c, p, "Succeeded").await;
    }
    c.ok(&[
        "wait",
        "--for=condition=complete",
        "job/pi",
        "--timeout=30s",
    ])
    .await;
    let s = job_status(
        &c,
        "pi",
        r#"{.status.succeeded}/{.status.active}/{.status.failed} {range .status.conditions[*]}{.type}={.status}:{.reason};{end}"#,
    )
    .await;
    assert_eq!(
        s,
        "4// SuccessCriteriaMet=True:CompletionsReached;Complete=True:CompletionsReached;"
    );
    assert!(
        !job_status(&c, "pi", "{.status.completionTime}")
            .await
            .is_empty()
    );
    // Every pod was counted and let go.
    eventually("finalizers removed", || async {
        job_pods(&c, "pi")
            .await
            .iter()
            .all(|p| p.metadata.finalizers.as_ref().is_none_or(Vec::is_empty))
            .then_some(())
    })
    .await;
    let events = c
        .ok(&[
            "get",
            "events",
            "--field-selector",
            "involvedObject.name=pi",
        ])
        .await;
    assert!(
        events.contains("SuccessfulCreate") && events.contains("Completed"),
        "{events}"
    );
    // Deleting the job deletes its pods.
    c.ok(&["delete", "job", "pi"]).await;
    eventually("pods gone", || async {
        job_pods(&c, "pi").await.is_empty().then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_pods_are_replaced_after_a_back_off_until_the_limit() {
    let c = cluster().await;
    let manifest = FIXED
        .replace("completions: 4\n  parallelism: 2", "backoffLimit: 1")
        .replace("name: pi}", "name: flaky}");
    let f = c.write("job.yaml", &manifest);
    c.ok(&["apply", "-f", &f]).await;
    let first = eventually("a pod", || async {
        let p = active_pods(&c, "flaky").await;
        (p.len() == 1).then_some(p)
    })
    .await;
    finish(&c, &first[0], "Failed").await;
    let failed_at = tokio::time::Instant::now();
    eventually("1 failure counted", || async {
        (job_status(&c, "flaky", "{.status.failed}").await == "1").then_some(())
    })
    .await;
    // The replacement waits out the 10 s back-off.
    let second = eventually("a replacement", || async {
        let p = active_pods(&c, "flaky").await;
        (p.len() == 1).then_some(p)
    })
    .await;
    let waited = failed_at.elapsed();
    assert!(
        waited >= Duration::from_secs(8),
        "replaced after {waited:?}"
    );
    finish(&c, &second[0], "Failed").await;
    c.ok(&[
        "wait",
        "--for=condition=failed",
        "job/flaky",
        "--timeout=30s",
    ])
    .await;
    let s = job_status(
        &c,
        "flaky",
        r#"{.status.failed} {.status.conditions[?(@.type=="Failed")].reason} {.status.conditions[?(@.type=="FailureTarget")].reason} {.status.conditions[?(@.type=="Failed")].message}"#,
    )
    .await;
    assert_eq!(
        s,
        "2 BackoffLimitExceeded BackoffLimitExceeded Job has reached the specified backoff limit"
    );
    assert!(
        job_status(&c, "flaky", "{.status.completionTime}")
            .await
            .is_empty()
    );
    // No third pod.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(job_pods(&c, "flaky").await.len(), 2);
    let events = c
        .ok(&[
            "get",
            "events",
            "--field-selector",
            "involvedObject.name=flaky",
        ])
        .await;
    assert!(events.contains("BackoffLimitExceeded"), "{events}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn work_queue_job_is_done_when_one_pod_succeeded_and_all_ended() {
    let c = cluster().await;
    let manifest = FIXED
        .replace("completions: 4\n  parallelism: 2", "parallelism: 3")
        .replace("name: pi}", "name: queue}");
    let f = c.write("job.yaml", &manifest);
    c.ok(&["apply", "-f", &f]).await;
    assert_eq!(
        jsonpath(&c, &["get", "job", "queue"], "{.spec.completions}").await,
        ""
    );
    let pods = eventually("3 pods", || async {
        let p = active_pods(&c, "queue").await;
        (p.len() == 3).then_some(p)
    })
    .await;
    finish(&c, &pods[0], "Succeeded").await;
    eventually("1 succeeded", || async {
        (job_status(&c, "queue", "{.status.succeeded}/{.status.active}").await == "1/2")
            .then_some(())
    })
    .await;
    // After a success nothing new starts, and the job waits for the others.
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert_eq!(job_pods(&c, "queue").await.len(), 3);
    assert_eq!(
        job_status(&c, "queue", "{.status.completionTime}").await,
        ""
    );
    finish(&c, &pods[1], "Succeeded").await;
    finish(&c, &pods[2], "Failed").await;
    c.ok(&[
        "wait",
        "--for=condition=complete",
        "job/queue",
        "--timeout=30s",
    ])
    .await;
    assert_eq!(
        job_status(&c, "queue", "{.status.succeeded}/{.status.failed}").await,
        "2/1"
    );
    assert_eq!(job_pods(&c, "queue").await.len(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn indexed_job_reports_completed_indexes() {
    let c = cluster().await;
    let manifest = FIXED
        .replace(
            "completions: 4\n  parallelism: 2",
            "completions: 5\n  parallelism: 3\n  completionMode: Indexed",
        )
        .replace("name: pi}", "name: idx}");
    let f = c.write("job.yaml", &manifest);
    c.ok(&["apply", "-f", &f]).await;
    let pods = eventually("3 pods", || async {
        let p = active_pods(&c, "idx").await;
        (p.len() == 3).then_some(p)
    })
    .await;
    let mut indexes: Vec<String> = pods.iter().map(index).collect();
    indexes.sort();
    assert_eq!(indexes, ["0", "1", "2"]);
    for p in &pods {
        let ix = index(p);
        let name = p.metadata.name.as_deref().unwrap();
        assert!(name.starts_with(&format!("idx-{ix}-")), "{name}");
        assert_eq!(
            p.metadata
                .labels
                .as_ref()
                .unwrap()
                .get("batch.kubernetes.io/job-completion-index"),
            Some(&ix)
        );
        let spec = p.spec.as_ref().unwrap();
        assert_eq!(spec.hostname.as_deref(), Some(format!("idx-{ix}").as_str()));
        let env = spec.containers[0].env.as_ref().unwrap();
        let var = env
            .iter()
            .find(|e| e.name == "JOB_COMPLETION_INDEX")
            .unwrap();
        assert_eq!(
            var.value_from
                .as_ref()
                .unwrap()
                .field_ref
                .as_ref()
                .unwrap()
                .field_path,
            "metadata.labels['batch.kubernetes.io/job-completion-index']"
        );
    }
    let by_index = |pods: &[Pod], ix: &str| pods.iter().find(|p| index(p) == ix).cloned().unwrap();
    finish(&c, &by_index(&pods, "0"), "Succeeded").await;
    finish(&c, &by_index(&pods, "2"), "Succeeded").await;
    let more = eventually("indexes 3 and 4 started", || async {
        let p = active_pods(&c, "idx").await;
        let mut ix: Vec<String> = p.iter().map(index).collect();
        ix.sort();
        (ix == ["1", "3", "4"]).then_some(p)
    })
    .await;
    eventually("completedIndexes 0,2", || async {
        (job_status(&c, "idx", "{.status.completedIndexes}").await == "0,2").then_some(())
    })
    .await;
    finish(&c, &by_index(&more, "1"), "Succeeded").await;
    finish(&c, &by_index(&more, "4"), "Succeeded").await;
    eventually("completedIndexes 0-2,4", || async {
        (job_status(&c, "idx", "{.status.completedIndexes}/{.status.succeeded}").await == "0-2,4/4")
            .then_some(())
    })
    .await;
    finish(&c, &by_index(&more, "3"), "Succeeded").await;
    c.ok(&[
        "wait",
        "--for=condition=complete",
        "job/idx",
        "--timeout=30s",
    ])
    .await;
    assert_eq!(
        job_status(&c, "idx", "{.status.completedIndexes}/{.status.succeeded}").await,
        "0-4/5"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn suspend_deletes_active_pods_and_resume_restarts_them() {
    let c = cluster().await;
    let manifest = FIXED
        .replace(
            "completions: 4\n  parallelism: 2",
            "completions: 2\n  parallelism: 2\n  suspend: true",
        )
        .replace("name: pi}", "name: later}");
    let f = c.write("job.yaml", &manifest);
    c.ok(&["apply", "-f", &f]).await;
    // Created suspended: no pods, no start time.
    eventually("Suspended", || async {
        (job_status(
            &c,
            "later",
            r#"{.status.conditions[?(@.type=="Suspended")].status}:{.status.conditions[?(@.type=="Suspended")].reason}"#,
        )
        .await
            == "True:JobSuspended")
            .then_some(())
    })
    .await;
    assert!(job_pods(&c, "later").await.is_empty());
    assert_eq!(job_status(&c, "later", "{.status.startTime}").await, "");

    c.ok(&[
        "patch",
        "job",
        "later",
        "--type=merge",
        "-p",
        r#"{"spec":{"suspend":false}}"#,
    ])
    .await;
    eventually("2 pods after resume", || async {
        (active_pods(&c, "later").await.len() == 2).then_some(())
    })
    .await;
    let s = job_status(
        &c,
        "later",
        r#"{.status.conditions[?(@.type=="Suspended")].status}:{.status.conditions[?(@.type=="Suspended")].reason}"#,
    )
    .await;
    assert_eq!(s, "False:JobResumed");
    assert!(
        !job_status(&c, "later", "{.status.startTime}")
            .await
            .is_empty()
    );

    // Suspending again deletes the running pods, which do not count as failures.
    c.ok(&[
        "patch",
        "job",
        "later",
        "--type=merge",
        "-p",
        r#"{"spec":{"suspend":true}}"#,
    ])
    .await;
    eventually("pods deleted", || async {
        job_pods(&c, "later").await.is_empty().then_some(())
    })
    .await;
    eventually("suspended status", || async {
        (job_status(
            &c,
            "later",
            r#"{.status.active}/{.status.failed}/{.status.conditions[?(@.type=="Suspended")].status}"#,
        )
        .await
            == "//True")
            .then_some(())
    })
    .await;
    let events = c
        .ok(&[
            "get",
            "events",
            "--field-selector",
            "involvedObject.name=later",
        ])
        .await;
    assert!(
        events.contains("Suspended")
            && events.contains("Resumed")
            && events.contains("SuccessfulDelete"),
        "{events}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn active_deadline_fails_the_job_and_removes_its_pods() {
    let c = cluster().await;
    let manifest = FIXED
        .replace(
            "completions: 4\n  parallelism: 2",
            "activeDeadlineSeconds: 2",
        )
        .replace("name: pi}", "name: slow}");
    let f = c.write("job.yaml", &manifest);
    c.ok(&["apply", "-f", &f]).await;
    eventually("a pod", || async {
        (active_pods(&c, "slow").await.len() == 1).then_some(())
    })
    .await;
    c.ok(&[
        "wait",
        "--for=condition=failed",
        "job/slow",
        "--timeout=30s",
    ])
    .await;
    let s = job_status(
        &c,
        "slow",
        r#"{.status.conditions[?(@.type=="Failed")].reason}/{.status.conditions[?(@.type=="Failed")].message}/{.status.failed}/{.status.active}"#,
    )
    .await;
    assert_eq!(
        s,
        "DeadlineExceeded/Job was active longer than specified deadline/1/"
    );
    eventually("pod deleted", || async {
        job_pods(&c, "slow").await.is_empty().then_some(())
    })
    .await;
    let events = c
        .ok(&[
            "get",
            "events",
            "--field-selector",
            "involvedObject.name=slow",
        ])
        .await;
    assert!(events.contains("DeadlineExceeded"), "{events}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn finished_job_is_deleted_after_its_ttl() {
    let c = cluster().await;
    let manifest = FIXED
        .replace(
            "completions: 4\n  parallelism: 2",
            "ttlSecondsAfterFinished: 4",
        )
        .replace("name: pi}", "name: brief}");
    let f = c.write("job.yaml", &manifest);
    c.ok(&["apply", "-f", &f]).await;
    let pods = eventually("a pod", || async {
        let p = active_pods(&c, "brief").await;
        (p.len() == 1).then_some(p)
    })
    .await;
    finish(&c, &pods[0], "Succeeded").await;
    c.ok(&[
        "wait",
        "--for=condition=complete",
        "job/brief",
        "--timeout=30s",
    ])
    .await;
    // Kept for its TTL...
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(c.kubectl(&["get", "job", "brief"]).await.status.success());
    // ...then deleted with its pods.
    eventually("job and pods deleted", || async {
        let gone = !c.kubectl(&["get", "job", "brief"]).await.status.success();
        (gone && job_pods(&c, "brief").await.is_empty()).then_some(())
    })
    .await;
}

const CRON: &str = "
apiVersion: batch/v1
kind: CronJob
metadata: {name: hello}
spec:
  schedule: '* * * * *'
  suspend: true
  concurrencyPolicy: Forbid
  successfulJobsHistoryLimit: 0
  jobTemplate:
    metadata:
      labels: {app: hello}
    spec:
      template:
        spec:
          restartPolicy: OnFailure
          containers: [{name: hello, image: busybox, command: [date]}]
";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cronjob_creates_a_job_for_the_latest_missed_minute_and_tracks_it() {
    let c = cluster().await;
    let f = c.write("cron.yaml", CRON);
    c.ok(&["apply", "-f", &f]).await;
    // Pretend the last run was three minutes ago, so a run is due now (rather than waiting
    // for the next minute).
    let cronjobs: Api<CronJob> = Api::namespaced(c.client().await, "default");
    let now = Timestamp::now().as_second();
    let three_ago = Timestamp::from_second(now - now % 60 - 180).unwrap();
    cronjobs
        .patch_status(
            "hello",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"lastScheduleTime": three_ago.to_string()}})),
        )
        .await
        .unwrap();
    // Suspended: nothing runs.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let jobs: Api<Job> = Api::namespaced(c.client().await, "default");
    assert!(
        jobs.list(&ListParams::default())
            .await
            .unwrap()
            .items
            .is_empty()
    );

    c.ok(&[
        "patch",
        "cronjob",
        "hello",
        "--type=merge",
        "-p",
        r#"{"spec":{"suspend":false}}"#,
    ])
    .await;
    let job = eventually("a job", || async {
        jobs.list(&ListParams::default())
            .await
            .unwrap()
            .items
            .into_iter()
            .next()
    })
    .await;
    let name = job.metadata.name.clone().unwrap();
    let minutes: i64 = name.strip_prefix("hello-").unwrap().parse().unwrap();
    // The latest scheduled minute at the time, not one of the missed ones before it.
    assert!(minutes * 60 > three_ago.as_second() + 120, "{name}");
    let scheduled = Timestamp::from_second(minutes * 60).unwrap();
    let annotations = job.metadata.annotations.clone().unwrap();
    assert_eq!(
        annotations.get("batch.kubernetes.io/cronjob-scheduled-timestamp"),
        Some(&scheduled.to_string())
    );
    assert_eq!(
        job.metadata
            .labels
            .as_ref()
            .unwrap()
            .get("app")
            .map(String::as_str),
        Some("hello")
    );
    let owner = &job.metadata.owner_references.as_ref().unwrap()[0];
    assert_eq!(
        (owner.kind.as_str(), owner.name.as_str(), owner.controller),
        ("CronJob", "hello", Some(true))
    );
    eventually("status.active", || async {
        let s = jsonpath(
            &c,
            &["get", "cronjob", "hello"],
            "{.status.active[0].name}/{.status.active[0].kind}/{.status.lastScheduleTime}",
        )
        .await;
        (s == format!("{name}/Job/{scheduled}")).then_some(())
    })
    .await;

    // The job's pod succeeds: the job completes, leaves the active list, and (history limit
    // 0) is deleted; lastSuccessfulTime records it.
    let pods = eventually("the job's pod", || async {
        let p = active_pods(&c, &name).await;
        (p.len() == 1).then_some(p)
    })
    .await;
    finish(&c, &pods[0], "Succeeded").await;
    eventually("job done and cleaned up", || async {
        let s = jsonpath(
            &c,
            &["get", "cronjob", "hello"],
            "{.status.active}/{.status.lastSuccessfulTime}",
        )
        .await;
        let gone = !c.kubectl(&["get", "job", &name]).await.status.success();
        (gone && s.starts_with('/') && s.len() > 1).then_some(())
    })
    .await;
    let events = c
        .ok(&[
            "get",
            "events",
            "--field-selector",
            "involvedObject.name=hello",
        ])
        .await;
    // (The history limit deletes the finished job before it is seen in the active list, so
    // there is no SawCompletedJob event, as upstream.)
    assert!(
        events.contains("SuccessfulCreate") && events.contains("SuccessfulDelete"),
        "{events}"
    );
    // That minute is not run again.
    let jobs_now = jobs.list(&ListParams::default()).await.unwrap().items;
    assert!(
        jobs_now
            .iter()
            .all(|j| j.metadata.name.as_deref() != Some(&name)),
        "{jobs_now:?}"
    );
}

/// Fails a pod as its kubelet would: container `container` terminated with `exit_code`,
/// plus any extra pod conditions (e.g. DisruptionTarget).
async fn fail_with(c: &Cluster, pod: &Pod, container: &str, exit_code: i32, extra: &[&str]) {
    let pods: Api<Pod> = Api::namespaced(c.client().await, "default");
    let now = Timestamp::now().to_string();
    let mut conditions =
        vec![json!({"type": "Ready", "status": "False", "lastTransitionTime": now})];
    for t in extra {
        conditions.push(json!({"type": t, "status": "True", "lastTransitionTime": now}));
    }
    let status = json!({"status": {"phase": "Failed", "conditions": conditions,
        "containerStatuses": [{"name": container, "image": "busybox", "imageID": "", "ready": false,
            "restartCount": 0, "state": {"terminated": {"exitCode": exit_code, "reason": "Error",
            "startedAt": now, "finishedAt": now}}}]}});
    pods.patch_status(
        pod.metadata.name.as_deref().unwrap(),
        &PatchParams::default(),
        &Patch::Merge(status),
    )
    .await
    .unwrap();
}

/// The active pod of an index.
async fn pod_of_index(c: &Cluster, job: &str, ix: &str) -> Pod {
    eventually("the index's active pod", || async {
        active_pods(c, job)
            .await
            .into_iter()
            .find(|p| index(p) == ix)
    })
    .await
}

const POLICY: &str = "
apiVersion: batch/v1
kind: Job
metadata: {name: policy}
spec:
  completions: 2
  parallelism: 2
  backoffLimit: 0
  podFailurePolicy:
    rules:
    - action: FailJob
      onExitCodes: {containerName: main, operator: In, values: [42]}
    - action: Ignore
      onPodConditions: [{type: DisruptionTarget}]
  template:
    spec:
      restartPolicy: Never
      containers: [{name: main, image: busybox}]
";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pod_failure_policy_ignores_disruptions_and_fails_the_job_on_an_exit_code() {
    let c = cluster().await;
    // The API server checks the policy as Kubernetes does.
    let bad = c.write(
        "bad.yaml",
        &POLICY
            .replace("restartPolicy: Never", "restartPolicy: OnFailure")
            .replace("values: [42]", "values: [42, 7]"),
    );
    let err = c.fails(&["apply", "-f", &bad]).await;
    assert!(
        err.contains(r#"spec.template.spec.restartPolicy: Invalid value: "OnFailure": only "Never" is supported when podFailurePolicy is specified"#)
            && err.contains("spec.podFailurePolicy.rules[0].onExitCodes.values: Invalid value: []int32{42, 7}: must be ordered"),
        "{err}"
    );
    let f = c.write("job.yaml", POLICY);
    c.ok(&["apply", "-f", &f]).await;
    let out = job_status(
        &c,
        "policy",
        "{.spec.podReplacementPolicy} {.spec.podFailurePolicy.rules[1].onPodConditions[0].status}",
    )
    .await;
    assert_eq!(out, "Failed True");
    let pods = eventually("2 pods", || async {
        let p = active_pods(&c, "policy").await;
        (p.len() == 2).then_some(p)
    })
    .await;
    // A disruption is ignored: not counted against backoffLimit 0, and replaced.
    fail_with(&c, &pods[0], "main", 137, &["DisruptionTarget"]).await;
    eventually("the disrupted pod released", || async {
        let p = job_pods(&c, "policy").await;
        let released = p
            .iter()
            .find(|p| p.metadata.name == pods[0].metadata.name)
            .is_some_and(|p| {
                !p.metadata
                    .finalizers
                    .iter()
                    .flatten()
                    .any(|f| f == "batch.kubernetes.io/job-tracking")
            });
        released.then_some(())
    })
    .await;
    assert_eq!(
        job_status(&c, "policy", "{.status.failed} {.status.conditions}").await,
        " "
    );
    // Exit code 42 of container main fails the whole job at once.
    fail_with(&c, &pods[1], "main", 42, &[]).await;
    c.ok(&[
        "wait",
        "--for=condition=failed",
        "job/policy",
        "--timeout=30s",
    ])
    .await;
    let s = job_status(
        &c,
        "policy",
        r#"{.status.conditions[*].type}|{.status.conditions[?(@.type=="Failed")].reason}|{.status.conditions[?(@.type=="Failed")].message}|{.status.failed}"#,
    )
    .await;
    let pod = pods[1].metadata.name.as_deref().unwrap();
    let mut parts = s.split('|');
    assert_eq!(parts.next(), Some("FailureTarget Failed"), "{s}");
    assert_eq!(parts.next(), Some("PodFailurePolicy"), "{s}");
    assert_eq!(
        parts.next(),
        Some(
            format!(
                "Container main for pod default/{pod} failed with exit code 42 matching FailJob rule at index 0"
            )
            .as_str()
        ),
        "{s}"
    );
    // The pod that failed, and the replacement that was still running; not the disruption.
    let failed: i32 = parts.next().unwrap().parse().unwrap();
    assert!((1..=2).contains(&failed), "{s}");
    assert!(active_pods(&c, "policy").await.is_empty());
}

const PER_INDEX: &str = "
apiVersion: batch/v1
kind: Job
metadata: {name: per-index}
spec:
  completionMode: Indexed
  completions: 3
  parallelism: 3
  backoffLimitPerIndex: 1
  maxFailedIndexes: 1
  podFailurePolicy:
    rules:
    - action: FailIndex
      onExitCodes: {operator: In, values: [3]}
  template:
    spec:
      restartPolicy: Never
      containers: [{name: main, image: busybox}]
";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backoff_limit_per_index_fails_indexes_not_the_job() {
    let c = cluster().await;
    let bad = c.write(
        "bad.yaml",
        &PER_INDEX.replace("completionMode: Indexed", "completionMode: NonIndexed"),
    );
    let err = c.fails(&["apply", "-f", &bad]).await;
    assert!(
        err.contains(
            "spec.backoffLimitPerIndex: Invalid value: 1: requires indexed completion mode"
        ),
        "{err}"
    );
    let f = c.write("job.yaml", PER_INDEX);
    c.ok(&["apply", "-f", &f]).await;
    assert_eq!(
        job_status(&c, "per-index", "{.spec.backoffLimit}").await,
        "2147483647"
    );
    let first = pod_of_index(&c, "per-index", "1").await;
    assert_eq!(
        first
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get("batch.kubernetes.io/job-index-failure-count"))
            .map(String::as_str),
        Some("0")
    );
    // Exit code 3 fails index 0 at once (FailIndex); it is not retried.
    let zero = pod_of_index(&c, "per-index", "0").await;
    fail_with(&c, &zero, "main", 3, &[]).await;
    eventually("failedIndexes 0", || async {
        (job_status(&c, "per-index", "{.status.failedIndexes}").await == "0").then_some(())
    })
    .await;
    // Index 1 may fail once: it gets a second pod (after the 10 s back-off) that knows.
    fail_with(&c, &first, "main", 1, &[]).await;
    let second = apiserver::testing::eventually_within(30, "a second pod for index 1", || async {
        active_pods(&c, "per-index")
            .await
            .into_iter()
            .find(|p| index(p) == "1" && p.metadata.name != first.metadata.name)
    })
    .await;
    assert_eq!(
        second
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get("batch.kubernetes.io/job-index-failure-count"))
            .map(String::as_str),
        Some("1")
    );
    assert!(
        !active_pods(&c, "per-index")
            .await
            .iter()
            .any(|p| index(p) == "0")
    );
    let status = job_status(
        &c,
        "per-index",
        "{.status.failedIndexes} {.status.conditions}",
    )
    .await;
    assert_eq!(status, "0 ");
    finish(&c, &second, "Succeeded").await;
    let two = pod_of_index(&c, "per-index", "2").await;
    finish(&c, &two, "Succeeded").await;
    // Every index is done, one of them failed: the job fails.
    c.ok(&[
        "wait",
        "--for=condition=failed",
        "job/per-index",
        "--timeout=30s",
    ])
    .await;
    let s = job_status(
        &c,
        "per-index",
        r#"{.status.conditions[*].type}|{.status.conditions[?(@.type=="Failed")].reason}|{.status.conditions[?(@.type=="Failed")].message}|{.status.failedIndexes}|{.status.completedIndexes}|{.status.failed}|{.status.succeeded}"#,
    )
    .await;
    assert_eq!(
        s,
        "FailureTarget Failed|FailedIndexes|Job has failed indexes|0|1,2|2|2"
    );

    // More failed indexes than maxFailedIndexes allows fail the job before the rest run.
    let strict = PER_INDEX
        .replace("name: per-index", "name: strict")
        .replace("backoffLimitPerIndex: 1", "backoffLimitPerIndex: 0");
    let f = c.write("strict.yaml", &strict);
    c.ok(&["apply", "-f", &f]).await;
    for ix in ["0", "1"] {
        let p = pod_of_index(&c, "strict", ix).await;
        fail_with(&c, &p, "main", 1, &[]).await;
    }
    c.ok(&[
        "wait",
        "--for=condition=failed",
        "job/strict",
        "--timeout=30s",
    ])
    .await;
    let s = job_status(
        &c,
        "strict",
        r#"{.status.conditions[?(@.type=="Failed")].reason}|{.status.conditions[?(@.type=="Failed")].message}|{.status.failedIndexes}"#,
    )
    .await;
    assert_eq!(
        s,
        "MaxFailedIndexesExceeded|Job has exceeded the specified maximal number of failed indexes|0,1"
    );
    assert!(active_pods(&c, "strict").await.is_empty());
}

const SUCCESS_POLICY: &str = "
apiVersion: batch/v1
kind: Job
metadata: {name: leader}
spec:
  completionMode: Indexed
  completions: 3
  parallelism: 3
  successPolicy:
    rules:
    - succeededIndexes: '0'
  template:
    spec:
      restartPolicy: Never
      containers: [{name: main, image: busybox}]
";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn success_policy_completes_the_job_when_its_indexes_succeed() {
    let c = cluster().await;
    let bad = c.write(
        "bad.yaml",
        &SUCCESS_POLICY.replace("succeededIndexes: '0'", "succeededIndexes: '0-7'"),
    );
    let err = c.fails(&["apply", "-f", &bad]).await;
    assert!(
        err.contains(r#"spec.successPolicy.rules[0].succeededIndexes: Invalid value: "0-7": error parsing succeededIndexes: too large index: "7""#),
        "{err}"
    );
    let f = c.write("job.yaml", SUCCESS_POLICY);
    c.ok(&["apply", "-f", &f]).await;
    eventually("3 pods", || async {
        (active_pods(&c, "leader").await.len() == 3).then_some(())
    })
    .await;
    // Another index succeeding is not enough.
    let one = pod_of_index(&c, "leader", "1").await;
    finish(&c, &one, "Succeeded").await;
    eventually("index 1 counted", || async {
        (job_status(&c, "leader", "{.status.completedIndexes}").await == "1").then_some(())
    })
    .await;
    assert_eq!(job_status(&c, "leader", "{.status.conditions}").await, "");
    let zero = pod_of_index(&c, "leader", "0").await;
    finish(&c, &zero, "Succeeded").await;
    c.ok(&[
        "wait",
        "--for=condition=complete",
        "job/leader",
        "--timeout=30s",
    ])
    .await;
    let s = job_status(
        &c,
        "leader",
        r#"{.status.conditions[*].type}|{.status.conditions[?(@.type=="Complete")].reason}|{.status.conditions[?(@.type=="Complete")].message}|{.status.completedIndexes}|{.status.succeeded}|{.status.failed}"#,
    )
    .await;
    // The pod still running was removed, not counted as failed.
    assert_eq!(
        s,
        "SuccessCriteriaMet Complete|SuccessPolicy|Matched rules at index 0|0,1|2|"
    );
    assert!(active_pods(&c, "leader").await.is_empty());
}
