//! StorageObjectInUseProtection: new claims get the `kubernetes.io/pvc-protection` finalizer
//! and new volumes `kubernetes.io/pv-protection`, so neither can disappear while in use. The
//! protection controllers remove them once a claim is unused or a volume unbound (and add
//! them to objects that predate this plugin or were created with it disabled).

use common::storage::annotations::{PV_PROTECTION_FINALIZER, PVC_PROTECTION_FINALIZER};
use serde_json::{Value, json};

use crate::admission::{Attributes, Operation};

/// Adds the kind's protection finalizer to a new claim or volume that lacks it.
pub fn admit(a: &Attributes<'_>, obj: &mut Value) {
    if a.operation != Operation::Create {
        return;
    }
    let finalizer = if a.is_core("PersistentVolumeClaim") {
        PVC_PROTECTION_FINALIZER
    } else if a.is_core("PersistentVolume") {
        PV_PROTECTION_FINALIZER
    } else {
        return;
    };
    add_finalizer(obj, finalizer);
}

fn add_finalizer(obj: &mut Value, finalizer: &str) {
    let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) else {
        return;
    };
    let list = meta.entry("finalizers").or_insert_with(|| json!([]));
    if list.is_null() {
        *list = json!([]);
    }
    if let Some(items) = list.as_array_mut()
        && !items.iter().any(|f| f.as_str() == Some(finalizer))
    {
        items.push(json!(finalizer));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_finalizer_is_added_once() {
        let mut o = json!({"metadata": {"name": "c"}});
        add_finalizer(&mut o, PVC_PROTECTION_FINALIZER);
        add_finalizer(&mut o, PVC_PROTECTION_FINALIZER);
        assert_eq!(
            o["metadata"]["finalizers"],
            json!(["kubernetes.io/pvc-protection"])
        );
        let mut o = json!({"metadata": {"name": "v", "finalizers": ["example.com/keep"]}});
        add_finalizer(&mut o, PV_PROTECTION_FINALIZER);
        assert_eq!(
            o["metadata"]["finalizers"],
            json!(["example.com/keep", "kubernetes.io/pv-protection"])
        );
    }
}
