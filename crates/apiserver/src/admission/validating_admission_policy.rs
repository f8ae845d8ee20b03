//! ValidatingAdmissionPolicy (upstream's `plugin/policy/validating`): each binding whose
//! policy's `matchConstraints` (and the binding's own `matchResources`) cover the write
//! evaluates the policy's CEL validations — with its params, `matchConditions` and
//! composition `variables` — and acts as the binding says: Deny refuses the write, Warn
//! adds a warning, Audit records the failure in the request's audit event
//! (`validation.policy.admission.k8s.io/validation_failure`); the policy's `auditAnnotations`
//! go in the event as `<policy>/<key>`. Expressions are compiled once per policy version;
//! evaluation is bounded by CEL's cost limit.

use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Mutex};

use serde_json::{Map, Value, json};

use super::matching::{namespace_selector_matches, object_selector_matches, rules_match};
use crate::admission::{Attributes, Lister, Operation};
use crate::error::{ApiError, ApiResult};
use crate::selector::{LabelSelector, selector_string};
use crate::strategy::admission_policy::VARIABLES;

const GROUP: &str = "admissionregistration.k8s.io";

/// One validation, compiled.
struct Validation {
    expression: String,
    program: cel::Program,
    message: Option<String>,
    message_expression: Option<cel::Program>,
    reason: Option<String>,
}

/// A policy's expressions, compiled.
struct Compiled {
    validations: Vec<Validation>,
    variables: Vec<(String, cel::Program)>,
    match_conditions: Vec<(String, cel::Program)>,
    /// `auditAnnotations`: key and value expression.
    audit_annotations: Vec<(String, cel::Program)>,
    fail: bool,
}

/// Compiled policies by uid, with the resourceVersion they were compiled from.
type ByUid = HashMap<String, (String, Arc<Compiled>)>;
static COMPILED: LazyLock<Mutex<ByUid>> = LazyLock::new(Default::default);

fn str_at<'a>(v: &'a Value, ptr: &str) -> &'a str {
    v.pointer(ptr).and_then(Value::as_str).unwrap_or("")
}

fn items<'a>(v: &'a Value, ptr: &str) -> impl Iterator<Item = &'a Value> {
    v.pointer(ptr)
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
}

fn compile(policy: &Value) -> Result<Compiled, String> {
    let program = |e: &str| cel::compile(e, VARIABLES);
    let mut validations = Vec::new();
    for v in items(policy, "/spec/validations") {
        let expression = str_at(v, "/expression").to_string();
        let message_expression = match str_at(v, "/messageExpression") {
            "" => None,
            m => Some(program(m)?),
        };
        validations.push(Validation {
            program: program(&expression)?,
            expression,
            message: v.get("message").and_then(Value::as_str).map(str::to_string),
            message_expression,
            reason: v.get("reason").and_then(Value::as_str).map(str::to_string),
        });
    }
    let named =
        |ptr: &str, name: &str, expr: &str| -> Result<Vec<(String, cel::Program)>, String> {
            items(policy, ptr)
                .map(|v| Ok((str_at(v, name).to_string(), program(str_at(v, expr))?)))
                .collect()
        };
    Ok(Compiled {
        validations,
        variables: named("/spec/variables", "/name", "/expression")?,
        match_conditions: named("/spec/matchConditions", "/name", "/expression")?,
        audit_annotations: named("/spec/auditAnnotations", "/key", "/valueExpression")?,
        fail: str_at(policy, "/spec/failurePolicy") != "Ignore",
    })
}

fn compiled(policy: &Value) -> Result<Arc<Compiled>, String> {
    let uid = str_at(policy, "/metadata/uid").to_string();
    let rv = str_at(policy, "/metadata/resourceVersion");
    let mut cache = COMPILED.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((at, c)) = cache.get(&uid)
        && at == rv
    {
        return Ok(c.clone());
    }
    let c = Arc::new(compile(policy)?);
    cache.insert(uid, (rv.to_string(), c.clone()));
    Ok(c)
}

/// Whether a `matchResources` (a policy's constraints or a binding's) covers the write. A
/// binding's without `resourceRules` narrows by its selectors only.
async fn matches(
    lister: &dyn Lister,
    m: &Value,
    a: &Attributes<'_>,
    obj: &Value,
    namespace: &mut Option<Arc<Value>>,
    binding: bool,
) -> ApiResult<bool> {
    let rules = m.get("resourceRules");
    let unnarrowed = binding && rules.and_then(Value::as_array).is_none_or(Vec::is_empty);
    if !(unnarrowed || rules_match(rules, a)) || rules_match(m.get("excludeResourceRules"), a) {
        return Ok(false);
    }
    Ok(object_selector_matches(m, a, obj)?
        && namespace_selector_matches(lister, m, a, obj, namespace).await?)
}

/// The `request` variable: the admission request's attributes.
fn request(a: &Attributes<'_>) -> Value {
    let user = a.user.map_or_else(
        || json!({"username": "system:apiserver", "groups": ["system:masters"]}),
        |u| json!({"username": u.name, "uid": u.uid, "groups": u.groups, "extra": u.extra}),
    );
    let kind = json!({"group": a.info.group, "version": a.info.version, "kind": a.info.kind});
    let resource =
        json!({"group": a.info.group, "version": a.info.version, "resource": a.info.plural});
    json!({
        "kind": kind, "resource": resource, "requestKind": kind, "requestResource": resource,
        "subResource": a.subresource.unwrap_or(""), "name": a.name, "namespace": a.namespace,
        "operation": a.operation.as_str(), "userInfo": user, "dryRun": a.dry_run,
    })
}

/// The params a binding refers to: none (`[Null]` when the policy has no paramKind), or
/// the objects its `paramRef` names or selects.
async fn params(
    lister: &dyn Lister,
    policy: &Value,
    binding: &Value,
    a: &Attributes<'_>,
) -> Result<Vec<Value>, String> {
    let Some(kind) = policy.pointer("/spec/paramKind") else {
        return Ok(vec![Value::Null]);
    };
    let Some(r) = binding.pointer("/spec/paramRef") else {
        return Err("paramRef is required when paramKind is set".into());
    };
    let (group, version) = match str_at(kind, "/apiVersion").rsplit_once('/') {
        Some((g, v)) => (g, v),
        None => ("", str_at(kind, "/apiVersion")),
    };
    let info = crate::kinds::by_gvk(group, version, str_at(kind, "/kind"))
        .map(|k| k.info.clone())
        .ok_or_else(|| format!("paramKind {kind} is not served"))?;
    let namespace = match str_at(r, "/namespace") {
        "" if info.namespaced => a.namespace,
        ns => ns,
    };
    let ns = (info.namespaced && !namespace.is_empty()).then_some(namespace);
    let found: Vec<Value> = match str_at(r, "/name") {
        "" => {
            let sel =
                LabelSelector::parse(&selector_string(r.get("selector"))).map_err(|e| e.message)?;
            lister
                .list(&info, ns)
                .await
                .map_err(|e| e.message)?
                .iter()
                .filter(|o| sel.matches(o))
                .map(|o| Value::clone(o))
                .collect()
        }
        name => match lister.get(&info, ns, name).await.map_err(|e| e.message)? {
            Some(o) => vec![Value::clone(&o)],
            None => Vec::new(),
        },
    };
    if found.is_empty() && str_at(r, "/parameterNotFoundAction") != "Allow" {
        return Err(
            "no params found for policy binding with `Deny` parameterNotFoundAction".into(),
        );
    }
    Ok(found)
}

/// What one binding decided.
enum Decision {
    Allow,
    /// `index`: the failed validation's (upstream's `expressionIndex`; 0 for errors outside
    /// the validations).
    Deny {
        message: String,
        reason: String,
        index: usize,
    },
}

/// Evaluates a policy's validations with one set of params; also returns its audit
/// annotations' values (keys without the policy name), when its match conditions hold.
fn evaluate(c: &Compiled, base: &[(&str, &Value)]) -> (Decision, Vec<(String, String)>) {
    let error = |expr: &str, e: String| Decision::Deny {
        message: format!("expression '{expr}' resulted in error: {e}"),
        reason: "Invalid".into(),
        index: 0,
    };
    // Composition variables, each seeing those before it.
    let mut variables = Map::new();
    for (name, program) in &c.variables {
        let vars_value = Value::Object(variables.clone());
        let mut vars = base.to_vec();
        vars.push(("variables", &vars_value));
        match program.eval(&vars) {
            Ok(v) => {
                variables.insert(name.clone(), v);
            }
            Err(e) if c.fail => return (error(program.source(), e), Vec::new()),
            Err(_) => return (Decision::Allow, Vec::new()),
        }
    }
    let variables = Value::Object(variables);
    let mut vars = base.to_vec();
    vars.push(("variables", &variables));
    for (_, condition) in &c.match_conditions {
        match condition.eval_bool(&vars) {
            Ok(true) => {}
            Ok(false) => return (Decision::Allow, Vec::new()),
            Err(e) if c.fail => return (error(condition.source(), e), Vec::new()),
            Err(_) => return (Decision::Allow, Vec::new()),
        }
    }
    let mut decision = validations(c, &vars);
    // Upstream's auditAnnotations: a string is published, null is not; anything else is an
    // error, which fails the request only under failurePolicy Fail.
    let mut annotations = Vec::new();
    for (key, program) in &c.audit_annotations {
        let failed = match program.eval(&vars) {
            Ok(Value::String(v)) => {
                annotations.push((key.clone(), v));
                continue;
            }
            Ok(Value::Null) => continue,
            Ok(other) => format!("valueExpression must evaluate to a string or null, got {other}"),
            Err(e) => e,
        };
        if c.fail && matches!(decision, Decision::Allow) {
            decision = error(program.source(), failed);
        }
    }
    (decision, annotations)
}

/// The first failing validation, if any.
fn validations(c: &Compiled, vars: &[(&str, &Value)]) -> Decision {
    for (index, v) in c.validations.iter().enumerate() {
        match v.program.eval_bool(vars) {
            Ok(true) => {}
            Ok(false) => {
                let from_expression = v
                    .message_expression
                    .as_ref()
                    .and_then(|m| m.eval(vars).ok())
                    .and_then(|m| m.as_str().map(str::to_string))
                    .filter(|m| !m.trim().is_empty() && !m.contains('\n'));
                let message = from_expression
                    .or_else(|| v.message.clone())
                    .unwrap_or_else(|| format!("failed expression: {}", v.expression));
                return Decision::Deny {
                    message,
                    reason: v.reason.clone().unwrap_or_else(|| "Invalid".into()),
                    index,
                };
            }
            Err(e) if c.fail => {
                return Decision::Deny {
                    message: format!("expression '{}' resulted in error: {e}", v.expression),
                    reason: "Invalid".into(),
                    index,
                };
            }
            Err(_) => {}
        }
    }
    Decision::Allow
}

fn static_reason(reason: &str) -> (&'static str, u16) {
    match reason {
        "Forbidden" => ("Forbidden", 403),
        "Unauthorized" => ("Unauthorized", 401),
        "RequestEntityTooLarge" => ("RequestEntityTooLarge", 413),
        _ => ("Invalid", 422),
    }
}

/// The refusal as upstream words it (`admission.NewForbidden` with the policy's reason).
fn denied(
    a: &Attributes<'_>,
    policy: &str,
    binding: &str,
    message: &str,
    reason: &str,
) -> ApiError {
    let cause = format!(
        "ValidatingAdmissionPolicy '{policy}' with binding '{binding}' denied request: {message}"
    );
    let (reason, code) = static_reason(reason);
    ApiError {
        code,
        reason,
        message: format!(
            "{} \"{}\" is forbidden: {cause}",
            a.info.qualified(),
            a.name
        ),
        details: Some(json!({
            "name": a.name, "group": a.info.group, "kind": a.info.plural,
            "causes": [{"message": cause}],
        })),
    }
}

/// Runs every binding that applies to the write; the first denial refuses it.
pub async fn validate(lister: &dyn Lister, a: &Attributes<'_>, obj: &Value) -> ApiResult<()> {
    // Policies never judge writes of the admission configurations themselves.
    if a.info.group == GROUP {
        return Ok(());
    }
    let binding_info = crate::resources::by_kind(GROUP, "ValidatingAdmissionPolicyBinding")?;
    let mut bindings = lister.list(binding_info, None).await?;
    if bindings.is_empty() {
        return Ok(());
    }
    bindings.sort_by(|x, y| crate::meta::name(x).cmp(crate::meta::name(y)));
    let policy_info = crate::resources::by_kind(GROUP, "ValidatingAdmissionPolicy")?;
    let mut namespace: Option<Arc<Value>> = None;
    let object = if a.operation == Operation::Delete {
        Value::Null
    } else {
        obj.clone()
    };
    let old = a.old.cloned().unwrap_or(Value::Null);
    let request = request(a);
    let mut failures = Vec::new();
    for binding in bindings {
        let binding_name = crate::meta::name(&binding);
        let named = str_at(&binding, "/spec/policyName");
        let Some(policy) = lister.get(policy_info, None, named).await? else {
            continue;
        };
        let policy_name = crate::meta::name(&policy);
        let Some(constraints) = policy.pointer("/spec/matchConstraints") else {
            continue;
        };
        if !matches(lister, constraints, a, obj, &mut namespace, false).await? {
            continue;
        }
        if let Some(m) = binding.pointer("/spec/matchResources")
            && !matches(lister, m, a, obj, &mut namespace, true).await?
        {
            continue;
        }
        let fail = str_at(&policy, "/spec/failurePolicy") != "Ignore";
        let configure_error = |e: String| {
            denied(
                a,
                policy_name,
                binding_name,
                &format!("failed to configure binding: {e}"),
                "Invalid",
            )
        };
        let compiled = match compiled(&policy) {
            Ok(c) => c,
            Err(e) if fail => return Err(configure_error(e)),
            Err(_) => continue,
        };
        let params = match params(lister, &policy, &binding, a).await {
            Ok(p) => p,
            Err(e) if fail => return Err(configure_error(e)),
            Err(_) => continue,
        };
        if a.info.namespaced && !a.namespace.is_empty() && namespace.is_none() {
            let info = crate::resources::by_kind("", "Namespace")?;
            namespace = lister.get(info, None, a.namespace).await.ok().flatten();
        }
        let namespace_object = namespace.as_deref().cloned().unwrap_or(Value::Null);
        let actions: Vec<&str> = items(&binding, "/spec/validationActions")
            .filter_map(Value::as_str)
            .collect();
        for p in &params {
            let base = [
                ("object", &object),
                ("oldObject", &old),
                ("request", &request),
                ("params", p),
                ("namespaceObject", &namespace_object),
            ];
            let (decision, annotations) = evaluate(&compiled, &base);
            for (key, value) in annotations {
                crate::audit::annotate(format!("{policy_name}/{key}"), value);
            }
            let Decision::Deny {
                message,
                reason,
                index,
            } = decision
            else {
                continue;
            };
            if actions.contains(&"Warn") {
                crate::typed::warn(format!(
                    "Validation failed for ValidatingAdmissionPolicy '{policy_name}' with binding '{binding_name}': {message}"
                ));
            }
            if actions.contains(&"Audit") {
                failures.push(json!({
                    "message": message, "policy": policy_name, "binding": binding_name,
                    "expressionIndex": index, "validationActions": actions,
                }));
            }
            if actions.contains(&"Deny") {
                audit_failures(failures);
                return Err(denied(a, policy_name, binding_name, &message, &reason));
            }
        }
    }
    audit_failures(failures);
    Ok(())
}

/// The Audit action's record: every failure of the request in one annotation, a JSON list,
/// as upstream writes it.
fn audit_failures(failures: Vec<Value>) {
    if !failures.is_empty() {
        crate::audit::annotate(
            "validation.policy.admission.k8s.io/validation_failure".into(),
            Value::Array(failures).to_string(),
        );
    }
}
