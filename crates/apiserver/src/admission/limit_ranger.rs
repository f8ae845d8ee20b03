//! LimitRanger: the LimitRanges of a namespace give new pods' containers default requests
//! and limits (type Container's `defaultRequest` and `default`), then bound what containers,
//! whole pods and PersistentVolumeClaims may ask for (`min`, `max`, `maxLimitRequestRatio`).
//! Pods are only checked on create: their containers' resources cannot change later.

use serde_json::{Map, Value, json};

use crate::admission::support::{cached_list, forbidden};
use crate::admission::{Attributes, Lister, Operation};
use crate::error::ApiResult;

const ANNOTATION: &str = "kubernetes.io/limit-ranger";

/// Whether the write is one LimitRanger looks at (pods on create, claims on create and
/// update; never subresources).
fn applies(a: &Attributes<'_>, pods_only: bool) -> bool {
    if a.subresource.is_some() || !a.info.group.is_empty() {
        return false;
    }
    match a.info.kind {
        "Pod" => a.operation == Operation::Create,
        "PersistentVolumeClaim" => !pods_only && a.operation != Operation::Delete,
        _ => false,
    }
}

async fn limit_ranges(lister: &dyn Lister, ns: &str) -> ApiResult<Vec<Value>> {
    let mut ranges: Vec<Value> = cached_list(lister, "", "LimitRange", ns)
        .await?
        .into_iter()
        .map(std::sync::Arc::unwrap_or_clone)
        .collect();
    ranges
        .iter_mut()
        .for_each(crate::strategy::limit_range_defaults);
    Ok(ranges)
}

/// Sets a new pod's missing container requests and limits from the namespace's LimitRanges.
pub async fn admit(lister: &dyn Lister, a: &Attributes<'_>, pod: &mut Value) -> ApiResult<()> {
    if !applies(a, true) {
        return Ok(());
    }
    for lr in limit_ranges(lister, a.namespace).await? {
        apply_defaults(&lr, pod);
    }
    Ok(())
}

/// Refuses a pod or claim outside the namespace's LimitRanges.
pub async fn validate(lister: &dyn Lister, a: &Attributes<'_>, obj: &Value) -> ApiResult<()> {
    if !applies(a, false) {
        return Ok(());
    }
    let mut errs = Vec::new();
    for lr in limit_ranges(lister, a.namespace).await? {
        match a.info.kind {
            "Pod" => errs.extend(check_pod(&lr, obj)),
            _ => errs.extend(check_claim(&lr, obj)),
        }
    }
    // Kubernetes' error aggregate: one message alone, several bracketed (duplicates once).
    let mut unique: Vec<String> = Vec::new();
    for e in errs {
        if !unique.contains(&e) {
            unique.push(e);
        }
    }
    match unique.len() {
        0 => Ok(()),
        1 => Err(forbidden(a, Some(obj), &unique[0])),
        _ => Err(forbidden(
            a,
            Some(obj),
            format_args!("[{}]", unique.join(", ")),
        )),
    }
}

/// The type Container defaults of one LimitRange: (requests, limits).
fn container_defaults(lr: &Value) -> (Map<String, Value>, Map<String, Value>) {
    let (mut requests, mut limits) = (Map::new(), Map::new());
    for l in items(lr, "Container") {
        for (from, to) in [("defaultRequest", &mut requests), ("default", &mut limits)] {
            if let Some(m) = l.get(from).and_then(Value::as_object) {
                to.extend(m.clone());
            }
        }
    }
    (requests, limits)
}

fn items<'a>(lr: &'a Value, ty: &'a str) -> impl Iterator<Item = &'a Value> + 'a {
    lr.pointer("/spec/limits")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(move |l| l.get("type").and_then(Value::as_str) == Some(ty))
}

/// Fills each container's missing requests and limits and records what was set in the
/// `kubernetes.io/limit-ranger` annotation.
fn apply_defaults(lr: &Value, pod: &mut Value) {
    let (requests, limits) = container_defaults(lr);
    if requests.is_empty() && limits.is_empty() {
        return;
    }
    let mut notes = Vec::new();
    for (field, what) in [
        ("containers", "container"),
        ("initContainers", "init container"),
    ] {
        let Some(cs) = pod
            .pointer_mut(&format!("/spec/{field}"))
            .and_then(Value::as_array_mut)
        else {
            continue;
        };
        for c in cs {
            let name = c
                .get("name")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string();
            if !c.get("resources").is_some_and(Value::is_object) {
                c["resources"] = json!({});
            }
            let res = &mut c["resources"];
            let mut set = |key: &str, defaults: &Map<String, Value>| {
                if !res.get(key).is_some_and(Value::is_object) {
                    res[key] = json!({});
                }
                let mut names = Vec::new();
                if let Some(have) = res.get_mut(key).and_then(Value::as_object_mut) {
                    for (k, v) in defaults {
                        if !have.contains_key(k) {
                            have.insert(k.clone(), v.clone());
                            names.push(k.clone());
                        }
                    }
                    if have.is_empty() {
                        res.as_object_mut().map(|r| r.remove(key));
                    }
                }
                names.sort();
                names
            };
            let set_requests = set("requests", &requests);
            let set_limits = set("limits", &limits);
            if !set_requests.is_empty() {
                notes.push(format!(
                    "{} request for {what} {name}",
                    set_requests.join(", ")
                ));
            }
            if !set_limits.is_empty() {
                notes.push(format!("{} limit for {what} {name}", set_limits.join(", ")));
            }
        }
    }
    if !notes.is_empty() {
        let m = crate::meta::metadata_mut(pod);
        if !m.get("annotations").is_some_and(Value::is_object) {
            m.insert("annotations".into(), json!({}));
        }
        m["annotations"][ANNOTATION] =
            json!(format!("LimitRanger plugin set: {}", notes.join("; ")));
    }
}

/// Values of request, limit and bound, compared in thousandths when none overflows (as
/// upstream compares milli-values where it can).
fn values(req: Option<&str>, lim: Option<&str>, enforced: &str) -> (i64, i64, i64) {
    let scaled =
        |q: Option<&str>, s: i64| q.map_or(Some(0), |q| common::quantity::parse_scaled(q, s));
    match (
        scaled(req, 1000),
        scaled(lim, 1000),
        scaled(Some(enforced), 1000),
    ) {
        (Some(r), Some(l), Some(e)) => (r, l, e),
        _ => (
            scaled(req, 1).unwrap_or(0),
            scaled(lim, 1).unwrap_or(0),
            scaled(Some(enforced), 1).unwrap_or(0),
        ),
    }
}

fn get<'a>(list: &'a Map<String, Value>, k: &str) -> Option<&'a str> {
    list.get(k).and_then(Value::as_str)
}

fn min_constraint(
    ty: &str,
    k: &str,
    e: &str,
    req: &Map<String, Value>,
    lim: &Map<String, Value>,
) -> Option<String> {
    let (r, l) = (get(req, k), get(lim, k));
    let Some(r_text) = r else {
        return Some(format!(
            "minimum {k} usage per {ty} is {e}.  No request is specified"
        ));
    };
    let (rv, lv, ev) = values(r, l, e);
    if rv < ev {
        return Some(format!(
            "minimum {k} usage per {ty} is {e}, but request is {r_text}"
        ));
    }
    match l {
        Some(l_text) if lv < ev => Some(format!(
            "minimum {k} usage per {ty} is {e}, but limit is {l_text}"
        )),
        _ => None,
    }
}

fn max_constraint(
    ty: &str,
    k: &str,
    e: &str,
    req: &Map<String, Value>,
    lim: &Map<String, Value>,
) -> Option<String> {
    let (r, l) = (get(req, k), get(lim, k));
    let Some(l_text) = l else {
        return Some(format!(
            "maximum {k} usage per {ty} is {e}.  No limit is specified"
        ));
    };
    let (rv, lv, ev) = values(r, l, e);
    if lv > ev {
        return Some(format!(
            "maximum {k} usage per {ty} is {e}, but limit is {l_text}"
        ));
    }
    match r {
        Some(r_text) if rv > ev => Some(format!(
            "maximum {k} usage per {ty} is {e}, but request is {r_text}"
        )),
        _ => None,
    }
}

/// A claim's bound is on its request alone (claims have no limits).
fn max_request_constraint(ty: &str, k: &str, e: &str, req: &Map<String, Value>) -> Option<String> {
    let Some(r_text) = get(req, k) else {
        return Some(format!(
            "maximum {k} usage per {ty} is {e}.  No request is specified"
        ));
    };
    let (rv, _, ev) = values(Some(r_text), None, e);
    (rv > ev).then(|| format!("maximum {k} usage per {ty} is {e}, but request is {r_text}"))
}

fn ratio_constraint(
    ty: &str,
    k: &str,
    e: &str,
    req: &Map<String, Value>,
    lim: &Map<String, Value>,
) -> Option<String> {
    let (r, l) = (get(req, k), get(lim, k));
    let (rv, lv, _) = values(r, l, e);
    if r.is_none() || rv == 0 {
        return Some(format!(
            "{k} max limit to request ratio per {ty} is {e}, but no request is specified or request is 0"
        ));
    }
    if l.is_none() || lv == 0 {
        return Some(format!(
            "{k} max limit to request ratio per {ty} is {e}, but no limit is specified or limit is 0"
        ));
    }
    let observed = lv as f64 / rv as f64;
    // The ratio is compared in thousandths when the bound fits, as upstream does.
    let (cmp, bound) = match common::quantity::parse_scaled(e, 1000) {
        Some(milli) => (observed * 1000.0, milli as f64),
        None => (observed, common::quantity::value(e) as f64),
    };
    (cmp > bound).then(|| {
        format!(
            "{k} max limit to request ratio per {ty} is {e}, but provided ratio is {observed:.6}"
        )
    })
}

fn resources(c: &Value, key: &str) -> Map<String, Value> {
    c.pointer(&format!("/resources/{key}"))
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default()
}

/// min, max and ratio of one limit item against a request and limit list.
fn check_item(
    l: &Value,
    ty: &str,
    req: &Map<String, Value>,
    lim: &Map<String, Value>,
    out: &mut Vec<String>,
) {
    let entries = |key: &str| -> Vec<(String, String)> {
        l.get(key)
            .and_then(Value::as_object)
            .into_iter()
            .flatten()
            .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
            .collect()
    };
    for (k, v) in entries("min") {
        out.extend(min_constraint(ty, &k, &v, req, lim));
    }
    for (k, v) in entries("max") {
        out.extend(max_constraint(ty, &k, &v, req, lim));
    }
    for (k, v) in entries("maxLimitRequestRatio") {
        out.extend(ratio_constraint(ty, &k, &v, req, lim));
    }
}

/// The pod's violations of one LimitRange: per container (type Container) and for the
/// whole pod (type Pod: containers summed, an init container counting when larger).
fn check_pod(lr: &Value, pod: &Value) -> Vec<String> {
    let mut out = Vec::new();
    let containers = |field: &str| -> Vec<Value> {
        pod.pointer(&format!("/spec/{field}"))
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default()
    };
    let (main, init) = (containers("containers"), containers("initContainers"));
    for l in lr
        .pointer("/spec/limits")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        match l.get("type").and_then(Value::as_str) {
            Some("Container") => {
                for c in main.iter().chain(&init) {
                    check_item(
                        l,
                        "Container",
                        &resources(c, "requests"),
                        &resources(c, "limits"),
                        &mut out,
                    );
                }
            }
            Some("Pod") => {
                let total = |key: &str| pod_total(&main, &init, pod.pointer("/spec/overhead"), key);
                check_item(l, "Pod", &total("requests"), &total("limits"), &mut out);
            }
            _ => {}
        }
    }
    out
}

/// Sum of the containers' `key` (requests or limits) per resource, raised to any single
/// init container's larger value, plus the pod's overhead.
fn pod_total(
    main: &[Value],
    init: &[Value],
    overhead: Option<&Value>,
    key: &str,
) -> Map<String, Value> {
    let mut sums: Vec<(String, i64)> = Vec::new();
    let milli = |q: &Value| {
        q.as_str()
            .and_then(|q| common::quantity::parse_scaled(q, 1000))
            .unwrap_or(0)
    };
    let mut add = |k: &str, v: i64, max: bool| match sums.iter_mut().find(|(n, _)| n == k) {
        Some((_, s)) if max => *s = (*s).max(v),
        Some((_, s)) => *s += v,
        None => sums.push((k.to_string(), v)),
    };
    for c in main {
        for (k, v) in resources(c, key) {
            add(&k, milli(&v), false);
        }
    }
    for c in init {
        for (k, v) in resources(c, key) {
            add(&k, milli(&v), true);
        }
    }
    for (k, v) in overhead.and_then(Value::as_object).into_iter().flatten() {
        add(k, milli(v), false);
    }
    sums.into_iter()
        .map(|(k, m)| (k, json!(format_milli(m))))
        .collect()
}

/// Thousandths as a quantity: whole units plainly, else with the `m` suffix.
fn format_milli(m: i64) -> String {
    if m % 1000 == 0 {
        (m / 1000).to_string()
    } else {
        format!("{m}m")
    }
}

/// A claim's violations of one LimitRange's type PersistentVolumeClaim bounds.
fn check_claim(lr: &Value, pvc: &Value) -> Vec<String> {
    let mut out = Vec::new();
    let req = pvc
        .pointer("/spec/resources/requests")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    let ty = "PersistentVolumeClaim";
    for l in items(lr, ty) {
        let entries = |key: &str| -> Vec<(String, String)> {
            l.get(key)
                .and_then(Value::as_object)
                .into_iter()
                .flatten()
                .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
                .collect()
        };
        for (k, v) in entries("min") {
            out.extend(min_constraint(ty, &k, &v, &req, &Map::new()));
        }
        for (k, v) in entries("max") {
            out.extend(max_request_constraint(ty, &k, &v, &req));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::admission::lister::memory::{Objects, create};

    /// Run against LimitRanges in memory: the namespace's range defaults and bounds the
    /// pod, another namespace's does not.
    #[tokio::test]
    async fn reads_the_namespace_ranges_through_the_lister() {
        let lister = Objects::default()
            .with(
                "",
                "LimitRange",
                json!({"metadata": {"name": "limits", "namespace": "team"}, "spec": {"limits": [
                    {"type": "Container", "max": {"cpu": "2"},
                     "default": {"cpu": "1"}, "defaultRequest": {"cpu": "250m"}}]}}),
            )
            .with(
                "",
                "LimitRange",
                json!({"metadata": {"name": "tiny", "namespace": "other"}, "spec": {"limits": [
                    {"type": "Container", "max": {"cpu": "10m"}}]}}),
            );
        let info = crate::resources::by_kind("", "Pod").unwrap();
        let a = create(info, "team", "p");

        let mut pod = json!({"metadata": {"name": "p", "namespace": "team"},
            "spec": {"containers": [{"name": "web"}]}});
        admit(&lister, &a, &mut pod).await.unwrap();
        assert_eq!(
            pod["spec"]["containers"][0]["resources"],
            json!({"requests": {"cpu": "250m"}, "limits": {"cpu": "1"}})
        );
        assert_eq!(
            pod["metadata"]["annotations"][ANNOTATION],
            "LimitRanger plugin set: cpu request for container web; cpu limit for container web"
        );
        validate(&lister, &a, &pod).await.unwrap();

        let big = json!({"metadata": {"name": "p", "namespace": "team"},
            "spec": {"containers": [{"name": "web",
                "resources": {"requests": {"cpu": "1"}, "limits": {"cpu": "4"}}}]}});
        let e = validate(&lister, &a, &big).await.unwrap_err();
        assert_eq!(e.code, 403);
        assert_eq!(
            e.message,
            "pods \"p\" is forbidden: maximum cpu usage per Container is 2, but limit is 4"
        );
    }

    fn range(limits: Value) -> Value {
        let mut lr = json!({"spec": {"limits": limits}});
        crate::strategy::limit_range_defaults(&mut lr);
        lr
    }

    #[test]
    fn defaults_follow_the_api_defaulting() {
        let lr =
            range(json!([{"type": "Container", "max": {"cpu": "2"}, "min": {"memory": "1Mi"}}]));
        assert_eq!(lr["spec"]["limits"][0]["default"], json!({"cpu": "2"}));
        assert_eq!(
            lr["spec"]["limits"][0]["defaultRequest"],
            json!({"cpu": "2", "memory": "1Mi"})
        );
    }

    #[test]
    fn fills_missing_requests_and_limits_and_annotates() {
        let lr = range(json!([{"type": "Container",
            "default": {"cpu": "500m", "memory": "256Mi"},
            "defaultRequest": {"cpu": "100m"}}]));
        let mut pod = json!({"metadata": {"name": "p"}, "spec": {
            "containers": [{"name": "a", "resources": {"limits": {"memory": "1Gi"}}}],
            "initContainers": [{"name": "i"}]}});
        apply_defaults(&lr, &mut pod);
        let a = &pod["spec"]["containers"][0]["resources"];
        assert_eq!(a["limits"], json!({"memory": "1Gi", "cpu": "500m"}));
        assert_eq!(a["requests"], json!({"cpu": "100m", "memory": "256Mi"}));
        assert_eq!(
            pod["metadata"]["annotations"][ANNOTATION],
            "LimitRanger plugin set: cpu, memory request for container a; cpu limit for container a; cpu, memory request for init container i; cpu, memory limit for init container i"
        );
    }

    #[test]
    fn container_bounds_with_upstream_messages() {
        let lr = range(
            json!([{"type": "Container", "max": {"cpu": "1"}, "min": {"memory": "100Mi"}, "maxLimitRequestRatio": {"cpu": "2"}}]),
        );
        let pod = json!({"spec": {"containers": [{"name": "c", "resources": {
            "limits": {"cpu": "2", "memory": "50Mi"}, "requests": {"cpu": "500m", "memory": "50Mi"}}}]}});
        assert_eq!(
            check_pod(&lr, &pod),
            [
                "minimum memory usage per Container is 100Mi, but request is 50Mi",
                "maximum cpu usage per Container is 1, but limit is 2",
                "cpu max limit to request ratio per Container is 2, but provided ratio is 4.000000",
            ]
        );
        let none = json!({"spec": {"containers": [{"name": "c"}]}});
        assert_eq!(
            check_pod(&lr, &none)[..2],
            [
                "minimum memory usage per Container is 100Mi.  No request is specified",
                "maximum cpu usage per Container is 1.  No limit is specified",
            ]
        );
        let fine = json!({"spec": {"containers": [{"name": "c", "resources": {
            "limits": {"cpu": "1", "memory": "200Mi"}, "requests": {"cpu": "600m", "memory": "100Mi"}}}]}});
        assert!(
            check_pod(&lr, &fine).is_empty(),
            "{:?}",
            check_pod(&lr, &fine)
        );
    }

    #[test]
    fn pod_bounds_sum_containers() {
        let lr = range(json!([{"type": "Pod", "max": {"cpu": "1"}}]));
        let pod = |a: &str, b: &str| {
            json!({"spec": {"containers": [
            {"name": "a", "resources": {"limits": {"cpu": a}}},
            {"name": "b", "resources": {"limits": {"cpu": b}}}]}})
        };
        assert_eq!(
            check_pod(&lr, &pod("600m", "600m")),
            ["maximum cpu usage per Pod is 1, but limit is 1200m"]
        );
        assert!(check_pod(&lr, &pod("500m", "500m")).is_empty());
    }

    #[test]
    fn claim_storage_bounds() {
        let lr = range(
            json!([{"type": "PersistentVolumeClaim", "min": {"storage": "1Gi"}, "max": {"storage": "2Gi"}}]),
        );
        let pvc = |s: &str| json!({"spec": {"resources": {"requests": {"storage": s}}}});
        assert_eq!(
            check_claim(&lr, &pvc("5Gi")),
            ["maximum storage usage per PersistentVolumeClaim is 2Gi, but request is 5Gi"]
        );
        assert_eq!(
            check_claim(&lr, &pvc("500Mi")),
            ["minimum storage usage per PersistentVolumeClaim is 1Gi, but request is 500Mi"]
        );
        assert!(check_claim(&lr, &pvc("1Gi")).is_empty());
    }
}
