//! Which HPAs select which pods (upstream's `hpaSelectors`): pods two HPAs both scale make
//! each of them stop with AmbiguousSelector rather than fight. An HPA selects nothing until
//! its first sync reads its target's selector.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

#[derive(Default)]
pub struct HpaSelectors {
    /// HPA key (`namespace/name`) to the selector of its target's pods, when known.
    by_hpa: Mutex<HashMap<String, Option<LabelSelector>>>,
}

fn namespace_of(key: &str) -> &str {
    key.split_once('/').map_or("", |(ns, _)| ns)
}

impl HpaSelectors {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Option<LabelSelector>>> {
        self.by_hpa.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// An HPA seen by the informer; it selects nothing yet.
    pub fn register(&self, key: &str) {
        self.lock().entry(key.to_string()).or_insert(None);
    }

    pub fn remove(&self, key: &str) {
        self.lock().remove(key);
    }

    /// The HPA's selector, when it is registered (a deleted HPA is not brought back).
    pub fn update(&self, key: &str, selector: &LabelSelector) {
        if let Some(s) = self.lock().get_mut(key) {
            *s = Some(selector.clone());
        }
    }

    /// The HPAs of `namespace` whose selectors select any of `pods_labels`, sorted.
    pub fn controlling<'a>(
        &self,
        namespace: &str,
        pods_labels: impl IntoIterator<Item = &'a BTreeMap<String, String>>,
    ) -> Vec<String> {
        let map = self.lock();
        let candidates: Vec<(&String, &LabelSelector)> = map
            .iter()
            .filter(|(k, _)| namespace_of(k) == namespace)
            .filter_map(|(k, s)| s.as_ref().map(|s| (k, s)))
            .collect();
        let mut found: Vec<String> = Vec::new();
        for labels in pods_labels {
            for (k, s) in &candidates {
                if common::selectors::selects(s, labels) && !found.contains(k) {
                    found.push((*k).clone());
                }
            }
        }
        found.sort();
        found
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn finds_every_hpa_selecting_a_pod() {
        let s = HpaSelectors::default();
        let web = common::selectors::parse("app=web").unwrap();
        for k in ["ns/a", "ns/b", "other/c"] {
            s.register(k);
            s.update(k, &web);
        }
        s.register("ns/fresh");
        s.update("ns/gone", &web);
        let labels: BTreeMap<String, String> = [("app".to_string(), "web".to_string())].into();
        assert_eq!(s.controlling("ns", [&labels]), vec!["ns/a", "ns/b"]);
        s.remove("ns/b");
        assert_eq!(s.controlling("ns", [&labels]), vec!["ns/a"]);
    }
}
