//! Resource quota evaluation (Kubernetes' `pkg/quota/v1` and its core evaluators), on JSON
//! objects: what an object uses, which quotas it falls under, and whether charging it fits.
//! ResourceQuota admission and the resource quota controller both measure with this, so the
//! usage one charges is the usage the other recomputes.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde_json::{Map, Value};

/// How a quantity prints (Kubernetes' `resource.Format`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    DecimalSI,
    BinarySI,
    DecimalExponent,
}

/// A quantity in thousandths of its unit, with the format it prints in.
#[derive(Clone, Copy, Debug)]
pub struct Quantity {
    pub milli: i128,
    pub format: Format,
}

impl PartialEq for Quantity {
    fn eq(&self, other: &Self) -> bool {
        self.milli == other.milli
    }
}

impl Quantity {
    pub const ZERO: Quantity = Quantity {
        milli: 0,
        format: Format::DecimalSI,
    };

    pub fn from_int(v: i64) -> Self {
        Quantity {
            milli: i128::from(v) * 1000,
            format: Format::DecimalSI,
        }
    }

    /// `None` when `s` is not a quantity.
    pub fn parse(s: &str) -> Option<Self> {
        let s = s.trim();
        let milli = crate::quantity::parse_scaled(s, 1000)?;
        let suffix = s.trim_start_matches(|c: char| c.is_ascii_digit() || "+-.".contains(c));
        let format = if suffix.ends_with('i') {
            Format::BinarySI
        } else if suffix.len() > 1 && (suffix.starts_with('e') || suffix.starts_with('E')) {
            Format::DecimalExponent
        } else {
            Format::DecimalSI
        };
        Some(Quantity {
            milli: i128::from(milli),
            format,
        })
    }

    /// A quantity from JSON (a string, or a number as some clients send).
    pub fn from_json(v: &Value) -> Option<Self> {
        match v {
            Value::String(s) => Self::parse(s),
            Value::Number(n) => Self::parse(&n.to_string()),
            _ => None,
        }
    }

    /// Sum; a zero left side takes the right side's format (as `Quantity.Add`).
    pub fn plus(self, other: Quantity) -> Quantity {
        Quantity {
            milli: self.milli + other.milli,
            format: if self.milli == 0 {
                other.format
            } else {
                self.format
            },
        }
    }
}

impl fmt::Display for Quantity {
    /// The canonical form Kubernetes prints (`500m`, `2`, `1Gi`, `1500Mi`, `2k`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.milli == 0 {
            return f.write_str("0");
        }
        let sign = if self.milli < 0 { "-" } else { "" };
        let abs = self.milli.unsigned_abs();
        // Binary only for whole values of 1024 and more; smaller ones print as decimal.
        if self.format == Format::BinarySI && abs.is_multiple_of(1000) && abs / 1000 >= 1024 {
            let mut v = abs / 1000;
            let mut i = 0;
            while i < 6 && v.is_multiple_of(1024) {
                v /= 1024;
                i += 1;
            }
            let suffix = ["", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei"][i];
            return write!(f, "{sign}{v}{suffix}");
        }
        if !abs.is_multiple_of(1000) {
            return write!(f, "{sign}{abs}m");
        }
        let mut v = abs / 1000;
        let mut e = 0;
        while e < 18 && v.is_multiple_of(1000) {
            v /= 1000;
            e += 3;
        }
        match self.format {
            Format::DecimalExponent if e > 0 => write!(f, "{sign}{v}e{e}"),
            Format::DecimalExponent => write!(f, "{sign}{v}"),
            _ => {
                let suffix = ["", "k", "M", "G", "T", "P", "E"][e / 3];
                write!(f, "{sign}{v}{suffix}")
            }
        }
    }
}

/// Resource name to quantity (`ResourceList`), sorted as Kubernetes prints them.
pub type ResourceList = BTreeMap<String, Quantity>;

/// A `ResourceList` from JSON; entries that do not parse are left out.
pub fn parse_list(v: Option<&Value>) -> ResourceList {
    v.and_then(Value::as_object)
        .into_iter()
        .flatten()
        .filter_map(|(k, q)| Some((k.clone(), Quantity::from_json(q)?)))
        .collect()
}

pub fn to_json(list: &ResourceList) -> Value {
    Value::Object(
        list.iter()
            .map(|(k, q)| (k.clone(), Value::String(q.to_string())))
            .collect::<Map<_, _>>(),
    )
}

pub fn add(a: &ResourceList, b: &ResourceList) -> ResourceList {
    let mut out = a.clone();
    for (k, q) in b {
        let sum = out.get(k).copied().unwrap_or(Quantity::ZERO).plus(*q);
        out.insert(k.clone(), sum);
    }
    out
}

/// `a - b` per resource, never below zero (`SubtractWithNonNegativeResult`).
pub fn subtract_non_negative(a: &ResourceList, b: &ResourceList) -> ResourceList {
    let mut out = ResourceList::new();
    for (k, q) in a {
        let milli = (q.milli - b.get(k).map_or(0, |x| x.milli)).max(0);
        out.insert(k.clone(), Quantity { milli, ..*q });
    }
    for k in b.keys().filter(|k| !a.contains_key(*k)) {
        out.insert(k.clone(), Quantity::ZERO);
    }
    out
}

/// Only the resources in `names`.
pub fn mask(list: &ResourceList, names: &BTreeSet<String>) -> ResourceList {
    list.iter()
        .filter(|(k, _)| names.contains(*k))
        .map(|(k, q)| (k.clone(), *q))
        .collect()
}

pub fn remove_zeros(list: &ResourceList) -> ResourceList {
    list.iter()
        .filter(|(_, q)| q.milli != 0)
        .map(|(k, q)| (k.clone(), *q))
        .collect()
}

/// Whether every resource of `a` is at most its value in `b` (resources `b` lacks are not
/// limited); the resources that are over, if not.
pub fn less_than_or_equal(a: &ResourceList, b: &ResourceList) -> (bool, BTreeSet<String>) {
    let exceeded: BTreeSet<String> = a
        .iter()
        .filter(|(k, q)| b.get(*k).is_some_and(|h| q.milli > h.milli))
        .map(|(k, _)| k.clone())
        .collect();
    (exceeded.is_empty(), exceeded)
}

/// `a=1,b=2Gi`, sorted by name, as quota errors print lists.
pub fn pretty_print(list: &ResourceList) -> String {
    list.iter()
        .map(|(k, q)| format!("{k}={q}"))
        .collect::<Vec<_>>()
        .join(",")
}

pub fn names(list: &ResourceList) -> BTreeSet<String> {
    list.keys().cloned().collect()
}

// Resource names quota knows.
pub const PODS: &str = "pods";
pub const CPU: &str = "cpu";
pub const MEMORY: &str = "memory";
pub const EPHEMERAL_STORAGE: &str = "ephemeral-storage";
pub const REQUESTS_CPU: &str = "requests.cpu";
pub const REQUESTS_MEMORY: &str = "requests.memory";
pub const REQUESTS_EPHEMERAL_STORAGE: &str = "requests.ephemeral-storage";
pub const LIMITS_CPU: &str = "limits.cpu";
pub const LIMITS_MEMORY: &str = "limits.memory";
pub const LIMITS_EPHEMERAL_STORAGE: &str = "limits.ephemeral-storage";
pub const SERVICES: &str = "services";
pub const SERVICES_LOADBALANCERS: &str = "services.loadbalancers";
pub const SERVICES_NODEPORTS: &str = "services.nodeports";
pub const PERSISTENT_VOLUME_CLAIMS: &str = "persistentvolumeclaims";
pub const REQUESTS_STORAGE: &str = "requests.storage";
/// `<class>.storageclass.storage.k8s.io/<resource>`: per-StorageClass PVC quota.
pub const STORAGE_CLASS_SUFFIX: &str = ".storageclass.storage.k8s.io/";
const REQUESTS_PREFIX: &str = "requests.";
const HUGEPAGES_PREFIX: &str = "hugepages-";
const REQUESTS_HUGEPAGES_PREFIX: &str = "requests.hugepages-";

const POD_RESOURCES: [&str; 11] = [
    "count/pods",
    CPU,
    MEMORY,
    EPHEMERAL_STORAGE,
    REQUESTS_CPU,
    REQUESTS_MEMORY,
    REQUESTS_EPHEMERAL_STORAGE,
    LIMITS_CPU,
    LIMITS_MEMORY,
    LIMITS_EPHEMERAL_STORAGE,
    PODS,
];

/// The resources a quota on cpu or memory requires every container to set (a historical
/// coupling Kubernetes keeps for these six only).
const VALIDATION_SET: [&str; 6] = [
    CPU,
    MEMORY,
    REQUESTS_CPU,
    REQUESTS_MEMORY,
    LIMITS_CPU,
    LIMITS_MEMORY,
];

/// The kinds whose plain resource name is also an object count (`secrets` as well as
/// `count/secrets`).
const LEGACY_COUNTS: [&str; 4] = [
    "configmaps",
    "secrets",
    "replicationcontrollers",
    "resourcequotas",
];

/// `count/<resource>.<group>` (`count/<resource>` for the core group).
pub fn object_count_name(group: &str, resource: &str) -> String {
    if group.is_empty() {
        format!("count/{resource}")
    } else {
        format!("count/{resource}.{group}")
    }
}

/// A resource name Kubernetes defines itself (no domain, or a `kubernetes.io/` one).
fn is_native(name: &str) -> bool {
    !name.contains('/') || name.contains("kubernetes.io/")
}

/// An extended resource a container may request (`example.com/gpu`).
fn is_extended(name: &str) -> bool {
    !is_native(name) && !name.starts_with(REQUESTS_PREFIX)
}

/// What an evaluator measures.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Measure {
    Pods,
    Services,
    Claims,
    /// Object count, with its legacy alias if it has one.
    Count(Option<String>),
}

/// Measures one group/resource (Kubernetes' `quota.Evaluator`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Evaluator {
    pub group: String,
    pub resource: String,
    measure: Measure,
}

/// A write quota admission looks at.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Operation {
    Create,
    Update,
}

/// One scope a quota is restricted to (spec.scopes become `Exists` requirements).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScopeRequirement {
    pub scope: String,
    pub operator: String,
    pub values: Vec<String>,
}

impl Evaluator {
    /// The evaluator of a group/resource; `None` for what quota ignores (core Events).
    pub fn for_resource(group: &str, resource: &str) -> Option<Evaluator> {
        let measure = match (group, resource) {
            ("", "events") => return None,
            ("", "pods") => Measure::Pods,
            ("", "services") => Measure::Services,
            ("", "persistentvolumeclaims") => Measure::Claims,
            ("", r) if LEGACY_COUNTS.contains(&r) => Measure::Count(Some(r.to_string())),
            _ => Measure::Count(None),
        };
        Some(Evaluator {
            group: group.into(),
            resource: resource.into(),
            measure,
        })
    }

    /// Every evaluator a quota with `hard` needs: the core ones, plus an object count for
    /// each `count/<resource>.<group>` of another kind.
    pub fn for_quota(hard: &ResourceList) -> Vec<Evaluator> {
        let mut out: Vec<Evaluator> = ["pods", "services", "persistentvolumeclaims"]
            .into_iter()
            .chain(LEGACY_COUNTS)
            .filter_map(|r| Evaluator::for_resource("", r))
            .collect();
        for name in hard.keys() {
            let Some(gr) = name.strip_prefix("count/") else {
                continue;
            };
            let (resource, group) = gr.split_once('.').unwrap_or((gr, ""));
            if out
                .iter()
                .any(|e| e.group == group && e.resource == resource)
            {
                continue;
            }
            out.extend(Evaluator::for_resource(group, resource));
        }
        out
    }

    fn count_name(&self) -> String {
        object_count_name(&self.group, &self.resource)
    }

    /// Whether admission charges this write (`Handles`).
    pub fn handles(&self, op: Operation) -> bool {
        match self.measure {
            Measure::Pods | Measure::Count(_) => op == Operation::Create,
            Measure::Services | Measure::Claims => true,
        }
    }

    /// The resources of `input` this evaluator measures.
    pub fn matching_resources<'a>(
        &self,
        input: impl IntoIterator<Item = &'a String>,
    ) -> BTreeSet<String> {
        let count = self.count_name();
        input
            .into_iter()
            .filter(|r| {
                let r = r.as_str();
                r == count
                    || match &self.measure {
                        Measure::Pods => {
                            POD_RESOURCES.contains(&r)
                                || r.starts_with(HUGEPAGES_PREFIX)
                                || r.starts_with(REQUESTS_HUGEPAGES_PREFIX)
                                || (!is_native(r) && r.starts_with(REQUESTS_PREFIX))
                        }
                        Measure::Services => {
                            [SERVICES, SERVICES_LOADBALANCERS, SERVICES_NODEPORTS].contains(&r)
                        }
                        Measure::Claims => {
                            r == PERSISTENT_VOLUME_CLAIMS
                                || r == REQUESTS_STORAGE
                                || [PERSISTENT_VOLUME_CLAIMS, REQUESTS_STORAGE]
                                    .iter()
                                    .any(|s| {
                                        r.strip_suffix(s)
                                            .is_some_and(|p| p.ends_with(STORAGE_CLASS_SUFFIX))
                                    })
                        }
                        Measure::Count(alias) => alias.as_deref() == Some(r),
                    }
            })
            .cloned()
            .collect()
    }

    /// What `obj` uses. `now` (Unix seconds) decides whether a pod past its deletion grace
    /// period still counts.
    pub fn usage(&self, obj: &Value, now: i64) -> ResourceList {
        let one = Quantity::from_int(1);
        let mut out = ResourceList::new();
        out.insert(self.count_name(), one);
        match &self.measure {
            Measure::Pods => {
                // count/pods counts every stored pod; the compute resources (and `pods`)
                // only those still alive.
                if pod_counts(obj, now) {
                    let (requests, limits) = pod_requests_limits(obj);
                    out = add(&out, &compute_usage(&requests, &limits));
                }
            }
            Measure::Services => {
                out.insert(SERVICES.into(), one);
                let ports = obj
                    .pointer("/spec/ports")
                    .and_then(Value::as_array)
                    .map_or(&[][..], Vec::as_slice);
                let all_ports = Quantity::from_int(ports.len() as i64);
                match obj.pointer("/spec/type").and_then(Value::as_str) {
                    Some("NodePort") => {
                        out.insert(SERVICES_NODEPORTS.into(), all_ports);
                    }
                    Some("LoadBalancer") => {
                        // Without allocated node ports, only those asked for explicitly.
                        let nodeports = if obj
                            .pointer("/spec/allocateLoadBalancerNodePorts")
                            .and_then(Value::as_bool)
                            == Some(false)
                        {
                            let n = ports
                                .iter()
                                .filter(|p| {
                                    p.get("nodePort").and_then(Value::as_i64).unwrap_or(0) != 0
                                })
                                .count();
                            Quantity::from_int(n as i64)
                        } else {
                            all_ports
                        };
                        out.insert(SERVICES_NODEPORTS.into(), nodeports);
                        out.insert(SERVICES_LOADBALANCERS.into(), one);
                    }
                    _ => {}
                }
            }
            Measure::Claims => {
                out.insert(PERSISTENT_VOLUME_CLAIMS.into(), one);
                let class = claim_class(obj);
                if let Some(c) = class {
                    out.insert(
                        format!("{c}{STORAGE_CLASS_SUFFIX}{PERSISTENT_VOLUME_CLAIMS}"),
                        one,
                    );
                }
                // A resize counts at the larger of what is asked and what was allocated.
                let requested = obj
                    .pointer("/spec/resources/requests/storage")
                    .and_then(Quantity::from_json);
                let allocated = obj
                    .pointer("/status/allocatedResources/storage")
                    .and_then(Quantity::from_json);
                let storage = match (requested, allocated) {
                    (Some(r), Some(a)) if a.milli > r.milli => Some(a),
                    (Some(r), _) => Some(r),
                    (None, a) => a,
                };
                if let Some(s) = storage {
                    out.insert(REQUESTS_STORAGE.into(), s);
                    if let Some(c) = class {
                        out.insert(format!("{c}{STORAGE_CLASS_SUFFIX}{REQUESTS_STORAGE}"), s);
                    }
                }
            }
            Measure::Count(alias) => {
                if let Some(a) = alias {
                    out.insert(a.clone(), one);
                }
            }
        }
        out
    }

    /// Whether `obj` is in the scope `req`; only pods have scopes, so a scoped quota never
    /// covers anything else.
    pub fn matches_scope(&self, req: &ScopeRequirement, obj: &Value) -> bool {
        if self.measure != Measure::Pods {
            return false;
        }
        let spec = obj.get("spec").unwrap_or(&Value::Null);
        match req.scope.as_str() {
            "Terminating" => is_terminating(spec),
            "NotTerminating" => !is_terminating(spec),
            "BestEffort" => is_best_effort(spec),
            "NotBestEffort" => !is_best_effort(spec),
            "PriorityClass" => {
                let class = spec
                    .get("priorityClassName")
                    .and_then(Value::as_str)
                    .filter(|c| !c.is_empty());
                match req.operator.as_str() {
                    "In" => class.is_some_and(|c| req.values.iter().any(|v| v == c)),
                    "NotIn" => !class.is_some_and(|c| req.values.iter().any(|v| v == c)),
                    "Exists" => class.is_some(),
                    "DoesNotExist" => class.is_none(),
                    _ => false,
                }
            }
            "CrossNamespacePodAffinity" => uses_cross_namespace_affinity(spec),
            _ => false,
        }
    }

    /// Whether `obj` is in every scope of `quota` (no scopes: everything is).
    pub fn matches_scopes(&self, quota: &Value, obj: &Value) -> bool {
        scope_requirements(quota)
            .iter()
            .all(|r| self.matches_scope(r, obj))
    }

    /// Whether `quota` covers `obj`: it limits (in `status.hard`) a resource this evaluator
    /// measures and `obj` is in its scopes.
    pub fn matches(&self, quota: &Value, obj: &Value) -> bool {
        let hard = parse_list(quota.pointer("/status/hard"));
        !self.matching_resources(hard.keys()).is_empty() && self.matches_scopes(quota, obj)
    }

    /// A pod under a quota on cpu or memory must set them on every container:
    /// `must specify limits.cpu for: a,b; requests.cpu for: a`.
    pub fn constraints(&self, required: &BTreeSet<String>, obj: &Value) -> Result<(), String> {
        if self.measure != Measure::Pods {
            return Ok(());
        }
        let required: BTreeSet<&str> = required
            .iter()
            .map(String::as_str)
            .filter(|r| VALIDATION_SET.contains(r))
            .collect();
        let mut missing: BTreeMap<&str, BTreeSet<String>> = BTreeMap::new();
        for c in containers(obj.get("spec").unwrap_or(&Value::Null)) {
            let (requests, limits) = container_requests_limits(c);
            let has = compute_usage(&requests, &limits);
            for r in &required {
                if !has.contains_key(*r) {
                    let name = c.get("name").and_then(Value::as_str).unwrap_or("");
                    missing.entry(r).or_default().insert(name.to_string());
                }
            }
        }
        if missing.is_empty() {
            return Ok(());
        }
        let parts: Vec<String> = missing
            .iter()
            .map(|(r, names)| {
                format!(
                    "{r} for: {}",
                    names.iter().cloned().collect::<Vec<_>>().join(",")
                )
            })
            .collect();
        Err(format!("must specify {}", parts.join("; ")))
    }
}

/// A quota's scopes: `spec.scopes` (as `Exists`) and `spec.scopeSelector`.
pub fn scope_requirements(quota: &Value) -> Vec<ScopeRequirement> {
    let strs = |v: Option<&Value>| -> Vec<String> {
        v.and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .map(str::to_string)
            .collect()
    };
    let mut out: Vec<ScopeRequirement> = strs(quota.pointer("/spec/scopes"))
        .into_iter()
        .map(|scope| ScopeRequirement {
            scope,
            operator: "Exists".into(),
            values: Vec::new(),
        })
        .collect();
    for e in quota
        .pointer("/spec/scopeSelector/matchExpressions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        out.push(ScopeRequirement {
            scope: e
                .get("scopeName")
                .and_then(Value::as_str)
                .unwrap_or("")
                .into(),
            operator: e
                .get("operator")
                .and_then(Value::as_str)
                .unwrap_or("")
                .into(),
            values: strs(e.get("values")),
        });
    }
    out
}

fn containers(spec: &Value) -> impl Iterator<Item = &Value> {
    ["containers", "initContainers"]
        .into_iter()
        .filter_map(|k| spec.get(k).and_then(Value::as_array))
        .flatten()
}

/// A container's requests and limits; a request left out defaults to the limit, as the
/// API server's defaulting does.
fn container_requests_limits(c: &Value) -> (ResourceList, ResourceList) {
    let limits = parse_list(c.pointer("/resources/limits"));
    let mut requests = parse_list(c.pointer("/resources/requests"));
    for (k, q) in &limits {
        requests.entry(k.clone()).or_insert(*q);
    }
    (requests, limits)
}

fn max_into(acc: &mut ResourceList, other: &ResourceList) {
    for (k, q) in other {
        match acc.get(k) {
            Some(cur) if cur.milli >= q.milli => {}
            _ => {
                acc.insert(k.clone(), *q);
            }
        }
    }
}

/// What a pod asks for and is limited to: its containers' sum, or the largest init
/// container if that is more (restartable init containers run alongside and add up), plus
/// the pod overhead.
fn pod_requests_limits(pod: &Value) -> (ResourceList, ResourceList) {
    let spec = pod.get("spec").unwrap_or(&Value::Null);
    let list = |k: &str| {
        spec.get(k)
            .and_then(Value::as_array)
            .map_or(&[][..], Vec::as_slice)
    };
    let mut totals = [ResourceList::new(), ResourceList::new()];
    for (which, total) in totals.iter_mut().enumerate() {
        let pick = |c: &Value| {
            let (r, l) = container_requests_limits(c);
            if which == 0 { r } else { l }
        };
        for c in list("containers") {
            *total = add(total, &pick(c));
        }
        let mut sidecars = ResourceList::new();
        let mut init_max = ResourceList::new();
        for c in list("initContainers") {
            let own = pick(c);
            let running = if c.get("restartPolicy").and_then(Value::as_str) == Some("Always") {
                *total = add(total, &own);
                sidecars = add(&sidecars, &own);
                sidecars.clone()
            } else {
                add(&own, &sidecars)
            };
            max_into(&mut init_max, &running);
        }
        max_into(total, &init_max);
    }
    let [mut requests, mut limits] = totals;
    let overhead = parse_list(spec.get("overhead"));
    requests = add(&requests, &overhead);
    // Overhead raises only the limits that are set.
    for (k, q) in &overhead {
        if let Some(l) = limits.get_mut(k) {
            *l = l.plus(*q);
        }
    }
    (requests, limits)
}

/// The quota resources of requests and limits (`podComputeUsageHelper`).
fn compute_usage(requests: &ResourceList, limits: &ResourceList) -> ResourceList {
    let mut out = ResourceList::new();
    out.insert(PODS.into(), Quantity::from_int(1));
    for (res, plain, req) in [
        (CPU, true, REQUESTS_CPU),
        (MEMORY, true, REQUESTS_MEMORY),
        (EPHEMERAL_STORAGE, true, REQUESTS_EPHEMERAL_STORAGE),
    ] {
        if let Some(q) = requests.get(res) {
            if plain {
                out.insert(res.into(), *q);
            }
            out.insert(req.into(), *q);
        }
    }
    for (res, lim) in [
        (CPU, LIMITS_CPU),
        (MEMORY, LIMITS_MEMORY),
        (EPHEMERAL_STORAGE, LIMITS_EPHEMERAL_STORAGE),
    ] {
        if let Some(q) = limits.get(res) {
            out.insert(lim.into(), *q);
        }
    }
    for (res, q) in requests {
        if res.starts_with(HUGEPAGES_PREFIX) {
            out.insert(res.clone(), *q);
            out.insert(format!("{REQUESTS_PREFIX}{res}"), *q);
        }
        if is_extended(res) {
            out.insert(format!("{REQUESTS_PREFIX}{res}"), *q);
        }
    }
    out
}

/// Whether a pod still counts against compute quota: not finished, and not past the grace
/// period of its deletion (`QuotaV1Pod`).
pub fn pod_counts(pod: &Value, now: i64) -> bool {
    if matches!(
        pod.pointer("/status/phase").and_then(Value::as_str),
        Some("Succeeded" | "Failed")
    ) {
        return false;
    }
    let deleted = pod
        .pointer("/metadata/deletionTimestamp")
        .and_then(Value::as_str)
        .and_then(parse_rfc3339);
    let grace = pod
        .pointer("/metadata/deletionGracePeriodSeconds")
        .and_then(Value::as_i64);
    !matches!((deleted, grace), (Some(d), Some(g)) if now > d + g)
}

fn is_terminating(spec: &Value) -> bool {
    spec.get("activeDeadlineSeconds")
        .and_then(Value::as_i64)
        .is_some_and(|d| d >= 0)
}

/// QoS BestEffort: no container requests or limits cpu or memory.
fn is_best_effort(spec: &Value) -> bool {
    containers(spec).all(|c| {
        ["requests", "limits"].iter().all(|k| {
            let list = parse_list(c.pointer(&format!("/resources/{k}")));
            [CPU, MEMORY]
                .iter()
                .all(|r| list.get(*r).is_none_or(|q| q.milli <= 0))
        })
    })
}

fn uses_cross_namespace_affinity(spec: &Value) -> bool {
    let cross = |t: &Value| {
        t.get("namespaces")
            .and_then(Value::as_array)
            .is_some_and(|n| !n.is_empty())
            || t.get("namespaceSelector").is_some_and(|s| !s.is_null())
    };
    ["podAffinity", "podAntiAffinity"].iter().any(|kind| {
        let Some(a) = spec.pointer(&format!("/affinity/{kind}")) else {
            return false;
        };
        let required = a
            .get("requiredDuringSchedulingIgnoredDuringExecution")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .any(cross);
        let preferred = a
            .get("preferredDuringSchedulingIgnoredDuringExecution")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|w| w.get("podAffinityTerm"))
            .any(cross);
        required || preferred
    })
}

/// A claim's StorageClass: the beta annotation wins over `spec.storageClassName`.
fn claim_class(pvc: &Value) -> Option<&str> {
    pvc.pointer("/metadata/annotations/volume.beta.kubernetes.io~1storage-class")
        .or_else(|| pvc.pointer("/spec/storageClassName"))
        .and_then(Value::as_str)
        .filter(|c| !c.is_empty())
}

/// Seconds since the epoch of an RFC 3339 time (`2024-05-01T10:00:00Z`, offsets and
/// fractions allowed).
pub fn parse_rfc3339(s: &str) -> Option<i64> {
    let num = |r: std::ops::Range<usize>| s.get(r)?.parse::<i64>().ok();
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi, sec) = (num(11..13)?, num(14..16)?, num(17..19)?);
    let rest = s.get(19..)?;
    let rest = rest.trim_start_matches(|c: char| c == '.' || c.is_ascii_digit());
    let offset = match rest {
        "Z" | "z" | "" => 0,
        o => {
            let sign = if o.starts_with('-') { -1 } else { 1 };
            let oh: i64 = o.get(1..3)?.parse().ok()?;
            let om: i64 = o.get(4..6)?.parse().ok()?;
            sign * (oh * 3600 + om * 60)
        }
    };
    // Days from the civil date (Howard Hinnant's algorithm).
    let y = if mo <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (mo + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146097 + doe - 719468;
    Some(days * 86400 + h * 3600 + mi * 60 + sec - offset)
}

/// Whether the quota has a used value for every hard resource in `interesting`.
fn has_usage_stats(quota: &Value, interesting: &BTreeSet<String>) -> bool {
    let hard = parse_list(quota.pointer("/status/hard"));
    let used = parse_list(quota.pointer("/status/used"));
    hard.keys()
        .filter(|k| interesting.contains(*k))
        .all(|k| used.contains_key(k))
}

fn quota_name(quota: &Value) -> &str {
    quota
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("")
}

/// What one write would add to the quotas it falls under (`CheckRequest`): for each quota
/// index, the usage to charge (only resources it limits), or the refusal (without the
/// `<resource> "<name>" is forbidden: ` prefix).
pub fn check_request(
    quotas: &[Value],
    ev: &Evaluator,
    op: Operation,
    obj: &Value,
    old: Option<&Value>,
    now: i64,
) -> Result<Vec<(usize, ResourceList)>, String> {
    let mut interesting = Vec::new();
    for (i, q) in quotas.iter().enumerate() {
        if !ev.matches(q, obj) {
            continue;
        }
        let hard = parse_list(q.pointer("/status/hard"));
        let restricted = ev.matching_resources(hard.keys());
        ev.constraints(&restricted, obj)
            .map_err(|e| format!("failed quota: {}: {e}", quota_name(q)))?;
        if !has_usage_stats(q, &restricted) {
            return Err(format!(
                "status unknown for quota: {}, resources: {}",
                quota_name(q),
                restricted.iter().cloned().collect::<Vec<_>>().join(",")
            ));
        }
        interesting.push(i);
    }
    if interesting.is_empty() {
        return Ok(Vec::new());
    }
    let input = ev.usage(obj, now);
    let negative: Vec<String> = input
        .iter()
        .filter(|(_, q)| q.milli < 0)
        .map(|(k, _)| k.clone())
        .collect();
    if !negative.is_empty() {
        return Err(format!(
            "quota usage is negative for resource(s): {}",
            negative.join(",")
        ));
    }
    // An update is charged only what it adds, under the quotas the old object was in too.
    let update_delta = match (op, old) {
        (Operation::Update, Some(prev))
            if prev
                .pointer("/metadata/resourceVersion")
                .and_then(Value::as_str)
                .is_some_and(|rv| !rv.is_empty()) =>
        {
            Some((subtract_non_negative(&input, &ev.usage(prev, now)), prev))
        }
        _ => None,
    };
    let mut out = Vec::new();
    for i in interesting {
        let q = &quotas[i];
        let delta = match &update_delta {
            Some((d, prev)) if ev.matches(q, prev) => d.clone(),
            _ => input.clone(),
        };
        let delta = remove_zeros(&delta);
        if delta.is_empty() {
            continue;
        }
        let hard = parse_list(q.pointer("/status/hard"));
        let requested = mask(&delta, &names(&hard));
        charge(q, &requested, true)?;
        out.push((i, requested));
    }
    Ok(out)
}

/// `quota`'s `status.used` with `requested` added; refused when `enforce` and that would go
/// over `status.hard`: `exceeded quota: q, requested: pods=1, used: pods=2, limited: pods=2`.
pub fn charge(
    quota: &Value,
    requested: &ResourceList,
    enforce: bool,
) -> Result<ResourceList, String> {
    let hard = parse_list(quota.pointer("/status/hard"));
    let used = parse_list(quota.pointer("/status/used"));
    let new_used = add(&used, requested);
    if enforce {
        let (ok, exceeded) = less_than_or_equal(&mask(&new_used, &names(requested)), &hard);
        if !ok {
            return Err(format!(
                "exceeded quota: {}, requested: {}, used: {}, limited: {}",
                quota_name(quota),
                pretty_print(&mask(requested, &exceeded)),
                pretty_print(&mask(&used, &exceeded)),
                pretty_print(&mask(&hard, &exceeded)),
            ));
        }
    }
    Ok(new_used)
}

/// `quota`'s usage as observed (`CalculateUsage`): every resource of `spec.hard` some
/// evaluator measures, summed over the objects `list` returns for its group/resource (in
/// the quota's namespace). Resources whose objects could not be listed are left out, with
/// the errors returned beside.
pub fn calculate_usage<E: fmt::Display>(
    quota: &Value,
    now: i64,
    mut list: impl FnMut(&Evaluator) -> Result<Vec<Value>, E>,
) -> (ResourceList, Vec<String>) {
    let hard = parse_list(quota.pointer("/spec/hard"));
    let mut usage = ResourceList::new();
    let mut matched = BTreeSet::new();
    let mut errors = Vec::new();
    for ev in Evaluator::for_quota(&hard) {
        let resources = ev.matching_resources(hard.keys());
        if resources.is_empty() {
            continue;
        }
        let items = match list(&ev) {
            Ok(items) => items,
            Err(e) => {
                errors.push(format!("{}.{}: {e}", ev.resource, ev.group));
                continue;
            }
        };
        let mut used: ResourceList = resources
            .iter()
            .map(|r| (r.clone(), Quantity::ZERO))
            .collect();
        for item in items.iter().filter(|o| ev.matches_scopes(quota, o)) {
            used = add(&used, &ev.usage(item, now));
        }
        usage = add(&usage, &used);
        matched.extend(resources);
    }
    (mask(&usage, &matched), errors)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn list(v: Value) -> ResourceList {
        parse_list(Some(&v))
    }

    fn pod(containers: Value) -> Value {
        json!({"metadata": {"name": "p"}, "spec": {"containers": containers}})
    }

    fn quota(hard: Value, used: Option<Value>) -> Value {
        let mut q =
            json!({"metadata": {"name": "q", "resourceVersion": "5"}, "spec": {"hard": hard}});
        if let Some(u) = used {
            q["status"] = json!({"hard": hard, "used": u});
        }
        q
    }

    #[test]
    fn quantities_print_canonically() {
        let p = |s: &str| Quantity::parse(s).unwrap().to_string();
        assert_eq!(p("100m"), "100m");
        assert_eq!(p("1.5"), "1500m");
        assert_eq!(p("2000m"), "2");
        assert_eq!(p("1024Mi"), "1Gi");
        assert_eq!(p("1536Mi"), "1536Mi");
        assert_eq!(p("1000"), "1k");
        assert_eq!(p("512Ki"), "512Ki");
        assert_eq!(p("1e3"), "1e3");
        let sum = Quantity::ZERO.plus(Quantity::parse("128Mi").unwrap());
        assert_eq!(
            sum.plus(Quantity::parse("128Mi").unwrap()).to_string(),
            "256Mi"
        );
    }

    #[test]
    fn pod_usage_takes_the_larger_of_containers_and_init_containers() {
        let p = json!({"spec": {
            "containers": [
                {"name": "a", "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}, "limits": {"cpu": "200m"}}},
                {"name": "b", "resources": {"requests": {"cpu": "100m", "example.com/gpu": "1"}}}
            ],
            "initContainers": [{"name": "i", "resources": {"requests": {"cpu": "500m"}}}],
            "overhead": {"cpu": "10m"}
        }});
        let ev = Evaluator::for_resource("", "pods").unwrap();
        let u = ev.usage(&p, 0);
        assert_eq!(u["pods"].to_string(), "1");
        assert_eq!(u["count/pods"].to_string(), "1");
        assert_eq!(u["requests.cpu"].to_string(), "510m");
        assert_eq!(u["cpu"].to_string(), "510m");
        assert_eq!(u["limits.cpu"].to_string(), "210m");
        assert_eq!(u["requests.memory"].to_string(), "64Mi");
        assert_eq!(u["requests.example.com/gpu"].to_string(), "1");
        assert!(!u.contains_key("limits.memory"));
    }

    #[test]
    fn finished_and_expired_pods_count_only_as_objects() {
        let ev = Evaluator::for_resource("", "pods").unwrap();
        let mut p = pod(json!([{"name": "c"}]));
        p["status"] = json!({"phase": "Succeeded"});
        assert_eq!(
            names(&ev.usage(&p, 0)),
            BTreeSet::from(["count/pods".to_string()])
        );
        let mut p = pod(json!([{"name": "c"}]));
        p["metadata"]["deletionTimestamp"] = json!("2024-01-01T00:00:00Z");
        p["metadata"]["deletionGracePeriodSeconds"] = json!(30);
        let t = parse_rfc3339("2024-01-01T00:00:00Z").unwrap();
        assert_eq!(t, 1_704_067_200);
        assert!(ev.usage(&p, t + 10).contains_key("pods"));
        assert!(!ev.usage(&p, t + 31).contains_key("pods"));
    }

    #[test]
    fn exceeding_a_quota_is_refused_with_kubernetes_message() {
        let ev = Evaluator::for_resource("", "pods").unwrap();
        let q = quota(json!({"pods": "2"}), Some(json!({"pods": "2"})));
        let err = check_request(
            &[q],
            &ev,
            Operation::Create,
            &pod(json!([{"name": "c"}])),
            None,
            0,
        )
        .unwrap_err();
        assert_eq!(
            err,
            "exceeded quota: q, requested: pods=1, used: pods=2, limited: pods=2"
        );
        let q = quota(json!({"pods": "2"}), Some(json!({"pods": "1"})));
        let out = check_request(
            &[q],
            &ev,
            Operation::Create,
            &pod(json!([{"name": "c"}])),
            None,
            0,
        )
        .unwrap();
        assert_eq!(out, vec![(0, list(json!({"pods": "1"})))]);
    }

    #[test]
    fn cpu_and_memory_quotas_require_them_on_every_container() {
        let ev = Evaluator::for_resource("", "pods").unwrap();
        let q = quota(
            json!({"requests.cpu": "1", "limits.memory": "1Gi"}),
            Some(json!({"requests.cpu": "0", "limits.memory": "0"})),
        );
        let p = pod(json!([
            {"name": "a", "resources": {"requests": {"cpu": "100m"}}},
            {"name": "b"}
        ]));
        let err = check_request(
            std::slice::from_ref(&q),
            &ev,
            Operation::Create,
            &p,
            None,
            0,
        )
        .unwrap_err();
        assert_eq!(
            err,
            "failed quota: q: must specify limits.memory for: a,b; requests.cpu for: b"
        );
        // A limit alone also sets the request.
        let p =
            pod(json!([{"name": "a", "resources": {"limits": {"cpu": "2", "memory": "100Mi"}}}]));
        let err = check_request(&[q], &ev, Operation::Create, &p, None, 0).unwrap_err();
        assert_eq!(
            err,
            "exceeded quota: q, requested: requests.cpu=2, used: requests.cpu=0, limited: requests.cpu=1"
        );
    }

    #[test]
    fn quotas_without_status_do_not_apply_and_missing_usage_is_unknown() {
        let ev = Evaluator::for_resource("", "pods").unwrap();
        let p = pod(json!([{"name": "c"}]));
        let q = quota(json!({"pods": "1"}), None);
        assert!(
            check_request(&[q], &ev, Operation::Create, &p, None, 0)
                .unwrap()
                .is_empty()
        );
        let mut q = quota(
            json!({"pods": "1", "count/pods": "3"}),
            Some(json!({"pods": "0"})),
        );
        q["status"]["hard"] = json!({"pods": "1", "count/pods": "3"});
        let err = check_request(&[q], &ev, Operation::Create, &p, None, 0).unwrap_err();
        assert_eq!(
            err,
            "status unknown for quota: q, resources: count/pods,pods"
        );
    }

    #[test]
    fn scopes() {
        let ev = Evaluator::for_resource("", "pods").unwrap();
        let best_effort = pod(json!([{"name": "c"}]));
        let burstable = pod(json!([{"name": "c", "resources": {"requests": {"cpu": "1"}}}]));
        let mut q = quota(json!({"pods": "5"}), Some(json!({"pods": "0"})));
        q["spec"]["scopes"] = json!(["BestEffort"]);
        assert!(ev.matches(&q, &best_effort));
        assert!(!ev.matches(&q, &burstable));
        let mut q = quota(json!({"pods": "5"}), Some(json!({"pods": "0"})));
        q["spec"]["scopeSelector"] = json!({"matchExpressions": [
            {"scopeName": "PriorityClass", "operator": "In", "values": ["high"]}
        ]});
        let mut high = best_effort.clone();
        high["spec"]["priorityClassName"] = json!("high");
        assert!(ev.matches(&q, &high));
        assert!(!ev.matches(&q, &best_effort));
        q["spec"]["scopeSelector"]["matchExpressions"][0]["operator"] = json!("NotIn");
        assert!(!ev.matches(&q, &high));
        assert!(ev.matches(&q, &best_effort));
        q["spec"]["scopeSelector"]["matchExpressions"][0]["operator"] = json!("DoesNotExist");
        assert!(ev.matches(&q, &best_effort));
        let mut t = burstable.clone();
        t["spec"]["activeDeadlineSeconds"] = json!(10);
        let mut q = quota(json!({"pods": "5"}), Some(json!({"pods": "0"})));
        q["spec"]["scopes"] = json!(["Terminating", "NotBestEffort"]);
        assert!(ev.matches(&q, &t));
        assert!(!ev.matches(&q, &burstable));
        // Services are never in a scope.
        let svc = Evaluator::for_resource("", "services").unwrap();
        let mut q = quota(json!({"services": "5"}), Some(json!({"services": "0"})));
        assert!(svc.matches(&q, &json!({"spec": {}})));
        q["spec"]["scopes"] = json!(["BestEffort"]);
        assert!(!svc.matches(&q, &json!({"spec": {}})));
    }

    #[test]
    fn services_claims_and_object_counts() {
        let svc = Evaluator::for_resource("", "services").unwrap();
        let u = svc.usage(
            &json!({"spec": {"type": "NodePort", "ports": [{"port": 80}, {"port": 443}]}}),
            0,
        );
        assert_eq!(
            pretty_print(&u),
            "count/services=1,services=1,services.nodeports=2"
        );
        let u = svc.usage(
            &json!({"spec": {"type": "LoadBalancer", "ports": [{"port": 80}]}}),
            0,
        );
        assert_eq!(u["services.loadbalancers"].to_string(), "1");
        let pvc = Evaluator::for_resource("", "persistentvolumeclaims").unwrap();
        let u = pvc.usage(
            &json!({"spec": {"storageClassName": "gold", "resources": {"requests": {"storage": "1Gi"}}}}),
            0,
        );
        assert_eq!(
            u["gold.storageclass.storage.k8s.io/requests.storage"].to_string(),
            "1Gi"
        );
        assert_eq!(
            u["gold.storageclass.storage.k8s.io/persistentvolumeclaims"].to_string(),
            "1"
        );
        assert_eq!(u["requests.storage"].to_string(), "1Gi");
        let hard =
            list(json!({"gold.storageclass.storage.k8s.io/requests.storage": "1", "pods": "1"}));
        assert_eq!(pvc.matching_resources(hard.keys()).len(), 1);
        let cm = Evaluator::for_resource("", "configmaps").unwrap();
        assert_eq!(
            pretty_print(&cm.usage(&json!({}), 0)),
            "configmaps=1,count/configmaps=1"
        );
        let deploy = Evaluator::for_resource("apps", "deployments").unwrap();
        assert_eq!(
            pretty_print(&deploy.usage(&json!({}), 0)),
            "count/deployments.apps=1"
        );
        assert!(Evaluator::for_resource("", "events").is_none());
        // An update that grows a claim is charged the growth.
        let q = quota(
            json!({"requests.storage": "3Gi"}),
            Some(json!({"requests.storage": "2Gi"})),
        );
        let old = json!({"metadata": {"resourceVersion": "1"}, "spec": {"resources": {"requests": {"storage": "1Gi"}}}});
        let new = json!({"metadata": {"resourceVersion": "1"}, "spec": {"resources": {"requests": {"storage": "3Gi"}}}});
        let err = check_request(&[q], &pvc, Operation::Update, &new, Some(&old), 0).unwrap_err();
        assert_eq!(
            err,
            "exceeded quota: q, requested: requests.storage=2Gi, used: requests.storage=2Gi, limited: requests.storage=3Gi"
        );
    }

    #[test]
    fn usage_is_calculated_over_the_namespace() {
        let mut q = quota(
            json!({"pods": "10", "requests.cpu": "4", "count/deployments.apps": "2", "configmaps": "3"}),
            None,
        );
        q["spec"]["scopes"] = json!(["NotBestEffort"]);
        let pods = vec![
            pod(json!([{"name": "c", "resources": {"requests": {"cpu": "250m"}}}])),
            pod(json!([{"name": "c", "resources": {"requests": {"cpu": "500m"}}}])),
            pod(json!([{"name": "c"}])),
        ];
        let (used, errors) = calculate_usage(&q, 0, |ev| -> Result<Vec<Value>, String> {
            match ev.resource.as_str() {
                "pods" => Ok(pods.clone()),
                "configmaps" => Ok(vec![json!({})]),
                "deployments" => Err("down".into()),
                _ => Ok(vec![]),
            }
        });
        // Scoped: configmaps are never in scope, so they count zero.
        assert_eq!(pretty_print(&used), "configmaps=0,pods=2,requests.cpu=750m");
        assert_eq!(errors, vec!["deployments.apps: down".to_string()]);
    }
}
