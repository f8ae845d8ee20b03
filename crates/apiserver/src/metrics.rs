//! `/metrics`: request counts and latency in Prometheus' text format.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

#[derive(Default)]
pub struct Metrics {
    /// (verb, code) -> (count, total seconds)
    requests: Mutex<BTreeMap<(String, u16), (u64, f64)>>,
}

impl Metrics {
    pub fn observe(&self, verb: &str, code: u16, took: Duration) {
        if let Ok(mut m) = self.requests.lock() {
            let e = m.entry((verb.to_string(), code)).or_default();
            e.0 += 1;
            e.1 += took.as_secs_f64();
        }
    }

    pub fn render(&self) -> String {
        let mut out = String::from(
            "# HELP apiserver_request_total Counter of apiserver requests broken out by verb and HTTP response code.\n# TYPE apiserver_request_total counter\n",
        );
        let snapshot = self.requests.lock().map(|m| m.clone()).unwrap_or_default();
        for ((verb, code), (n, _)) in &snapshot {
            out.push_str(&format!(
                "apiserver_request_total{{verb=\"{verb}\",code=\"{code}\"}} {n}\n"
            ));
        }
        out.push_str("# HELP apiserver_request_duration_seconds_sum Total seconds spent serving requests.\n# TYPE apiserver_request_duration_seconds_sum counter\n");
        for ((verb, code), (_, secs)) in &snapshot {
            out.push_str(&format!(
                "apiserver_request_duration_seconds_sum{{verb=\"{verb}\",code=\"{code}\"}} {secs}\n"
            ));
        }
        out
    }
}
