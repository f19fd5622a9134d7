//! Leader election on a `coordination.k8s.io/v1` Lease, the way client-go's leaderelection
//! does it: the holder renews every third of the lease duration; another replica takes the
//! lease over when the record has not changed for a whole duration *by its own clock* (so
//! clocks need not agree); writes go through the API server's optimistic concurrency
//! (`resourceVersion`), so two replicas can never both win the same round. A leader that
//! cannot renew within two thirds of the duration steps down before anyone can take over.
//! On shutdown the leader releases the lease so a standby takes over at once.

use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use kube::api::{Api, ObjectMeta, PostParams};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// What a replica should do with the lease it just read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// We hold it: renew.
    Renew,
    /// Free or expired: take it.
    Acquire,
    /// Someone else holds it and renews.
    Standby { holder: String },
}

/// Decides from the lease's holder and how long ago (by our clock) the record last changed.
pub fn decide(
    holder: Option<&str>,
    me: &str,
    unchanged_for: Duration,
    duration: Duration,
) -> Decision {
    match holder {
        Some(h) if h == me => Decision::Renew,
        Some(h) if !h.is_empty() && unchanged_for < duration => Decision::Standby {
            holder: h.to_owned(),
        },
        _ => Decision::Acquire,
    }
}

/// A running election. `is_leader` follows the outcome.
pub struct Elector {
    api: Api<Lease>,
    name: String,
    identity: String,
    duration: Duration,
    leader: watch::Sender<bool>,
    /// The record last seen (resourceVersion) and when it was first seen.
    observed: Option<(String, Instant)>,
    last_renewed: Option<Instant>,
}

impl Elector {
    pub fn new(
        client: kube::Client,
        namespace: &str,
        name: &str,
        identity: &str,
        duration: Duration,
    ) -> (Self, watch::Receiver<bool>) {
        let (leader, rx) = watch::channel(false);
        (
            Self {
                api: Api::namespaced(client, namespace),
                name: name.to_owned(),
                identity: identity.to_owned(),
                duration,
                leader,
                observed: None,
                last_renewed: None,
            },
            rx,
        )
    }

    /// Runs rounds until `shutdown`, then releases the lease if held.
    pub async fn run(mut self, shutdown: CancellationToken) {
        let period = self.duration / 3;
        loop {
            match self.round().await {
                Ok(leading) => self.set_leader(leading),
                Err(error) => {
                    tracing::warn!(%error, lease = self.name, "lease round failed");
                    let deadline = self.duration * 2 / 3;
                    if self.last_renewed.is_none_or(|t| t.elapsed() >= deadline) {
                        self.set_leader(false);
                    }
                }
            }
            tokio::select! {
                () = tokio::time::sleep(period) => {}
                () = shutdown.cancelled() => break,
            }
        }
        if *self.leader.borrow() {
            self.set_leader(false);
            if let Err(error) = self.release().await {
                tracing::warn!(%error, "cannot release the lease; a standby takes over when it expires");
            }
        }
    }

    fn set_leader(&mut self, leading: bool) {
        let was = *self.leader.borrow();
        if was != leading {
            if leading {
                tracing::info!(
                    lease = self.name,
                    identity = self.identity,
                    "became the leader"
                );
            } else {
                tracing::warn!(
                    lease = self.name,
                    identity = self.identity,
                    "not the leader any more"
                );
                self.last_renewed = None;
            }
            self.leader.send_replace(leading);
        }
    }

    fn spec(&self, previous: Option<&LeaseSpec>, acquiring: bool) -> LeaseSpec {
        let now = MicroTime(k8s_openapi::jiff::Timestamp::now());
        let transitions = previous.and_then(|s| s.lease_transitions).unwrap_or(0);
        LeaseSpec {
            holder_identity: Some(self.identity.clone()),
            lease_duration_seconds: Some(i32::try_from(self.duration.as_secs()).unwrap_or(15)),
            acquire_time: if acquiring {
                Some(now.clone())
            } else {
                previous.and_then(|s| s.acquire_time.clone())
            },
            renew_time: Some(now),
            lease_transitions: Some(if acquiring && previous.is_some() {
                transitions + 1
            } else {
                transitions
            }),
            ..LeaseSpec::default()
        }
    }

    /// One round: read, decide, write. Returns whether we lead afterwards.
    async fn round(&mut self) -> Result<bool, kube::Error> {
        let Some(mut lease) = self.api.get_opt(&self.name).await? else {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(self.name.clone()),
                    ..ObjectMeta::default()
                },
                spec: Some(self.spec(None, true)),
            };
            return match self.api.create(&PostParams::default(), &lease).await {
                Ok(_) => {
                    self.last_renewed = Some(Instant::now());
                    Ok(true)
                }
                Err(kube::Error::Api(e)) if e.code == 409 => Ok(false),
                Err(e) => Err(e),
            };
        };
        let version = lease.metadata.resource_version.clone().unwrap_or_default();
        let unchanged_for = match &self.observed {
            Some((seen, since)) if *seen == version => since.elapsed(),
            _ => {
                self.observed = Some((version, Instant::now()));
                Duration::ZERO
            }
        };
        let spec = lease.spec.clone().unwrap_or_default();
        let decision = decide(
            spec.holder_identity.as_deref(),
            &self.identity,
            unchanged_for,
            self.duration,
        );
        let acquiring = match decision {
            Decision::Standby { holder } => {
                tracing::debug!(holder, "another replica leads");
                return Ok(false);
            }
            Decision::Acquire => true,
            Decision::Renew => false,
        };
        lease.spec = Some(self.spec(Some(&spec), acquiring));
        match self
            .api
            .replace(&self.name, &PostParams::default(), &lease)
            .await
        {
            Ok(written) => {
                self.observed = written
                    .metadata
                    .resource_version
                    .map(|v| (v, Instant::now()));
                self.last_renewed = Some(Instant::now());
                Ok(true)
            }
            // Someone wrote in between: they won this round.
            Err(kube::Error::Api(e)) if e.code == 409 => Ok(false),
            Err(e) => Err(e),
        }
    }

    async fn release(&self) -> Result<(), kube::Error> {
        let mut lease = self.api.get(&self.name).await?;
        let mut spec = lease.spec.clone().unwrap_or_default();
        if spec.holder_identity.as_deref() != Some(self.identity.as_str()) {
            return Ok(());
        }
        spec.holder_identity = None;
        spec.lease_duration_seconds = Some(1);
        lease.spec = Some(spec);
        self.api
            .replace(&self.name, &PostParams::default(), &lease)
            .await
            .map(|_| tracing::info!(lease = self.name, "released the lease"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: Duration = Duration::from_secs(15);

    #[test]
    fn the_holder_renews() {
        assert_eq!(
            decide(Some("a"), "a", Duration::from_secs(100), D),
            Decision::Renew
        );
    }

    #[test]
    fn a_live_holder_keeps_it() {
        assert_eq!(
            decide(Some("b"), "a", Duration::from_secs(14), D),
            Decision::Standby { holder: "b".into() }
        );
    }

    #[test]
    fn an_expired_or_released_lease_is_taken() {
        assert_eq!(decide(Some("b"), "a", D, D), Decision::Acquire);
        assert_eq!(decide(None, "a", Duration::ZERO, D), Decision::Acquire);
        assert_eq!(decide(Some(""), "a", Duration::ZERO, D), Decision::Acquire);
    }
}
