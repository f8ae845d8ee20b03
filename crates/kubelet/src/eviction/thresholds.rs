//! Eviction signals and thresholds, as upstream's `pkg/kubelet/eviction/api` and the parsing
//! and observation halves of `helpers.go`: `memory.available<100Mi`, `nodefs.available<10%`,
//! soft ones with grace periods, and what each signal measures in a stats summary.

use std::collections::HashMap;
use std::time::Duration;

use crate::stats::summary::Summary;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Signal {
    MemoryAvailable,
    NodeFsAvailable,
    NodeFsInodesFree,
    ImageFsAvailable,
    PidAvailable,
}

impl Signal {
    pub const ALL: [Signal; 5] = [
        Signal::MemoryAvailable,
        Signal::NodeFsAvailable,
        Signal::NodeFsInodesFree,
        Signal::ImageFsAvailable,
        Signal::PidAvailable,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Signal::MemoryAvailable => "memory.available",
            Signal::NodeFsAvailable => "nodefs.available",
            Signal::NodeFsInodesFree => "nodefs.inodesFree",
            Signal::ImageFsAvailable => "imagefs.available",
            Signal::PidAvailable => "pid.available",
        }
    }

    fn parse(s: &str) -> Option<Signal> {
        Signal::ALL.into_iter().find(|x| x.name() == s)
    }

    /// The node condition the signal drives.
    pub fn condition(self) -> &'static str {
        match self {
            Signal::MemoryAvailable => "MemoryPressure",
            Signal::PidAvailable => "PIDPressure",
            _ => "DiskPressure",
        }
    }

    /// The resource named in eviction messages (upstream's `signalToResource`).
    pub fn resource(self) -> &'static str {
        match self {
            Signal::MemoryAvailable => "memory",
            Signal::NodeFsInodesFree => "inodes",
            Signal::PidAvailable => "pids",
            _ => "ephemeral-storage",
        }
    }

    pub fn is_disk(self) -> bool {
        self.condition() == "DiskPressure"
    }
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Amount {
    /// Bytes, inodes or PIDs.
    Quantity(i64),
    /// A fraction of the capacity (0.1 for `10%`).
    Percentage(f64),
}

#[derive(Clone, Debug, PartialEq)]
pub struct Threshold {
    pub signal: Signal,
    pub amount: Amount,
    /// Zero for a hard threshold; how long a soft one must hold before pods are evicted.
    pub grace_period: Duration,
    /// `--eviction-minimum-reclaim`: once met, the threshold holds until this much more than
    /// its amount is available again (upstream's `MinReclaim`).
    pub min_reclaim: Option<Amount>,
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ThresholdError {
    #[error("invalid eviction threshold {0:?}: expected SIGNAL<QUANTITY or SIGNAL<PERCENT%")]
    Syntax(String),
    #[error("unsupported eviction signal {0}")]
    Signal(String),
    #[error("invalid eviction threshold {0:?}: {1}")]
    Value(String, &'static str),
    #[error("invalid eviction grace period {0:?}: expected SIGNAL=DURATION")]
    Grace(String),
    #[error("eviction-soft threshold {0} has no grace period (--eviction-soft-grace-period)")]
    MissingGrace(&'static str),
    #[error("invalid minimum reclaim {0:?}: expected SIGNAL=QUANTITY or SIGNAL=PERCENT%")]
    MinReclaim(String),
}

impl Threshold {
    /// The amount in the signal's unit for a node of `capacity`.
    pub fn quantity(&self, capacity: i64) -> i64 {
        match self.amount {
            Amount::Quantity(q) => q,
            Amount::Percentage(p) => (p * capacity as f64) as i64,
        }
    }

    /// Whether the observation is below the threshold.
    pub fn met(&self, obs: &Observation) -> bool {
        obs.available < self.quantity(obs.capacity)
    }

    /// Whether the observation is below the threshold plus its minimum reclaim (upstream's
    /// `thresholdsMet` with enforceMinReclaim): a threshold met before holds until then.
    pub fn met_until_reclaimed(&self, obs: &Observation) -> bool {
        let extra = match self.min_reclaim {
            None => 0,
            Some(Amount::Quantity(q)) => q,
            Some(Amount::Percentage(p)) => (p * obs.capacity as f64) as i64,
        };
        obs.available < self.quantity(obs.capacity).saturating_add(extra)
    }
}

fn parse_amount(item: &str, value: &str) -> Result<Amount, ThresholdError> {
    match value.strip_suffix('%') {
        Some(p) => {
            let p: f64 = p
                .parse()
                .map_err(|_| ThresholdError::Value(item.to_owned(), "not a percentage"))?;
            if !(0.0..=100.0).contains(&p) {
                return Err(ThresholdError::Value(
                    item.to_owned(),
                    "percentage must be between 0 and 100",
                ));
            }
            Ok(Amount::Percentage(p / 100.0))
        }
        None => {
            let q = common::quantity::parse_scaled(value, 1)
                .ok_or(ThresholdError::Value(item.to_owned(), "not a quantity"))?;
            if q < 0 {
                return Err(ThresholdError::Value(item.to_owned(), "must be positive"));
            }
            Ok(Amount::Quantity(q))
        }
    }
}

/// Parses `--eviction-minimum-reclaim` (`memory.available=0Mi,nodefs.available=500Mi,
/// imagefs.available=2%`) and gives every hard and soft threshold of those signals its
/// minimum reclaim, as upstream's `ParseThresholdConfig`.
pub fn apply_minimum_reclaim(thresholds: &mut [Threshold], s: &str) -> Result<(), ThresholdError> {
    let mut reclaim = HashMap::new();
    for item in s.split(',').map(str::trim).filter(|i| !i.is_empty()) {
        let (signal, value) = item
            .split_once('=')
            .ok_or_else(|| ThresholdError::MinReclaim(item.to_owned()))?;
        let signal = Signal::parse(signal.trim())
            .ok_or_else(|| ThresholdError::Signal(signal.trim().to_owned()))?;
        reclaim.insert(signal, parse_amount(item, value.trim())?);
    }
    for t in thresholds.iter_mut() {
        if let Some(a) = reclaim.get(&t.signal) {
            t.min_reclaim = Some(*a);
        }
    }
    Ok(())
}

/// Parses `--eviction-hard`/`--eviction-soft`: `signal<value` items separated by commas; a
/// value is a quantity (`100Mi`, `1000`) or a percentage (`10%`). An empty string: none.
pub fn parse_thresholds(s: &str) -> Result<Vec<Threshold>, ThresholdError> {
    let mut out = Vec::new();
    for item in s.split(',').map(str::trim).filter(|i| !i.is_empty()) {
        let (signal, value) = item
            .split_once('<')
            .ok_or_else(|| ThresholdError::Syntax(item.to_owned()))?;
        let signal = Signal::parse(signal.trim())
            .ok_or_else(|| ThresholdError::Signal(signal.trim().to_owned()))?;
        let amount = parse_amount(item, value.trim())?;
        out.push(Threshold {
            signal,
            amount,
            grace_period: Duration::ZERO,
            min_reclaim: None,
        });
    }
    Ok(out)
}

/// Parses `--eviction-soft-grace-period` (`memory.available=1m30s,...`) and gives each soft
/// threshold its grace period; every soft threshold needs one, as upstream.
pub fn apply_grace_periods(soft: &mut [Threshold], s: &str) -> Result<(), ThresholdError> {
    let mut periods = HashMap::new();
    for item in s.split(',').map(str::trim).filter(|i| !i.is_empty()) {
        let (signal, d) = item
            .split_once('=')
            .ok_or_else(|| ThresholdError::Grace(item.to_owned()))?;
        let signal = Signal::parse(signal.trim())
            .ok_or_else(|| ThresholdError::Signal(signal.trim().to_owned()))?;
        let d = common::duration::parse_go(d.trim())
            .ok_or_else(|| ThresholdError::Grace(item.to_owned()))?;
        periods.insert(signal, d);
    }
    for t in soft.iter_mut() {
        t.grace_period = *periods
            .get(&t.signal)
            .ok_or(ThresholdError::MissingGrace(t.signal.name()))?;
    }
    Ok(())
}

/// Upstream kubelet's default hard thresholds (Linux): memory.available<100Mi,
/// nodefs.available<10%, nodefs.inodesFree<5%, imagefs.available<15%.
pub fn upstream_default_hard() -> Vec<Threshold> {
    let t = |signal, amount| Threshold {
        signal,
        amount,
        grace_period: Duration::ZERO,
        min_reclaim: None,
    };
    vec![
        t(Signal::MemoryAvailable, Amount::Quantity(100 << 20)),
        t(Signal::NodeFsAvailable, Amount::Percentage(0.10)),
        t(Signal::NodeFsInodesFree, Amount::Percentage(0.05)),
        t(Signal::ImageFsAvailable, Amount::Percentage(0.15)),
    ]
}

/// The hard thresholds rkube's kubelet has unless told otherwise: k3s' (its agent passes
/// `--eviction-hard=imagefs.available<5%,nodefs.available<5%` to its kubelet, which replaces
/// upstream's whole default set), so a node whose data dir shares a well-used disk with
/// everything else does not start reclaiming images and evicting pods at 85 % full.
pub fn default_hard() -> Vec<Threshold> {
    let t = |signal| Threshold {
        signal,
        amount: Amount::Percentage(0.05),
        grace_period: Duration::ZERO,
        min_reclaim: None,
    };
    vec![t(Signal::ImageFsAvailable), t(Signal::NodeFsAvailable)]
}

/// What a signal measures now: the amount available and the capacity it is a part of.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Observation {
    pub available: i64,
    pub capacity: i64,
}

fn i(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// Upstream's `makeSignalObservations`: memory.available = the root cgroup's available
/// memory (capacity − working set), capacity = available + working set; the filesystems'
/// available bytes and free inodes; pid.available = max PIDs − running processes.
pub fn observe(summary: &Summary) -> HashMap<Signal, Observation> {
    let mut out = HashMap::new();
    let node = &summary.node;
    if let Some(m) = &node.memory
        && let (Some(avail), Some(ws)) = (m.available_bytes, m.working_set_bytes)
    {
        out.insert(
            Signal::MemoryAvailable,
            Observation {
                available: i(avail),
                capacity: i(avail.saturating_add(ws)),
            },
        );
    }
    if let Some(fs) = &node.fs {
        if let (Some(a), Some(c)) = (fs.available_bytes, fs.capacity_bytes) {
            let o = Observation {
                available: i(a),
                capacity: i(c),
            };
            out.insert(Signal::NodeFsAvailable, o);
        }
        if let (Some(a), Some(c)) = (fs.inodes_free, fs.inodes) {
            let o = Observation {
                available: i(a),
                capacity: i(c),
            };
            out.insert(Signal::NodeFsInodesFree, o);
        }
    }
    if let Some(fs) = node.runtime.as_ref().and_then(|r| r.image_fs.as_ref())
        && let (Some(a), Some(c)) = (fs.available_bytes, fs.capacity_bytes)
    {
        out.insert(
            Signal::ImageFsAvailable,
            Observation {
                available: i(a),
                capacity: i(c),
            },
        );
    }
    if let Some(r) = &node.rlimit
        && let (Some(max), Some(procs)) = (r.max_pid, r.num_of_running_processes)
    {
        out.insert(
            Signal::PidAvailable,
            Observation {
                available: max - procs,
                capacity: max,
            },
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::summary::{FsStats, MemoryStats, NodeStats};

    #[test]
    fn thresholds_parse_as_upstream_flags() {
        let t = parse_thresholds("memory.available<100Mi, nodefs.available<10%").unwrap();
        assert_eq!(t[0].signal, Signal::MemoryAvailable);
        assert_eq!(t[0].amount, Amount::Quantity(100 << 20));
        assert_eq!(t[1].amount, Amount::Percentage(0.1));
        assert_eq!(t[1].quantity(1000), 100);
        assert!(parse_thresholds("").unwrap().is_empty());
        assert_eq!(
            parse_thresholds("memory.free<1"),
            Err(ThresholdError::Signal("memory.free".into()))
        );
        assert!(parse_thresholds("memory.available>1").is_err());
        assert!(parse_thresholds("nodefs.available<110%").is_err());
        let mut soft = parse_thresholds("memory.available<1Gi").unwrap();
        assert_eq!(
            apply_grace_periods(&mut soft, ""),
            Err(ThresholdError::MissingGrace("memory.available"))
        );
        apply_grace_periods(&mut soft, "memory.available=1m30s").unwrap();
        assert_eq!(soft[0].grace_period, Duration::from_secs(90));
        assert_eq!(upstream_default_hard().len(), 4);
        assert_eq!(default_hard().len(), 2);
    }

    #[test]
    fn observations_from_the_summary() {
        let summary = Summary {
            node: NodeStats {
                memory: Some(MemoryStats {
                    available_bytes: Some(300 << 20),
                    working_set_bytes: Some(700 << 20),
                    ..Default::default()
                }),
                fs: Some(FsStats {
                    available_bytes: Some(5),
                    capacity_bytes: Some(100),
                    inodes_free: Some(50),
                    inodes: Some(100),
                    ..Default::default()
                }),
                ..Default::default()
            },
            pods: Vec::new(),
        };
        let obs = observe(&summary);
        let mem = obs[&Signal::MemoryAvailable];
        assert_eq!((mem.available, mem.capacity), (300 << 20, 1000 << 20));
        let hard = upstream_default_hard();
        assert!(!hard[0].met(&mem));
        let tight = &parse_thresholds("memory.available<31%").unwrap()[0];
        assert!(tight.met(&mem));
        assert!(hard[1].met(&obs[&Signal::NodeFsAvailable]));
        assert!(!hard[2].met(&obs[&Signal::NodeFsInodesFree]));
        assert!(!obs.contains_key(&Signal::PidAvailable));
    }

    #[test]
    fn a_minimum_reclaim_holds_a_met_threshold_until_that_much_more_is_free() {
        let mut t = parse_thresholds("nodefs.available<10%,memory.available<100Mi").unwrap();
        apply_minimum_reclaim(&mut t, "nodefs.available=500Mi, memory.available=5%").unwrap();
        assert_eq!(t[0].min_reclaim, Some(Amount::Quantity(500 << 20)));
        assert_eq!(t[1].min_reclaim, Some(Amount::Percentage(0.05)));
        let disk = |available| Observation {
            available,
            capacity: 10 << 30,
        };
        // 10 % of 10 GiB is 1 GiB: above it the threshold is not met, but one met before
        // holds until 1 GiB + 500 MiB is free.
        assert!(!t[0].met(&disk(1 << 30)));
        assert!(t[0].met_until_reclaimed(&disk(1 << 30)));
        assert!(!t[0].met_until_reclaimed(&disk((1 << 30) + (500 << 20))));
        let mem = Observation {
            available: 140 << 20,
            capacity: 1 << 30,
        };
        assert!(
            t[1].met_until_reclaimed(&mem),
            "100Mi + 5% of 1Gi = 151.2Mi"
        );
        assert_eq!(
            apply_minimum_reclaim(&mut t, "nodefs.available"),
            Err(ThresholdError::MinReclaim("nodefs.available".into()))
        );
        assert!(apply_minimum_reclaim(&mut t, "memory.free=1Mi").is_err());
        assert!(apply_minimum_reclaim(&mut t, "memory.available=-1Mi").is_err());
        // Without one, the two agree.
        let plain = &parse_thresholds("memory.available<100Mi").unwrap()[0];
        assert!(!plain.met_until_reclaimed(&mem));
    }
}
