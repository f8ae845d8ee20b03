//! Pod Security Admission: a namespace's `pod-security.kubernetes.io/<mode>` labels choose a
//! Pod Security Standard (privileged, baseline or restricted; `-version` labels are taken as
//! `latest`) to enforce (refuse the pod), warn about (Warning headers to the client) or
//! audit. Workload templates (Deployments, Jobs, ...) are checked too, as warnings only.
//! Nothing is exempt, as upstream's defaults.

use serde_json::Value;

use crate::admission::support::forbidden;
use crate::admission::{Attributes, Lister, Operation};
use crate::error::ApiResult;

const LABEL_PREFIX: &str = "pod-security.kubernetes.io/";

/// A Pod Security Standard, least to most restrictive.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Privileged,
    Baseline,
    Restricted,
}

impl Level {
    fn parse(s: &str) -> Option<Level> {
        match s {
            "privileged" => Some(Level::Privileged),
            "baseline" => Some(Level::Baseline),
            "restricted" => Some(Level::Restricted),
            _ => None,
        }
    }
    fn as_str(self) -> &'static str {
        match self {
            Level::Privileged => "privileged",
            Level::Baseline => "baseline",
            Level::Restricted => "restricted",
        }
    }
}

/// The level a namespace sets for `mode` (enforce, warn, audit). An unrecognised value is
/// the most restrictive level, as upstream fails closed on a bad label.
fn namespace_level(ns: &Value, mode: &str) -> Level {
    let label = ns
        .pointer("/metadata/labels")
        .and_then(Value::as_object)
        .and_then(|labels| labels.get(&format!("{LABEL_PREFIX}{mode}")))
        .and_then(Value::as_str);
    match label {
        None => Level::Privileged,
        Some(v) => Level::parse(v).unwrap_or(Level::Restricted),
    }
}

/// Where a kind keeps the pod it makes: the object itself for pods, else its template.
fn pod_of<'a>(a: &Attributes<'_>, obj: &'a Value) -> Option<(&'a Value, bool)> {
    match (a.info.group, a.info.kind) {
        ("", "Pod") => Some((obj, true)),
        ("", "ReplicationController" | "PodTemplate")
        | ("apps", "Deployment" | "ReplicaSet" | "DaemonSet" | "StatefulSet")
        | ("batch", "Job") => {
            let t = if a.info.kind == "PodTemplate" {
                obj.get("template")
            } else {
                obj.pointer("/spec/template")
            };
            t.map(|t| (t, false))
        }
        ("batch", "CronJob") => obj
            .pointer("/spec/jobTemplate/spec/template")
            .map(|t| (t, false)),
        _ => None,
    }
}

/// Refuses a pod violating its namespace's enforced level; warns about the warn level (and
/// about workload templates violating either).
pub async fn validate(lister: &dyn Lister, a: &Attributes<'_>, obj: &Value) -> ApiResult<()> {
    if a.subresource.is_some()
        || !matches!(a.operation, Operation::Create | Operation::Update)
        || a.namespace.is_empty()
    {
        return Ok(());
    }
    let Some((pod, is_pod)) = pod_of(a, obj) else {
        return Ok(());
    };
    // An update that leaves the pod (template) as it was cannot newly violate anything.
    if let Some(old) = a.old
        && pod_of(a, old).map(|(p, _)| (p.get("spec"), p.pointer("/metadata/annotations")))
            == Some((pod.get("spec"), pod.pointer("/metadata/annotations")))
    {
        return Ok(());
    }
    let ns_info = crate::resources::namespace_info();
    let Some(ns) = lister.get(&ns_info, None, a.namespace).await? else {
        // The namespace plugin answers for missing namespaces.
        return Ok(());
    };
    let (enforce, warn, audit) = (
        namespace_level(&ns, "enforce"),
        namespace_level(&ns, "warn"),
        namespace_level(&ns, "audit"),
    );
    let meta = pod.get("metadata").unwrap_or(&Value::Null);
    let spec = pod.get("spec").unwrap_or(&Value::Null);
    let verdict = |level: Level| {
        let v = check(level, meta, spec);
        (!v.is_empty())
            .then(|| format!("PodSecurity \"{}:latest\": {}", level.as_str(), render(&v)))
    };
    let enforced = if enforce > Level::Privileged {
        verdict(enforce)
    } else {
        None
    };
    if let Some(why) = &enforced {
        if is_pod {
            return Err(forbidden(a, Some(obj), format_args!("violates {why}")));
        }
        crate::typed::warn(format!("would violate {why}"));
    }
    // The same level as enforced was judged above.
    if warn > Level::Privileged
        && warn != enforce
        && let Some(why) = verdict(warn)
    {
        crate::typed::warn(format!("would violate {why}"));
    }
    if audit > Level::Privileged
        && let Some(why) = verdict(audit)
    {
        // No audit log yet: the annotation upstream would record goes to the log.
        tracing::info!(
            namespace = a.namespace,
            name = a.name,
            kind = a.info.kind,
            "pod-security.kubernetes.io/audit-violations: would violate {why}"
        );
    }
    Ok(())
}

/// `reason (detail), reason (detail)`: upstream's summary of failed checks.
fn render(v: &[(String, String)]) -> String {
    v.iter()
        .map(|(r, d)| {
            if d.is_empty() {
                r.clone()
            } else {
                format!("{r} ({d})")
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn pluralize<'a>(one: &'a str, many: &'a str, n: usize) -> &'a str {
    if n == 1 { one } else { many }
}

/// `"a", "b"`.
fn join_quote<S: AsRef<str>>(items: &[S]) -> String {
    items
        .iter()
        .map(|s| format!("{:?}", s.as_ref()))
        .collect::<Vec<_>>()
        .join(", ")
}

/// `container "a"` / `containers "a", "b"`.
fn containers_phrase<S: AsRef<str>>(names: &[S]) -> String {
    format!(
        "{} {}",
        pluralize("container", "containers", names.len()),
        join_quote(names)
    )
}

fn sorted_unique(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v.dedup();
    v
}

/// Every container: init, regular, ephemeral.
fn containers(spec: &Value) -> Vec<&Value> {
    ["initContainers", "containers", "ephemeralContainers"]
        .iter()
        .filter_map(|f| spec.get(*f).and_then(Value::as_array))
        .flatten()
        .collect()
}

fn cname(c: &Value) -> String {
    c.get("name")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string()
}

fn sc<'a>(v: &'a Value, path: &str) -> Option<&'a Value> {
    v.pointer(&format!("/securityContext/{path}"))
}

fn is_true(v: Option<&Value>) -> bool {
    v.and_then(Value::as_bool) == Some(true)
}

/// The failed checks of a pod at `level`, as (reason, detail), in upstream's order: the
/// baseline checks, then restricted's (which replace baseline's capabilities, hostPath and
/// seccomp checks), each group by check id.
pub fn check(level: Level, meta: &Value, spec: &Value) -> Vec<(String, String)> {
    let mut out = Vec::new();
    if level == Level::Privileged {
        return out;
    }
    let restricted = level == Level::Restricted;
    let cs = containers(spec);
    let mut push = |r: Option<(String, String)>| out.extend(r);
    push(app_armor(meta, spec, &cs));
    if !restricted {
        push(capabilities_baseline(&cs));
    }
    push(host_namespaces(spec));
    if !restricted {
        push(host_path_volumes(spec));
    }
    push(host_ports(&cs));
    push(host_process(spec, &cs));
    push(privileged(&cs));
    push(proc_mount(&cs));
    push(se_linux(spec, &cs));
    if !restricted {
        push(seccomp_baseline(spec, &cs));
    }
    push(sysctls(spec));
    if restricted {
        push(allow_privilege_escalation(&cs));
        push(capabilities_restricted(&cs));
        push(restricted_volumes(spec));
        push(run_as_non_root(spec, &cs));
        push(run_as_user(spec, &cs));
        push(seccomp_restricted(spec, &cs));
    }
    out
}

fn fail(reason: &str, detail: String) -> Option<(String, String)> {
    Some((reason.to_string(), detail))
}

fn app_armor(meta: &Value, spec: &Value, cs: &[&Value]) -> Option<(String, String)> {
    let mut bad = Vec::new();
    let ok_type = |t: &str| matches!(t, "RuntimeDefault" | "Localhost");
    if let Some(t) = spec
        .pointer("/securityContext/appArmorProfile/type")
        .and_then(Value::as_str)
        && !ok_type(t)
    {
        bad.push(format!(
            "pod must not set securityContext.appArmorProfile.type to {t:?}"
        ));
    }
    for c in cs {
        if let Some(t) = sc(c, "appArmorProfile/type").and_then(Value::as_str)
            && !ok_type(t)
        {
            bad.push(format!(
                "container {:?} must not set securityContext.appArmorProfile.type to {t:?}",
                cname(c)
            ));
        }
    }
    for (k, v) in meta
        .get("annotations")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
    {
        let v = v.as_str().unwrap_or("");
        if k.starts_with("container.apparmor.security.beta.kubernetes.io/")
            && !(v.is_empty() || v == "runtime/default" || v.starts_with("localhost/"))
        {
            bad.push(format!("{k}={v:?}"));
        }
    }
    if bad.is_empty() {
        return None;
    }
    fail(
        pluralize(
            "forbidden AppArmor profile",
            "forbidden AppArmor profiles",
            bad.len(),
        ),
        bad.join(", "),
    )
}

const BASELINE_CAPABILITIES: [&str; 13] = [
    "AUDIT_WRITE",
    "CHOWN",
    "DAC_OVERRIDE",
    "FOWNER",
    "FSETID",
    "KILL",
    "MKNOD",
    "NET_BIND_SERVICE",
    "SETFCAP",
    "SETGID",
    "SETPCAP",
    "SETUID",
    "SYS_CHROOT",
];

fn added_capabilities(c: &Value) -> Vec<String> {
    sc(c, "capabilities/add")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .map(str::to_string)
        .collect()
}

/// Containers adding capabilities outside `allowed`, and the capabilities.
fn forbidden_capabilities(cs: &[&Value], allowed: &[&str]) -> (Vec<String>, Vec<String>) {
    let (mut names, mut caps) = (Vec::new(), Vec::new());
    for c in cs {
        let bad: Vec<String> = added_capabilities(c)
            .into_iter()
            .filter(|cap| !allowed.contains(&cap.as_str()))
            .collect();
        if !bad.is_empty() {
            names.push(cname(c));
            caps.extend(bad);
        }
    }
    (names, sorted_unique(caps))
}

fn capabilities_baseline(cs: &[&Value]) -> Option<(String, String)> {
    let (names, caps) = forbidden_capabilities(cs, &BASELINE_CAPABILITIES);
    if names.is_empty() {
        return None;
    }
    fail(
        "non-default capabilities",
        format!(
            "{} must not include {} in securityContext.capabilities.add",
            containers_phrase(&names),
            join_quote(&caps)
        ),
    )
}

fn host_namespaces(spec: &Value) -> Option<(String, String)> {
    let set: Vec<String> = ["hostNetwork", "hostPID", "hostIPC"]
        .iter()
        .filter(|f| is_true(spec.get(**f)))
        .map(|f| format!("{f}=true"))
        .collect();
    if set.is_empty() {
        return None;
    }
    fail("host namespaces", set.join(", "))
}

fn volumes(spec: &Value) -> Vec<&Value> {
    spec.get("volumes")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .collect()
}

fn host_path_volumes(spec: &Value) -> Option<(String, String)> {
    let names: Vec<String> = volumes(spec)
        .into_iter()
        .filter(|v| v.get("hostPath").is_some())
        .map(cname)
        .collect();
    if names.is_empty() {
        return None;
    }
    fail(
        "hostPath volumes",
        format!(
            "{} {}",
            pluralize("volume", "volumes", names.len()),
            join_quote(&names)
        ),
    )
}

fn host_ports(cs: &[&Value]) -> Option<(String, String)> {
    let (mut names, mut ports) = (Vec::new(), Vec::new());
    for c in cs {
        let used: Vec<String> = c
            .get("ports")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|p| p.get("hostPort").and_then(Value::as_i64))
            .filter(|p| *p != 0)
            .map(|p| p.to_string())
            .collect();
        if !used.is_empty() {
            names.push(cname(c));
            ports.extend(used);
        }
    }
    if names.is_empty() {
        return None;
    }
    let ports = sorted_unique(ports);
    fail(
        "hostPort",
        format!(
            "{} {} {} {}",
            containers_phrase(&names),
            pluralize("uses", "use", names.len()),
            pluralize("hostPort", "hostPorts", ports.len()),
            ports.join(", ")
        ),
    )
}

/// `pod and containers "a", "b"`: who sets a field, pod first.
fn setters(pod: bool, names: &[String]) -> Vec<String> {
    let mut s = Vec::new();
    if pod {
        s.push("pod".to_string());
    }
    if !names.is_empty() {
        s.push(containers_phrase(names));
    }
    s
}

fn host_process(spec: &Value, cs: &[&Value]) -> Option<(String, String)> {
    let pod = is_true(spec.pointer("/securityContext/windowsOptions/hostProcess"));
    let names: Vec<String> = cs
        .iter()
        .filter(|c| is_true(sc(c, "windowsOptions/hostProcess")))
        .map(|c| cname(c))
        .collect();
    if !pod && names.is_empty() {
        return None;
    }
    fail(
        "hostProcess",
        format!(
            "{} must not set securityContext.windowsOptions.hostProcess=true",
            setters(pod, &names).join(" and ")
        ),
    )
}

fn privileged(cs: &[&Value]) -> Option<(String, String)> {
    let names: Vec<String> = cs
        .iter()
        .filter(|c| is_true(sc(c, "privileged")))
        .map(|c| cname(c))
        .collect();
    if names.is_empty() {
        return None;
    }
    fail(
        "privileged",
        format!(
            "{} must not set securityContext.privileged=true",
            containers_phrase(&names)
        ),
    )
}

fn proc_mount(cs: &[&Value]) -> Option<(String, String)> {
    let (mut names, mut values) = (Vec::new(), Vec::new());
    for c in cs {
        if let Some(m) = sc(c, "procMount").and_then(Value::as_str)
            && !(m.is_empty() || m == "Default")
        {
            names.push(cname(c));
            values.push(m.to_string());
        }
    }
    if names.is_empty() {
        return None;
    }
    fail(
        "procMount",
        format!(
            "{} must not set securityContext.procMount to {}",
            containers_phrase(&names),
            join_quote(&sorted_unique(values))
        ),
    )
}

fn se_linux(spec: &Value, cs: &[&Value]) -> Option<(String, String)> {
    const TYPES: [&str; 5] = [
        "",
        "container_t",
        "container_init_t",
        "container_kvm_t",
        "container_engine_t",
    ];
    let (mut types, mut users, mut roles) = (Vec::new(), Vec::new(), Vec::new());
    let mut bad = |o: Option<&Value>| -> bool {
        let Some(o) = o else { return false };
        let get = |k: &str| o.get(k).and_then(Value::as_str).unwrap_or("").to_string();
        let mut is_bad = false;
        if !TYPES.contains(&get("type").as_str()) {
            types.push(get("type"));
            is_bad = true;
        }
        if !get("user").is_empty() {
            users.push(get("user"));
            is_bad = true;
        }
        if !get("role").is_empty() {
            roles.push(get("role"));
            is_bad = true;
        }
        is_bad
    };
    let pod = bad(spec.pointer("/securityContext/seLinuxOptions"));
    let names: Vec<String> = cs
        .iter()
        .filter(|c| bad(sc(c, "seLinuxOptions")))
        .map(|c| cname(c))
        .collect();
    if !pod && names.is_empty() {
        return None;
    }
    let mut what = Vec::new();
    for (field, v) in [("type", types), ("user", users), ("role", roles)] {
        let v = sorted_unique(v);
        if !v.is_empty() {
            what.push(format!(
                "{} {}",
                pluralize(field, &format!("{field}s"), v.len()),
                join_quote(&v)
            ));
        }
    }
    fail(
        "seLinuxOptions",
        format!(
            "{} set forbidden securityContext.seLinuxOptions: {}",
            setters(pod, &names).join(" and "),
            what.join("; ")
        ),
    )
}

fn seccomp_type(v: Option<&Value>) -> Option<&str> {
    v.and_then(|v| v.get("type")).and_then(Value::as_str)
}

fn seccomp_baseline(spec: &Value, cs: &[&Value]) -> Option<(String, String)> {
    let pod = seccomp_type(spec.pointer("/securityContext/seccompProfile")) == Some("Unconfined");
    let names: Vec<String> = cs
        .iter()
        .filter(|c| seccomp_type(sc(c, "seccompProfile")) == Some("Unconfined"))
        .map(|c| cname(c))
        .collect();
    if !pod && names.is_empty() {
        return None;
    }
    fail(
        "seccompProfile",
        format!(
            "{} must not set securityContext.seccompProfile.type to \"Unconfined\"",
            setters(pod, &names).join(" and ")
        ),
    )
}

const SAFE_SYSCTLS: [&str; 10] = [
    "kernel.shm_rmid_forced",
    "net.ipv4.ip_local_port_range",
    "net.ipv4.ip_unprivileged_port_start",
    "net.ipv4.tcp_syncookies",
    "net.ipv4.ping_group_range",
    "net.ipv4.ip_local_reserved_ports",
    "net.ipv4.tcp_keepalive_time",
    "net.ipv4.tcp_fin_timeout",
    "net.ipv4.tcp_keepalive_intvl",
    "net.ipv4.tcp_keepalive_probes",
];

fn sysctls(spec: &Value) -> Option<(String, String)> {
    let bad: Vec<String> = spec
        .pointer("/securityContext/sysctls")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|s| s.get("name").and_then(Value::as_str))
        .filter(|n| !SAFE_SYSCTLS.contains(n))
        .map(str::to_string)
        .collect();
    if bad.is_empty() {
        return None;
    }
    fail("forbidden sysctls", bad.join(", "))
}

fn allow_privilege_escalation(cs: &[&Value]) -> Option<(String, String)> {
    let names: Vec<String> = cs
        .iter()
        .filter(|c| sc(c, "allowPrivilegeEscalation").and_then(Value::as_bool) != Some(false))
        .map(|c| cname(c))
        .collect();
    if names.is_empty() {
        return None;
    }
    fail(
        "allowPrivilegeEscalation != false",
        format!(
            "{} must set securityContext.allowPrivilegeEscalation=false",
            containers_phrase(&names)
        ),
    )
}

fn capabilities_restricted(cs: &[&Value]) -> Option<(String, String)> {
    let missing_drop: Vec<String> = cs
        .iter()
        .filter(|c| {
            !sc(c, "capabilities/drop")
                .and_then(Value::as_array)
                .is_some_and(|d| d.iter().any(|x| x.as_str() == Some("ALL")))
        })
        .map(|c| cname(c))
        .collect();
    let (adding, caps) = forbidden_capabilities(cs, &["NET_BIND_SERVICE"]);
    let mut details = Vec::new();
    if !missing_drop.is_empty() {
        details.push(format!(
            "{} must set securityContext.capabilities.drop=[\"ALL\"]",
            containers_phrase(&missing_drop)
        ));
    }
    if !adding.is_empty() {
        details.push(format!(
            "{} must not include {} in securityContext.capabilities.add",
            containers_phrase(&adding),
            join_quote(&caps)
        ));
    }
    if details.is_empty() {
        return None;
    }
    fail("unrestricted capabilities", details.join("; "))
}

const ALLOWED_VOLUME_TYPES: [&str; 8] = [
    "configMap",
    "csi",
    "downwardAPI",
    "emptyDir",
    "ephemeral",
    "persistentVolumeClaim",
    "projected",
    "secret",
];

fn restricted_volumes(spec: &Value) -> Option<(String, String)> {
    let (mut names, mut types) = (Vec::new(), Vec::new());
    for v in volumes(spec) {
        let bad: Vec<String> = v
            .as_object()
            .into_iter()
            .flatten()
            .map(|(k, _)| k)
            .filter(|k| k.as_str() != "name" && !ALLOWED_VOLUME_TYPES.contains(&k.as_str()))
            .cloned()
            .collect();
        if !bad.is_empty() {
            names.push(cname(v));
            types.extend(bad);
        }
    }
    if names.is_empty() {
        return None;
    }
    let types = sorted_unique(types);
    fail(
        "restricted volume types",
        format!(
            "{} {} {} restricted volume {} {}",
            pluralize("volume", "volumes", names.len()),
            join_quote(&names),
            pluralize("uses", "use", names.len()),
            pluralize("type", "types", types.len()),
            join_quote(&types)
        ),
    )
}

fn run_as_non_root(spec: &Value, cs: &[&Value]) -> Option<(String, String)> {
    let pod_value = spec
        .pointer("/securityContext/runAsNonRoot")
        .and_then(Value::as_bool);
    let pod_user = spec
        .pointer("/securityContext/runAsUser")
        .and_then(Value::as_i64);
    // A non-zero runAsUser implies a non-root user.
    let pod_ok =
        pod_value == Some(true) || (pod_value.is_none() && pod_user.is_some_and(|u| u != 0));
    let (mut explicit, mut implicit) = (Vec::new(), Vec::new());
    for c in cs {
        match sc(c, "runAsNonRoot").and_then(Value::as_bool) {
            Some(false) => explicit.push(cname(c)),
            Some(true) => {}
            None if sc(c, "runAsUser")
                .and_then(Value::as_i64)
                .is_some_and(|u| u != 0) => {}
            None if !pod_ok => implicit.push(cname(c)),
            None => {}
        }
    }
    let mut details = Vec::new();
    if pod_value == Some(false) {
        details.push("pod must not set securityContext.runAsNonRoot=false".to_string());
    }
    if !explicit.is_empty() {
        details.push(format!(
            "{} must not set securityContext.runAsNonRoot=false",
            containers_phrase(&explicit)
        ));
    }
    if !implicit.is_empty() {
        details.push(format!(
            "pod or {} must set securityContext.runAsNonRoot=true",
            containers_phrase(&implicit)
        ));
    }
    if details.is_empty() {
        return None;
    }
    fail("runAsNonRoot != true", details.join("; "))
}

fn run_as_user(spec: &Value, cs: &[&Value]) -> Option<(String, String)> {
    let pod = spec
        .pointer("/securityContext/runAsUser")
        .and_then(Value::as_i64)
        == Some(0);
    let names: Vec<String> = cs
        .iter()
        .filter(|c| sc(c, "runAsUser").and_then(Value::as_i64) == Some(0))
        .map(|c| cname(c))
        .collect();
    if !pod && names.is_empty() {
        return None;
    }
    fail(
        "runAsUser=0",
        format!(
            "{} must not set runAsUser=0",
            setters(pod, &names).join(" and ")
        ),
    )
}

fn seccomp_restricted(spec: &Value, cs: &[&Value]) -> Option<(String, String)> {
    let ok = |t: &str| matches!(t, "RuntimeDefault" | "Localhost");
    let pod_type = seccomp_type(spec.pointer("/securityContext/seccompProfile"));
    let pod_bad = pod_type.is_some_and(|t| !ok(t));
    let pod_ok = pod_type.is_some_and(ok);
    let (mut explicit, mut implicit, mut bad_values) = (Vec::new(), Vec::new(), Vec::new());
    if let Some(t) = pod_type.filter(|t| !ok(t)) {
        bad_values.push(t.to_string());
    }
    for c in cs {
        match seccomp_type(sc(c, "seccompProfile")) {
            Some(t) if !ok(t) => {
                explicit.push(cname(c));
                bad_values.push(t.to_string());
            }
            Some(_) => {}
            None if !pod_ok => implicit.push(cname(c)),
            None => {}
        }
    }
    let mut details = Vec::new();
    if pod_bad || !explicit.is_empty() {
        details.push(format!(
            "{} must not set securityContext.seccompProfile.type to {}",
            setters(pod_bad, &explicit).join(" and "),
            join_quote(&sorted_unique(bad_values))
        ));
    }
    if !implicit.is_empty() {
        details.push(format!(
            "pod or {} must set securityContext.seccompProfile.type to \"RuntimeDefault\" or \"Localhost\"",
            containers_phrase(&implicit)
        ));
    }
    if details.is_empty() {
        return None;
    }
    fail("seccompProfile", details.join("; "))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn msg(level: Level, spec: Value) -> String {
        render(&check(level, &json!({}), &spec))
    }

    #[test]
    fn privileged_pod_at_restricted_reads_as_upstream() {
        let spec = json!({"containers": [{"name": "p", "image": "nginx", "securityContext": {"privileged": true}}]});
        assert_eq!(
            msg(Level::Restricted, spec.clone()),
            "privileged (container \"p\" must not set securityContext.privileged=true), allowPrivilegeEscalation != false (container \"p\" must set securityContext.allowPrivilegeEscalation=false), unrestricted capabilities (container \"p\" must set securityContext.capabilities.drop=[\"ALL\"]), runAsNonRoot != true (pod or container \"p\" must set securityContext.runAsNonRoot=true), seccompProfile (pod or container \"p\" must set securityContext.seccompProfile.type to \"RuntimeDefault\" or \"Localhost\")"
        );
        assert_eq!(
            msg(Level::Baseline, spec.clone()),
            "privileged (container \"p\" must not set securityContext.privileged=true)"
        );
        assert!(msg(Level::Privileged, spec).is_empty());
    }

    #[test]
    fn compliant_restricted_pod_passes() {
        let spec = json!({
            "securityContext": {"runAsNonRoot": true, "seccompProfile": {"type": "RuntimeDefault"}},
            "volumes": [{"name": "d", "emptyDir": {}}, {"name": "t", "projected": {"sources": []}}],
            "containers": [{"name": "c", "securityContext": {"allowPrivilegeEscalation": false,
                "capabilities": {"drop": ["ALL"], "add": ["NET_BIND_SERVICE"]}}}]});
        assert_eq!(msg(Level::Restricted, spec), "");
    }

    #[test]
    fn baseline_checks() {
        let spec = json!({
        "hostNetwork": true, "hostPID": true,
        "securityContext": {"sysctls": [{"name": "kernel.msgmax", "value": "1"}, {"name": "net.ipv4.tcp_syncookies", "value": "1"}],
            "seccompProfile": {"type": "Unconfined"}},
        "volumes": [{"name": "h", "hostPath": {"path": "/"}}],
        "containers": [
            {"name": "a", "ports": [{"containerPort": 80, "hostPort": 8080}], "securityContext": {"capabilities": {"add": ["NET_ADMIN", "CHOWN"]}}},
            {"name": "b", "securityContext": {"procMount": "Unmasked", "capabilities": {"add": ["SYS_ADMIN"]}}},
        ]});
        assert_eq!(
            msg(Level::Baseline, spec),
            "non-default capabilities (containers \"a\", \"b\" must not include \"NET_ADMIN\", \"SYS_ADMIN\" in securityContext.capabilities.add), host namespaces (hostNetwork=true, hostPID=true), hostPath volumes (volume \"h\"), hostPort (container \"a\" uses hostPort 8080), procMount (container \"b\" must not set securityContext.procMount to \"Unmasked\"), seccompProfile (pod must not set securityContext.seccompProfile.type to \"Unconfined\"), forbidden sysctls (kernel.msgmax)"
        );
    }

    #[test]
    fn restricted_only_checks() {
        let spec = json!({
            "securityContext": {"runAsNonRoot": true, "runAsUser": 0, "seccompProfile": {"type": "RuntimeDefault"}},
            "volumes": [{"name": "n", "nfs": {"server": "s", "path": "/"}}],
            "containers": [{"name": "c", "securityContext": {"allowPrivilegeEscalation": false, "runAsNonRoot": false,
                "capabilities": {"drop": ["ALL"], "add": ["CHOWN"]}}}]});
        assert_eq!(
            msg(Level::Restricted, spec),
            "unrestricted capabilities (container \"c\" must not include \"CHOWN\" in securityContext.capabilities.add), restricted volume types (volume \"n\" uses restricted volume type \"nfs\"), runAsNonRoot != true (container \"c\" must not set securityContext.runAsNonRoot=false), runAsUser=0 (pod must not set runAsUser=0)"
        );
    }

    #[test]
    fn levels_from_labels() {
        let ns = json!({"metadata": {"labels": {"pod-security.kubernetes.io/enforce": "baseline", "pod-security.kubernetes.io/warn": "bogus"}}});
        assert_eq!(namespace_level(&ns, "enforce"), Level::Baseline);
        assert_eq!(namespace_level(&ns, "warn"), Level::Restricted);
        assert_eq!(namespace_level(&ns, "audit"), Level::Privileged);
    }
}
