//! Pod tracking with the `batch.kubernetes.io/job-tracking` finalizer: finished pods are
//! counted through `status.uncountedTerminatedPods` before their finalizer is removed, so none
//! is lost or counted twice.

use super::*;

/// Pods whose tracking finalizer the controller removed and has not yet seen gone, per job:
/// until it has, their outcome is already in the status and must not be counted again.
#[derive(Default)]
pub(super) struct FinalizerExpectations(Mutex<HashMap<String, HashSet<String>>>);

impl FinalizerExpectations {
    pub(super) fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, HashSet<String>>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
    pub(super) fn expect(&self, job: &str, uids: impl IntoIterator<Item = String>) {
        self.lock().entry(job.to_string()).or_default().extend(uids);
    }
    pub(super) fn observed(&self, job: &str, uid: &str) {
        let mut m = self.lock();
        if let Some(s) = m.get_mut(job) {
            s.remove(uid);
            if s.is_empty() {
                m.remove(job);
            }
        }
    }
    pub(super) fn expected(&self, job: &str) -> HashSet<String> {
        self.lock().get(job).cloned().unwrap_or_default()
    }
    pub(super) fn forget(&self, job: &str) {
        self.lock().remove(job);
    }
}

/// Moves uids whose finalizer is gone from `uncountedTerminatedPods` into the counters.
pub(super) fn clean_uncounted(status: &mut JobStatus, with_finalizer: &HashSet<String>) -> bool {
    let u = status.uncounted_terminated_pods.get_or_insert_default();
    let mut changed = false;
    let mut counted = [0i32; 2];
    for (i, list) in [&mut u.succeeded, &mut u.failed].into_iter().enumerate() {
        let before = list.as_ref().map_or(0, Vec::len);
        if let Some(l) = list.as_mut() {
            l.retain(|uid| with_finalizer.contains(uid));
        }
        let after = list.as_ref().map_or(0, Vec::len);
        if after != before {
            changed = true;
            counted[i] = (before - after) as i32;
        }
        if list.as_ref().is_some_and(Vec::is_empty) {
            *list = None;
        }
    }
    if counted[0] > 0 {
        status.succeeded = Some(status.succeeded.unwrap_or(0) + counted[0]);
    }
    if counted[1] > 0 {
        status.failed = Some(status.failed.unwrap_or(0) + counted[1]);
    }
    changed
}

pub(super) fn uncounted_is_empty(status: &JobStatus) -> bool {
    status.uncounted_terminated_pods.as_ref().is_none_or(|u| {
        u.succeeded.as_ref().is_none_or(Vec::is_empty)
            && u.failed.as_ref().is_none_or(Vec::is_empty)
    })
}

pub(super) async fn remove_finalizer(api: &Api<Pod>, pod: &Pod) -> Result<Pod, kube::Error> {
    let patch = json!({"metadata": {
        "$deleteFromPrimitiveList/finalizers": [TRACKING_FINALIZER],
    }});
    api.patch(
        pod.metadata.name.as_deref().unwrap_or_default(),
        &PatchParams::default(),
        &Patch::Strategic(patch),
    )
    .await
}

impl JobController {
    /// Counts finished pods in the status and lets them go, in the order that never loses or
    /// double-counts one: uids into `uncountedTerminatedPods`, finalizers off, uids into the
    /// counters; then, once nothing is uncounted or terminating, the final condition.
    pub(super) async fn track_and_remove_finalizers(
        &self,
        key: &str,
        mut job: Job,
        ctx: &Ctx,
        mut needs_flush: bool,
        now: Timestamp,
    ) -> anyhow::Result<()> {
        let indexed = is_indexed(&job);
        let completions_n = completions(&job).unwrap_or(0).max(0) as usize;
        let mut pods_sorted = ctx.pods.clone();
        if indexed {
            pods_sorted.sort_by_key(|p| completion_index(p));
        }
        let mut with_finalizer: HashSet<String> = pods_sorted
            .iter()
            .filter(|p| has_finalizer(p) && !ctx.expected_rm.contains(&uid(p)))
            .map(|p| uid(p))
            .collect();
        let deleting = job.metadata.deletion_timestamp.is_some();
        let only_failed = only_replace_failed(&job);
        let job_for_policy = job.clone();
        let mut finished_cond = ctx.finished.clone();
        let failing = finished_cond
            .as_ref()
            .is_some_and(|c| c.type_ != SUCCESS_CRITERIA_MET);
        let status = job.status.get_or_insert_default();
        if clean_uncounted(status, &with_finalizer) {
            needs_flush = true;
        }
        let uncounted = status.uncounted_terminated_pods.get_or_insert_default();
        let mut to_remove: Vec<Arc<Pod>> = Vec::new();
        let mut new_indexes: Vec<usize> = Vec::new();
        let mut reached_max = false;
        for pod in &pods_sorted {
            let u = uid(pod);
            if !has_finalizer(pod) || ctx.expected_rm.contains(&u) {
                continue;
            }
            // Pods a successful job deletes are not failures, whether or not this sync
            // already sees them deleted (it does when an earlier sync deleted them but could
            // not finish: expectations not yet met).
            let failed = if finished_cond.is_some() && !failing {
                phase(pod) == Some("Failed")
            } else {
                pod_failed(pod, only_failed)
            };
            let succeeded = phase(pod) == Some("Succeeded");
            // Removable once its outcome is known, or when the whole job is going away; an
            // index's last failed pod stays until its replacement exists.
            if !(deleting || finished_cond.is_some() || succeeded || failed) {
                continue;
            }
            if !(deleting || finished_cond.is_some() || succeeded)
                && completion_index(pod)
                    .and_then(|ix| ctx.delayed.get(&ix))
                    .is_some_and(|d| uid(d) == u)
            {
                continue;
            }
            to_remove.push(pod.clone());
            let ix = completion_index(pod);
            if succeeded && !ctx.uncounted_failed.contains(&u) {
                if indexed {
                    if let Some(ix) = ix.filter(|ix| *ix < completions_n)
                        && !ctx.prev_succeeded_indexes.has(ix)
                    {
                        new_indexes.push(ix);
                        needs_flush = true;
                    }
                } else if !ctx.uncounted_succeeded.contains(&u) {
                    uncounted.succeeded.get_or_insert_default().push(u);
                    needs_flush = true;
                }
            } else if (failed || failing)
                && !ctx.uncounted_failed.contains(&u)
                && (!indexed || ix.is_some_and(|ix| ix < completions_n))
            {
                // A finishing job's unfinished pods count as failed; failures a pod failure
                // policy ignores count nowhere.
                if match_pod_failure_policy(&job_for_policy, pod).1 {
                    uncounted.failed.get_or_insert_default().push(u);
                    needs_flush = true;
                }
            }
            let held = new_indexes.len()
                + uncounted.succeeded.as_ref().map_or(0, Vec::len)
                + uncounted.failed.as_ref().map_or(0, Vec::len);
            if held >= MAX_UNCOUNTED {
                // The rest next sync: keeps the status small and this sync short.
                reached_max = true;
                break;
            }
        }
        if indexed {
            new_indexes.sort_unstable();
            let all = ctx.succeeded_indexes.with(&new_indexes);
            let text = all.to_string();
            if status.completed_indexes.as_deref().unwrap_or_default() != text {
                needs_flush = true;
            }
            status.succeeded = Some(all.total() as i32).filter(|n| *n > 0);
            status.completed_indexes = Some(text);
            if let Some(failed) = &ctx.failed_indexes {
                let text = failed.to_string();
                if status.failed_indexes.as_deref() != Some(text.as_str()) {
                    status.failed_indexes = Some(text);
                    needs_flush = true;
                }
            }
        }
        let conds = status.conditions.get_or_insert_default();
        if let Some(c) = finished_cond.as_ref().filter(|c| c.type_ == FAILURE_TARGET) {
            // The interim condition records the reason before pods can disappear.
            conds.push(c.clone());
            needs_flush = true;
            finished_cond = Some(new_condition(
                FAILED,
                "True",
                c.reason.as_deref().unwrap_or_default(),
                c.message.as_deref().unwrap_or_default(),
                now,
            ));
        }
        if let Some(c) = finished_cond
            .as_ref()
            .filter(|c| c.type_ == SUCCESS_CRITERIA_MET)
            .cloned()
        {
            if !conds
                .iter()
                .any(|x| x.type_ == SUCCESS_CRITERIA_MET && x.status == "True")
            {
                conds.push(c.clone());
                needs_flush = true;
            }
            finished_cond = Some(new_condition(
                COMPLETE,
                "True",
                c.reason.as_deref().unwrap_or_default(),
                c.message.as_deref().unwrap_or_default(),
                now,
            ));
        }
        if conds.is_empty() {
            status.conditions = None;
        }

        // 1. Flush the uids (and interim conditions) before touching the pods.
        if needs_flush {
            job = self.update_status(&job).await?;
            self.set_backoff(key, Some(ctx.backoff));
            needs_flush = false;
        }
        // 2. Let the pods go.
        let mut rm_err = None;
        if !to_remove.is_empty() {
            self.finalizers
                .expect(key, to_remove.iter().map(|p| uid(p)));
            let ns = job.metadata.namespace.as_deref().unwrap_or_default();
            let api: Api<Pod> = Api::namespaced(self.client.clone(), ns);
            let results =
                futures::future::join_all(to_remove.iter().map(|p| remove_finalizer(&api, p)))
                    .await;
            for (pod, r) in to_remove.iter().zip(results) {
                match r {
                    Ok(_) => {
                        with_finalizer.remove(&uid(pod));
                    }
                    Err(kube::Error::Api(e)) if e.code == 404 => {
                        self.finalizers.observed(key, &uid(pod));
                        with_finalizer.remove(&uid(pod));
                    }
                    Err(e) => {
                        self.finalizers.observed(key, &uid(pod));
                        rm_err.get_or_insert(
                            anyhow::Error::new(e).context("removing the job tracking finalizer"),
                        );
                    }
                }
            }
        }
        // 3. Count what was let go.
        let status = job.status.get_or_insert_default();
        if clean_uncounted(status, &with_finalizer) {
            needs_flush = true;
        }
        if let Some(e) = rm_err {
            if needs_flush {
                self.update_status(&job).await?;
            }
            return Err(e);
        }
        // 4. Finished, once nothing is uncounted or still terminating.
        let mut finished_now = false;
        if !reached_max
            && let Some(c) = &finished_cond
            && uncounted_is_empty(status)
            && ctx.terminating == 0
        {
            let conds = status.conditions.get_or_insert_default();
            ensure_condition(
                conds,
                &c.type_,
                &c.status,
                c.reason.as_deref().unwrap_or_default(),
                c.message.as_deref().unwrap_or_default(),
                now,
            );
            if c.type_ == COMPLETE {
                status.completion_time = conds
                    .iter()
                    .find(|x| x.type_ == COMPLETE)
                    .and_then(|x| x.last_transition_time.clone());
            }
            finished_now = true;
            needs_flush = true;
        }
        if needs_flush {
            let job = self.update_status(&job).await?;
            if finished_now && let Some(c) = &finished_cond {
                self.record_finished(&job, c);
            }
        }
        Ok(())
    }
}
