//! A kubelet's `/metrics/resource` to a [`NodeScrape`] (metrics-server's `scraper/client/
//! resource` decoding): node and container CPU time and working set, with the kubelet's
//! timestamps (the scrape's own time where a line has none) and containers' start times.

use std::collections::HashMap;

use crate::prom_text::Exposition;
use crate::storage::{NodeScrape, Point};

#[derive(Default)]
struct Partial {
    cpu: Option<(f64, Option<i64>)>,
    memory: Option<f64>,
    start: Option<f64>,
}

impl Partial {
    fn point(&self, now_ms: i64) -> Option<Point> {
        let (cpu, ts) = self.cpu?;
        Some(Point {
            cpu_seconds: cpu,
            memory_bytes: self.memory?,
            timestamp_ms: ts.unwrap_or(now_ms),
            start_time: self.start,
        })
    }
}

/// The node's and its containers' points; a container missing CPU or memory is left out.
pub fn resource_metrics(e: &Exposition, now_ms: i64) -> NodeScrape {
    let mut node = Partial::default();
    let mut containers: HashMap<(String, String, String), Partial> = HashMap::new();
    for s in &e.samples {
        if !s.value.is_finite() || s.value < 0.0 {
            continue;
        }
        let target = if s.name.starts_with("node_") {
            &mut node
        } else if s.name.starts_with("container_") {
            let key = |k: &str| s.labels.get(k).cloned().unwrap_or_default();
            let id = (key("namespace"), key("pod"), key("container"));
            if id.0.is_empty() || id.1.is_empty() || id.2.is_empty() {
                continue;
            }
            containers.entry(id).or_default()
        } else {
            continue;
        };
        match s.name.as_str() {
            "node_cpu_usage_seconds_total" | "container_cpu_usage_seconds_total" => {
                target.cpu = Some((s.value, s.timestamp_ms));
            }
            "node_memory_working_set_bytes" | "container_memory_working_set_bytes" => {
                target.memory = Some(s.value);
            }
            "container_start_time_seconds" => target.start = Some(s.value),
            _ => {}
        }
    }
    let mut scrape = NodeScrape {
        node: node.point(now_ms),
        ..Default::default()
    };
    for ((ns, pod, container), partial) in containers {
        if let Some(p) = partial.point(now_ms) {
            scrape
                .pods
                .entry((ns, pod))
                .or_default()
                .insert(container, p);
        }
    }
    scrape
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::prom_text::parse;

    #[test]
    fn node_and_containers() {
        let text = r#"
# TYPE container_cpu_usage_seconds_total counter
container_cpu_usage_seconds_total{container="httpd",namespace="default",pod="web"} 1.5 1700000001000
container_memory_working_set_bytes{container="httpd",namespace="default",pod="web"} 4096 1700000001000
container_start_time_seconds{container="httpd",namespace="default",pod="web"} 1.7e+09 1700000001000
container_cpu_usage_seconds_total{container="side",namespace="default",pod="web"} 0.5
node_cpu_usage_seconds_total 100 1700000002000
node_memory_working_set_bytes 1e+09 1700000002000
scrape_error 0
"#;
        let s = resource_metrics(&parse(text).unwrap(), 42);
        let node = s.node.unwrap();
        assert_eq!(
            (node.cpu_seconds, node.memory_bytes, node.timestamp_ms),
            (100.0, 1e9, 1_700_000_002_000)
        );
        let web = &s.pods[&("default".to_string(), "web".to_string())];
        assert_eq!(web.len(), 1, "side has no memory line");
        assert_eq!(web["httpd"].start_time, Some(1.7e9));
        assert_eq!(web["httpd"].timestamp_ms, 1_700_000_001_000);
    }
}
