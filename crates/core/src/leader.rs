//! Leader election on a `coordination.k8s.io/v1` Lease, so two replicas never both act.
//!
//! kube 5 has no leader-election helper, so this is a small one following client-go's
//! `leaderelection` rules:
//!
//! - A standby considers the Lease expired when the record (its resourceVersion) has not changed
//!   for `leaseDurationSeconds` *as measured on the standby's own clock since it first saw that
//!   record*. Comparing the holder's `renewTime` with our wall clock would make clock skew
//!   between nodes decide who leads; observing change locally does not.
//! - Every write uses the resourceVersion read just before (optimistic concurrency), so two
//!   standbys racing for an expired Lease cannot both win: one gets `409 Conflict`.
//! - The leader renews every retry period and gives up (reports the lease lost) when it could not
//!   renew for `renew_deadline`, which is shorter than the lease duration: it stops acting before
//!   any standby may consider the Lease expired.
//! - On graceful shutdown the leader releases the Lease (empty holder), so a standby takes over at
//!   its next retry instead of waiting a whole lease duration.
//!
//! Losing the Lease is final for the process: the runner stops the controllers and exits with an
//! error, so Kubernetes restarts the pod, which comes back as a standby (as Linkerd does).

use std::time::{Duration, Instant};

use k8s_openapi::{
    api::coordination::v1::{Lease, LeaseSpec},
    apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta},
    jiff::Timestamp,
};
use kube::{Api, Client, api::PostParams};
use tokio_util::sync::CancellationToken;

use crate::error::is_conflict;

/// Timing and identity of one election.
#[derive(Clone, Debug)]
pub struct LeaseConfig {
    /// Namespace of the Lease.
    pub namespace: String,
    /// Name of the Lease; all replicas of one operator use the same.
    pub name: String,
    /// This replica's identity (its pod name); must differ between replicas.
    pub identity: String,
    /// How long a standby waits after the last renewal it saw before taking over.
    pub lease_duration: Duration,
    /// How long the leader keeps failing to renew before it gives up; `< lease_duration`.
    pub renew_deadline: Duration,
    /// Pause between attempts to acquire or renew.
    pub retry_period: Duration,
}

impl LeaseConfig {
    /// Checks the ordering client-go also insists on: retry < renew deadline < lease duration.
    pub fn validate(&self) -> Result<(), LeaderError> {
        if self.retry_period.is_zero()
            || self.retry_period >= self.renew_deadline
            || self.renew_deadline >= self.lease_duration
        {
            return Err(LeaderError::InvalidTiming(format!(
                "need 0 < retry period ({:?}) < renew deadline ({:?}) < lease duration ({:?})",
                self.retry_period, self.renew_deadline, self.lease_duration
            )));
        }
        if self.identity.is_empty() {
            return Err(LeaderError::InvalidTiming(
                "the identity must not be empty".into(),
            ));
        }
        Ok(())
    }
}

/// Leader-election failures.
#[derive(Debug, thiserror::Error)]
pub enum LeaderError {
    /// The configured timings or identity cannot work.
    #[error("invalid leader-election configuration: {0}")]
    InvalidTiming(String),
    /// The Lease could not be read or written.
    #[error("leader-election Lease request failed: {0}")]
    Kube(#[from] kube::Error),
}

/// What one attempt to acquire or renew found.
#[derive(Debug, PartialEq, Eq)]
enum Attempt {
    /// We hold the Lease now.
    Held,
    /// Someone else holds a Lease that has not expired.
    HeldByOther,
    /// Someone wrote the Lease between our read and our write; try again next round.
    Conflict,
}

/// Runs the election for one replica.
pub struct LeaderElector {
    api: Api<Lease>,
    config: LeaseConfig,
    /// The last Lease record seen (by resourceVersion) and when we first saw it: the local clock
    /// that decides expiry.
    observed: Option<(String, Instant)>,
}

impl LeaderElector {
    /// An elector for `config`; nothing is sent until [`acquire`](Self::acquire).
    pub fn new(client: Client, config: LeaseConfig) -> Result<Self, LeaderError> {
        config.validate()?;
        Ok(Self {
            api: Api::namespaced(client, &config.namespace),
            config,
            observed: None,
        })
    }

    /// Waits until this replica holds the Lease, then keeps renewing it in a background task.
    /// Returns `None` if `shutdown` is cancelled first.
    pub async fn acquire(mut self, shutdown: &CancellationToken) -> Option<Leadership> {
        tracing::info!(
            lease = %self.config.name,
            namespace = %self.config.namespace,
            identity = %self.config.identity,
            "waiting to become leader"
        );
        loop {
            let started = Instant::now();
            match self.try_acquire_or_renew().await {
                Ok(Attempt::Held) => break,
                Ok(Attempt::HeldByOther | Attempt::Conflict) => {}
                Err(error) => tracing::warn!(%error, "leader election attempt failed"),
            }
            let pause = self.config.retry_period.saturating_sub(started.elapsed());
            tokio::select! {
                () = shutdown.cancelled() => return None,
                () = tokio::time::sleep(pause) => {}
            }
        }
        tracing::info!(identity = %self.config.identity, lease = %self.config.name, "became leader");
        let lost = CancellationToken::new();
        let stop = CancellationToken::new();
        let task = tokio::spawn(self.renew_until(lost.clone(), stop.clone()));
        Some(Leadership { lost, stop, task })
    }

    /// One acquire-or-renew round, as client-go's `tryAcquireOrRenew`.
    async fn try_acquire_or_renew(&mut self) -> Result<Attempt, kube::Error> {
        let now = MicroTime(Timestamp::now());
        let duration_seconds =
            i32::try_from(self.config.lease_duration.as_secs()).unwrap_or(i32::MAX);
        let Some(mut lease) = self.api.get_opt(&self.config.name).await? else {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(self.config.name.clone()),
                    namespace: Some(self.config.namespace.clone()),
                    ..ObjectMeta::default()
                },
                spec: Some(LeaseSpec {
                    holder_identity: Some(self.config.identity.clone()),
                    lease_duration_seconds: Some(duration_seconds),
                    acquire_time: Some(now.clone()),
                    renew_time: Some(now),
                    lease_transitions: Some(0),
                    ..LeaseSpec::default()
                }),
            };
            return match self.api.create(&PostParams::default(), &lease).await {
                Ok(_) => Ok(Attempt::Held),
                Err(error) if is_conflict(&error) => Ok(Attempt::Conflict),
                Err(error) => Err(error),
            };
        };

        let version = lease.metadata.resource_version.clone().unwrap_or_default();
        let first_seen = match &self.observed {
            Some((seen, at)) if *seen == version => *at,
            _ => {
                let at = Instant::now();
                self.observed = Some((version, at));
                at
            }
        };
        let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
        let holder = spec
            .holder_identity
            .clone()
            .filter(|holder| !holder.is_empty());
        let held_by_us = holder.as_deref() == Some(self.config.identity.as_str());
        if let Some(holder) = &holder
            && !held_by_us
        {
            // The holder's own duration counts: it may be configured differently from us.
            let holder_duration = spec
                .lease_duration_seconds
                .and_then(|seconds| u64::try_from(seconds).ok())
                .map_or(self.config.lease_duration, Duration::from_secs);
            if first_seen.elapsed() < holder_duration {
                tracing::debug!(%holder, "lease held by another replica");
                return Ok(Attempt::HeldByOther);
            }
            tracing::info!(%holder, "lease expired, taking over");
        }
        if !held_by_us {
            spec.acquire_time = Some(now.clone());
            spec.lease_transitions = Some(spec.lease_transitions.unwrap_or(0).saturating_add(1));
            spec.holder_identity = Some(self.config.identity.clone());
        }
        spec.renew_time = Some(now);
        spec.lease_duration_seconds = Some(duration_seconds);
        // `replace` carries the resourceVersion we read: a concurrent writer makes it fail.
        match self
            .api
            .replace(&self.config.name, &PostParams::default(), &lease)
            .await
        {
            Ok(written) => {
                self.observed = written
                    .metadata
                    .resource_version
                    .map(|version| (version, Instant::now()));
                Ok(Attempt::Held)
            }
            Err(error) if is_conflict(&error) => Ok(Attempt::Conflict),
            Err(error) => Err(error),
        }
    }

    async fn renew_until(mut self, lost: CancellationToken, stop: CancellationToken) {
        let mut last_renewed = Instant::now();
        loop {
            tokio::select! {
                () = stop.cancelled() => {
                    self.release().await;
                    return;
                }
                () = tokio::time::sleep(self.config.retry_period) => {}
            }
            let started = Instant::now();
            let remaining = self
                .config
                .renew_deadline
                .saturating_sub(last_renewed.elapsed());
            // A hung request must not keep us "leader" past the deadline.
            match tokio::time::timeout(remaining, self.try_acquire_or_renew()).await {
                Ok(Ok(Attempt::Held)) => {
                    // Measured from before the request: the server may have stamped it later.
                    last_renewed = started;
                    continue;
                }
                Ok(Ok(Attempt::HeldByOther)) => {
                    tracing::error!("the Lease is held by another replica; leadership lost");
                    lost.cancel();
                    return;
                }
                Ok(Ok(Attempt::Conflict)) => tracing::warn!("renewing the Lease hit a conflict"),
                Ok(Err(error)) => tracing::warn!(%error, "renewing the Lease failed"),
                Err(_elapsed) => tracing::warn!("renewing the Lease timed out"),
            }
            if last_renewed.elapsed() >= self.config.renew_deadline {
                tracing::error!(
                    deadline = ?self.config.renew_deadline,
                    "could not renew the Lease before the deadline; leadership lost"
                );
                lost.cancel();
                return;
            }
        }
    }

    /// Gives the Lease up so a standby can take over at once. Best effort: if it fails, the Lease
    /// simply expires.
    async fn release(&self) {
        let result = async {
            let Some(mut lease) = self.api.get_opt(&self.config.name).await? else {
                return Ok(());
            };
            let Some(spec) = lease.spec.as_mut() else {
                return Ok(());
            };
            if spec.holder_identity.as_deref() != Some(self.config.identity.as_str()) {
                return Ok(());
            }
            spec.holder_identity = None;
            spec.lease_duration_seconds = Some(1);
            spec.renew_time = Some(MicroTime(Timestamp::now()));
            self.api
                .replace(&self.config.name, &PostParams::default(), &lease)
                .await
                .map(|_| ())
        }
        .await;
        match result {
            Ok(()) => tracing::info!(lease = %self.config.name, "released the Lease"),
            Err(error) => tracing::warn!(%error, "releasing the Lease failed; it will expire"),
        }
    }
}

/// Held while this replica is the leader.
pub struct Leadership {
    lost: CancellationToken,
    stop: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

impl Leadership {
    /// Cancelled when the Lease is lost; whatever the leader does must stop then.
    pub fn lost_token(&self) -> CancellationToken {
        self.lost.clone()
    }

    /// Whether the Lease has been lost.
    pub fn is_lost(&self) -> bool {
        self.lost.is_cancelled()
    }

    /// Stops renewing and releases the Lease (if still held) so a standby takes over quickly.
    pub async fn release(self) {
        self.stop.cancel();
        if let Err(error) = self.task.await {
            tracing::warn!(%error, "the Lease renewal task failed");
        }
    }
}

/// A default identity when no pod name is given: the host name (the pod name inside Kubernetes)
/// plus the process id and a random suffix, so two processes on one host never share one.
pub fn default_identity(operator: &str) -> String {
    let host = std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
        .map(|host| host.trim().to_owned())
        .filter(|host| !host.is_empty())
        .unwrap_or_else(|| format!("vertice-{operator}"));
    format!(
        "{host}-{}-{:08x}",
        std::process::id(),
        rand::random::<u32>()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(retry: u64, renew: u64, lease: u64) -> LeaseConfig {
        LeaseConfig {
            namespace: "default".into(),
            name: "l".into(),
            identity: "me".into(),
            lease_duration: Duration::from_secs(lease),
            renew_deadline: Duration::from_secs(renew),
            retry_period: Duration::from_secs(retry),
        }
    }

    #[test]
    fn timing_must_be_ordered() {
        assert!(config(2, 10, 15).validate().is_ok());
        assert!(config(2, 15, 15).validate().is_err());
        assert!(config(10, 10, 15).validate().is_err());
        assert!(config(0, 10, 15).validate().is_err());
    }

    #[test]
    fn default_identities_differ() {
        assert_ne!(default_identity("x"), default_identity("x"));
    }
}
