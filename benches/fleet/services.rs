//! The fleet: N small services in one namespace, each a Deployment of one replica under a
//! CanaryRollout with the replicas router, two 10 s stages and one Prometheus check. The bench
//! writes and reads them in bulk with its own client; none of that is counted.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use futures::{StreamExt, TryStreamExt, stream};
use k8s_openapi::api::apps::v1::Deployment;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use kube::{Client, ResourceExt};
use serde_json::json;
use sluice::api::CanaryRollout;
use sluice::api::canary_rollout::Phase;

/// The canary's error ratio the check reads; the bench's exporter serves it below the bound.
pub const ERROR_METRIC: &str = "sluice_fleet_error_ratio";

/// Writes the harness sends at once: enough to keep the apiserver busy, few enough not to
/// crowd out the operator's requests.
const WRITES_IN_FLIGHT: usize = 16;

/// How often a wait looks at the fleet, and how often it says how far it got.
const LOOK_EVERY: Duration = Duration::from_secs(2);
const REPORT_EVERY: Duration = Duration::from_secs(30);

pub struct Fleet {
    pub size: usize,
    deployments: Api<Deployment>,
    rollouts: Api<CanaryRollout>,
}

/// How far a wait got.
pub struct Progress {
    pub reached: usize,
    pub elapsed: Duration,
    /// What the rest were doing when the wait gave up (empty when all got there).
    pub stragglers: String,
}

impl Progress {
    pub fn complete(&self, size: usize) -> bool {
        self.reached == size
    }
}

impl Fleet {
    pub fn new(client: Client, namespace: &str, size: usize) -> Fleet {
        Fleet {
            size,
            deployments: Api::namespaced(client.clone(), namespace),
            rollouts: Api::namespaced(client, namespace),
        }
    }

    /// `app-0001` …: the Deployment, the CanaryRollout and the Service they stand for.
    fn names(&self) -> impl Iterator<Item = String> + use<> {
        (1..=self.size).map(|i| format!("app-{i:04}"))
    }

    pub async fn create_deployments(&self, image: &str) -> Result<(), kube::Error> {
        let writes = self.names().map(|name| {
            let deployment: Deployment = serde_json::from_value(json!({
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "metadata": {"name": name},
                "spec": {
                    "replicas": 1,
                    "selector": {"matchLabels": {"app": name}},
                    "template": {
                        "metadata": {"labels": {"app": name}},
                        "spec": {"containers": [{
                            "name": "app", "image": image, "ports": [{"containerPort": 8080}],
                        }]},
                    },
                },
            }))
            .expect("a Deployment");
            async move {
                self.deployments
                    .create(&PostParams::default(), &deployment)
                    .await
            }
        });
        in_flight(writes).await
    }

    pub async fn create_rollouts(&self) -> Result<(), kube::Error> {
        let query = format!(
            "max({ERROR_METRIC}{{namespace=\"{{{{namespace}}}}\",track=\"{{{{track}}}}\"}})"
        );
        let writes = self.names().map(|name| {
            let rollout: CanaryRollout = serde_json::from_value(json!({
                "apiVersion": "sluice.dev/v1alpha1",
                "kind": "CanaryRollout",
                "metadata": {"name": name},
                "spec": {
                    "targetRef": {"name": name},
                    "service": {"name": name, "port": 80, "targetPort": 8080},
                    "trafficRouting": {"replicas": {}},
                    "stages": [{"weight": 50, "pause": "10s"}, {"weight": 100, "pause": "10s"}],
                    // Generous: a slow harness must not turn into rollbacks.
                    "progressDeadline": "10m",
                    "analysis": {
                        "interval": "5s",
                        "failureLimit": 3,
                        "checks": [{"name": "error-rate", "query": query, "max": 0.01}],
                    },
                },
            }))
            .expect("a CanaryRollout");
            async move { self.rollouts.create(&PostParams::default(), &rollout).await }
        });
        in_flight(writes).await
    }

    /// A new pod template on every target Deployment at once: a mass rollout.
    pub async fn change_image(&self, image: &str) -> Result<(), kube::Error> {
        let patch = json!({"spec": {"template": {"spec": {"containers": [{"name": "app", "image": image}]}}}});
        let writes = self.names().map(|name| {
            let patch = &patch;
            async move {
                self.deployments
                    .patch(&name, &PatchParams::default(), &Patch::Strategic(patch))
                    .await
            }
        });
        in_flight(writes).await
    }

    /// Waits until every Deployment (targets only, before any rollout) is available.
    pub async fn wait_available(&self, timeout: Duration) -> Progress {
        self.wait(LOOK_EVERY, timeout, "Deployments available", async || {
            let list = self.deployments.list(&ListParams::default()).await?;
            let available = list
                .items
                .iter()
                .filter(|d| {
                    let status = d.status.as_ref();
                    status.and_then(|s| s.observed_generation) == d.metadata.generation
                        && status.and_then(|s| s.available_replicas).unwrap_or(0) >= 1
                })
                .count();
            Ok((available, format!("{} exist", list.items.len())))
        })
        .await
    }

    /// The stable revision of every rollout that has one.
    pub async fn stable_revisions(&self) -> Result<HashMap<String, String>, kube::Error> {
        let list = self.rollouts.list(&ListParams::default()).await?;
        Ok(list
            .items
            .iter()
            .filter_map(|r| {
                let revision = r.status.as_ref()?.stable_revision.clone()?;
                Some((r.name_any(), revision))
            })
            .collect())
    }

    /// Waits until every rollout has adopted its target: at rest (Idle, or Succeeded), with a
    /// stable revision.
    pub async fn wait_adopted(&self, timeout: Duration) -> Progress {
        self.wait_rollouts(timeout, "adopted", |rollout| {
            let status = rollout.status.as_ref();
            matches!(
                status.and_then(|s| s.phase),
                Some(Phase::Idle | Phase::Succeeded)
            ) && status.is_some_and(|s| s.stable_revision.is_some())
        })
        .await
    }

    /// Waits until every rollout has promoted a revision other than the one it had `before`.
    pub async fn wait_promoted(
        &self,
        before: &HashMap<String, String>,
        timeout: Duration,
    ) -> Progress {
        self.wait_rollouts(timeout, "promoted", |rollout| {
            let status = rollout.status.as_ref();
            status.and_then(|s| s.phase) == Some(Phase::Succeeded)
                && status.and_then(|s| s.stable_revision.as_ref())
                    != before.get(&rollout.name_any())
        })
        .await
    }

    /// Lets the CanaryRollouts go without the operator (its finalizer would hold the
    /// namespace's deletion forever once the operator is stopped).
    pub async fn release_rollouts(&self) -> Result<(), kube::Error> {
        let patch = json!({"metadata": {"finalizers": null}});
        let writes = self.names().map(|name| {
            let patch = &patch;
            async move {
                match self
                    .rollouts
                    .patch(&name, &PatchParams::default(), &Patch::Merge(patch))
                    .await
                {
                    Err(kube::Error::Api(status)) if status.is_not_found() => Ok(()),
                    other => other.map(|_| ()),
                }
            }
        });
        in_flight(writes).await
    }

    /// Long stages on every rollout, so that a new image keeps all of them in flight.
    pub async fn set_stages(&self, stages: serde_json::Value) -> Result<(), kube::Error> {
        let patch = json!({"spec": {"stages": stages}});
        let writes = self.names().map(|name| {
            let patch = &patch;
            async move {
                self.rollouts
                    .patch(&name, &PatchParams::default(), &Patch::Merge(patch))
                    .await
            }
        });
        in_flight(writes).await
    }

    /// Every rollout, as listed now.
    pub async fn rollouts(&self) -> Result<Vec<CanaryRollout>, kube::Error> {
        Ok(self.rollouts.list(&ListParams::default()).await?.items)
    }

    /// Waits until every rollout is `done`, looking every few seconds.
    pub async fn wait_rollouts(
        &self,
        timeout: Duration,
        what: &str,
        done: impl Fn(&CanaryRollout) -> bool,
    ) -> Progress {
        self.wait_rollouts_every(LOOK_EVERY, timeout, what, done)
            .await
    }

    /// Like [`Fleet::wait_rollouts`], looking every `every`.
    pub async fn wait_rollouts_every(
        &self,
        every: Duration,
        timeout: Duration,
        what: &str,
        done: impl Fn(&CanaryRollout) -> bool,
    ) -> Progress {
        self.wait(every, timeout, &format!("rollouts {what}"), async || {
            let list = self.rollouts.list(&ListParams::default()).await?;
            let mut phases: BTreeMap<String, usize> = BTreeMap::new();
            let mut reached = 0;
            for rollout in &list.items {
                if done(rollout) {
                    reached += 1;
                } else {
                    let phase = rollout.status.as_ref().and_then(|s| s.phase);
                    let phase = phase.map_or("no phase".to_string(), |p| format!("{p:?}"));
                    *phases.entry(phase).or_default() += 1;
                }
            }
            let others: Vec<String> = phases.iter().map(|(p, n)| format!("{p} {n}")).collect();
            Ok((reached, others.join(", ")))
        })
        .await
    }

    /// Looks every few seconds until all `size` are there or `timeout` has passed; says how far
    /// it got now and then, so a long wait shows it is alive.
    async fn wait(
        &self,
        every: Duration,
        timeout: Duration,
        what: &str,
        mut look: impl AsyncFnMut() -> Result<(usize, String), kube::Error>,
    ) -> Progress {
        let started = Instant::now();
        let mut reported = started;
        let mut progress = Progress {
            reached: 0,
            elapsed: Duration::ZERO,
            stragglers: String::new(),
        };
        loop {
            match look().await {
                Ok((reached, rest)) => {
                    progress.reached = reached;
                    progress.stragglers = rest;
                }
                Err(e) => eprintln!("  (looking at the fleet: {e})"),
            }
            progress.elapsed = started.elapsed();
            if progress.complete(self.size) || progress.elapsed >= timeout {
                return progress;
            }
            if reported.elapsed() >= REPORT_EVERY {
                reported = Instant::now();
                eprintln!(
                    "  … {what}: {}/{} after {:.0} s ({})",
                    progress.reached,
                    self.size,
                    progress.elapsed.as_secs_f64(),
                    progress.stragglers
                );
            }
            tokio::time::sleep(every).await;
        }
    }
}

async fn in_flight<T>(
    writes: impl Iterator<Item = impl Future<Output = Result<T, kube::Error>>>,
) -> Result<(), kube::Error> {
    stream::iter(writes)
        .buffer_unordered(WRITES_IN_FLIGHT)
        .try_for_each(|_| async { Ok(()) })
        .await
}
