//! The kernel settings the proxy needs in the target network namespace: forwarding, and
//! bridged pod-to-pod packets passing through netfilter (so a reply from an endpoint on the
//! same bridge as its client is un-DNATed by conntrack, which kube-proxy requires of bridge
//! CNIs). Both are per network namespace; /proc/sys/net shows the namespace of the thread
//! that opens it, so a throwaway thread joins the target namespace to write them.

use std::fs::File;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

const SETTINGS: &[(&str, &str)] = &[
    ("/proc/sys/net/ipv4/ip_forward", "1"),
    ("/proc/sys/net/bridge/bridge-nf-call-iptables", "1"),
];

fn write_all(netns: Option<&Path>) -> Vec<(String, Result<()>)> {
    if let Some(ns) = netns {
        let joined = File::open(ns)
            .with_context(|| format!("opening {}", ns.display()))
            .and_then(|f| {
                // SAFETY: setns on a valid fd; it only changes this (throwaway) thread.
                if unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
                    bail!(
                        "setns {}: {}",
                        ns.display(),
                        std::io::Error::last_os_error()
                    );
                }
                Ok(())
            });
        if let Err(e) = joined {
            return vec![("setns".into(), Err(e))];
        }
    }
    SETTINGS
        .iter()
        .map(|(path, value)| {
            let r = if Path::new(path).exists() {
                std::fs::write(path, value).with_context(|| format!("writing {path}"))
            } else {
                // No br_netfilter: nothing bridged goes through netfilter to configure.
                Err(anyhow::anyhow!("{path} does not exist"))
            };
            (path.to_string(), r)
        })
        .collect()
}

/// Sets forwarding and bridge-nf-call-iptables in `netns`; logs (never fails) what could
/// not be set.
pub async fn ensure(netns: Option<PathBuf>) {
    let results = tokio::task::spawn_blocking(move || {
        // A fresh OS thread: the namespace it joins dies with it, never leaking into a
        // pooled thread.
        std::thread::spawn(move || write_all(netns.as_deref()))
            .join()
            .unwrap_or_default()
    })
    .await
    .unwrap_or_default();
    for (what, r) in results {
        match r {
            Ok(()) => tracing::debug!(setting = %what, "sysctl set"),
            Err(e) => {
                tracing::warn!(setting = %what, error = %format!("{e:#}"), "could not set sysctl")
            }
        }
    }
}
