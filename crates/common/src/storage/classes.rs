//! What StorageClasses decide for claims: the default class, whether binding waits for the
//! first consumer, and which nodes a class may provision for (upstream's `GetDefaultClass`,
//! `IsDelayBindingMode` and `MatchTopologySelectorTerms`).

use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::api::core::v1::TopologySelectorTerm;
use k8s_openapi::api::storage::v1::StorageClass;

use super::annotations;

/// Whether the class is annotated as the default (GA or beta annotation, value "true").
pub fn is_default(class: &StorageClass) -> bool {
    annotations::get(&class.metadata, annotations::IS_DEFAULT_CLASS) == Some("true")
        || annotations::get(&class.metadata, annotations::BETA_IS_DEFAULT_CLASS) == Some("true")
}

/// The default class among `classes`: the newest of those annotated as default, then by
/// name (upstream 1.28+ picks the newest rather than refusing when there are several).
pub fn default_class<'a>(
    classes: impl IntoIterator<Item = &'a Arc<StorageClass>>,
) -> Option<&'a Arc<StorageClass>> {
    let created = |c: &StorageClass| {
        c.metadata
            .creation_timestamp
            .as_ref()
            .map(|t| t.0.as_nanosecond())
    };
    classes
        .into_iter()
        .filter(|c| is_default(c))
        .min_by(|a, b| {
            created(b)
                .cmp(&created(a))
                .then_with(|| a.metadata.name.cmp(&b.metadata.name))
        })
}

/// Whether claims of `class` bind only once a pod using them is scheduled. No class (or
/// one that does not exist) binds at once, as does one without a binding mode (the API's
/// default, Immediate).
pub fn is_delay_binding(class: Option<&StorageClass>) -> bool {
    class.is_some_and(|c| c.volume_binding_mode.as_deref() == Some("WaitForFirstConsumer"))
}

/// Whether node labels satisfy a class's allowedTopologies: no terms admit every node;
/// otherwise one term must have every expression's key set to one of its values (an empty
/// term admits nothing).
pub fn match_topology(terms: &[TopologySelectorTerm], labels: &BTreeMap<String, String>) -> bool {
    if terms.is_empty() {
        return true;
    }
    terms.iter().any(|t| {
        let exprs = t.match_label_expressions.as_deref().unwrap_or_default();
        !exprs.is_empty()
            && exprs
                .iter()
                .all(|e| labels.get(&e.key).is_some_and(|v| e.values.contains(v)))
    })
}

/// Whether `class` can provision a volume for a node with `labels`: it names a provisioner
/// (not upstream's `kubernetes.io/no-provisioner`) and admits the node's topology.
pub fn can_provision_for(class: &StorageClass, labels: &BTreeMap<String, String>) -> bool {
    !class.provisioner.is_empty()
        && class.provisioner != annotations::NOT_SUPPORTED_PROVISIONER
        && match_topology(
            class.allowed_topologies.as_deref().unwrap_or_default(),
            labels,
        )
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn class(v: serde_json::Value) -> StorageClass {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn allowed_topologies_admit_matching_nodes_only() {
        let zone = |z: &str| BTreeMap::from([("zone".to_string(), z.to_string())]);
        let c = class(
            serde_json::json!({"metadata": {"name": "z"}, "provisioner": "p",
            "allowedTopologies": [{"matchLabelExpressions": [{"key": "zone", "values": ["a", "b"]}]}]}),
        );
        assert!(can_provision_for(&c, &zone("a")));
        assert!(!can_provision_for(&c, &zone("c")));
        assert!(!can_provision_for(&c, &BTreeMap::new()));
        let any = class(serde_json::json!({"metadata": {"name": "any"}, "provisioner": "p"}));
        assert!(can_provision_for(&any, &BTreeMap::new()));
        let none = class(serde_json::json!({"metadata": {"name": "n"},
            "provisioner": "kubernetes.io/no-provisioner"}));
        assert!(!can_provision_for(&none, &BTreeMap::new()));
        assert!(!match_topology(
            &[TopologySelectorTerm::default()],
            &zone("a")
        ));
    }

    #[test]
    fn binding_mode() {
        let wffc = class(
            serde_json::json!({"metadata": {"name": "w"}, "provisioner": "p",
            "volumeBindingMode": "WaitForFirstConsumer"}),
        );
        assert!(is_delay_binding(Some(&wffc)));
        let imm = class(serde_json::json!({"metadata": {"name": "i"}, "provisioner": "p"}));
        assert!(!is_delay_binding(Some(&imm)));
        assert!(!is_delay_binding(None));
    }
}
