//! `POST pods/{name}/eviction` (upstream's `EvictionREST`, 1.33): a deletion that respects
//! the pod's PodDisruptionBudget. A pod that is not running (Pending, Succeeded, Failed) or is
//! already being deleted goes at once; otherwise its one budget (more than one: 500) must
//! allow a disruption, which is taken by a conditional update of the budget's status (the
//! disruption controller gives it back if the pod is not gone within two minutes). The pod
//! gets the `DisruptionTarget` condition before it is deleted, as upstream does.

use std::time::Duration;

use k8s_openapi::api::policy::v1::Eviction;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::DeleteOptions as MetaDeleteOptions;
use serde_json::{Value, json};

use crate::error::{ApiError, ApiResult};
use crate::meta;
use crate::registry::{Attributes, DeleteOptions, ListQuery, Operation, Registry, RequestContext};
use crate::resources::{ResourceInfo, by_kind};

/// Upstream's `MaxDisruptedPodSize`: evictions approved but not yet seen by the disruption
/// controller beyond which no more are approved.
const MAX_DISRUPTED_PODS: usize = 2000;

/// Upstream's `EvictionsRetry` (20 steps of 500 ms) for conflicts deleting a pod whose
/// budget need not be asked.
const RETRY_STEPS: usize = 20;
const RETRY_DELAY: Duration = Duration::from_millis(500);

const TOO_MANY: &str = "Cannot evict pod as it would violate the pod's disruption budget.";

/// Evicts pod `name` in `ns` as the Eviction `body` asks; `query_dry_run` is the request's
/// `dryRun` parameter. Returns the Success `Status` (201) or the refusal.
pub async fn create(
    reg: &Registry,
    ctx: RequestContext<'_>,
    ns: &str,
    name: &str,
    body: Value,
    query_dry_run: Option<&str>,
) -> ApiResult<Value> {
    let pods = by_kind("", "Pod")?;
    let eviction = decode(body, ns, name)?;
    let options = propagate_dry_run(eviction.delete_options.clone(), query_dry_run)?;
    let dry_run = is_dry_run(&options);
    // The Eviction's own dryRun, agreeing with the request's, decides.
    let ctx = ctx.with_dry_run(dry_run);
    admit(ctx, pods, ns, name, &eviction).await?;

    // A pod that cannot count against a budget is deleted straight away; a conflict (the pod
    // changed since it was read) is retried unless the client gave a resourceVersion.
    let rv_given = options
        .preconditions
        .as_ref()
        .is_some_and(|p| p.resource_version.is_some());
    let mut pod = Value::Null;
    for step in 0..RETRY_STEPS {
        pod = reg.get(pods, Some(ns), name).await?;
        if !can_ignore_budget(&pod) {
            break;
        }
        let mut opts = options.clone();
        if enforce_resource_version(&pod) && !rv_given {
            // Not racing another process that would make it count again.
            set_resource_version(&mut opts, meta::str_at(&pod, "/metadata/resourceVersion"));
        }
        match add_condition_and_delete(reg, ctx, pods, ns, name, &opts).await {
            Ok(()) => return Ok(success()),
            Err(e) if e.code == 409 && !rv_given && step + 1 < RETRY_STEPS => {
                tokio::time::sleep(RETRY_DELAY).await;
            }
            Err(e) => return Err(e),
        }
    }

    let budget = take_budget(reg, ctx, ns, &pod).await?;
    let mut opts = options.clone();
    if let Budget::Unhealthy(_) = budget {
        // The pod must still be unready when deleted: it was let go for being so.
        set_resource_version(&mut opts, meta::str_at(&pod, "/metadata/resourceVersion"));
    }
    match add_condition_and_delete(reg, ctx, pods, ns, name, &opts).await {
        Ok(()) => Ok(success()),
        Err(e) if e.code == 409 && !rv_given => match budget {
            // It became ready meanwhile: the client should ask again.
            Budget::Unhealthy(pdb) => Err(still_processing(&pdb)),
            _ => Err(e),
        },
        Err(e) => Err(e),
    }
}

/// What the pod's budget said.
enum Budget {
    /// No budget covers the pod.
    None,
    /// A disruption was taken from the named budget.
    Taken,
    /// The pod is unready and the named budget lets unready pods go without taking one.
    Unhealthy(String),
}

/// The typed Eviction, after the checks upstream's create handler makes.
fn decode(body: Value, ns: &str, name: &str) -> ApiResult<Eviction> {
    let api_version = body.get("apiVersion").and_then(Value::as_str).unwrap_or("");
    if !matches!(api_version, "" | "policy/v1" | "policy/v1beta1") {
        return Err(ApiError::bad_request(format!(
            "the API version in the data ({api_version}) does not match the expected API version (policy/v1)"
        )));
    }
    let kind = body.get("kind").and_then(Value::as_str).unwrap_or("");
    if !matches!(kind, "" | "Eviction") {
        return Err(ApiError::bad_request(format!(
            "no kind \"{kind}\" is registered for version \"{api_version}\""
        )));
    }
    // Both versions share one shape; k8s-openapi's type insists on v1's spelling.
    let mut body = body;
    if let Some(o) = body.as_object_mut() {
        o.insert("apiVersion".into(), json!("policy/v1"));
        o.insert("kind".into(), json!("Eviction"));
    }
    let eviction: Eviction = serde_json::from_value(body).map_err(|e| {
        ApiError::bad_request(format!(
            "the object provided is unrecognized or not valid JSON: {e}"
        ))
    })?;
    if eviction
        .metadata
        .namespace
        .as_deref()
        .is_some_and(|n| !n.is_empty() && n != ns)
    {
        return Err(ApiError::bad_request(
            "the namespace of the provided object does not match the namespace sent on the request",
        ));
    }
    if eviction.metadata.name.as_deref().unwrap_or("") != name {
        return Err(ApiError::bad_request(
            "name in URL does not match name in Eviction object",
        ));
    }
    Ok(eviction)
}

/// The Eviction's deleteOptions with the request's dryRun (upstream's `propagateDryRun`).
fn propagate_dry_run(
    options: Option<MetaDeleteOptions>,
    query: Option<&str>,
) -> ApiResult<MetaDeleteOptions> {
    let request: Vec<String> = query.map(|v| vec![v.to_string()]).unwrap_or_default();
    let mut options = options.unwrap_or_default();
    let content = options.dry_run.clone().unwrap_or_default();
    if content.is_empty() {
        options.dry_run = Some(request).filter(|r| !r.is_empty());
    } else if !request.is_empty() && request != content {
        // A plain error upstream: a 500 without a reason.
        return Err(ApiError::new(
            500,
            "",
            format!(
                "Non-matching dry-run options in request and content: [{}] and [{}]",
                request.join(" "),
                content.join(" ")
            ),
        ));
    }
    Ok(options)
}

fn is_dry_run(options: &MetaDeleteOptions) -> bool {
    options.dry_run.as_ref().is_some_and(|d| !d.is_empty())
}

fn set_resource_version(options: &mut MetaDeleteOptions, rv: Option<&str>) {
    options
        .preconditions
        .get_or_insert_with(Default::default)
        .resource_version = rv.map(str::to_string);
}

/// The admission chain on the eviction itself (NamespaceLifecycle refuses one in a
/// terminating namespace, webhooks on `pods/eviction` see it), as upstream's create does.
async fn admit(
    ctx: RequestContext<'_>,
    pods: &ResourceInfo,
    ns: &str,
    name: &str,
    eviction: &Eviction,
) -> ApiResult<()> {
    let mut obj = serde_json::to_value(eviction)
        .map_err(|e| ApiError::internal(format!("encoding the Eviction: {e}")))?;
    obj["apiVersion"] = json!("policy/v1");
    obj["kind"] = json!("Eviction");
    let attrs = Attributes {
        operation: Operation::Create,
        info: pods,
        namespace: ns,
        name,
        subresource: Some("eviction"),
        old: None,
        user: ctx.user,
        dry_run: ctx.dry_run,
    };
    ctx.admission.mutate(&attrs, &mut obj).await?;
    ctx.admission.validate(&attrs, &obj).await
}

/// Upstream's `canIgnorePDB`: a pod that is not running, or is already going, disrupts
/// nothing more by going.
fn can_ignore_budget(pod: &Value) -> bool {
    matches!(
        meta::str_at(pod, "/status/phase"),
        Some("Succeeded" | "Failed" | "Pending")
    ) || pod.pointer("/metadata/deletionTimestamp").is_some()
}

/// Upstream's `shouldEnforceResourceVersion`: only a pod that might yet become ready.
fn enforce_resource_version(pod: &Value) -> bool {
    !matches!(
        meta::str_at(pod, "/status/phase"),
        Some("Succeeded" | "Failed")
    ) && pod.pointer("/metadata/deletionTimestamp").is_none()
}

/// Whether the pod's Ready condition is True (upstream's `IsPodReady`, what "healthy" means).
pub fn is_ready(pod: &Value) -> bool {
    pod.pointer("/status/conditions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .any(|c| c["type"] == "Ready" && c["status"] == "True")
}

/// Finds the pod's budget and, unless the pod may go without one, takes a disruption from it.
async fn take_budget(
    reg: &Registry,
    ctx: RequestContext<'_>,
    ns: &str,
    pod: &Value,
) -> ApiResult<Budget> {
    let pdbs = by_kind("policy", "PodDisruptionBudget")?;
    let list = reg.list(pdbs, Some(ns), &ListQuery::default()).await?;
    let labels = pod
        .pointer("/metadata/labels")
        .cloned()
        .unwrap_or(json!({}));
    let matching: Vec<&Value> = list["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|pdb| selects(pdb.pointer("/spec/selector"), &labels))
        .collect();
    let pdb = match matching.as_slice() {
        [] => return Ok(Budget::None),
        [one] => *one,
        _ => {
            // Upstream returns this as a Failure Status, which its handler answers as an
            // error: code 500 and no reason.
            return Err(ApiError::new(
                500,
                "",
                "This pod has more than one PodDisruptionBudget, which the eviction subresource does not support.",
            ));
        }
    };
    let pdb_name = meta::name(pdb).to_string();
    if !is_ready(pod) {
        let always = meta::str_at(pdb, "/spec/unhealthyPodEvictionPolicy") == Some("AlwaysAllow");
        let current = int_at(pdb, "/status/currentHealthy");
        let desired = int_at(pdb, "/status/desiredHealthy");
        // An unready pod counts for nothing; with the budget met (or AlwaysAllow) it goes
        // without taking a disruption.
        if always || (current >= desired && desired > 0) {
            return Ok(Budget::Unhealthy(pdb_name));
        }
    }
    let pod_name = meta::name(pod).to_string();
    if ctx.dry_run {
        check_and_decrement(pdb, &pod_name, &meta::now_rfc3339())?;
        return Ok(Budget::Taken);
    }
    reg.update_with(ctx, pdbs, Some(ns), &pdb_name, Some("status"), |latest| {
        check_and_decrement(latest, &pod_name, &meta::now_rfc3339())
    })
    .await?;
    Ok(Budget::Taken)
}

/// Whether a budget's selector selects `labels`: a missing selector selects nothing, an
/// empty one everything, an invalid one nothing (as policy/v1's `LabelSelectorAsSelector`).
fn selects(selector: Option<&Value>, labels: &Value) -> bool {
    let Some(selector) = selector.filter(|s| !s.is_null()) else {
        return false;
    };
    let Ok(selector) = serde_json::from_value(selector.clone()) else {
        return false;
    };
    let Ok(labels) = serde_json::from_value(labels.clone()) else {
        return false;
    };
    common::selectors::selects(&selector, &labels)
}

fn int_at(obj: &Value, pointer: &str) -> i64 {
    obj.pointer(pointer).and_then(Value::as_i64).unwrap_or(0)
}

/// Upstream's `checkAndDecrement`: the budget with one disruption taken and the pod listed in
/// `disruptedPods` (at `now`), or why it cannot be.
fn check_and_decrement(pdb: &Value, pod_name: &str, now: &str) -> ApiResult<Value> {
    let name = meta::name(pdb);
    let generation = int_at(pdb, "/metadata/generation");
    if int_at(pdb, "/status/observedGeneration") < generation {
        return Err(still_processing(name));
    }
    let allowed = int_at(pdb, "/status/disruptionsAllowed");
    if allowed < 0 {
        return Err(forbidden(name, "pdb disruptions allowed is negative"));
    }
    let disrupted = pdb
        .pointer("/status/disruptedPods")
        .and_then(Value::as_object)
        .map_or(0, |m| m.len());
    if disrupted > MAX_DISRUPTED_PODS {
        return Err(forbidden(
            name,
            "DisruptedPods map too big - too many evictions not confirmed by PDB controller",
        ));
    }
    if allowed == 0 {
        return Err(too_many_requests(
            0,
            format!(
                "The disruption budget {name} needs {} healthy pods and has {} currently",
                int_at(pdb, "/status/desiredHealthy"),
                int_at(pdb, "/status/currentHealthy")
            ),
        ));
    }
    let mut new = pdb.clone();
    if !new.get("status").is_some_and(Value::is_object) {
        new["status"] = json!({});
    }
    new["status"]["disruptionsAllowed"] = json!(allowed - 1);
    if allowed - 1 == 0 {
        insufficient_pods_condition(&mut new["status"], now);
    }
    if !new["status"]["disruptedPods"].is_object() {
        new["status"]["disruptedPods"] = json!({});
    }
    new["status"]["disruptedPods"][pod_name] = json!(now);
    Ok(new)
}

/// Sets `DisruptionAllowed` False / InsufficientPods (upstream's
/// `UpdateDisruptionAllowedCondition` once no disruption is left, with `SetStatusCondition`'s
/// rule that the transition time moves only when the status does).
fn insufficient_pods_condition(status: &mut Value, now: &str) {
    let observed = status
        .get("observedGeneration")
        .cloned()
        .unwrap_or(json!(0));
    if !status["conditions"].is_array() {
        status["conditions"] = json!([]);
    }
    let Some(conditions) = status["conditions"].as_array_mut() else {
        return;
    };
    let wanted = json!({
        "type": "DisruptionAllowed",
        "status": "False",
        "observedGeneration": observed,
        "lastTransitionTime": now,
        "reason": "InsufficientPods",
        "message": "",
    });
    match conditions
        .iter_mut()
        .find(|c| c["type"] == "DisruptionAllowed")
    {
        Some(c) => {
            let changed = c["status"] != "False";
            c["status"] = json!("False");
            c["reason"] = json!("InsufficientPods");
            c["message"] = json!("");
            c["observedGeneration"] = observed;
            if changed {
                c["lastTransitionTime"] = json!(now);
            }
        }
        None => conditions.push(wanted),
    }
}

/// Upstream's `addConditionAndDeletePod`: the `DisruptionTarget` condition on the latest pod
/// (checked against the preconditions), then the delete with the eviction's options (a
/// resourceVersion precondition moved past the condition's own write).
async fn add_condition_and_delete(
    reg: &Registry,
    ctx: RequestContext<'_>,
    pods: &ResourceInfo,
    ns: &str,
    name: &str,
    options: &MetaDeleteOptions,
) -> ApiResult<()> {
    let mut options = options.clone();
    if !ctx.dry_run {
        let preconditions = options.preconditions.clone().unwrap_or_default();
        let now = meta::now_rfc3339();
        let updated = reg
            .update_with(ctx, pods, Some(ns), name, Some("status"), |latest| {
                check_preconditions(latest, name, &preconditions)?;
                let mut pod = latest.clone();
                set_disruption_target(&mut pod, &now);
                Ok(pod)
            })
            .await?;
        if let Some(p) = options.preconditions.as_mut()
            && p.resource_version.is_some()
        {
            p.resource_version =
                meta::str_at(&updated, "/metadata/resourceVersion").map(str::to_string);
        }
    }
    reg.delete(ctx, pods, Some(ns), name, &registry_options(&options))
        .await?;
    Ok(())
}

/// The preconditions against the latest pod, in upstream's words for this check.
fn check_preconditions(
    pod: &Value,
    name: &str,
    p: &k8s_openapi::apimachinery::pkg::apis::meta::v1::Preconditions,
) -> ApiResult<()> {
    let conflict = |why: String| ApiError {
        details: Some(json!({"name": name, "kind": "Pod"})),
        ..ApiError::new(
            409,
            "Conflict",
            format!("Operation cannot be fulfilled on Pod \"{name}\": {why}"),
        )
    };
    let uid = meta::str_at(pod, "/metadata/uid").unwrap_or("");
    if let Some(want) = p.uid.as_deref().filter(|u| !u.is_empty() && *u != uid) {
        return Err(conflict(format!(
            "the UID in the precondition ({want}) does not match the UID in record ({uid}). The object might have been deleted and then recreated"
        )));
    }
    let rv = meta::str_at(pod, "/metadata/resourceVersion").unwrap_or("");
    if let Some(want) = p
        .resource_version
        .as_deref()
        .filter(|r| !r.is_empty() && *r != rv)
    {
        return Err(conflict(format!(
            "the ResourceVersion in the precondition ({want}) does not match the ResourceVersion in record ({rv}). The object might have been modified"
        )));
    }
    Ok(())
}

/// Upstream's `UpdatePodCondition` with DisruptionTarget=True / EvictionByEvictionAPI.
fn set_disruption_target(pod: &mut Value, now: &str) {
    if !pod.get("status").is_some_and(Value::is_object) {
        pod["status"] = json!({});
    }
    if !pod["status"]["conditions"].is_array() {
        pod["status"]["conditions"] = json!([]);
    }
    let Some(conditions) = pod["status"]["conditions"].as_array_mut() else {
        return;
    };
    let mut wanted = json!({
        "type": "DisruptionTarget",
        "status": "True",
        "lastProbeTime": null,
        "lastTransitionTime": now,
        "reason": "EvictionByEvictionAPI",
        "message": "Eviction API: evicting",
    });
    match conditions
        .iter_mut()
        .find(|c| c["type"] == "DisruptionTarget")
    {
        Some(c) => {
            if c["status"] == "True" {
                wanted["lastTransitionTime"] = c["lastTransitionTime"].clone();
            }
            *c = wanted;
        }
        None => conditions.push(wanted),
    }
}

/// The registry's delete options from the Eviction's.
fn registry_options(o: &MetaDeleteOptions) -> DeleteOptions {
    let propagation = o.propagation_policy.clone().or(match o.orphan_dependents {
        Some(true) => Some("Orphan".to_string()),
        Some(false) => Some("Background".to_string()),
        None => None,
    });
    DeleteOptions {
        grace_period_seconds: o.grace_period_seconds,
        propagation,
        precondition_uid: o.preconditions.as_ref().and_then(|p| p.uid.clone()),
        precondition_rv: o
            .preconditions
            .as_ref()
            .and_then(|p| p.resource_version.clone()),
    }
}

/// What a successful eviction answers (the create handler fills in 201).
fn success() -> Value {
    json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201})
}

fn too_many_requests(retry_after: i64, cause: String) -> ApiError {
    ApiError {
        details: Some(json!({
            "causes": [{"reason": "DisruptionBudget", "message": cause}],
            "retryAfterSeconds": retry_after,
        })),
        ..ApiError::new(429, "TooManyRequests", TOO_MANY)
    }
}

/// Upstream's `createTooManyRequestsError`: the budget has not caught up yet.
fn still_processing(pdb: &str) -> ApiError {
    too_many_requests(
        10,
        format!("The disruption budget {pdb} is still being processed by the server."),
    )
}

fn forbidden(pdb: &str, why: &str) -> ApiError {
    ApiError {
        details: Some(json!({"name": pdb, "group": "policy", "kind": "poddisruptionbudget"})),
        ..ApiError::forbidden(format!(
            "poddisruptionbudget.policy \"{pdb}\" is forbidden: {why}"
        ))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn status(e: &ApiError) -> String {
        serde_json::to_string(&e.to_status()).unwrap()
    }

    fn pdb(allowed: i64, generation: i64, observed: i64) -> Value {
        json!({
            "metadata": {"name": "web", "namespace": "ns", "generation": generation},
            "spec": {"minAvailable": 2, "selector": {"matchLabels": {"app": "web"}}},
            "status": {"observedGeneration": observed, "disruptionsAllowed": allowed,
                       "currentHealthy": 2 + allowed, "desiredHealthy": 2, "expectedPods": 2 + allowed},
        })
    }

    #[test]
    fn an_exhausted_budget_answers_upstreams_429() {
        let e = check_and_decrement(&pdb(0, 1, 1), "p", "2025-01-01T00:00:00Z").unwrap_err();
        assert_eq!(
            status(&e),
            r#"{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"Cannot evict pod as it would violate the pod's disruption budget.","reason":"TooManyRequests","details":{"causes":[{"reason":"DisruptionBudget","message":"The disruption budget web needs 2 healthy pods and has 2 currently"}]},"code":429}"#
        );
    }

    #[test]
    fn a_budget_not_yet_observed_asks_to_retry_after_ten_seconds() {
        let e = check_and_decrement(&pdb(3, 2, 1), "p", "2025-01-01T00:00:00Z").unwrap_err();
        assert_eq!(
            status(&e),
            r#"{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"Cannot evict pod as it would violate the pod's disruption budget.","reason":"TooManyRequests","details":{"causes":[{"reason":"DisruptionBudget","message":"The disruption budget web is still being processed by the server."}],"retryAfterSeconds":10},"code":429}"#
        );
    }

    #[test]
    fn negative_and_overfull_budgets_are_forbidden() {
        let e = check_and_decrement(&pdb(-1, 1, 1), "p", "t").unwrap_err();
        assert_eq!(
            status(&e),
            r#"{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"poddisruptionbudget.policy \"web\" is forbidden: pdb disruptions allowed is negative","reason":"Forbidden","details":{"name":"web","group":"policy","kind":"poddisruptionbudget"},"code":403}"#
        );
        let mut full = pdb(1, 1, 1);
        full["status"]["disruptedPods"] = (0..=MAX_DISRUPTED_PODS)
            .map(|i| (format!("p{i}"), json!("t")))
            .collect::<serde_json::Map<_, _>>()
            .into();
        let e = check_and_decrement(&full, "p", "t").unwrap_err();
        assert!(e.message.ends_with(
            "DisruptedPods map too big - too many evictions not confirmed by PDB controller"
        ));
    }

    #[test]
    fn taking_the_last_disruption_lists_the_pod_and_turns_the_condition_false() {
        let mut before = pdb(1, 1, 1);
        before["status"]["conditions"] = json!([{"type": "DisruptionAllowed", "status": "True",
            "observedGeneration": 1, "lastTransitionTime": "2020-01-01T00:00:00Z",
            "reason": "SufficientPods", "message": ""}]);
        let after = check_and_decrement(&before, "p", "2025-01-01T00:00:00Z").unwrap();
        assert_eq!(after["status"]["disruptionsAllowed"], 0);
        assert_eq!(
            after["status"]["disruptedPods"],
            json!({"p": "2025-01-01T00:00:00Z"})
        );
        assert_eq!(
            after["status"]["conditions"],
            json!([{"type": "DisruptionAllowed", "status": "False", "observedGeneration": 1,
                    "lastTransitionTime": "2025-01-01T00:00:00Z", "reason": "InsufficientPods", "message": ""}])
        );
        // With disruptions left the condition stays as it was.
        let after = check_and_decrement(&pdb(2, 1, 1), "q", "t").unwrap();
        assert_eq!(after["status"]["disruptionsAllowed"], 1);
        assert!(after["status"].get("conditions").is_none());
    }

    #[test]
    fn several_budgets_answer_a_bare_500() {
        let e = ApiError::new(
            500,
            "",
            "This pod has more than one PodDisruptionBudget, which the eviction subresource does not support.",
        );
        assert_eq!(
            status(&e),
            r#"{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"This pod has more than one PodDisruptionBudget, which the eviction subresource does not support.","code":500}"#
        );
        assert_eq!(
            success(),
            json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201})
        );
    }

    #[test]
    fn the_eviction_must_name_the_pod_of_the_url() {
        let body = |v: &str| json!({"apiVersion": v, "kind": "Eviction", "metadata": {"name": "p", "namespace": "ns"}});
        assert!(decode(body("policy/v1"), "ns", "p").is_ok());
        assert!(decode(body("policy/v1beta1"), "ns", "p").is_ok());
        assert_eq!(
            decode(body("policy/v1"), "ns", "q").unwrap_err().message,
            "name in URL does not match name in Eviction object"
        );
        assert_eq!(
            decode(body("policy/v1"), "other", "p").unwrap_err().code,
            400
        );
        assert_eq!(decode(body("v1"), "ns", "p").unwrap_err().code, 400);
        // kube-rs sends neither apiVersion nor kind.
        assert!(decode(json!({"metadata": {"name": "p"}}), "ns", "p").is_ok());
    }

    #[test]
    fn dry_run_comes_from_the_request_or_must_agree_with_it() {
        let content = |d: &[&str]| MetaDeleteOptions {
            dry_run: Some(d.iter().map(|s| s.to_string()).collect()),
            ..Default::default()
        };
        assert!(is_dry_run(&propagate_dry_run(None, Some("All")).unwrap()));
        assert!(!is_dry_run(&propagate_dry_run(None, None).unwrap()));
        assert!(is_dry_run(
            &propagate_dry_run(Some(content(&["All"])), None).unwrap()
        ));
        let e = propagate_dry_run(Some(content(&["All"])), Some("Other")).unwrap_err();
        assert_eq!(
            (e.code, e.message.as_str()),
            (
                500,
                "Non-matching dry-run options in request and content: [Other] and [All]"
            )
        );
    }

    #[test]
    fn pods_not_running_or_going_skip_the_budget() {
        let pod = |phase: &str| json!({"metadata": {"name": "p"}, "status": {"phase": phase}});
        for phase in ["Pending", "Succeeded", "Failed"] {
            assert!(can_ignore_budget(&pod(phase)), "{phase}");
        }
        assert!(!can_ignore_budget(&pod("Running")));
        let mut going = pod("Running");
        going["metadata"]["deletionTimestamp"] = json!("2025-01-01T00:00:00Z");
        assert!(can_ignore_budget(&going));
        assert!(!enforce_resource_version(&going));
        assert!(enforce_resource_version(&pod("Pending")));
        assert!(!enforce_resource_version(&pod("Failed")));
    }

    #[test]
    fn the_disruption_target_condition_keeps_its_transition_time() {
        let mut pod = json!({"status": {"conditions": [{"type": "Ready", "status": "True"}]}});
        set_disruption_target(&mut pod, "2025-01-01T00:00:00Z");
        set_disruption_target(&mut pod, "2025-01-01T00:05:00Z");
        assert_eq!(
            pod["status"]["conditions"][1],
            json!({"type": "DisruptionTarget", "status": "True", "lastProbeTime": null,
                   "lastTransitionTime": "2025-01-01T00:00:00Z", "reason": "EvictionByEvictionAPI",
                   "message": "Eviction API: evicting"})
        );
        assert!(is_ready(&pod));
    }

    #[test]
    fn budget_selectors_as_policy_v1_reads_them() {
        let labels = json!({"app": "web"});
        assert!(!selects(None, &labels));
        assert!(!selects(Some(&Value::Null), &labels));
        assert!(selects(Some(&json!({})), &labels));
        assert!(selects(
            Some(&json!({"matchLabels": {"app": "web"}})),
            &labels
        ));
        assert!(!selects(
            Some(&json!({"matchLabels": {"app": "db"}})),
            &labels
        ));
    }

    #[test]
    fn unhealthy_budgets_and_preconditions() {
        let pod = json!({"metadata": {"uid": "u1", "resourceVersion": "7"}});
        let p = |uid: Option<&str>, rv: Option<&str>| {
            k8s_openapi::apimachinery::pkg::apis::meta::v1::Preconditions {
                uid: uid.map(str::to_string),
                resource_version: rv.map(str::to_string),
            }
        };
        assert!(check_preconditions(&pod, "p", &p(Some("u1"), Some("7"))).is_ok());
        let e = check_preconditions(&pod, "p", &p(Some("u2"), None)).unwrap_err();
        assert_eq!(
            e.message,
            "Operation cannot be fulfilled on Pod \"p\": the UID in the precondition (u2) does not match the UID in record (u1). The object might have been deleted and then recreated"
        );
        assert_eq!(
            check_preconditions(&pod, "p", &p(None, Some("6")))
                .unwrap_err()
                .code,
            409
        );
    }
}
