//! The node lifecycle controller's flags, as kube-controller-manager names them, shared by
//! `rkube server` and `rkube controller-manager`.

use std::time::Duration;

use controllers::nodelifecycle::Options;

#[derive(clap::Args, Clone, Debug)]
pub struct NodeLifecycleArgs {
    /// How long a node may go without a heartbeat (status or Lease) before the node
    /// lifecycle controller sets its conditions to Unknown (NotReady) and taints it
    /// `node.kubernetes.io/unreachable` (Go duration; upstream's default since 1.32).
    #[arg(long, default_value = "50s", value_parser = parse_period)]
    node_monitor_grace_period: Duration,
    /// The same for a node that never posted a Ready condition.
    #[arg(long, default_value = "1m0s", value_parser = parse_period)]
    node_startup_grace_period: Duration,
    /// How often every node's health is looked at.
    #[arg(long, default_value = "5s", value_parser = parse_period)]
    node_monitor_period: Duration,
    /// Nodes per second that get a NoExecute taint (their pods evicted) while their zone is
    /// healthy.
    #[arg(long, default_value_t = 0.1, value_parser = parse_rate)]
    node_eviction_rate: f32,
    /// Nodes per second that get a NoExecute taint while a large zone is partially
    /// disrupted (see --unhealthy-zone-threshold, --large-cluster-size-threshold).
    #[arg(long, default_value_t = 0.01, value_parser = parse_rate)]
    secondary_node_eviction_rate: f32,
    /// A zone of more nodes than this is large; a smaller partially disrupted zone gets no
    /// NoExecute taints at all.
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(i32).range(0..))]
    large_cluster_size_threshold: i32,
    /// The share of not-Ready nodes (at least three) from which a zone counts as partially
    /// disrupted.
    #[arg(long, default_value_t = 0.55, value_parser = parse_share)]
    unhealthy_zone_threshold: f32,
}

impl NodeLifecycleArgs {
    /// The controller's options these flags give.
    pub fn options(&self) -> Options {
        Options {
            node_monitor_period: self.node_monitor_period,
            node_monitor_grace_period: self.node_monitor_grace_period,
            node_startup_grace_period: self.node_startup_grace_period,
            node_eviction_rate: self.node_eviction_rate,
            secondary_node_eviction_rate: self.secondary_node_eviction_rate,
            large_cluster_size_threshold: self.large_cluster_size_threshold,
            unhealthy_zone_threshold: self.unhealthy_zone_threshold,
        }
    }
}

/// A Go duration above zero: a zero period would make the health pass spin, a zero grace
/// period would mark every node NotReady between two heartbeats.
fn parse_period(s: &str) -> Result<Duration, String> {
    match common::duration::parse_go(s) {
        Some(d) if !d.is_zero() => Ok(d),
        Some(_) => Err("must be more than 0".into()),
        None => Err(format!("{s:?} is not a duration (e.g. 5s, 1m0s)")),
    }
}

/// Nodes per second, 0 or more (0: no NoExecute taints through that queue).
fn parse_rate(s: &str) -> Result<f32, String> {
    match s.trim().parse::<f32>() {
        Ok(r) if r.is_finite() && r >= 0.0 => Ok(r),
        _ => Err(format!("{s:?} is not a rate (nodes per second, 0 or more)")),
    }
}

/// A share of a zone's nodes, in (0, 1].
fn parse_share(s: &str) -> Result<f32, String> {
    match s.trim().parse::<f32>() {
        Ok(r) if r > 0.0 && r <= 1.0 => Ok(r),
        _ => Err(format!(
            "{s:?} is not a share of nodes (above 0, at most 1)"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: NodeLifecycleArgs,
    }

    fn options(argv: &[&str]) -> Result<Options, clap::Error> {
        let mut all = vec!["x"];
        all.extend_from_slice(argv);
        Cli::try_parse_from(all).map(|c| c.args.options())
    }

    #[test]
    fn defaults_are_upstreams() -> Result<(), clap::Error> {
        let o = options(&[])?;
        let d = Options::default();
        assert_eq!(o.node_monitor_grace_period, d.node_monitor_grace_period);
        assert_eq!(o.node_startup_grace_period, d.node_startup_grace_period);
        assert_eq!(o.node_monitor_period, d.node_monitor_period);
        assert_eq!(o.node_eviction_rate, d.node_eviction_rate);
        assert_eq!(
            o.secondary_node_eviction_rate,
            d.secondary_node_eviction_rate
        );
        assert_eq!(
            o.large_cluster_size_threshold,
            d.large_cluster_size_threshold
        );
        assert_eq!(o.unhealthy_zone_threshold, d.unhealthy_zone_threshold);
        Ok(())
    }

    #[test]
    fn flags_set_the_options() -> Result<(), clap::Error> {
        let o = options(&[
            "--node-monitor-grace-period=8s",
            "--node-monitor-period",
            "500ms",
            "--node-eviction-rate=2",
            "--secondary-node-eviction-rate=0",
            "--large-cluster-size-threshold=3",
            "--unhealthy-zone-threshold=0.9",
        ])?;
        assert_eq!(o.node_monitor_grace_period, Duration::from_secs(8));
        assert_eq!(o.node_monitor_period, Duration::from_millis(500));
        assert_eq!(o.node_eviction_rate, 2.0);
        assert_eq!(o.secondary_node_eviction_rate, 0.0);
        assert_eq!(o.large_cluster_size_threshold, 3);
        assert_eq!(o.unhealthy_zone_threshold, 0.9);
        Ok(())
    }

    #[test]
    fn nonsense_is_refused() {
        for bad in [
            "--node-monitor-grace-period=0s",
            "--node-monitor-period=soon",
            "--node-eviction-rate=-1",
            "--large-cluster-size-threshold=-2",
            "--unhealthy-zone-threshold=1.5",
            "--unhealthy-zone-threshold=0",
        ] {
            assert!(options(&[bad]).is_err(), "{bad} accepted");
        }
    }
}
