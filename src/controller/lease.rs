//! Leader election on a `coordination.k8s.io/v1` Lease, so that two controller replicas never
//! both act. The holder renews every `renew_every`; anyone may take the Lease once its
//! `renewTime` is older than `leaseDurationSeconds`. Every write is a replace carrying the
//! `resourceVersion` just read, so of two candidates racing for an expired Lease exactly one
//! wins (the other gets 409 Conflict). A holder that cannot renew for `renew_deadline`
//! steps down on its own, before anyone else may take over.
//!
//! Why our own (2026-12-05): of the maintained leader-election crates only kube-lease-manager
//! (0.13) builds against kube 5 (kube-leader-election 0.43 and kube-coordinate 0.2 pull kube 3
//! and 1); it would add five crates and replace these ~200 lines whose behaviour the e2e
//! failover scenarios prove (step-down before expiry, release on shutdown, one holder acting)
//! and which report a Lease problem on `/readyz`. Kept until a swap can be proven the same way.

use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::api::{Api, PostParams};
use kube::{Client, ResourceExt};
use tokio::sync::watch;

/// Name of the Lease every controller replica competes for.
pub const LEASE_NAME: &str = "allot-controller";
/// How long a Lease holds without renewal: the longest a dead leader blocks failover.
pub const DEFAULT_DURATION: Duration = Duration::from_secs(15);
/// How often the holder renews (and others retry): a third of the duration, as client-go does.
pub const DEFAULT_RENEW_EVERY: Duration = Duration::from_secs(5);

/// Who competes for which Lease.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseConfig {
    pub namespace: String,
    pub name: String,
    /// Unique per process: host name and pid.
    pub identity: String,
    pub duration: Duration,
    pub renew_every: Duration,
}

impl LeaseConfig {
    /// An empty namespace (no `--lease-namespace`) becomes the client's: the namespace of
    /// the pod's service account, or the kubeconfig context's.
    pub fn or_namespace_of(&mut self, client: &Client) {
        if self.namespace.is_empty() {
            self.namespace = client.default_namespace().to_string();
        }
    }

    /// Renewal failures for this long make the holder step down: two thirds of the duration,
    /// so it stops before the Lease expires for the others.
    pub fn renew_deadline(&self) -> Duration {
        self.duration * 2 / 3
    }

    /// The same Lease held for `duration` and renewed every third of it (at least every
    /// second), as client-go does.
    pub fn with_duration(self, duration: Duration) -> Self {
        LeaseConfig {
            duration,
            renew_every: (duration / 3).max(Duration::from_secs(1)),
            ..self
        }
    }
}

/// A process identity: `$HOSTNAME` (the pod name in a cluster) and the pid.
pub fn default_identity() -> String {
    let host = std::env::var("HOSTNAME")
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "allot".into());
    format!("{host}-{}", std::process::id())
}

/// What to do with the Lease as read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Nobody holds it, or the holder let it expire: take it.
    Acquire,
    /// We hold it: renew.
    Renew,
    /// Someone else holds a live Lease.
    Wait { holder: String },
}

/// Decide from the Lease's spec alone (pure).
pub fn step(spec: Option<&LeaseSpec>, identity: &str, now: Timestamp) -> Step {
    let Some(spec) = spec else {
        return Step::Acquire;
    };
    let holder = spec.holder_identity.as_deref().unwrap_or("");
    if holder == identity {
        return Step::Renew;
    }
    if holder.is_empty() {
        return Step::Acquire;
    }
    let duration = SignedDuration::from_secs(i64::from(spec.lease_duration_seconds.unwrap_or(0)));
    let expired = match spec.renew_time.as_ref().or(spec.acquire_time.as_ref()) {
        Some(MicroTime(renewed)) => renewed
            .checked_add(duration)
            .map_or(true, |until| until < now),
        None => true,
    };
    if expired {
        Step::Acquire
    } else {
        Step::Wait {
            holder: holder.to_string(),
        }
    }
}

fn held_spec(config: &LeaseConfig, now: Timestamp, transitions: i32) -> LeaseSpec {
    LeaseSpec {
        holder_identity: Some(config.identity.clone()),
        lease_duration_seconds: Some(config.duration.as_secs().clamp(1, i32::MAX as u64) as i32),
        acquire_time: Some(MicroTime(now)),
        renew_time: Some(MicroTime(now)),
        lease_transitions: Some(transitions),
        ..LeaseSpec::default()
    }
}

/// One round: read, then create, renew or take over. `Ok(true)` while we hold the Lease.
async fn round(api: &Api<Lease>, config: &LeaseConfig) -> Result<bool, kube::Error> {
    let now = Timestamp::now();
    let current = api.get_opt(&config.name).await?;
    let outcome = match current {
        None => {
            let mut lease = Lease {
                spec: Some(held_spec(config, now, 0)),
                ..Lease::default()
            };
            lease.metadata.name = Some(config.name.clone());
            api.create(&PostParams::default(), &lease).await.map(|_| ())
        }
        Some(mut lease) => match step(lease.spec.as_ref(), &config.identity, now) {
            Step::Wait { holder } => {
                tracing::debug!(lease = %lease.name_any(), %holder, "another replica leads");
                return Ok(false);
            }
            Step::Renew => {
                let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
                spec.renew_time = Some(MicroTime(now));
                api.replace(&config.name, &PostParams::default(), &lease)
                    .await
                    .map(|_| ())
            }
            Step::Acquire => {
                let transitions = lease
                    .spec
                    .as_ref()
                    .and_then(|s| s.lease_transitions)
                    .unwrap_or(0)
                    .saturating_add(1);
                lease.spec = Some(held_spec(config, now, transitions));
                api.replace(&config.name, &PostParams::default(), &lease)
                    .await
                    .map(|_| ())
            }
        },
    };
    match outcome {
        Ok(()) => Ok(true),
        // Somebody else wrote first (or created it meanwhile): they won this round.
        Err(kube::Error::Api(s)) if s.code == 409 => Ok(false),
        Err(e) => Err(e),
    }
}

/// Give the Lease up if this process holds it (on shutdown), so that a successor takes over
/// at once instead of after the Lease expires.
pub async fn release(client: Client, config: &LeaseConfig) -> Result<(), kube::Error> {
    let api = Api::<Lease>::namespaced(client, &config.namespace);
    let Some(mut lease) = api.get_opt(&config.name).await? else {
        return Ok(());
    };
    let Some(spec) = lease.spec.as_mut() else {
        return Ok(());
    };
    if spec.holder_identity.as_deref() != Some(config.identity.as_str()) {
        return Ok(());
    }
    spec.holder_identity = None;
    spec.acquire_time = None;
    spec.renew_time = None;
    api.replace(&config.name, &PostParams::default(), &lease)
        .await
        .map(|_| ())
}

/// What a failed round means for a person: a missing namespace is named as such.
fn problem(e: &kube::Error, config: &LeaseConfig) -> String {
    match e {
        kube::Error::Api(s) if s.code == 404 && s.message.contains("namespaces") => format!(
            "the Lease's namespace {ns:?} does not exist: create it (kubectl create namespace \
             {ns}) or pass --lease-namespace; no ScheduleRequest is reconciled until then",
            ns = config.namespace
        ),
        e => format!("lease {}/{}: {e}", config.namespace, config.name),
    }
}

/// Compete for the Lease forever, publishing `true` on `leading` while this process holds it.
/// A failure is logged when it starts or changes (not every round), and `/readyz` says it.
pub async fn run(
    client: Client,
    config: LeaseConfig,
    leading: watch::Sender<bool>,
    metrics: std::sync::Arc<super::metrics::Metrics>,
) {
    let api = Api::<Lease>::namespaced(client, &config.namespace);
    let mut renewed: Option<Instant> = None;
    let mut failing: Option<String> = None;
    loop {
        let held = match round(&api, &config).await {
            Ok(held) => {
                if failing.take().is_some() {
                    tracing::info!(lease = %config.name, namespace = %config.namespace,
                        "lease rounds succeed again");
                    metrics.set_lease_problem(None);
                }
                renewed = held.then(Instant::now);
                held
            }
            Err(e) => {
                let now = problem(&e, &config);
                if failing.as_deref() != Some(now.as_str()) {
                    tracing::error!("{now}");
                    metrics.set_lease_problem(Some(now.clone()));
                    failing = Some(now);
                } else {
                    tracing::debug!(error = %e, "lease round failed again");
                }
                renewed.is_some_and(|t| t.elapsed() < config.renew_deadline())
            }
        };
        if held != *leading.borrow() {
            tracing::info!(identity = %config.identity, leading = held, "leadership changed");
            leading.send_replace(held);
        }
        tokio::time::sleep(config.renew_every).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(holder: &str, renewed: &str, secs: i32) -> LeaseSpec {
        LeaseSpec {
            holder_identity: Some(holder.into()),
            lease_duration_seconds: Some(secs),
            renew_time: Some(MicroTime(renewed.parse().expect("time"))),
            ..LeaseSpec::default()
        }
    }

    fn at(t: &str) -> Timestamp {
        t.parse().expect("time")
    }

    #[test]
    fn a_missing_or_released_lease_is_acquired() {
        assert_eq!(step(None, "me", at("2026-01-01T00:00:00Z")), Step::Acquire);
        let released = LeaseSpec::default();
        assert_eq!(
            step(Some(&released), "me", at("2026-01-01T00:00:00Z")),
            Step::Acquire
        );
    }

    #[test]
    fn a_live_lease_of_another_holder_is_respected_until_it_expires() {
        let s = spec("other", "2026-01-01T00:00:00Z", 15);
        assert_eq!(
            step(Some(&s), "me", at("2026-01-01T00:00:10Z")),
            Step::Wait {
                holder: "other".into()
            }
        );
        assert_eq!(
            step(Some(&s), "me", at("2026-01-01T00:00:16Z")),
            Step::Acquire
        );
    }

    #[test]
    fn the_holder_renews() {
        let s = spec("me", "2026-01-01T00:00:00Z", 15);
        assert_eq!(
            step(Some(&s), "me", at("2026-01-01T00:05:00Z")),
            Step::Renew
        );
    }

    #[test]
    fn the_holder_steps_down_before_the_lease_expires() {
        let c = LeaseConfig {
            namespace: "ns".into(),
            name: LEASE_NAME.into(),
            identity: "me".into(),
            duration: DEFAULT_DURATION,
            renew_every: DEFAULT_RENEW_EVERY,
        };
        assert!(c.renew_deadline() < c.duration && c.renew_deadline() > c.renew_every);
    }
}
