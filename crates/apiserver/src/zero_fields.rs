//! The fields Go's encoding always writes. A Go struct field without `omitempty` is written
//! even when zero (`"numberReady":0`, `"type":""`), and a non-pointer struct field is written
//! even when empty (`"status":{}`). Clients generated from the OpenAPI schema count on it: the
//! Python client refuses a `DaemonSetStatus` without `currentNumberScheduled`. Objects are
//! stored as JSON that only has the fields someone set, so before every write the object is
//! filled in from its kind's schema:
//!
//! - a `required` scalar property (Go's non-`omitempty`, non-pointer fields) that is absent
//!   gets its zero value, inside every object of the tree that is present;
//! - the non-pointer struct fields of [`ALWAYS_WRITTEN`] get `{}` (then filled in turn).
//!
//! Required lists, maps and struct references are left alone: Go writes `null` for a nil
//! slice or map, and a required struct reference may be a pointer (`spec.selector`), which
//! validation demands anyway. Times are left alone too (Go writes `null` for a zero time).

use std::collections::HashMap;
use std::sync::LazyLock;

use serde_json::{Map, Value};

use crate::resources::ResourceInfo;

/// Non-pointer struct fields (the schema cannot tell them from pointers): upstream's OpenAPI
/// v3 document gives them `"default": {}`. Every kind's own `spec` and `status` are of this
/// sort too (see [`Shapes::build`]).
const ALWAYS_WRITTEN: &[(&str, &str)] = &[
    ("io.k8s.api.core.v1.Container", "resources"),
    ("io.k8s.api.core.v1.EphemeralContainer", "resources"),
    ("io.k8s.api.core.v1.ServiceStatus", "loadBalancer"),
    ("io.k8s.api.core.v1.NodeStatus", "daemonEndpoints"),
    ("io.k8s.api.core.v1.NodeStatus", "nodeInfo"),
    ("io.k8s.api.core.v1.NodeDaemonEndpoints", "kubeletEndpoint"),
    ("io.k8s.api.discovery.v1.Endpoint", "conditions"),
    ("io.k8s.api.apps.v1.DeploymentSpec", "strategy"),
    ("io.k8s.api.apps.v1.DaemonSetSpec", "updateStrategy"),
    ("io.k8s.api.apps.v1.StatefulSetSpec", "updateStrategy"),
    ("io.k8s.api.core.v1.PodTemplateSpec", "spec"),
    ("io.k8s.api.batch.v1.JobTemplateSpec", "spec"),
];

/// How a property's value is walked.
#[derive(Clone, Copy)]
enum Child {
    /// An object of definition `usize`.
    One(usize),
    /// A list of such objects.
    Each(usize),
    /// A map whose values are such objects.
    Values(usize),
}

#[derive(Default)]
struct Def {
    /// Required scalars and their zero values.
    zeros: Vec<(String, Value)>,
    /// Always-written struct fields.
    structs: Vec<String>,
    /// Properties to descend into.
    children: Vec<(String, Child)>,
}

/// The compiled shapes of every served kind with a `k8s-openapi` type.
struct Shapes {
    defs: Vec<Def>,
    roots: HashMap<(&'static str, &'static str, &'static str), usize>,
}

static SHAPES: LazyLock<Shapes> = LazyLock::new(Shapes::build);

/// Fills `obj` (an object of `info`'s kind) with the fields Go would write.
pub fn fill(info: &ResourceInfo, obj: &mut Value) {
    let shapes = &*SHAPES;
    if let Some(&root) = shapes.roots.get(&(info.group, info.version, info.kind)) {
        shapes.fill(root, obj);
    }
}

impl Shapes {
    fn build() -> Shapes {
        let mut shapes = Shapes {
            defs: Vec::new(),
            roots: HashMap::new(),
        };
        let mut ids: HashMap<String, usize> = HashMap::new();
        // One parse of the schema table for all kinds.
        let _table = crate::schemas::table();
        for info in crate::resources::all() {
            // Only compiled-in types: Go writes zero values for its structs, custom
            // kinds are stored as sent.
            if !crate::kinds::of(&info)
                .typed()
                .is_some_and(crate::typed::Typed::is_builtin)
            {
                continue;
            }
            let Some(schema) = crate::typed::json_schema(&info) else {
                continue;
            };
            let defs = schema
                .get("$defs")
                .or_else(|| schema.get("definitions"))
                .and_then(Value::as_object)
                .cloned()
                .unwrap_or_default();
            let mut compiler = Compiler {
                defs: &defs,
                ids: &mut ids,
                out: &mut shapes.defs,
            };
            let root = compiler.compile_schema(
                &format!("{}/{}/{}", info.group, info.version, info.kind),
                &schema,
            );
            // A kind's own spec and status are values, never pointers, in every API group.
            let structs: Vec<String> = ["spec", "status"]
                .into_iter()
                .filter(|p| schema.pointer(&format!("/properties/{p}")).is_some())
                .map(str::to_string)
                .collect();
            shapes.defs[root].structs.extend(structs);
            shapes
                .roots
                .insert((info.group, info.version, info.kind), root);
        }
        shapes.prune();
        shapes
    }

    /// Drops the children under which nothing is ever filled, so a write walks only the
    /// parts of its object that can change.
    fn prune(&mut self) {
        let mut useful: Vec<bool> = self
            .defs
            .iter()
            .map(|d| !d.zeros.is_empty() || !d.structs.is_empty())
            .collect();
        let target = |c: &Child| match *c {
            Child::One(d) | Child::Each(d) | Child::Values(d) => d,
        };
        loop {
            let mut changed = false;
            for (i, d) in self.defs.iter().enumerate() {
                if !useful[i] && d.children.iter().any(|(_, c)| useful[target(c)]) {
                    useful[i] = true;
                    changed = true;
                }
            }
            if !changed {
                break;
            }
        }
        for d in &mut self.defs {
            d.children.retain(|(_, c)| useful[target(c)]);
        }
    }

    fn fill(&self, id: usize, v: &mut Value) {
        let def = &self.defs[id];
        let Some(m) = v.as_object_mut() else {
            return;
        };
        for (k, zero) in &def.zeros {
            if !m.contains_key(k) {
                m.insert(k.clone(), zero.clone());
            }
        }
        for k in &def.structs {
            if m.get(k).is_none_or(Value::is_null) {
                m.insert(k.clone(), Value::Object(Map::new()));
            }
        }
        for (k, child) in &def.children {
            let Some(c) = m.get_mut(k) else {
                continue;
            };
            match (*child, c) {
                (Child::One(d), c) => self.fill(d, c),
                (Child::Each(d), Value::Array(items)) => {
                    items.iter_mut().for_each(|i| self.fill(d, i))
                }
                (Child::Values(d), Value::Object(values)) => {
                    values.values_mut().for_each(|i| self.fill(d, i))
                }
                _ => {}
            }
        }
    }
}

struct Compiler<'a> {
    defs: &'a Map<String, Value>,
    ids: &'a mut HashMap<String, usize>,
    out: &'a mut Vec<Def>,
}

/// The definition name a `$ref` points at.
fn ref_name(schema: &Value) -> Option<&str> {
    let r = schema.get("$ref").and_then(Value::as_str).or_else(|| {
        // `allOf: [{$ref}]`, as OpenAPI v3 documents wrap references.
        schema.pointer("/allOf/0/$ref").and_then(Value::as_str)
    })?;
    r.rsplit('/').next()
}

/// Go's zero value for a required scalar property, if it is one Go writes.
fn zero_of(schema: &Value) -> Option<Value> {
    if schema.get("x-kubernetes-int-or-string").is_some() {
        return Some(Value::from(0));
    }
    match schema.get("type").and_then(Value::as_str)? {
        "integer" | "number" => Some(Value::from(0)),
        "boolean" => Some(Value::Bool(false)),
        "string" if schema.get("format").and_then(Value::as_str) == Some("date-time") => None,
        "string" if schema.get("format").and_then(Value::as_str) == Some("byte") => None,
        "string" => Some(Value::String(String::new())),
        _ => None,
    }
}

impl Compiler<'_> {
    /// The id of definition `name`, compiled once (recursive types refer to themselves).
    fn compile_ref(&mut self, name: &str) -> Option<usize> {
        if let Some(&id) = self.ids.get(name) {
            return Some(id);
        }
        let schema = self.defs.get(name)?.clone();
        Some(self.compile_schema(name, &schema))
    }

    fn compile_schema(&mut self, name: &str, schema: &Value) -> usize {
        let id = self.out.len();
        self.out.push(Def::default());
        self.ids.insert(name.to_string(), id);
        let mut def = Def::default();
        let required: Vec<&str> = schema
            .get("required")
            .and_then(Value::as_array)
            .map(|r| r.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        let empty = Map::new();
        let props = schema
            .get("properties")
            .and_then(Value::as_object)
            .unwrap_or(&empty);
        for (prop, p) in props {
            if required.contains(&prop.as_str())
                && ref_name(p).is_none()
                && let Some(zero) = zero_of(p)
            {
                def.zeros.push((prop.clone(), zero));
            }
            if ALWAYS_WRITTEN.contains(&(name, prop.as_str())) {
                def.structs.push(prop.clone());
            }
            let child = if let Some(r) = ref_name(p) {
                self.compile_ref(r).map(Child::One)
            } else if let Some(r) = p.get("items").and_then(ref_name) {
                self.compile_ref(r).map(Child::Each)
            } else if let Some(r) = p.get("additionalProperties").and_then(ref_name) {
                self.compile_ref(r).map(Child::Values)
            } else {
                None
            };
            if let Some(c) = child {
                def.children.push((prop.clone(), c));
            }
        }
        self.out[id] = def;
        id
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn info(group: &str, kind: &str) -> ResourceInfo {
        crate::resources::all()
            .into_iter()
            .find(|r| r.group == group && r.kind == kind)
            .unwrap()
    }

    #[test]
    fn a_new_daemon_set_has_the_status_go_writes() {
        let mut ds = json!({"metadata": {"name": "d"}, "spec": {"template": {"spec": {"containers": [{"name": "c", "ports": [{"containerPort": 80}]}]}}}});
        fill(&info("apps", "DaemonSet"), &mut ds);
        assert_eq!(
            ds["status"],
            json!({"currentNumberScheduled": 0, "desiredNumberScheduled": 0, "numberMisscheduled": 0, "numberReady": 0})
        );
        // Nested: the container's non-pointer resources, and the template's spec.
        assert_eq!(
            ds.pointer("/spec/template/spec/containers/0/resources"),
            Some(&json!({}))
        );
        assert_eq!(ds.pointer("/spec/updateStrategy"), Some(&json!({})));
    }

    #[test]
    fn required_scalars_are_filled_at_every_depth_and_set_values_kept() {
        let mut rc =
            json!({"metadata": {"name": "r"}, "status": {"conditions": [{"message": "m"}]}});
        fill(&info("", "ReplicationController"), &mut rc);
        assert_eq!(rc["status"]["replicas"], json!(0));
        assert_eq!(
            rc["status"]["conditions"][0],
            json!({"message": "m", "status": "", "type": ""})
        );
        assert_eq!(rc["spec"], json!({}));
        let mut svc = json!({"spec": {"ports": [{"port": 80, "protocol": "TCP"}]}, "status": {"loadBalancer": {"ingress": [{"ip": "1.2.3.4"}]}}});
        fill(&info("", "Service"), &mut svc);
        assert_eq!(
            svc["spec"]["ports"][0],
            json!({"port": 80, "protocol": "TCP"})
        );
        assert_eq!(
            svc["status"]["loadBalancer"]["ingress"][0],
            json!({"ip": "1.2.3.4"})
        );
    }

    #[test]
    fn kinds_without_spec_or_status_get_none() {
        let mut cm = json!({"metadata": {"name": "c"}, "data": {"a": "b"}});
        let before = cm.clone();
        fill(&info("", "ConfigMap"), &mut cm);
        assert_eq!(cm, before);
    }
}
