//! One scenario: a service under a CanaryRollout (or two environments under a ReleasePipeline)
//! in a namespace of its own, a release that is good, bad or slow to become ready, and perhaps a
//! concurrent edit by a GitOps-like writer or a deletion mid-rollout. After the campaign's faults
//! it checks what the cluster and the rollout's status show.

use std::time::{Duration, Instant};

use jiff::Timestamp;
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::{Pod, Service as CoreService};
use kube::api::{DeleteParams, Patch, PatchParams};
use kube::{Api, ResourceExt};
use rand::RngExt;
use rand::rngs::StdRng;
use serde::de::DeserializeOwned;
use serde_json::json;
use sluice::api::CanaryRollout;
use sluice::api::canary_rollout::{Phase, RolloutResult};

use crate::pipeline_fixture::{self, Environments};
use crate::rollout_fixture::{self, Service};
use crate::support::{MetricsExporter, TestNamespace};

pub const V1: &str = "registry.example/checkout:1.0.0";
const V2: &str = "registry.example/checkout:2.0.0";
const V3: &str = "registry.example/checkout:3.0.0";
const STAGES: &str = "[{weight: 10, pause: 3s}, {weight: 50, pause: 3s}, {weight: 100, pause: 2s}]";
const STAGING_STAGES: &str = "[{weight: 1, pause: 3s}]";
const GOOD_ERROR_RATIO: f64 = 0.001;
const BAD_ERROR_RATIO: f64 = 0.2;
/// How long a read by the campaign itself may keep failing (the apiserver restarting).
const READ_PATIENCE: Duration = Duration::from_secs(90);

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    Good,
    Bad,
    /// Good, but the candidate's pods take seconds to become ready.
    Slow,
    PipelineGood,
    PipelineBad,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Edit {
    None,
    /// Git changes the image again while the rollout runs.
    Template,
    /// Git applies the CanaryRollout again with another failureLimit.
    Spec,
    /// Git applies the HTTPRoute again as it is in Git: all traffic on the user's Service.
    Route,
    /// The CanaryRollout is deleted mid-rollout.
    Delete,
}

/// The invariants the campaign counts violations of.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Invariant {
    PromotionWithoutPassingJudgement,
    StageSkippedOrRepeated,
    BadCandidateNotRolledBack,
    GoodCandidateNotPromoted,
    DeletedRolloutNotHandedBack,
    PanicOrCrash,
    StatusInconsistentWithCluster,
    Stuck,
}

impl Invariant {
    pub const ALL: [Invariant; 8] = [
        Invariant::PromotionWithoutPassingJudgement,
        Invariant::StageSkippedOrRepeated,
        Invariant::BadCandidateNotRolledBack,
        Invariant::GoodCandidateNotPromoted,
        Invariant::DeletedRolloutNotHandedBack,
        Invariant::PanicOrCrash,
        Invariant::StatusInconsistentWithCluster,
        Invariant::Stuck,
    ];

    pub fn describe(self) -> &'static str {
        match self {
            Invariant::PromotionWithoutPassingJudgement => {
                "no stage passed without a passing judgement"
            }
            Invariant::StageSkippedOrRepeated => "no stage skipped or repeated",
            Invariant::BadCandidateNotRolledBack => "every bad candidate rolled back, scaled to 0",
            Invariant::GoodCandidateNotPromoted => "every good candidate promoted (no false alarm)",
            Invariant::DeletedRolloutNotHandedBack => {
                "every deleted rollout handed back, nothing left"
            }
            Invariant::PanicOrCrash => "no panic, no operator exit of its own",
            Invariant::StatusInconsistentWithCluster => "status consistent with the cluster",
            Invariant::Stuck => "every scenario settled in time (none stuck)",
        }
    }
}

/// What one scenario does, drawn from the batch's seed.
#[derive(Clone, Debug)]
pub struct Plan {
    pub kind: Kind,
    pub gateway: bool,
    pub edit: Edit,
    release_at: Duration,
    edit_after: Duration,
    ready_after: Duration,
}

impl Plan {
    pub fn draw(rng: &mut StdRng) -> Plan {
        let kind = match rng.random_range(0..100) {
            0..30 => Kind::Good,
            30..60 => Kind::Bad,
            60..75 => Kind::Slow,
            75..88 => Kind::PipelineGood,
            _ => Kind::PipelineBad,
        };
        let pipeline = matches!(kind, Kind::PipelineGood | Kind::PipelineBad);
        let gateway = !pipeline && rng.random_bool(0.5);
        let edit = match rng.random_range(0..100) {
            _ if pipeline => Edit::None,
            0..40 => Edit::None,
            40..55 => Edit::Template,
            55..70 => Edit::Spec,
            70..85 if gateway => Edit::Route,
            70..85 => Edit::None,
            _ => Edit::Delete,
        };
        Plan {
            kind,
            gateway,
            edit,
            release_at: Duration::from_millis(rng.random_range(0..4000)),
            edit_after: Duration::from_millis(rng.random_range(2000..20_000)),
            ready_after: Duration::from_millis(rng.random_range(4000..20_000)),
        }
    }

    fn rollout_yaml(&self, failure_limit: u32) -> String {
        let routing = if self.gateway {
            rollout_fixture::GATEWAY
        } else {
            rollout_fixture::REPLICAS
        };
        let yaml = rollout_fixture::with_progress_deadline(
            &rollout_fixture::rollout_yaml(routing, STAGES, ""),
            "120s",
        );
        assert!(yaml.contains("failureLimit: 2"));
        yaml.replace("failureLimit: 2", &format!("failureLimit: {failure_limit}"))
    }
}

enum Deployed {
    Rollout(Service),
    Pipeline(Environments),
}

impl Deployed {
    fn namespace(&self) -> &TestNamespace {
        match self {
            Deployed::Rollout(service) => &service.ns,
            Deployed::Pipeline(environments) => &environments.ns,
        }
    }

    fn exporter(&self) -> &MetricsExporter {
        match self {
            Deployed::Rollout(service) => &service.exporter,
            Deployed::Pipeline(environments) => &environments.exporter,
        }
    }
}

pub struct Scenario {
    pub plan: Plan,
    deployed: Deployed,
    /// The image Git holds for the target at the end.
    final_image: &'static str,
    /// When the image was last changed: a rollout started before it is not this image's.
    changed_at: Option<Timestamp>,
    deleted: bool,
}

impl Scenario {
    pub async fn deploy(plan: Plan) -> Scenario {
        let deployed = match plan.kind {
            Kind::PipelineGood | Kind::PipelineBad => Deployed::Pipeline(
                Environments::deploy(
                    "fault-pipeline",
                    STAGING_STAGES,
                    &pipeline_fixture::pipeline_yaml("Push", ""),
                )
                .await,
            ),
            _ => {
                let prefix = format!("fault-{:?}", plan.kind).to_lowercase();
                Deployed::Rollout(
                    Service::deploy_without_operator(&prefix, &plan.rollout_yaml(2)).await,
                )
            }
        };
        // A canary's series exists while a canary runs, as series selected by a track label do:
        // a value from before the release is no evidence about it. (Prometheus restarted
        // before it scraped the release's first value would otherwise answer with the last
        // value before the release; see docs/robustness.md.)
        let canary = [
            ("namespace", deployed.namespace().name()),
            ("track", "canary"),
        ];
        deployed
            .exporter()
            .remove(rollout_fixture::ERROR_METRIC, &canary);
        Scenario {
            plan,
            deployed,
            final_image: V1,
            changed_at: None,
            deleted: false,
        }
    }

    pub fn namespace(&self) -> &TestNamespace {
        self.deployed.namespace()
    }

    fn rollout_names(&self) -> &'static [&'static str] {
        match self.deployed {
            Deployed::Rollout(_) => &["checkout"],
            Deployed::Pipeline(_) => &["checkout-staging", "checkout-production"],
        }
    }

    /// Whether every rollout of the scenario adopted its target.
    pub async fn adopted(&self) -> bool {
        for name in self.rollout_names() {
            let phase = self.rollout(name).await.and_then(|r| r.status?.phase);
            if phase != Some(Phase::Idle) {
                return false;
            }
        }
        true
    }

    /// The release and the edit, at their times from `start`.
    pub async fn drive(&mut self, start: Instant) {
        sleep_until(start + self.plan.release_at).await;
        let released = Instant::now();
        match &self.deployed {
            Deployed::Pipeline(environments) => {
                let ratio = if self.plan.kind == Kind::PipelineBad {
                    BAD_ERROR_RATIO
                } else {
                    GOOD_ERROR_RATIO
                };
                let labels = [("namespace", environments.ns.name()), ("track", "canary")];
                environments
                    .exporter
                    .set(pipeline_fixture::ERROR_METRIC, &labels, ratio);
                self.set_image("checkout-staging", V2).await;
                return;
            }
            Deployed::Rollout(service) => {
                if self.plan.kind == Kind::Bad {
                    service.set_canary_error_ratio(BAD_ERROR_RATIO);
                } else {
                    service.set_canary_error_ratio(GOOD_ERROR_RATIO);
                }
                if self.plan.kind == Kind::Slow {
                    service.kubelet.keep_unready("checkout");
                }
            }
        }
        self.set_image("checkout", V2).await;
        let mut steps = vec![(self.plan.edit_after, true)];
        if self.plan.kind == Kind::Slow {
            steps.push((self.plan.ready_after, false));
        }
        steps.sort();
        for (after, is_edit) in steps {
            sleep_until(released + after).await;
            if is_edit {
                self.edit().await;
            } else if let Deployed::Rollout(service) = &self.deployed {
                service.kubelet.make_ready("checkout");
            }
        }
    }

    async fn edit(&mut self) {
        let Deployed::Rollout(service) = &self.deployed else {
            return;
        };
        match self.plan.edit {
            Edit::None => {}
            Edit::Template => self.set_image("checkout", V3).await,
            Edit::Spec => git_apply(&service.ns, &self.plan.rollout_yaml(3)).await,
            Edit::Route => git_apply(&service.ns, rollout_fixture::ROUTE_YAML).await,
            Edit::Delete => {
                let api = service.ns.api::<CanaryRollout>();
                retry("deleting the CanaryRollout", async || {
                    match api.delete("checkout", &DeleteParams::default()).await {
                        Err(kube::Error::Api(status)) if status.is_not_found() => Ok(()),
                        other => other.map(|_| ()),
                    }
                })
                .await;
                self.deleted = true;
            }
        }
    }

    async fn set_image(&mut self, deployment: &str, image: &'static str) {
        let patch = json!({"spec": {"template": {"spec": {"containers": [{"name": "app", "image": image}]}}}});
        let api = self.namespace().api::<Deployment>();
        self.changed_at = Some(Timestamp::now());
        retry("setting the image", async || {
            api.patch(
                deployment,
                &PatchParams::default(),
                &Patch::Strategic(&patch),
            )
            .await
        })
        .await;
        self.final_image = image;
    }

    async fn rollout(&self, name: &str) -> Option<CanaryRollout> {
        read(&self.namespace().api(), name).await
    }

    async fn image(&self, deployment: &str) -> Option<String> {
        let deployment: Deployment = read(&self.namespace().api(), deployment).await?;
        deployment
            .spec?
            .template
            .spec?
            .containers
            .first()?
            .image
            .clone()
    }

    async fn replicas(&self, deployment: &str) -> Option<i32> {
        let deployment: Deployment = read(&self.namespace().api(), deployment).await?;
        deployment.spec?.replicas
    }

    /// Whether the scenario reached its end: the rollouts at rest on the last image Git holds.
    pub async fn settled(&self) -> bool {
        if self.deleted {
            return self.rollout("checkout").await.is_none();
        }
        match self.plan.kind {
            Kind::PipelineGood => {
                self.at_rest("checkout-staging", Phase::Succeeded).await
                    && self.at_rest("checkout-production", Phase::Succeeded).await
                    && self.image("checkout-production-stable").await.as_deref() == Some(V2)
            }
            Kind::PipelineBad => self.at_rest("checkout-staging", Phase::RolledBack).await,
            _ => {
                let Some(status) = self.rollout("checkout").await.and_then(|r| r.status) else {
                    return false;
                };
                let this_image = status
                    .rollout_started_at
                    .zip(self.changed_at)
                    .is_some_and(|(started, changed)| started > changed);
                match status.phase {
                    Some(Phase::RolledBack) => this_image,
                    Some(Phase::Succeeded) => {
                        this_image
                            && self.image("checkout-stable").await.as_deref()
                                == Some(self.final_image)
                    }
                    _ => false,
                }
            }
        }
    }

    async fn at_rest(&self, name: &str, phase: Phase) -> bool {
        let status = self.rollout(name).await.and_then(|r| r.status);
        status.is_some_and(|s| {
            s.phase == Some(phase)
                && s.rollout_started_at
                    .zip(self.changed_at)
                    .is_some_and(|(started, changed)| started > changed)
        })
    }

    /// Where the scenario is, for a report of one that did not settle.
    pub async fn whereabouts(&self) -> String {
        let mut parts = Vec::new();
        for name in self.rollout_names() {
            let status = self.rollout(name).await.and_then(|r| r.status);
            parts.push(format!(
                "{name}: {:?} ({})",
                status.as_ref().and_then(|s| s.phase),
                status.and_then(|s| s.message).unwrap_or_default()
            ));
        }
        parts.join("; ")
    }

    /// The scenario's Deployments as the apiserver has them, for the report of one that did
    /// not settle: generation against observedGeneration, replicas, image, Sluice's revision.
    pub async fn deployments(&self) -> String {
        let api = self.namespace().api::<Deployment>();
        let list = retry("listing Deployments", async || {
            api.list(&kube::api::ListParams::default()).await
        })
        .await;
        list.items
            .iter()
            .map(|d| {
                let status = d.status.clone().unwrap_or_default();
                let spec = d.spec.clone().unwrap_or_default();
                let image = spec
                    .template
                    .spec
                    .and_then(|s| s.containers.first().and_then(|c| c.image.clone()))
                    .unwrap_or_default();
                let revision = d
                    .metadata
                    .annotations
                    .as_ref()
                    .and_then(|a| a.get("sluice.dev/revision").cloned())
                    .unwrap_or_default();
                format!(
                    "{} generation {:?} observed {:?} replicas {:?} (status {:?}) updated {:?} ready {:?} available {:?} image {image} revision {revision:?}",
                    d.metadata.name.clone().unwrap_or_default(),
                    d.metadata.generation,
                    status.observed_generation,
                    spec.replicas,
                    status.replicas,
                    status.updated_replicas,
                    status.ready_replicas,
                    status.available_replicas,
                )
            })
            .chain(self.replica_sets_and_pods().await)
            .collect::<Vec<_>>()
            .join("\n      ")
    }

    /// The ReplicaSets (revision, generations, counts) and pods (phase, readiness, deletion) of
    /// the scenario, for the report of one that did not settle.
    async fn replica_sets_and_pods(&self) -> Vec<String> {
        let sets = self.namespace().api::<ReplicaSet>();
        let sets = retry("listing ReplicaSets", async || {
            sets.list(&kube::api::ListParams::default()).await
        })
        .await;
        let pods = self.namespace().api::<Pod>();
        let pods = retry("listing pods", async || {
            pods.list(&kube::api::ListParams::default()).await
        })
        .await;
        let sets = sets.items.iter().map(|set| {
            let status = set.status.clone().unwrap_or_default();
            let revision = set
                .annotations()
                .get("deployment.kubernetes.io/revision")
                .cloned()
                .unwrap_or_default();
            format!(
                "ReplicaSet {} revision {revision} generation {:?} observed {:?} replicas {:?} (status {}) ready {:?} available {:?}",
                set.name_any(),
                set.metadata.generation,
                status.observed_generation,
                set.spec.as_ref().and_then(|s| s.replicas),
                status.replicas,
                status.ready_replicas,
                status.available_replicas,
            )
        });
        let pods = pods.items.iter().map(|pod| {
            let status = pod.status.clone().unwrap_or_default();
            let ready = status
                .conditions
                .unwrap_or_default()
                .into_iter()
                .find(|c| c.type_ == "Ready")
                .map(|c| c.status);
            format!(
                "Pod {} phase {:?} ready {ready:?} node {:?} deleting {:?} labels {:?}",
                pod.name_any(),
                status.phase,
                pod.spec.as_ref().and_then(|s| s.node_name.clone()),
                pod.metadata
                    .deletion_timestamp
                    .as_ref()
                    .map(|t| t.0.to_string()),
                pod.labels(),
            )
        });
        sets.chain(pods).collect()
    }

    /// What the cluster and the status show once the scenario settled (or gave up).
    pub async fn check(&self) -> Vec<(Invariant, String)> {
        let mut found = Vec::new();
        let mut expect = |ok: bool, invariant: Invariant, what: String| {
            if !ok {
                found.push((invariant, what));
            }
        };
        if self.deleted {
            let gone = self.rollout("checkout").await.is_none();
            expect(
                gone,
                Invariant::DeletedRolloutNotHandedBack,
                "the CanaryRollout is still there".into(),
            );
            let replicas = self.replicas("checkout").await;
            expect(
                replicas == Some(3),
                Invariant::DeletedRolloutNotHandedBack,
                format!("the target runs {replicas:?} replicas, not 3"),
            );
            if self.plan.gateway {
                let backends = self.backends().await;
                expect(
                    backends == [("checkout".to_string(), 100)],
                    Invariant::DeletedRolloutNotHandedBack,
                    format!("the route sends traffic to {backends:?}"),
                );
            }
            let left = self.leftovers_after(Duration::from_secs(30)).await;
            expect(
                left.is_empty(),
                Invariant::DeletedRolloutNotHandedBack,
                format!("left behind: {left:?}"),
            );
            return found;
        }
        match self.plan.kind {
            Kind::Good | Kind::Slow | Kind::Bad => {
                let bad = self.plan.kind == Kind::Bad;
                let status = self
                    .rollout("checkout")
                    .await
                    .and_then(|r| r.status)
                    .unwrap_or_default();
                let (wanted, invariant, stable_image) = if bad {
                    (Phase::RolledBack, Invariant::BadCandidateNotRolledBack, V1)
                } else {
                    (
                        Phase::Succeeded,
                        Invariant::GoodCandidateNotPromoted,
                        self.final_image,
                    )
                };
                expect(
                    status.phase == Some(wanted),
                    invariant,
                    format!(
                        "phase {:?}: {}",
                        status.phase,
                        status.message.clone().unwrap_or_default()
                    ),
                );
                let last = status.history.last();
                let result = if bad {
                    RolloutResult::RolledBack
                } else {
                    RolloutResult::Promoted
                };
                expect(
                    last.is_some_and(|h| h.result == result),
                    Invariant::StatusInconsistentWithCluster,
                    format!("last history entry {last:?}"),
                );
                let stable = self.image("checkout-stable").await;
                expect(
                    stable.as_deref() == Some(stable_image),
                    Invariant::StatusInconsistentWithCluster,
                    format!(
                        "{:?} with the stable Deployment on {stable:?}",
                        status.phase
                    ),
                );
                let replicas = self.replicas("checkout").await;
                expect(
                    replicas == Some(0),
                    if bad {
                        Invariant::BadCandidateNotRolledBack
                    } else {
                        Invariant::StatusInconsistentWithCluster
                    },
                    format!(
                        "{:?} with the target at {replicas:?} replicas",
                        status.phase
                    ),
                );
                let stable_replicas = self.replicas("checkout-stable").await;
                expect(
                    stable_replicas == Some(3),
                    Invariant::StatusInconsistentWithCluster,
                    format!(
                        "{:?} with the stable Deployment at {stable_replicas:?} replicas",
                        status.phase
                    ),
                );
                expect(
                    status.canary_weight.unwrap_or(0) == 0,
                    Invariant::StatusInconsistentWithCluster,
                    format!(
                        "{:?} with canaryWeight {:?}",
                        status.phase, status.canary_weight
                    ),
                );
                if self.plan.gateway {
                    let backends = self.backends().await;
                    let at_rest = [
                        ("checkout-stable".to_string(), 100),
                        ("checkout-canary".to_string(), 0),
                    ];
                    expect(
                        backends == at_rest,
                        Invariant::StatusInconsistentWithCluster,
                        format!("{:?} with the route on {backends:?}", status.phase),
                    );
                }
            }
            Kind::PipelineGood => {
                for name in ["checkout-staging", "checkout-production"] {
                    let status = self
                        .rollout(name)
                        .await
                        .and_then(|r| r.status)
                        .unwrap_or_default();
                    expect(
                        status.phase == Some(Phase::Succeeded),
                        Invariant::GoodCandidateNotPromoted,
                        format!(
                            "{name}: phase {:?}: {}",
                            status.phase,
                            status.message.unwrap_or_default()
                        ),
                    );
                    let stable = self.image(&format!("{name}-stable")).await;
                    expect(
                        stable.as_deref() == Some(V2),
                        Invariant::StatusInconsistentWithCluster,
                        format!("{name}: stable Deployment on {stable:?}"),
                    );
                    let replicas = self.replicas(name).await;
                    expect(
                        replicas == Some(0),
                        Invariant::StatusInconsistentWithCluster,
                        format!("{name}: target at {replicas:?} replicas"),
                    );
                }
            }
            Kind::PipelineBad => {
                let status = self
                    .rollout("checkout-staging")
                    .await
                    .and_then(|r| r.status)
                    .unwrap_or_default();
                expect(
                    status.phase == Some(Phase::RolledBack),
                    Invariant::BadCandidateNotRolledBack,
                    format!(
                        "staging: phase {:?}: {}",
                        status.phase,
                        status.message.unwrap_or_default()
                    ),
                );
                let replicas = self.replicas("checkout-staging").await;
                expect(
                    replicas == Some(0),
                    Invariant::BadCandidateNotRolledBack,
                    format!("staging: target at {replicas:?} replicas"),
                );
                for deployment in [
                    "checkout-staging-stable",
                    "checkout-production",
                    "checkout-production-stable",
                ] {
                    let image = self.image(deployment).await;
                    expect(
                        image.as_deref() == Some(V1),
                        Invariant::BadCandidateNotRolledBack,
                        format!("{deployment} runs {image:?}"),
                    );
                }
            }
        }
        found
    }

    async fn backends(&self) -> Vec<(String, i64)> {
        let Deployed::Rollout(service) = &self.deployed else {
            return Vec::new();
        };
        service.backends().await
    }

    /// Sluice's objects still there after waiting up to `patience` for them to go.
    async fn leftovers_after(&self, patience: Duration) -> Vec<&'static str> {
        let deadline = Instant::now() + patience;
        loop {
            let mut left = Vec::new();
            if read::<Deployment>(&self.namespace().api(), "checkout-stable")
                .await
                .is_some()
            {
                left.push("Deployment checkout-stable");
            }
            for service in ["checkout-stable", "checkout-canary"] {
                if read::<CoreService>(&self.namespace().api(), service)
                    .await
                    .is_some()
                {
                    left.push(if service == "checkout-stable" {
                        "Service checkout-stable"
                    } else {
                        "Service checkout-canary"
                    });
                }
            }
            if left.is_empty() || Instant::now() >= deadline {
                return left;
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }
}

/// An object, or None when it does not exist; a failing apiserver is asked again.
async fn read<K>(api: &Api<K>, name: &str) -> Option<K>
where
    K: Clone + DeserializeOwned + std::fmt::Debug,
{
    retry("reading", async || api.get_opt(name).await).await
}

/// `kubectl apply` of `yaml`, as a GitOps tool syncs it, until the apiserver takes it.
async fn git_apply(ns: &TestNamespace, yaml: &str) {
    retry("kubectl apply", async || {
        let output = ns
            .kubectl_with_input(&["apply", "-f", "-"], Some(yaml))
            .await;
        if output.status.success() {
            Ok(())
        } else {
            Err(String::from_utf8_lossy(&output.stderr).into_owned())
        }
    })
    .await
}

/// Runs `attempt` until it succeeds; the campaign's own requests must outlast the faults it
/// injects. Panics after READ_PATIENCE: the control plane did not come back.
pub async fn retry<T, E: std::fmt::Display>(
    what: &str,
    mut attempt: impl AsyncFnMut() -> Result<T, E>,
) -> T {
    let deadline = Instant::now() + READ_PATIENCE;
    loop {
        match attempt().await {
            Ok(value) => return value,
            Err(error) if Instant::now() >= deadline => {
                panic!("{what}: still failing after {READ_PATIENCE:?}: {error}")
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(500)).await,
        }
    }
}

pub async fn sleep_until(at: Instant) {
    tokio::time::sleep_until(at.into()).await;
}
