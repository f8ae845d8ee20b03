//! ServiceAccount: every new pod runs as a service account (`default` unless it names one),
//! which must exist; unless automounting is turned off on the pod or the account, the pod
//! gets the account's API credentials as a projected volume (a bound token, the cluster CA
//! and its namespace) mounted in every container, and the account's image pull secrets
//! when it has none. Mirror pods (the kubelet's static pods) are left unchanged, and refused if
//! they name an account or use secrets or account tokens.

use serde_json::{Value, json};

use crate::admission::support::forbidden_unnamed;
use crate::admission::{Attributes, Lister, Operation};
use crate::error::ApiResult;

pub const DEFAULT_ACCOUNT: &str = "default";
const MIRROR_ANNOTATION: &str = "kubernetes.io/config.mirror";
pub const TOKEN_MOUNT_PATH: &str = "/var/run/secrets/kubernetes.io/serviceaccount";
const VOLUME_PREFIX: &str = "kube-api-access-";
/// A bound token's lifetime: an hour plus a few seconds, which tells the API server the
/// token came from this volume (upstream's warn-on-use window).
const TOKEN_EXPIRATION_SECONDS: i64 = 3607;

/// Sets the pod's service account, checks it exists, and mounts its credentials.
pub async fn admit(lister: &dyn Lister, a: &Attributes<'_>, pod: &mut Value) -> ApiResult<()> {
    if a.operation != Operation::Create || !a.is_core("Pod") {
        return Ok(());
    }
    if pod
        .pointer("/metadata/annotations")
        .and_then(Value::as_object)
        .is_some_and(|m| m.contains_key(MIRROR_ANNOTATION))
    {
        // A mirror pod reflects a static pod the API server cannot change; it may not use
        // what the API server would have to provide.
        return match mirror_pod_problem(pod) {
            Some(why) => Err(forbidden_unnamed(a, Some(pod), why)),
            None => Ok(()),
        };
    }
    let name = match pod
        .pointer("/spec/serviceAccountName")
        .and_then(Value::as_str)
    {
        Some(n) if !n.is_empty() => n.to_string(),
        // The deprecated field alone still names the account.
        _ => match pod.pointer("/spec/serviceAccount").and_then(Value::as_str) {
            Some(n) if !n.is_empty() => n.to_string(),
            _ => DEFAULT_ACCOUNT.to_string(),
        },
    };
    if let Some(spec) = pod.get_mut("spec").and_then(Value::as_object_mut) {
        spec.insert("serviceAccountName".into(), json!(name));
        spec.insert("serviceAccount".into(), json!(name));
    }
    let Some(sa) = lookup(lister, a.namespace, &name).await? else {
        return Err(forbidden_unnamed(
            a,
            Some(pod),
            format_args!(
                "error looking up service account {}/{name}: serviceaccount \"{name}\" not found",
                a.namespace
            ),
        ));
    };
    if should_automount(&sa, pod) {
        mount_token(
            pod,
            &format!("{VOLUME_PREFIX}{}", crate::meta::random_suffix()),
        );
    }
    copy_pull_secrets(&sa, pod);
    Ok(())
}

/// Why a mirror pod is refused, if it is: it names an account, or mounts secrets or a
/// projected account token.
fn mirror_pod_problem(pod: &Value) -> Option<&'static str> {
    let named = |p: &str| {
        pod.pointer(p)
            .and_then(Value::as_str)
            .is_some_and(|n| !n.is_empty())
    };
    if named("/spec/serviceAccountName") || named("/spec/serviceAccount") {
        return Some("a mirror pod may not reference service accounts");
    }
    let volumes = pod
        .pointer("/spec/volumes")
        .and_then(Value::as_array)
        .map_or(&[][..], Vec::as_slice);
    if references_secrets(pod) {
        return Some("a mirror pod may not reference secrets");
    }
    let projects_token = volumes.iter().any(|v| {
        v.pointer("/projected/sources")
            .and_then(Value::as_array)
            .is_some_and(|s| s.iter().any(|s| s.get("serviceAccountToken").is_some()))
    });
    projects_token.then_some("a mirror pod may not use ServiceAccountToken volume projections")
}

/// Whether the pod names a Secret anywhere upstream's `VisitPodSecretNames` looks: image pull
/// secrets, `envFrom`/`env` of every container (init and ephemeral too), and volumes (secret,
/// projected secret sources, and the `secretRef`s of the volume plugins that take one).
fn references_secrets(pod: &Value) -> bool {
    let spec = pod.get("spec").unwrap_or(&Value::Null);
    let list = |v: &Value, key: &str| -> Vec<Value> {
        v.get(key)
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default()
    };
    let named = |v: Option<&Value>, key: &str| {
        v.and_then(|v| v.get(key))
            .and_then(Value::as_str)
            .is_some_and(|n| !n.is_empty())
    };
    if list(spec, "imagePullSecrets")
        .iter()
        .any(|r| named(Some(r), "name"))
    {
        return true;
    }
    let containers = ["containers", "initContainers", "ephemeralContainers"]
        .iter()
        .flat_map(|k| list(spec, k));
    for c in containers {
        if list(&c, "envFrom")
            .iter()
            .any(|e| named(e.get("secretRef"), "name"))
            || list(&c, "env")
                .iter()
                .any(|e| named(e.pointer("/valueFrom/secretKeyRef"), "name"))
        {
            return true;
        }
    }
    list(spec, "volumes").iter().any(|v| {
        named(v.get("secret"), "secretName")
            || named(v.get("azureFile"), "secretName")
            || named(v.pointer("/csi/nodePublishSecretRef"), "name")
            || [
                "cephfs",
                "cinder",
                "flexVolume",
                "rbd",
                "scaleIO",
                "iscsi",
                "storageos",
            ]
            .iter()
            .any(|k| named(v.get(*k).and_then(|p| p.get("secretRef")), "name"))
            || list(v.get("projected").unwrap_or(&Value::Null), "sources")
                .iter()
                .any(|s| named(s.get("secret"), "name"))
    })
}

/// The account from the cache, or (an account created a moment ago may not be there yet)
/// from the store.
async fn lookup(
    lister: &dyn Lister,
    ns: &str,
    name: &str,
) -> ApiResult<Option<std::sync::Arc<Value>>> {
    let info = crate::resources::by_kind("", "ServiceAccount")?;
    lister.get(info, Some(ns), name).await
}

/// The pod's `automountServiceAccountToken`, else the account's, else true.
fn should_automount(sa: &Value, pod: &Value) -> bool {
    pod.pointer("/spec/automountServiceAccountToken")
        .and_then(Value::as_bool)
        .or_else(|| {
            sa.get("automountServiceAccountToken")
                .and_then(Value::as_bool)
        })
        .unwrap_or(true)
}

/// Mounts the credentials volume in every container not already mounting something at the
/// token path; the volume is added when a container needs it (reusing one already there).
fn mount_token(pod: &mut Value, new_volume: &str) {
    let existing = pod
        .pointer("/spec/volumes")
        .and_then(Value::as_array)
        .and_then(|vs| {
            vs.iter()
                .filter_map(|v| v.get("name").and_then(Value::as_str))
                .find(|n| n.starts_with(VOLUME_PREFIX))
                .map(str::to_string)
        });
    let volume = existing.clone().unwrap_or_else(|| new_volume.to_string());
    let mut needed = false;
    for field in ["initContainers", "containers"] {
        let Some(cs) = pod
            .pointer_mut(&format!("/spec/{field}"))
            .and_then(Value::as_array_mut)
        else {
            continue;
        };
        for c in cs {
            let mounted = c
                .get("volumeMounts")
                .and_then(Value::as_array)
                .is_some_and(|ms| {
                    ms.iter().any(|m| {
                        m.get("mountPath").and_then(Value::as_str) == Some(TOKEN_MOUNT_PATH)
                    })
                });
            if mounted {
                continue;
            }
            let mut mount = serde_json::Map::new();
            mount.insert("name".into(), Value::String(volume.clone()));
            mount.insert("readOnly".into(), Value::Bool(true));
            mount.insert("mountPath".into(), TOKEN_MOUNT_PATH.into());
            let mount = Value::Object(mount);
            match c.get_mut("volumeMounts").and_then(Value::as_array_mut) {
                Some(ms) => ms.push(mount),
                None => c["volumeMounts"] = json!([mount]),
            }
            needed = true;
        }
    }
    if !needed || existing.is_some() {
        return;
    }
    // Built once: the projection is the same for every pod but its name.
    static PROJECTED: std::sync::LazyLock<Value> = std::sync::LazyLock::new(|| {
        json!({
            "sources": [
                {"serviceAccountToken": {"expirationSeconds": TOKEN_EXPIRATION_SECONDS, "path": "token"}},
                {"configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
                {"downwardAPI": {"items": [{"path": "namespace", "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"}}]}},
            ],
            "defaultMode": 420,
        })
    });
    let mut v = serde_json::Map::new();
    v.insert("name".into(), Value::String(volume));
    v.insert("projected".into(), PROJECTED.clone());
    let v = Value::Object(v);
    match pod
        .pointer_mut("/spec/volumes")
        .and_then(Value::as_array_mut)
    {
        Some(vs) => vs.push(v),
        None => pod["spec"]["volumes"] = json!([v]),
    }
}

/// The account's image pull secrets, for a pod that names none.
fn copy_pull_secrets(sa: &Value, pod: &mut Value) {
    let has = pod
        .pointer("/spec/imagePullSecrets")
        .and_then(Value::as_array)
        .is_some_and(|s| !s.is_empty());
    if has {
        return;
    }
    let secrets: Vec<Value> = sa
        .get("imagePullSecrets")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|s| s.get("name").map(|n| json!({"name": n})))
        .collect();
    if !secrets.is_empty() {
        pod["spec"]["imagePullSecrets"] = Value::Array(secrets);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn automount_pod_overrides_account() {
        let sa_off = json!({"automountServiceAccountToken": false});
        let pod_on = json!({"spec": {"automountServiceAccountToken": true}});
        assert!(should_automount(&sa_off, &pod_on));
        assert!(!should_automount(&sa_off, &json!({"spec": {}})));
        assert!(should_automount(&json!({}), &json!({"spec": {}})));
        assert!(!should_automount(
            &json!({}),
            &json!({"spec": {"automountServiceAccountToken": false}})
        ));
    }

    #[test]
    fn mounts_the_volume_where_missing() {
        let mut pod = json!({"spec": {
        "initContainers": [{"name": "i"}],
        "containers": [
            {"name": "a"},
            {"name": "b", "volumeMounts": [{"name": "mine", "mountPath": TOKEN_MOUNT_PATH}]},
        ]}});
        mount_token(&mut pod, "kube-api-access-abcde");
        let want = json!([{"name": "kube-api-access-abcde", "readOnly": true, "mountPath": TOKEN_MOUNT_PATH}]);
        assert_eq!(pod["spec"]["initContainers"][0]["volumeMounts"], want);
        assert_eq!(pod["spec"]["containers"][0]["volumeMounts"], want);
        assert_eq!(
            pod["spec"]["containers"][1]["volumeMounts"][0]["name"],
            "mine"
        );
        let v = &pod["spec"]["volumes"][0];
        assert_eq!(v["name"], "kube-api-access-abcde");
        assert_eq!(v["projected"]["defaultMode"], 420);
        assert_eq!(
            v["projected"]["sources"][0]["serviceAccountToken"]["expirationSeconds"],
            3607
        );
        assert_eq!(
            v["projected"]["sources"][1]["configMap"]["name"],
            "kube-root-ca.crt"
        );
        assert_eq!(
            v["projected"]["sources"][2]["downwardAPI"]["items"][0]["fieldRef"]["fieldPath"],
            "metadata.namespace"
        );
        // Every container already mounting the path: no volume.
        let mut pod = json!({"spec": {"containers": [{"name": "b", "volumeMounts": [{"name": "mine", "mountPath": TOKEN_MOUNT_PATH}]}]}});
        mount_token(&mut pod, "kube-api-access-abcde");
        assert!(pod["spec"].get("volumes").is_none());
    }

    #[test]
    fn mirror_pods_may_not_use_accounts() {
        assert_eq!(
            mirror_pod_problem(&json!({"spec": {"containers": []}})),
            None
        );
        assert_eq!(
            mirror_pod_problem(&json!({"spec": {"serviceAccountName": "default"}})),
            Some("a mirror pod may not reference service accounts")
        );
        assert_eq!(
            mirror_pod_problem(
                &json!({"spec": {"volumes": [{"name": "s", "secret": {"secretName": "x"}}]}})
            ),
            Some("a mirror pod may not reference secrets")
        );
        // Secrets named anywhere else count as well, as upstream's VisitPodSecretNames.
        for spec in [
            json!({"imagePullSecrets": [{"name": "reg"}]}),
            json!({"containers": [{"envFrom": [{"secretRef": {"name": "x"}}]}]}),
            json!({"initContainers": [{"env": [{"name": "A",
                "valueFrom": {"secretKeyRef": {"name": "x", "key": "k"}}}]}]}),
            json!({"volumes": [{"projected": {"sources": [{"secret": {"name": "x"}}]}}]}),
            json!({"volumes": [{"csi": {"driver": "d", "nodePublishSecretRef": {"name": "x"}}}]}),
            json!({"volumes": [{"cephfs": {"monitors": [], "secretRef": {"name": "x"}}}]}),
        ] {
            assert_eq!(
                mirror_pod_problem(&json!({ "spec": spec })),
                Some("a mirror pod may not reference secrets"),
                "{spec}"
            );
        }
        // ConfigMaps are not this plugin's business (NodeRestriction's, for nodes).
        assert_eq!(
            mirror_pod_problem(&json!({"spec": {"volumes": [{"configMap": {"name": "c"}}]}})),
            None
        );
    }

    #[test]
    fn pull_secrets_only_when_the_pod_has_none() {
        let sa = json!({"imagePullSecrets": [{"name": "reg"}]});
        let mut pod = json!({"spec": {}});
        copy_pull_secrets(&sa, &mut pod);
        assert_eq!(pod["spec"]["imagePullSecrets"], json!([{"name": "reg"}]));
        let mut pod = json!({"spec": {"imagePullSecrets": [{"name": "own"}]}});
        copy_pull_secrets(&sa, &mut pod);
        assert_eq!(pod["spec"]["imagePullSecrets"], json!([{"name": "own"}]));
    }
}
