//! What pods' own metrics endpoints last reported: every series (name and labels) with its
//! last two values, read as a gauge's value or as a counter's rate.

use std::collections::{BTreeMap, HashMap};
use std::sync::RwLock;

use crate::prom_text::Exposition;

/// The suffix a counter's name ends in, and what its rate is served as
/// (`http_requests_total` → `http_requests_per_second`, prometheus-adapter's usual rule).
const COUNTER_SUFFIX: &str = "_total";
const RATE_SUFFIX: &str = "_per_second";

#[derive(Clone, Copy, Debug)]
struct Value {
    value: f64,
    timestamp_ms: i64,
}

#[derive(Debug, Default)]
struct Series {
    counter: bool,
    prev: Option<Value>,
    last: Option<Value>,
}

/// One pod's series, by metric name and labels.
type PodSeries = HashMap<(String, BTreeMap<String, String>), Series>;

/// Every scraped pod's series.
#[derive(Default)]
pub struct SeriesStore {
    pods: RwLock<HashMap<(String, String), PodSeries>>,
}

/// A metric's value for one pod.
#[derive(Clone, Debug, PartialEq)]
pub struct PodValue {
    pub value: f64,
    pub timestamp_ms: i64,
    /// Over what window a rate was taken (`None` for a gauge).
    pub window_ms: Option<i64>,
}

impl SeriesStore {
    /// Files a pod's scrape taken at `now_ms`.
    pub fn store(&self, namespace: &str, pod: &str, e: &Exposition, now_ms: i64) {
        let mut pods = self.pods.write().unwrap_or_else(|e| e.into_inner());
        let series = pods.entry((namespace.into(), pod.into())).or_default();
        for s in &e.samples {
            if !s.value.is_finite() {
                continue;
            }
            let counter = e.type_of(&s.name) == Some("counter") || s.name.ends_with(COUNTER_SUFFIX);
            let entry = series
                .entry((s.name.clone(), s.labels.clone()))
                .or_default();
            entry.counter = counter;
            let v = Value {
                value: s.value,
                timestamp_ms: s.timestamp_ms.unwrap_or(now_ms),
            };
            match entry.last {
                Some(last) if v.timestamp_ms <= last.timestamp_ms => {}
                // A counter that went down restarted.
                Some(last) if counter && v.value < last.value => {
                    entry.prev = None;
                    entry.last = Some(v);
                }
                last => {
                    entry.prev = last;
                    entry.last = Some(v);
                }
            }
        }
    }

    /// Forgets pods `keep` says are gone.
    pub fn retain(&self, keep: impl Fn(&str, &str) -> bool) {
        let mut pods = self.pods.write().unwrap_or_else(|e| e.into_inner());
        pods.retain(|(ns, name), _| keep(ns, name));
    }

    /// The names of the metrics served for pods (gauges as they are, counters' rates).
    pub fn metric_names(&self) -> Vec<String> {
        let pods = self.pods.read().unwrap_or_else(|e| e.into_inner());
        let mut names: Vec<String> = pods
            .values()
            .flat_map(|s| s.iter())
            .map(|((name, _), s)| served_name(name, s.counter))
            .collect();
        names.sort();
        names.dedup();
        names
    }

    /// `metric` for one pod: the sum over its series whose labels `select` accepts. `None`
    /// when the pod has no such series (or a rate has only one point yet).
    pub fn value(
        &self,
        namespace: &str,
        pod: &str,
        metric: &str,
        select: &dyn Fn(&BTreeMap<String, String>) -> bool,
    ) -> Option<PodValue> {
        let pods = self.pods.read().unwrap_or_else(|e| e.into_inner());
        let series = pods.get(&(namespace.to_string(), pod.to_string()))?;
        let mut out: Option<PodValue> = None;
        for ((name, labels), s) in series {
            if served_name(name, s.counter) != metric || !select(labels) {
                continue;
            }
            // A series without enough points yet adds nothing.
            let Some(last) = s.last else { continue };
            let (value, window_ms) = if s.counter {
                let Some(prev) = s.prev else { continue };
                let window = last.timestamp_ms - prev.timestamp_ms;
                if window <= 0 {
                    continue;
                }
                (
                    (last.value - prev.value) / (window as f64 / 1000.0),
                    Some(window),
                )
            } else {
                (last.value, None)
            };
            let acc = out.get_or_insert(PodValue {
                value: 0.0,
                timestamp_ms: last.timestamp_ms,
                window_ms,
            });
            acc.value += value;
            acc.timestamp_ms = acc.timestamp_ms.min(last.timestamp_ms);
        }
        out
    }
}

fn served_name(name: &str, counter: bool) -> String {
    match name.strip_suffix(COUNTER_SUFFIX) {
        Some(base) if counter => format!("{base}{RATE_SUFFIX}"),
        _ => name.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::prom_text::parse;

    fn all(_: &BTreeMap<String, String>) -> bool {
        true
    }

    #[test]
    fn gauges_are_read_and_counters_become_rates() {
        let st = SeriesStore::default();
        let scrape = |total: u32, gauge: u32, at: i64| {
            let text = format!(
                "# TYPE http_requests_total counter\nhttp_requests_total{{code=\"200\"}} {total}\nhttp_requests_total{{code=\"500\"}} 0\nqueue_depth {gauge}\n"
            );
            st.store("default", "web", &parse(&text).unwrap(), at);
        };
        scrape(100, 3, 1_000);
        assert_eq!(
            st.value("default", "web", "queue_depth", &all)
                .unwrap()
                .value,
            3.0
        );
        assert_eq!(
            st.value("default", "web", "http_requests_per_second", &all),
            None,
            "one point"
        );
        scrape(250, 5, 11_000);
        let rate = st
            .value("default", "web", "http_requests_per_second", &all)
            .unwrap();
        assert_eq!((rate.value, rate.window_ms), (15.0, Some(10_000)));
        let only_500 =
            |l: &BTreeMap<String, String>| l.get("code").map(String::as_str) == Some("500");
        assert_eq!(
            st.value("default", "web", "http_requests_per_second", &only_500)
                .unwrap()
                .value,
            0.0
        );
        assert_eq!(
            st.metric_names(),
            vec![
                "http_requests_per_second".to_string(),
                "queue_depth".to_string()
            ]
        );
        assert_eq!(st.value("default", "other", "queue_depth", &all), None);
        st.retain(|_, _| false);
        assert!(st.metric_names().is_empty());
    }
}
