//! Leader election on a `coordination.k8s.io/v1` Lease (client-go's leaderelection): of
//! several processes running the same component, only the holder of the lease works. The
//! holder renews it; others take it over once it has not been renewed for its duration.

use std::future::Future;
use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::Timestamp;
use kube::Api;
use kube::api::PostParams;

/// Kubernetes' defaults for its components.
pub const LEASE_DURATION: Duration = Duration::from_secs(15);
pub const RENEW_DEADLINE: Duration = Duration::from_secs(10);
pub const RETRY_PERIOD: Duration = Duration::from_secs(2);

pub struct LeaderElection {
    pub leases: Api<Lease>,
    pub name: String,
    pub identity: String,
}

impl LeaderElection {
    /// Runs `work` whenever this process holds the lease; `work` is dropped (stopped) when
    /// the lease is lost, and started again once it is regained. Never returns.
    pub async fn run<F, Fut>(&self, mut work: F)
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = ()>,
    {
        loop {
            while !self.try_acquire_or_renew().await {
                tokio::time::sleep(RETRY_PERIOD).await;
            }
            tracing::info!(lease = %self.name, identity = %self.identity, "became leader");
            let renew = async {
                let mut last_renewed = tokio::time::Instant::now();
                loop {
                    tokio::time::sleep(RETRY_PERIOD).await;
                    if self.try_acquire_or_renew().await {
                        last_renewed = tokio::time::Instant::now();
                    } else if last_renewed.elapsed() > RENEW_DEADLINE {
                        return;
                    }
                }
            };
            tokio::select! {
                _ = work() => return,
                _ = renew => tracing::warn!(lease = %self.name, "lost the lease; stopping"),
            }
        }
    }

    /// One attempt: creates the lease, renews it if ours, or takes it over if expired.
    pub async fn try_acquire_or_renew(&self) -> bool {
        let now = Timestamp::now();
        let duration = LEASE_DURATION.as_secs() as i32;
        let current = match self.leases.get_opt(&self.name).await {
            Ok(c) => c,
            Err(e) => {
                tracing::debug!(error = %e, "reading the lease");
                return false;
            }
        };
        let Some(mut lease) = current else {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(self.name.clone()),
                    ..Default::default()
                },
                spec: Some(LeaseSpec {
                    holder_identity: Some(self.identity.clone()),
                    lease_duration_seconds: Some(duration),
                    acquire_time: Some(MicroTime(now)),
                    renew_time: Some(MicroTime(now)),
                    lease_transitions: Some(0),
                    ..Default::default()
                }),
            };
            return self
                .leases
                .create(&PostParams::default(), &lease)
                .await
                .is_ok();
        };
        let spec = lease.spec.get_or_insert_with(Default::default);
        let mine = spec.holder_identity.as_deref() == Some(self.identity.as_str());
        if !mine {
            let held_for = spec.lease_duration_seconds.unwrap_or(duration);
            let expired = spec.renew_time.as_ref().is_none_or(|t| {
                t.0.checked_add(jiff_seconds(held_for))
                    .is_ok_and(|until| until < now)
            });
            let free = spec.holder_identity.as_deref().is_none_or(str::is_empty);
            if !expired && !free {
                return false;
            }
            spec.holder_identity = Some(self.identity.clone());
            spec.acquire_time = Some(MicroTime(now));
            spec.lease_transitions = Some(spec.lease_transitions.unwrap_or(0) + 1);
        }
        spec.lease_duration_seconds = Some(duration);
        spec.renew_time = Some(MicroTime(now));
        // The resourceVersion we read makes this a compare-and-swap.
        self.leases
            .replace(&self.name, &PostParams::default(), &lease)
            .await
            .is_ok()
    }
}

fn jiff_seconds(s: i32) -> k8s_openapi::jiff::SignedDuration {
    k8s_openapi::jiff::SignedDuration::from_secs(i64::from(s))
}
