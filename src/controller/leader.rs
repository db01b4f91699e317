//! Lease-based leader election (coordination.k8s.io/v1 Lease): one replica acts, the others
//! stand by, ready to take over.
//!
//! A standby judges the holder's lease by its own clock: the lease is expired when its record
//! (holder, renew time) has not changed for `leaseDurationSeconds` since this process first saw
//! it, so clock skew between nodes does not matter. The holder renews every `retry` and gives
//! up (the process exits, and Kubernetes restarts it) when it could not renew within
//! `renew_deadline`, which is shorter than the lease: by the time a standby may take over, the
//! old holder has stopped acting. On a clean shutdown the holder releases the lease, so the
//! handover is immediate.

use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use kube::api::{Api, ObjectMeta, PostParams};
use kube::{Client, ResourceExt};
use tokio::time::Instant;
use tracing::{debug, info, warn};

#[derive(Clone, Debug)]
pub struct LeaseConfig {
    pub name: String,
    pub namespace: String,
    /// This process in the lease's `holderIdentity`.
    pub identity: String,
    pub duration: Duration,
}

impl LeaseConfig {
    /// How often a holder renews and a standby looks again.
    pub fn retry(&self) -> Duration {
        (self.duration / 6).max(Duration::from_millis(200))
    }

    /// How long a holder keeps acting without a successful renewal.
    pub fn renew_deadline(&self) -> Duration {
        self.duration * 2 / 3
    }
}

/// `POD_NAME` (from the downward API) when set, else the host name and process id.
pub fn default_identity() -> String {
    if let Ok(pod) = std::env::var("POD_NAME")
        && !pod.is_empty()
    {
        return pod;
    }
    let host = std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/proc/sys/kernel/hostname").ok())
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "sluice".into());
    format!("{host}_{}", std::process::id())
}

/// What a process should do about the lease it sees.
#[derive(Debug, PartialEq, Eq)]
pub enum Judgement {
    /// Nobody holds it, it expired, or it is already ours: write ourselves in.
    Take,
    /// Another process holds a live lease.
    Wait,
}

/// Judges a lease record. `unchanged_for` is how long this process has seen the same record.
pub fn judge(spec: Option<&LeaseSpec>, identity: &str, unchanged_for: Duration) -> Judgement {
    let Some(spec) = spec else {
        return Judgement::Take;
    };
    let holder = spec.holder_identity.as_deref().unwrap_or("");
    if holder.is_empty() || holder == identity {
        return Judgement::Take;
    }
    let duration = Duration::from_secs(spec.lease_duration_seconds.unwrap_or(0).max(0) as u64);
    if unchanged_for >= duration {
        Judgement::Take
    } else {
        Judgement::Wait
    }
}

/// The lease this process holds; renew it with [`LeaseHolder::keep`].
pub struct LeaseHolder {
    api: Api<Lease>,
    config: LeaseConfig,
}

/// Waits until this process holds the lease. Errors of the API are retried, not returned: a
/// standby must survive an apiserver restart.
pub async fn acquire(client: &Client, config: &LeaseConfig) -> LeaseHolder {
    let api: Api<Lease> = Api::namespaced(client.clone(), &config.namespace);
    let mut seen: Option<(String, Instant)> = None;
    let mut waiting_logged = false;
    loop {
        match try_acquire(&api, config, &mut seen).await {
            Ok(true) => {
                info!(lease = %config.name, namespace = %config.namespace, identity = %config.identity, "acquired the lease: this replica acts");
                return LeaseHolder {
                    api,
                    config: config.clone(),
                };
            }
            Ok(false) if !waiting_logged => {
                info!(lease = %config.name, holder = seen.as_ref().map(|s| s.0.as_str()).unwrap_or(""), "another replica holds the lease: standing by");
                waiting_logged = true;
            }
            Ok(false) => {}
            Err(error) => warn!(lease = %config.name, "leader election: {error}"),
        }
        tokio::time::sleep(config.retry()).await;
    }
}

/// One look at the lease: takes it when [`judge`] says so. `seen` is the record last seen and
/// since when, carried between calls.
async fn try_acquire(
    api: &Api<Lease>,
    config: &LeaseConfig,
    seen: &mut Option<(String, Instant)>,
) -> Result<bool, kube::Error> {
    let current = api.get_opt(&config.name).await?;
    let record = current.as_ref().map(record_of).unwrap_or_default();
    let since = match seen {
        Some((previous, since)) if *previous == record => *since,
        _ => Instant::now(),
    };
    *seen = Some((record, since));
    let spec = current.as_ref().and_then(|l| l.spec.as_ref());
    if judge(spec, &config.identity, since.elapsed()) == Judgement::Wait {
        return Ok(false);
    }
    let now = MicroTime(Timestamp::now());
    let taking_over = spec
        .and_then(|s| s.holder_identity.as_deref())
        .is_none_or(|holder| holder != config.identity);
    let transitions = spec.and_then(|s| s.lease_transitions).unwrap_or(0);
    let new_spec = LeaseSpec {
        holder_identity: Some(config.identity.clone()),
        lease_duration_seconds: Some(config.duration.as_secs().max(1) as i32),
        acquire_time: Some(now.clone()),
        renew_time: Some(now),
        lease_transitions: Some(transitions + i32::from(taking_over && current.is_some())),
        ..LeaseSpec::default()
    };
    let written = match current {
        None => {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(config.name.clone()),
                    ..ObjectMeta::default()
                },
                spec: Some(new_spec),
            };
            api.create(&PostParams::default(), &lease).await
        }
        Some(mut lease) => {
            // The resourceVersion makes this a compare-and-swap: of two standbys taking over at
            // once, one gets a conflict.
            lease.spec = Some(new_spec);
            api.replace(&config.name, &PostParams::default(), &lease)
                .await
        }
    };
    match written {
        Ok(_) => Ok(true),
        Err(kube::Error::Api(status)) if status.code == 409 => Ok(false),
        Err(error) => Err(error),
    }
}

fn record_of(lease: &Lease) -> String {
    let spec = lease.spec.clone().unwrap_or_default();
    format!(
        "{}@{}",
        spec.holder_identity.unwrap_or_default(),
        spec.renew_time.map(|t| t.0.to_string()).unwrap_or_default()
    )
}

impl LeaseHolder {
    /// Renews the lease until it cannot: returns when the lease was lost (another holder wrote
    /// itself in, or no renewal succeeded within the renew deadline). The caller must stop
    /// acting at once.
    pub async fn keep(&self) -> String {
        let mut last_renewal = Instant::now();
        loop {
            // A hung request must not keep a holder acting past its deadline.
            let deadline = last_renewal + self.config.renew_deadline();
            let attempt = tokio::time::timeout_at(deadline, async {
                tokio::time::sleep(self.config.retry()).await;
                self.renew().await
            });
            match attempt.await {
                Ok(Ok(())) => last_renewal = Instant::now(),
                Ok(Err(RenewError::Taken(holder))) => return format!("{holder:?} took the lease"),
                Ok(Err(RenewError::Api(error))) => {
                    debug!(lease = %self.config.name, "lease renewal failed: {error}");
                }
                Err(_) => {
                    return format!(
                        "the lease was not renewed for {:?}",
                        self.config.renew_deadline()
                    );
                }
            }
        }
    }

    async fn renew(&self) -> Result<(), RenewError> {
        let mut lease = self.api.get(&self.config.name).await?;
        let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
        let holder = spec.holder_identity.clone().unwrap_or_default();
        if holder != self.config.identity {
            return Err(RenewError::Taken(holder));
        }
        spec.renew_time = Some(MicroTime(Timestamp::now()));
        self.api
            .replace(&self.config.name, &PostParams::default(), &lease)
            .await?;
        Ok(())
    }

    /// Gives the lease up (clean shutdown), so a standby takes over without waiting for it to
    /// expire. A renewal cut short by the shutdown may still land on the apiserver between this
    /// read and this write: a conflict is read again, a few times.
    pub async fn release(&self) {
        for _ in 0..RELEASE_ATTEMPTS {
            let Ok(mut lease) = self.api.get(&self.config.name).await else {
                return;
            };
            let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
            if spec.holder_identity.as_deref() != Some(self.config.identity.as_str()) {
                return;
            }
            spec.holder_identity = None;
            spec.renew_time = None;
            match self
                .api
                .replace(&lease.name_any(), &PostParams::default(), &lease)
                .await
            {
                Ok(_) => {
                    info!(lease = %self.config.name, "released the lease");
                    return;
                }
                Err(kube::Error::Api(status)) if status.code == 409 => {
                    debug!(lease = %self.config.name, "lease changed while releasing it: reading it again");
                }
                Err(error) => {
                    warn!(lease = %self.config.name, "could not release the lease: {error}");
                    return;
                }
            }
        }
        warn!(lease = %self.config.name, "could not release the lease: it kept changing");
    }
}

/// Reads and writes of a lease being released before giving up (it then expires).
const RELEASE_ATTEMPTS: usize = 3;

#[derive(Debug, thiserror::Error)]
enum RenewError {
    #[error("the lease is held by {0:?}")]
    Taken(String),
    #[error(transparent)]
    Api(#[from] kube::Error),
}

#[cfg(test)]
mod tests {
    use super::*;

    fn held_by(holder: &str, seconds: i32) -> LeaseSpec {
        LeaseSpec {
            holder_identity: Some(holder.into()),
            lease_duration_seconds: Some(seconds),
            ..LeaseSpec::default()
        }
    }

    #[test]
    fn a_missing_released_or_own_lease_is_taken_at_once() {
        let zero = Duration::ZERO;
        assert_eq!(judge(None, "a", zero), Judgement::Take);
        assert_eq!(judge(Some(&held_by("", 15)), "a", zero), Judgement::Take);
        assert_eq!(judge(Some(&held_by("a", 15)), "a", zero), Judgement::Take);
    }

    #[test]
    fn another_holders_lease_is_taken_only_after_it_stood_still_for_its_duration() {
        let lease = held_by("b", 15);
        assert_eq!(
            judge(Some(&lease), "a", Duration::from_secs(14)),
            Judgement::Wait
        );
        assert_eq!(
            judge(Some(&lease), "a", Duration::from_secs(15)),
            Judgement::Take
        );
    }

    #[test]
    fn the_holder_stops_acting_before_a_standby_may_take_over() {
        let config = LeaseConfig {
            name: "sluice".into(),
            namespace: "sluice-system".into(),
            identity: "a".into(),
            duration: Duration::from_secs(15),
        };
        assert!(config.renew_deadline() < config.duration);
    }
}
