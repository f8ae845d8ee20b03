//! A Kubernetes client from a kubeconfig, for the components the binary runs.

use std::path::Path;

use anyhow::Context;

pub async fn config(path: &Path) -> anyhow::Result<kube::Config> {
    let kc = kube::config::Kubeconfig::read_from(path)
        .with_context(|| format!("reading kubeconfig {}", path.display()))?;
    kube::Config::from_custom_kubeconfig(kc, &Default::default())
        .await
        .with_context(|| format!("using kubeconfig {}", path.display()))
}

/// This process's name in leader-election leases: host and pid.
pub fn identity() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "localhost".into());
    format!("{host}_{}", std::process::id())
}
