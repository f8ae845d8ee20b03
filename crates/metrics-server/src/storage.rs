//! The latest two points of every node and container (metrics-server's `storage`), and the
//! usage computed from them: CPU as the rate of the cumulative CPU time between the points,
//! memory as the latest working set. A series needs two points before it has a usage.

use std::collections::HashMap;
use std::sync::RwLock;

/// One reading of a node or container.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Point {
    /// Cumulative CPU time in core-seconds.
    pub cpu_seconds: f64,
    pub memory_bytes: f64,
    /// When the kubelet took it, in milliseconds since the epoch.
    pub timestamp_ms: i64,
    /// When the container started (seconds since the epoch), to see restarts.
    pub start_time: Option<f64>,
}

/// Usage over a window ending at a time.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Usage {
    pub nano_cores: i64,
    pub memory_bytes: i64,
    pub timestamp_ms: i64,
    pub window_ms: i64,
}

#[derive(Clone, Copy, Debug, Default)]
struct Series {
    prev: Option<Point>,
    last: Option<Point>,
}

impl Series {
    fn push(&mut self, p: Point) {
        match self.last {
            // A kubelet that has not sampled again gives the same point: keep the window.
            Some(last) if p.timestamp_ms <= last.timestamp_ms => {}
            Some(last) if p.start_time != last.start_time || p.cpu_seconds < last.cpu_seconds => {
                // Restarted: the old counter says nothing about the new one.
                self.prev = Self::start(&p);
                self.last = Some(p);
            }
            None => {
                self.prev = Self::start(&p);
                self.last = Some(p);
            }
            last => {
                self.prev = last;
                self.last = Some(p);
            }
        }
    }

    /// A container's start as a point of no CPU used, as metrics-server takes it for a
    /// container first seen (or restarted): its first scrape then has a usage, the average
    /// since it started, and an HPA need not wait for a second scrape.
    fn start(p: &Point) -> Option<Point> {
        let start_ms = (p.start_time? * 1000.0) as i64;
        (start_ms > 0 && start_ms < p.timestamp_ms).then_some(Point {
            cpu_seconds: 0.0,
            timestamp_ms: start_ms,
            ..*p
        })
    }

    fn usage(&self) -> Option<Usage> {
        let (prev, last) = (self.prev?, self.last?);
        let window_ms = last.timestamp_ms - prev.timestamp_ms;
        if window_ms <= 0 {
            return None;
        }
        let cores = (last.cpu_seconds - prev.cpu_seconds) / (window_ms as f64 / 1000.0);
        Some(Usage {
            nano_cores: (cores * 1e9).round() as i64,
            memory_bytes: last.memory_bytes.round() as i64,
            timestamp_ms: last.timestamp_ms,
            window_ms,
        })
    }
}

/// What one scrape of a kubelet gave.
#[derive(Debug, Default)]
pub struct NodeScrape {
    pub node: Option<Point>,
    /// (namespace, pod) → container → point.
    pub pods: HashMap<(String, String), HashMap<String, Point>>,
}

#[derive(Default)]
struct NodeEntry {
    node: Series,
    pods: HashMap<(String, String), HashMap<String, Series>>,
}

/// Every node's and container's series.
#[derive(Default)]
pub struct Storage {
    nodes: RwLock<HashMap<String, NodeEntry>>,
}

impl Storage {
    /// Files a node's scrape. Pods the kubelet no longer reports are dropped.
    pub fn store(&self, node: &str, scrape: NodeScrape) {
        let mut nodes = self.nodes.write().unwrap_or_else(|e| e.into_inner());
        let entry = nodes.entry(node.to_string()).or_default();
        if let Some(p) = scrape.node {
            entry.node.push(p);
        }
        let mut old = std::mem::take(&mut entry.pods);
        for (pod, containers) in scrape.pods {
            let mut was = old.remove(&pod).unwrap_or_default();
            let series = containers
                .into_iter()
                .map(|(name, p)| {
                    let mut s = was.remove(&name).unwrap_or_default();
                    s.push(p);
                    (name, s)
                })
                .collect();
            entry.pods.insert(pod, series);
        }
    }

    /// Forgets nodes that are gone.
    pub fn retain_nodes(&self, keep: impl Fn(&str) -> bool) {
        let mut nodes = self.nodes.write().unwrap_or_else(|e| e.into_inner());
        nodes.retain(|name, _| keep(name));
    }

    /// A node's usage, once it has two points.
    pub fn node(&self, name: &str) -> Option<Usage> {
        let nodes = self.nodes.read().unwrap_or_else(|e| e.into_inner());
        nodes.get(name)?.node.usage()
    }

    /// Every node with a usage.
    pub fn nodes(&self) -> Vec<(String, Usage)> {
        let nodes = self.nodes.read().unwrap_or_else(|e| e.into_inner());
        let mut out: Vec<_> = nodes
            .iter()
            .filter_map(|(n, e)| Some((n.clone(), e.node.usage()?)))
            .collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }

    /// Every pod (in `namespace`, or all) whose containers all have a usage, with them by
    /// name, sorted by namespace and name.
    pub fn pods(&self, namespace: Option<&str>) -> Vec<PodUsage> {
        let nodes = self.nodes.read().unwrap_or_else(|e| e.into_inner());
        let mut out = Vec::new();
        for entry in nodes.values() {
            for ((ns, pod), containers) in &entry.pods {
                if namespace.is_some_and(|want| want != ns) {
                    continue;
                }
                let usages: Option<Vec<(String, Usage)>> = containers
                    .iter()
                    .map(|(c, s)| Some((c.clone(), s.usage()?)))
                    .collect();
                // As metrics-server: a pod is reported whole or not at all.
                if let Some(mut containers) = usages.filter(|u| !u.is_empty()) {
                    containers.sort_by(|a, b| a.0.cmp(&b.0));
                    out.push(PodUsage {
                        namespace: ns.clone(),
                        name: pod.clone(),
                        containers,
                    });
                }
            }
        }
        out.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
        out
    }
}

/// A pod's containers' usage.
#[derive(Clone, Debug, PartialEq)]
pub struct PodUsage {
    pub namespace: String,
    pub name: String,
    pub containers: Vec<(String, Usage)>,
}

impl PodUsage {
    /// The pod's time and window: the oldest of its containers' (metrics-server reports
    /// the earliest timestamp and the largest window).
    pub fn timestamp_and_window(&self) -> (i64, i64) {
        let ts = self.containers.iter().map(|(_, u)| u.timestamp_ms).min();
        let window = self.containers.iter().map(|(_, u)| u.window_ms).max();
        (ts.unwrap_or(0), window.unwrap_or(0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A point of a container whose start is not known: its first scrape has no usage.
    fn p(cpu: f64, mem: f64, ts: i64) -> Point {
        Point {
            cpu_seconds: cpu,
            memory_bytes: mem,
            timestamp_ms: ts,
            start_time: None,
        }
    }

    fn scrape(node: Point, containers: &[(&str, Point)]) -> NodeScrape {
        let mut s = NodeScrape {
            node: Some(node),
            ..Default::default()
        };
        s.pods.insert(
            ("default".into(), "web".into()),
            containers
                .iter()
                .map(|(n, p)| (n.to_string(), *p))
                .collect(),
        );
        s
    }

    #[test]
    fn usage_needs_two_points_and_is_the_rate_between_them() {
        let st = Storage::default();
        st.store(
            "n1",
            scrape(p(10.0, 100.0, 1_000), &[("c", p(1.0, 5.0, 1_000))]),
        );
        assert_eq!(st.node("n1"), None);
        assert!(st.pods(None).is_empty());
        st.store(
            "n1",
            scrape(p(25.0, 200.0, 16_000), &[("c", p(1.5, 7.0, 11_000))]),
        );
        let n = st.node("n1").unwrap();
        assert_eq!(
            (n.nano_cores, n.memory_bytes, n.window_ms),
            (1_000_000_000, 200, 15_000)
        );
        let pods = st.pods(Some("default"));
        assert_eq!(pods.len(), 1);
        assert_eq!(pods[0].containers[0].1.nano_cores, 50_000_000);
        assert!(st.pods(Some("other")).is_empty());
    }

    #[test]
    fn a_repeated_point_keeps_the_window_and_a_restart_starts_over() {
        let st = Storage::default();
        st.store(
            "n1",
            scrape(p(0.0, 1.0, 1_000), &[("c", p(1.0, 1.0, 1_000))]),
        );
        st.store(
            "n1",
            scrape(p(1.0, 1.0, 2_000), &[("c", p(2.0, 1.0, 2_000))]),
        );
        st.store(
            "n1",
            scrape(p(1.0, 1.0, 2_000), &[("c", p(2.0, 1.0, 2_000))]),
        );
        assert_eq!(st.node("n1").unwrap().window_ms, 1_000);
        let restarted = Point {
            start_time: Some(2.9),
            ..p(0.05, 1.0, 3_000)
        };
        st.store("n1", scrape(p(2.0, 1.0, 3_000), &[("c", restarted)]));
        let usage = st.pods(None)[0].containers[0].1;
        // Not across the restart: since the new start.
        assert_eq!((usage.nano_cores, usage.window_ms), (500_000_000, 100));
    }

    #[test]
    fn a_new_container_has_a_usage_from_its_start() {
        let st = Storage::default();
        let new = Point {
            start_time: Some(10.0),
            ..p(2.0, 1.0, 14_000)
        };
        st.store("n1", scrape(p(0.0, 1.0, 14_000), &[("c", new)]));
        assert_eq!(st.pods(None)[0].containers[0].1.nano_cores, 500_000_000);
        assert_eq!(st.node("n1"), None, "a node has no start: two scrapes");
    }

    #[test]
    fn a_pod_is_whole_or_absent_and_gone_pods_are_dropped() {
        let st = Storage::default();
        st.store(
            "n1",
            scrape(p(0.0, 1.0, 1_000), &[("a", p(1.0, 1.0, 1_000))]),
        );
        st.store(
            "n1",
            scrape(
                p(1.0, 1.0, 2_000),
                &[("a", p(2.0, 1.0, 2_000)), ("b", p(1.0, 1.0, 2_000))],
            ),
        );
        assert!(st.pods(None).is_empty(), "container b has one point");
        st.store("n1", NodeScrape::default());
        st.store(
            "n1",
            scrape(p(2.0, 1.0, 3_000), &[("a", p(3.0, 1.0, 3_000))]),
        );
        assert!(st.pods(None).is_empty(), "the pod was gone for a scrape");
        st.retain_nodes(|_| false);
        assert!(st.nodes().is_empty());
    }
}
