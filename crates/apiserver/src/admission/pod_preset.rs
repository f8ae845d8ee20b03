//! PodPreset (Kubernetes 1.19's plugin): on create, a pod gets the env, envFrom, volumes and
//! volumeMounts of every PodPreset in its namespace whose selector matches its labels, and an
//! annotation per preset with the preset's resourceVersion. When the presets conflict with
//! the pod or each other (one name or mount path, different contents) none is applied: the
//! pod is admitted unchanged and the conflict only logged. Pods annotated
//! `podpreset.admission.kubernetes.io/exclude: "true"` and mirror pods are skipped.

use serde_json::{Value, json};

use crate::admission::support::cached_list;
use crate::admission::{Attributes, Lister, Operation};
use crate::error::ApiResult;
use crate::selector::{LabelSelector, selector_string};

const ANNOTATION_PREFIX: &str = "podpreset.admission.kubernetes.io";
const EXCLUDE: &str = "podpreset.admission.kubernetes.io/exclude";
const MIRROR_ANNOTATION: &str = "kubernetes.io/config.mirror";

/// Applies the matching presets to a new pod.
pub async fn admit(lister: &dyn Lister, a: &Attributes<'_>, pod: &mut Value) -> ApiResult<()> {
    if a.operation != Operation::Create || !a.is_core("Pod") {
        return Ok(());
    }
    let annotation = |k: &str| {
        crate::meta::str_at(
            pod,
            &format!("/metadata/annotations/{}", k.replace('/', "~1")),
        )
    };
    if annotation(MIRROR_ANNOTATION).is_some() || annotation(EXCLUDE) == Some("true") {
        return Ok(());
    }
    let presets = cached_list(lister, "settings.k8s.io", "PodPreset", a.namespace).await?;
    let mut matching = Vec::new();
    for p in presets {
        let sel = selector_string(p.pointer("/spec/selector"));
        let sel = LabelSelector::parse(&sel).map_err(|e| {
            crate::error::ApiError::internal(format!(
                "filtering pod presets failed: label selector conversion failed for PodPreset {}: {}",
                crate::meta::name(&p),
                e.message
            ))
        })?;
        if sel.matches(pod) {
            matching.push(std::sync::Arc::unwrap_or_clone(p));
        }
    }
    if matching.is_empty() {
        return Ok(());
    }
    let names: Vec<&str> = matching.iter().map(crate::meta::name).collect();
    match apply(pod, &matching) {
        Ok(()) => tracing::info!(
            presets = names.join(","),
            pod = crate::meta::name(pod),
            "applied podpresets"
        ),
        // As upstream: a conflict leaves the pod as it was, and is only logged.
        Err(conflicts) => tracing::warn!(
            presets = names.join(","),
            pod = crate::meta::name(pod),
            "conflict occurred while applying podpresets: {}",
            conflicts.join("; ")
        ),
    }
    Ok(())
}

/// The preset's list at `field` of its spec.
fn preset_list<'a>(p: &'a Value, field: &str) -> &'a [Value] {
    p.pointer(&format!("/spec/{field}"))
        .and_then(Value::as_array)
        .map_or(&[], Vec::as_slice)
}

/// Merges the presets' items into `have` by `key` (a name or mount path): new keys are
/// appended, an equal item is fine, a different one is a conflict.
fn merge_by(
    have: &mut Vec<Value>,
    presets: &[Value],
    field: &str,
    key: &str,
    what: &str,
    conflicts: &mut Vec<String>,
) {
    for p in presets {
        for item in preset_list(p, field) {
            let k = item.get(key);
            match have.iter().find(|h| h.get(key) == k) {
                None => have.push(item.clone()),
                Some(found) if found == item => {}
                Some(found) => conflicts.push(format!(
                    "merging {what} for {} has a conflict on {}: {item} does not match {found}",
                    crate::meta::name(p),
                    k.and_then(Value::as_str).unwrap_or("")
                )),
            }
        }
    }
}

fn list_at(v: &Value, field: &str) -> Vec<Value> {
    v.get(field)
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default()
}

/// Merges every preset into the pod, or changes nothing and returns the conflicts.
fn apply(pod: &mut Value, presets: &[Value]) -> Result<(), Vec<String>> {
    let mut conflicts = Vec::new();
    let spec = pod.get("spec").cloned().unwrap_or_else(|| json!({}));
    let mut volumes = list_at(&spec, "volumes");
    merge_by(
        &mut volumes,
        presets,
        "volumes",
        "name",
        "volumes",
        &mut conflicts,
    );
    let mut merged_containers = Vec::new();
    for field in ["containers", "initContainers"] {
        let Some(cs) = spec.get(field).and_then(Value::as_array) else {
            continue;
        };
        let mut out = Vec::new();
        for c in cs {
            let mut c = c.clone();
            let mut env = list_at(&c, "env");
            merge_by(&mut env, presets, "env", "name", "env", &mut conflicts);
            let mut mounts = list_at(&c, "volumeMounts");
            let before = mounts.clone();
            merge_by(
                &mut mounts,
                presets,
                "volumeMounts",
                "name",
                "volume mounts",
                &mut conflicts,
            );
            // A mount path may be used once: the same check by path, on the original list.
            let mut by_path = before;
            merge_by(
                &mut by_path,
                presets,
                "volumeMounts",
                "mountPath",
                "volume mounts on mount path",
                &mut conflicts,
            );
            let mut env_from = list_at(&c, "envFrom");
            for p in presets {
                env_from.extend(preset_list(p, "envFrom").iter().cloned());
            }
            for (k, v) in [
                ("env", env),
                ("volumeMounts", mounts),
                ("envFrom", env_from),
            ] {
                if !v.is_empty() {
                    c[k] = Value::Array(v);
                }
            }
            out.push(c);
        }
        merged_containers.push((field, out));
    }
    if !conflicts.is_empty() {
        return Err(conflicts);
    }
    if !volumes.is_empty() {
        pod["spec"]["volumes"] = Value::Array(volumes);
    }
    for (field, cs) in merged_containers {
        pod["spec"][field] = Value::Array(cs);
    }
    let m = crate::meta::metadata_mut(pod);
    if !m.get("annotations").is_some_and(Value::is_object) {
        m.insert("annotations".into(), json!({}));
    }
    for p in presets {
        let rv = crate::meta::str_at(p, "/metadata/resourceVersion").unwrap_or("");
        m["annotations"][format!("{ANNOTATION_PREFIX}/podpreset-{}", crate::meta::name(p))] =
            json!(rv);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn preset(name: &str, spec: Value) -> Value {
        json!({"metadata": {"name": name, "resourceVersion": "7"}, "spec": spec})
    }

    #[test]
    fn merges_env_volumes_and_mounts_into_every_container() {
        let mut pod = json!({"metadata": {"name": "p"}, "spec": {
            "containers": [{"name": "c", "env": [{"name": "A", "value": "1"}]}],
            "initContainers": [{"name": "i"}]}});
        let p = preset(
            "db",
            json!({
            "env": [{"name": "A", "value": "1"}, {"name": "DB", "value": "x"}],
            "envFrom": [{"configMapRef": {"name": "cm"}}],
            "volumes": [{"name": "cache", "emptyDir": {}}],
            "volumeMounts": [{"name": "cache", "mountPath": "/cache"}]}),
        );
        apply(&mut pod, &[p]).unwrap();
        let c = &pod["spec"]["containers"][0];
        assert_eq!(
            c["env"],
            json!([{"name": "A", "value": "1"}, {"name": "DB", "value": "x"}])
        );
        assert_eq!(c["envFrom"], json!([{"configMapRef": {"name": "cm"}}]));
        assert_eq!(
            c["volumeMounts"],
            json!([{"name": "cache", "mountPath": "/cache"}])
        );
        assert_eq!(pod["spec"]["initContainers"][0]["env"][1]["name"], "DB");
        assert_eq!(
            pod["spec"]["volumes"],
            json!([{"name": "cache", "emptyDir": {}}])
        );
        assert_eq!(
            pod["metadata"]["annotations"]["podpreset.admission.kubernetes.io/podpreset-db"],
            "7"
        );
    }

    #[test]
    fn a_conflict_applies_nothing() {
        let original = json!({"metadata": {"name": "p"}, "spec": {
            "containers": [{"name": "c", "env": [{"name": "A", "value": "1"}]}]}});
        let mut pod = original.clone();
        let ok = preset("ok", json!({"env": [{"name": "B", "value": "2"}]}));
        let bad = preset("bad", json!({"env": [{"name": "A", "value": "other"}]}));
        assert!(apply(&mut pod, &[ok.clone(), bad]).is_err());
        assert_eq!(pod, original);
        // Two presets mounting different volumes at one path conflict too.
        let m1 = preset(
            "m1",
            json!({"volumeMounts": [{"name": "x", "mountPath": "/m"}]}),
        );
        let m2 = preset(
            "m2",
            json!({"volumeMounts": [{"name": "y", "mountPath": "/m"}]}),
        );
        assert!(apply(&mut pod, &[m1, m2]).is_err());
        assert_eq!(pod, original);
    }
}
