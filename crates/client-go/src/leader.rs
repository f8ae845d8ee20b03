//! Leader election on a `coordination.k8s.io/v1` Lease (client-go's leaderelection): of
//! several processes running the same component, only the holder of the lease works. The
//! holder renews it; others take it over once they have not seen it change for its duration.
//!
//! As upstream, a candidate never trusts the timestamps in the record (another machine's
//! clock): a lease expires `leaseDurationSeconds` after this process last observed the
//! record change. Beyond upstream, a candidate watches the one Lease, so it observes a
//! renewal as it happens rather than at its next poll, and wakes at the moment the lease
//! expires rather than at the next RetryPeriod tick; polling every RetryPeriod stays as the
//! fallback while the watch is down. Every decision is still made on a fresh GET and written
//! with the read resourceVersion (a compare-and-swap), as upstream.

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::Timestamp;
use kube::Api;
use kube::api::PostParams;
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};
use tokio::sync::Notify;
use tokio::time::Instant;

/// Kubernetes' defaults for its components.
pub const LEASE_DURATION: Duration = Duration::from_secs(15);
pub const RENEW_DEADLINE: Duration = Duration::from_secs(10);
pub const RETRY_PERIOD: Duration = Duration::from_secs(2);

// Upstream's candidates poll every RetryPeriod × [1, 2.2) (JitterFactor 1.2). rkube drops the
// jitter: with the watch, candidates do not poll at all but wake at the lease's expiry, where
// all of them acting at once is the point (the compare-and-swap picks one); the fallback
// polling while a watch is down is too rare and too small a load (two candidates of a
// three-server cluster) for spreading it to matter, and jitter would add up to 2.4 s to a
// takeover in that case.

pub struct LeaderElection {
    leases: Api<Lease>,
    name: String,
    identity: String,
    /// How long candidates wait without observing a change to the record before taking the
    /// lease (upstream's LeaseDuration).
    lease_duration: Duration,
    /// How long the holder retries renewing before giving up (upstream's RenewDeadline).
    renew_deadline: Duration,
    /// Between attempts (upstream's RetryPeriod).
    retry_period: Duration,
    observed: Mutex<Observed>,
    /// Woken when the observed record changes or the watch comes up or goes down.
    changed: Notify,
    /// Whether the candidate's watch on the Lease is up (else it polls).
    watching: AtomicBool,
}

/// Upstream's observedRecord and observedTime, and the lease object last read or written
/// (its resourceVersion makes an update a compare-and-swap).
#[derive(Default)]
struct Observed {
    record: Option<Record>,
    time: Option<Instant>,
    lease: Option<Lease>,
}

/// Upstream's LeaderElectionRecord: any change to it counts as a renewal. Timestamps are
/// compared at the Lease's microsecond precision (upstream's record keeps seconds, which only
/// matters below a one-second RetryPeriod).
#[derive(Clone, Debug, Default, PartialEq)]
struct Record {
    holder: String,
    lease_duration_seconds: i32,
    acquire_time: Option<Timestamp>,
    renew_time: Option<Timestamp>,
    transitions: i32,
}

impl Record {
    fn of(spec: Option<&LeaseSpec>) -> Record {
        let Some(spec) = spec else {
            return Record::default();
        };
        Record {
            holder: spec.holder_identity.clone().unwrap_or_default(),
            lease_duration_seconds: spec.lease_duration_seconds.unwrap_or(0),
            acquire_time: spec.acquire_time.as_ref().map(|t| t.0),
            renew_time: spec.renew_time.as_ref().map(|t| t.0),
            transitions: spec.lease_transitions.unwrap_or(0),
        }
    }

    fn spec(&self) -> LeaseSpec {
        LeaseSpec {
            holder_identity: Some(self.holder.clone()),
            lease_duration_seconds: Some(self.lease_duration_seconds),
            acquire_time: self.acquire_time.map(MicroTime),
            renew_time: self.renew_time.map(MicroTime),
            lease_transitions: Some(self.transitions),
            ..Default::default()
        }
    }
}

impl Observed {
    /// Upstream's setObservedRecord: the record, observed now.
    fn set(&mut self, record: Record) {
        self.record = Some(record);
        self.time = Some(Instant::now());
    }

    /// A record read from the API server: its observation time moves only when it changed.
    fn observe(&mut self, record: Record) -> bool {
        if self.record.as_ref() == Some(&record) {
            return false;
        }
        self.set(record);
        true
    }

    fn holder(&self) -> &str {
        self.record.as_ref().map_or("", |r| r.holder.as_str())
    }

    /// observedTime + the record's leaseDurationSeconds; `None` before any observation.
    fn expiry(&self) -> Option<Instant> {
        let record = self.record.as_ref()?;
        let secs = u64::try_from(record.lease_duration_seconds).unwrap_or(0);
        Some(self.time? + Duration::from_secs(secs))
    }

    /// Upstream's isLeaseValid.
    fn is_lease_valid(&self, now: Instant) -> bool {
        self.expiry().is_some_and(|t| t > now)
    }
}

impl LeaderElection {
    /// An election on `leases`/`name` with Kubernetes' default timing.
    pub fn new(leases: Api<Lease>, name: impl Into<String>, identity: impl Into<String>) -> Self {
        LeaderElection {
            leases,
            name: name.into(),
            identity: identity.into(),
            lease_duration: LEASE_DURATION,
            renew_deadline: RENEW_DEADLINE,
            retry_period: RETRY_PERIOD,
            observed: Mutex::default(),
            changed: Notify::new(),
            watching: AtomicBool::new(false),
        }
    }

    /// Other timing, checked as upstream's NewLeaderElector checks it. The lease duration
    /// is written in whole seconds.
    pub fn with_timing(
        mut self,
        lease_duration: Duration,
        renew_deadline: Duration,
        retry_period: Duration,
    ) -> anyhow::Result<Self> {
        anyhow::ensure!(
            lease_duration > renew_deadline,
            "leaseDuration must be greater than renewDeadline"
        );
        // Upstream's check against its JitterFactor (1.2), kept although rkube does not jitter.
        anyhow::ensure!(
            renew_deadline > retry_period.mul_f64(1.2),
            "renewDeadline must be greater than retryPeriod*JitterFactor"
        );
        anyhow::ensure!(
            lease_duration >= Duration::from_secs(1) && !retry_period.is_zero(),
            "leaseDuration (at least 1 s) and retryPeriod must be greater than zero"
        );
        self.lease_duration = lease_duration;
        self.renew_deadline = renew_deadline;
        self.retry_period = retry_period;
        Ok(self)
    }

    /// Runs `work` whenever this process holds the lease; `work` is dropped (stopped) when
    /// the lease is lost, and started again once it is regained. Never returns.
    pub async fn run<F, Fut>(&self, mut work: F)
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = ()>,
    {
        loop {
            self.acquire().await;
            tracing::info!(lease = %self.name, identity = %self.identity, "became leader");
            tokio::select! {
                _ = work() => return,
                _ = self.renew() => tracing::warn!(lease = %self.name, "lost the lease; stopping"),
            }
        }
    }

    fn lock(&self) -> MutexGuard<'_, Observed> {
        self.observed.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Upstream's acquire: tries until it holds the lease. Between attempts it waits for the
    /// moment one can succeed (see [`Self::wait_for_chance`]), with a watch on the Lease
    /// keeping the observed record current meanwhile.
    async fn acquire(&self) {
        tracing::info!(lease = %self.name, identity = %self.identity, "attempting to acquire the lease");
        let attempts = async {
            // kube-controller-manager's leader-election client times requests out at
            // RenewDeadline: a hung request does not hold up the next attempt.
            while !tokio::time::timeout(self.renew_deadline, self.try_acquire_or_renew())
                .await
                .unwrap_or(false)
            {
                self.wait_for_chance().await;
            }
        };
        tokio::select! {
            () = attempts => {}
            () = self.watch() => {}
        }
        // The watch stopped with the select: a later acquire polls until its own is up.
        self.watching.store(false, Ordering::SeqCst);
    }

    /// Upstream's renew: every RetryPeriod (the first at once) a renewal is retried every
    /// RetryPeriod until it succeeds; returns when one has not within RenewDeadline (a
    /// request still in flight then is abandoned, as upstream's deadline context cancels it).
    async fn renew(&self) {
        loop {
            let deadline = Instant::now() + self.renew_deadline;
            loop {
                let renewed = tokio::time::timeout_at(deadline, self.try_acquire_or_renew())
                    .await
                    .unwrap_or(false);
                if renewed {
                    break;
                }
                tokio::select! {
                    () = tokio::time::sleep(self.retry_period) => {}
                    () = tokio::time::sleep_until(deadline) => return,
                }
            }
            tokio::time::sleep(self.retry_period).await;
        }
    }

    /// After a failed attempt, waits until another can succeed: while another holds a lease
    /// it has not let expire, until exactly observedTime + its leaseDurationSeconds (a
    /// renewal seen meanwhile moves that on); when the lease is free, expired or ours (the
    /// attempt failed on a conflict or an error), one RetryPeriod or until the record
    /// changes. While the watch is down, at most one RetryPeriod: upstream's polling.
    async fn wait_for_chance(&self) {
        let poll_at = Instant::now() + self.retry_period;
        let mut woken_by_change = false;
        loop {
            // Registered before the state is read, so a change in between still wakes it.
            let changed = self.changed.notified();
            let mut changed = std::pin::pin!(changed);
            changed.as_mut().enable();
            let held_until = {
                let observed = self.lock();
                let holder = observed.holder();
                let another = !holder.is_empty() && holder != self.identity;
                observed.expiry().filter(|t| another && *t > Instant::now())
            };
            let wake = match held_until {
                Some(expiry) if self.watching.load(Ordering::SeqCst) => expiry,
                Some(expiry) => expiry.min(poll_at),
                None if woken_by_change => return,
                None => poll_at,
            };
            tokio::select! {
                () = tokio::time::sleep_until(wake) => return,
                () = &mut changed => woken_by_change = true,
            }
        }
    }

    /// Keeps the observed record current from a watch on the one Lease; never returns (the
    /// watcher re-lists and retries with backoff, and the candidate polls meanwhile).
    async fn watch(&self) {
        let config = watcher::Config::default().fields(&format!("metadata.name={}", self.name));
        let mut events = watcher::watcher(self.leases.clone(), config)
            .default_backoff()
            .boxed();
        while let Some(event) = events.next().await {
            match event {
                Ok(Event::InitApply(lease)) => self.observe_lease(&lease),
                Ok(Event::Apply(lease)) => {
                    self.observe_lease(&lease);
                    // Events again after an error: the watch resumed without a re-list.
                    self.set_watching(true);
                }
                // Deleted: free for the taking (the attempt creates it).
                Ok(Event::Delete(_)) => {
                    self.lock().observe(Record::default());
                    self.changed.notify_waiters();
                    self.set_watching(true);
                }
                Ok(Event::Init) => {}
                Ok(Event::InitDone) => self.set_watching(true),
                Err(e) => {
                    tracing::debug!(lease = %self.name, error = %e, "watching the lease; polling");
                    self.set_watching(false);
                }
            }
        }
        std::future::pending::<()>().await;
    }

    fn observe_lease(&self, lease: &Lease) {
        let changed = self.lock().observe(Record::of(lease.spec.as_ref()));
        if changed {
            self.changed.notify_waiters();
        }
    }

    fn set_watching(&self, up: bool) {
        if self.watching.swap(up, Ordering::SeqCst) != up {
            self.changed.notify_waiters();
        }
    }

    /// One attempt (upstream's tryAcquireOrRenew): renews optimistically if ours and valid,
    /// else reads the lease and creates it, renews it if ours, or takes it over if free or
    /// unchanged for its duration.
    pub async fn try_acquire_or_renew(&self) -> bool {
        // At the Lease's microsecond precision, so what we write is what we read back.
        let now = Timestamp::now();
        let now = Timestamp::from_microsecond(now.as_microsecond()).unwrap_or(now);
        let mut record = Record {
            holder: self.identity.clone(),
            lease_duration_seconds: i32::try_from(self.lease_duration.as_secs())
                .unwrap_or(i32::MAX),
            acquire_time: Some(now),
            renew_time: Some(now),
            transitions: 0,
        };

        // 1. The holder's fast path: an update of the object it last wrote, no read.
        let fast = {
            let observed = self.lock();
            let ours = observed.holder() == self.identity;
            match (&observed.record, &observed.lease) {
                (Some(r), Some(lease)) if ours && observed.is_lease_valid(Instant::now()) => {
                    Some((r.clone(), lease.clone()))
                }
                _ => None,
            }
        };
        if let Some((old, lease)) = fast {
            record.acquire_time = old.acquire_time;
            record.transitions = old.transitions;
            match self.update(lease, &record).await {
                Ok(()) => return true,
                Err(e) => {
                    tracing::warn!(lease = %self.name, error = %e, "renewing optimistically failed; reading the lease")
                }
            }
        }

        // 2. Read, or create.
        let lease = match self.leases.get_opt(&self.name).await {
            Ok(Some(lease)) => lease,
            Ok(None) => {
                let lease = Lease {
                    metadata: ObjectMeta {
                        name: Some(self.name.clone()),
                        ..Default::default()
                    },
                    spec: Some(record.spec()),
                };
                return match self.leases.create(&PostParams::default(), &lease).await {
                    Ok(created) => {
                        let mut observed = self.lock();
                        observed.set(record);
                        observed.lease = Some(created);
                        true
                    }
                    Err(e) => {
                        tracing::warn!(lease = %self.name, error = %e, "creating the lease");
                        false
                    }
                };
            }
            Err(e) => {
                tracing::warn!(lease = %self.name, error = %e, "reading the lease");
                return false;
            }
        };

        // 3. Held by another and not expired: not ours to take.
        let old = Record::of(lease.spec.as_ref());
        let ours = {
            let mut observed = self.lock();
            if observed.observe(old.clone()) {
                self.changed.notify_waiters();
            }
            observed.lease = Some(lease.clone());
            let ours = observed.holder() == self.identity;
            if !old.holder.is_empty() && observed.is_lease_valid(Instant::now()) && !ours {
                tracing::debug!(lease = %self.name, holder = %old.holder, "held by another and not expired");
                return false;
            }
            ours
        };

        // 4. Renew, or take over.
        if ours {
            record.acquire_time = old.acquire_time;
            record.transitions = old.transitions;
        } else {
            // Acquired now (a failed fast path may have set the old acquireTime).
            record.acquire_time = Some(now);
            record.transitions = old.transitions + 1;
        }
        match self.update(lease, &record).await {
            Ok(()) => true,
            Err(e) => {
                // Two candidates racing for an expired lease: the loser's update conflicts.
                tracing::debug!(lease = %self.name, error = %e, "updating the lease");
                false
            }
        }
    }

    /// Writes `record` over `lease`'s spec with its resourceVersion (a compare-and-swap) and
    /// observes it.
    async fn update(&self, mut lease: Lease, record: &Record) -> Result<(), kube::Error> {
        lease.spec = Some(record.spec());
        let written = self
            .leases
            .replace(&self.name, &PostParams::default(), &lease)
            .await?;
        let mut observed = self.lock();
        observed.set(record.clone());
        observed.lease = Some(written);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)] // a failed test step should panic

    use std::sync::{Arc, OnceLock};

    use apiserver::testing::{Cluster, eventually};
    use k8s_openapi::jiff::SignedDuration;

    use super::*;

    /// Short, but with the default RetryPeriod: a candidate that took over only at its next
    /// poll would be up to 2 s late, against the 0.5 s allowed.
    const LEASE: Duration = Duration::from_secs(4);

    fn elector(leases: &Api<Lease>, identity: &str) -> Arc<LeaderElection> {
        let e = LeaderElection::new(leases.clone(), "test", identity)
            .with_timing(LEASE, Duration::from_secs(3), RETRY_PERIOD)
            .unwrap();
        Arc::new(e)
    }

    /// Runs the election in the background; the cell holds when (wall clock) its work first
    /// started.
    fn start(e: &Arc<LeaderElection>) -> (tokio::task::JoinHandle<()>, Arc<OnceLock<Timestamp>>) {
        let led = Arc::new(OnceLock::new());
        let (e, cell) = (e.clone(), led.clone());
        let task = tokio::spawn(async move {
            e.run(|| {
                let _ = cell.set(Timestamp::now());
                std::future::pending()
            })
            .await;
        });
        (task, led)
    }

    async fn current(leases: &Api<Lease>) -> Record {
        Record::of(leases.get("test").await.unwrap().spec.as_ref())
    }

    async fn leads(led: &OnceLock<Timestamp>, who: &str) -> Timestamp {
        eventually(&format!("{who} to lead"), || async { led.get().copied() }).await
    }

    /// Seconds from `from` to `to`.
    fn secs(from: Timestamp, to: Timestamp) -> f64 {
        to.duration_since(from).as_secs_f64()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_candidate_takes_over_as_the_lease_expires() {
        let c = Cluster::start(false).await;
        let leases = Api::<Lease>::namespaced(c.client().await, "default");
        let (a, a_led) = start(&elector(&leases, "a"));
        leads(&a_led, "a").await;
        let (b, b_led) = start(&elector(&leases, "b"));
        tokio::time::sleep(LEASE * 2).await;
        assert!(b_led.get().is_none(), "b took a lease a renews");

        a.abort();
        // A renewal in flight when a stopped lands meanwhile.
        tokio::time::sleep(Duration::from_millis(300)).await;
        let last = current(&leases).await;
        assert_eq!(last.holder, "a");
        let took = leads(&b_led, "b").await;
        let after = secs(last.renew_time.unwrap(), took);
        assert!(
            after >= LEASE.as_secs_f64() && after <= LEASE.as_secs_f64() + 0.5,
            "b took over {after:.2} s after a's last renewal (lease {LEASE:?})"
        );
        let now = current(&leases).await;
        assert_eq!((now.holder.as_str(), now.transitions), ("b", 1));
        b.abort();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_lease_its_holder_renews_is_never_taken() {
        let c = Cluster::start(false).await;
        let leases = Api::<Lease>::namespaced(c.client().await, "default");
        let (a, a_led) = start(&elector(&leases, "a"));
        leads(&a_led, "a").await;
        let (b, b_led) = start(&elector(&leases, "b"));
        for _ in 0..3 {
            tokio::time::sleep(LEASE).await;
            assert!(b_led.get().is_none(), "b took a lease a renews");
            let now = current(&leases).await;
            assert_eq!((now.holder.as_str(), now.transitions), ("a", 0));
        }
        a.abort();
        b.abort();
    }

    /// The holder's clock is an hour behind, then an hour ahead: its renewTime says nothing;
    /// only seeing the record change does.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn expiry_counts_from_observing_a_change_not_from_the_holders_clock() {
        let c = Cluster::start(false).await;
        let leases = Api::<Lease>::namespaced(c.client().await, "default");
        let skewed = |ahead: bool| {
            let hour = SignedDuration::from_hours(1);
            let now = Timestamp::now();
            if ahead {
                now.checked_add(hour).unwrap()
            } else {
                now.checked_sub(hour).unwrap()
            }
        };
        let behind = skewed(false);
        let held = Record {
            holder: "elsewhere".into(),
            lease_duration_seconds: i32::try_from(LEASE.as_secs()).unwrap(),
            acquire_time: Some(behind),
            renew_time: Some(behind),
            transitions: 0,
        };
        let lease = Lease {
            metadata: ObjectMeta {
                name: Some("test".into()),
                ..Default::default()
            },
            spec: Some(held.spec()),
        };
        leases.create(&PostParams::default(), &lease).await.unwrap();
        let (b, b_led) = start(&elector(&leases, "b"));

        let mut last_write = (Timestamp::now(), Timestamp::now());
        for i in 0..12 {
            tokio::time::sleep(Duration::from_secs(1)).await;
            assert!(
                b_led.get().is_none(),
                "b took a lease renewed a second ago (renewTime {:?})",
                current(&leases).await.renew_time
            );
            let mut lease = leases.get("test").await.unwrap();
            let renewed = Record {
                renew_time: Some(skewed(i >= 6)),
                ..held.clone()
            };
            lease.spec = Some(renewed.spec());
            let before = Timestamp::now();
            leases
                .replace("test", &PostParams::default(), &lease)
                .await
                .unwrap();
            last_write = (before, Timestamp::now());
        }
        let took = leads(&b_led, "b").await;
        let (sent, acknowledged) = last_write;
        assert!(
            secs(sent, took) >= LEASE.as_secs_f64()
                && secs(acknowledged, took) <= LEASE.as_secs_f64() + 0.5,
            "b took over {:.2} s after the last renewal was sent (lease {LEASE:?})",
            secs(sent, took)
        );
        b.abort();
    }
}
